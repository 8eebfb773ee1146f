//! The agent's Prometheus metrics. Labels are bounded: namespace, task, step or sidecar
//! name, never a pod UID, and at most [`MAX_LABEL_SETS`] distinct sets per family; later
//! ones are counted under `_other`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Distinct label sets a family may hold before new ones become `_other`.
pub const MAX_LABEL_SETS: usize = 2000;
const OTHER: &str = "_other";

/// Where a step ran, as labels.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub namespace: String,
    pub task: String,
    pub step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub namespace: String,
    pub task: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SidecarLabels {
    pub namespace: String,
    pub task: String,
    pub sidecar: String,
}

/// The label sets used so far, per family.
type LabelSets = HashMap<&'static str, HashSet<(String, String, String)>>;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// From 1 ms to about 4.6 hours.
fn duration_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 24))
}

/// From 100 µs to about 1.7 minutes.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub step_duration: HistogramFamily<StepLabels>,
    pub marker_to_ack: Histogram,
    pub events_sent: Counter,
    pub events_acked: Counter,
    pub events_resent: Counter,
    pub buffer_full: Counter,
    pub unacked: Gauge,
    pub connected: Gauge,
    pub connects: Counter,
    pub pods: Gauge,
    pub watches: Gauge,
    pub inotify_overflows: Counter,
    pub watch_failures: Counter,
    pub pod_lifecycle: HistogramFamily<PhaseLabels>,
    pub sidecar_ready: HistogramFamily<SidecarLabels>,
    pub sidecar_stop: HistogramFamily<SidecarLabels>,
    seen: Mutex<LabelSets>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("tektite_agent"),
            step_duration: Family::new_with_constructor(duration_buckets),
            marker_to_ack: latency_buckets(),
            events_sent: Counter::default(),
            events_acked: Counter::default(),
            events_resent: Counter::default(),
            buffer_full: Counter::default(),
            unacked: Gauge::default(),
            connected: Gauge::default(),
            connects: Counter::default(),
            pods: Gauge::default(),
            watches: Gauge::default(),
            inotify_overflows: Counter::default(),
            watch_failures: Counter::default(),
            pod_lifecycle: Family::new_with_constructor(duration_buckets),
            sidecar_ready: Family::new_with_constructor(duration_buckets),
            sidecar_stop: Family::new_with_constructor(duration_buckets),
            seen: Mutex::new(HashMap::new()),
        };
        let r = &mut m.registry;
        r.register(
            "step_duration_seconds",
            "Step command run time, from the step's start record to its end record",
            m.step_duration.clone(),
        );
        r.register(
            "marker_to_ack_seconds",
            "From a step marker being written to the controller acknowledging its event",
            m.marker_to_ack.clone(),
        );
        r.register(
            "events_sent",
            "Step events sent to the controller",
            m.events_sent.clone(),
        );
        r.register(
            "events_acked",
            "Step events the controller acknowledged",
            m.events_acked.clone(),
        );
        r.register(
            "events_resent",
            "Unacknowledged step events sent again after a reconnect",
            m.events_resent.clone(),
        );
        r.register(
            "buffer_full",
            "Times the unacknowledged-event buffer filled and the agent paused reading markers",
            m.buffer_full.clone(),
        );
        r.register(
            "unacked_events",
            "Events waiting for an acknowledgement",
            m.unacked.clone(),
        );
        r.register(
            "connected",
            "1 while the stream to the controller is up",
            m.connected.clone(),
        );
        r.register(
            "connects",
            "Streams opened to the controller",
            m.connects.clone(),
        );
        r.register(
            "pods",
            "tektite pods with step directories on this node",
            m.pods.clone(),
        );
        r.register("watches", "inotify watches held", m.watches.clone());
        r.register(
            "inotify_overflows",
            "inotify queue overflows, each answered by a full rescan",
            m.inotify_overflows.clone(),
        );
        r.register(
            "watch_failures",
            "Pod directories that could not be watched",
            m.watch_failures.clone(),
        );
        r.register(
            "pod_lifecycle_seconds",
            "From Pod creation to each phase: scheduled, initialized, first_step_started, last_step_finished, completed",
            m.pod_lifecycle.clone(),
        );
        r.register(
            "sidecar_ready_seconds",
            "From a sidecar starting to it being ready",
            m.sidecar_ready.clone(),
        );
        r.register(
            "sidecar_stop_seconds",
            "From the last step finishing to a sidecar having stopped",
            m.sidecar_stop.clone(),
        );
        m
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// `(namespace, task, name)` as given while the family has room, else `_other` ones.
    fn bound(
        &self,
        family: &'static str,
        namespace: &str,
        task: &str,
        name: &str,
    ) -> (String, String, String) {
        let key = (namespace.to_owned(), task.to_owned(), name.to_owned());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let sets = seen.entry(family).or_default();
        if sets.contains(&key) || sets.len() < MAX_LABEL_SETS {
            sets.insert(key.clone());
            key
        } else {
            (OTHER.into(), OTHER.into(), OTHER.into())
        }
    }

    pub fn observe_step(&self, namespace: &str, task: &str, step: &str, seconds: f64) {
        let (namespace, task, step) = self.bound("step", namespace, task, step);
        self.step_duration
            .get_or_create(&StepLabels {
                namespace,
                task,
                step,
            })
            .observe(seconds);
    }

    pub fn observe_phase(&self, namespace: &str, task: &str, phase: &str, seconds: f64) {
        let (namespace, task, phase) = self.bound("phase", namespace, task, phase);
        self.pod_lifecycle
            .get_or_create(&PhaseLabels {
                namespace,
                task,
                phase,
            })
            .observe(seconds);
    }

    pub fn observe_sidecar(
        &self,
        stop: bool,
        namespace: &str,
        task: &str,
        sidecar: &str,
        seconds: f64,
    ) {
        let family = if stop {
            "sidecar_stop"
        } else {
            "sidecar_ready"
        };
        let (namespace, task, sidecar) = self.bound(family, namespace, task, sidecar);
        let labels = SidecarLabels {
            namespace,
            task,
            sidecar,
        };
        let histograms = if stop {
            &self.sidecar_stop
        } else {
            &self.sidecar_ready
        };
        histograms.get_or_create(&labels).observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_the_agent_prefix() {
        let m = Metrics::new();
        m.events_sent.inc();
        m.observe_step("ci", "build", "compile", 1.5);
        let text = m.encode();
        for name in [
            "tektite_agent_events_sent_total 1",
            "tektite_agent_step_duration_seconds_count{namespace=\"ci\",task=\"build\",step=\"compile\"} 1",
            "# TYPE tektite_agent_marker_to_ack_seconds histogram",
            "# TYPE tektite_agent_events_acked counter",
            "# TYPE tektite_agent_inotify_overflows counter",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn label_sets_beyond_the_bound_become_other() {
        let m = Metrics::new();
        for i in 0..MAX_LABEL_SETS + 10 {
            m.observe_step("ns", "task", &format!("s{i}"), 0.1);
        }
        // A set seen before the bound was reached keeps its own series.
        m.observe_step("ns", "task", "s0", 0.1);
        m.observe_phase("ns", "task", "scheduled", 1.0);
        let text = m.encode();
        let counts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tektite_agent_step_duration_seconds_count"))
            .collect();
        assert_eq!(counts.len(), MAX_LABEL_SETS + 1);
        assert!(counts.contains(
            &"tektite_agent_step_duration_seconds_count{namespace=\"_other\",task=\"_other\",step=\"_other\"} 10"
        ));
        assert!(counts.contains(
            &"tektite_agent_step_duration_seconds_count{namespace=\"ns\",task=\"task\",step=\"s0\"} 2"
        ));
        // Other families have their own bound.
        assert!(text.contains(
            "tektite_agent_pod_lifecycle_seconds_count{namespace=\"ns\",task=\"task\",phase=\"scheduled\"} 1"
        ));
    }
}
