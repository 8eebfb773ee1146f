//! The real controller, node agent and entrypoint, on one node with no cluster: the
//! in-test API server and the kubelet stand-in, which runs each Pod's containers as
//! processes with the mounts a kubelet gives them (the termination file bound at
//! terminationMessagePath among them) and a kubelet's 1 s relist. Every example under
//! examples/ with a run in it runs here to Succeeded.
//!
//! Needs the workspace's binaries built (`cargo test --workspace` builds them) and a
//! machine that lets a process make a mount namespace (as root, or in a user namespace).

use std::path::Path;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use tektite_api::document::{Object, Source, load};
use tektite_tests::node::Node;
use tektite_tests::prometheus::Prometheus;
use tektite_tests::registry::Registry;

const RELIST: Duration = Duration::from_secs(1);

/// The sidecar example's server listens on a fixed port of this machine: the tests that
/// run it take turns.
static SIDECAR_PORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const LIMIT: Duration = Duration::from_secs(90);

fn resource(kind: &str) -> ApiResource {
    let (group, version, plural) = match kind {
        "Task" => ("tekton.dev", "v1", "tasks"),
        "Pipeline" => ("tekton.dev", "v1", "pipelines"),
        "TaskRun" => ("tekton.dev", "v1", "taskruns"),
        "PipelineRun" => ("tekton.dev", "v1", "pipelineruns"),
        "ConfigMap" => ("", "v1", "configmaps"),
        "Secret" => ("", "v1", "secrets"),
        "StepAction" => ("tekton.dev", "v1beta1", "stepactions"),
        other => panic!("no resource for {other}"),
    };
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

async fn create(node: &Node, kind: &str, mut object: Value) -> String {
    let r = resource(kind);
    object["apiVersion"] = r.api_version.clone().into();
    object["kind"] = kind.into();
    let api: Api<DynamicObject> = Api::namespaced_with(node.client.clone(), "default", &r);
    let object: DynamicObject = serde_json::from_value(object).expect("a Kubernetes object");
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| node.fail(&format!("creating a {kind}: {e}")));
    created.metadata.name.unwrap_or_default()
}

/// Creates every document of the example (converted to tekton.dev/v1, as the conversion
/// webhook will; `params` override the run's), and returns the run's kind and name.
async fn create_example(node: &Node, file: &str, params: &[(&str, &str)]) -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(file);
    create_file(node, &path, params).await
}

/// Creates every document of `path` as [`create_example`] does.
async fn create_file(node: &Node, path: &Path, params: &[(&str, &str)]) -> (String, String) {
    let file = &path.display().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    let docs = load(&[Source {
        name: file,
        text: &text,
    }]);
    let mut run = None;
    for doc in docs {
        assert!(doc.problems.is_empty(), "{file}: {:?}", doc.problems);
        let (kind, mut value) = match doc.object {
            Some(Object::Task(t)) => ("Task", serde_json::to_value(t).unwrap()),
            Some(Object::Pipeline(p)) => ("Pipeline", serde_json::to_value(p).unwrap()),
            Some(Object::TaskRun(t)) => ("TaskRun", serde_json::to_value(t).unwrap()),
            Some(Object::PipelineRun(p)) => ("PipelineRun", serde_json::to_value(p).unwrap()),
            Some(Object::ConfigMap(c)) => ("ConfigMap", serde_json::to_value(c).unwrap()),
            Some(Object::Secret(s)) => ("Secret", serde_json::to_value(s).unwrap()),
            Some(Object::StepAction(a)) => ("StepAction", serde_json::to_value(a).unwrap()),
            _ => continue,
        };
        if kind.ends_with("Run") {
            let list = value["spec"]["params"].as_array_mut();
            let list = match list {
                Some(l) => l,
                None => {
                    value["spec"]["params"] = json!([]);
                    value["spec"]["params"].as_array_mut().unwrap()
                }
            };
            for (name, v) in params {
                list.retain(|p| p["name"] != *name);
                list.push(json!({"name": name, "value": v}));
            }
            run = Some((kind.to_string(), value));
        } else {
            create(node, kind, value).await;
        }
    }
    let (kind, value) = run.unwrap_or_else(|| panic!("{file} has no run"));
    let name = create(node, &kind, value).await;
    (kind, name)
}

/// Waits for the run's Succeeded condition to be decided; the run as it then is.
async fn finished(node: &mut Node, kind: &str, name: &str) -> Value {
    let r = resource(kind);
    let began = Instant::now();
    loop {
        let plural = &r.plural;
        if let Some(run) = node
            .api
            .object(&format!("apis/tekton.dev/v1/{plural}"), "default", name)
        {
            let decided = run["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Succeeded" && c["status"] != "Unknown");
            if decided {
                return run;
            }
        }
        if began.elapsed() > LIMIT {
            let run = node
                .api
                .object(&format!("apis/tekton.dev/v1/{plural}"), "default", name);
            node.fail(&format!(
                "{kind} {name} was not done within {LIMIT:?}: {:#}",
                run.unwrap_or_default()["status"]
            ));
        }
        node.check_alive();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn succeeded(node: &Node, run: &Value) {
    let condition = run["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Succeeded"))
        .cloned()
        .unwrap_or_default();
    if condition["status"] != "True" {
        let pods: Vec<String> = std::fs::read_dir(node.dir.join("kubelet/logs"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .map(|f| {
                format!(
                    "--- {}:\n{}",
                    f.path().display(),
                    std::fs::read_to_string(f.path()).unwrap_or_default()
                )
            })
            .collect();
        node.fail(&format!(
            "{} did not succeed: {condition}\nstatus: {:#}\n{}",
            run["metadata"]["name"],
            run["status"],
            pods.join("\n")
        ));
    }
}

async fn run_example(file: &str, params: &[(&str, &str)]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(file);
    run_file(&path, params).await
}

/// Tekton's example `file`, read from its suite (`../shared/tekton-examples/v1`).
fn tekton_example(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/tekton-examples/v1")
        .join(file)
}

/// Runs every document of `path` on a node of its own to Succeeded; the run.
async fn run_file(path: &Path, params: &[(&str, &str)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), RELIST).await;
    let (kind, name) = create_file(&node, path, params).await;
    let run = finished(&mut node, &kind, &name).await;
    succeeded(&node, &run);
    node.stop().await;
    run
}

/// Waits until `test` holds of the Pod; the Pod.
async fn pod_until(node: &Node, name: &str, test: impl Fn(&Value) -> bool) -> Value {
    let began = Instant::now();
    loop {
        if let Some(pod) = node.api.object("api/v1/pods", "default", name)
            && test(&pod)
        {
            return pod;
        }
        if began.elapsed() > LIMIT {
            let pod = node.api.object("api/v1/pods", "default", name);
            node.fail(&format!(
                "the Pod {name} never got there: {:#}",
                pod.unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_step_task_run_succeeds_with_its_result_through_the_kubelets_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), RELIST).await;
    let name = create(
        &node,
        "TaskRun",
        json!({"metadata": {"name": "echo"}, "spec": {"taskSpec": {
            "results": [{"name": "word"}],
            "steps": [
                {"name": "say", "image": "alpine", "script": "#!/bin/sh\nprintf hello > $(results.word.path)"},
                {"name": "again", "image": "alpine", "command": ["sh", "-c", "test -s /tekton/results/word"]}
            ]}}}),
    )
    .await;
    let run = finished(&mut node, "TaskRun", &name).await;
    succeeded(&node, &run);
    let status = &run["status"];
    assert_eq!(status["results"][0]["value"], "hello", "{status:#}");
    let steps = status["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        assert_eq!(s["terminated"]["exitCode"], 0, "{s}");
    }
    // The Pod ran through the kubelet's mounts: its containers' termination messages
    // reached the Pod status (written in place, into the bound file).
    // The agent told the controller before the kubelet's relist saw the exits: the Pod
    // completes after the TaskRun did.
    let pod_name = status["podName"].as_str().unwrap();
    let pod = pod_until(&node, pod_name, |p| p["status"]["phase"] == "Succeeded").await;
    let say = pod["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "step-say")
        .unwrap();
    assert!(
        say["state"]["terminated"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("word")),
        "{say:#}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_fails_the_task_run_and_skips_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), RELIST).await;
    let name = create(
        &node,
        "TaskRun",
        json!({"metadata": {"name": "fails"}, "spec": {"taskSpec": {"steps": [
            {"name": "boom", "image": "alpine", "command": ["sh", "-c", "exit 3"]},
            {"name": "never", "image": "alpine", "command": ["true"]}
        ]}}}),
    )
    .await;
    let run = finished(&mut node, "TaskRun", &name).await;
    let status = &run["status"];
    assert_eq!(status["conditions"][0]["status"], "False", "{status:#}");
    assert_eq!(
        status["steps"][0]["terminated"]["exitCode"], 3,
        "{status:#}"
    );
    assert_eq!(
        status["steps"][1]["terminationReason"], "Skipped",
        "{status:#}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_pipeline_example_succeeds() {
    run_example("hello-pipeline.yaml", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_then_build_example_succeeds_with_its_defaults() {
    let run = run_example("test-then-build.yaml", &[]).await;
    let image = run["status"]["results"][0]["value"]
        .as_str()
        .unwrap_or_default();
    assert!(
        image.starts_with("harbor.k8s.local/course/devops-demo:v0.4.0-"),
        "{:#}",
        run["status"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_example_succeeds_with_a_native_sidecar() {
    let _port = SIDECAR_PORT.lock().await;
    let run = run_example("sidecar-service.yaml", &[]).await;
    assert_eq!(
        run["status"]["results"][0]["value"], "hello from the sidecar",
        "{:#}",
        run["status"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_build_id_example_succeeds() {
    run_example("build-id.yaml", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_git_resource_example_clones_a_local_repository() {
    let repo = tempfile::tempdir().unwrap();
    tektite_tests::git_repo(repo.path(), &[("a.txt", "a")]);
    let url = repo.path().display().to_string();
    run_example(
        "v1alpha1-git-resource.yaml",
        &[("resource-source-url", &url)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_native_sidecars_a_sidecar_is_stopped_by_swapping_its_image() {
    let _port = SIDECAR_PORT.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start_with(dir.path(), RELIST, &["--sidecars=containers"]).await;
    let (kind, name) = create_example(&node, "sidecar-service.yaml", &[]).await;
    let run = finished(&mut node, &kind, &name).await;
    succeeded(&node, &run);
    assert_eq!(
        run["status"]["results"][0]["value"],
        "hello from the sidecar"
    );
    // The sidecar was restarted with the entrypoint's image, which has no shell for its
    // script: it ends, and with it the Pod.
    let pod_name = run["status"]["podName"].as_str().unwrap();
    let pod = pod_until(&node, pod_name, |p| {
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    })
    .await;
    let sidecar = pod["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sidecar-web")
        .cloned()
        .unwrap();
    assert_eq!(sidecar["restartCount"], 1, "{sidecar:#}");
    assert_eq!(sidecar["image"], tektite_tests::node::ENTRYPOINT_IMAGE);
    assert!(sidecar["state"]["terminated"].is_object(), "{sidecar:#}");
    node.stop().await;
}

/// A child TaskRun as both shells must make it: its labels, annotations, owner and spec,
/// with what differs by run alone made constant (the PipelineRun's generated name and
/// UID, the claim named after that UID, and the time left of the run's `timeouts.tasks`
/// when the child was made, which must be within it).
fn comparable(child: &Value, run_name: &str, run_uid: &str) -> Value {
    let mut c = json!({
        "labels": child["metadata"]["labels"],
        "annotations": child["metadata"]["annotations"],
        "ownerReferences": child["metadata"]["ownerReferences"],
        "spec": child["spec"],
    });
    if let Some(t) = c["spec"]["timeout"].as_str() {
        let left = tektite_api::v1::parse_go_duration(t).unwrap();
        assert!(left <= std::time::Duration::from_secs(8 * 60), "{t}");
        c["spec"]["timeout"] = "WITHIN".into();
    }
    for w in c["spec"]["workspaces"].as_array_mut().into_iter().flatten() {
        if w["persistentVolumeClaim"].is_object() {
            w["persistentVolumeClaim"]["claimName"] = "CLAIM".into();
        }
    }
    let text = c
        .to_string()
        .replace(run_uid, "UID")
        .replace(run_name, "RUN");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_runs_children_are_the_same_from_the_controller_and_from_tkt_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), RELIST).await;
    let (_, name) = create_example(&node, "hello-pipeline.yaml", &[]).await;
    let on_cluster = finished(&mut node, "PipelineRun", &name).await;
    succeeded(&node, &on_cluster);
    let uid = on_cluster["metadata"]["uid"].as_str().unwrap().to_string();
    let mut controllers: Vec<Value> = node
        .api
        .objects("apis/tekton.dev/v1/taskruns")
        .iter()
        .map(|t| comparable(t, &name, &uid))
        .collect();
    node.stop().await;

    let (_state, list) = tkt_run_example("hello-pipeline.yaml");
    let items = list["items"].as_array().unwrap();
    let pr = items.iter().find(|i| i["kind"] == "PipelineRun").unwrap();
    let (local_name, local_uid) = (
        pr["metadata"]["name"].as_str().unwrap(),
        pr["metadata"]["uid"].as_str().unwrap(),
    );
    let mut locals: Vec<Value> = items
        .iter()
        .filter(|i| i["kind"] == "TaskRun")
        .map(|t| {
            let mut t = t.clone();
            // What a cluster's defaulting adds, which tkt run adds itself (and the Pod's
            // taskRun label): the in-test API server has no defaulting.
            let labels = t["metadata"]["labels"].as_object_mut().unwrap();
            labels.remove("tekton.dev/taskRun");
            labels.remove("app.kubernetes.io/managed-by");
            if t["spec"]["serviceAccountName"] == "default" {
                t["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("serviceAccountName");
            }
            comparable(&t, local_name, local_uid)
        })
        .collect();
    let key = |v: &Value| {
        v["labels"]["tekton.dev/pipelineTask"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    controllers.sort_by_key(key);
    locals.sort_by_key(key);
    assert_eq!(controllers.len(), 3);
    pretty_assertions::assert_eq!(controllers, locals);
}

/// `tkt run --keep -o json` of `examples/<example>`, which must succeed: its state
/// directory (kept) and what it printed.
fn tkt_run_example(example: &str) -> (tempfile::TempDir, Value) {
    let state = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(example);
    let out = std::process::Command::new(tektite_tests::node::binary("tkt", "tektite-cli"))
        .args(["run", "--keep", "-o", "json"])
        .arg(&file)
        .env("XDG_STATE_HOME", state.path())
        .env_remove("TKT_NO_SANDBOX")
        .output()
        .expect("tkt runs");
    assert!(
        out.status.success(),
        "{example}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (state, serde_json::from_slice(&out.stdout).unwrap())
}

/// A child's Pod as its run's builder made it: without what the API server and the
/// scheduler add, the run's name and UIDs (its own, each TaskRun's, its claim's) and time
/// stamps written as placeholders.
fn comparable_pod(pod: &Value, run_name: &str, run_uid: &str, task_runs: &[Value]) -> Value {
    let meta = &pod["metadata"];
    let mut c = json!({
        "metadata": {
            "name": meta["name"],
            "labels": meta["labels"],
            "annotations": meta["annotations"],
            "ownerReferences": meta["ownerReferences"],
        },
        "spec": pod["spec"],
    });
    c["spec"].as_object_mut().unwrap().remove("nodeName");
    // The ready and cancel annotations are the shell's to write as the run goes (once the
    // sidecars are ready); the API server shows them, pod.json the Pod as created.
    if let Some(a) = c["metadata"]["annotations"].as_object_mut() {
        a.remove("tekton.dev/ready");
        a.remove("tekton.dev/cancel");
        if a.is_empty() {
            c["metadata"]["annotations"] = Value::Null;
        }
    }
    // A volumeClaimTemplate's claim is named from its run's UID.
    for v in c["spec"]["volumes"].as_array_mut().into_iter().flatten() {
        if v["persistentVolumeClaim"].is_object() {
            v["persistentVolumeClaim"]["claimName"] = "CLAIM".into();
        }
    }
    let mut text = c.to_string().replace(run_uid, "UID");
    for t in task_runs {
        let task = t["metadata"]["labels"]["tekton.dev/pipelineTask"]
            .as_str()
            .unwrap_or_default();
        if let Some(uid) = t["metadata"]["uid"].as_str() {
            text = text.replace(uid, &format!("UID-OF-{task}"));
        }
    }
    let text = text.replace(run_name, "RUN");
    // A value made of the time it ran (a build stamp: 20261202172350) differs from run to
    // run; every other field must not.
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 12 {
            out.push_str("<time>");
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    serde_json::from_str(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_and_secret_workspaces_reach_the_step_through_the_atomic_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), RELIST).await;
    create(
        &node,
        "ConfigMap",
        json!({"metadata": {"name": "settings"}, "data": {"mode": "fast"}}),
    )
    .await;
    create(
        &node,
        "Secret",
        json!({"metadata": {"name": "token"}, "stringData": {"token": "s3cret"}}),
    )
    .await;
    let script = "#!/bin/sh\nset -eu\n\
        test \"$(cat $(workspaces.settings.path)/mode)\" = fast\n\
        test \"$(cat $(workspaces.token.path)/token)\" = s3cret\n\
        test -L $(workspaces.settings.path)/..data";
    let name = create(
        &node,
        "TaskRun",
        json!({"metadata": {"name": "reads"}, "spec": {
            "workspaces": [{"name": "settings", "configMap": {"name": "settings"}},
                           {"name": "token", "secret": {"secretName": "token"}}],
            "taskSpec": {"workspaces": [{"name": "settings"}, {"name": "token"}],
                         "steps": [{"name": "check", "image": "alpine", "script": script}]}}}),
    )
    .await;
    let run = finished(&mut node, "TaskRun", &name).await;
    succeeded(&node, &run);
    node.stop().await;
}

/// Tekton's workspace-isolation example (taskruns/beta), with `sh` for `ash`: a workspace
/// a step or sidecar lists is theirs alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_workspace_is_mounted_only_where_it_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), RELIST).await;
    let name = create(
        &node,
        "TaskRun",
        json!({"metadata": {"name": "isolated"}, "spec": {
            "workspaces": [{"name": "signals", "emptyDir": {}}],
            "taskSpec": {
                "workspaces": [{"name": "signals"}],
                "steps": [
                    {"name": "await-sidecar-signal", "image": "alpine",
                     "workspaces": [{"name": "signals"}],
                     "script": "#!/bin/sh\necho hi > $(workspaces.signals.path)/start\nwhile [ ! -f $(workspaces.signals.path)/ready ]; do sleep 0.1; done"},
                    {"name": "check-signals-access", "image": "alpine",
                     "script": "#!/bin/sh\nif [ -f $(workspaces.signals.path)/start ]; then exit 255; fi"}
                ],
                "sidecars": [
                    {"name": "await-step-signal", "image": "alpine",
                     "workspaces": [{"name": "signals"}],
                     "script": "#!/bin/sh\nwhile [ ! -f $(workspaces.signals.path)/start ]; do sleep 0.1; done\ntouch $(workspaces.signals.path)/ready\nsleep 30"}
                ]}}}),
    )
    .await;
    let run = finished(&mut node, "TaskRun", &name).await;
    succeeded(&node, &run);
    node.stop().await;
}

/// Tekton's propagating-workspaces example, read from its suite: a PipelineRun's
/// ConfigMap, Secret and claim workspaces reach embedded taskSpecs that neither list nor
/// declare them, through the controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_runs_workspaces_reach_embedded_task_specs_undeclared() {
    run_file(
        &tekton_example("pipelineruns/propagating-workspaces.yaml"),
        &[],
    )
    .await;
}

/// Tekton's two-level Pipelines-in-Pipelines example, read from its suite: the parent's
/// task becomes a child PipelineRun, whose task becomes a grandchild, each owned by the
/// run above it, with the params and workspaces passed down, through the controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_runs_a_pipeline_runs_it_as_a_child_pipeline_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), RELIST).await;
    let (kind, name) = create_file(
        &node,
        &tekton_example("pipelineruns/alpha/pipelines-in-pipelines-ref-complex.yaml"),
        &[],
    )
    .await;
    let run = finished(&mut node, &kind, &name).await;
    succeeded(&node, &run);
    let child_name = format!("{name}-child");
    let child = node
        .api
        .object("apis/tekton.dev/v1/pipelineruns", "default", &child_name)
        .unwrap_or_else(|| node.fail(&format!("no child PipelineRun {child_name}")));
    assert_eq!(
        run["status"]["childReferences"][0],
        json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "name": child_name, "pipelineTaskName": "child"})
    );
    assert_eq!(
        child["metadata"]["labels"]["tekton.dev/pipeline"],
        "child-pipeline-complex"
    );
    assert_eq!(
        child["metadata"]["ownerReferences"][0]["name"],
        name.as_str()
    );
    assert_eq!(
        child["spec"]["params"][0],
        json!({"name": "greeting", "value": "hello"})
    );
    succeeded(&node, &child);
    let grandchild_ref = &child["status"]["childReferences"][0];
    assert_eq!(
        grandchild_ref["kind"], "PipelineRun",
        "{:#}",
        child["status"]
    );
    let show = node
        .api
        .objects("apis/tekton.dev/v1/taskruns")
        .into_iter()
        .find(|t| t["metadata"]["labels"]["tekton.dev/pipelineTask"] == "show")
        .unwrap_or_else(|| node.fail("no TaskRun of the grandchild's task"));
    assert_eq!(
        show["metadata"]["labels"]["tekton.dev/pipelineRun"],
        grandchild_ref["name"]
    );
    node.stop().await;
}

/// Tekton's alpha artifacts examples, read from its suite: a step's and the Task's
/// artifacts travel from the entrypoint through the agent to the TaskRun's status, and a
/// later task reads the first one's outputs, through the controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_reach_the_status_and_the_next_task() {
    let run = run_file(
        &tekton_example("pipelineruns/alpha/consume-artifacts-from-task.yaml"),
        &[],
    )
    .await;
    assert_eq!(
        run["status"]["childReferences"].as_array().map(Vec::len),
        Some(2)
    );
    let tr = run_file(
        &tekton_example("taskruns/alpha/produce-consume-artifacts.yaml"),
        &[],
    )
    .await;
    let status = &tr["status"];
    assert_eq!(
        status["artifacts"]["outputs"][0]["name"], "image",
        "{status:#}"
    );
    assert_eq!(status["artifacts"]["outputs"][0]["buildOutput"], true);
    assert_eq!(status["steps"][0]["inputs"][0]["name"], "input-artifacts");
}

/// Tekton's home-volume example, read from its suite: steps share /tekton/home, and a
/// step that mounts a volume of its own there sees that one instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_may_mount_its_own_volume_over_the_shared_home() {
    run_file(&tekton_example("taskruns/home-volume.yaml"), &[]).await;
}

/// Every example with a run (but the git one, which needs a repository served): the Pods
/// `tkt run` executes equal, field for field, the ones the controller creates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_examples_pods_are_the_same_from_the_controller_and_from_tkt_run() {
    for example in [
        "hello-pipeline.yaml",
        "test-then-build.yaml",
        "build-id.yaml",
        "sidecar-service.yaml",
        "step-action.yaml",
    ] {
        let _port = match example {
            "sidecar-service.yaml" => Some(SIDECAR_PORT.lock().await),
            _ => None,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut node = Node::start(dir.path(), RELIST).await;
        let (kind, name) = create_example(&node, example, &[]).await;
        let on_cluster = finished(&mut node, &kind, &name).await;
        succeeded(&node, &on_cluster);
        let uid = on_cluster["metadata"]["uid"].as_str().unwrap().to_string();
        let task_runs = node.api.objects("apis/tekton.dev/v1/taskruns");
        let mut controller_pods: Vec<Value> = node
            .api
            .objects("api/v1/pods")
            .iter()
            .map(|p| comparable_pod(p, &name, &uid, &task_runs))
            .collect();
        node.stop().await;

        let (state, list) = tkt_run_example(example);
        let items = list["items"].as_array().unwrap();
        let run = items.iter().find(|i| i["kind"] == kind.as_str()).unwrap();
        let (local_name, local_uid) = (
            run["metadata"]["name"].as_str().unwrap(),
            run["metadata"]["uid"].as_str().unwrap(),
        );
        let local_runs: Vec<Value> = items
            .iter()
            .filter(|i| i["kind"] == "TaskRun")
            .cloned()
            .collect();
        let pods = state
            .path()
            .join("tektite/runs")
            .join(local_name)
            .join("kubelet/pods");
        let mut local_pods: Vec<Value> = std::fs::read_dir(&pods)
            .unwrap()
            .map(|e| {
                let file = e.unwrap().path().join(tektite_cli::kubelet::POD_FILE);
                let pod: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
                comparable_pod(&pod, local_name, local_uid, &local_runs)
            })
            .collect();
        let key = |p: &Value| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        controller_pods.sort_by_key(key);
        local_pods.sort_by_key(key);
        assert!(!controller_pods.is_empty(), "{example}");
        assert_eq!(controller_pods.len(), local_pods.len(), "{example}");
        for (c, l) in controller_pods.iter().zip(&local_pods) {
            pretty_assertions::assert_eq!(c, l, "{example}");
        }
    }
}

/// The families a run on a node does not touch: they show once the thing they measure
/// happens (a family is exported from its first observation).
const SHOWN_WHEN_USED: [&str; 2] = [
    // Only kube-scheduler calls the extender.
    "tektite_controller_extender_duration_seconds",
    // No reconcile fails here.
    "tektite_controller_reconcile_errors",
];

/// The Grafana dashboard (deploy/monitoring), checked by a real Prometheus scraping the
/// real controller and agent every second while a pipeline, a TaskRun of its own and a
/// Task with a sidecar run on a node, twice (a series is exported from its first
/// observation, so `rate()` sees an increase from the second): every panel's query is
/// valid PromQL and returns a number, every label a query groups by is on the series it
/// names, and every metric it names is among the binaries' `/metrics`; but for the few
/// that only a scheduler or a failure makes (each named above with why), which must still
/// be valid queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_queries_return_data_from_a_real_prometheus() {
    let _port = SIDECAR_PORT.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), RELIST).await;
    let (controller_addr, agent_addr) = node.metrics_addrs();
    let prometheus = Prometheus::start(
        &dir.path().join("prometheus"),
        &[
            ("tektite-controller", controller_addr),
            ("tektite-agent", agent_addr),
        ],
    )
    .await;
    let mut runs = Vec::new();
    for example in [
        "hello-pipeline.yaml",
        "build-id.yaml",
        "sidecar-service.yaml",
    ] {
        let (kind, name) = create_example(&node, example, &[]).await;
        let run = finished(&mut node, &kind, &name).await;
        succeeded(&node, &run);
        runs.push((kind, run));
    }
    prometheus.scraped_after(jiff::Timestamp::now()).await;
    for (kind, run) in runs {
        let again = json!({
            "metadata": {"generateName": format!("{}-", run["metadata"]["name"].as_str().unwrap())},
            "spec": run["spec"].clone(),
        });
        let name = create(&node, &kind, again).await;
        let run = finished(&mut node, &kind, &name).await;
        succeeded(&node, &run);
    }
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // Every (panel, expression, families it names).
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().to_owned();
            let families: Vec<String> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("tekton_") || w.starts_with("tektite_"))
                .map(|n| {
                    ["_bucket", "_sum", "_count", "_total"]
                        .iter()
                        .find_map(|s| n.strip_suffix(s))
                        .unwrap_or(n)
                        .to_owned()
                })
                .collect();
            queries.push((panel["title"].as_str().unwrap().to_owned(), expr, families));
        }
    }
    assert!(
        queries.len() >= 20,
        "only {} queries in the dashboard",
        queries.len()
    );
    // What the run's last reports make (a sidecar seen stopped) may come after it ended.
    let began = Instant::now();
    let missing = loop {
        let (controller, agent) = node.scrape().await;
        let families: std::collections::BTreeSet<String> = controller
            .lines()
            .chain(agent.lines())
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        let missing: Vec<(&String, &String)> = queries
            .iter()
            .flat_map(|(title, _, fs)| fs.iter().map(move |f| (title, f)))
            .filter(|(_, f)| !families.contains(*f) && !SHOWN_WHEN_USED.contains(&f.as_str()))
            .collect();
        if missing.is_empty() || began.elapsed() > Duration::from_secs(15) {
            break format!("{missing:?} (exported: {families:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        missing.starts_with("[]"),
        "the dashboard asks for what neither exports: {missing}"
    );
    prometheus.scraped_after(jiff::Timestamp::now()).await;
    let mut empty = Vec::new();
    for (title, expr, families) in &queries {
        let used_only = families
            .iter()
            .any(|f| SHOWN_WHEN_USED.contains(&f.as_str()));
        // What the runs' last reports make (a sidecar seen stopped) may be scraped late.
        let asked = Instant::now();
        let (answer, numbers) = loop {
            let answer = prometheus.query(expr).await;
            assert_eq!(answer["status"], "success", "{title}: {expr}: {answer}");
            let numbers = answer["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["value"][1].as_str().is_some_and(|v| v != "NaN"))
                .count();
            if numbers > 0 || used_only || asked.elapsed() > Duration::from_secs(10) {
                break (answer, numbers);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if numbers == 0 && !used_only {
            empty.push(format!("{title}: {expr} -> {}", answer["data"]));
        }
        // Every label it groups by is on what it names.
        let grouped = expr
            .split("by (")
            .skip(1)
            .filter_map(|rest| rest.split_once(')'))
            .flat_map(|(labels, _)| labels.split(',').map(str::trim).map(str::to_owned))
            .filter(|l| l != "le");
        for label in grouped {
            for family in families
                .iter()
                .filter(|f| !SHOWN_WHEN_USED.contains(&f.as_str()))
            {
                let selector = format!("{{__name__=~\"{family}(_bucket|_total)?\"}}");
                let answer = prometheus
                    .query(&format!("count by ({label}) ({selector})"))
                    .await;
                let labelled = answer["data"]["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["metric"][&label].is_string());
                assert!(
                    labelled,
                    "{title}: {expr} groups by {label:?}, which no {family} series has: {answer}"
                );
            }
        }
    }
    node.stop().await;
    assert!(
        empty.is_empty(),
        "panels with no data:\n{}",
        empty.join("\n")
    );
}

/// `tkt pr logs -f` follows a PipelineRun as it runs on a node, from its creation: every
/// step of every task in order, `[task : step] line`, through pods/log (which reads what
/// the kubelet stand-in writes, streamed until each container ends), and ends when the run
/// does; what it printed is what `tkt pr logs` prints once the run is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tkt_follows_a_pipelineruns_logs_as_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), RELIST).await;
    let (kind, name) = create_example(&node, "hello-pipeline.yaml", &[]).await;
    let kubeconfig = node.kubeconfig();
    let tkt = |follow: bool| {
        let mut cmd = std::process::Command::new(tektite_tests::node::binary("tkt", "tektite-cli"));
        cmd.args(["pr", "logs", &name]);
        if follow {
            cmd.arg("-f");
        }
        cmd.env("KUBECONFIG", &kubeconfig).env_remove("TKT_LOG");
        cmd
    };
    let mut following = tkt(true);
    let followed = tokio::task::spawn_blocking(move || following.output().expect("tkt runs"));
    let run = finished(&mut node, &kind, &name).await;
    succeeded(&node, &run);
    let followed = tokio::time::timeout(LIMIT, followed)
        .await
        .expect("tkt pr logs -f ends when the run does")
        .unwrap();
    let after = tkt(false).output().expect("tkt runs");
    node.stop().await;
    let text = String::from_utf8_lossy(&followed.stdout).into_owned();
    assert!(
        followed.status.success(),
        "{}",
        String::from_utf8_lossy(&followed.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[..4],
        [
            "[greet : greet] hello, platform team",
            "[shout : shout] HELLO, PLATFORM TEAM!",
            "[shout : shout] HELLO, PLATFORM TEAM!",
            "[shout : shout] greeted platform team",
        ],
        "{text}"
    );
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[4].starts_with(&format!("[report : report] pipeline {name} finished: ")),
        "{text}"
    );
    assert_eq!(String::from_utf8_lossy(&after.stdout), text);
}

/// A step with neither command nor script runs its image's own entrypoint, looked up in a
/// real registry on 127.0.0.1 (images the test pushes): ENTRYPOINT with the step's args,
/// or with the image's CMD when it gives none. An image the registry does not have fails
/// the TaskRun before any Pod, with Tekton's reason and the step, field and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_without_a_command_runs_its_images_entrypoint_from_a_real_registry() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&dir.path().join("registry")).await;
    let echo = registry
        .push_image(
            "tools/echo",
            "1",
            &["/bin/sh", "-c"],
            &["echo from the image CMD > /tekton/results/said"],
        )
        .await;
    let insecure = format!("--insecure-registry={}", registry.addr);
    let mut node = Node::start_with(dir.path(), RELIST, &[&insecure]).await;
    let name = create(
        &node,
        "TaskRun",
        json!({"metadata": {"name": "entrypoints"}, "spec": {"taskSpec": {
        "results": [{"name": "said"}, {"name": "args"}],
        "steps": [
            {"name": "cmd", "image": echo},
            {"name": "args", "image": echo, "args": ["echo -n given > $(results.args.path)"]},
        ]}}}),
    )
    .await;
    let run = finished(&mut node, "TaskRun", &name).await;
    succeeded(&node, &run);
    let results = &run["status"]["results"];
    let value = |n: &str| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .map(|r| r["value"].clone())
    };
    assert_eq!(
        value("said"),
        Some(json!("from the image CMD\n")),
        "{results}"
    );
    assert_eq!(value("args"), Some(json!("given")), "{results}");
    let missing = format!("{}/tools/missing:1", registry.addr);
    let name = create(
        &node,
        "TaskRun",
        json!({"metadata": {"name": "no-such-image"}, "spec": {"taskSpec": {
            "steps": [{"name": "run", "image": missing}]}}}),
    )
    .await;
    let run = finished(&mut node, "TaskRun", &name).await;
    node.stop().await;
    let c = &run["status"]["conditions"][0];
    assert_eq!(
        (&c["status"], &c["reason"]),
        (&json!("False"), &json!("PodCreationFailed")),
        "{c}"
    );
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("step \"run\" has neither command nor script")
            && message.contains("spec.steps[0].image")
            && message.contains("tools/missing"),
        "{message}"
    );
    assert!(
        run["status"]["podName"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "no Pod: {run}"
    );
}
