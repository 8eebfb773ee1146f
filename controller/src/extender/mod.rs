//! The kube-scheduler HTTP extender: places tektite's step Pods on nodes where an agent
//! listens and where their PipelineRun's workspace lives, and prefers nodes with fewer
//! unfinished Pods. The first Pod of a run (or of a single-node claim) is answered with
//! the one node chosen for the whole group, held until the Pod watch shows it bound
//! ([`holds`]), so the next Pod's filter sees it however far the watch is behind. It
//! answers from the controller's caches and agent registry only: no API request on the
//! request path.
//!
//! The scheduler POSTs [`wire::ExtenderArgs`] to `/scheduler/filter` and
//! `/scheduler/prioritize`. A malformed request is answered in the scheduler's format
//! (an `ExtenderFilterResult` whose `Error` says what is wrong), never with a panic.

mod decide;
pub mod holds;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::net::TcpListener;

pub use decide::{Coschedule, NO_AGENT};
use wire::{ExtenderArgs, ExtenderFilterResult, FailedNodesMap, HostPriority, NodeList};

use crate::agents::Agents;
use crate::context::Clock;
use crate::metrics::{Metrics, VerbLabel};
use crate::pod_index::PodIndex;

/// The path prefix the scheduler's `urlPrefix` ends in.
pub const PREFIX: &str = "/scheduler";
/// Larger requests are refused (5,000 full Node objects fit).
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Filter,
    Prioritize,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Filter => "filter",
            Verb::Prioritize => "prioritize",
        }
    }
}

/// What the extender reads: all of it kept current by the controller's watches and the
/// agents' streams.
pub struct Extender {
    pub mode: Coschedule,
    /// tektite's Pods.
    pub index: Arc<PodIndex>,
    /// Claims, for their access modes; a claim not cached counts as single-node.
    pub claims: Option<Store<PersistentVolumeClaim>>,
    pub agents: Arc<Agents>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// The nodes chosen for Pods not yet seen bound.
    holds: holds::Holds,
    /// One filter at a time: a group's first Pod is held before its sibling is filtered.
    filtering: std::sync::Mutex<()>,
    warned_no_agents: AtomicBool,
}

impl std::fmt::Debug for Extender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extender")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// A claim usable from one node only: ReadWriteOnce(Pod), or not known.
fn node_bound(claims: Option<&Store<PersistentVolumeClaim>>, ns: &str, name: &str) -> bool {
    let Some(claim) = claims.and_then(|c| c.get(&ObjectRef::new(name).within(ns))) else {
        return true;
    };
    let modes = claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default();
    modes.is_empty()
        || !modes
            .iter()
            .all(|m| m == "ReadWriteMany" || m == "ReadOnlyMany")
}

/// An answer: status and JSON body.
pub type Answer = (StatusCode, Vec<u8>);

fn error(status: StatusCode, message: String) -> Answer {
    let body = ExtenderFilterResult {
        error: &message,
        ..ExtenderFilterResult::default()
    };
    (
        status,
        serde_json::to_vec(&body).expect("a filter result serializes"),
    )
}

impl Extender {
    pub fn new(
        mode: Coschedule,
        index: Arc<PodIndex>,
        claims: Option<Store<PersistentVolumeClaim>>,
        agents: Arc<Agents>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        Self {
            mode,
            index,
            claims,
            agents,
            metrics,
            clock,
            holds: holds::Holds::default(),
            filtering: std::sync::Mutex::new(()),
            warned_no_agents: AtomicBool::new(false),
        }
    }

    /// Answers one request body for `verb`.
    pub fn answer(&self, verb: Verb, body: &[u8]) -> Answer {
        let started = Instant::now();
        let answer = self.decide(verb, body);
        let label = VerbLabel {
            verb: verb.name().into(),
        };
        self.metrics
            .extender_duration
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
        if let Err((_, message)) = &answer {
            self.metrics.extender_errors.get_or_create(&label).inc();
            tracing::warn!(verb = verb.name(), %message, "a scheduler request was malformed");
        }
        answer.unwrap_or_else(|(status, message)| match (verb, status) {
            // The scheduler reads a filter's Error only from a 200 answer.
            (Verb::Filter, StatusCode::BAD_REQUEST) => error(StatusCode::OK, message),
            _ => error(status, message),
        })
    }

    fn decide(&self, verb: Verb, body: &[u8]) -> Result<Answer, (StatusCode, String)> {
        let args: ExtenderArgs = serde_json::from_slice(body).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("the request is not extender v1 ExtenderArgs: {e}"),
            )
        })?;
        let pod = args
            .pod
            .ok_or((StatusCode::BAD_REQUEST, "the request has no Pod".to_owned()))?;
        let nodes: Vec<&str> = match (&args.node_names, &args.nodes) {
            (Some(names), _) => names.iter().map(String::as_str).collect(),
            (None, Some(list)) => list.names(),
            (None, None) => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "the request has neither NodeNames nor Nodes".to_owned(),
                ));
            }
        };
        let _one_at_a_time = (verb == Verb::Filter)
            .then(|| self.filtering.lock().unwrap_or_else(|e| e.into_inner()));
        let now = self.clock.now();
        let index = self.index.read();
        let held = self.holds.live(&index, now);
        let placement = decide::place(self.mode, &pod, &index, &held, |ns, claim| {
            node_bound(self.claims.as_ref(), ns, claim)
        });
        let agents = self.agents.view(now);
        let json = match verb {
            Verb::Filter => {
                let filtered = decide::filter(&placement, &index, &held, &agents, &nodes);
                drop((agents, index));
                if let Some(node) = filtered.chosen {
                    self.holds
                        .hold(crate::pod_index::Placed::of(&pod), node, now);
                }
                if filtered.no_agents && !self.warned_no_agents.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "no node has a tektite agent connected: Pods are placed without regard \
                         to agents, and their step state comes from Pod status"
                    );
                }
                let pick = |i: usize| filtered.keep[i];
                let result = ExtenderFilterResult {
                    node_names: args.node_names.as_ref().map(|_| {
                        (nodes.iter().enumerate())
                            .filter(|(i, _)| pick(*i))
                            .map(|(_, n)| *n)
                            .collect()
                    }),
                    nodes: match (&args.node_names, &args.nodes) {
                        (None, Some(list)) => Some(NodeList {
                            metadata: list.metadata.clone(),
                            items: (list.items.iter().enumerate())
                                .filter(|(i, _)| pick(*i))
                                .map(|(_, n)| n.clone())
                                .collect(),
                        }),
                        _ => None,
                    },
                    failed_and_unresolvable_nodes: FailedNodesMap(
                        (filtered.failed.iter())
                            .map(|(node, why)| (*node, why.as_ref()))
                            .collect(),
                    ),
                    ..ExtenderFilterResult::default()
                };
                serde_json::to_vec(&result)
            }
            Verb::Prioritize => {
                let scores = decide::prioritize(&placement, &index, &held, &agents, &nodes);
                drop((agents, index));
                let list: Vec<HostPriority> = nodes
                    .iter()
                    .zip(scores)
                    .map(|(host, score)| HostPriority { host, score })
                    .collect();
                serde_json::to_vec(&list)
            }
        }
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok((StatusCode::OK, json))
    }
}

async fn respond(extender: &Extender, request: Request<Incoming>) -> Answer {
    let verb = match request.uri().path().strip_prefix(PREFIX) {
        Some("/filter") => Verb::Filter,
        Some("/prioritize") => Verb::Prioritize,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("not found: the verbs are {PREFIX}/filter and {PREFIX}/prioritize"),
            );
        }
    };
    if request.method() != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the scheduler's verbs take POST".into(),
        );
    }
    match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => extender.answer(verb, &body.to_bytes()),
        Err(e) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body could not be read whole (at most {MAX_BODY} bytes): {e}"),
        ),
    }
}

/// Serves the scheduler until the process ends.
pub async fn serve(listener: TcpListener, extender: Arc<Extender>) {
    crate::http::serve_http1(listener, "extender", move |request| {
        let extender = extender.clone();
        async move {
            let (status, body) = respond(&extender, request).await;
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .expect("a JSON response is valid")
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;
    use serde_json::json;

    use super::*;

    #[test]
    fn only_claims_many_nodes_can_mount_are_shared() {
        let mut writer = Writer::<PersistentVolumeClaim>::default();
        for (name, modes) in [
            ("rwo", json!(["ReadWriteOnce"])),
            ("rwop", json!(["ReadWriteOncePod"])),
            ("rwx", json!(["ReadWriteMany"])),
            ("rox", json!(["ReadOnlyMany", "ReadWriteMany"])),
            ("none", json!([])),
        ] {
            let claim = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ci"},
                "spec": {"accessModes": modes},
            }))
            .unwrap();
            writer.apply_watcher_event(&watcher::Event::Apply(claim));
        }
        let claims = writer.as_reader();
        let bound = |name: &str| node_bound(Some(&claims), "ci", name);
        assert!(bound("rwo"));
        assert!(bound("rwop"));
        assert!(!bound("rwx"));
        assert!(!bound("rox"));
        assert!(bound("none"));
        // Not cached (yet), or no cache at all: assume the worst.
        assert!(bound("unknown"));
        assert!(node_bound(None, "ci", "rwx"));
    }
}
