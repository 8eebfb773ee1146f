//! Workspaces and Task volumes as directories on this machine: a host directory (`-w`),
//! an emptyDir (fresh per TaskRun, inside its pod directory), a claim (one directory per
//! claim under the run's state directory, shared by every task), or the files of a
//! ConfigMap or Secret given among the input documents.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1 as core;
use tektite_api::v1::WorkspaceBinding;

/// The documents volumes may be made from.
#[derive(Debug, Default)]
pub struct Sources {
    pub config_maps: BTreeMap<String, core::ConfigMap>,
    pub secrets: BTreeMap<String, core::Secret>,
    pub host: BTreeMap<String, PathBuf>,
    /// `<state>/claims`: where PersistentVolumeClaims and volumeClaimTemplates live.
    pub claims_dir: PathBuf,
}

/// A directory ready for the steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDir {
    pub path: PathBuf,
    /// The claim's name, for `$(workspaces.w.claim)`.
    pub claim: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("subPath {0:?} must be a relative path inside the volume")]
    SubPath(String),
    #[error("{kind} {name:?} is not among the files given")]
    Missing { kind: &'static str, name: String },
    #[error("key {key:?} is not in {kind} {name:?}")]
    MissingKey {
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("{0} volumes need a cluster: bind the workspace with -w NAME=PATH")]
    Unsupported(&'static str),
}

fn io_err<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> VolumeError + 'p {
    move |source| VolumeError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

impl Sources {
    /// The directory for workspace binding `b` (named `volume` in the pod), creating it.
    /// `pod_volumes` is the pod's `volumes` directory; `extra_sub_path` is the pipeline
    /// task's own subPath, under the binding's.
    pub fn workspace(
        &self,
        b: &WorkspaceBinding,
        volume: &str,
        pod_volumes: &Path,
        extra_sub_path: Option<&str>,
    ) -> Result<HostDir, VolumeError> {
        let (base, claim) = if let Some(dir) = self.host.get(&b.name) {
            (dir.clone(), None)
        } else if b.empty_dir.is_some() {
            (
                pod_volumes.join("kubernetes.io~empty-dir").join(volume),
                None,
            )
        } else if let Some(pvc) = &b.persistent_volume_claim {
            (
                self.claims_dir.join(&pvc.claim_name),
                Some(pvc.claim_name.clone()),
            )
        } else if b.volume_claim_template.is_some() {
            let name = format!("pvc-{}", b.name);
            (self.claims_dir.join(&name), Some(name))
        } else if let Some(cm) = &b.config_map {
            let dir = pod_volumes.join("kubernetes.io~configmap").join(volume);
            self.config_map(cm, &dir)?;
            (dir, None)
        } else if let Some(s) = &b.secret {
            let dir = pod_volumes.join("kubernetes.io~secret").join(volume);
            self.secret(s, &dir)?;
            (dir, None)
        } else if b.projected.is_some() {
            return Err(VolumeError::Unsupported("projected"));
        } else {
            return Err(VolumeError::Unsupported("csi"));
        };
        let mut path = base;
        for sub in [b.sub_path.as_deref(), extra_sub_path]
            .into_iter()
            .flatten()
        {
            path = join_sub_path(&path, sub)?;
        }
        fs::create_dir_all(&path).map_err(io_err("cannot create", &path))?;
        Ok(HostDir { path, claim })
    }

    /// The directory for a Task's own volume (emptyDir, configMap or secret).
    pub fn task_volume(
        &self,
        v: &core::Volume,
        pod_volumes: &Path,
    ) -> Result<PathBuf, VolumeError> {
        let name = format!("vol-{}", v.name);
        let dir = if let Some(cm) = &v.config_map {
            let dir = pod_volumes.join("kubernetes.io~configmap").join(&name);
            self.config_map(cm, &dir)?;
            dir
        } else if let Some(s) = &v.secret {
            let dir = pod_volumes.join("kubernetes.io~secret").join(&name);
            self.secret(s, &dir)?;
            dir
        } else if let Some(pvc) = &v.persistent_volume_claim {
            self.claims_dir.join(&pvc.claim_name)
        } else if v.empty_dir.is_some() {
            pod_volumes.join("kubernetes.io~empty-dir").join(&name)
        } else {
            return Err(VolumeError::Unsupported(
                "volumes other than emptyDir, configMap, secret and persistentVolumeClaim",
            ));
        };
        fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
        Ok(dir)
    }

    fn config_map(&self, cm: &core::ConfigMapVolumeSource, dir: &Path) -> Result<(), VolumeError> {
        let name = cm.name.as_str();
        let Some(found) = self.config_maps.get(name) else {
            if cm.optional == Some(true) {
                return fs::create_dir_all(dir).map_err(io_err("cannot create", dir));
            }
            return Err(VolumeError::Missing {
                kind: "ConfigMap",
                name: name.into(),
            });
        };
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in found.data.iter().flatten() {
            files.insert(k.clone(), v.clone().into_bytes());
        }
        for (k, v) in found.binary_data.iter().flatten() {
            files.insert(k.clone(), v.0.clone());
        }
        write_files("ConfigMap", name, files, cm.items.as_deref(), dir)
    }

    fn secret(&self, s: &core::SecretVolumeSource, dir: &Path) -> Result<(), VolumeError> {
        let name = s.secret_name.as_deref().unwrap_or_default();
        let Some(found) = self.secrets.get(name) else {
            if s.optional == Some(true) {
                return fs::create_dir_all(dir).map_err(io_err("cannot create", dir));
            }
            return Err(VolumeError::Missing {
                kind: "Secret",
                name: name.into(),
            });
        };
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in found.data.iter().flatten() {
            files.insert(k.clone(), v.0.clone());
        }
        for (k, v) in found.string_data.iter().flatten() {
            files.insert(k.clone(), v.clone().into_bytes());
        }
        write_files("Secret", name, files, s.items.as_deref(), dir)
    }

    /// The value of a ConfigMap or Secret key, for env `valueFrom`.
    pub fn key(&self, kind: &'static str, name: &str, key: &str) -> Result<String, VolumeError> {
        let missing_key = || VolumeError::MissingKey {
            kind,
            name: name.into(),
            key: key.into(),
        };
        let missing = || VolumeError::Missing {
            kind,
            name: name.into(),
        };
        if kind == "ConfigMap" {
            let cm = self.config_maps.get(name).ok_or_else(missing)?;
            cm.data
                .as_ref()
                .and_then(|d| d.get(key).cloned())
                .ok_or_else(missing_key)
        } else {
            let s = self.secrets.get(name).ok_or_else(missing)?;
            s.string_data
                .as_ref()
                .and_then(|d| d.get(key).cloned())
                .or_else(|| {
                    s.data
                        .as_ref()
                        .and_then(|d| d.get(key))
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                })
                .ok_or_else(missing_key)
        }
    }

    /// Every key of a ConfigMap or Secret, for `envFrom`.
    pub fn all_keys(
        &self,
        kind: &'static str,
        name: &str,
    ) -> Result<Vec<(String, String)>, VolumeError> {
        let missing = || VolumeError::Missing {
            kind,
            name: name.into(),
        };
        if kind == "ConfigMap" {
            let cm = self.config_maps.get(name).ok_or_else(missing)?;
            Ok(cm.data.clone().unwrap_or_default().into_iter().collect())
        } else {
            let s = self.secrets.get(name).ok_or_else(missing)?;
            let mut out: BTreeMap<String, String> = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            out.extend(s.string_data.clone().unwrap_or_default());
            Ok(out.into_iter().collect())
        }
    }
}

fn write_files(
    kind: &'static str,
    name: &str,
    mut files: BTreeMap<String, Vec<u8>>,
    items: Option<&[core::KeyToPath]>,
    dir: &Path,
) -> Result<(), VolumeError> {
    fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    let chosen: Vec<(String, Vec<u8>)> = match items {
        Some(items) => {
            let mut out = Vec::new();
            for item in items {
                let bytes = files
                    .remove(&item.key)
                    .ok_or_else(|| VolumeError::MissingKey {
                        kind,
                        name: name.into(),
                        key: item.key.clone(),
                    })?;
                out.push((item.path.clone(), bytes));
            }
            out
        }
        None => files.into_iter().collect(),
    };
    for (path, bytes) in chosen {
        let file = join_sub_path(dir, &path)?;
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
        }
        fs::write(&file, bytes).map_err(io_err("cannot write", &file))?;
    }
    Ok(())
}

/// `base/sub`, refusing absolute paths and `..`.
fn join_sub_path(base: &Path, sub: &str) -> Result<PathBuf, VolumeError> {
    let p = Path::new(sub);
    if sub.is_empty()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(VolumeError::SubPath(sub.into()));
    }
    Ok(base.join(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_paths_cannot_leave_the_volume() {
        let base = Path::new("/v");
        assert_eq!(join_sub_path(base, "a/b").unwrap(), Path::new("/v/a/b"));
        for bad in ["../x", "/etc", "a/../../b", ""] {
            assert!(join_sub_path(base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_config_map_becomes_files_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = Sources {
            claims_dir: dir.path().join("claims"),
            ..Sources::default()
        };
        let cm = core::ConfigMap {
            data: Some(BTreeMap::from([(
                "settings.xml".to_owned(),
                "<s/>".to_owned(),
            )])),
            ..Default::default()
        };
        sources.config_maps.insert("maven".into(), cm);
        let binding = WorkspaceBinding {
            name: "conf".into(),
            config_map: Some(core::ConfigMapVolumeSource {
                name: "maven".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let got = sources
            .workspace(&binding, "ws-conf", dir.path(), None)
            .unwrap();
        assert_eq!(
            fs::read_to_string(got.path.join("settings.xml")).unwrap(),
            "<s/>"
        );

        let missing = WorkspaceBinding {
            name: "conf".into(),
            config_map: Some(core::ConfigMapVolumeSource {
                name: "nope".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = sources
            .workspace(&missing, "ws-conf", dir.path(), None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ConfigMap \"nope\" is not among the files given"
        );
    }

    #[test]
    fn claims_are_shared_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let sources = Sources {
            claims_dir: dir.path().join("claims"),
            ..Sources::default()
        };
        let b = WorkspaceBinding {
            name: "src".into(),
            volume_claim_template: Some(Default::default()),
            ..Default::default()
        };
        let a = sources
            .workspace(&b, "ws-a", &dir.path().join("p1"), None)
            .unwrap();
        let c = sources
            .workspace(&b, "ws-b", &dir.path().join("p2"), Some("sub"))
            .unwrap();
        assert_eq!(c.path, a.path.join("sub"));
        assert_eq!(a.claim.as_deref(), Some("pvc-src"));
    }
}
