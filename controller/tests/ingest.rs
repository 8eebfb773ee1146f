//! The agents' gRPC ingest over real gRPC on loopback, with TokenReview answered by the
//! mocked API server: unauthenticated calls and the wrong ServiceAccount are refused,
//! events for the controller's own Pods wake their TaskRun, forged reports for Pods it
//! does not own (or on another node) change nothing.

mod common;

use std::time::Duration;

use common::{Expect, Harness, IngestServer, at, harness, serve_ingest, yaml};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tektite_proto::agent as pb;
use tektite_proto::agent::agent_client::AgentClient;
use tokio_stream::StreamExt;
use tonic::Code;

const REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const AGENT: &str = "system:serviceaccount:tektite-system:tektite-node-agent";

fn review(user: &str, node: &str) -> Expect {
    Expect::post(REVIEWS)
        .body(|r| {
            assert_eq!(r["spec"]["token"], "secret-token");
            assert_eq!(r["spec"]["audiences"][0], "tektite-controller");
        })
        .reply(
            201,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                   "spec": {}, "status": {"authenticated": true, "audiences": ["tektite-controller"],
                   "user": {"username": user, "extra": {"authentication.kubernetes.io/node-name": [node]}}}}),
        )
}

fn our_pod() -> Pod {
    yaml(
        r#"
metadata:
  name: build-pod
  namespace: ci
  uid: pod-uid
  ownerReferences:
    - {apiVersion: tekton.dev/v1, kind: TaskRun, name: build, uid: tr-uid, controller: true}
spec:
  nodeName: node-a
  containers: [{name: step-s, image: alpine}]
"#,
    )
}

struct Server {
    addr: String,
    inner: IngestServer,
}

async fn serve(h: &Harness) -> Server {
    let inner = serve_ingest(h, None).await;
    Server {
        addr: format!("http://127.0.0.1:{}", inner.port),
        inner,
    }
}

impl Server {
    async fn stop(self) {
        self.inner.stop().await;
    }
}

fn hello(node: &str) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Hello(pb::Hello {
            node_name: node.into(),
            agent_version: "test".into(),
            boot_id: "boot".into(),
            agent_run_id: "run-1".into(),
        })),
    }
}

fn started(seq: u64, pod_uid: &str) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Event(pb::Event {
            seq,
            kind: Some(pb::event::Kind::StepStarted(pb::StepStarted {
                pod_uid: pod_uid.into(),
                step_index: 0,
                step_name: "s".into(),
                started_at: Some(prost_types::Timestamp {
                    seconds: 1_800_000_000,
                    nanos: 5,
                }),
            })),
        })),
    }
}

type Outbound = tokio::sync::mpsc::Sender<pb::AgentMessage>;

/// Opens a Report stream with `token` and sends `messages`; the stream stays open while
/// the returned sender lives, as an agent's does.
async fn open(
    addr: &str,
    token: Option<&str>,
    messages: Vec<pb::AgentMessage>,
) -> Result<(Outbound, tonic::Streaming<pb::ControllerMessage>), tonic::Status> {
    let mut client = AgentClient::connect(addr.to_owned()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for m in messages {
        tx.send(m).await.unwrap();
    }
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    Ok((tx, client.report(request).await?.into_inner()))
}

/// Opens a Report stream with `token`, sends `messages`, returns the acks (or the error).
async fn report(
    addr: &str,
    token: Option<&str>,
    messages: Vec<pb::AgentMessage>,
    acks: usize,
) -> Result<Vec<u64>, tonic::Status> {
    // The stream stays open until the acks are in; then it ends, as an agent's would.
    let (tx, mut stream) = open(addr, token, messages).await?;
    let mut out = Vec::new();
    while out.len() < acks {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an ack came");
        match next {
            Some(Ok(pb::ControllerMessage {
                body: Some(pb::controller_message::Body::Ack(a)),
            })) => out.push(a.up_to_seq),
            other => panic!("unexpected: {other:?}"),
        }
    }
    drop(tx);
    // The server ends the stream once ours has ended.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await {}
    Ok(out)
}

#[tokio::test]
async fn calls_without_a_token_are_refused_before_any_review() {
    let h = harness(vec![], vec![], vec![], at("2026-11-22T10:00:00Z"));
    let server = serve(&h).await;
    let err = report(&server.addr, None, vec![hello("node-a")], 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    server.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn tokens_the_api_server_rejects_and_other_accounts_are_refused() {
    let rejected = Expect::post(REVIEWS).reply(
        201,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {},
               "status": {"authenticated": false, "error": "token expired"}}),
    );
    let h = harness(
        vec![
            rejected,
            review("system:serviceaccount:default:intruder", "node-a"),
        ],
        vec![],
        vec![],
        at("2026-11-22T10:00:00Z"),
    );
    let server = serve(&h).await;
    let err = report(&server.addr, Some("secret-token"), vec![hello("node-a")], 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("token expired"), "{}", err.message());
    let err = report(&server.addr, Some("secret-token"), vec![hello("node-a")], 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    server.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn an_agent_claiming_another_nodes_name_is_refused() {
    let h = harness(
        vec![review(AGENT, "node-a")],
        vec![],
        vec![],
        at("2026-11-22T10:00:00Z"),
    );
    let server = serve(&h).await;
    let err = report(&server.addr, Some("secret-token"), vec![hello("node-b")], 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    server.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn events_for_own_pods_wake_their_task_run_and_forged_ones_change_nothing() {
    let mut h = harness(
        vec![review(AGENT, "node-a")],
        vec![our_pod()],
        vec![],
        at("2026-11-22T10:00:00Z"),
    );
    let server = serve(&h).await;
    let acks = report(
        &server.addr,
        Some("secret-token"),
        vec![
            hello("node-a"),
            started(1, "pod-uid"),
            // The same event again (a resend after a reconnect): acknowledged, harmless.
            started(2, "pod-uid"),
            // A pod this controller does not own.
            started(3, "someone-elses-pod"),
        ],
        3,
    )
    .await
    .unwrap();
    assert_eq!(acks, vec![1, 2, 3]);
    let woken = h.woken.try_recv().expect("the TaskRun was woken");
    assert_eq!(
        (woken.name.as_str(), woken.namespace.as_deref()),
        ("build", Some("ci"))
    );
    assert!(h.woken.try_recv().is_err(), "the duplicate woke nothing");
    assert_eq!(
        h.ctx.steps.steps("pod-uid")[&0]
            .started_at
            .subsec_nanosecond(),
        5
    );
    let metrics = h.ctx.metrics.encode();
    for line in [
        "tektite_controller_agent_events_total{outcome=\"applied\"} 1",
        "tektite_controller_agent_events_total{outcome=\"duplicate\"} 1",
        "tektite_controller_agent_events_total{outcome=\"unowned\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    // The scheduler extender's registry: the node is known (its stream just ended, within
    // the grace period) and one step runs there; neither the duplicate nor the forged
    // report counted.
    let agents = h.ctx.agents.view(at("2026-11-22T10:00:01Z"));
    assert!(agents.listening("node-a"));
    assert_eq!(agents.running("node-a"), 1);
    drop(agents);
    assert!(
        !h.ctx
            .agents
            .view(at("2026-11-22T10:01:00Z"))
            .listening("node-a")
    );
    server.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn a_report_for_a_pod_on_another_node_is_ignored() {
    let h = harness(
        vec![review(AGENT, "node-b")],
        vec![our_pod()],
        vec![],
        at("2026-11-22T10:00:00Z"),
    );
    let server = serve(&h).await;
    let acks = report(
        &server.addr,
        Some("secret-token"),
        vec![hello("node-b"), started(1, "pod-uid")],
        1,
    )
    .await
    .unwrap();
    assert_eq!(acks, vec![1]);
    assert!(h.ctx.steps.steps("pod-uid").is_empty());
    assert_eq!(
        h.ctx
            .agents
            .view(at("2026-11-22T10:00:00Z"))
            .running("node-b"),
        0
    );
    assert!(
        h.ctx
            .metrics
            .encode()
            .contains("outcome=\"foreign_node\"} 1")
    );
    server.stop().await;
    h.finish().await;
}

#[tokio::test]
async fn stopping_ends_an_open_agent_stream_so_the_server_can_stop() {
    let h = harness(
        vec![review(AGENT, "node-a")],
        vec![],
        vec![],
        at("2026-11-22T10:00:00Z"),
    );
    let server = serve(&h).await;
    let (tx, mut stream) = open(&server.addr, Some("secret-token"), vec![hello("node-a")])
        .await
        .unwrap();
    // Connected: the agent registry has it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !h.ctx.agents.view(h.ctx.now()).listening("node-a") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never connected"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The agent keeps its side open (`tx` lives on), as a real one does; stopping must
    // not wait for it.
    server.stop().await;
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ended");
    match ended {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    drop(tx);
    h.finish().await;
}
