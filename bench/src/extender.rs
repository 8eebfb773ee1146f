//! The scheduler extender: filter and prioritize answered for 100, 1,000 and 5,000 node
//! names, from the request body to the answer body (JSON decoding of the Pod and names,
//! the decision over the Pod cache and the agent registry, JSON encoding), measured in
//! process as wall time and as this thread's CPU time; and the whole HTTP round trip on
//! loopback for 5,000 names.
//!
//! Setup: a Pod cache of 10,000 tektite Pods (1,000 PipelineRuns × 10, each binding its
//! run's claim), agents connected on every node, each reporting 0-20 running steps.
//! Pods scheduled: the first Pod of a new PipelineRun (unpinned: every node is checked
//! against the agents; the worst case) and a Pod of a running one (pinned to its claim's
//! node), in the default `workspaces` mode and in `isolate-pipelinerun` (which also
//! collects the nodes busy with other runs).
//!
//! Target (issue 7): a filter call for 5,000 node names takes ≤ 1 ms of CPU. Tekton has no
//! extender: its affinity assistant is a placeholder StatefulSet Pod per workspace.
//!
//! Run: `cargo run --release -p tektite-bench --bin extender [-- --quick]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use nix::time::{ClockId, clock_gettime};
use serde_json::{Value, json};
use tektite_bench::{Samples, build_kind, ms};
use tektite_controller::agents::Agents;
use tektite_controller::context::Clock;
use tektite_controller::extender::{self, Coschedule, Extender, Verb};
use tektite_controller::metrics::Metrics;
use tektite_controller::pod_index::PodIndex;

const RUNS: usize = 1_000;
const PODS_PER_RUN: usize = 10;
const MAX_NODES: usize = 5_000;

fn node(i: usize) -> String {
    format!("node-{i:05}")
}

fn pod(run: usize, task: usize, node: Option<&str>) -> Value {
    json!({
        "metadata": {
            "name": format!("run-{run}-task-{task}-pod"), "namespace": "ci",
            "uid": format!("uid-{run}-{task}"),
            "creationTimestamp": "2026-11-22T10:00:00Z",
            "labels": {
                "tektite.dev/managed-by": "tektite",
                "tekton.dev/pipelineRun": format!("run-{run}"),
                "tekton.dev/pipelineTask": format!("task-{task}"),
                "tekton.dev/taskRun": format!("run-{run}-task-{task}"),
            },
        },
        "spec": {
            "nodeName": node,
            "schedulerName": "tektite-scheduler",
            "containers": [{"name": "step-build", "image": "golang:1.23",
                "command": ["/tekton/bin/entrypoint"], "args": ["--post-file=/tekton/run/0/out"]}],
            "volumes": [
                {"name": "ws-src", "persistentVolumeClaim": {"claimName": format!("src-run-{run}")}},
                {"name": "tekton-internal-home", "emptyDir": {}},
            ],
        },
        "status": {"phase": "Running"},
    })
}

fn cpu_now() -> Duration {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

fn extender(mode: Coschedule) -> Extender {
    let pods = PodIndex::default();
    for run in 0..RUNS {
        // A run's Pods share its claim's node.
        let node = node(run * 7 % MAX_NODES);
        for task in 0..PODS_PER_RUN {
            let p: Pod = serde_json::from_value(pod(run, task, Some(&node))).unwrap();
            pods.apply(&watcher::Event::Apply(p));
        }
    }
    let agents = Arc::new(Agents::default());
    for i in 0..MAX_NODES {
        let n = node(i);
        agents.connect(&n);
        for step in 0..fastrand::usize(0..=20) {
            agents.step_started(&n, &format!("running-{i}"), step);
        }
    }
    Extender::new(
        mode,
        Arc::new(pods),
        None,
        agents,
        Arc::new(Metrics::new()),
        Clock::fixed(Timestamp::now()),
    )
}

fn body(pod: &Value, nodes: usize) -> Vec<u8> {
    let names: Vec<String> = (0..nodes).map(node).collect();
    serde_json::to_vec(&json!({"Pod": pod, "Nodes": null, "NodeNames": names})).unwrap()
}

async fn round_trips(extender: Arc<Extender>, body: Vec<u8>, n: usize) -> Samples {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(extender::serve(listener, extender));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let body = Bytes::from(body);
    let mut samples = Samples::default();
    for _ in 0..n {
        let request = Request::post("/scheduler/filter")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        let began = Instant::now();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let answer = response.into_body().collect().await.unwrap().to_bytes();
        samples.0.push(began.elapsed());
        assert!(answer.len() > 2);
    }
    conn.abort();
    server.abort();
    samples
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 50 } else { 2_000 };
    println!(
        "scheduler extender ({}, {n} calls per row; Pod cache {} Pods, agents on {MAX_NODES} nodes)",
        build_kind(),
        RUNS * PODS_PER_RUN
    );
    println!("  mode | Pod | verb | nodes | wall p50 / p99 ms | CPU p50 / p99 ms | answer bytes");
    let first = pod(RUNS + 1, 0, None);
    let sibling = pod(3, PODS_PER_RUN, None);
    for mode in [Coschedule::Workspaces, Coschedule::IsolatePipelineRun] {
        let extender = extender(mode);
        for (which, p) in [("first of a run", &first), ("pinned", &sibling)] {
            for verb in [Verb::Filter, Verb::Prioritize] {
                for nodes in [100, 1_000, MAX_NODES] {
                    let body = body(p, nodes);
                    let (mut wall, mut cpu) = (Samples::default(), Samples::default());
                    let mut size = 0;
                    for _ in 0..n {
                        let (w, c) = (Instant::now(), cpu_now());
                        let (status, answer) = extender.answer(verb, &body);
                        cpu.0.push(cpu_now() - c);
                        wall.0.push(w.elapsed());
                        assert_eq!(status, StatusCode::OK);
                        size = answer.len();
                    }
                    println!(
                        "  {mode:?} | {which} | {verb:?} | {nodes} | {} / {} | {} / {} | {size}",
                        ms(wall.p50()),
                        ms(wall.p99()),
                        ms(cpu.p50()),
                        ms(cpu.p99()),
                    );
                }
            }
        }
    }
    let http = round_trips(
        Arc::new(extender(Coschedule::Workspaces)),
        body(&first, MAX_NODES),
        n,
    )
    .await;
    println!(
        "  HTTP round trip on loopback, filter, first of a run, {MAX_NODES} nodes: p50 {} ms, p99 {} ms",
        ms(http.p50()),
        ms(http.p99())
    );
}
