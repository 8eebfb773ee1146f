//! `tkt convert`: every seed (v1beta1, v1alpha1 with PipelineResources) comes out as v1
//! documents that are valid as they are, other cluster objects pass through, and an
//! invalid file prints nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tektite_api::{Source, load, validate};

fn seeds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/tests/fixtures/seeds")
}

fn convert(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tkt"))
        .arg("convert")
        .args(args)
        .env_remove("TKT_LOG")
        .output()
        .expect("run tkt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn every_seed_comes_out_as_valid_v1() {
    // The PipelineResources the seeds bind, as the api's fixture test gives them.
    let (support, seeds): (Vec<PathBuf>, Vec<PathBuf>) = std::fs::read_dir(seeds())
        .unwrap()
        .map(|e| e.unwrap().path())
        .partition(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with('_') || name.contains("pipelineresource")
        });
    let mut converted = 0;
    for path in seeds {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut args = vec![path.to_str().unwrap()];
        args.extend(support.iter().map(|p| p.to_str().unwrap()));
        let (code, yaml, stderr) = convert(&args);
        assert_eq!(code, 0, "{name}: {stderr}");
        let mut docs = load(&[Source {
            name: &name,
            text: &yaml,
        }]);
        validate::validate(&mut docs);
        assert!(!docs.is_empty(), "{name}: nothing came out");
        for d in &docs {
            assert!(
                d.problems.is_empty(),
                "{name}: {}: {:?}",
                d.display_name(),
                d.problems
            );
            let expected = match d.kind.as_str() {
                "StepAction" => "tekton.dev/v1beta1",
                "Task" | "TaskRun" | "Pipeline" | "PipelineRun" => "tekton.dev/v1",
                _ => continue,
            };
            assert_eq!(d.api_version, expected, "{name}: {}", d.display_name());
            // Converted once, it needs no conversion again: no notes about it.
            assert!(
                d.notes.iter().all(|n| !n.message.contains("converted")),
                "{name}: {:?}",
                d.notes
            );
        }
        converted += 1;
    }
    assert!(converted >= 20, "only {converted} seeds");
}

#[test]
fn other_cluster_objects_pass_through_and_json_is_a_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: cache}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n---\napiVersion: tekton.dev/v1beta1\nkind: Task\nmetadata: {name: t}\nspec:\n  steps: [{name: s, image: alpine, script: 'true'}]\n",
    )
    .unwrap();
    let (code, json, _) = convert(&[file.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items[0]["kind"], "PersistentVolumeClaim");
    assert_eq!(items[0]["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(items[1]["apiVersion"], "tekton.dev/v1");
    assert_eq!(items[1]["kind"], "Task");
}

#[test]
fn an_invalid_document_prints_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: tekton.dev/v1beta1\nkind: Task\nmetadata: {name: t}\nspec:\n  steps: [{name: s, image: alpine, script: 'echo $(params.nope)'}]\n",
    )
    .unwrap();
    let (code, stdout, stderr) = convert(&[file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("Task/t: spec.steps[0].script: $(params.nope)"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing converted"), "{stderr}");
    let (code, stdout, stderr) = convert(&["/nonexistent.yaml"]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(
        stderr.contains("/nonexistent.yaml: cannot read"),
        "{stderr}"
    );
}
