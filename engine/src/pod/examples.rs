//! One pod-builder case per example in `examples/`: the Task as the example writes it
//! (converted from v1beta1 or v1alpha1 where it is older), run by a TaskRun as the
//! controller holds it (what a PipelineRun creates for one of its tasks, with params and
//! workspaces already substituted), compared with the Pod written out by hand in
//! `pod/testdata/<example>.yaml`. A new example without a case fails
//! [`every_example_has_a_case`].

use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;
use tektite_api::v1::{TaskRun, TaskSpec};
use tektite_api::{Document, Object, Source, load};

use super::tests::yaml_of;
use super::*;

/// Where a case's Task comes from in its example.
enum From {
    /// A Task document, by name.
    Task(&'static str),
    /// The embedded taskSpec of a pipeline task, by the task's name.
    PipelineTask(&'static str),
}

struct Case {
    example: &'static str,
    from: From,
    /// The TaskRun, as YAML: from the example's own TaskRun when it has one (then this
    /// only adds name, namespace and uid), else as a PipelineRun would create it.
    task_run: &'static str,
    retry: u32,
}

const CASES: &[Case] = &[
    Case {
        example: "build-id",
        from: From::Task("generate-build-id"),
        task_run: "",
        retry: 0,
    },
    Case {
        example: "echo-task",
        from: From::Task("echo-hello-world"),
        task_run: r#"
metadata: {name: echo-hello-world-run, namespace: ci, uid: u-echo}
spec:
  taskRef: {name: echo-hello-world, kind: Task}
  params:
    - {name: greeting, value: hello tektite}
"#,
        retry: 0,
    },
    Case {
        example: "hello-pipeline",
        from: From::Task("make-greeting"),
        task_run: r#"
metadata:
  name: hello-run-x7k2p-greet
  namespace: ci
  uid: u-greet
  labels:
    tekton.dev/pipeline: hello
    tekton.dev/pipelineRun: hello-run-x7k2p
    tekton.dev/pipelineRunUID: u-hello-run
    tekton.dev/pipelineTask: greet
    tekton.dev/memberOf: tasks
    tekton.dev/task: make-greeting
  ownerReferences:
    - {apiVersion: tekton.dev/v1, kind: PipelineRun, name: hello-run-x7k2p, uid: u-hello-run, controller: true}
spec:
  taskRef: {name: make-greeting, kind: Task}
  params:
    - {name: who, value: platform team}
  workspaces:
    - name: shared
      persistentVolumeClaim: {claimName: pvc-5e3c1a9b20}
  timeout: 8m0s
"#,
        retry: 0,
    },
    Case {
        example: "matrix-build",
        from: From::PipelineTask("build"),
        task_run: r#"
metadata:
  name: matrix-build-run-b-build-0
  namespace: ci
  uid: u-build-0
  labels:
    tekton.dev/pipelineTask: build
spec:
  params:
    - {name: flags, value: ["-v", "-trimpath"]}
    - {name: platform, value: linux/amd64}
"#,
        retry: 0,
    },
    Case {
        example: "retries-timeouts",
        from: From::PipelineTask("flaky"),
        task_run: r#"
metadata: {name: resilient-run-flaky, namespace: ci, uid: u-flaky}
spec:
  retries: 2
"#,
        retry: 1,
    },
    Case {
        example: "shared-cache",
        from: From::Task("mvn-build"),
        task_run: r#"
metadata: {name: maven-parallel-run-build-api, namespace: ci, uid: u-api}
spec:
  taskRef: {name: mvn-build, kind: Task}
  params:
    - {name: module, value: api}
  workspaces:
    - name: maven-repo
      persistentVolumeClaim: {claimName: m2-cache}
      subPath: repository
"#,
        retry: 0,
    },
    Case {
        example: "sidecar-service",
        from: From::Task("talk-to-sidecar"),
        task_run: "",
        retry: 0,
    },
    Case {
        example: "step-action",
        from: From::Task("package"),
        task_run: "",
        retry: 0,
    },
    Case {
        example: "test-then-build",
        from: From::Task("build-and-push"),
        task_run: r#"
metadata: {name: test-pipeline-run-build-and-push, namespace: ci, uid: u-push}
spec:
  serviceAccountName: pusher
  taskRef: {name: build-and-push, kind: Task}
  params:
    - {name: image, value: "harbor.k8s.local/course/devops-demo:v0.4.0-20261122101500"}
"#,
        retry: 0,
    },
    Case {
        example: "v1alpha1-git-resource",
        from: From::Task("count-sources"),
        task_run: "",
        retry: 0,
    },
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn documents(example: &str) -> Vec<Document> {
    let path = examples_dir().join(format!("{example}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.display().to_string();
    let mut docs = load(&[Source {
        name: &name,
        text: &text,
    }]);
    tektite_api::validate::validate(&mut docs);
    for d in &docs {
        assert!(d.problems.is_empty(), "{example}: {:?}", d.problems);
    }
    docs
}

/// The example's StepActions, by name.
fn step_actions(case: &Case) -> BTreeMap<String, StepActionSpec> {
    documents(case.example)
        .into_iter()
        .filter_map(|d| match d.object? {
            Object::StepAction(a) => Some((a.metadata.name.clone().unwrap_or_default(), a.spec)),
            _ => None,
        })
        .collect()
}

/// The Task spec, its name (for a Task document), and the example's own TaskRun.
fn inputs(case: &Case) -> (TaskSpec, Option<String>, Option<TaskRun>) {
    let docs = documents(case.example);
    let objects = || docs.iter().filter_map(|d| d.object.as_ref());
    let own_run = objects().find_map(|o| match o {
        Object::TaskRun(t) => Some((**t).clone()),
        _ => None,
    });
    let (spec, name) = match case.from {
        From::Task(name) => {
            let task = objects()
                .find_map(|o| match o {
                    Object::Task(t) if t.metadata.name.as_deref() == Some(name) => Some(t),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{}: no Task {name}", case.example));
            (task.spec.clone(), Some(name.to_owned()))
        }
        From::PipelineTask(name) => {
            let task = objects()
                .find_map(|o| match o {
                    Object::Pipeline(p) => p.spec.tasks.iter().find(|t| t.name == name),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{}: no pipeline task {name}", case.example));
            let embedded = task.task_spec.as_ref().expect("an embedded taskSpec");
            (embedded.task.clone(), None)
        }
    };
    (spec, name, own_run)
}

fn task_run(case: &Case, own: Option<TaskRun>) -> TaskRun {
    match own {
        Some(mut tr) => {
            let name = format!("{}-run", case.example);
            tr.metadata.generate_name = None;
            tr.metadata.name = Some(name);
            tr.metadata.namespace = Some("ci".into());
            tr.metadata.uid = Some(format!("u-{}", case.example));
            tr
        }
        None => serde_saphyr::from_str(case.task_run).expect("the case's TaskRun is valid YAML"),
    }
}

#[test]
fn every_example_has_a_case() {
    let mut on_disk: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "yaml")
                .then_some(path.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    on_disk.sort();
    let cases: Vec<&str> = CASES.iter().map(|c| c.example).collect();
    assert_eq!(
        cases, on_disk,
        "add a case (and its testdata Pod) for each example"
    );
}

#[test]
fn each_examples_pod_is_the_one_written_by_hand() {
    let settings = PodSettings::default();
    for case in CASES {
        let (spec, task_name, own) = inputs(case);
        let tr = task_run(case, own);
        let built = build(&PodRequest {
            task_run: &tr,
            spec: &spec,
            task_name: task_name.as_deref(),
            retry: case.retry,
            settings: &settings,
            credentials: &[],
            step_actions: &step_actions(case),
            step_actions_from: "",
            images: &Default::default(),
        })
        .unwrap_or_else(|e| panic!("{}: {e}", case.example));
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/pod/testdata")
            .join(format!("{}.yaml", case.example));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let expected: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            yaml_of(&built.pod),
            yaml_of(&expected),
            "{}: the built Pod (left) differs from {} (right)",
            case.example,
            path.display()
        );
    }
}
