//! `tkt`'s cluster commands against the in-test API server on loopback, through a
//! kubeconfig as kubectl reads it: the exact requests each makes, and what it prints
//! against committed snapshots (`UPDATE_SNAPSHOTS=1 cargo test -p tektite-cli --test
//! cluster` rewrites them). Time is fixed with `TKT_NOW`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};
use tektite_tests::api_server::{FakeApi, Kubelet};

const NOW: &str = "2026-12-03T10:10:00Z";
const PRS: &str = "apis/tekton.dev/v1/pipelineruns";
const TRS: &str = "apis/tekton.dev/v1/taskruns";
const PIPELINES: &str = "apis/tekton.dev/v1/pipelines";
const PODS: &str = "api/v1/pods";

struct Cluster {
    api: Arc<FakeApi>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

fn step(name: &str, start: &str, end: &str, reason: &str) -> Value {
    json!({"name": name, "container": format!("step-{name}"),
        "terminated": {"exitCode": 0, "reason": reason, "startedAt": start, "finishedAt": end}})
}

/// A namespace with a finished PipelineRun of two TaskRuns (the second's Pod gone), a
/// running one, and the Pipeline they run.
async fn cluster() -> Cluster {
    let api = FakeApi::new(Kubelet::Off);
    let addr = api.serve().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, tektite_tests::kubeconfig(&addr.to_string())).unwrap();
    api.insert_with_status(
        PIPELINES,
        vec![json!({"apiVersion": "tekton.dev/v1", "kind": "Pipeline",
            "metadata": {"name": "ship", "namespace": "default", "creationTimestamp": "2026-12-01T10:00:00Z"},
            "spec": {"params": [{"name": "tags", "type": "array"}, {"name": "level", "default": "1"}],
                     "workspaces": [{"name": "src"}],
                     "tasks": [{"name": "build", "taskRef": {"name": "build"}}]}})],
    );
    api.insert_with_status(
        PRS,
        vec![
            json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                "metadata": {"name": "ship-run", "namespace": "default",
                    "labels": {"tekton.dev/pipeline": "ship", "team": "web"}},
                "spec": {"pipelineRef": {"name": "ship"}, "params": [{"name": "tags", "value": ["a", "b"]}],
                    "workspaces": [{"name": "src", "emptyDir": {}}],
                    "taskRunTemplate": {"serviceAccountName": "default"}, "timeouts": {"pipeline": "1h0m0s"}},
                "status": {"startTime": "2026-12-03T10:00:00Z", "completionTime": "2026-12-03T10:01:30Z",
                    "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded",
                        "message": "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0"}],
                    "childReferences": [
                        {"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": "ship-run-build", "pipelineTaskName": "build"},
                        {"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": "ship-run-test", "pipelineTaskName": "test"}]}}),
            json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                "metadata": {"name": "nightly", "namespace": "default"},
                "spec": {"pipelineRef": {"name": "ship"}},
                "status": {"startTime": "2026-12-03T10:07:00Z",
                    "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}]}}),
        ],
    );
    let child = |name: &str, task: &str, pod: &str, start: &str, end: &str, steps: Vec<Value>| {
        json!({"apiVersion": "tekton.dev/v1", "kind": "TaskRun",
            "metadata": {"name": name, "namespace": "default",
                "labels": {"tekton.dev/pipelineRun": "ship-run", "tekton.dev/pipelineTask": task}},
            "spec": {"taskRef": {"name": task}},
            "status": {"podName": pod, "startTime": start, "completionTime": end, "steps": steps,
                "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}})
    };
    api.insert_with_status(
        TRS,
        vec![
            child(
                "ship-run-build",
                "build",
                "ship-run-build-pod",
                "2026-12-03T10:00:01Z",
                "2026-12-03T10:01:00Z",
                vec![
                    step(
                        "compile",
                        "2026-12-03T10:00:02Z",
                        "2026-12-03T10:00:40Z",
                        "Completed",
                    ),
                    step(
                        "package",
                        "2026-12-03T10:00:40Z",
                        "2026-12-03T10:00:59Z",
                        "Completed",
                    ),
                ],
            ),
            child(
                "ship-run-test",
                "test",
                "ship-run-test-pod",
                "2026-12-03T10:01:00Z",
                "2026-12-03T10:01:29Z",
                vec![step(
                    "unit",
                    "2026-12-03T10:01:01Z",
                    "2026-12-03T10:01:28Z",
                    "Completed",
                )],
            ),
        ],
    );
    let terminated = |name: &str| {
        json!({"name": name, "ready": false, "restartCount": 0, "image": "alpine",
            "imageID": "", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}})
    };
    api.insert_with_status(
        PODS,
        vec![json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "ship-run-build-pod", "namespace": "default"},
            "spec": {"containers": [{"name": "step-compile", "image": "alpine"}, {"name": "step-package", "image": "alpine"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [terminated("step-compile"), terminated("step-package")]}})],
    );
    api.set_log(
        "default",
        "ship-run-build-pod",
        "step-compile",
        "compiling\nok\n",
    );
    api.set_log(
        "default",
        "ship-run-build-pod",
        "step-package",
        "packed app.tar\n",
    );
    Cluster {
        api,
        kubeconfig,
        _dir: dir,
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cluster {
    /// Runs `tkt ARGS` against this cluster; what it printed, and the requests it made.
    async fn tkt(&self, args: &[&str]) -> (Out, Vec<String>) {
        let before = self.api.requests().len();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let kubeconfig = self.kubeconfig.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_tkt"))
                .args(&args)
                .env("KUBECONFIG", kubeconfig)
                .env("TKT_NOW", NOW)
                .env_remove("TKT_LOG")
                .output()
                .expect("run tkt")
        })
        .await
        .unwrap();
        let requests = self.api.requests()[before..].to_vec();
        (
            Out {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            requests,
        )
    }
}

fn snapshot(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    tektite_tests::snapshot(&path, text, "cargo test -p tektite-cli --test cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_prints_runs_newest_first_from_one_request() {
    let c = cluster().await;
    let (out, requests) = c.tkt(&["pr", "list"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    snapshot("cluster-pr-list.txt", &out.stdout);
    assert_eq!(
        requests,
        ["GET /apis/tekton.dev/v1/namespaces/default/pipelineruns?"]
    );
    let (out, _) = c.tkt(&["pipelinerun", "ls", "-o", "name"]).await;
    assert_eq!(
        out.stdout,
        "pipelinerun.tekton.dev/nightly\npipelinerun.tekton.dev/ship-run\n"
    );
    let (out, requests) = c.tkt(&["tr", "list", "-A", "-o", "json"]).await;
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["kind"], "TaskRunList");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["kind"], "TaskRun");
    assert_eq!(requests, ["GET /apis/tekton.dev/v1/taskruns?"]);
    let (out, _) = c.tkt(&["p", "list"]).await;
    snapshot("cluster-p-list.txt", &out.stdout);
    let (out, _) = c.tkt(&["pr", "list", "-n", "elsewhere"]).await;
    assert_eq!(
        out.stdout,
        "No PipelineRuns found in namespace \"elsewhere\"\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_the_run_and_its_taskruns_from_two_requests() {
    let c = cluster().await;
    let (out, requests) = c.tkt(&["pr", "describe", "ship-run"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    snapshot("cluster-pr-describe.txt", &out.stdout);
    assert_eq!(
        requests,
        [
            "GET /apis/tekton.dev/v1/namespaces/default/pipelineruns/ship-run",
            "GET /apis/tekton.dev/v1/namespaces/default/taskruns?&labelSelector=tekton.dev%2FpipelineRun%3Dship-run",
        ]
    );
    let (out, requests) = c.tkt(&["tr", "desc", "ship-run-build"]).await;
    snapshot("cluster-tr-describe.txt", &out.stdout);
    assert_eq!(requests.len(), 1);
    // --last: the newest run.
    let (out, _) = c.tkt(&["pr", "describe", "--last"]).await;
    assert!(
        out.stdout.starts_with("Name:              nightly\n"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_print_every_step_in_order_and_say_when_a_pod_is_gone() {
    let c = cluster().await;
    for follow in [false, true] {
        let mut args = vec!["pr", "logs", "ship-run"];
        if follow {
            args.push("-f");
        }
        let (out, requests) = c.tkt(&args).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.stdout,
            "[build : compile] compiling\n[build : compile] ok\n[build : package] packed app.tar\n",
            "follow: {follow}"
        );
        assert_eq!(
            out.stderr,
            "tkt: the Pod \"ship-run-test-pod\" of TaskRun \"ship-run-test\" is gone, and its logs with it\n"
        );
        if !follow {
            assert_eq!(
                requests,
                [
                    "GET /apis/tekton.dev/v1/namespaces/default/pipelineruns/ship-run",
                    "GET /apis/tekton.dev/v1/namespaces/default/taskruns?&labelSelector=tekton.dev%2FpipelineRun%3Dship-run",
                    "GET /api/v1/namespaces/default/pods/ship-run-build-pod/log?&container=step-compile",
                    "GET /api/v1/namespaces/default/pods/ship-run-build-pod/log?&container=step-package",
                    "GET /api/v1/namespaces/default/pods/ship-run-test-pod/log?&container=step-unit",
                ]
            );
        }
    }
    let (out, _) = c.tkt(&["tr", "logs", "ship-run-build"]).await;
    assert_eq!(
        out.stdout,
        "[compile] compiling\n[compile] ok\n[package] packed app.tar\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_creates_a_run_with_typed_params_and_tkns_workspaces() {
    let c = cluster().await;
    let (out, requests) = c
        .tkt(&[
            "pipeline",
            "start",
            "ship",
            "-p",
            "tags=x,y",
            "-w",
            "name=src,claimName=cache",
            "-s",
            "builder",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        requests,
        [
            "GET /apis/tekton.dev/v1/namespaces/default/pipelines/ship",
            "POST /apis/tekton.dev/v1/namespaces/default/pipelineruns?",
        ]
    );
    let created = c
        .api
        .objects(PRS)
        .into_iter()
        .find(|r| r["metadata"]["generateName"] == "ship-run-")
        .expect("a PipelineRun was created");
    let name = created["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        out.stdout,
        format!(
            "PipelineRun started: {name}\n\nIn order to track the PipelineRun progress run:\ntkt pipelinerun logs {name} -f -n default\n"
        )
    );
    assert_eq!(
        created["spec"],
        json!({"pipelineRef": {"name": "ship"}, "params": [{"name": "tags", "value": ["x", "y"]}],
            "workspaces": [{"name": "src", "persistentVolumeClaim": {"claimName": "cache"}}],
            "taskRunTemplate": {"serviceAccountName": "builder"}})
    );
    // Bad input: an undeclared param, a required one missing, no such Pipeline.
    for (args, message) in [
        (
            &["p", "start", "ship", "-p", "tags=a", "-p", "colour=red"][..],
            "tkt: -p colour=red: Pipeline \"ship\" declares no param \"colour\"\n",
        ),
        (
            &["p", "start", "ship"][..],
            "tkt: param \"tags\" has no default: give it with -p tags=VALUE\n",
        ),
        (
            &["p", "start", "nope"][..],
            "tkt: no Pipeline \"nope\" in namespace \"default\"\n",
        ),
        (
            &["p", "start", "ship", "-p", "tags=a", "-w", "name=src"][..],
            "tkt: -w name=src: say what it is bound to: emptyDir=, claimName=, config= or secret=\n",
        ),
    ] {
        let (out, _) = c.tkt(args).await;
        assert_eq!((out.code, out.stderr.as_str()), (1, message), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_delete_and_rerun_change_only_what_they_say() {
    let c = cluster().await;
    let (out, requests) = c.tkt(&["pr", "cancel", "nightly"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "PipelineRun cancelled: nightly\n"),
        "{}",
        out.stderr
    );
    assert_eq!(
        requests,
        [
            "GET /apis/tekton.dev/v1/namespaces/default/pipelineruns/nightly",
            "PATCH /apis/tekton.dev/v1/namespaces/default/pipelineruns/nightly?",
        ]
    );
    let nightly = c.api.object(PRS, "default", "nightly").unwrap();
    assert_eq!(nightly["spec"]["status"], "Cancelled");
    let (out, _) = c.tkt(&["pr", "cancel", "ship-run"]).await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "tkt: PipelineRun \"ship-run\" has already finished: Succeeded\n"
        )
    );

    let (out, requests) = c.tkt(&["pr", "rerun", "ship-run"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(requests.len(), 2);
    let again = c
        .api
        .objects(PRS)
        .into_iter()
        .find(|r| r["metadata"]["generateName"] == "ship-run-")
        .expect("the run was started again");
    let original = c.api.object(PRS, "default", "ship-run").unwrap();
    assert_eq!(again["spec"], original["spec"]);
    assert_eq!(again["metadata"]["labels"], json!({"team": "web"}));
    assert!(
        out.stdout.starts_with("PipelineRun started: ship-run-"),
        "{}",
        out.stdout
    );

    let (out, requests) = c.tkt(&["pr", "delete", "ship-run", "nightly"]).await;
    assert_eq!(
        out.stdout,
        "PipelineRuns deleted: \"ship-run\", \"nightly\"\n"
    );
    assert_eq!(
        requests,
        [
            "DELETE /apis/tekton.dev/v1/namespaces/default/pipelineruns/ship-run?",
            "DELETE /apis/tekton.dev/v1/namespaces/default/pipelineruns/nightly?",
        ]
    );
    assert!(c.api.object(PRS, "default", "ship-run").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_is_wrong_no_run_rbac_or_no_cluster() {
    let c = cluster().await;
    let (out, _) = c.tkt(&["pr", "describe", "nope"]).await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "tkt: no PipelineRun \"nope\" in namespace \"default\"\n")
    );
    let (out, _) = c.tkt(&["pr", "describe"]).await;
    assert_eq!(out.stderr, "tkt: name one PipelineRun or give --last\n");
    c.api.forbid(TRS);
    let (out, _) = c.tkt(&["tr", "list"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("tkt: forbidden: ") && out.stderr.contains("kubectl auth can-i"),
        "{}",
        out.stderr
    );
    // A kubeconfig naming a server nobody serves.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: x, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\n\
             users: [{{name: x, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: x, user: x}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tkt"))
        .args(["pr", "list"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with(&format!(
            "tkt: no cluster: cannot reach the API server at http://127.0.0.1:{port}/: "
        )) && stderr.contains("tkt run")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}
