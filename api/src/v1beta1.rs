//! The kinds Tekton serves at tekton.dev/v1beta1 only. CustomRun: what a PipelineRun
//! creates for a custom task (a taskRef or taskSpec with an apiVersion outside tekton.dev,
//! the seeds' `Run`); a controller of that kind runs it and writes its status, and the
//! PipelineRun waits for it. StepAction: the reusable work a step names with `ref`
//! (also read at tekton.dev/v1alpha1, where it started).

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::v1::schema::{preserve_unknown_list, preserve_unknown_object};
use crate::v1::{
    Condition, Duration, GROUP, Param, ParamSpec, PipelineTaskMetadata, StepResult, TaskRef,
    WorkspaceBinding,
};

/// The version CustomRun and StepAction are served at.
pub const VERSION: &str = "v1beta1";
/// `tekton.dev/v1beta1`.
pub const API_VERSION: &str = "tekton.dev/v1beta1";

/// `spec.statusMessage` of a CustomRun stopped because its PipelineRun was cancelled.
pub const CANCELLED_BY_PIPELINE: &str =
    "CustomRun cancelled as the PipelineRun it belongs to has been cancelled.";
/// `spec.statusMessage` of a CustomRun stopped because its PipelineRun timed out.
pub const CANCELLED_BY_PIPELINE_TIMEOUT: &str =
    "CustomRun cancelled as the PipelineRun it belongs to has timed out.";

/// The reasons a custom task's controller reports on a CustomRun's `Succeeded` condition.
pub mod customrun_reason {
    pub const STARTED: &str = "Started";
    pub const RUNNING: &str = "Running";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const CANCELLED: &str = "CustomRunCancelled";
    pub const TIMED_OUT: &str = "CustomRunTimedOut";
}

/// A tekton.dev/v1beta1 CustomRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CustomRunSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CustomRunStatus>,
}

/// `spec.status` of a CustomRun: set it to cancel the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CustomRunSpecStatus {
    RunCancelled,
}

/// Which custom task to run (by reference or embedded), with what.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomRunSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_ref: Option<TaskRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_spec: Option<EmbeddedCustomRunSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CustomRunSpecStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspaceBinding>,
}

/// A custom task's spec written in the Pipeline, passed on as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedCustomRunSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PipelineTaskMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub spec: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What the custom task's controller reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomRunStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<CustomRunResult>,
    /// Earlier attempts' statuses, as the custom task's controller keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_list")]
    pub retries_status: Vec<serde_json::Value>,
    /// Whatever else the custom task's controller reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub extra_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A result of a custom task: always a string.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomRunResult {
    pub name: String,
    pub value: String,
}

crate::v1::resource!(CustomRun, "customruns");

/// A tekton.dev/v1beta1 StepAction: what a step that names it with `ref` runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: StepActionSpec,
}

/// A StepAction's container, params and results. The step that refers to it gives the
/// rest of the container (resources, timeout, onError, workspaces, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepActionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<core::EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParamSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<StepResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<Box<core::SecurityContext>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<core::VolumeMount>,
}

crate::v1::resource!(StepAction, "stepactions");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_controllers_status_reads_back_with_results_and_extra_fields() {
        let run: CustomRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "tekton.dev/v1beta1",
            "kind": "CustomRun",
            "metadata": {"name": "ship-wait", "namespace": "ci"},
            "spec": {
                "customRef": {"apiVersion": "wait.testing.tekton.dev/v1beta1", "kind": "Wait"},
                "params": [{"name": "duration", "value": "10s"}],
                "serviceAccountName": "default",
            },
            "status": {
                "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}],
                "startTime": "2026-11-22T10:00:00Z",
                "results": [{"name": "done", "value": "yes"}],
                "extraFields": {"waited": "10s"},
                "retriesStatus": [{"conditions": [{"type": "Succeeded", "status": "False"}]}],
            },
        }))
        .unwrap();
        let status = run.status.as_ref().unwrap();
        assert_eq!(status.results[0].value, "yes");
        assert_eq!(status.retries_status.len(), 1);
        assert_eq!(
            run.spec.custom_ref.unwrap().kind.as_deref(),
            Some("Wait"),
            "the reference keeps its kind"
        );
    }
}
