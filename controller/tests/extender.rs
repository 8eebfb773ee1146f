//! The scheduler extender over real HTTP on loopback, with requests in the scheduler's
//! JSON: the verbs, malformed bodies, and a scheduler's walk through a 3-task pipeline
//! sharing one claim in each coschedule mode.

use std::sync::Arc;

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tektite_controller::agents::Agents;
use tektite_controller::context::Clock;
use tektite_controller::extender::{self, Coschedule, Extender, NO_AGENT};
use tektite_controller::metrics::Metrics;
use tektite_controller::pod_index::PodIndex;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

fn pod_json(name: &str, run: &str, claims: &[&str], node: Option<&str>) -> Value {
    let volumes: Vec<_> = claims
        .iter()
        .map(|c| json!({"name": format!("ws-{c}"), "persistentVolumeClaim": {"claimName": c}}))
        .collect();
    // As the scheduler sends it: a whole Pod, status included.
    json!({
        "metadata": {
            "name": name, "namespace": "ci", "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-11-22T10:00:00Z",
            "labels": {
                "tektite.dev/managed-by": "tektite",
                "tekton.dev/pipelineRun": run,
                "tekton.dev/pipelineTask": name,
            },
        },
        "spec": {
            "containers": [{"name": "step-run", "image": "busybox", "resources": {}}],
            "volumes": volumes,
            "nodeName": node,
            "schedulerName": "tektite-scheduler",
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    })
}

struct Server {
    addr: std::net::SocketAddr,
    pods: Arc<PodIndex>,
    agents: Arc<Agents>,
    /// Seconds after the start that the extender's clock says.
    seconds: Arc<std::sync::atomic::AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server(mode: Coschedule) -> Server {
    let pods = Arc::new(PodIndex::default());
    let agents = Arc::new(Agents::default());
    let seconds = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let clock = seconds.clone();
    let start: jiff::Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
    let extender = Extender::new(
        mode,
        pods.clone(),
        None,
        agents.clone(),
        Arc::new(Metrics::new()),
        Clock::from_fn(move || {
            let s = clock.load(std::sync::atomic::Ordering::SeqCst);
            start
                .checked_add(jiff::SignedDuration::from_secs(s))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(extender::serve(listener, Arc::new(extender)));
    Server {
        addr,
        pods,
        agents,
        seconds,
        task,
    }
}

impl Server {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> (StatusCode, Value) {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&body).expect("the answer is JSON"),
        )
    }

    async fn post(&self, verb: &str, args: &Value) -> (StatusCode, Value) {
        self.send(
            Method::POST,
            &format!("/scheduler/{verb}"),
            serde_json::to_vec(args).unwrap(),
        )
        .await
    }

    fn bind(&self, pod: &Value, node: &str) {
        let mut pod = pod.clone();
        pod["spec"]["nodeName"] = json!(node);
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.agents
            .step_started(node, pod.metadata.uid.as_deref().unwrap(), 0);
        self.pods.apply(&watcher::Event::Apply(pod));
    }

    /// What a kube-scheduler with this extender does, with the Pod watch behind: filter,
    /// prioritize, take the best scored node that passed (the first of equals); the
    /// binding is not seen yet. The node, and the filter's reasons for the others.
    async fn schedule_unseen(&self, pod: &Value) -> (String, Value) {
        let args = json!({"Pod": pod, "NodeNames": NODES});
        let (status, filtered) = self.post("filter", &args).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(filtered["Error"], "");
        let kept: Vec<String> = serde_json::from_value(filtered["NodeNames"].clone()).unwrap();
        let (_, scores) = self
            .post("prioritize", &json!({"Pod": pod, "NodeNames": kept}))
            .await;
        let best = scores
            .as_array()
            .unwrap()
            .iter()
            .fold(None::<&Value>, |best, s| match best {
                Some(b) if b["Score"].as_i64() >= s["Score"].as_i64() => Some(b),
                _ => Some(s),
            })
            .expect("some node passed");
        (
            best["Host"].as_str().unwrap().to_owned(),
            filtered["FailedAndUnresolvableNodes"].clone(),
        )
    }

    /// The watch shows the Pod as created (not bound).
    fn seen(&self, pod: &Value) {
        let pod: Pod = serde_json::from_value(pod.clone()).unwrap();
        self.pods.apply(&watcher::Event::Apply(pod));
    }

    fn later(&self, seconds: i64) {
        self.seconds
            .fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }

    /// What a kube-scheduler with this extender does: filter, prioritize, take the best
    /// scored node that passed (the first of equals), bind.
    async fn schedule(&mut self, pod: &Value) -> String {
        let (node, _) = self.schedule_unseen(pod).await;
        self.bind(pod, &node);
        node
    }
}

/// A 3-task pipeline: fetch and build share the claim `src`, notify binds nothing; then
/// the first Pod of another PipelineRun. n1 is busy, so fetch lands on n2.
async fn walk(mode: Coschedule) -> Vec<String> {
    let mut server = server(mode).await;
    NODES.iter().for_each(|n| server.agents.connect(n));
    for step in 0..5 {
        server.agents.step_started("n1", "busy", step);
    }
    let mut placed = vec![];
    for (name, run, claims) in [
        ("fetch", "pr", &["src"][..]),
        ("build", "pr", &["src"]),
        ("notify", "pr", &[]),
        ("other", "pr2", &[]),
    ] {
        placed.push(server.schedule(&pod_json(name, run, claims, None)).await);
    }
    placed
}

#[tokio::test]
async fn a_pipeline_sharing_a_claim_is_placed_per_coschedule_mode() {
    // Each bound Pod runs a step, so n2 is busier than n3 after fetch.
    assert_eq!(walk(Coschedule::Workspaces).await, ["n2", "n2", "n3", "n3"]);
    assert_eq!(
        walk(Coschedule::PipelineRuns).await,
        ["n2", "n2", "n2", "n3"]
    );
    assert_eq!(
        walk(Coschedule::IsolatePipelineRun).await,
        ["n2", "n2", "n2", "n3"]
    );
    assert_eq!(walk(Coschedule::Disabled).await, ["n2", "n3", "n2", "n3"]);
}

#[tokio::test]
async fn isolate_leaves_a_busy_node_to_its_run_even_when_it_is_the_idlest() {
    let server = server(Coschedule::IsolatePipelineRun).await;
    NODES.iter().for_each(|n| server.agents.connect(n));
    server.bind(&pod_json("fetch", "pr", &[], None), "n1");
    for node in ["n2", "n3"] {
        for step in 0..3 {
            server
                .agents
                .step_started(node, &format!("busy-{node}"), step);
        }
    }
    let args = json!({"Pod": pod_json("other", "pr2", &[], None), "NodeNames": NODES});
    let (_, filtered) = server.post("filter", &args).await;
    assert_eq!(filtered["NodeNames"], json!(["n2"]));
    assert_eq!(
        filtered["FailedAndUnresolvableNodes"]["n1"],
        "node n1 runs PipelineRun ci/pr (coschedule: isolate-pipelinerun)"
    );
    assert_eq!(
        filtered["FailedAndUnresolvableNodes"]["n3"],
        "tektite places PipelineRun ci/pr2 on one node, the least busy that passed (coschedule: isolate-pipelinerun)"
    );
}

#[tokio::test]
async fn filter_answers_node_names_or_whole_nodes_as_asked() {
    let server = server(Coschedule::Workspaces).await;
    server.agents.connect("n3");
    let pod = pod_json("build", "pr", &[], None);

    let (status, answer) = server
        .post("filter", &json!({"Pod": pod, "NodeNames": NODES}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({
            "NodeNames": ["n3"],
            "FailedNodes": {},
            "FailedAndUnresolvableNodes": {"n1": NO_AGENT, "n2": NO_AGENT},
            "Error": "",
        })
    );

    // Not nodeCacheCapable: whole Nodes in, the passing Nodes out unchanged.
    let nodes: Vec<Value> = NODES
        .iter()
        .map(|n| json!({"metadata": {"name": n, "labels": {"zone": "a"}}, "status": {"capacity": {"cpu": "4"}}}))
        .collect();
    let (status, answer) = server
        .post(
            "filter",
            &json!({"Pod": pod, "Nodes": {"metadata": {}, "items": nodes}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["Nodes"]["items"], json!([nodes[2]]));
    assert!(answer.get("NodeNames").is_none());

    let (status, answer) = server
        .post("prioritize", &json!({"Pod": pod, "NodeNames": NODES}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!([
            {"Host": "n1", "Score": 0},
            {"Host": "n2", "Score": 0},
            {"Host": "n3", "Score": 10},
        ])
    );
}

#[tokio::test]
async fn pods_that_are_not_tektites_pass_unfiltered() {
    let server = server(Coschedule::PipelineRuns).await;
    server.agents.connect("n1");
    let mut pod = pod_json("web", "pr", &[], None);
    pod["metadata"]["labels"] = json!({"app": "web"});
    let (_, answer) = server
        .post("filter", &json!({"Pod": pod, "NodeNames": NODES}))
        .await;
    assert_eq!(answer["NodeNames"], json!(NODES));
    assert_eq!(answer["FailedAndUnresolvableNodes"], json!({}));
}

#[tokio::test]
async fn malformed_requests_get_a_json_error_in_the_schedulers_format() {
    let server = server(Coschedule::Workspaces).await;
    let pod = pod_json("build", "pr", &[], None);
    let cases: [(&str, Bytes, &str); 6] = [
        (
            "filter",
            Bytes::from_static(b"{\"Pod\": "),
            "not extender v1 ExtenderArgs",
        ),
        (
            "filter",
            Bytes::from_static(b""),
            "not extender v1 ExtenderArgs",
        ),
        (
            "filter",
            Bytes::from_static(b"[1, 2]"),
            "not extender v1 ExtenderArgs",
        ),
        (
            "filter",
            json_bytes(&json!({"NodeNames": NODES})),
            "has no Pod",
        ),
        (
            "filter",
            json_bytes(&json!({"Pod": pod, "NodeNames": null})),
            "neither NodeNames nor Nodes",
        ),
        (
            "filter",
            json_bytes(&json!({"Pod": {"spec": {"containers": 7}}, "NodeNames": []})),
            "not extender v1 ExtenderArgs",
        ),
    ];
    for (verb, body, expected) in cases {
        let (status, answer) = server
            .send(Method::POST, &format!("/scheduler/{verb}"), body.clone())
            .await;
        // The scheduler reads a filter's Error from a 200 answer.
        assert_eq!(status, StatusCode::OK, "{body:?}");
        let error = answer["Error"].as_str().unwrap();
        assert!(error.contains(expected), "{body:?}: {error}");
    }

    let (status, answer) = server
        .send(Method::POST, "/scheduler/prioritize", &b"nope"[..])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["Error"].as_str().unwrap().contains("ExtenderArgs"));

    let (status, answer) = server
        .send(Method::GET, "/scheduler/filter", &b""[..])
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer["Error"].as_str().unwrap().contains("POST"));

    let (status, answer) = server
        .send(Method::POST, "/scheduler/bind", &b"{}"[..])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        answer["Error"]
            .as_str()
            .unwrap()
            .contains("/scheduler/filter")
    );

    // The server still answers after all that.
    let (status, _) = server
        .post("filter", &json!({"Pod": pod, "NodeNames": []}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

fn json_bytes(v: &Value) -> Bytes {
    serde_json::to_vec(v).unwrap().into()
}

/// Two first Pods of one run filtered one after the other, before the watch shows either
/// bound: the second goes where the extender placed the first, and says why.
#[tokio::test]
async fn parallel_first_pods_of_a_run_share_one_node_before_the_watch_sees_it() {
    for (mode, claims) in [
        (Coschedule::PipelineRuns, &[][..]),
        (Coschedule::IsolatePipelineRun, &[]),
        (Coschedule::Workspaces, &["src"]),
    ] {
        let server = server(mode).await;
        NODES.iter().for_each(|n| server.agents.connect(n));
        // n1 is busy: the run goes to n2.
        server.bind(&pod_json("elsewhere", "other", &[], None), "n1");
        let (first, _) = server
            .schedule_unseen(&pod_json("lint", "pr", claims, None))
            .await;
        let (second, why) = server
            .schedule_unseen(&pod_json("test", "pr", claims, None))
            .await;
        assert_eq!((first.as_str(), second.as_str()), ("n2", "n2"), "{mode:?}");
        let why = why["n3"].as_str().unwrap();
        assert!(
            why.contains("on node n2, which tektite chose for its Pod lint (not yet seen bound)"),
            "{mode:?}: {why}"
        );
    }
}

/// Under `workspaces`, two Pods of a run that share no claim may part; two that share a
/// ReadWriteOnce claim may not.
#[tokio::test]
async fn pods_sharing_a_single_node_claim_stay_together_and_others_spread() {
    let server = server(Coschedule::Workspaces).await;
    NODES.iter().for_each(|n| server.agents.connect(n));
    let (a, _) = server
        .schedule_unseen(&pod_json("a", "pr", &["cache"], None))
        .await;
    let (b, why) = server
        .schedule_unseen(&pod_json("b", "pr", &["cache"], None))
        .await;
    assert_eq!(a, b);
    assert_eq!(
        why["n3"],
        "the workspace claim cache of PipelineRun ci/pr is in use on node n1, which tektite chose for its Pod a (not yet seen bound) (coschedule: workspaces)"
    );
    let (c, _) = server
        .schedule_unseen(&pod_json("c", "pr", &[], None))
        .await;
    assert_ne!(c, a, "a Pod with no claim goes to a less busy node");
}

/// Ten new runs at once on three idle nodes, none of them seen bound: each node gets an
/// even share (at most one run more than another).
#[tokio::test]
async fn a_burst_of_new_runs_spreads_over_the_nodes_before_the_watch_sees_any() {
    for mode in [Coschedule::PipelineRuns, Coschedule::Workspaces] {
        let server = server(mode).await;
        NODES.iter().for_each(|n| server.agents.connect(n));
        let mut count = std::collections::BTreeMap::<String, usize>::new();
        for i in 0..10 {
            let (node, _) = server
                .schedule_unseen(&pod_json(
                    &format!("first-{i}"),
                    &format!("run-{i}"),
                    &[],
                    None,
                ))
                .await;
            *count.entry(node).or_default() += 1;
        }
        let most = count.values().max().copied().unwrap_or(0);
        let least = NODES
            .iter()
            .map(|n| count.get(*n).copied().unwrap_or(0))
            .min()
            .unwrap();
        assert!(most - least <= 1, "{mode:?}: {count:?}");
    }
}

/// A held choice goes with its Pod: deleted (seen, then gone), or never bound (its time
/// runs out); then the run's next Pod is placed afresh.
#[tokio::test]
async fn a_held_choice_is_released_when_its_pod_is_deleted_or_never_binds() {
    let server = server(Coschedule::PipelineRuns).await;
    NODES.iter().for_each(|n| server.agents.connect(n));
    server.bind(&pod_json("busy", "other", &[], None), "n1");
    let lint = pod_json("lint", "pr", &[], None);
    let (held, _) = server.schedule_unseen(&lint).await;
    assert_eq!(held, "n2");
    // Seen unbound, then deleted: released, and n2 now counts nothing of it.
    server.seen(&lint);
    let gone: Pod = serde_json::from_value(lint.clone()).unwrap();
    server.pods.apply(&watcher::Event::Delete(gone));
    let (_, why) = server
        .schedule_unseen(&pod_json("test", "pr", &[], None))
        .await;
    assert!(
        why["n3"]
            .as_str()
            .unwrap()
            .starts_with("tektite places PipelineRun ci/pr on one node"),
        "{why}"
    );

    // Never bound: held for 30 s, then released.
    let server2 = server_with_agents(Coschedule::PipelineRuns).await;
    server2.bind(&pod_json("busy", "other", &[], None), "n1");
    let (a, _) = server2
        .schedule_unseen(&pod_json("a", "pr", &[], None))
        .await;
    server2.later(29);
    let (b, why) = server2
        .schedule_unseen(&pod_json("b", "pr", &[], None))
        .await;
    assert_eq!((a.as_str(), b.as_str()), ("n2", "n2"));
    assert!(
        why["n1"]
            .as_str()
            .unwrap()
            .contains("which tektite chose for its Pod a")
    );
    server2.later(2);
    let (_, why) = server2
        .schedule_unseen(&pod_json("c", "pr", &[], None))
        .await;
    assert!(
        why["n1"]
            .as_str()
            .unwrap()
            .contains("which tektite chose for its Pod b"),
        "a's hold ran out; b's (it went where a was held) is the run's now: {why}"
    );
    server2.later(100);
    let (_, why) = server2
        .schedule_unseen(&pod_json("d", "pr", &[], None))
        .await;
    assert!(
        why["n1"]
            .as_str()
            .unwrap()
            .starts_with("tektite places PipelineRun ci/pr on one node"),
        "every hold ran out: placed afresh: {why}"
    );
}

/// The agent of the node a run is held on leaves: the run's next Pod still goes there
/// (as to a node its run is bound to: its work is there), and says why.
#[tokio::test]
async fn a_choice_stays_held_when_its_nodes_agent_leaves() {
    let server = server_with_agents(Coschedule::Workspaces).await;
    let (first, _) = server
        .schedule_unseen(&pod_json("a", "pr", &["src"], None))
        .await;
    server
        .agents
        .disconnect(&first, "2026-11-22T10:00:00Z".parse().unwrap());
    let (second, _) = server
        .schedule_unseen(&pod_json("b", "pr", &["src"], None))
        .await;
    assert_eq!(first, second);
}

async fn server_with_agents(mode: Coschedule) -> Server {
    let server = server(mode).await;
    NODES.iter().for_each(|n| server.agents.connect(n));
    server
}
