//! Events reach the API as events.k8s.io/v1 Events about the run, from the queue the
//! reconcilers fill, against a mocked API server that checks each request.

mod common;

use common::{Expect, at, harness};
use kube::runtime::events::{EventType, Recorder, Reporter};
use tektite_controller::events::{Queued, publish};

#[tokio::test]
async fn a_queued_event_is_published_about_its_run() {
    let h = harness(
        vec![
            Expect::post("/apis/events.k8s.io/v1/namespaces/ci/events").body(|e| {
                assert_eq!(e["type"], "Warning");
                assert_eq!(e["reason"], "Failed");
                assert_eq!(e["note"], "\"step-a\" exited with code 1");
                assert_eq!(e["regarding"]["kind"], "TaskRun");
                assert_eq!(e["regarding"]["name"], "build-run");
                assert_eq!(e["reportingController"], "tektite-controller");
                assert_eq!(e["reportingInstance"], "tektite-controller-0");
            }),
        ],
        vec![],
        vec![],
        at("2026-11-22T10:00:00Z"),
    );
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let reporter = Reporter {
        controller: "tektite-controller".into(),
        instance: Some("tektite-controller-0".into()),
    };
    let recorder = Recorder::new(h.ctx.client.clone(), reporter);
    let published = tokio::spawn(publish(rx, recorder));
    tx.send(Queued {
        reference: k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("tekton.dev/v1".into()),
            kind: Some("TaskRun".into()),
            name: Some("build-run".into()),
            namespace: Some("ci".into()),
            uid: Some("tr-uid".into()),
            ..Default::default()
        },
        type_: EventType::Warning,
        reason: "Failed".into(),
        note: Some("\"step-a\" exited with code 1".into()),
    })
    .await
    .unwrap();
    drop(tx);
    published.await.unwrap();
    h.finish().await;
}
