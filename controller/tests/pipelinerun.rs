//! The PipelineRun reconciler against a mocked API server that checks every request.

mod common;

use std::sync::Arc;

use common::{Expect, at, harness, yaml};
use serde_json::{Value, json};
use tektite_api::v1::{PipelineRun, TaskRun};
use tektite_controller::pipelinerun::reconcile;

const NOW: &str = "2026-11-22T10:00:10Z";
const RUNS: &str = "/apis/tekton.dev/v1/namespaces/ci/pipelineruns";
const TASKRUNS: &str = "/apis/tekton.dev/v1/namespaces/ci/taskruns";

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
    let h = harness(
        vec![Expect::patch(&format!("{RUNS}/ship/status")).body(|b| {
            assert_eq!(condition(b), ("False".into(), "Failed".into()));
            assert_eq!(b["status"]["skippedTasks"][0]["name"], "test");
        })],
        vec![],
        kids,
        at(NOW),
    );
    reconcile(Arc::new(run()), h.ctx.clone()).await.unwrap();
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
