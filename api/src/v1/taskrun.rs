//! TaskRun: one execution of a Task, and its status.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::params::{Param, ParamType, ParamValue};
use super::pipeline::TaskRef;
use super::pod_template::PodTemplate;
use super::status::{Condition, Provenance};
use super::task::TaskSpec;
use super::workspace::WorkspaceBinding;
use std::collections::BTreeMap;

/// A tekton.dev/v1 TaskRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: TaskRunSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskRunStatus>,
}

/// `spec.status` of a TaskRun: set it to cancel the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaskRunSpecStatus {
    TaskRunCancelled,
}

/// Which Task to run, with what.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<TaskRunDebug>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_ref: Option<TaskRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_spec: Option<TaskSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskRunSpecStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<Box<PodTemplate>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspaceBinding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_specs: Vec<TaskRunStepSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecar_specs: Vec<TaskRunSidecarSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_resources: Option<core::ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
}

/// Breakpoints for debugging a TaskRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunDebug {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakpoints: Option<TaskBreakpoints>,
}

/// Where a debugged TaskRun pauses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskBreakpoints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before_steps: Vec<String>,
}

/// Overrides the compute resources of one step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunStepSpec {
    pub name: String,
    pub compute_resources: core::ResourceRequirements,
}

/// Overrides the compute resources of one sidecar.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunSidecarSpec {
    pub name: String,
    pub compute_resources: core::ResourceRequirements,
}

/// What is known of a TaskRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub pod_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepState>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries_status: Vec<TaskRunStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<TaskRunResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Artifacts>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<SidecarState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_spec: Option<TaskSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub span_context: BTreeMap<String, String>,
}

/// A result a TaskRun (or one of its steps) produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunResult {
    pub name: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ParamType>,
    pub value: ParamValue,
}

/// The state of one step's container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<core::ContainerStateWaiting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<core::ContainerStateRunning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<core::ContainerStateTerminated>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(rename = "imageID", default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<TaskRunResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Artifact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Artifact>,
}

/// The state of one sidecar's container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<core::ContainerStateWaiting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<core::ContainerStateRunning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<core::ContainerStateTerminated>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(rename = "imageID", default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// Artifacts a TaskRun consumed and produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifacts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Artifact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Artifact>,
}

impl Artifacts {
    /// Tekton's merge: `other`'s artifacts added by name, values not already there
    /// appended, an output's `buildOutput` true once either says so; first seen first.
    pub fn merge(&mut self, other: &Artifacts) {
        fn into(list: &mut Vec<Artifact>, more: &[Artifact], sticky_output: bool) {
            for a in more {
                let at = match list.iter().position(|x| x.name == a.name) {
                    Some(i) => i,
                    None => {
                        list.push(Artifact {
                            name: a.name.clone(),
                            values: Vec::new(),
                            build_output: if sticky_output { a.build_output } else { None },
                        });
                        list.len() - 1
                    }
                };
                let have = &mut list[at];
                if sticky_output && a.build_output == Some(true) {
                    have.build_output = Some(true);
                }
                for v in &a.values {
                    if !have.values.contains(v) {
                        have.values.push(v.clone());
                    }
                }
            }
        }
        into(&mut self.inputs, &other.inputs, false);
        into(&mut self.outputs, &other.outputs, true);
    }

    /// The values of artifact `name` of `io` (no name: the first), as the JSON list Tekton
    /// substitutes for `$(steps.<s>.outputs.<name>)` and `$(tasks.<t>.outputs.<name>)`.
    pub fn values_json(&self, io: crate::vars::ArtifactIo, name: Option<&str>) -> Option<String> {
        let list = match io {
            crate::vars::ArtifactIo::Inputs => &self.inputs,
            crate::vars::ArtifactIo::Outputs => &self.outputs,
        };
        let found = match name {
            Some(n) => list.iter().find(|a| a.name.as_deref() == Some(n)),
            None => list.first(),
        }?;
        serde_json::to_string(&found.values).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.outputs.is_empty()
    }
}

/// One named artifact with its values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ArtifactValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_output: Option<bool>,
}

/// Where an artifact is and its digests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactValue {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifacts(json: serde_json::Value) -> Artifacts {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn artifacts_merge_by_name_without_repeating_values_and_build_output_sticks() {
        let mut a = artifacts(serde_json::json!({
            "inputs": [{"name": "src", "values": [{"uri": "a"}]}],
            "outputs": [{"name": "image", "buildOutput": true, "values": [{"uri": "x"}]}]
        }));
        a.merge(&artifacts(serde_json::json!({
            "inputs": [{"name": "src", "values": [{"uri": "a"}, {"uri": "b"}]}, {"name": "more", "values": [{"uri": "m"}]}],
            "outputs": [{"name": "image", "buildOutput": false, "values": [{"uri": "y"}]}]
        })));
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({
                "inputs": [
                    {"name": "src", "values": [{"uri": "a"}, {"uri": "b"}]},
                    {"name": "more", "values": [{"uri": "m"}]}
                ],
                "outputs": [{"name": "image", "buildOutput": true, "values": [{"uri": "x"}, {"uri": "y"}]}]
            })
        );
        use crate::vars::ArtifactIo;
        assert_eq!(
            a.values_json(ArtifactIo::Inputs, Some("more")).as_deref(),
            Some(r#"[{"uri":"m"}]"#)
        );
        assert_eq!(
            a.values_json(ArtifactIo::Outputs, None).as_deref(),
            Some(r#"[{"uri":"x"},{"uri":"y"}]"#)
        );
        assert_eq!(a.values_json(ArtifactIo::Outputs, Some("nope")), None);
    }
}
