//! The live registry of node agents: which nodes have one connected, and how many
//! tektite steps each agent reports running. The ingest writes it; the scheduler extender
//! reads it. A node whose agent left less than the grace period ago still counts as
//! listening, so a brief reconnect does not make the extender flap.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// How long a node counts as listening after its agent's stream ended.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
struct Node {
    /// Open streams from this node (a reconnect may overlap the old stream).
    streams: u32,
    left_at: Option<Timestamp>,
    /// Started and not yet finished steps, by pod UID.
    running: HashMap<String, BTreeSet<usize>>,
    running_count: u32,
}

#[derive(Debug)]
pub struct Agents {
    nodes: Mutex<HashMap<String, Node>>,
    grace: Duration,
}

impl Default for Agents {
    fn default() -> Self {
        Self::new(DEFAULT_GRACE)
    }
}

impl Agents {
    pub fn new(grace: Duration) -> Self {
        Self {
            nodes: Mutex::new(HashMap::new()),
            grace,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Node>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An agent's stream on `node` opened.
    pub fn connect(&self, node: &str) {
        let mut nodes = self.lock();
        let entry = nodes.entry(node.to_owned()).or_default();
        entry.streams += 1;
        entry.left_at = None;
    }

    /// An agent's stream on `node` ended at `now`.
    pub fn disconnect(&self, node: &str, now: Timestamp) {
        if let Some(entry) = self.lock().get_mut(node) {
            entry.streams = entry.streams.saturating_sub(1);
            if entry.streams == 0 {
                entry.left_at = Some(now);
            }
        }
    }

    /// A step of pod `uid` on `node` started.
    pub fn step_started(&self, node: &str, uid: &str, step: usize) {
        let mut nodes = self.lock();
        let entry = nodes.entry(node.to_owned()).or_default();
        if entry
            .running
            .entry(uid.to_owned())
            .or_default()
            .insert(step)
        {
            entry.running_count += 1;
        }
    }

    /// A step of pod `uid` on `node` ended.
    pub fn step_ended(&self, node: &str, uid: &str, step: usize) {
        let mut nodes = self.lock();
        let Some(entry) = nodes.get_mut(node) else {
            return;
        };
        let Some(steps) = entry.running.get_mut(uid) else {
            return;
        };
        if steps.remove(&step) {
            entry.running_count -= 1;
        }
        if steps.is_empty() {
            entry.running.remove(uid);
        }
    }

    /// Pod `uid` on `node` is gone: none of its steps runs any more.
    pub fn pod_gone(&self, node: &str, uid: &str) {
        let mut nodes = self.lock();
        if let Some(entry) = nodes.get_mut(node)
            && let Some(steps) = entry.running.remove(uid)
        {
            entry.running_count -= steps.len() as u32;
        }
    }

    /// A consistent view at `now`, held while a scheduling request is answered.
    pub fn view(&self, now: Timestamp) -> View<'_> {
        View {
            nodes: self.lock(),
            grace: self.grace,
            now,
        }
    }
}

/// The registry as one scheduling decision reads it.
#[derive(Debug)]
pub struct View<'a> {
    nodes: MutexGuard<'a, HashMap<String, Node>>,
    grace: Duration,
    now: Timestamp,
}

impl View<'_> {
    /// Whether an agent listens on `node` (or left within the grace period).
    pub fn listening(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| self.counts(n))
    }

    fn counts(&self, n: &Node) -> bool {
        n.streams > 0
            || n.left_at.is_some_and(|left| {
                let grace = SignedDuration::try_from(self.grace).unwrap_or(SignedDuration::MAX);
                self.now.duration_since(left) < grace
            })
    }

    /// Whether any node has a listening agent.
    pub fn any(&self) -> bool {
        self.nodes.values().any(|n| self.counts(n))
    }

    /// tektite steps the agent on `node` reports running.
    pub fn running(&self, node: &str) -> u32 {
        self.nodes.get(node).map_or(0, |n| n.running_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn a_node_stays_listening_through_a_brief_reconnect() {
        let agents = Agents::new(Duration::from_secs(15));
        assert!(!agents.view(at(0)).any());
        agents.connect("n1");
        assert!(agents.view(at(0)).listening("n1"));
        assert!(!agents.view(at(0)).listening("n2"));
        agents.disconnect("n1", at(10));
        assert!(agents.view(at(24)).listening("n1"));
        assert!(!agents.view(at(25)).listening("n1"));
        assert!(!agents.view(at(25)).any());
        agents.connect("n1");
        assert!(agents.view(at(100)).listening("n1"));
    }

    #[test]
    fn an_overlapping_reconnect_keeps_the_node_listening() {
        let agents = Agents::new(Duration::ZERO);
        agents.connect("n1");
        agents.connect("n1");
        agents.disconnect("n1", at(0));
        assert!(agents.view(at(60)).listening("n1"));
        agents.disconnect("n1", at(0));
        assert!(!agents.view(at(60)).listening("n1"));
    }

    #[test]
    fn running_steps_are_counted_once_and_forgotten_with_their_pod() {
        let agents = Agents::default();
        agents.step_started("n1", "a", 0);
        agents.step_started("n1", "a", 0);
        agents.step_started("n1", "a", 1);
        agents.step_started("n1", "b", 0);
        assert_eq!(agents.view(at(0)).running("n1"), 3);
        agents.step_ended("n1", "a", 0);
        agents.step_ended("n1", "a", 0);
        agents.step_ended("n1", "zz", 0);
        agents.step_ended("n9", "a", 1);
        assert_eq!(agents.view(at(0)).running("n1"), 2);
        agents.pod_gone("n1", "a");
        assert_eq!(agents.view(at(0)).running("n1"), 1);
        agents.pod_gone("n1", "b");
        agents.pod_gone("n1", "b");
        assert_eq!(agents.view(at(0)).running("n1"), 0);
        assert_eq!(agents.view(at(0)).running("unknown"), 0);
    }
}
