//! The seeds' YAML and the invalid-input corpus, end to end through load + validate.

use std::fs;
use std::path::{Path, PathBuf};

use tektite_api::v1::ParamValue;
use tektite_api::validate::validate;
use tektite_api::{Document, Object, Source, load};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Loads and validates files together; returns the documents of the first file.
fn check_together(files: &[PathBuf]) -> Vec<Document> {
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f.display().to_string(),
                fs::read_to_string(f).expect("read fixture"),
            )
        })
        .collect();
    let sources: Vec<Source<'_>> = texts
        .iter()
        .map(|(n, t)| Source { name: n, text: t })
        .collect();
    let mut docs = load(&sources);
    validate(&mut docs);
    docs.into_iter().filter(|d| d.source == 0).collect()
}

fn seed_files() -> (Vec<PathBuf>, Vec<PathBuf>) {
    fixtures("seeds").into_iter().partition(|f| {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        !name.starts_with('_') && !name.contains("pipelineresource")
    })
}

#[test]
fn every_seed_example_parses_converts_and_validates() {
    let (seeds, resources) = seed_files();
    assert!(seeds.len() >= 20, "only {} seed fixtures", seeds.len());
    for seed in &seeds {
        let mut files = vec![seed.clone()];
        files.extend(resources.iter().cloned());
        let docs = check_together(&files);
        assert!(!docs.is_empty(), "{}: no documents", seed.display());
        for d in &docs {
            assert!(
                d.object.is_some(),
                "{}: {} did not decode: {:?}",
                seed.display(),
                d.display_name(),
                d.problems
            );
            assert!(
                d.problems.is_empty(),
                "{}: {}: {:#?}",
                seed.display(),
                d.display_name(),
                d.problems
            );
        }
    }
}

fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seeds")
        .join(name)
}

fn find<'a>(docs: &'a [Document], kind: &str, name: &str) -> &'a Object {
    docs.iter()
        .find(|d| d.kind == kind && d.name == name)
        .and_then(|d| d.object.as_ref())
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
}

#[test]
fn the_v1alpha1_tutorial_becomes_v1_with_the_same_data_flow() {
    let docs = check_together(&[
        seed("001-v1alpha1-git-source-build-and-deploy.yaml"),
        seed("_support-pipelineresources.yaml"),
    ]);
    let Object::Task(task) = find(&docs, "Task", "build-docker-image-from-git-source") else {
        panic!("not a Task")
    };
    // The git input is cloned by a first step into /workspace/<name>.
    assert_eq!(task.spec.steps[0].name, "git-source-docker-source");
    assert!(
        task.spec.steps[0]
            .script
            .as_deref()
            .unwrap()
            .contains("/workspace/docker-source")
    );
    // ${inputs.params.x} became $(params.x).
    assert_eq!(task.spec.steps[1].args[1], "$(params.pathToContext)");
    let params: Vec<_> = task.spec.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        params,
        [
            "pathToDockerFile",
            "pathToContext",
            "resource-docker-source-url",
            "resource-docker-source-revision",
            "resource-builtImage-url",
            "resource-builtImage-digest"
        ]
    );

    let Object::TaskRun(run) = find(
        &docs,
        "TaskRun",
        "build-docker-image-from-git-source-task-run",
    ) else {
        panic!()
    };
    assert_eq!(run.spec.service_account_name.as_deref(), Some("build-bot"));
    let url = run
        .spec
        .params
        .iter()
        .find(|p| p.name == "resource-docker-source-url")
        .expect("url param");
    assert_eq!(
        url.value,
        ParamValue::String("https://github.com/cccfeng/tekton-source.git".into())
    );

    let Object::Pipeline(p) = find(&docs, "Pipeline", "tutorial-pipeline") else {
        panic!()
    };
    assert_eq!(
        p.spec.tasks[1].run_after,
        ["build-skaffold-web"],
        "`from` orders the tasks"
    );

    let Object::PipelineRun(pr) = find(&docs, "PipelineRun", "tutorial-pipeline-run-1") else {
        panic!()
    };
    assert_eq!(
        pr.spec
            .task_run_template
            .as_ref()
            .and_then(|t| t.service_account_name.as_deref()),
        Some("build-bot")
    );
    assert_eq!(
        pr.spec.params.len(),
        3,
        "git url + revision, image url: {:?}",
        pr.spec.params
    );
}

#[test]
fn the_v1beta1_pipelinerun_moves_its_service_account_to_the_task_run_template() {
    let docs = check_together(&[seed(
        "004-v1beta1-build-and-push-pipelinerun-workspaces.yaml",
    )]);
    let Object::PipelineRun(pr) = docs[0].object.as_ref().unwrap() else {
        panic!()
    };
    assert_eq!(
        pr.spec
            .task_run_template
            .as_ref()
            .and_then(|t| t.service_account_name.as_deref()),
        Some("build-sa")
    );
    assert_eq!(
        pr.spec.workspaces[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "git-clone-pvc2"
    );
}

/// `# expect: <path> :: <message keyword>` lines at the top of a corpus file.
fn expectations(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (path, keyword) = e.split_once(" :: ").expect("expect line needs ' :: '");
            (path.to_owned(), keyword.to_owned())
        })
        .collect()
}

#[test]
fn every_invalid_document_reports_exactly_the_expected_paths_and_messages() {
    let files = fixtures("invalid");
    assert!(
        files.len() >= 40,
        "the corpus has only {} documents",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let expected = expectations(&text);
        assert!(
            !expected.is_empty(),
            "{} has no expect lines",
            file.display()
        );
        let docs = check_together(std::slice::from_ref(file));
        let got: Vec<(String, String)> = docs
            .iter()
            .flat_map(|d| {
                d.problems
                    .iter()
                    .map(|p| (p.path.to_string(), p.message.clone()))
            })
            .collect();
        let all_found = expected.iter().all(|(path, kw)| {
            got.iter()
                .any(|(p, m)| p == path && m.contains(kw.as_str()))
        });
        if !all_found || got.len() != expected.len() {
            failures.push(format!(
                "{}:\n  expected {expected:?}\n  got      {got:?}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Tekton's examples of what it accepts that the validator once refused: unnamed sidecars
/// (named `unnamed-<i>`), and params and a TaskRun's workspaces that reach embedded specs
/// undeclared (a TaskRun's, a PipelineRun's, a pipeline task's, an object's keys merged),
/// and a PipelineRun's workspaces reaching the embedded taskSpecs that refer to them.
#[test]
fn tektons_unnamed_sidecar_and_propagation_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tekton-examples/v1");
    for file in [
        "taskruns/workspace-in-sidecar.yaml",
        "taskruns/beta/workspace-in-sidecar.yaml",
        "taskruns/propagating_params_implicit.yaml",
        "taskruns/propagating_workspaces.yaml",
        "taskruns/home-volume.yaml",
        "taskruns/beta/propagated-object-parameters.yaml",
        "pipelineruns/propagating_params_implicit_parameters.yaml",
        "pipelineruns/propagating_params_with_scope_precedence.yaml",
        "pipelineruns/beta/propagated-pipeline-object-param.yaml",
        "pipelineruns/beta/ignore-task-error.yaml",
        "pipelineruns/propagating-workspaces.yaml",
        "pipelineruns/propagating_workspaces_with_referenced_resources.yaml",
    ] {
        let path = dir.join(file);
        let Ok(text) = fs::read_to_string(&path) else {
            panic!("{} is missing (Tekton's example suite)", path.display());
        };
        let name = path.display().to_string();
        let mut docs = load(&[Source {
            name: &name,
            text: &text,
        }]);
        validate(&mut docs);
        for d in &docs {
            assert!(d.problems.is_empty(), "{name}: {:?}", d.problems);
            assert!(d.notes.is_empty(), "{name}: {:?}", d.notes);
        }
    }
}

/// Tekton admits a run that leaves a required workspace unbound (a cluster's
/// config-defaults may bind it): a note, not a problem.
#[test]
fn an_unbound_required_workspace_is_a_note() {
    let text = r#"
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: t
spec:
  workspaces: [{name: src}]
  steps: [{name: s, image: alpine, script: "true"}]
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: r}
spec:
  taskRef: {name: t}
"#;
    let mut docs = load(&[Source {
        name: "t.yaml",
        text,
    }]);
    validate(&mut docs);
    let run = &docs[1];
    assert!(run.problems.is_empty(), "{:?}", run.problems);
    assert!(
        run.notes
            .iter()
            .any(|n| n.path.to_string() == "spec.workspaces"
                && n.message
                    .contains("\"src\" is required by Task \"t\" and not bound")),
        "{:?}",
        run.notes
    );
}
