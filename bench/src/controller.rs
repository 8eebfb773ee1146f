//! The controller's fast path: an agent's StepFinished event taken in by the ingest
//! (`ingest::take`: decode, find the Pod and its TaskRun in the cache, store) and the
//! TaskRun's reconcile until its status patch reaches the API server. The API server is an
//! in-process fake that answers at once, so this is the controller's own cost. Not
//! included: kube-runtime's queue and the `--coalesce` debounce (5 ms by default, which is
//! added in full to every event on a cluster), and the network.
//!
//! Also: status writes per TaskRun for a 20-step TaskRun when every event gets its own
//! reconcile (the worst case; bursts closer than the debounce share one write).
//!
//! Target (DESIGN.md): step end → controller knows, p99 ≤ 20 ms. Tekton: kubelet status
//! sync + watch, about a second or more.
//!
//! Run: `cargo run --release -p tektite-bench --bin controller [-- --quick]`

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::client::Body;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use tektite_api::v1::{PipelineRun, TaskRun};
use tektite_api::v1beta1::CustomRun;
use tektite_bench::{Samples, build_kind, ms};
use tektite_controller::context::{Clock, Context, Settings};
use tektite_controller::metrics::Metrics;
use tektite_controller::pod_index::PodIndex;
use tektite_controller::steps::StepStore;
use tektite_controller::{ingest, taskrun};
use tektite_proto::agent as pb;
use tokio::sync::mpsc;

fn task_run(steps: usize) -> TaskRun {
    let steps: Vec<serde_json::Value> = (0..steps)
        .map(|i| serde_json::json!({"name": format!("s{i}"), "image": "alpine", "command": ["true"]}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "tr", "namespace": "ci", "uid": "tr-uid"},
        "spec": {"taskSpec": {"results": [{"name": "out"}], "steps": steps.clone()}},
        "status": {"podName": "tr-pod", "startTime": "2026-11-22T10:00:00Z",
                   "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}],
                   "taskSpec": {"results": [{"name": "out"}], "steps": steps}}
    }))
    .unwrap()
}

fn pod(name: &str, uid: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "ci", "uid": uid,
            "ownerReferences": [{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": "tr", "uid": "tr-uid", "controller": true}]},
        "spec": {"nodeName": "node-a", "containers": []}
    }))
    .unwrap()
}

fn finished(uid: &str, step: u32, now: Timestamp) -> pb::Event {
    let t = prost_types::Timestamp {
        seconds: now.as_second(),
        nanos: now.subsec_nanosecond(),
    };
    pb::Event {
        seq: 1,
        kind: Some(pb::event::Kind::StepFinished(pb::StepFinished {
            pod_uid: uid.into(),
            step_index: step,
            step_name: format!("s{step}"),
            started_at: Some(t),
            finished_at: Some(t),
            exit_code: Some(0),
            reason: "Completed".into(),
            message: String::new(),
            results: vec![pb::Result {
                name: "out".into(),
                kind: pb::ResultKind::Task as i32,
                value: "x".repeat(1024),
            }],
        })),
    }
}

/// A context over an API server that answers at once; PATCH arrival times go to `patches`.
fn context(pods: Vec<Pod>) -> (Arc<Context>, mpsc::UnboundedReceiver<Instant>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (tx, patches) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            if request.method() == http::Method::PATCH {
                let _ = tx.send(Instant::now());
            }
            send.send_response(
                Response::builder()
                    .body(Body::from(b"{}".to_vec()))
                    .unwrap(),
            );
        }
    });
    let pod_index = Arc::new(PodIndex::from_pods(&pods));
    let mut writer: Writer<Pod> = Writer::default();
    for p in pods {
        writer.apply_watcher_event(&watcher::Event::Apply(p));
    }
    // Nothing runs the queue here: the reconcile is called directly.
    let (wake, _) = mpsc::channel(1);
    let ctx = Arc::new(Context {
        client: kube::Client::new(svc, "default"),
        settings: Settings::default(),
        pods: writer.as_reader(),
        pod_index,
        task_runs: Writer::<TaskRun>::default().as_reader(),
        task_run_owners: Arc::default(),
        custom_runs: Writer::<CustomRun>::default().as_reader(),
        custom_run_owners: Arc::default(),
        pipeline_runs: Writer::<PipelineRun>::default().as_reader(),
        pipeline_run_owners: Arc::default(),
        steps: Arc::new(StepStore::default()),
        agents: Arc::default(),
        metrics: Arc::new(Metrics::new()),
        events: Arc::new(tektite_controller::events::Events::new(Default::default()).0),
        resolvers: Arc::default(),
        clock: Clock::system(),
        wake,
    });
    (ctx, patches)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 200 } else { 5_000 };
    println!(
        "controller fast path ({}), {n} events, fake API answering at once",
        build_kind()
    );

    let uids: Vec<String> = (0..n).map(|i| format!("pod-{i}")).collect();
    // Every Pod distinct in the cache the ingest searches.
    let (ctx, mut patches) = context(uids.iter().map(|u| pod(u, u)).collect());
    let tr = Arc::new(task_run(2));
    let mut samples = Samples::default();
    for uid in &uids {
        let began = Instant::now();
        ingest::take(&ctx, "node-a", finished(uid, 0, Timestamp::now())).await;
        // The reconcile finds its Pod by name: a cache holding this one as `tr-pod`.
        let ctx_one = Arc::new(Context {
            pods: {
                let mut w: Writer<Pod> = Writer::default();
                w.apply_watcher_event(&watcher::Event::Apply(pod("tr-pod", uid)));
                w.as_reader()
            },
            client: ctx.client.clone(),
            settings: ctx.settings.clone(),
            task_runs: ctx.task_runs.clone(),
            task_run_owners: ctx.task_run_owners.clone(),
            custom_runs: ctx.custom_runs.clone(),
            custom_run_owners: ctx.custom_run_owners.clone(),
            pipeline_runs: ctx.pipeline_runs.clone(),
            pipeline_run_owners: ctx.pipeline_run_owners.clone(),
            steps: ctx.steps.clone(),
            pod_index: ctx.pod_index.clone(),
            agents: ctx.agents.clone(),
            metrics: ctx.metrics.clone(),
            events: ctx.events.clone(),
            resolvers: ctx.resolvers.clone(),
            clock: ctx.clock.clone(),
            wake: ctx.wake.clone(),
        });
        taskrun::reconcile(tr.clone(), ctx_one).await.unwrap();
        let at = patches.recv().await.expect("one status patch");
        samples.0.push(at - began);
    }
    println!(
        "  event taken in → status patch at the API server: p50 {} ms, p99 {} ms (Pod cache of {n})",
        ms(samples.p50()),
        ms(samples.p99())
    );

    // Writes per TaskRun: 20 steps, a reconcile after every finished step.
    let (ctx, mut patches) = context(vec![pod("tr-pod", "p20")]);
    let tr = Arc::new(task_run(20));
    let mut writes = 0;
    for step in 0..20 {
        ingest::take(&ctx, "node-a", finished("p20", step, Timestamp::now())).await;
        taskrun::reconcile(tr.clone(), ctx.clone()).await.unwrap();
        while patches.try_recv().is_ok() {
            writes += 1;
        }
    }
    println!("  status writes for a 20-step TaskRun, one reconcile per step event: {writes}");
}
