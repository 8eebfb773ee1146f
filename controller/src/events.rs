//! Kubernetes Events on TaskRuns and PipelineRuns, as Tekton emits them, so that
//! `kubectl describe` and event-based alerting work: `Started` when a run first gets its
//! `Succeeded` condition, then the condition's reason whenever it changes while unknown
//! (`Running`, `PipelineRunStopping`, ...), `Succeeded` (Normal) or `Failed` (Warning) with
//! its message at the end, and `Error` (Warning) for a reconcile that failed.
//!
//! The reconcilers never wait on the API for an event: they queue it, and one task
//! publishes the queue at most [`PER_SECOND`] a second (kube's recorder folds repeats into
//! a series), so a busy controller does not flood etcd. A full queue drops the event,
//! counted in `tektite_controller_events_dropped_total` and logged once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use tektite_api::v1::Condition;
use tokio::sync::mpsc;

/// Events published per second, at most.
pub const PER_SECOND: u32 = 50;
/// Events waiting to be published, at most.
const QUEUE: usize = 4096;

/// One event for one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Queued {
    pub reference: ObjectReference,
    pub type_: EventType,
    pub reason: String,
    pub note: Option<String>,
}

#[derive(Debug)]
pub struct Events {
    tx: mpsc::Sender<Queued>,
    dropped: Counter,
    warned: AtomicBool,
}

impl Events {
    /// The queue and its receiving end (for [`publish`], or a test).
    pub fn new(dropped: Counter) -> (Events, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Events {
                tx,
                dropped,
                warned: AtomicBool::new(false),
            },
            rx,
        )
    }

    fn queue<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: Option<String>,
    ) {
        let mut reference = object.object_ref(&());
        // The recorder keys its series by the reference: the same object, whatever its
        // version.
        reference.resource_version = None;
        let queued = Queued {
            reference,
            type_,
            reason: reason.to_owned(),
            note: note.filter(|n| !n.is_empty()),
        };
        if self.tx.try_send(queued).is_err() {
            self.dropped.inc();
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(run = %object.name_any(), "the event queue is full: events are dropped (tektite_controller_events_dropped_total counts them)");
            }
        }
    }

    /// What a status write changed of the run's `Succeeded` condition, as Tekton reports it.
    pub fn transition<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        before: &[Condition],
        after: &[Condition],
    ) {
        let succeeded = |c: &[Condition]| c.iter().find(|c| c.type_ == "Succeeded").cloned();
        let (before, Some(after)) = (succeeded(before), succeeded(after)) else {
            return;
        };
        let same = before.as_ref().is_some_and(|b| {
            (&b.status, &b.reason, &b.message) == (&after.status, &after.reason, &after.message)
        });
        if same {
            return;
        }
        let reason = after.reason.clone().unwrap_or_default();
        match after.status.as_str() {
            "True" => self.queue(object, EventType::Normal, "Succeeded", after.message),
            "False" => self.queue(object, EventType::Warning, "Failed", after.message),
            _ if before.is_none() => self.queue(object, EventType::Normal, "Started", None),
            _ => self.queue(object, EventType::Normal, &reason, after.message),
        }
    }

    /// A reconcile of `object` failed with `error`.
    pub fn error<K: Resource<DynamicType = ()>>(&self, object: &K, error: &dyn std::fmt::Display) {
        self.queue(object, EventType::Warning, "Error", Some(error.to_string()));
    }
}

/// Publishes the queue through `recorder`, at most [`PER_SECOND`] a second, until every
/// sender is gone.
pub async fn publish(mut rx: mpsc::Receiver<Queued>, recorder: Recorder) {
    let mut pace = tokio::time::interval(Duration::from_secs(1) / PER_SECOND);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while let Some(q) = rx.recv().await {
        pace.tick().await;
        // At most 1 kB of note, as the API requires.
        let note = q.note.map(|n| match n.char_indices().nth(1000) {
            Some((cut, _)) => format!("{}…", &n[..cut]),
            None => n,
        });
        let event = Event {
            type_: q.type_,
            reason: q.reason,
            note,
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &q.reference).await {
            tracing::warn!(%error, run = ?q.reference.name, reason = %event.reason, "publishing an event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tektite_api::v1::TaskRun;

    fn run() -> TaskRun {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "t", "namespace": "ci", "uid": "u", "resourceVersion": "3"},
            "spec": {"taskRef": {"name": "x"}},
        }))
        .unwrap()
    }

    fn c(status: &str, reason: &str, message: &str) -> Vec<Condition> {
        vec![Condition::succeeded(status, reason, message)]
    }

    fn drain(rx: &mut mpsc::Receiver<Queued>) -> Vec<(EventType, String, Option<String>)> {
        let mut out = Vec::new();
        while let Ok(q) = rx.try_recv() {
            assert_eq!(q.reference.name.as_deref(), Some("t"));
            assert_eq!(q.reference.namespace.as_deref(), Some("ci"));
            assert_eq!(q.reference.kind.as_deref(), Some("TaskRun"));
            assert_eq!(q.reference.resource_version, None);
            out.push((q.type_, q.reason, q.note));
        }
        out
    }

    #[test]
    fn a_runs_condition_changes_become_tektons_events() {
        let (events, mut rx) = Events::new(Counter::default());
        let tr = run();
        let running = c(
            "Unknown",
            "Running",
            "Not all Steps in the Task have finished executing",
        );
        events.transition(&tr, &[], &c("Unknown", "Pending", "Pod is pending"));
        events.transition(&tr, &c("Unknown", "Pending", "Pod is pending"), &running);
        events.transition(&tr, &running, &running); // no change: nothing
        events.transition(
            &tr,
            &running,
            &c("True", "Succeeded", "All Steps have completed executing"),
        );
        events.transition(
            &tr,
            &running,
            &c("False", "Failed", "\"step-a\" exited with code 1"),
        );
        events.error(&tr, &"writing the status: conflict");
        assert_eq!(
            drain(&mut rx),
            [
                (EventType::Normal, "Started".into(), None),
                (
                    EventType::Normal,
                    "Running".into(),
                    Some("Not all Steps in the Task have finished executing".into())
                ),
                (
                    EventType::Normal,
                    "Succeeded".into(),
                    Some("All Steps have completed executing".into())
                ),
                (
                    EventType::Warning,
                    "Failed".into(),
                    Some("\"step-a\" exited with code 1".into())
                ),
                (
                    EventType::Warning,
                    "Error".into(),
                    Some("writing the status: conflict".into())
                ),
            ]
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dropped = Counter::default();
        let (events, _rx) = Events::new(dropped.clone());
        let tr = run();
        for _ in 0..QUEUE + 3 {
            events.error(&tr, &"x");
        }
        assert_eq!(dropped.get(), 3);
    }
}
