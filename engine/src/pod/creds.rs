//! The ServiceAccount's credentials in the Pod, as Tekton mounts them: each Secret that
//! provides any at `/tekton/creds-secrets/<secret>` (read-only) in every step, and a fresh
//! empty `/tekton/creds` per step for its entrypoint to write them into (a step may run as
//! any user, so none shares another's). Nothing is added when there are none.

use k8s_openapi::api::core::v1 as core;
use tektite_api::step::creds::{CREDS_DIR, Credential, SECRETS_DIR};

/// The Secrets, each once, in the order the credentials name them.
fn secrets(credentials: &[Credential]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in credentials {
        if !out.contains(&c.secret()) {
            out.push(c.secret());
        }
    }
    out
}

fn secret_volume(i: usize) -> String {
    format!("tekton-creds-{i}")
}

fn home_volume(step: usize) -> String {
    format!("tekton-creds-init-home-{step}")
}

/// The Secrets' volumes and one empty credentials directory per step.
pub fn volumes(credentials: &[Credential], steps: usize) -> Vec<core::Volume> {
    if credentials.is_empty() {
        return Vec::new();
    }
    let secrets = secrets(credentials)
        .into_iter()
        .enumerate()
        .map(|(i, s)| core::Volume {
            name: secret_volume(i),
            secret: Some(core::SecretVolumeSource {
                secret_name: Some(s.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        });
    let homes = (0..steps).map(|i| core::Volume {
        name: home_volume(i),
        empty_dir: Some(core::EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    secrets.chain(homes).collect()
}

/// What step `step` mounts of them.
pub fn mounts(credentials: &[Credential], step: usize) -> Vec<core::VolumeMount> {
    if credentials.is_empty() {
        return Vec::new();
    }
    let secrets = secrets(credentials)
        .into_iter()
        .enumerate()
        .map(|(i, s)| core::VolumeMount {
            name: secret_volume(i),
            mount_path: format!("{SECRETS_DIR}/{s}"),
            read_only: Some(true),
            ..Default::default()
        });
    secrets
        .chain([core::VolumeMount {
            name: home_volume(step),
            mount_path: CREDS_DIR.into(),
            ..Default::default()
        }])
        .collect()
}
