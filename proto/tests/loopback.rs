//! The generated client and server talk over a real gRPC stream on loopback: events go
//! up, cumulative acknowledgements come back, and a 1 MiB result fits in one event.

use std::pin::Pin;

use tektite_proto::agent as pb;
use tektite_proto::agent::agent_client::AgentClient;
use tektite_proto::agent::agent_server::{Agent, AgentServer};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Acknowledges every event as it arrives; refuses streams without a bearer token.
struct Acker;

type Acks = Pin<Box<dyn Stream<Item = Result<pb::ControllerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for Acker {
    type ReportStream = Acks;

    async fn report(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Acks>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if token.is_none_or(|t| !t.starts_with("Bearer ")) {
            return Err(Status::unauthenticated("no ServiceAccount token"));
        }
        let acks = request.into_inner().filter_map(|m| match m {
            Ok(pb::AgentMessage {
                body: Some(pb::agent_message::Body::Event(e)),
            }) => Some(Ok(pb::ControllerMessage {
                body: Some(pb::controller_message::Body::Ack(pb::Ack {
                    up_to_seq: e.seq,
                })),
            })),
            _ => None,
        });
        Ok(Response::new(Box::pin(acks)))
    }
}

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServer::new(Acker))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

fn event(seq: u64, value_len: usize) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Event(pb::Event {
            seq,
            kind: Some(pb::event::Kind::StepFinished(pb::StepFinished {
                pod_uid: "uid".into(),
                step_index: seq as u32,
                results: vec![pb::Result {
                    name: "big".into(),
                    kind: pb::ResultKind::Task as i32,
                    value: "x".repeat(value_len),
                }],
                ..Default::default()
            })),
        })),
    }
}

#[tokio::test]
async fn events_go_up_and_acknowledgements_come_back() {
    let addr = serve().await;
    let mut client = AgentClient::connect(addr).await.unwrap();
    let hello = pb::AgentMessage {
        body: Some(pb::agent_message::Body::Hello(pb::Hello {
            node_name: "node-1".into(),
            ..Default::default()
        })),
    };
    let outgoing = tokio_stream::iter(vec![
        hello,
        event(1, 10),
        event(2, 1024 * 1024),
        event(3, 0),
    ]);
    let mut request = Request::new(outgoing);
    request
        .metadata_mut()
        .insert("authorization", "Bearer test-token".parse().unwrap());
    let mut acks = client.report(request).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(m) = acks.next().await {
        if let Some(pb::controller_message::Body::Ack(a)) = m.unwrap().body {
            got.push(a.up_to_seq);
        }
    }
    assert_eq!(got, [1, 2, 3]);
}

#[tokio::test]
async fn a_stream_without_a_token_is_refused() {
    let addr = serve().await;
    let mut client = AgentClient::connect(addr).await.unwrap();
    let status = client
        .report(Request::new(tokio_stream::iter(vec![event(1, 1)])))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}
