//! The controller's Prometheus metrics. Tekton's names, so existing Tekton dashboards
//! work (`tekton_pipelines_controller_*`), and tektite's own (`tektite_controller_*`).
//! Labels are bounded: namespace, pipeline, task and status, never a run's or pod's name.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Tekton's labels of a PipelineRun duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineRunLabels {
    pub namespace: String,
    /// Empty for an embedded pipelineSpec.
    pub pipeline: String,
    /// `success`, `failed` or `cancelled`, as Tekton's.
    pub status: String,
}

/// Tekton's labels of a TaskRun duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskRunLabels {
    pub namespace: String,
    /// Empty for an embedded taskSpec.
    pub task: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineTaskLabels {
    pub namespace: String,
    pub pipeline: String,
    pub task: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub namespace: String,
    pub task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabel {
    pub verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Tekton's buckets for run durations: 10 s to a day.
fn run_buckets() -> Histogram {
    Histogram::new([
        10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 5400.0, 10800.0, 21600.0, 43200.0, 86400.0,
    ])
}

/// 100 µs to about 1.7 minutes.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub pipelinerun_duration: Histograms<PipelineRunLabels>,
    pub pipelinerun_taskrun_duration: Histograms<PipelineTaskLabels>,
    pub taskrun_duration: Histograms<TaskRunLabels>,
    pub pipelinerun_total: Family<StatusLabel, Counter>,
    pub taskrun_total: Family<StatusLabel, Counter>,
    pub running_pipelineruns: Gauge,
    pub running_taskruns: Gauge,
    pub pod_latency_ms: Family<TaskLabels, Gauge>,
    pub agent_event_lag: Histogram,
    pub agent_events: Family<OutcomeLabel, Counter>,
    pub status_writes_per_taskrun: Histogram,
    pub status_writes: Family<KindLabel, Counter>,
    pub reconcile_duration: Histograms<KindLabel>,
    pub reconcile_errors: Family<KindLabel, Counter>,
    pub connected_agents: Gauge,
    pub extender_duration: Histograms<VerbLabel>,
    pub extender_errors: Family<VerbLabel, Counter>,
    pub undecodable_objects: Family<KindLabel, Counter>,
    /// Events dropped because the queue to the API was full.
    pub events_dropped: Counter,
    running_pr: Mutex<HashSet<String>>,
    running_tr: Mutex<HashSet<String>>,
    /// Status writes so far, by TaskRun UID.
    writes: Mutex<HashMap<String, u32>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            pipelinerun_duration: Family::new_with_constructor(run_buckets),
            pipelinerun_taskrun_duration: Family::new_with_constructor(run_buckets),
            taskrun_duration: Family::new_with_constructor(run_buckets),
            pipelinerun_total: Family::default(),
            taskrun_total: Family::default(),
            running_pipelineruns: Gauge::default(),
            running_taskruns: Gauge::default(),
            pod_latency_ms: Family::default(),
            agent_event_lag: latency_buckets(),
            agent_events: Family::default(),
            status_writes_per_taskrun: Histogram::new([
                1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0,
            ]),
            status_writes: Family::default(),
            reconcile_duration: Family::new_with_constructor(latency_buckets),
            reconcile_errors: Family::default(),
            connected_agents: Gauge::default(),
            extender_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.00001, 2.0, 20))
            }),
            extender_errors: Family::default(),
            undecodable_objects: Family::default(),
            events_dropped: Counter::default(),
            running_pr: Mutex::default(),
            running_tr: Mutex::default(),
            writes: Mutex::default(),
        };
        let tekton = m
            .registry
            .sub_registry_with_prefix("tekton_pipelines_controller");
        tekton.register(
            "pipelinerun_duration_seconds",
            "How long PipelineRuns took",
            m.pipelinerun_duration.clone(),
        );
        tekton.register(
            "pipelinerun_taskrun_duration_seconds",
            "How long the TaskRuns of PipelineRuns took",
            m.pipelinerun_taskrun_duration.clone(),
        );
        tekton.register(
            "taskrun_duration_seconds",
            "How long TaskRuns outside PipelineRuns took",
            m.taskrun_duration.clone(),
        );
        tekton.register(
            "pipelinerun",
            "PipelineRuns finished",
            m.pipelinerun_total.clone(),
        );
        tekton.register("taskrun", "TaskRuns finished", m.taskrun_total.clone());
        tekton.register(
            "running_pipelineruns",
            "PipelineRuns running now",
            m.running_pipelineruns.clone(),
        );
        tekton.register(
            "running_taskruns",
            "TaskRuns running now",
            m.running_taskruns.clone(),
        );
        tekton.register(
            "taskruns_pod_latency_milliseconds",
            "From a TaskRun's creation to its Pod's",
            m.pod_latency_ms.clone(),
        );
        let own = m.registry.sub_registry_with_prefix("tektite_controller");
        own.register(
            "agent_event_lag_seconds",
            "From a step's end (as its state record says) to the agent's event reaching the controller",
            m.agent_event_lag.clone(),
        );
        own.register(
            "agent_events",
            "Step events from agents, by what became of them (applied, duplicate, unowned)",
            m.agent_events.clone(),
        );
        own.register(
            "undecodable_objects",
            "Objects watched that tektite could not decode, by kind (each is logged with the field)",
            m.undecodable_objects.clone(),
        );
        own.register(
            "status_writes_per_taskrun",
            "Status writes a TaskRun took from creation to completion",
            m.status_writes_per_taskrun.clone(),
        );
        own.register(
            "status_writes",
            "Status writes, by kind",
            m.status_writes.clone(),
        );
        own.register(
            "reconcile_duration_seconds",
            "How long one reconcile took, by kind",
            m.reconcile_duration.clone(),
        );
        own.register(
            "reconcile_errors",
            "Reconciles that failed, by kind",
            m.reconcile_errors.clone(),
        );
        own.register(
            "connected_agents",
            "Node agents streaming now",
            m.connected_agents.clone(),
        );
        own.register(
            "extender_duration_seconds",
            "How long the scheduler extender took to answer, by verb",
            m.extender_duration.clone(),
        );
        own.register(
            "extender_errors",
            "Scheduler extender requests answered with an error, by verb",
            m.extender_errors.clone(),
        );
        own.register(
            "events_dropped",
            "Kubernetes Events not published because too many were waiting",
            m.events_dropped.clone(),
        );
        m
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one status write of run `uid`.
    pub fn count_write(&self, uid: &str, kind: Kind) {
        self.status_writes.get_or_create(&kind.label()).inc();
        if kind == Kind::TaskRun {
            let mut w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
            *w.entry(uid.to_owned()).or_default() += 1;
        }
    }

    /// TaskRun `uid` is done: how many status writes it took goes to the histogram.
    pub fn finish_writes(&self, uid: &str) {
        let mut w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = w.remove(uid) {
            self.status_writes_per_taskrun.observe(f64::from(n));
        }
    }

    /// Keeps the running gauges: `uid` runs while `running`.
    pub fn track(&self, kind: Kind, uid: &str, running: bool) {
        let (set, gauge) = match kind {
            Kind::PipelineRun => (&self.running_pr, &self.running_pipelineruns),
            Kind::TaskRun => (&self.running_tr, &self.running_taskruns),
        };
        let mut set = set.lock().unwrap_or_else(|e| e.into_inner());
        let changed = if running {
            set.insert(uid.to_owned())
        } else {
            set.remove(uid)
        };
        if changed {
            gauge.set(set.len() as i64);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PipelineRun,
    TaskRun,
}

impl Kind {
    pub fn label(self) -> KindLabel {
        KindLabel {
            kind: match self {
                Kind::PipelineRun => "PipelineRun",
                Kind::TaskRun => "TaskRun",
            }
            .into(),
        }
    }
}

/// Tekton's status label of a finished run's condition reason.
pub fn status_of(succeeded: bool, reason: &str) -> &'static str {
    if succeeded {
        "success"
    } else if reason.contains("Cancelled") {
        "cancelled"
    } else {
        "failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tektons_names_are_exposed() {
        let m = Metrics::new();
        m.taskrun_total
            .get_or_create(&StatusLabel {
                status: "success".into(),
            })
            .inc();
        m.pipelinerun_duration
            .get_or_create(&PipelineRunLabels {
                namespace: "ci".into(),
                pipeline: "ship".into(),
                status: "success".into(),
            })
            .observe(12.0);
        m.pod_latency_ms
            .get_or_create(&TaskLabels {
                namespace: "ci".into(),
                task: "build".into(),
            })
            .set(40);
        m.track(Kind::TaskRun, "a", true);
        m.track(Kind::TaskRun, "a", true);
        m.track(Kind::TaskRun, "b", true);
        m.track(Kind::TaskRun, "a", false);
        let text = m.encode();
        for name in [
            "tekton_pipelines_controller_taskrun_total{status=\"success\"} 1",
            "tekton_pipelines_controller_running_taskruns 1",
            "# TYPE tekton_pipelines_controller_pipelinerun_duration_seconds histogram",
            "# TYPE tekton_pipelines_controller_taskruns_pod_latency_milliseconds gauge",
            "# TYPE tektite_controller_agent_event_lag_seconds histogram",
            "# TYPE tektite_controller_connected_agents gauge",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert_eq!(status_of(false, "TaskRunCancelled"), "cancelled");
    }
}
