//! The conversion webhook's conversion, between tekton.dev/v1beta1 and v1, on every
//! v1beta1 document among the seed fixtures and Tekton's own example suite (read in place
//! from `../shared/tekton-examples/v1`), and on every v1 document of that suite the other
//! way: what is stored (v1) survives being served at v1beta1 and written back, exactly.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tektite_api::convert::served::{Error, to_version};

const V1: &str = "tekton.dev/v1";
const V1BETA1: &str = "tekton.dev/v1beta1";
const KINDS: [&str; 4] = ["Task", "TaskRun", "Pipeline", "PipelineRun"];

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

/// Every document of the four kinds at `version` in the files under `dirs`, with where it
/// came from.
fn documents(dirs: &[PathBuf], version: &str) -> Vec<(String, Value)> {
    let mut files = Vec::new();
    for d in dirs {
        yaml_files(d, &mut files);
    }
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).expect("read");
        for (i, doc) in text.split("\n---").enumerate() {
            let Ok(value) = serde_saphyr::from_str::<Value>(doc) else {
                continue;
            };
            if value["apiVersion"] == version
                && KINDS.iter().any(|k| value["kind"] == *k)
                && value["metadata"].is_object()
            {
                out.push((format!("{} (document {})", f.display(), i + 1), value));
            }
        }
    }
    out
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Whether `beta` says something in a form v1 replaced (served back in its v1 form).
fn older_form(beta: &Value) -> bool {
    let text = beta["spec"].to_string();
    text.contains("\"bundle\"")
        || beta["spec"].get("serviceAccountNames").is_some()
        || (beta["kind"] == "PipelineRun" && beta["spec"].get("timeout").is_some())
}

#[test]
fn every_v1beta1_document_of_the_seeds_and_tektons_examples_round_trips() {
    let dirs = [
        root().join("tests/fixtures/seeds"),
        root().join("../../shared/tekton-examples/v1"),
    ];
    let docs = documents(&dirs, V1BETA1);
    assert!(
        docs.len() >= 20,
        "only {} v1beta1 documents found",
        docs.len()
    );
    let (mut exact, mut normalized, mut refused) = (0, 0, Vec::new());
    for (what, beta) in &docs {
        let v1 = match to_version(beta.clone(), V1) {
            Ok(v) => v,
            Err(Error::Invalid(problems)) => {
                // Only PipelineResources may be refused: Tekton no longer runs them.
                assert!(
                    problems
                        .iter()
                        .all(|p| p.message.contains("PipelineResources")),
                    "{what}: refused: {problems:?}"
                );
                refused.push(what.clone());
                continue;
            }
            Err(e) => panic!("{what}: {e}"),
        };
        assert_eq!(v1["apiVersion"], V1, "{what}");
        let back = to_version(v1.clone(), V1BETA1).unwrap_or_else(|e| panic!("{what}: {e}"));
        if older_form(beta) {
            normalized += 1;
        } else {
            assert_eq!(&back, beta, "{what}: v1beta1 → v1 → v1beta1 changed it");
            exact += 1;
        }
        // What is stored survives a v1beta1 client's read and write, whatever the form.
        let again = to_version(back, V1).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(again, v1, "{what}: v1 → v1beta1 → v1 changed it");
    }
    eprintln!(
        "{} v1beta1 documents: {exact} round trip exactly, {normalized} come back in their v1 form, {} refused (PipelineResources): {refused:?}",
        docs.len(),
        refused.len()
    );
    assert!(exact > normalized, "most documents round trip exactly");
}

#[test]
fn every_v1_document_of_tektons_examples_survives_being_served_at_v1beta1() {
    let docs = documents(&[root().join("../../shared/tekton-examples/v1")], V1);
    assert!(docs.len() >= 100, "only {} v1 documents found", docs.len());
    for (what, v1) in docs {
        let beta = to_version(v1.clone(), V1BETA1).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(beta["apiVersion"], V1BETA1);
        let back = to_version(beta, V1).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(back, v1, "{what}: v1 → v1beta1 → v1 changed it");
    }
}
