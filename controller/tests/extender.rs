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
    let extender = Extender::new(
        mode,
        pods.clone(),
        None,
        agents.clone(),
        Arc::new(Metrics::new()),
        Clock::fixed("2026-11-22T10:00:00Z".parse().unwrap()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(extender::serve(listener, Arc::new(extender)));
    Server {
        addr,
        pods,
        agents,
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

    /// What a kube-scheduler with this extender does: filter, prioritize, take the best
    /// scored node that passed (the first of equals), bind.
    async fn schedule(&mut self, pod: &Value) -> String {
        let args = json!({"Pod": pod, "Nodes": null, "NodeNames": NODES});
        let (status, filtered) = self.post("filter", &args).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(filtered["Error"], "");
        let kept: Vec<String> = serde_json::from_value(filtered["NodeNames"].clone()).unwrap();
        let (status, scores) = self
            .post("prioritize", &json!({"Pod": pod, "NodeNames": kept}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let best = scores
            .as_array()
            .unwrap()
            .iter()
            .fold(None::<&Value>, |best, s| match best {
                Some(b) if b["Score"].as_i64() >= s["Score"].as_i64() => Some(b),
                _ => Some(s),
            })
            .expect("some node passed");
        let node = best["Host"].as_str().unwrap().to_owned();
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
    assert_eq!(filtered["NodeNames"], json!(["n2", "n3"]));
    assert_eq!(
        filtered["FailedAndUnresolvableNodes"]["n1"],
        "node n1 runs PipelineRun ci/pr (coschedule: isolate-pipelinerun)"
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
