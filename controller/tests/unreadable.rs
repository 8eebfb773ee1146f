//! Runs tektite cannot decode, as the watches set them aside: each one tektite owns is
//! marked failed with the field that could not be read (one status patch, checked), and
//! other controllers' runs, finished runs and CustomRuns are only logged and counted.

mod common;

use common::{Expect, at, harness};
use serde_json::{Value, json};
use tektite_api::v1::{PipelineRun, TaskRun};
use tektite_controller::lenient::{Lenient, Undecodable, mark_undecodable};
use tokio::sync::mpsc;

/// Decodes `object` as the controller's watch does.
fn unreadable<K>(object: Value) -> Undecodable
where
    K: serde::de::DeserializeOwned + k8s_openapi::Resource,
{
    match serde_json::from_value::<Lenient<K>>(object).unwrap() {
        Lenient::Undecodable(u) => *u,
        Lenient::Decoded(_) => panic!("the test's object decoded"),
    }
}

fn run(kind: &str, name: &str, extra: Value) -> Value {
    let mut v = json!({
        "apiVersion": "tekton.dev/v1", "kind": kind,
        "metadata": {"name": name, "namespace": "ci", "uid": format!("uid-{name}")},
        "spec": {"timeouts": {"pipeline": 7}, "timeout": 7},
    });
    if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
        for (k, e) in extra {
            v.insert(k, e);
        }
    }
    v
}

#[tokio::test]
async fn unreadable_runs_tektite_owns_are_marked_failed_naming_the_field() {
    let patch = Expect::patch("/apis/tekton.dev/v1/namespaces/ci/pipelineruns/bad/status").body(|b| {
        let c = &b["status"]["conditions"][0];
        assert_eq!(c["type"], "Succeeded");
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "PipelineValidationFailed");
        let message = c["message"].as_str().unwrap();
        assert!(
            message.starts_with("tektite cannot read this PipelineRun: spec.timeouts.pipeline: invalid type: integer `7`"),
            "{message}"
        );
        assert_eq!(b["status"]["completionTime"], "2026-11-22T10:00:00Z");
    });
    let tr_patch =
        Expect::patch("/apis/tekton.dev/v1/namespaces/ci/taskruns/bad-tr/status").body(|b| {
            assert_eq!(
                b["status"]["conditions"][0]["reason"],
                "TaskRunValidationFailed"
            )
        });
    let h = harness(
        vec![patch, tr_patch],
        vec![],
        vec![],
        at("2026-11-22T10:00:00Z"),
    );

    let (pr_tx, pr_rx) = mpsc::channel(8);
    let (tr_tx, tr_rx) = mpsc::channel(8);
    pr_tx
        .send(unreadable::<PipelineRun>(run(
            "PipelineRun",
            "bad",
            json!({}),
        )))
        .await
        .unwrap();
    // Tekton's run (managedBy): not tektite's to mark.
    let mut tektons = run("PipelineRun", "tektons", json!({}));
    tektons["spec"]["managedBy"] = json!("tekton.dev/pipeline");
    pr_tx
        .send(unreadable::<PipelineRun>(tektons))
        .await
        .unwrap();
    // Already finished (or already marked): nothing to write.
    let done = run(
        "PipelineRun",
        "done",
        json!({"status": {"conditions": [{"type": "Succeeded", "status": "False", "message": "x"}]}}),
    );
    pr_tx.send(unreadable::<PipelineRun>(done)).await.unwrap();
    tr_tx
        .send(unreadable::<TaskRun>(run("TaskRun", "bad-tr", json!({}))))
        .await
        .unwrap();
    drop((pr_tx, tr_tx));

    let ctx = h.ctx.clone();
    // The PipelineRuns first, then the TaskRun: the mocked server checks the order.
    mark_undecodable::<PipelineRun>(ctx.clone(), pr_rx).await;
    mark_undecodable::<TaskRun>(ctx.clone(), tr_rx).await;
    let text = ctx.metrics.encode();
    assert!(
        text.contains("tektite_controller_undecodable_objects_total{kind=\"PipelineRun\"} 3"),
        "{text}"
    );
    assert!(text.contains("tektite_controller_undecodable_objects_total{kind=\"TaskRun\"} 1"));
    drop(ctx);
    h.finish().await;
}
