//! The TaskRun reconciler against a mocked API server: every request it sends is checked,
//! in order, and nothing else may be sent.

mod common;

use std::sync::Arc;

use common::{Expect, at, harness, harness_with, yaml};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tektite_api::step::{RecordedResult, ResultKind, StepReason, StepState};
use tektite_api::v1::TaskRun;
use tektite_controller::context::{Claim, Settings};
use tektite_controller::steps::StepEvent;
use tektite_controller::taskrun::reconcile;

const NOW: &str = "2026-11-22T10:00:10Z";
const TASKRUNS: &str = "/apis/tekton.dev/v1/namespaces/ci/taskruns";
const PODS: &str = "/api/v1/namespaces/ci/pods";
const ACCOUNT: &str = "/api/v1/namespaces/ci/serviceaccounts/default";
const SECRETS: &str = "/api/v1/namespaces/ci/secrets";

fn two_steps() -> TaskRun {
    yaml(
        r#"
apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: build
  namespace: ci
  uid: tr-uid
  creationTimestamp: "2026-11-22T10:00:00Z"
spec:
  taskSpec:
    results:
      - name: digest
    steps:
      - {name: compile, image: golang, command: [go, build]}
      - {name: test, image: golang, command: [go, test]}
"#,
    )
}

/// `tr` as the reconciler left it after creating its Pod at 10:00:00.
fn running(mut tr: TaskRun) -> TaskRun {
    let spec = tr.spec.task_spec.clone().unwrap();
    tr.status = Some(yaml(&format!(
        r#"
podName: build-pod
startTime: "2026-11-22T10:00:00Z"
conditions:
  - {{type: Succeeded, status: Unknown, reason: Pending, message: Pending, lastTransitionTime: "2026-11-22T10:00:00Z"}}
taskSpec: {}
"#,
        serde_json::to_string(&spec).unwrap()
    )));
    tr
}

fn pod(status: &str) -> Pod {
    let mut pod: Pod = yaml(
        r#"
metadata:
  name: build-pod
  namespace: ci
  uid: pod-uid
  labels: {tektite.dev/managed-by: tektite, tekton.dev/taskRun: build}
spec:
  containers:
    - {name: step-compile, image: golang}
    - {name: step-test, image: golang}
"#,
    );
    pod.status = Some(yaml(status));
    pod
}

fn skipped() -> StepState {
    StepState {
        finished_at: Some(at("2026-11-22T10:00:05.5Z")),
        reason: Some(StepReason::Skipped),
        ..StepState::started(at("2026-11-22T10:00:05.5Z"))
    }
}

fn finished(exit: i32, results: &[(&str, &str)]) -> StepState {
    StepState {
        finished_at: Some(at("2026-11-22T10:00:05.5Z")),
        exit_code: Some(exit),
        reason: Some(if exit == 0 {
            StepReason::Completed
        } else {
            StepReason::Error
        }),
        results: results
            .iter()
            .map(|(n, v)| RecordedResult {
                name: (*n).into(),
                kind: ResultKind::Task,
                value: (*v).into(),
            })
            .collect(),
        ..StepState::started(at("2026-11-22T10:00:01.25Z"))
    }
}

fn condition(body: &Value) -> (String, String) {
    let c = &body["status"]["conditions"][0];
    (
        c["status"].as_str().unwrap_or_default().to_owned(),
        c["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_new_task_run_gets_its_pod_and_is_pending() {
    // The account lists an ssh key for github.com, a registry login, a Secret that does
    // not exist (skipped), a plain one (provides nothing) and the key again (read once).
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": "ci"},
        "secrets": [{"name": "github-auth"}, {"name": "registry"}, {"name": "gone"},
                    {"name": "plain"}, {"name": "github-auth"}]});
    let secret = |name: &str, kind: &str, annotations: Value| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": kind,
               "metadata": {"name": name, "namespace": "ci", "annotations": annotations}})
    };
    let h = harness(
        vec![
            Expect::get(ACCOUNT).reply(200, account),
            Expect::get(&format!("{SECRETS}/github-auth")).reply(
                200,
                secret(
                    "github-auth",
                    "kubernetes.io/ssh-auth",
                    json!({"tekton.dev/git-0": "github.com"}),
                ),
            ),
            Expect::get(&format!("{SECRETS}/registry")).reply(
                200,
                secret("registry", "kubernetes.io/dockerconfigjson", json!({})),
            ),
            Expect::get(&format!("{SECRETS}/gone")).fail(404, "NotFound"),
            Expect::get(&format!("{SECRETS}/plain"))
                .reply(200, secret("plain", "Opaque", json!({}))),
            Expect::post(PODS).body(|pod| {
                assert_eq!(pod["metadata"]["name"], "build-pod");
                assert_eq!(pod["metadata"]["labels"]["tekton.dev/taskRun"], "build");
                assert_eq!(pod["spec"]["initContainers"].as_array().unwrap().len(), 1);
                assert_eq!(pod["spec"]["containers"][1]["name"], "step-test");
                for step in pod["spec"]["containers"].as_array().unwrap() {
                    let args: Vec<&str> = step["args"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    assert!(
                        args.contains(&"--ssh-git=github-auth=github.com"),
                        "{args:?}"
                    );
                    assert!(args.contains(&"--docker-config=registry"), "{args:?}");
                }
                let secrets: Vec<&Value> = pod["spec"]["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|v| {
                        v["secret"]["secretName"]
                            .as_str()
                            .map(|_| &v["secret"]["secretName"])
                    })
                    .collect();
                assert_eq!(secrets, [&json!("github-auth"), &json!("registry")]);
            }),
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(condition(b), ("Unknown".into(), "Pending".into()));
                assert_eq!(b["status"]["podName"], "build-pod");
                assert_eq!(b["status"]["startTime"], "2026-11-22T10:00:10Z");
                assert_eq!(b["status"]["taskSpec"]["steps"][0]["name"], "compile");
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(two_steps()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_pod_that_already_exists_after_a_restart_is_the_same_pod() {
    let h = harness(
        vec![
            Expect::get(ACCOUNT).fail(404, "NotFound"),
            Expect::post(PODS).fail(409, "AlreadyExists"),
            Expect::patch(&format!("{TASKRUNS}/build/status"))
                .body(|b| assert_eq!(b["status"]["podName"], "build-pod")),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(two_steps()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_referenced_task_is_fetched_and_a_missing_one_fails_the_run() {
    let mut tr = two_steps();
    tr.spec.task_spec = None;
    tr.spec.task_ref = Some(yaml("{name: go-build}"));
    let task = json!({"apiVersion": "tekton.dev/v1", "kind": "Task",
        "metadata": {"name": "go-build", "namespace": "ci"},
        "spec": {"steps": [{"name": "compile", "image": "golang", "command": ["go", "build"]}]}});
    let h = harness(
        vec![
            Expect::get("/apis/tekton.dev/v1/namespaces/ci/tasks/go-build").reply(200, task),
            Expect::get(ACCOUNT).fail(404, "NotFound"),
            Expect::post(PODS)
                .body(|pod| assert_eq!(pod["metadata"]["labels"]["tekton.dev/task"], "go-build")),
            Expect::patch(&format!("{TASKRUNS}/build/status")),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(tr.clone()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    let h = harness(
        vec![
            Expect::get("/apis/tekton.dev/v1/namespaces/ci/tasks/go-build").fail(404, "NotFound"),
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(
                    condition(b),
                    ("False".into(), "TaskRunResolutionFailed".into())
                );
                let message = b["status"]["conditions"][0]["message"].as_str().unwrap();
                assert!(message.contains("spec.taskRef.name"), "{message}");
                assert!(b["status"]["completionTime"].is_string());
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(tr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

/// `resolver: cluster`: the Task of the namespace the params name, recorded in
/// status.provenance; a namespace outside the resolver's allowed list fails the run.
#[tokio::test]
async fn the_cluster_resolver_fetches_a_task_of_another_namespace_and_records_where() {
    let mut tr = two_steps();
    tr.spec.task_spec = None;
    tr.spec.task_ref = Some(yaml(
        "{resolver: cluster, params: [{name: kind, value: task}, {name: name, value: go-build}, {name: namespace, value: catalog}]}",
    ));
    let task = json!({"apiVersion": "tekton.dev/v1", "kind": "Task",
        "metadata": {"name": "go-build", "namespace": "catalog", "uid": "task-uid"},
        "spec": {"steps": [{"name": "compile", "image": "golang", "command": ["go", "build"]}]}});
    let h = harness(
        vec![
            Expect::get("/apis/tekton.dev/v1/namespaces/catalog/tasks/go-build").reply(200, task),
            Expect::get(ACCOUNT).fail(404, "NotFound"),
            Expect::post(PODS).body(|pod| {
                assert_eq!(pod["metadata"]["labels"]["tekton.dev/task"], "go-build");
                assert_eq!(pod["spec"]["containers"][0]["name"], "step-compile");
            }),
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                let source = &b["status"]["provenance"]["refSource"];
                assert_eq!(
                    source["uri"],
                    "/apis/tekton.dev/v1/namespaces/catalog/tasks/go-build@task-uid"
                );
                assert_eq!(source["entryPoint"], "go-build");
                assert_eq!(source["digest"]["sha256"].as_str().map(str::len), Some(64));
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(tr.clone()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    // Only `shared` may be read: no request, and the run says why.
    let h = harness(
        vec![Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
            assert_eq!(
                condition(b),
                ("False".into(), "TaskRunResolutionFailed".into())
            );
            assert_eq!(
                b["status"]["conditions"][0]["message"],
                "the cluster resolver may read only namespaces shared (allowed-namespaces), not \"catalog\" (spec.taskRef)"
            );
        })],
        vec![],
        vec![],
        at(NOW),
    );
    h.ctx.resolvers.write().unwrap().cluster =
        tektite_controller::resolve::ClusterConfig::from_config(&std::collections::BTreeMap::from(
            [("allowed-namespaces".to_owned(), "shared".to_owned())],
        ));
    reconcile(Arc::new(tr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

/// A step's StepAction by the cluster resolver: fetched from the namespace its params
/// name and run as one by name is; one that is not there fails the run at its step.
#[tokio::test]
async fn a_step_action_comes_by_the_cluster_resolver() {
    let mut tr = two_steps();
    tr.spec.task_spec = Some(yaml(
        "{steps: [{name: greet, ref: {resolver: cluster, params: [{name: kind, value: stepaction}, {name: name, value: hello}, {name: namespace, value: catalog}]}, params: [{name: who, value: tekton}]}]}",
    ));
    let action = json!({"apiVersion": "tekton.dev/v1beta1", "kind": "StepAction",
        "metadata": {"name": "hello", "namespace": "catalog", "uid": "sa-uid"},
        "spec": {"image": "alpine", "params": [{"name": "who"}],
                 "command": ["echo"], "args": ["hello $(params.who)"]}});
    const ACTION: &str = "/apis/tekton.dev/v1beta1/namespaces/catalog/stepactions/hello";
    let h = harness(
        vec![
            Expect::get(ACTION).reply(200, action),
            Expect::get(ACCOUNT).fail(404, "NotFound"),
            Expect::post(PODS).body(|pod| {
                let step = &pod["spec"]["containers"][0];
                assert_eq!(step["image"], "alpine");
                let args = step["args"].to_string();
                assert!(args.contains("hello tekton"), "{args}");
            }),
            Expect::patch(&format!("{TASKRUNS}/build/status")),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(tr.clone()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    let h = harness(
        vec![
            Expect::get(ACTION).fail(404, "NotFound"),
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(
                    condition(b),
                    ("False".into(), "TaskRunResolutionFailed".into())
                );
                assert_eq!(
                    b["status"]["conditions"][0]["message"],
                    "the cluster resolver found no StepAction \"hello\" in namespace \"catalog\" (spec.steps[0].ref)"
                );
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(tr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_step_action_is_read_from_the_namespace_and_a_missing_one_fails_the_run() {
    let mut tr = two_steps();
    tr.spec.task_spec = Some(yaml(
        "{steps: [{name: greet, ref: {name: hello}, params: [{name: who, value: tekton}]}]}",
    ));
    let action = json!({"apiVersion": "tekton.dev/v1beta1", "kind": "StepAction",
        "metadata": {"name": "hello", "namespace": "ci"},
        "spec": {"image": "alpine", "params": [{"name": "who"}],
                 "command": ["echo"], "args": ["hello $(params.who)"]}});
    const ACTION: &str = "/apis/tekton.dev/v1beta1/namespaces/ci/stepactions/hello";
    let h = harness(
        vec![
            Expect::get(ACTION).reply(200, action),
            Expect::get(ACCOUNT).fail(404, "NotFound"),
            Expect::post(PODS).body(|pod| {
                let step = &pod["spec"]["containers"][0];
                assert_eq!(step["name"], "step-greet");
                assert_eq!(step["image"], "alpine");
                let args: Vec<&str> = step["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                assert_eq!(args[args.len() - 2..], ["echo", "hello tekton"]);
            }),
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                let step = &b["status"]["taskSpec"]["steps"][0];
                assert_eq!(step["image"], "alpine", "status shows the step as it runs");
                assert!(step.get("ref").is_none());
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(tr.clone()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    let h = harness(
        vec![
            Expect::get(ACTION).fail(404, "NotFound"),
            Expect::get(ACCOUNT).fail(404, "NotFound"),
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(
                    condition(b),
                    ("False".into(), "TaskRunResolutionFailed".into())
                );
                let message = b["status"]["conditions"][0]["message"].as_str().unwrap();
                assert_eq!(
                    message,
                    "spec.steps[0].ref.name: StepAction \"hello\" was not found in namespace \"ci\""
                );
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(tr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn agent_events_become_one_status_patch() {
    let h = harness(
        vec![
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                let steps = b["status"]["steps"].as_array().unwrap();
                assert_eq!(steps[0]["terminated"]["exitCode"], 0);
                // Nanoseconds are kept in the fast path's times? Kubernetes times are seconds.
                assert_eq!(steps[0]["terminated"]["finishedAt"], "2026-11-22T10:00:05Z");
                assert!(steps[1]["running"].is_object());
                assert_eq!(condition(b), ("Unknown".into(), "Running".into()));
            }),
        ],
        vec![pod(r#"{phase: Running}"#)],
        vec![],
        at(NOW),
    );
    // A burst: both steps' events arrive before the reconcile runs.
    let steps = &h.ctx.steps;
    steps.apply(
        "pod-uid",
        StepEvent::Started {
            step: 0,
            at: at("2026-11-22T10:00:01Z"),
        },
        at(NOW),
    );
    steps.apply(
        "pod-uid",
        StepEvent::Finished {
            step: 0,
            state: finished(0, &[]),
        },
        at(NOW),
    );
    steps.apply(
        "pod-uid",
        StepEvent::Started {
            step: 1,
            at: at("2026-11-22T10:00:06Z"),
        },
        at(NOW),
    );
    let action = reconcile(Arc::new(running(two_steps())), h.ctx.clone())
        .await
        .unwrap();
    // Requeued for the 1 h default timeout, started at 10:00:00.
    assert!(format!("{action:?}").contains("3590"), "{action:?}");
    h.finish().await;
}

#[tokio::test]
async fn the_last_step_finishing_completes_the_run_with_its_results() {
    let h = harness(
        vec![
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(condition(b), ("True".into(), "Succeeded".into()));
                assert_eq!(b["status"]["results"][0]["name"], "digest");
                assert_eq!(
                    b["status"]["results"][0]["value"].as_str().unwrap().len(),
                    100_000
                );
                assert_eq!(b["status"]["completionTime"], "2026-11-22T10:00:10Z");
            }),
        ],
        vec![pod(r#"{phase: Running}"#)],
        vec![],
        at(NOW),
    );
    let big = "x".repeat(100_000);
    h.ctx.steps.apply(
        "pod-uid",
        StepEvent::Finished {
            step: 0,
            state: finished(0, &[]),
        },
        at(NOW),
    );
    h.ctx.steps.apply(
        "pod-uid",
        StepEvent::Finished {
            step: 1,
            state: finished(0, &[("digest", &big)]),
        },
        at(NOW),
    );
    reconcile(Arc::new(running(two_steps())), h.ctx.clone())
        .await
        .unwrap();
    assert!(
        h.ctx.steps.is_empty(),
        "a finished run's reports are forgotten"
    );
    let metrics = h.ctx.metrics.encode();
    assert!(
        metrics.contains("tekton_pipelines_controller_taskrun_total{status=\"success\"} 1"),
        "{metrics}"
    );
    h.finish().await;
}

#[tokio::test]
async fn without_an_agent_the_pod_status_tells_the_steps_and_results() {
    let message = r#"[{"key":"StartedAt","value":"2026-11-22T10:00:01.000Z","type":3},{"key":"digest","value":"sha256:abc","type":1}]"#;
    let status = format!(
        r#"
phase: Succeeded
containerStatuses:
  - name: step-compile
    ready: false
    restartCount: 0
    image: golang
    imageID: x
    state: {{terminated: {{exitCode: 0, reason: Completed, startedAt: "2026-11-22T10:00:00Z", finishedAt: "2026-11-22T10:00:03Z"}}}}
  - name: step-test
    ready: false
    restartCount: 0
    image: golang
    imageID: x
    state: {{terminated: {{exitCode: 0, reason: Completed, message: '{message}', startedAt: "2026-11-22T10:00:00Z", finishedAt: "2026-11-22T10:00:04Z"}}}}
"#
    );
    let h = harness(
        vec![
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(condition(b), ("True".into(), "Succeeded".into()));
                assert_eq!(b["status"]["results"][0]["value"], "sha256:abc");
                assert_eq!(
                    b["status"]["steps"][1]["terminated"]["startedAt"],
                    "2026-11-22T10:00:01Z"
                );
            }),
        ],
        vec![pod(&status)],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(running(two_steps())), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn an_oom_killed_step_fails_the_run_as_step_oom() {
    let status = r#"
phase: Failed
containerStatuses:
  - name: step-compile
    ready: false
    restartCount: 0
    image: golang
    imageID: x
    state: {terminated: {exitCode: 137, reason: OOMKilled, startedAt: "2026-11-22T10:00:00Z", finishedAt: "2026-11-22T10:00:03Z"}}
  - name: step-test
    ready: false
    restartCount: 0
    image: golang
    imageID: x
    state: {terminated: {exitCode: 0, reason: Completed, message: '[{"key":"Reason","value":"Skipped","type":3}]', startedAt: "2026-11-22T10:00:00Z", finishedAt: "2026-11-22T10:00:04Z"}}
"#;
    let h = harness(
        vec![
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(condition(b), ("False".into(), "StepOOM".into()));
                let message = b["status"]["conditions"][0]["message"].as_str().unwrap();
                assert_eq!(message, r#""step-compile" exited with code 137: OOMKilled"#);
                assert_eq!(b["status"]["steps"][1]["terminationReason"], "Skipped");
            }),
        ],
        vec![pod(status)],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(running(two_steps())), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn an_evicted_pod_fails_the_run_with_the_kubelets_message() {
    let status = r#"{phase: Failed, reason: Evicted, message: "The node was low on resource: ephemeral-storage."}"#;
    let h = harness(
        vec![
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(condition(b), ("False".into(), "PodEvicted".into()));
                let message = b["status"]["conditions"][0]["message"].as_str().unwrap();
                assert!(message.contains("ephemeral-storage"), "{message}");
            }),
        ],
        vec![pod(status)],
        vec![],
        at(NOW),
    );
    h.ctx.steps.apply(
        "pod-uid",
        StepEvent::Started {
            step: 0,
            at: at("2026-11-22T10:00:01Z"),
        },
        at(NOW),
    );
    reconcile(Arc::new(running(two_steps())), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_the_run() {
    let status = r#"
phase: Pending
containerStatuses:
  - name: step-compile
    ready: false
    restartCount: 0
    image: golang
    imageID: ""
    state: {waiting: {reason: ImagePullBackOff, message: "Back-off pulling image golang"}}
"#;
    let h = harness(
        vec![
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(
                    condition(b),
                    ("False".into(), "TaskRunImagePullFailed".into())
                );
                // The cached Pod keeps no step containers: the image comes from the status.
                let message = b["status"]["conditions"][0]["message"].as_str().unwrap();
                assert!(
                    message.contains(r#"failed to pull the image "golang""#),
                    "{message}"
                );
            }),
        ],
        vec![pod(status)],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(running(two_steps())), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_timed_out_run_deletes_its_pod_and_says_so() {
    let mut tr = running(two_steps());
    tr.spec.timeout = Some(yaml("5s"));
    let h = harness(
        vec![
            Expect::delete(&format!("{PODS}/build-pod"))
                .reply(200, json!({"kind": "Status", "status": "Success"})),
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(condition(b), ("False".into(), "TaskRunTimeout".into()));
                assert_eq!(
                    b["status"]["steps"][0]["terminationReason"],
                    "TimeoutExceeded"
                );
            }),
        ],
        vec![pod(r#"{phase: Running}"#)],
        vec![],
        at(NOW),
    );
    h.ctx.steps.apply(
        "pod-uid",
        StepEvent::Started {
            step: 0,
            at: at("2026-11-22T10:00:01Z"),
        },
        at(NOW),
    );
    reconcile(Arc::new(tr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_cancelled_run_deletes_its_pod_and_one_not_started_gets_none() {
    let mut tr = running(two_steps());
    tr.spec.status = Some(tektite_api::v1::TaskRunSpecStatus::TaskRunCancelled);
    let h = harness(
        vec![
            Expect::delete(&format!("{PODS}/build-pod"))
                .reply(200, json!({"kind": "Status", "status": "Success"})),
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(condition(b), ("False".into(), "TaskRunCancelled".into()));
            }),
        ],
        vec![pod(r#"{phase: Running}"#)],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(tr), h.ctx.clone()).await.unwrap();
    h.finish().await;

    let mut fresh = two_steps();
    fresh.spec.status = Some(tektite_api::v1::TaskRunSpecStatus::TaskRunCancelled);
    let h = harness(
        vec![
            Expect::patch(&format!("{TASKRUNS}/build/status"))
                .body(|b| assert_eq!(condition(b), ("False".into(), "TaskRunCancelled".into()))),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(fresh), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_failed_attempt_with_retries_left_goes_to_retries_status() {
    let mut tr = running(two_steps());
    tr.spec.retries = Some(1);
    let h = harness(
        vec![
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(condition(b), ("Unknown".into(), "ToBeRetried".into()));
                let attempts = b["status"]["retriesStatus"].as_array().unwrap();
                assert_eq!(attempts.len(), 1);
                assert_eq!(attempts[0]["conditions"][0]["reason"], "Failed");
                assert_eq!(attempts[0]["podName"], "build-pod");
                // The next attempt starts afresh: its Pod is made by the next reconcile.
                assert_eq!(b["status"]["podName"], "");
            }),
        ],
        vec![pod(r#"{phase: Running}"#)],
        vec![],
        at(NOW),
    );
    h.ctx.steps.apply(
        "pod-uid",
        StepEvent::Finished {
            step: 0,
            state: finished(2, &[]),
        },
        at(NOW),
    );
    h.ctx.steps.apply(
        "pod-uid",
        StepEvent::Finished {
            step: 1,
            state: skipped(),
        },
        at(NOW),
    );
    reconcile(Arc::new(tr.clone()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    // The retry's Pod is `build-pod-retry1`.
    let mut retrying = tr;
    let status = retrying.status.as_mut().unwrap();
    status.retries_status = vec![status.clone()];
    status.pod_name = String::new();
    let h = harness(
        vec![
            Expect::get(ACCOUNT).fail(404, "NotFound"),
            Expect::post(PODS).body(|pod| assert_eq!(pod["metadata"]["name"], "build-pod-retry1")),
            Expect::patch(&format!("{TASKRUNS}/build/status"))
                .body(|b| assert_eq!(b["status"]["podName"], "build-pod-retry1")),
        ],
        vec![pod(r#"{phase: Failed}"#)],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(retrying), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_pod_deleted_under_a_running_run_fails_it() {
    let h = harness(
        vec![
            Expect::get(&format!("{PODS}/build-pod")).fail(404, "NotFound"),
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(condition(b), ("False".into(), "Failed".into()));
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(running(two_steps())), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn runs_managed_by_another_controller_get_no_request() {
    let mut tr = two_steps();
    tr.spec.managed_by = Some("tekton.dev/pipeline".into());
    let h = harness(vec![], vec![], vec![], at(NOW));
    reconcile(Arc::new(tr.clone()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    // With the flag to claim only its own, an unset managedBy is left alone too.
    tr.spec.managed_by = None;
    let settings = Settings {
        claim: Claim::OwnOnly,
        ..Settings::default()
    };
    let h = harness_with(vec![], vec![], vec![], at(NOW), settings);
    reconcile(Arc::new(tr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_sidecar_pod_is_marked_ready_once_its_sidecars_are() {
    let mut tr = two_steps();
    let mut spec = tr.spec.task_spec.take().unwrap();
    spec.sidecars = vec![yaml("{name: db, image: postgres}")];
    tr.spec.task_spec = Some(spec);
    let tr = running(tr);
    let status = r#"
phase: Running
containerStatuses:
  - {name: sidecar-db, ready: true, restartCount: 0, image: postgres, imageID: x, state: {running: {startedAt: "2026-11-22T10:00:02Z"}}}
"#;
    let h = harness(
        vec![
            Expect::patch(&format!("{PODS}/build-pod"))
                .body(|b| assert_eq!(b["metadata"]["annotations"]["tekton.dev/ready"], "READY")),
            Expect::patch(&format!("{TASKRUNS}/build/status")),
        ],
        vec![pod(status)],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(tr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

/// A taskRef to a resolver tektite does not have built in: the TaskRun asks it through a
/// ResolutionRequest and waits, Unknown with Tekton's `ResolvingTaskRef`, not ended, and
/// is looked at again shortly.
#[tokio::test]
async fn a_third_party_resolver_leaves_the_run_waiting_for_its_answer() {
    let mut tr = two_steps();
    tr.spec.task_spec = None;
    tr.spec.task_ref = Some(yaml(
        "{resolver: acme, params: [{name: task, value: lint}]}",
    ));
    let params = serde_json::to_string(&tr.spec.task_ref.as_ref().unwrap().params).unwrap();
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("ci/build/{params}").as_bytes(),
    );
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let requests = "/apis/resolution.tekton.dev/v1beta1/namespaces/ci/resolutionrequests";
    let h = harness(
        vec![
            Expect::get(&format!("{requests}/acme-{}", &hex[..32])).fail(404, "NotFound"),
            Expect::post(requests).body(|b| {
                assert_eq!(b["metadata"]["ownerReferences"][0]["kind"], "TaskRun");
                assert_eq!(b["metadata"]["ownerReferences"][0]["controller"], true);
            }),
            Expect::patch(&format!("{TASKRUNS}/build/status")).body(|b| {
                assert_eq!(condition(b), ("Unknown".into(), "ResolvingTaskRef".into()));
                let message = b["status"]["conditions"][0]["message"].as_str().unwrap();
                assert!(
                    message.contains("waiting for resolver \"acme\"")
                        && message.ends_with("(spec.taskRef)"),
                    "{message}"
                );
                assert!(b["status"].get("completionTime").is_none(), "{b}");
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    let action = reconcile(Arc::new(tr), h.ctx.clone()).await.unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(tektite_controller::resolve::WAITING_POLL)
    );
    h.finish().await;
}
