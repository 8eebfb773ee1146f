//! What the controller keeps of a Pod it watches. A built Pod carries its scripts, volumes,
//! mounts and arguments, which nothing reads back; about two thirds of a cached Pod's
//! memory was spent on them. Kept: the metadata (without managedFields), the node, the
//! name and image of each container (sidecars are stopped by image, a failed pull names
//! its image), and the status.

use k8s_openapi::api::core::v1 as core;

/// Drops what the reconcilers never read. The Pod index reads the volumes' claims before.
pub fn slim(pod: &mut core::Pod) {
    pod.metadata.managed_fields = None;
    if let Some(spec) = pod.spec.take() {
        let names = |containers: Vec<core::Container>| -> Vec<core::Container> {
            containers
                .into_iter()
                .map(|c| core::Container {
                    name: c.name,
                    image: c.image,
                    ..Default::default()
                })
                .collect()
        };
        pod.spec = Some(core::PodSpec {
            node_name: spec.node_name,
            containers: names(spec.containers),
            init_containers: spec.init_containers.map(names),
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
            "spec": {"nodeName": "n1",
                "initContainers": [{"name": "prepare", "image": "e"}],
                "containers": [{"name": "step-a", "image": "alpine"}, {"name": "sidecar-db", "image": "postgres"}]}
        }))
        .unwrap();
        assert_eq!(pod.spec, expected.spec);
        assert_eq!(pod.status, status);
        assert_eq!(pod.metadata, metadata);
    }
}
