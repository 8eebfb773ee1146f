//! The PipelineRun reconciler against a mocked API server that checks every request.

mod common;

use std::sync::Arc;

use common::{Expect, at, harness, harness_custom, harness_pipelines, yaml};
use serde_json::{Value, json};
use tektite_api::v1::{PipelineRun, TaskRun};
use tektite_api::v1beta1::CustomRun;
use tektite_controller::pipelinerun::reconcile;

const NOW: &str = "2026-11-22T10:00:10Z";
const RUNS: &str = "/apis/tekton.dev/v1/namespaces/ci/pipelineruns";
const TASKRUNS: &str = "/apis/tekton.dev/v1/namespaces/ci/taskruns";
const CUSTOMRUNS: &str = "/apis/tekton.dev/v1beta1/namespaces/ci/customruns";

fn run() -> PipelineRun {
    yaml(
        r#"
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: ship
  namespace: ci
  uid: pr-uid
  labels: {team: a}
spec:
  params:
    - {name: flavour, value: mint}
  workspaces:
    - name: source
      volumeClaimTemplate:
        spec:
          accessModes: [ReadWriteOnce]
          resources: {requests: {storage: 1Gi}}
  pipelineSpec:
    params:
      - name: flavour
    workspaces:
      - name: source
    tasks:
      - name: build
        taskRef: {name: go-build}
        params:
          - {name: flavour, value: $(params.flavour)}
        workspaces:
          - {name: src, workspace: source}
      - name: test
        runAfter: [build]
        taskSpec:
          results: [{name: report}]
          steps: [{name: t, image: golang, command: [go, test]}]
    finally:
      - name: notify
        taskSpec:
          steps: [{name: note, image: alpine, command: ["true"]}]
    results:
      - {name: report, value: $(tasks.test.results.report)}
"#,
    )
}

/// A TaskRun of `ship` for `task`, as the cache holds it.
fn child(task: &str, status: &str, reason: &str, results: Value) -> TaskRun {
    let mut tr: TaskRun = yaml(&format!(
        r#"
metadata:
  name: ship-{task}
  namespace: ci
  labels: {{tekton.dev/pipelineRun: ship, tekton.dev/pipelineTask: {task}}}
  ownerReferences:
    - {{apiVersion: tekton.dev/v1, kind: PipelineRun, name: ship, uid: pr-uid, controller: true}}
"#
    ));
    tr.status = Some(
        serde_json::from_value(json!({
            "podName": format!("ship-{task}-pod"),
            "conditions": [{"type": "Succeeded", "status": status, "reason": reason}],
            "results": results,
        }))
        .unwrap(),
    );
    tr
}

fn condition(body: &Value) -> (String, String) {
    let c = &body["status"]["conditions"][0];
    (
        c["status"].as_str().unwrap_or_default().to_owned(),
        c["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_new_run_creates_its_claim_and_first_task_run_with_tektons_names_and_labels() {
    let h = harness(
        vec![
            Expect::post("/api/v1/namespaces/ci/persistentvolumeclaims").body(|claim| {
                assert!(
                    claim["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .starts_with("pvc-")
                );
                assert_eq!(claim["metadata"]["ownerReferences"][0]["uid"], "pr-uid");
            }),
            Expect::post(TASKRUNS).body(|tr| {
                assert_eq!(tr["metadata"]["name"], "ship-build");
                let labels = &tr["metadata"]["labels"];
                assert_eq!(labels["tekton.dev/pipelineRun"], "ship");
                assert_eq!(labels["tekton.dev/pipelineRunUID"], "pr-uid");
                assert_eq!(labels["tekton.dev/pipelineTask"], "build");
                assert_eq!(labels["tekton.dev/memberOf"], "tasks");
                assert_eq!(labels["tekton.dev/task"], "go-build");
                assert_eq!(labels["team"], "a");
                assert_eq!(tr["metadata"]["ownerReferences"][0]["kind"], "PipelineRun");
                assert_eq!(tr["spec"]["params"][0]["value"], "mint");
                let ws = &tr["spec"]["workspaces"][0];
                assert_eq!(ws["name"], "src");
                assert!(
                    ws["persistentVolumeClaim"]["claimName"]
                        .as_str()
                        .unwrap()
                        .starts_with("pvc-")
                );
                assert!(ws.get("volumeClaimTemplate").is_none());
                assert_eq!(tr["spec"]["timeout"], "1h0m0s");
            }),
            Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
                assert_eq!(condition(b), ("Unknown".into(), "Running".into()));
                let refs = b["status"]["childReferences"].as_array().unwrap();
                assert_eq!(refs.len(), 1);
                assert_eq!(refs[0]["name"], "ship-build");
                assert_eq!(refs[0]["pipelineTaskName"], "build");
                assert_eq!(b["status"]["pipelineSpec"]["tasks"][0]["name"], "build");
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(run()), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn after_a_restart_already_existing_children_are_success() {
    let h = harness(
        vec![
            Expect::post("/api/v1/namespaces/ci/persistentvolumeclaims").fail(409, "AlreadyExists"),
            Expect::post(TASKRUNS).fail(409, "AlreadyExists"),
            Expect::patch(&format!("{RUNS}/ship/status"))
                .body(|b| assert_eq!(b["status"]["childReferences"][0]["name"], "ship-build")),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(run()), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn when_the_tasks_are_done_finally_runs_and_then_the_run_succeeds_with_results() {
    let done = vec![
        child("build", "True", "Succeeded", json!([])),
        child(
            "test",
            "True",
            "Succeeded",
            json!([{"name": "report", "value": "all green"}]),
        ),
    ];
    let h = harness(
        vec![
            Expect::post(TASKRUNS).body(|tr| {
                assert_eq!(tr["metadata"]["name"], "ship-notify");
                assert_eq!(tr["metadata"]["labels"]["tekton.dev/memberOf"], "finally");
            }),
            Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
                assert_eq!(condition(b), ("Unknown".into(), "Running".into()));
                assert_eq!(b["status"]["finallyStartTime"], "2026-11-22T10:00:10Z");
                assert_eq!(b["status"]["childReferences"].as_array().unwrap().len(), 3);
            }),
        ],
        vec![],
        done.clone(),
        at(NOW),
    );
    reconcile(Arc::new(run()), h.ctx.clone()).await.unwrap();
    h.finish().await;

    let mut all = done;
    all.push(child("notify", "True", "Succeeded", json!([])));
    let h = harness(
        vec![Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
            assert_eq!(condition(b), ("True".into(), "Succeeded".into()));
            assert_eq!(
                b["status"]["results"][0],
                json!({"name": "report", "value": "all green"})
            );
            assert!(b["status"]["completionTime"].is_string());
        })],
        vec![],
        all,
        at(NOW),
    );
    reconcile(Arc::new(run()), h.ctx.clone()).await.unwrap();
    let metrics = h.ctx.metrics.encode();
    assert!(
        metrics.contains("tekton_pipelines_controller_pipelinerun_total{status=\"success\"} 1"),
        "{metrics}"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_failed_task_skips_its_dependents_and_fails_the_run_after_finally() {
    let kids = vec![
        child("build", "False", "Failed", json!([])),
        child("notify", "True", "Succeeded", json!([])),
    ];
    let mut h = harness(
        vec![Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
            assert_eq!(condition(b), ("False".into(), "Failed".into()));
            assert_eq!(b["status"]["skippedTasks"][0]["name"], "test");
        })],
        vec![],
        kids,
        at(NOW),
    );
    reconcile(Arc::new(run()), h.ctx.clone()).await.unwrap();
    // A run seen first as finished: its one event says how it ended, as Tekton's does.
    let events = h.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("Warning", "Failed")
    );
    assert!(
        events[0]
            .2
            .as_deref()
            .unwrap_or_default()
            .contains("Tasks Completed"),
        "{events:?}"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_timed_out_run_cancels_its_running_task_runs_and_waits_for_them() {
    let mut pr = run();
    pr.spec.timeouts = Some(yaml("{pipeline: 5s}"));
    pr.status = Some(yaml(r#"{startTime: "2026-11-22T10:00:00Z"}"#));
    let h = harness(
        vec![
            Expect::patch(&format!("{TASKRUNS}/ship-build")).body(|b| {
                assert_eq!(b["spec"]["status"], "TaskRunCancelled");
                assert!(
                    b["spec"]["statusMessage"]
                        .as_str()
                        .unwrap()
                        .contains("timed out")
                );
            }),
            Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
                assert_eq!(
                    condition(b),
                    ("Unknown".into(), "PipelineRunStopping".into())
                )
            }),
        ],
        vec![],
        vec![child("build", "Unknown", "Running", json!([]))],
        at(NOW),
    );
    reconcile(Arc::new(pr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_cancelled_run_cancels_its_task_runs() {
    let mut pr = run();
    pr.spec.status = Some(tektite_api::v1::PipelineRunSpecStatus::Cancelled);
    let h = harness(
        vec![
            Expect::patch(&format!("{TASKRUNS}/ship-build"))
                .body(|b| assert_eq!(b["spec"]["status"], "TaskRunCancelled")),
            Expect::patch(&format!("{RUNS}/ship/status")),
        ],
        vec![],
        vec![child("build", "Unknown", "Running", json!([]))],
        at(NOW),
    );
    reconcile(Arc::new(pr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_matrix_fans_out_into_numbered_task_runs() {
    let pr: PipelineRun = yaml(
        r#"
metadata: {name: m, namespace: ci, uid: u}
spec:
  pipelineSpec:
    tasks:
      - name: build
        matrix:
          params:
            - {name: os, value: [linux, mac]}
        taskSpec:
          params: [{name: os}]
          steps: [{name: s, image: alpine, command: [echo, $(params.os)]}]
"#,
    );
    let h = harness(
        vec![
            Expect::post(TASKRUNS).body(|tr| {
                assert_eq!(tr["metadata"]["name"], "m-build-0");
                assert_eq!(
                    tr["spec"]["params"][0],
                    json!({"name": "os", "value": "linux"})
                );
            }),
            Expect::post(TASKRUNS).body(|tr| assert_eq!(tr["metadata"]["name"], "m-build-1")),
            Expect::patch("/apis/tekton.dev/v1/namespaces/ci/pipelineruns/m/status"),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(pr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_missing_pipeline_fails_the_run_and_another_controllers_run_gets_no_request() {
    let mut pr = run();
    pr.spec.pipeline_spec = None;
    pr.spec.pipeline_ref = Some(yaml("{name: nowhere}"));
    let h = harness(
        vec![
            Expect::get("/apis/tekton.dev/v1/namespaces/ci/pipelines/nowhere")
                .fail(404, "NotFound"),
            Expect::patch(&format!("{RUNS}/ship/status"))
                .body(|b| assert_eq!(condition(b), ("False".into(), "CouldntGetPipeline".into()))),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(pr.clone()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    pr.spec.managed_by = Some("tekton.dev/pipeline".into());
    let h = harness(vec![], vec![], vec![], at(NOW));
    reconcile(Arc::new(pr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

/// The seed's custom tasks: one referenced by apiVersion and kind, one embedded, and a
/// Task reading the first one's result.
fn custom_run() -> PipelineRun {
    yaml(
        r#"
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: ship
  namespace: ci
  uid: pr-uid
spec:
  params:
    - {name: duration, value: 10s}
  taskRunTemplate:
    serviceAccountName: builder
  pipelineSpec:
    params:
      - name: duration
    tasks:
      - name: wait
        taskRef:
          apiVersion: wait.testing.tekton.dev/v1beta1
          kind: Wait
        params:
          - {name: duration, value: $(params.duration)}
        retries: 2
        timeout: 1m
      - name: example
        taskSpec:
          apiVersion: example.dev/v1alpha1
          kind: Example
          metadata:
            labels: {tier: custom}
          spec:
            field1: value1
      - name: report
        runAfter: [wait, example]
        params:
          - {name: waited, value: $(tasks.wait.results.waited)}
        taskSpec:
          params: [{name: waited}]
          steps: [{name: say, image: alpine, command: [echo, $(params.waited)]}]
"#,
    )
}

/// A CustomRun of `ship` for `task`, as the cache holds it; `status` None for one no
/// controller has taken up yet.
fn custom_child(task: &str, status: Option<(&str, &str)>, results: Value) -> CustomRun {
    let mut cr: CustomRun = yaml(&format!(
        r#"
metadata:
  name: ship-{task}
  namespace: ci
  labels: {{tekton.dev/pipelineRun: ship, tekton.dev/pipelineTask: {task}}}
  ownerReferences:
    - {{apiVersion: tekton.dev/v1, kind: PipelineRun, name: ship, uid: pr-uid, controller: true}}
spec:
  customRef: {{apiVersion: wait.testing.tekton.dev/v1beta1, kind: Wait}}
"#
    ));
    if let Some((status, reason)) = status {
        cr.status = Some(
            serde_json::from_value(json!({
                "conditions": [{"type": "Succeeded", "status": status, "reason": reason}],
                "startTime": "2026-11-22T10:00:01Z",
                "results": results,
            }))
            .unwrap(),
        );
    }
    cr
}

#[tokio::test]
async fn custom_tasks_become_custom_runs_with_their_ref_or_spec_params_and_owner() {
    let h = harness_custom(
        vec![
            Expect::post(CUSTOMRUNS).body(|cr| {
                assert_eq!(cr["apiVersion"], "tekton.dev/v1beta1");
                assert_eq!(cr["kind"], "CustomRun");
                assert_eq!(cr["metadata"]["name"], "ship-wait");
                let labels = &cr["metadata"]["labels"];
                assert_eq!(labels["tekton.dev/pipelineRun"], "ship");
                assert_eq!(labels["tekton.dev/pipelineRunUID"], "pr-uid");
                assert_eq!(labels["tekton.dev/pipelineTask"], "wait");
                assert_eq!(labels["tekton.dev/memberOf"], "tasks");
                assert!(labels.get("tekton.dev/task").is_none());
                assert_eq!(cr["metadata"]["ownerReferences"][0]["uid"], "pr-uid");
                assert_eq!(
                    cr["spec"],
                    json!({
                        "customRef": {"apiVersion": "wait.testing.tekton.dev/v1beta1", "kind": "Wait"},
                        "params": [{"name": "duration", "value": "10s"}],
                        "retries": 2,
                        "serviceAccountName": "builder",
                        "timeout": "1m0s",
                    })
                );
            }),
            Expect::post(CUSTOMRUNS).body(|cr| {
                assert_eq!(cr["metadata"]["name"], "ship-example");
                assert_eq!(
                    cr["spec"]["customSpec"],
                    json!({
                        "apiVersion": "example.dev/v1alpha1",
                        "kind": "Example",
                        "metadata": {"labels": {"tier": "custom"}},
                        "spec": {"field1": "value1"},
                    })
                );
                assert!(cr["spec"].get("customRef").is_none());
            }),
            Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
                assert_eq!(condition(b), ("Unknown".into(), "Running".into()));
                let refs = &b["status"]["childReferences"];
                assert_eq!(refs[0]["kind"], "CustomRun");
                assert_eq!(refs[0]["apiVersion"], "tekton.dev/v1beta1");
                assert_eq!(refs[0]["name"], "ship-wait");
                assert_eq!(refs[1]["name"], "ship-example");
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(custom_run()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_custom_runs_result_feeds_the_next_task_once_its_controller_reports() {
    // Not reported yet: nothing starts; the one write records the resolved pipelineSpec.
    let waiting = vec![
        custom_child("wait", None, json!([])),
        custom_child("example", Some(("Unknown", "Running")), json!([])),
    ];
    let mut pr = custom_run();
    pr.status = Some(yaml(
        r#"
startTime: "2026-11-22T10:00:00Z"
conditions: [{type: Succeeded, status: Unknown, reason: Running, lastTransitionTime: "2026-11-22T10:00:00Z"}]
childReferences:
  - {apiVersion: tekton.dev/v1beta1, kind: CustomRun, name: ship-wait, pipelineTaskName: wait}
  - {apiVersion: tekton.dev/v1beta1, kind: CustomRun, name: ship-example, pipelineTaskName: example}
"#,
    ));
    let pr = Arc::new(pr);
    let h = harness_custom(
        vec![Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
            assert_eq!(condition(b), ("Unknown".into(), "Running".into()));
            assert!(b["status"]["pipelineSpec"].is_object());
        })],
        vec![],
        waiting,
        at(NOW),
    );
    reconcile(pr.clone(), h.ctx.clone()).await.unwrap();
    h.finish().await;

    let done = vec![
        custom_child(
            "wait",
            Some(("True", "Succeeded")),
            json!([{"name": "waited", "value": "10s"}]),
        ),
        custom_child("example", Some(("True", "Succeeded")), json!([])),
    ];
    let h = harness_custom(
        vec![
            Expect::post(TASKRUNS).body(|tr| {
                assert_eq!(tr["metadata"]["name"], "ship-report");
                assert_eq!(
                    tr["spec"]["params"][0],
                    json!({"name": "waited", "value": "10s"})
                );
            }),
            Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
                let kinds: Vec<_> = b["status"]["childReferences"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["kind"].as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(kinds, ["CustomRun", "CustomRun", "TaskRun"]);
            }),
        ],
        vec![],
        done,
        at(NOW),
    );
    reconcile(pr, h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_failed_custom_run_fails_the_run_with_its_reason() {
    let h = harness_custom(
        vec![Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
            assert_eq!(condition(b), ("False".into(), "Failed".into()));
            let skipped = &b["status"]["skippedTasks"];
            assert_eq!(skipped[0]["name"], "report");
        })],
        vec![],
        vec![
            custom_child("wait", Some(("False", "CustomRunTimedOut")), json!([])),
            custom_child("example", Some(("True", "Succeeded")), json!([])),
        ],
        at(NOW),
    );
    reconcile(Arc::new(custom_run()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_cancelled_run_cancels_its_custom_runs_and_one_nobody_took_up_counts_as_stopped() {
    let mut pr = custom_run();
    pr.spec.status = Some(tektite_api::v1::PipelineRunSpecStatus::Cancelled);
    let h = harness_custom(
        vec![
            Expect::patch(&format!("{CUSTOMRUNS}/ship-example"))
                .body(|b| assert_eq!(b["spec"]["status"], "RunCancelled")),
            Expect::patch(&format!("{CUSTOMRUNS}/ship-wait")).body(|b| {
                assert_eq!(
                    b["spec"],
                    json!({"status": "RunCancelled", "statusMessage": "CustomRun cancelled as the PipelineRun it belongs to has been cancelled."})
                );
            }),
            Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
                assert_eq!(
                    condition(b),
                    ("Unknown".into(), "PipelineRunStopping".into())
                )
            }),
        ],
        vec![],
        vec![
            custom_child("wait", Some(("Unknown", "Running")), json!([])),
            custom_child("example", None, json!([])),
        ],
        at(NOW),
    );
    reconcile(Arc::new(pr.clone()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    // The Wait controller reports the cancel; the untaken one was asked: both stopped.
    let mut wait = custom_child("wait", Some(("False", "CustomRunCancelled")), json!([]));
    let mut example = custom_child("example", None, json!([]));
    for c in [&mut wait, &mut example] {
        c.spec.status = Some(tektite_api::v1beta1::CustomRunSpecStatus::RunCancelled);
    }
    let h = harness_custom(
        vec![Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
            assert_eq!(condition(b), ("False".into(), "Cancelled".into()));
            assert!(b["status"]["completionTime"].is_string());
        })],
        vec![],
        vec![wait, example],
        at(NOW),
    );
    reconcile(Arc::new(pr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

/// Pipelines in Pipelines: a task that runs the Pipeline `scans` (by reference), then a
/// task after it.
fn parent_run() -> PipelineRun {
    yaml(
        r#"
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: ship
  namespace: ci
  uid: pr-uid
spec:
  params:
    - {name: repo, value: https://example.com/r.git}
  workspaces:
    - {name: source, emptyDir: {}}
  pipelineSpec:
    params: [{name: repo}]
    workspaces: [{name: source}]
    tasks:
      - name: scans
        pipelineRef: {name: security-scans}
        params:
          - {name: repo, value: $(params.repo)}
        workspaces:
          - {name: src, workspace: source}
      - name: notify
        runAfter: [scans]
        taskSpec:
          steps: [{name: note, image: alpine, command: ["true"]}]
"#,
    )
}

/// The child PipelineRun of `ship`'s `scans` task as the cache holds it, with its
/// `Succeeded` condition.
fn child_run(status: &str, reason: &str) -> PipelineRun {
    let mut child: PipelineRun = yaml(
        r#"
metadata:
  name: ship-scans
  namespace: ci
  uid: child-uid
  labels:
    tekton.dev/pipeline: security-scans
    tekton.dev/pipelineRun: ship
    tekton.dev/pipelineTask: scans
  ownerReferences:
    - {apiVersion: tekton.dev/v1, kind: PipelineRun, name: ship, uid: pr-uid, controller: true}
spec:
  pipelineRef: {name: security-scans}
"#,
    );
    child.status = Some(
        serde_json::from_value(json!({
            "conditions": [{"type": "Succeeded", "status": status, "reason": reason}],
            "startTime": "2026-11-22T10:00:01Z",
        }))
        .unwrap(),
    );
    child
}

#[tokio::test]
async fn a_task_that_runs_a_pipeline_creates_a_child_pipeline_run_and_the_next_task_waits_for_it() {
    let h = harness_pipelines(
        vec![
            Expect::post(RUNS).body(|pr| {
                assert_eq!(pr["kind"], "PipelineRun");
                assert_eq!(pr["metadata"]["name"], "ship-scans");
                let labels = &pr["metadata"]["labels"];
                assert_eq!(labels["tekton.dev/pipeline"], "security-scans");
                assert_eq!(labels["tekton.dev/pipelineRun"], "ship");
                assert_eq!(labels["tekton.dev/pipelineTask"], "scans");
                assert_eq!(pr["metadata"]["ownerReferences"][0]["uid"], "pr-uid");
                assert_eq!(
                    pr["spec"],
                    json!({
                        "pipelineRef": {"name": "security-scans"},
                        "params": [{"name": "repo", "value": "https://example.com/r.git"}],
                        "timeouts": {"pipeline": "1h0m0s"},
                        "workspaces": [{"name": "src", "emptyDir": {}}],
                    })
                );
            }),
            Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
                assert_eq!(condition(b), ("Unknown".into(), "Running".into()));
                let refs = &b["status"]["childReferences"];
                assert_eq!(
                    refs[0],
                    json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "name": "ship-scans", "pipelineTaskName": "scans"})
                );
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(parent_run()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    // Running: nothing else starts.
    let h = harness_pipelines(
        vec![
            Expect::patch(&format!("{RUNS}/ship/status"))
                .body(|b| assert_eq!(condition(b), ("Unknown".into(), "Running".into()))),
        ],
        vec![],
        vec![child_run("Unknown", "Running")],
        at(NOW),
    );
    reconcile(Arc::new(parent_run()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    // Succeeded: the next task starts.
    let h = harness_pipelines(
        vec![
            Expect::post(TASKRUNS).body(|tr| assert_eq!(tr["metadata"]["name"], "ship-notify")),
            Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
                let kinds: Vec<_> = b["status"]["childReferences"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["kind"].as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(kinds, ["PipelineRun", "TaskRun"]);
            }),
        ],
        vec![],
        vec![child_run("True", "Succeeded")],
        at(NOW),
    );
    reconcile(Arc::new(parent_run()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    // Failed: the run fails, the next task skipped.
    let h = harness_pipelines(
        vec![Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
            assert_eq!(condition(b), ("False".into(), "Failed".into()));
            assert_eq!(b["status"]["skippedTasks"][0]["name"], "notify");
        })],
        vec![],
        vec![child_run("False", "Failed")],
        at(NOW),
    );
    reconcile(Arc::new(parent_run()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_cancelled_run_cancels_its_child_pipeline_run() {
    let mut pr = parent_run();
    pr.spec.status = Some(tektite_api::v1::PipelineRunSpecStatus::Cancelled);
    let h = harness_pipelines(
        vec![
            Expect::patch(&format!("{RUNS}/ship-scans"))
                .body(|b| assert_eq!(b, &json!({"spec": {"status": "Cancelled"}}))),
            Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
                assert_eq!(
                    condition(b),
                    ("Unknown".into(), "PipelineRunStopping".into())
                )
            }),
        ],
        vec![],
        vec![child_run("Unknown", "Running")],
        at(NOW),
    );
    reconcile(Arc::new(pr.clone()), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;

    let mut stopped = child_run("False", "Cancelled");
    stopped.spec.status = Some(tektite_api::v1::PipelineRunSpecStatus::Cancelled);
    let h = harness_pipelines(
        vec![
            Expect::patch(&format!("{RUNS}/ship/status"))
                .body(|b| assert_eq!(condition(b), ("False".into(), "Cancelled".into()))),
        ],
        vec![],
        vec![stopped],
        at(NOW),
    );
    reconcile(Arc::new(pr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_child_pipeline_run_that_would_run_a_pipeline_above_it_fails_naming_the_chain() {
    // `ship` runs Pipeline `release`; its child runs `security-scans`, whose own child
    // (this one) would run `release` again.
    let mut top: PipelineRun = yaml(
        r#"
metadata: {name: ship, namespace: ci, uid: pr-uid}
spec:
  pipelineRef: {name: release}
"#,
    );
    top.status = None;
    let middle = child_run("Unknown", "Running");
    let grandchild: PipelineRun = yaml(
        r#"
metadata:
  name: ship-scans-again
  namespace: ci
  uid: gc-uid
  labels: {tekton.dev/pipeline: release}
  ownerReferences:
    - {apiVersion: tekton.dev/v1, kind: PipelineRun, name: ship-scans, uid: child-uid, controller: true}
spec:
  pipelineRef: {name: release}
"#,
    );
    let h = harness_pipelines(
        vec![
            Expect::patch(&format!("{RUNS}/ship-scans-again/status")).body(|b| {
                assert_eq!(
                    condition(b),
                    ("False".into(), "PipelineValidationFailed".into())
                );
                assert_eq!(
                    b["status"]["conditions"][0]["message"],
                    "Pipeline \"release\" would run itself: release → security-scans → release; a Pipeline cannot be its own child (spec.pipelineRef.name)"
                );
            }),
        ],
        vec![],
        vec![top, middle, grandchild.clone()],
        at(NOW),
    );
    reconcile(Arc::new(grandchild), h.ctx.clone())
        .await
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn the_cluster_resolver_fetches_a_pipeline_of_another_namespace() {
    let pr: PipelineRun = yaml(
        r#"
metadata: {name: ship, namespace: ci, uid: pr-uid}
spec:
  pipelineRef:
    resolver: cluster
    params:
      - {name: kind, value: pipeline}
      - {name: name, value: release}
      - {name: namespace, value: catalog}
"#,
    );
    let pipeline = json!({"apiVersion": "tekton.dev/v1", "kind": "Pipeline",
        "metadata": {"name": "release", "namespace": "catalog", "uid": "p-uid"},
        "spec": {"tasks": [{"name": "build", "taskSpec": {"steps": [{"name": "s", "image": "alpine", "command": ["true"]}]}}]}});
    let h = harness_pipelines(
        vec![
            Expect::get("/apis/tekton.dev/v1/namespaces/catalog/pipelines/release")
                .reply(200, pipeline),
            Expect::post(TASKRUNS).body(|tr| {
                assert_eq!(tr["metadata"]["name"], "ship-build");
                assert_eq!(tr["metadata"]["labels"]["tekton.dev/pipeline"], "release");
            }),
            Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
                assert_eq!(
                    b["status"]["provenance"]["refSource"]["uri"],
                    "/apis/tekton.dev/v1/namespaces/catalog/pipelines/release@p-uid"
                );
                assert!(b["status"]["pipelineSpec"]["tasks"].is_array());
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    reconcile(Arc::new(pr), h.ctx.clone()).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_child_pipeline_run_whose_resolved_pipeline_is_above_it_fails_too() {
    let top: PipelineRun = yaml(
        r#"
metadata: {name: ship, namespace: ci, uid: pr-uid, labels: {tekton.dev/pipeline: release}}
spec:
  pipelineRef: {name: release}
"#,
    );
    let child: PipelineRun = yaml(
        r#"
metadata:
  name: ship-again
  namespace: ci
  uid: c-uid
  ownerReferences:
    - {apiVersion: tekton.dev/v1, kind: PipelineRun, name: ship, uid: pr-uid, controller: true}
spec:
  pipelineRef:
    resolver: cluster
    params: [{name: name, value: release}, {name: namespace, value: catalog}]
"#,
    );
    let pipeline = json!({"apiVersion": "tekton.dev/v1", "kind": "Pipeline",
        "metadata": {"name": "release", "namespace": "catalog", "uid": "p-uid"},
        "spec": {"tasks": [{"name": "a", "taskRef": {"name": "t"}}]}});
    let h = harness_pipelines(
        vec![
            Expect::get("/apis/tekton.dev/v1/namespaces/catalog/pipelines/release")
                .reply(200, pipeline),
            Expect::patch(&format!("{RUNS}/ship-again/status")).body(|b| {
                assert_eq!(
                    condition(b),
                    ("False".into(), "PipelineValidationFailed".into())
                );
                let message = b["status"]["conditions"][0]["message"].as_str().unwrap();
                assert!(
                    message.contains("would run itself: release → release"),
                    "{message}"
                );
            }),
        ],
        vec![],
        vec![top, child.clone()],
        at(NOW),
    );
    reconcile(Arc::new(child), h.ctx.clone()).await.unwrap();
    h.finish().await;
}
