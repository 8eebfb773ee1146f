//! Against the cluster in KUBECONFIG, with tektite installed (`kubectl apply --server-side
//! -k deploy/`): runs from examples/ go to Succeeded, Pods sharing a claim land on one
//! node, and tektite's runs stay tektite's beside a Tekton. Run with
//! `cargo test -p tektite-tests --test cluster -- --ignored`.
//!
//! With no cluster, the same level runs in CI as `on_a_node.rs` (the in-test API server
//! and the project's kubelet stand-in). To run these against a real kube-apiserver on a
//! machine with no kubelet, use `../shared/harness/process_kubelet.py` as the node: it
//! binds and runs every Pod as host processes with a kubelet's mounts and relist. Give it
//! an image map whose `ghcr.io/tektite-dev/tektite-entrypoint` entry binds the binary
//! `entrypoint/build-static` prints at `/tektite/entrypoint`, create the `default`
//! ServiceAccount and the `kube-root-ca.crt` ConfigMap in `default` (nothing else makes
//! them there), start it with `--pleg-period 1.0`, then run the controller and a node
//! agent (`--kubelet-root` = the harness's `--root`) as processes with the same
//! KUBECONFIG. The harness runs no native sidecars: start the controller with
//! `--sidecars containers` for the sidecar example.

use std::time::Duration;

use kube::api::{Api, DeleteParams, PostParams};
use tektite_api::document::{Object, Source, load};
use tektite_api::v1::{Pipeline, PipelineRun, Task, TaskRun};

const NAMESPACE: &str = "default";

async fn client() -> kube::Client {
    kube::Client::try_default()
        .await
        .expect("a cluster in KUBECONFIG with tektite installed")
}

/// Waits up to `limit` for the run's Succeeded condition to leave Unknown; its status.
fn finished(conditions: &[tektite_api::v1::Condition]) -> Option<String> {
    conditions
        .iter()
        .find(|c| c.type_ == "Succeeded" && c.status != "Unknown")
        .map(|c| c.status.clone())
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn an_embedded_task_run_succeeds_with_its_steps_reported() {
    let api: Api<TaskRun> = Api::namespaced(client().await, NAMESPACE);
    let tr: TaskRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
        "metadata": {"name": "tektite-cluster-test-echo"},
        "spec": {"taskSpec": {
            "results": [{"name": "word"}],
            "steps": [
                {"name": "say", "image": "busybox", "script": "echo -n hello > $(results.word.path)"},
                {"name": "again", "image": "busybox", "command": ["echo", "done"]}
            ]}}
    }))
    .unwrap();
    let _ = api
        .delete("tektite-cluster-test-echo", &DeleteParams::default())
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    api.create(&PostParams::default(), &tr).await.unwrap();
    let mut outcome = None;
    for _ in 0..180 {
        let now = api.get("tektite-cluster-test-echo").await.unwrap();
        let status = now.status.unwrap_or_default();
        if let Some(s) = finished(&status.conditions) {
            assert_eq!(status.results[0].name, "word");
            assert_eq!(status.steps.len(), 2);
            outcome = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(outcome.as_deref(), Some("True"));
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn the_test_then_build_example_succeeds() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/test-then-build.yaml"
    ))
    .unwrap();
    let docs = load(&[Source {
        name: "test-then-build.yaml",
        text: &text,
    }]);
    let client = client().await;
    let pp = PostParams::default();
    let mut run_name = None;
    for doc in docs {
        assert!(doc.problems.is_empty(), "{:?}", doc.problems);
        match doc.object {
            Some(Object::Task(t)) => {
                let api: Api<Task> = Api::namespaced(client.clone(), NAMESPACE);
                let _ = api.create(&pp, &t).await;
            }
            Some(Object::Pipeline(p)) => {
                let api: Api<Pipeline> = Api::namespaced(client.clone(), NAMESPACE);
                let _ = api.create(&pp, &p).await;
            }
            Some(Object::PipelineRun(r)) => {
                let api: Api<PipelineRun> = Api::namespaced(client.clone(), NAMESPACE);
                run_name = api.create(&pp, &r).await.unwrap().metadata.name;
            }
            _ => {}
        }
    }
    let name = run_name.expect("the example has a PipelineRun");
    let api: Api<PipelineRun> = Api::namespaced(client, NAMESPACE);
    let mut outcome = None;
    for _ in 0..600 {
        let status = api.get(&name).await.unwrap().status.unwrap_or_default();
        if let Some(s) = finished(&status.conditions) {
            outcome = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(outcome.as_deref(), Some("True"));
}

/// Needs tektite-scheduler (deploy/scheduler.yaml) and a default StorageClass. `fetch`
/// and `check` start together, before the scheduler's Pod watch can show either bound.
#[tokio::test]
#[ignore = "needs cluster"]
async fn the_pods_sharing_a_workspace_claim_land_on_one_node() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ListParams;

    let client = client().await;
    let api: Api<PipelineRun> = Api::namespaced(client.clone(), NAMESPACE);
    let name = "tektite-cluster-test-colocate";
    let task = |name: &str, script: &str, workspace: bool| {
        let mut t = serde_json::json!({
            "name": name,
            "taskSpec": {"steps": [{"name": "run", "image": "busybox", "script": script}]},
        });
        if workspace {
            t["taskSpec"]["workspaces"] = serde_json::json!([{"name": "src"}]);
            t["workspaces"] = serde_json::json!([{"name": "src", "workspace": "src"}]);
        }
        t
    };
    let mut build = task("build", "cat $(workspaces.src.path)/code", true);
    build["runAfter"] = serde_json::json!(["fetch"]);
    let run: PipelineRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": {
            "pipelineSpec": {
                "workspaces": [{"name": "src"}],
                "tasks": [
                    task("fetch", "echo code > $(workspaces.src.path)/code", true),
                    task("check", "ls $(workspaces.src.path)", true),
                    build,
                    task("notify", "echo sent", false),
                ],
            },
            "workspaces": [{"name": "src", "volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "16Mi"}},
            }}}],
        },
    }))
    .unwrap();
    let _ = api.delete(name, &DeleteParams::default()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    api.create(&PostParams::default(), &run).await.unwrap();
    let mut outcome = None;
    for _ in 0..600 {
        let status = api.get(name).await.unwrap().status.unwrap_or_default();
        if let Some(s) = finished(&status.conditions) {
            outcome = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(outcome.as_deref(), Some("True"));

    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let list = pods
        .list(&ListParams::default().labels(&format!("tekton.dev/pipelineRun={name}")))
        .await
        .unwrap();
    let node_of = |task: &str| {
        let pod = list
            .items
            .iter()
            .find(|p| p.metadata.labels.as_ref().unwrap()["tekton.dev/pipelineTask"] == task)
            .unwrap_or_else(|| panic!("no Pod for {task}"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.scheduler_name.as_deref(), Some("tektite-scheduler"));
        spec.node_name.clone().unwrap()
    };
    assert_eq!(node_of("fetch"), node_of("build"));
    assert_eq!(node_of("fetch"), node_of("check"));
    node_of("notify");
}

/// Needs Tekton's own controller running too (its release.yaml), and tektite started with
/// `--claim-only-own`: a run with `spec.managedBy: tektite.dev/controller` is tektite's
/// alone. Tekton would add `status.provenance` and a Pod of its own.
#[tokio::test]
#[ignore = "needs cluster"]
async fn a_run_managed_by_tektite_is_left_alone_by_tekton() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ListParams;

    let client = client().await;
    let api: Api<TaskRun> = Api::namespaced(client.clone(), NAMESPACE);
    let name = "tektite-cluster-test-beside-tekton";
    let tr: TaskRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
        "metadata": {"name": name},
        "spec": {"managedBy": "tektite.dev/controller", "taskSpec": {"steps": [
            {"name": "say", "image": "busybox", "command": ["echo", "hi"]}]}}
    }))
    .unwrap();
    let _ = api.delete(name, &DeleteParams::default()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    api.create(&PostParams::default(), &tr).await.unwrap();
    let mut status = None;
    for _ in 0..180 {
        let now = api.get(name).await.unwrap().status.unwrap_or_default();
        if finished(&now.conditions).is_some() {
            status = Some(now);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let status = status.expect("the TaskRun finished");
    assert_eq!(finished(&status.conditions).as_deref(), Some("True"));
    let raw: serde_json::Value = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
    assert!(
        raw["status"].get("provenance").is_none(),
        "Tekton wrote this status: {:#}",
        raw["status"]
    );
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let list = pods
        .list(&ListParams::default().labels(&format!("tekton.dev/taskRun={name}")))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1, "one Pod, tektite's");
    let labels = list.items[0].metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("tektite.dev/managed-by").map(String::as_str),
        Some("tektite")
    );
}

/// tekton.dev/v1beta1 as the seeds write it, through the CRDs' conversion webhook: seed
/// 003's Task, TaskRun, Pipeline and PipelineRun and the build-id example are created
/// unchanged at v1beta1 and succeed, read back at v1beta1 (converted from the stored v1);
/// an invalid Pipeline is refused at admission with its field path.
#[tokio::test]
#[ignore = "needs cluster"]
async fn v1beta1_documents_are_served_run_and_checked_at_admission() {
    use kube::api::{ApiResource, DynamicObject};
    let client = client().await;
    let beta = |kind: &str| {
        let resource = ApiResource {
            group: "tekton.dev".into(),
            version: "v1beta1".into(),
            api_version: "tekton.dev/v1beta1".into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
        };
        Api::<DynamicObject>::namespaced_with(client.clone(), NAMESPACE, &resource)
    };
    let mut runs: Vec<(String, String)> = Vec::new();
    for file in [
        "/../api/tests/fixtures/seeds/003-v1beta1-task-taskrun-pipeline-pipelinerun.yaml",
        "/../examples/build-id.yaml",
    ] {
        let text =
            std::fs::read_to_string(format!("{}{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        for doc in text.split("\n---").filter(|d| d.contains("kind:")) {
            let object: DynamicObject = serde_saphyr::from_str(doc).unwrap();
            let kind = object.types.as_ref().unwrap().kind.clone();
            assert_eq!(
                object.types.as_ref().unwrap().api_version,
                "tekton.dev/v1beta1"
            );
            let api = beta(&kind);
            if let Some(name) = &object.metadata.name {
                let _ = api.delete(name, &DeleteParams::default()).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let created = api.create(&PostParams::default(), &object).await.unwrap();
            assert_eq!(created.types.unwrap().api_version, "tekton.dev/v1beta1");
            if kind.ends_with("Run") {
                runs.push((kind, created.metadata.name.unwrap()));
            }
        }
    }
    assert_eq!(runs.len(), 3);
    for (kind, name) in runs {
        let api = beta(kind.as_str());
        let mut outcome = None;
        for _ in 0..300 {
            let run = api.get(&name).await.unwrap();
            let conditions: Vec<tektite_api::v1::Condition> =
                serde_json::from_value(run.data["status"]["conditions"].clone())
                    .unwrap_or_default();
            if let Some(s) = finished(&conditions) {
                if kind == "TaskRun" && name.starts_with("generate-build-id-") {
                    // Read at v1beta1: the results are `taskResults` there.
                    let results = run.data["status"]["taskResults"].to_string();
                    assert!(results.contains("build-id"), "{results}");
                }
                outcome = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(outcome.as_deref(), Some("True"), "{kind} {name}");
    }
    let invalid: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "tekton.dev/v1beta1", "kind": "Pipeline",
        "metadata": {"name": "tektite-cluster-test-invalid"},
        "spec": {"tasks": [{"name": "a", "taskRef": {"name": "test"}, "runAfter": ["missing"]}]}
    }))
    .unwrap();
    let refused = beta("Pipeline")
        .create(&PostParams::default(), &invalid)
        .await
        .expect_err("an invalid Pipeline is refused");
    let message = refused.to_string();
    assert!(
        message.contains("validation.webhook.tektite.dev")
            && message.contains("spec.tasks[0].runAfter"),
        "{message}"
    );
}
