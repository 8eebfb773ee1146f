//! The Pod's volumes: tektite's own (`/tekton/...`, `/workspace`; see
//! `tektite_api::step::layout`), the workspace bindings, and the Task's `volumes`.

use std::collections::BTreeMap;

use crate::names;
use crate::task::BoundWorkspace;
use k8s_openapi::api::core::v1 as core;
use tektite_api::step::layout::{CANCEL_FILE, READY_FILE, Volume};
use tektite_api::v1::{TaskSpec, WorkspaceBinding};

use super::BuildError;
use super::meta::{CANCEL_ANNOTATION, READY_ANNOTATION};

/// The bound workspaces of a Task: what the steps see, and what the Pod needs.
#[derive(Clone, Debug, Default)]
pub struct Workspaces {
    pub bound: BTreeMap<String, BoundWorkspace>,
    pub volumes: Vec<core::Volume>,
    /// Each workspace's mount, by workspace name.
    pub mounts: BTreeMap<String, core::VolumeMount>,
}

/// The PVC a `volumeClaimTemplate` binding becomes, in the run with UID `owner_uid`.
fn claim_name(binding: &WorkspaceBinding, owner_uid: &str) -> String {
    let template_name = binding
        .volume_claim_template
        .as_ref()
        .and_then(|t| t.metadata.name.as_deref());
    names::claim_name(template_name, &binding.name, owner_uid)
}

/// The volume name of workspace `name`.
pub fn volume_name(workspace: &str) -> String {
    names::child_name("ws", &format!("-{workspace}"))
}

pub fn workspaces(
    spec: &TaskSpec,
    bindings: &[WorkspaceBinding],
    owner_uid: &str,
) -> Result<Workspaces, BuildError> {
    let mut out = Workspaces::default();
    for decl in &spec.workspaces {
        let Some(b) = bindings.iter().find(|b| b.name == decl.name) else {
            continue;
        };
        let volume = volume_name(&decl.name);
        let (source, claim, read_only) = source(b, owner_uid)?;
        out.volumes.push(core::Volume {
            name: volume.clone(),
            ..source
        });
        out.mounts.insert(
            decl.name.clone(),
            core::VolumeMount {
                name: volume.clone(),
                mount_path: decl.path(),
                sub_path: b.sub_path.clone().filter(|s| !s.is_empty()),
                read_only: (decl.read_only || read_only).then_some(true),
                ..core::VolumeMount::default()
            },
        );
        out.bound.insert(
            decl.name.clone(),
            BoundWorkspace {
                path: decl.path(),
                claim,
                volume,
            },
        );
    }
    Ok(out)
}

/// The volume source of a binding, its claim's name, and whether it is read-only by nature.
fn source(
    b: &WorkspaceBinding,
    owner_uid: &str,
) -> Result<(core::Volume, Option<String>, bool), BuildError> {
    let v = core::Volume::default;
    let claim = |name: String| core::Volume {
        persistent_volume_claim: Some(core::PersistentVolumeClaimVolumeSource {
            claim_name: name,
            read_only: None,
        }),
        ..v()
    };
    Ok(if let Some(c) = &b.persistent_volume_claim {
        (
            claim(c.claim_name.clone()),
            Some(c.claim_name.clone()),
            false,
        )
    } else if b.volume_claim_template.is_some() {
        let name = claim_name(b, owner_uid);
        (claim(name.clone()), Some(name), false)
    } else if let Some(e) = &b.empty_dir {
        (
            core::Volume {
                empty_dir: Some(e.clone()),
                ..v()
            },
            None,
            false,
        )
    } else if let Some(c) = &b.config_map {
        (
            core::Volume {
                config_map: Some(c.clone()),
                ..v()
            },
            None,
            true,
        )
    } else if let Some(s) = &b.secret {
        (
            core::Volume {
                secret: Some(s.clone()),
                ..v()
            },
            None,
            true,
        )
    } else if let Some(p) = &b.projected {
        (
            core::Volume {
                projected: Some(p.clone()),
                ..v()
            },
            None,
            true,
        )
    } else if let Some(c) = &b.csi {
        (
            core::Volume {
                csi: Some(c.clone()),
                ..v()
            },
            None,
            false,
        )
    } else {
        return Err(BuildError::NoVolume(b.name.clone()));
    })
}

fn empty_dir(v: &Volume) -> core::Volume {
    core::Volume {
        name: v.name(),
        empty_dir: Some(core::EmptyDirVolumeSource::default()),
        ..core::Volume::default()
    }
}

/// The ready and cancel annotations as files.
fn downward() -> core::Volume {
    let item = |path: &str, annotation: &str| core::DownwardAPIVolumeFile {
        path: path.into(),
        field_ref: Some(core::ObjectFieldSelector {
            field_path: format!("metadata.annotations['{annotation}']"),
            api_version: None,
        }),
        ..core::DownwardAPIVolumeFile::default()
    };
    core::Volume {
        name: Volume::Downward.name(),
        downward_api: Some(core::DownwardAPIVolumeSource {
            items: Some(vec![
                item(READY_FILE, READY_ANNOTATION),
                item(CANCEL_FILE, CANCEL_ANNOTATION),
            ]),
            ..core::DownwardAPIVolumeSource::default()
        }),
        ..core::Volume::default()
    }
}

/// Every volume of the Pod; `/tekton/artifacts` only where `artifacts` are used.
pub fn volumes(
    spec: &TaskSpec,
    workspaces: Vec<core::Volume>,
    artifacts: bool,
) -> Vec<core::Volume> {
    let mut out = vec![empty_dir(&Volume::Bin)];
    out.extend((0..spec.steps.len()).map(|i| empty_dir(&Volume::Run(i))));
    for v in [
        Volume::Steps,
        Volume::Results,
        Volume::Scripts,
        Volume::Home,
        Volume::Workspace,
    ] {
        out.push(empty_dir(&v));
    }
    if artifacts {
        out.push(empty_dir(&Volume::Artifacts));
    }
    out.push(downward());
    out.extend(workspaces);
    out.extend(spec.volumes.iter().cloned());
    out
}
