//! A PipelineRun's children as the reconciler sees them: its TaskRuns, the CustomRuns of
//! its custom tasks and the PipelineRuns of its tasks that run a Pipeline, each read the
//! same way (which pipeline task, how it ended, its results) and stopped the way Tekton
//! stops that kind.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, Patch};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tektite_api::labels;
use tektite_api::v1::{
    self, ChildStatusReference, Condition, ParamValue, PipelineRun, PipelineRunSpecStatus,
    PipelineSpec, TaskRun, TaskRunSpecStatus,
};
use tektite_api::v1beta1::{self, CustomRun, CustomRunSpecStatus, customrun_reason};
use tektite_engine::pipeline::{Outcome, Stop};

use super::{CANCELLED_MESSAGE, Error, TIMED_OUT_MESSAGE};
use crate::conditions::is_done;
use crate::context::Context;
use crate::patch::write_params;

/// One child of a PipelineRun.
#[derive(Clone, Debug)]
pub enum Child {
    Task(Arc<TaskRun>),
    Custom(Arc<CustomRun>),
    Pipeline(Arc<PipelineRun>),
}

/// The kinds a PipelineRun creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildKind {
    TaskRun,
    CustomRun,
    PipelineRun,
}

impl ChildKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChildKind::TaskRun => "TaskRun",
            ChildKind::CustomRun => "CustomRun",
            ChildKind::PipelineRun => "PipelineRun",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            ChildKind::TaskRun | ChildKind::PipelineRun => v1::API_VERSION,
            ChildKind::CustomRun => v1beta1::API_VERSION,
        }
    }
}

impl std::fmt::Display for ChildKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The PipelineRun's own TaskRuns, CustomRuns and PipelineRuns in the caches, in that
/// order, each in name order.
pub fn of(pr: &PipelineRun, ctx: &Context) -> Vec<Child> {
    let ns = pr.namespace().unwrap_or_default();
    let uid = pr.uid().unwrap_or_default();
    let task_runs = ctx
        .task_run_owners
        .names(&uid)
        .into_iter()
        .filter_map(|name| ctx.task_runs.get(&ObjectRef::new(&name).within(&ns)))
        .map(Child::Task);
    let custom_runs = ctx
        .custom_run_owners
        .names(&uid)
        .into_iter()
        .filter_map(|name| ctx.custom_runs.get(&ObjectRef::new(&name).within(&ns)))
        .map(Child::Custom);
    let pipeline_runs = ctx
        .pipeline_run_owners
        .names(&uid)
        .into_iter()
        .filter_map(|name| ctx.pipeline_runs.get(&ObjectRef::new(&name).within(&ns)))
        .map(Child::Pipeline);
    task_runs.chain(custom_runs).chain(pipeline_runs).collect()
}

impl Child {
    pub fn kind(&self) -> ChildKind {
        match self {
            Child::Task(_) => ChildKind::TaskRun,
            Child::Custom(_) => ChildKind::CustomRun,
            Child::Pipeline(_) => ChildKind::PipelineRun,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Child::Task(t) => t.name_any(),
            Child::Custom(c) => c.name_any(),
            Child::Pipeline(p) => p.name_any(),
        }
    }

    /// The pipeline task it runs (its `tekton.dev/pipelineTask` label).
    pub fn pipeline_task(&self) -> Option<&str> {
        let labels = match self {
            Child::Task(t) => t.labels(),
            Child::Custom(c) => c.labels(),
            Child::Pipeline(p) => p.labels(),
        };
        labels.get(labels::PIPELINE_TASK).map(String::as_str)
    }

    fn conditions(&self) -> &[Condition] {
        match self {
            Child::Task(t) => t.status.as_ref().map(|s| s.conditions.as_slice()),
            Child::Custom(c) => c.status.as_ref().map(|s| s.conditions.as_slice()),
            Child::Pipeline(p) => p.status.as_ref().map(|s| s.conditions.as_slice()),
        }
        .unwrap_or_default()
    }

    /// Whether a cancel was asked of it.
    fn cancel_requested(&self) -> bool {
        match self {
            Child::Task(t) => t.spec.status.is_some(),
            Child::Custom(c) => c.spec.status.is_some(),
            Child::Pipeline(p) => p.spec.status == Some(PipelineRunSpecStatus::Cancelled),
        }
    }

    fn stopped_for_timeout(&self) -> bool {
        match self {
            Child::Task(t) => t.spec.status_message.as_deref() == Some(TIMED_OUT_MESSAGE),
            Child::Custom(c) => {
                c.spec.status_message.as_deref() == Some(v1beta1::CANCELLED_BY_PIPELINE_TIMEOUT)
            }
            // A PipelineRun has no status message to say why it was cancelled.
            Child::Pipeline(_) => false,
        }
    }

    pub fn outcome(&self) -> Outcome {
        let conditions = self.conditions();
        if let Child::Custom(_) = self
            && conditions.is_empty()
            && self.cancel_requested()
        {
            // Cancelled before any controller took it up: nothing runs it, and nothing
            // ever will report that it stopped.
            return Outcome::Cancelled {
                timed_out: self.stopped_for_timeout(),
            };
        }
        if !is_done(conditions) {
            return Outcome::Running;
        }
        let timed_out = self.stopped_for_timeout();
        let first = conditions.first();
        if let Child::Custom(_) = self
            && first.and_then(|c| c.reason.as_deref()) == Some(customrun_reason::CANCELLED)
        {
            return Outcome::Cancelled { timed_out };
        }
        Outcome::of_finished(first, timed_out)
    }

    /// Its results; a custom task's are always strings. A child PipelineRun's do not reach
    /// its parent (as in Tekton; validation refuses references to them).
    pub fn results(&self) -> BTreeMap<String, ParamValue> {
        match self {
            Child::Task(t) => t
                .status
                .iter()
                .flat_map(|s| &s.results)
                .map(|r| (r.name.clone(), r.value.clone()))
                .collect(),
            Child::Custom(c) => c
                .status
                .iter()
                .flat_map(|s| &s.results)
                .map(|r| (r.name.clone(), ParamValue::String(r.value.clone())))
                .collect(),
            Child::Pipeline(_) => BTreeMap::new(),
        }
    }

    /// The alpha artifacts a TaskRun reported.
    pub fn artifacts(&self) -> Option<v1::Artifacts> {
        match self {
            Child::Task(t) => t.status.as_ref().and_then(|s| s.artifacts.clone()),
            Child::Custom(_) | Child::Pipeline(_) => None,
        }
    }

    /// Asks it to stop, as Tekton does: `spec.status` TaskRunCancelled or RunCancelled,
    /// with a message saying why; a child PipelineRun `spec.status: Cancelled` (it stops
    /// its own children). Nothing is sent for one already asked or finished.
    pub async fn cancel(&self, ctx: &Context, why: Stop) -> Result<(), Error> {
        if self.cancel_requested() || self.outcome() != Outcome::Running {
            return Ok(());
        }
        let name = self.name();
        let result = match self {
            Child::Task(t) => {
                let message = match why {
                    Stop::TimedOut => TIMED_OUT_MESSAGE,
                    Stop::Cancelled => CANCELLED_MESSAGE,
                };
                let patch = json!({"spec": {"status": TaskRunSpecStatus::TaskRunCancelled, "statusMessage": message}});
                Api::<TaskRun>::namespaced(ctx.client.clone(), &t.namespace().unwrap_or_default())
                    .patch(&name, &write_params(), &Patch::Merge(patch))
                    .await
                    .map(drop)
            }
            Child::Custom(c) => {
                let message = match why {
                    Stop::TimedOut => v1beta1::CANCELLED_BY_PIPELINE_TIMEOUT,
                    Stop::Cancelled => v1beta1::CANCELLED_BY_PIPELINE,
                };
                let patch = json!({"spec": {"status": CustomRunSpecStatus::RunCancelled, "statusMessage": message}});
                Api::<CustomRun>::namespaced(ctx.client.clone(), &c.namespace().unwrap_or_default())
                    .patch(&name, &write_params(), &Patch::Merge(patch))
                    .await
                    .map(drop)
            }
            Child::Pipeline(p) => {
                let patch = json!({"spec": {"status": PipelineRunSpecStatus::Cancelled}});
                Api::<PipelineRun>::namespaced(
                    ctx.client.clone(),
                    &p.namespace().unwrap_or_default(),
                )
                .patch(&name, &write_params(), &Patch::Merge(patch))
                .await
                .map(drop)
            }
        };
        result.map_err(|source| Error::CancelChild {
            kind: self.kind(),
            name,
            source,
        })
    }
}

/// `status.childReferences[]` for child `name` of pipeline task `task`.
pub fn reference(
    kind: ChildKind,
    name: &str,
    task: &str,
    spec: &PipelineSpec,
) -> ChildStatusReference {
    tektite_engine::child::reference(kind.api_version(), kind.as_str(), name, task, spec)
}
