//! What the controller keeps of a Pod it watches. A built Pod carries its scripts, volumes,
//! mounts, arguments and a container per step, which nothing reads back; k8s-openapi's
//! Container alone is 2 KiB before any of its contents, so a 20-step Pod cached whole cost
//! over 40 KiB. Kept: the metadata (without managedFields), the node, the name and image of
//! each sidecar (finished Pods' sidecars are stopped by image), and the status (which
//! names every container and, while one waits, its image).

use k8s_openapi::api::core::v1 as core;
use tektite_api::labels::Container;

/// Drops what the reconcilers never read. The Pod index reads the volumes' claims before.
pub fn slim(pod: &mut core::Pod) {
    pod.metadata.managed_fields = None;
    if let Some(spec) = pod.spec.take() {
        pod.spec = Some(core::PodSpec {
            node_name: spec.node_name,
            containers: spec
                .containers
                .into_iter()
                .filter(|c| matches!(Container::parse(&c.name), Some(Container::Sidecar(_))))
                .map(|c| core::Container {
                    name: c.name,
                    image: c.image,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_is_read_back() {
        let mut pod: core::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ci", "uid": "u",
                "labels": {"tekton.dev/taskRun": "tr"}, "annotations": {"tekton.dev/ready": "READY"},
                "ownerReferences": [{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": "tr", "uid": "t", "controller": true}],
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {
                "nodeName": "n1", "serviceAccountName": "builder", "restartPolicy": "Never",
                "initContainers": [{"name": "prepare", "image": "e", "args": ["init", "--script=s=echo"]}],
                "containers": [
                    {"name": "step-a", "image": "alpine", "command": ["/tekton/bin/entrypoint"],
                     "env": [{"name": "X", "value": "1"}], "volumeMounts": [{"name": "ws", "mountPath": "/w"}]},
                    {"name": "sidecar-db", "image": "postgres"}],
                "volumes": [{"name": "ws", "persistentVolumeClaim": {"claimName": "src"}}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "step-a", "image": "alpine", "imageID": "",
                "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-11-22T10:00:00Z"}}}]}
        }))
        .unwrap();
        let status = pod.status.clone();
        let mut metadata = pod.metadata.clone();
        metadata.managed_fields = None;
        slim(&mut pod);
        let expected: core::Pod = serde_json::from_value(serde_json::json!({
            "spec": {"nodeName": "n1", "containers": [{"name": "sidecar-db", "image": "postgres"}]}
        }))
        .unwrap();
        assert_eq!(pod.spec, expected.spec);
        assert_eq!(pod.status, status);
        assert_eq!(pod.metadata, metadata);
    }
}
