//! The nodes the extender chose for Pods that the Pod watch does not show bound yet.
//!
//! The scheduler filters one Pod after another, faster than the watch reports bindings:
//! without these, a PipelineRun's second Pod would be filtered as if the first had gone
//! nowhere (split across nodes, or two Pods of one ReadWriteOnce claim on two nodes), and
//! a burst of new runs would all score the same idle node best. So when the extender
//! answers a first Pod's filter with the one node it chose, it holds that node for the
//! Pod until the watch shows it bound (then the index says where it is), finished, or
//! deleted, or the hold's time runs out (it never bound).

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

use crate::pod_index::{Indexed, Placed};

/// How long a chosen node is held for a Pod that is not seen bound.
pub const HOLD_FOR: SignedDuration = SignedDuration::from_secs(30);

#[derive(Clone, Debug)]
struct Hold {
    /// The Pod, its `node` the one chosen.
    pod: Placed,
    until: Timestamp,
}

#[derive(Debug, Default)]
pub struct Holds {
    by_uid: Mutex<HashMap<String, Hold>>,
}

impl Holds {
    /// Holds `node` for `pod` until `now` + [`HOLD_FOR`].
    pub fn hold(&self, mut pod: Placed, node: &str, now: Timestamp) {
        pod.node = Some(node.to_owned());
        let until = now.checked_add(HOLD_FOR).unwrap_or(now);
        let mut holds = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        holds.insert(pod.uid.clone(), Hold { pod, until });
    }

    /// The Pods still held, each with its chosen node, after dropping those the index
    /// shows bound, finished or deleted and those whose time ran out.
    pub fn live(&self, index: &Indexed, now: Timestamp) -> Vec<Placed> {
        let mut holds = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        holds.retain(|uid, hold| {
            let bound_or_done = index
                .get(uid)
                .is_some_and(|p| p.node.is_some() || p.finished);
            now <= hold.until && !bound_or_done && !index.was_deleted(uid)
        });
        holds.values().map(|h| h.pod.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::watcher;
    use serde_json::json;

    use super::*;
    use crate::pod_index::PodIndex;

    fn pod(node: Option<&str>, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ci", "uid": "u",
                "labels": {"tekton.dev/pipelineRun": "pr"}},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn held(holds: &Holds, index: &PodIndex, now: Timestamp) -> Vec<Option<String>> {
        holds
            .live(&index.read(), now)
            .into_iter()
            .map(|p| p.node)
            .collect()
    }

    #[test]
    fn a_hold_lasts_until_the_pod_is_seen_bound() {
        let index = PodIndex::default();
        let holds = Holds::default();
        holds.hold(Placed::of(&pod(None, "Pending")), "n2", at(0));
        // The watch has not seen the Pod yet, then sees it unbound: held.
        assert_eq!(held(&holds, &index, at(1)), [Some("n2".to_owned())]);
        index.apply(&watcher::Event::Apply(pod(None, "Pending")));
        assert_eq!(held(&holds, &index, at(2)), [Some("n2".to_owned())]);
        // Bound: the index says where it is; the hold goes.
        index.apply(&watcher::Event::Apply(pod(Some("n2"), "Pending")));
        assert!(held(&holds, &index, at(3)).is_empty());
    }

    #[test]
    fn a_deleted_or_never_bound_pods_hold_is_released() {
        let index = PodIndex::default();
        let holds = Holds::default();
        holds.hold(Placed::of(&pod(None, "Pending")), "n1", at(0));
        index.apply(&watcher::Event::Apply(pod(None, "Pending")));
        assert_eq!(held(&holds, &index, at(1)).len(), 1);
        index.apply(&watcher::Event::Delete(pod(None, "Pending")));
        assert!(held(&holds, &index, at(2)).is_empty());

        // Never seen, never bound: released when its time is up.
        holds.hold(Placed::of(&pod(None, "Pending")), "n1", at(10));
        let before = at(10).checked_add(HOLD_FOR).unwrap();
        assert_eq!(held(&holds, &PodIndex::default(), before).len(), 1);
        let after = before.checked_add(SignedDuration::from_secs(1)).unwrap();
        assert!(held(&holds, &PodIndex::default(), after).is_empty());
    }

    #[test]
    fn a_pod_that_finished_unbound_is_released() {
        let index = PodIndex::default();
        let holds = Holds::default();
        holds.hold(Placed::of(&pod(None, "Pending")), "n1", at(0));
        index.apply(&watcher::Event::Apply(pod(None, "Failed")));
        assert!(held(&holds, &index, at(1)).is_empty());
    }
}
