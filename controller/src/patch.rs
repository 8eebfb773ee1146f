//! Writes both reconcilers share. Status writes are JSON merge patches (RFC 7386) holding
//! only what changed: fields that went away become `null`, unchanged ones are left out, so
//! a step event costs a few hundred bytes on the wire, not the whole status. Claims for
//! `volumeClaimTemplate` workspaces are created once, owned by the run.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tektite_api::v1::WorkspaceBinding;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "tektite-controller";

/// Parameters of every patch this controller sends.
pub fn write_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// Patches the status of `name` from `old` to `new`; whether anything was written.
pub async fn write_status<K, S>(
    api: &Api<K>,
    name: &str,
    old: &S,
    new: &S,
) -> Result<bool, kube::Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let before = serde_json::to_value(old).unwrap_or_default();
    let after = serde_json::to_value(new).unwrap_or_default();
    let Some(diff) = merge_diff(&before, &after) else {
        return Ok(false);
    };
    api.patch_status(
        name,
        &write_params(),
        &Patch::Merge(json!({ "status": diff })),
    )
    .await?;
    Ok(true)
}

/// Creates the claim of each `volumeClaimTemplate` binding (AlreadyExists is success);
/// on failure, the claim's name and the error.
pub async fn create_claims(
    client: &kube::Client,
    ns: &str,
    owner: Option<OwnerReference>,
    bindings: &[WorkspaceBinding],
) -> Result<(), (String, kube::Error)> {
    let owner_uid = owner.as_ref().map(|o| o.uid.clone()).unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    for b in bindings {
        let Some(template) = &b.volume_claim_template else {
            continue;
        };
        let name = tektite_engine::names::claim_name(
            template.metadata.name.as_deref(),
            &b.name,
            &owner_uid,
        );
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.to_owned()),
                labels: template.metadata.labels.clone(),
                annotations: template.metadata.annotations.clone(),
                owner_references: owner.clone().map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: template.spec.clone(),
            status: None,
        };
        match api.create(&PostParams::default(), &claim).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err((name, e)),
        }
    }
    Ok(())
}

/// The merge patch that turns `old` into `new`; `None` when they are equal.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, v) in n {
                let diff = match o.get(k) {
                    Some(before) => merge_diff(before, v),
                    None => Some(v.clone()),
                };
                if let Some(d) = diff {
                    out.insert(k.clone(), d);
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        // A JSON null in a merge patch deletes, so an object replacing a scalar (or the
        // other way round) is written whole.
        _ => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changes_are_written_and_removed_fields_become_null() {
        let old = json!({"podName": "p", "completionTime": "t", "steps": [{"name": "a"}],
                         "taskSpec": {"steps": [1]}});
        let new = json!({"podName": "p", "steps": [{"name": "a"}, {"name": "b"}],
                         "taskSpec": {"steps": [1]}});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"completionTime": null, "steps": [{"name": "a"}, {"name": "b"}]}))
        );
        assert_eq!(merge_diff(&new, &new), None);
    }

    #[test]
    fn nested_objects_are_diffed_key_by_key() {
        let old = json!({"a": {"x": 1, "y": 2}});
        let new = json!({"a": {"x": 1, "y": 3, "z": 4}});
        assert_eq!(merge_diff(&old, &new), Some(json!({"a": {"y": 3, "z": 4}})));
    }
}
