//! PipelineRun: one execution of a Pipeline, and its status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::params::{Param, ParamValue};
use super::pipeline::{PipelineRef, PipelineSpec, PipelineTaskMetadata};
use super::pod_template::PodTemplate;
use super::status::{Condition, Provenance};
use super::taskrun::{TaskRunSidecarSpec, TaskRunStepSpec};
use super::when::WhenExpression;
use super::workspace::WorkspaceBinding;

/// A tekton.dev/v1 PipelineRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PipelineRunSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PipelineRunStatus>,
}

/// `spec.status` of a PipelineRun: hold it, or cancel or stop it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PipelineRunSpecStatus {
    /// Cancel now; finally tasks do not run.
    Cancelled,
    /// Cancel running tasks, then run finally tasks.
    CancelledRunFinally,
    /// Start no new tasks, let running ones finish, then run finally tasks.
    StoppedRunFinally,
    /// Do not start yet.
    PipelineRunPending,
}

/// Which Pipeline to run, with what.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_ref: Option<PipelineRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_spec: Option<PipelineSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PipelineRunSpecStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_run_template: Option<PipelineTaskRunTemplate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspaceBinding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_run_specs: Vec<PipelineTaskRunSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
}

/// Time limits: for the whole run, for its tasks and for its finally tasks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finally: Option<Duration>,
}

/// Settings for every TaskRun of the PipelineRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineTaskRunTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<Box<PodTemplate>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// Settings for the TaskRuns of one pipeline task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineTaskRunSpec {
    pub pipeline_task_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<Box<PodTemplate>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_specs: Vec<TaskRunStepSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecar_specs: Vec<TaskRunSidecarSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PipelineTaskMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_resources: Option<core::ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// What is known of a PipelineRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<PipelineRunResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_spec: Option<PipelineSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_tasks: Vec<SkippedTask>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub child_references: Vec<ChildStatusReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finally_start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub span_context: BTreeMap<String, String>,
}

/// A result of the PipelineRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunResult {
    pub name: String,
    pub value: ParamValue,
}

/// Why a pipeline task was skipped, as Tekton words it.
pub mod skip_reason {
    pub const WHEN_EXPRESSIONS: &str = "When Expressions evaluated to false";
    pub const PARENT_SKIPPED: &str = "Parent Tasks were skipped";
    pub const STOPPING: &str = "PipelineRun was stopping";
    pub const GRACEFULLY_CANCELLED: &str = "PipelineRun was gracefully cancelled";
    pub const GRACEFULLY_STOPPED: &str = "PipelineRun was gracefully stopped";
    pub const MISSING_RESULTS: &str = "Results were missing";
    pub const PIPELINE_TIMED_OUT: &str = "PipelineRun timeout has been reached";
    pub const TASKS_TIMED_OUT: &str = "PipelineRun Tasks timeout has been reached";
    pub const FINALLY_TIMED_OUT: &str = "PipelineRun Finally timeout has been reached";
    pub const EMPTY_ARRAY_IN_MATRIX: &str = "Matrix Parameters have an empty array";
    pub const NONE: &str = "None";
}

/// A pipeline task that did not run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedTask {
    pub name: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when_expressions: Vec<WhenExpression>,
}

/// A child TaskRun or CustomRun of a PipelineRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildStatusReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub pipeline_task_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when_expressions: Vec<WhenExpression>,
}
