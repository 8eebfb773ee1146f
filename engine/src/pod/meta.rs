//! The Pod's name, labels, annotations and owner: Tekton's, so `kubectl get pods -l
//! tekton.dev/taskRun=...` and tools that read them keep working, plus tektite's
//! `tektite.dev/managed-by` that its watches select on. The TaskRun's
//! `app.kubernetes.io/managed-by` is not copied: Tekton's controller would take the Pod.

use std::collections::BTreeMap;

use crate::names::pod_name;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tektite_api::labels;
use tektite_api::v1::TaskRun;

/// Set to [`READY_VALUE`] once the sidecars are ready: the first step waits for it.
pub const READY_ANNOTATION: &str = "tekton.dev/ready";
pub const READY_VALUE: &str = "READY";
/// Set (non-empty) to tell the entrypoints to stop.
pub const CANCEL_ANNOTATION: &str = "tekton.dev/cancel";

/// The owner reference every child of `obj` carries: controller, and (as Tekton's) it
/// blocks the owner's foreground deletion until the child is gone. None without a name
/// and UID.
pub fn controller_ref<K>(obj: &K) -> Option<OwnerReference>
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let meta = obj.metadata();
    Some(OwnerReference {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

pub fn metadata(
    tr: &TaskRun,
    task_name: Option<&str>,
    retry: u32,
    has_sidecars: bool,
) -> ObjectMeta {
    let name = tr.metadata.name.clone().unwrap_or_default();
    let mut labels_map = tr.metadata.labels.clone().unwrap_or_default();
    labels_map.insert(labels::TASK_RUN.into(), name.clone());
    if let Some(uid) = &tr.metadata.uid {
        labels_map.insert(labels::TASK_RUN_UID.into(), uid.clone());
    }
    if let Some(task) = task_name {
        labels_map.insert(labels::TASK.into(), task.into());
    }
    labels_map.remove(labels::MANAGED_BY);
    labels_map.insert(labels::TEKTITE_POD.into(), labels::TEKTITE_POD_VALUE.into());
    let mut annotations: BTreeMap<String, String> = tr
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !labels::NOT_COPIED.contains(&k.as_str()))
        .collect();
    if !has_sidecars {
        // Nothing to wait for: the first step starts at once.
        annotations.insert(READY_ANNOTATION.into(), READY_VALUE.into());
    }
    ObjectMeta {
        name: Some(pod_name(&name, retry)),
        namespace: tr.metadata.namespace.clone(),
        labels: Some(labels_map),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: controller_ref(tr).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}
