//! What every reconcile shares: the client, the caches, what the agents reported, the
//! metrics, the settings and the clock.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};
use tektite_api::v1::{PipelineRun, TaskRun};
use tektite_api::v1beta1::CustomRun;
use tokio::sync::mpsc;

use crate::agents::Agents;
use crate::metrics::Metrics;
use crate::owned::Owned;
use crate::pod_index::PodIndex;
use crate::steps::StepStore;
use tektite_engine::pod::PodSettings;

/// The `spec.managedBy` value naming tektite.
pub const MANAGED_BY: &str = "tektite.dev/controller";

/// Which runs this controller takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Claim {
    /// Runs whose `spec.managedBy` is unset or names tektite, so it can run beside a
    /// Tekton that claims its own name.
    #[default]
    UnsetOrOwn,
    /// Only runs whose `spec.managedBy` names tektite.
    OwnOnly,
}

impl Claim {
    pub fn claims(self, managed_by: Option<&str>) -> bool {
        matches!(
            (self, managed_by),
            (_, Some(MANAGED_BY)) | (Claim::UnsetOrOwn, None)
        )
    }
}

#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub claim: Claim,
    pub pod: PodSettings,
    /// Registries (image entrypoints, bundles) and git repositories, with what was
    /// read from them.
    pub sources: crate::resolve::Sources,
}

/// Where "now" comes from: the wall clock, or a fixed time in tests.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(Timestamp::now))
    }

    pub fn fixed(at: Timestamp) -> Self {
        Self(Arc::new(move || at))
    }

    /// Whatever `now` answers (a test's clock that it moves on).
    pub fn from_fn(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

pub struct Context {
    pub client: kube::Client,
    pub settings: Settings,
    /// tektite's Pods (by its label selector).
    pub pods: Store<Pod>,
    /// The same Pods by UID, PipelineRun and node.
    pub pod_index: Arc<PodIndex>,
    /// Every TaskRun.
    pub task_runs: Store<TaskRun>,
    /// The same TaskRuns by their PipelineRun's UID.
    pub task_run_owners: Arc<Owned>,
    /// Every CustomRun (what PipelineRuns create for custom tasks).
    pub custom_runs: Store<CustomRun>,
    /// The same CustomRuns by their PipelineRun's UID.
    pub custom_run_owners: Arc<Owned>,
    /// Every PipelineRun (a task that runs a Pipeline creates one).
    pub pipeline_runs: Store<PipelineRun>,
    /// The child PipelineRuns by their parent PipelineRun's UID.
    pub pipeline_run_owners: Arc<Owned>,
    pub steps: Arc<StepStore>,
    /// Which nodes have an agent, and what runs there.
    pub agents: Arc<Agents>,
    pub metrics: Arc<Metrics>,
    /// Kubernetes Events on runs, queued for publishing.
    pub events: Arc<crate::events::Events>,
    /// The built-in resolvers' settings, as their ConfigMaps say now.
    pub resolvers: Arc<std::sync::RwLock<crate::resolve::Settings>>,
    pub clock: Clock,
    /// Asks for a TaskRun's reconcile (agent events).
    pub wake: mpsc::Sender<ObjectRef<TaskRun>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_another_controller_are_not_claimed() {
        assert!(Claim::UnsetOrOwn.claims(None));
        assert!(Claim::UnsetOrOwn.claims(Some(MANAGED_BY)));
        assert!(!Claim::UnsetOrOwn.claims(Some("tekton.dev/pipeline")));
        assert!(!Claim::OwnOnly.claims(None));
        assert!(Claim::OwnOnly.claims(Some(MANAGED_BY)));
    }
}
