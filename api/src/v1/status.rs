//! Status shared by TaskRun and PipelineRun: the `Succeeded` condition and its reasons.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::preserve_unknown_object;

/// The condition type every run reports.
pub const SUCCEEDED: &str = "Succeeded";

/// A knative-style condition (`type`, `status` True/False/Unknown, `reason`, `message`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Condition {
    /// The `Succeeded` condition every run carries: `status` True, False or Unknown.
    pub fn succeeded(status: &str, reason: &str, message: impl Into<String>) -> Condition {
        Condition {
            type_: super::SUCCEEDED.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..Condition::default()
        }
    }
}

/// Where a resolved Task or Pipeline came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<String>,
}

/// What a run was built from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_source: Option<RefSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub feature_flags: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The reasons Tekton reports on the `Succeeded` condition of a TaskRun.
pub mod taskrun_reason {
    pub const STARTED: &str = "Started";
    pub const RUNNING: &str = "Running";
    pub const PENDING: &str = "Pending";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const TO_BE_RETRIED: &str = "ToBeRetried";
    /// Failed, in a pipeline task with `onError: continue`.
    pub const FAILURE_IGNORED: &str = "FailureIgnored";
    pub const CANCELLED: &str = "TaskRunCancelled";
    pub const TIMED_OUT: &str = "TaskRunTimeout";
    pub const IMAGE_PULL_FAILED: &str = "TaskRunImagePullFailed";
    pub const RESULTS_VERIFICATION_FAILED: &str = "TaskRunResultsVerificationFailed";
    pub const RESOLUTION_FAILED: &str = "TaskRunResolutionFailed";
    pub const VALIDATION_FAILED: &str = "TaskRunValidationFailed";
    pub const EVICTED: &str = "Evicted";
    pub const POD_CREATION_FAILED: &str = "PodCreationFailed";
    pub const EXCEEDED_NODE_RESOURCES: &str = "ExceededNodeResources";
    pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
}

/// The reasons Tekton reports on the `Succeeded` condition of a PipelineRun.
pub mod pipelinerun_reason {
    pub const STARTED: &str = "Started";
    pub const RUNNING: &str = "Running";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const COMPLETED: &str = "Completed";
    pub const FAILED: &str = "Failed";
    pub const CANCELLED: &str = "Cancelled";
    pub const PENDING: &str = "PipelineRunPending";
    pub const TIMED_OUT: &str = "PipelineRunTimeout";
    pub const STOPPING: &str = "PipelineRunStopping";
    pub const TIMED_OUT_RUNNING_FINALLY: &str = "PipelineRunTimeoutRunningFinally";
    pub const CANCELLED_RUNNING_FINALLY: &str = "CancelledRunningFinally";
    pub const STOPPED_RUNNING_FINALLY: &str = "StoppedRunningFinally";
    pub const COULD_NOT_GET_PIPELINE: &str = "CouldntGetPipeline";
    pub const COULD_NOT_GET_TASK: &str = "CouldntGetTask";
    pub const INVALID_GRAPH: &str = "PipelineInvalidGraph";
    pub const PARAMETER_MISSING: &str = "ParameterMissing";
    pub const PARAMETER_TYPE_MISMATCH: &str = "ParameterTypeMismatch";
    pub const INVALID_TASK_RESULT_REFERENCE: &str = "InvalidTaskResultReference";
    pub const INVALID_WORKSPACE_BINDING: &str = "InvalidWorkspaceBindings";
    pub const CREATE_RUN_FAILED: &str = "CreateRunFailed";
    pub const VALIDATION_FAILED: &str = "PipelineValidationFailed";
    pub const CEL_EVALUATION_FAILED: &str = "CELEvaluationFailed";
    pub const INVALID_PARAM_VALUE: &str = "InvalidParamValue";
}
