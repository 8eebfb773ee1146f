//! Workspaces: what a Task or Pipeline declares and what a run binds to them.

use k8s_openapi::api::core::v1 as core;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A workspace a Task declares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceDeclaration {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl WorkspaceDeclaration {
    /// Where the workspace is mounted: `mountPath`, or `/workspace/<name>`.
    pub fn path(&self) -> String {
        self.mount_path
            .clone()
            .unwrap_or_else(|| format!("/workspace/{}", self.name))
    }
}

/// A step or sidecar that mounts a Task workspace at its own path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceUsage {
    pub name: String,
    /// Where this step or sidecar mounts it; empty means the workspace's own path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_path: String,
}

/// A workspace a Pipeline declares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineWorkspaceDeclaration {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// A pipeline task binding one of its Task's workspaces to a Pipeline workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspacePipelineTaskBinding {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

/// A volume a TaskRun or PipelineRun binds to a declared workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceBinding {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::claim_template")]
    pub volume_claim_template: Option<core::PersistentVolumeClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<core::PersistentVolumeClaimVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<core::EmptyDirVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<core::ConfigMapVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<core::SecretVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected: Option<core::ProjectedVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csi: Option<core::CSIVolumeSource>,
}

/// The kind of volume a binding names, for `$(workspaces.<w>.volume)` and validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingSource {
    VolumeClaimTemplate,
    PersistentVolumeClaim,
    EmptyDir,
    ConfigMap,
    Secret,
    Projected,
    Csi,
}

impl WorkspaceBinding {
    /// Every volume source the binding sets (exactly one is valid).
    pub fn sources(&self) -> Vec<BindingSource> {
        let mut out = Vec::new();
        let mut add = |set: bool, s| {
            if set {
                out.push(s)
            }
        };
        add(
            self.volume_claim_template.is_some(),
            BindingSource::VolumeClaimTemplate,
        );
        add(
            self.persistent_volume_claim.is_some(),
            BindingSource::PersistentVolumeClaim,
        );
        add(self.empty_dir.is_some(), BindingSource::EmptyDir);
        add(self.config_map.is_some(), BindingSource::ConfigMap);
        add(self.secret.is_some(), BindingSource::Secret);
        add(self.projected.is_some(), BindingSource::Projected);
        add(self.csi.is_some(), BindingSource::Csi);
        out
    }
}
