//! Pipeline: pipeline tasks, their ordering, matrix, finally tasks and pipeline results.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::params::{Param, ParamSpec, ParamType, ParamValue};
use super::schema::preserve_unknown_object;
use super::task::{OnError, TaskSpec};
use super::when::WhenExpression;
use super::workspace::{PipelineWorkspaceDeclaration, WorkspacePipelineTaskBinding};

/// A tekton.dev/v1 Pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PipelineSpec,
}

/// The tasks of a Pipeline and what they share.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<PipelineTask>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParamSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<PipelineWorkspaceDeclaration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<PipelineResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finally: Vec<PipelineTask>,
}

/// One task of a Pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineTask {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_ref: Option<TaskRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_spec: Option<Box<EmbeddedTask>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<WhenExpression>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_after: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<Matrix>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspacePipelineTaskBinding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_ref: Option<PipelineRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_spec: Option<Box<PipelineSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
}

/// Labels and annotations for the TaskRuns a pipeline task creates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineTaskMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A Task spec written inside a pipeline task (or a custom task's spec).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedTask {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The spec of a custom task, passed on as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub spec: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PipelineTaskMetadata>,
    #[serde(flatten)]
    pub task: TaskSpec,
}

/// A reference to a Task (or ClusterTask, or a custom task kind), by name or via a resolver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
}

impl PipelineSpec {
    /// A PipelineRun's workspaces reach its Pipeline's embedded taskSpecs undeclared, as
    /// Tekton propagates them: a task whose embedded taskSpec refers to a bound workspace
    /// (`$(workspaces.<name>...)`) without binding it gets it bound under the same name,
    /// and declared in its taskSpec. A spec the PipelineRun `embedded` also sees each bound
    /// workspace it does not declare as declared; a referenced Pipeline only its own.
    pub fn propagate_workspaces(&mut self, bindings: &[super::WorkspaceBinding], embedded: bool) {
        let declared: Vec<super::WorkspaceBinding>;
        let bindings = if embedded {
            bindings
        } else {
            declared = bindings
                .iter()
                .filter(|b| self.workspaces.iter().any(|w| w.name == b.name))
                .cloned()
                .collect();
            &declared
        };
        for b in bindings {
            if !self.workspaces.iter().any(|w| w.name == b.name) {
                self.workspaces.push(PipelineWorkspaceDeclaration {
                    name: b.name.clone(),
                    ..Default::default()
                });
            }
        }
        for task in self.tasks.iter_mut().chain(self.finally.iter_mut()) {
            let Some(embedded) = task.task_spec.as_mut().filter(|e| !e.is_custom()) else {
                continue;
            };
            let text = serde_json::to_string(&embedded.task).unwrap_or_default();
            let mut used: Vec<String> = crate::vars::references(&text)
                .into_iter()
                .filter_map(|o| match o.reference {
                    crate::vars::Reference::Workspace { name, .. } => Some(name),
                    _ => None,
                })
                .collect();
            used.sort();
            used.dedup();
            for name in used {
                let bound = bindings.iter().any(|b| b.name == name);
                if !bound || task.workspaces.iter().any(|w| w.name == name) {
                    continue;
                }
                task.workspaces.push(WorkspacePipelineTaskBinding {
                    name: name.clone(),
                    workspace: Some(name.clone()),
                    sub_path: None,
                });
                if !embedded.task.workspaces.iter().any(|w| w.name == name) {
                    embedded.task.workspaces.push(super::WorkspaceDeclaration {
                        name,
                        ..Default::default()
                    });
                }
            }
        }
    }
}

impl EmbeddedTask {
    /// A custom task's spec: it names its own apiVersion or kind.
    pub fn is_custom(&self) -> bool {
        self.api_version.is_some() || self.kind.is_some()
    }
}

impl PipelineTask {
    /// Runs as a CustomRun under a custom task's controller, not as a TaskRun.
    pub fn is_custom(&self) -> bool {
        self.task_ref.as_ref().is_some_and(TaskRef::is_custom)
            || self.task_spec.as_ref().is_some_and(|e| e.is_custom())
    }

    /// Runs a child PipelineRun (Pipelines in Pipelines): it names a Pipeline or embeds one.
    pub fn runs_pipeline(&self) -> bool {
        self.pipeline_ref.is_some() || self.pipeline_spec.is_some()
    }
}

impl TaskRef {
    /// A reference to a custom task (the seeds' `Run`): an apiVersion other than tekton.dev.
    pub fn is_custom(&self) -> bool {
        self.api_version
            .as_deref()
            .is_some_and(|v| !v.starts_with("tekton.dev/"))
    }
}

/// A reference to a Pipeline, by name or via a resolver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
}

/// Fans a pipeline task out over combinations of array params.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<IncludeParams>,
}

/// An extra combination (or extra params for matching combinations) of a matrix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncludeParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
}

/// A result of the whole Pipeline, computed from task results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineResult {
    pub name: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ParamType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub value: ParamValue,
}
