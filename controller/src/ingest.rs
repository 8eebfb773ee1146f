//! The agents' gRPC stream: authenticate the agent, take in its step events, acknowledge
//! them. An event counts only for a Pod of this controller's cache that runs on the
//! agent's node; it then wakes the TaskRun that owns the Pod. Reports for other pods
//! change no TaskRun (they are counted as `unowned` or `foreign_node`).

use std::pin::Pin;
use std::sync::Arc;

use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use tektite_api::step::{RecordedResult, ResultKind, StepReason, StepState};
use tektite_api::v1::TaskRun;
use tektite_proto::agent::{self as pb, agent_server::Agent as AgentService};
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{AuthError, Reviewer};
use crate::context::Context;
use crate::metrics::OutcomeLabel;
use crate::steps::StepEvent;

type Acks = Pin<Box<dyn Stream<Item = Result<pb::ControllerMessage, Status>> + Send>>;

pub struct Ingest {
    ctx: Arc<Context>,
    reviewer: Reviewer,
    /// Turns true when the controller stops: every agent's stream is then ended, so
    /// that the server's graceful shutdown (which waits for open streams) can finish.
    stopping: watch::Receiver<bool>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("reviewer", &self.reviewer)
            .finish()
    }
}

impl Ingest {
    pub fn new(ctx: Arc<Context>, reviewer: Reviewer, stopping: watch::Receiver<bool>) -> Self {
        Self {
            ctx,
            reviewer,
            stopping,
        }
    }

    /// The gRPC service to serve.
    pub fn service(self) -> pb::agent_server::AgentServer<Self> {
        // Results of up to the configured limit travel in one event.
        pb::agent_server::AgentServer::new(self).max_decoding_message_size(8 * 1024 * 1024)
    }
}

fn time(t: Option<prost_types::Timestamp>) -> Option<Timestamp> {
    let t = t?;
    Timestamp::new(t.seconds, t.nanos).ok()
}

/// An event as the store takes it, with its pod's UID.
fn from_wire(e: pb::Event, now: Timestamp) -> Option<(String, StepEvent)> {
    Some(match e.kind? {
        pb::event::Kind::StepStarted(s) => (
            s.pod_uid,
            StepEvent::Started {
                step: s.step_index as usize,
                at: time(s.started_at).unwrap_or(now),
            },
        ),
        pb::event::Kind::StepFinished(f) => {
            let reason: Option<StepReason> =
                serde_json::from_value(serde_json::Value::String(f.reason)).ok();
            let started = time(f.started_at).unwrap_or(now);
            let state = StepState {
                finished_at: Some(time(f.finished_at).unwrap_or(now)),
                exit_code: f.exit_code,
                reason: Some(reason.unwrap_or(StepReason::Error)),
                message: (!f.message.is_empty()).then_some(f.message),
                results: f
                    .results
                    .into_iter()
                    .filter_map(|r| {
                        let kind = match pb::ResultKind::try_from(r.kind) {
                            Ok(pb::ResultKind::Task) => ResultKind::Task,
                            Ok(pb::ResultKind::Step) => ResultKind::Step,
                            Ok(pb::ResultKind::StepArtifacts) => ResultKind::StepArtifacts,
                            Ok(pb::ResultKind::TaskArtifacts) => ResultKind::TaskArtifacts,
                            Err(_) => {
                                tracing::warn!(kind = r.kind, result = %r.name, "an agent sent a result of a kind this controller does not know; it is left out");
                                return None;
                            }
                        };
                        Some(RecordedResult {
                            name: r.name,
                            kind,
                            value: r.value,
                        })
                    })
                    .collect(),
                ..StepState::started(started)
            };
            (
                f.pod_uid,
                StepEvent::Finished {
                    step: f.step_index as usize,
                    state,
                },
            )
        }
        pb::event::Kind::StepUnreadable(u) => (
            u.pod_uid,
            StepEvent::Unreadable {
                step: u.step_index as usize,
                error: u.error,
                at: now,
            },
        ),
        // The Pod watch tells the reconciler of deleted Pods.
        pb::event::Kind::PodGone(_) => return None,
    })
}

/// The TaskRun that owns the Pod with `uid`, if the Pod is one of ours on `node`.
fn owner_of(ctx: &Context, uid: &str, node: &str) -> Result<ObjectRef<TaskRun>, &'static str> {
    let index = ctx.pod_index.read();
    let pod = index.get(uid).ok_or("unowned")?;
    if pod.node.as_deref() != Some(node) {
        return Err("foreign_node");
    }
    let owner = pod.task_run.as_deref().ok_or("unowned")?;
    Ok(ObjectRef::new(owner).within(&pod.namespace))
}

/// Takes in one event from the agent on `node`.
pub async fn take(ctx: &Context, node: &str, e: pb::Event) {
    let now = ctx.now();
    if let Some(pb::event::Kind::StepFinished(f)) = &e.kind
        && let Some(end) = time(f.finished_at)
    {
        ctx.metrics
            .agent_event_lag
            .observe(now.duration_since(end).as_secs_f64().max(0.0));
    }
    if let Some(pb::event::Kind::PodGone(g)) = &e.kind {
        ctx.agents.pod_gone(node, &g.pod_uid);
    }
    let Some((uid, event)) = from_wire(e, now) else {
        return;
    };
    let outcome = match owner_of(ctx, &uid, node) {
        Ok(task_run) => {
            let (step, starts) = match &event {
                StepEvent::Started { step, .. } => (*step, true),
                StepEvent::Finished { step, .. } | StepEvent::Unreadable { step, .. } => {
                    (*step, false)
                }
            };
            if ctx.steps.apply(&uid, event, now) {
                // What runs where, for the scheduler extender.
                if starts {
                    ctx.agents.step_started(node, &uid, step);
                } else {
                    ctx.agents.step_ended(node, &uid, step);
                }
                // A full queue means a reconcile is pending anyway.
                let _ = ctx.wake.try_send(task_run);
                "applied"
            } else {
                "duplicate"
            }
        }
        Err(why) => {
            if why == "unowned" {
                // Kept a while: the Pod cache may not have the Pod yet.
                ctx.steps.apply(&uid, event, now);
            }
            why
        }
    };
    ctx.metrics
        .agent_events
        .get_or_create(&OutcomeLabel {
            outcome: outcome.into(),
        })
        .inc();
}

fn ack(up_to_seq: u64) -> pb::ControllerMessage {
    pb::ControllerMessage {
        body: Some(pb::controller_message::Body::Ack(pb::Ack { up_to_seq })),
    }
}

#[tonic::async_trait]
impl AgentService for Ingest {
    type ReportStream = Acks;

    async fn report(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Acks>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let agent = self
            .reviewer
            .review(authorization.as_deref())
            .await
            .map_err(|e| match e {
                AuthError::Review(_) => Status::unavailable(e.to_string()),
                AuthError::WrongAccount(..) => Status::permission_denied(e.to_string()),
                _ => Status::unauthenticated(e.to_string()),
            })?;
        let mut inbound = request.into_inner();
        let hello = match inbound.next().await {
            Some(Ok(pb::AgentMessage {
                body: Some(pb::agent_message::Body::Hello(h)),
            })) => h,
            _ => return Err(Status::invalid_argument("the first message must be Hello")),
        };
        if let Some(node) = &agent.node
            && *node != hello.node_name
        {
            return Err(Status::permission_denied(format!(
                "the agent's token is for node {node:?}, its Hello says {:?}",
                hello.node_name
            )));
        }
        let node = hello.node_name;
        tracing::info!(%node, run = %hello.agent_run_id, "an agent connected");
        let (tx, rx) = mpsc::channel(64);
        let ctx = self.ctx.clone();
        ctx.metrics.connected_agents.inc();
        ctx.agents.connect(&node);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    m = inbound.next() => m,
                    Ok(()) = async { stopping.wait_for(|s| *s).await.map(drop) } => {
                        // The agent resends what was not acknowledged, to whoever leads next.
                        let _ = tx.send(Err(Status::unavailable("the controller is stopping; reconnect"))).await;
                        break;
                    }
                };
                let Some(message) = message else { break };
                let body = match message {
                    Ok(m) => m.body,
                    Err(error) => {
                        tracing::info!(%node, %error, "an agent's stream broke");
                        break;
                    }
                };
                if let Some(pb::agent_message::Body::Event(e)) = body {
                    let seq = e.seq;
                    take(&ctx, &node, e).await;
                    if tx.send(Ok(ack(seq))).await.is_err() {
                        break;
                    }
                }
            }
            ctx.metrics.connected_agents.dec();
            ctx.agents.disconnect(&node, ctx.now());
            tracing::info!(%node, "an agent disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
