//! What the agents reported of each step, by pod UID: the fast path of TaskRun status.
//! Events are idempotent (a report of a step that already finished changes nothing), so
//! an event resent after a reconnect is harmless. Reports for pods no TaskRun owns change
//! no TaskRun; they are kept a short while (the Pod cache may lag behind an agent) and
//! at most [`MAX_UNCLAIMED`] of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use jiff::Timestamp;
use tektite_api::step::{StepReason, StepState};

/// Pods reported but not (yet) known to belong to a TaskRun that are remembered.
pub const MAX_UNCLAIMED: usize = 10_000;

/// One step event from an agent.
#[derive(Clone, Debug, PartialEq)]
pub enum StepEvent {
    Started {
        step: usize,
        at: Timestamp,
    },
    Finished {
        step: usize,
        state: StepState,
    },
    /// The step's post file landed but its record could not be read.
    Unreadable {
        step: usize,
        error: String,
        at: Timestamp,
    },
}

#[derive(Debug, Default)]
struct PodSteps {
    steps: BTreeMap<usize, StepState>,
    /// When the first report for the pod came in (for forgetting unclaimed ones).
    first_seen: Option<Timestamp>,
}

/// The reports of every pod, shared by the ingest and the TaskRun reconciler.
#[derive(Debug, Default)]
pub struct StepStore {
    pods: Mutex<HashMap<String, PodSteps>>,
}

impl StepStore {
    /// Takes in one event; whether it changed what is known.
    pub fn apply(&self, pod_uid: &str, event: StepEvent, now: Timestamp) -> bool {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        if !pods.contains_key(pod_uid) && pods.len() >= MAX_UNCLAIMED {
            // Make room by forgetting the oldest pod.
            if let Some(oldest) = pods
                .iter()
                .min_by_key(|(_, p)| p.first_seen)
                .map(|(k, _)| k.clone())
            {
                pods.remove(&oldest);
            }
        }
        let pod = pods.entry(pod_uid.to_owned()).or_default();
        pod.first_seen.get_or_insert(now);
        let (step, next) = match event {
            StepEvent::Started { step, at } => {
                if pod.steps.contains_key(&step) {
                    return false;
                }
                (step, StepState::started(at))
            }
            StepEvent::Finished { step, state } => (step, state),
            StepEvent::Unreadable { step, error, at } => {
                let started = pod.steps.get(&step).map(|s| s.started_at).unwrap_or(at);
                let why = format!("the step's state record cannot be used: {error}");
                (step, StepState::ended(started, at, StepReason::Error, why))
            }
        };
        if pod.steps.get(&step).is_some_and(StepState::is_finished) {
            // A finished step stays as it first finished.
            return false;
        }
        pod.steps.insert(step, next) != pod.steps.get(&step).cloned()
    }

    /// What is known of the pod's steps, by index.
    pub fn steps(&self, pod_uid: &str) -> BTreeMap<usize, StepState> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.get(pod_uid)
            .map(|p| p.steps.clone())
            .unwrap_or_default()
    }

    /// Forgets a pod whose TaskRun is done.
    pub fn forget(&self, pod_uid: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.remove(pod_uid);
    }

    /// How many pods are remembered.
    pub fn len(&self) -> usize {
        self.pods.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u32) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + i64::from(s)).unwrap()
    }

    fn finished(code: i32) -> StepState {
        StepState {
            finished_at: Some(at(2)),
            exit_code: Some(code),
            reason: Some(if code == 0 {
                StepReason::Completed
            } else {
                StepReason::Error
            }),
            ..StepState::started(at(1))
        }
    }

    #[test]
    fn events_sent_twice_change_nothing_the_second_time() {
        let store = StepStore::default();
        assert!(store.apply("p", StepEvent::Started { step: 0, at: at(1) }, at(1)));
        assert!(!store.apply("p", StepEvent::Started { step: 0, at: at(1) }, at(1)));
        let done = StepEvent::Finished {
            step: 0,
            state: finished(0),
        };
        assert!(store.apply("p", done.clone(), at(2)));
        assert!(!store.apply("p", done, at(3)));
        // A late start report does not undo the finish.
        assert!(!store.apply("p", StepEvent::Started { step: 0, at: at(1) }, at(4)));
        assert_eq!(store.steps("p")[&0], finished(0));
    }

    #[test]
    fn a_finished_step_keeps_its_first_report() {
        let store = StepStore::default();
        store.apply(
            "p",
            StepEvent::Finished {
                step: 1,
                state: finished(3),
            },
            at(2),
        );
        store.apply(
            "p",
            StepEvent::Finished {
                step: 1,
                state: finished(0),
            },
            at(3),
        );
        assert_eq!(store.steps("p")[&1].exit_code, Some(3));
    }

    #[test]
    fn an_unreadable_record_fails_the_step_with_the_reason() {
        let store = StepStore::default();
        store.apply("p", StepEvent::Started { step: 0, at: at(1) }, at(1));
        store.apply(
            "p",
            StepEvent::Unreadable {
                step: 0,
                error: "truncated".into(),
                at: at(5),
            },
            at(5),
        );
        let s = &store.steps("p")[&0];
        assert_eq!((s.started_at, s.reason), (at(1), Some(StepReason::Error)));
        assert!(s.message.as_deref().unwrap().contains("truncated"));
    }

    #[test]
    fn the_store_is_bounded_and_forgets_the_oldest_pod() {
        let store = StepStore::default();
        for i in 0..MAX_UNCLAIMED + 5 {
            let uid = format!("pod-{i}");
            let t = at(i as u32);
            store.apply(&uid, StepEvent::Started { step: 0, at: t }, t);
        }
        assert_eq!(store.len(), MAX_UNCLAIMED);
        assert!(store.steps("pod-0").is_empty());
        assert!(
            !store
                .steps(&format!("pod-{}", MAX_UNCLAIMED + 4))
                .is_empty()
        );
        store.forget(&format!("pod-{}", MAX_UNCLAIMED + 4));
        assert_eq!(store.len(), MAX_UNCLAIMED - 1);
    }
}
