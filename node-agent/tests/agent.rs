//! The agent binary against a stand-in controller: real inotify on a kubelet-like tree in
//! a temp dir, real gRPC on 127.0.0.1, the agent as a real process killed by its PID.

use std::collections::HashSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tektite_api::step::layout::Marker;
use tektite_proto::agent::{self as pb, agent_server};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

mod common;
use common::{Node, Pod};

const TOKEN: &str = "good-token";

/// (pod UID, step index, kind): what makes an event unique.
type Key = (String, u32, &'static str);

fn key(event: &pb::Event) -> Key {
    use pb::event::Kind;
    match event.kind.as_ref().expect("every event has a kind") {
        Kind::StepStarted(e) => (e.pod_uid.clone(), e.step_index, "started"),
        Kind::StepFinished(e) => (e.pod_uid.clone(), e.step_index, "finished"),
        Kind::StepUnreadable(e) => (e.pod_uid.clone(), e.step_index, "unreadable"),
        Kind::PodGone(e) => (e.pod_uid.clone(), u32::MAX, "gone"),
    }
}

#[derive(Debug, Default)]
struct Seen {
    hellos: Vec<pb::Hello>,
    /// Every event received, with the agent run that sent it.
    events: Vec<(String, pb::Event)>,
    refused: usize,
}

impl Seen {
    fn keys(&self) -> HashSet<Key> {
        self.events.iter().map(|(_, e)| key(e)).collect()
    }
}

/// What the next stream does instead of acknowledging everything.
#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    /// Hang up after this many events, acknowledging none of them.
    hang_up_after: Option<usize>,
}

/// The controller's side of the stream: checks the token, records, acknowledges.
#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
    plan: Arc<Mutex<Plan>>,
    /// While set, events are not acknowledged; once cleared, the next heartbeat is
    /// answered with an acknowledgement of everything received.
    holding: Arc<AtomicBool>,
}

#[tonic::async_trait]
impl agent_server::Agent for Fake {
    type ReportStream = ReceiverStream<Result<pb::ControllerMessage, Status>>;

    async fn report(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::ReportStream>, Status> {
        let authorized = request
            .metadata()
            .get("authorization")
            .is_some_and(|v| v == format!("Bearer {TOKEN}").as_str());
        if !authorized {
            self.seen.lock().unwrap().refused += 1;
            return Err(Status::unauthenticated(
                "a valid ServiceAccount token is required",
            ));
        }
        // The plan applies to the first stream that carries events (a stream that broke
        // before its first event, on a loaded machine, must not use it up).
        let plan_slot = self.plan.clone();
        let mut plan = Plan::default();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(4096);
        let seen = self.seen.clone();
        let holding = self.holding.clone();
        tokio::spawn(async move {
            let mut run = String::new();
            let mut on_this_stream = 0;
            let mut last_seq = 0;
            while let Ok(Some(message)) = inbound.message().await {
                match message.body {
                    Some(pb::agent_message::Body::Hello(hello)) => {
                        run = hello.agent_run_id.clone();
                        seen.lock().unwrap().hellos.push(hello);
                    }
                    Some(pb::agent_message::Body::Event(event)) => {
                        let seq = event.seq;
                        if on_this_stream == 0 {
                            plan = std::mem::take(&mut *plan_slot.lock().unwrap());
                        }
                        last_seq = seq;
                        seen.lock().unwrap().events.push((run.clone(), event));
                        on_this_stream += 1;
                        match plan.hang_up_after {
                            Some(n) if on_this_stream >= n => return,
                            Some(_) => {}
                            None if holding.load(Ordering::SeqCst) => {}
                            None => {
                                let ack = pb::ControllerMessage {
                                    body: Some(pb::controller_message::Body::Ack(pb::Ack {
                                        up_to_seq: seq,
                                    })),
                                };
                                if tx.send(Ok(ack)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    // A stream planned to hang up acknowledges nothing, heartbeats
                    // included (an ack before the hang-up would spare events the resend).
                    Some(pb::agent_message::Body::Heartbeat(_))
                        if !holding.load(Ordering::SeqCst) && plan.hang_up_after.is_none() =>
                    {
                        let ack = pb::ControllerMessage {
                            body: Some(pb::controller_message::Body::Ack(pb::Ack {
                                up_to_seq: last_seq,
                            })),
                        };
                        if tx.send(Ok(ack)).await.is_err() {
                            return;
                        }
                    }
                    Some(pb::agent_message::Body::Heartbeat(_)) | None => {}
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Controller {
    fake: Fake,
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Controller {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let fake = Fake::default();
        let service = agent_server::AgentServer::new(fake.clone());
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        Self {
            fake,
            address,
            server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.fake.seen.lock().unwrap())
    }

    /// Waits (up to 30 s) until `done` holds of what was received.
    async fn wait_for(&self, what: &str, done: impl Fn(&Seen) -> bool) {
        for _ in 0..600 {
            if self.seen(&done) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (hellos, events, refused) = self.seen(|s| (s.hellos.len(), s.events.len(), s.refused));
        panic!("gave up waiting for {what}: {hellos} hellos, {events} events, {refused} refused");
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The agent as a process; killed by its PID when dropped.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(node: &Node, controller: &str, token_file: &Path, name: &str) -> Self {
        Self::start_with(node, controller, token_file, name, &[])
    }

    fn start_with(
        node: &Node,
        controller: &str,
        token_file: &Path,
        name: &str,
        extra: &[&str],
    ) -> Self {
        let log = node.root().join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_tektite-node-agent"))
            .args(["--controller", controller, "--node-name", "node-a"])
            .arg("--kubelet-root")
            .arg(node.root())
            .arg("--token-file")
            .arg(token_file)
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--no-pod-watch",
                "--log-format",
                "json",
                "--log-level",
                "info",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// The metrics address, from the agent's own log line.
    async fn metrics_address(&self) -> SocketAddr {
        for _ in 0..200 {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            for line in log.lines() {
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if let Some(address) = entry["fields"]["address"].as_str()
                    && entry["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("serving"))
                {
                    return address.parse().unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the agent never said where it serves metrics:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        // Child::kill sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let response = client
        .get(format!("http://{address}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The value of an unlabelled metric sample.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from:\n{metrics}"))
        .parse()
        .unwrap()
}

fn token_file(node: &Node, token: &str) -> PathBuf {
    let path = node.root().join("token");
    fs::write(&path, format!("{token}\n")).unwrap();
    path
}

/// Every (pod, step) started and finished.
fn all_steps(pods: &[Pod], steps: u32) -> HashSet<Key> {
    pods.iter()
        .flat_map(|p| {
            (0..steps).flat_map(move |s| {
                [
                    (p.uid.clone(), s, "started"),
                    (p.uid.clone(), s, "finished"),
                ]
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_of_several_pods_arrive_once_each_numbered_in_order() {
    let node = Node::new();
    let controller = Controller::start().await;
    let agent = Agent::start(&node, &controller.url(), &token_file(&node, TOKEN), "agent");
    controller.wait_for("hello", |s| !s.hellos.is_empty()).await;

    let pods: Vec<Pod> = (0..4).map(|p| node.pod(&format!("uid-{p}"), 5)).collect();
    let mut order: Vec<(usize, usize)> = (0..4).flat_map(|p| (0..5).map(move |s| (p, s))).collect();
    fastrand::Rng::with_seed(11).shuffle(&mut order);
    for (p, s) in &order {
        pods[*p].start(*s);
        pods[*p].finish(*s, s % 2 == 0);
    }
    // A garbage state record: a clear event, not a crash.
    let bad = node.pod("uid-bad", 1);
    fs::write(
        Marker::State.path(&bad.post_file(0)),
        "{\"version\":1,\"sta",
    )
    .unwrap();
    fs::File::create(bad.post_file(0)).unwrap();

    let mut expected = all_steps(&pods, 5);
    expected.insert(("uid-bad".into(), 0, "unreadable"));
    controller
        .wait_for("every step event", |s| s.keys().is_superset(&expected))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    controller.seen(|s| {
        assert_eq!(s.hellos.len(), 1);
        assert_eq!(s.hellos[0].node_name, "node-a");
        assert!(!s.hellos[0].boot_id.is_empty());
        assert_eq!(
            s.events.len(),
            expected.len(),
            "no duplicates on one stream"
        );
        let seqs: Vec<u64> = s.events.iter().map(|(_, e)| e.seq).collect();
        assert_eq!(seqs, (1..=expected.len() as u64).collect::<Vec<_>>());
        let unreadable = s.events.iter().find_map(|(_, e)| match &e.kind {
            Some(pb::event::Kind::StepUnreadable(u)) => Some(u.error.clone()),
            _ => None,
        });
        assert!(unreadable.unwrap().contains("state record"));
        // Each step's start comes before its end.
        for (uid, step, _) in expected.iter().filter(|k| k.2 == "finished") {
            let at = |kind| {
                s.events
                    .iter()
                    .position(|(_, e)| key(e) == (uid.clone(), *step, kind))
                    .unwrap()
            };
            assert!(at("started") < at("finished"), "{uid} step {step}");
        }
    });

    let metrics = get(agent.metrics_address().await, "/metrics").await.1;
    assert_eq!(
        sample(&metrics, "tektite_agent_events_sent_total"),
        expected.len() as f64
    );
    assert_eq!(
        sample(&metrics, "tektite_agent_events_acked_total"),
        expected.len() as f64
    );
    assert_eq!(sample(&metrics, "tektite_agent_unacked_events"), 0.0);
    assert_eq!(sample(&metrics, "tektite_agent_pods"), 5.0);
    assert!(sample(&metrics, "tektite_agent_marker_to_ack_seconds_count") >= expected.len() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_run_and_restarted_loses_nothing() {
    let node = Node::new();
    let controller = Controller::start().await;
    let token = token_file(&node, TOKEN);
    let pods: Vec<Pod> = (0..3).map(|p| node.pod(&format!("uid-{p}"), 6)).collect();

    let mut first = Agent::start(&node, &controller.url(), &token, "first");
    for pod in &pods {
        for s in 0..3 {
            pod.start(s);
            pod.finish(s, true);
        }
    }
    controller
        .wait_for("the first half", |s| {
            s.keys().is_superset(&all_steps(&pods, 3))
        })
        .await;
    first.kill();

    // Steps go on while no agent is running: only their files remember them.
    for pod in &pods {
        for s in 3..6 {
            pod.start(s);
            pod.finish(s, true);
        }
    }
    let _second = Agent::start(&node, &controller.url(), &token, "second");
    controller
        .wait_for("every step", |s| s.keys().is_superset(&all_steps(&pods, 6)))
        .await;
    controller.seen(|s| {
        assert_eq!(s.hellos.len(), 2);
        assert_ne!(s.hellos[0].agent_run_id, s.hellos[1].agent_run_id);
        // The new run numbers its events from 1 again.
        let second_run = &s.hellos[1].agent_run_id;
        let first_seq = s
            .events
            .iter()
            .find(|(run, _)| run == second_run)
            .unwrap()
            .1
            .seq;
        assert_eq!(first_seq, 1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_and_unacknowledged_events_are_resent() {
    let node = Node::new();
    let controller = Controller::start().await;
    *controller.fake.plan.lock().unwrap() = Plan {
        hang_up_after: Some(4),
    };
    let agent = Agent::start(&node, &controller.url(), &token_file(&node, TOKEN), "agent");
    let pod = node.pod("uid-0", 4);
    for s in 0..4 {
        pod.start(s);
        pod.finish(s, true);
    }
    let pods = [pod];
    controller
        .wait_for("a second stream with every step", |s| {
            s.hellos.len() >= 2
                && s.events
                    .iter()
                    .filter(|(run, _)| *run == s.hellos[0].agent_run_id)
                    .count()
                    > 4
                && s.keys().is_superset(&all_steps(&pods, 4))
        })
        .await;
    controller.seen(|s| {
        // Same agent process: one run id, and the first four events came twice with the
        // same numbers.
        assert!(
            s.hellos
                .iter()
                .all(|h| h.agent_run_id == s.hellos[0].agent_run_id)
        );
        for seq in 1..=4 {
            let times = s.events.iter().filter(|(_, e)| e.seq == seq).count();
            assert_eq!(times, 2, "event {seq}");
        }
    });
    let address = agent.metrics_address().await;
    for _ in 0..100 {
        let metrics = get(address, "/metrics").await.1;
        if sample(&metrics, "tektite_agent_unacked_events") == 0.0 {
            assert!(sample(&metrics, "tektite_agent_events_resent_total") >= 4.0);
            assert!(sample(&metrics, "tektite_agent_connects_total") >= 2.0);
            assert_eq!(get(address, "/readyz").await.0, 200);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("events stayed unacknowledged:\n{}", agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_keeps_the_agent_unready_until_the_rotated_token_works() {
    let node = Node::new();
    let controller = Controller::start().await;
    let token = token_file(&node, "stale-token");
    let agent = Agent::start(&node, &controller.url(), &token, "agent");
    let pod = node.pod("uid-0", 1);
    pod.start(0);
    pod.finish(0, true);
    controller.wait_for("a refusal", |s| s.refused >= 1).await;
    let address = agent.metrics_address().await;
    assert_eq!(get(address, "/healthz").await.0, 200);
    let (status, body) = get(address, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(controller.seen(|s| s.events.is_empty()));

    // The kubelet rotates the projected token; the agent reads it on its next attempt.
    token_file(&node, TOKEN);
    let pods = [pod];
    controller
        .wait_for("the step after the token rotated", |s| {
            s.keys().is_superset(&all_steps(&pods, 1))
        })
        .await;
    assert!(agent.log().contains("refused"), "{}", agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_started_before_its_controller_connects_when_it_comes_up() {
    let node = Node::new();
    // Reserve a port, then free it: nothing listens there yet.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _agent = Agent::start(
        &node,
        &format!("http://{address}"),
        &token_file(&node, TOKEN),
        "agent",
    );
    let pod = node.pod("uid-0", 2);
    for s in 0..2 {
        pod.start(s);
        pod.finish(s, true);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let fake = Fake::default();
    let service = agent_server::AgentServer::new(fake.clone());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let controller = Controller {
        fake,
        address,
        server: tokio::spawn(async move {
            let _ = server.await;
        }),
    };
    let pods = [pod];
    controller
        .wait_for("the buffered steps", |s| {
            s.keys().is_superset(&all_steps(&pods, 2))
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_pauses_the_agent_and_counts_until_acknowledgements_make_room() {
    let node = Node::new();
    let controller = Controller::start().await;
    controller.fake.holding.store(true, Ordering::SeqCst);
    let agent = Agent::start_with(
        &node,
        &controller.url(),
        &token_file(&node, TOKEN),
        "agent",
        &["--buffer-events", "3", "--heartbeat-seconds", "1"],
    );
    let pod = node.pod("uid-0", 4);
    for s in 0..4 {
        pod.start(s);
        pod.finish(s, true);
    }
    let address = agent.metrics_address().await;
    let mut paused = false;
    for _ in 0..100 {
        let metrics = get(address, "/metrics").await.1;
        if sample(&metrics, "tektite_agent_buffer_full_total") >= 1.0 {
            assert_eq!(sample(&metrics, "tektite_agent_unacked_events"), 3.0);
            paused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(paused, "the buffer never filled:\n{}", agent.log());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        controller.seen(|s| s.events.len()),
        3,
        "nothing beyond the buffer is sent"
    );
    assert!(agent.log().contains("buffer is full"), "{}", agent.log());

    controller.fake.holding.store(false, Ordering::SeqCst);
    let pods = [pod];
    controller
        .wait_for("every step once the controller acknowledges", |s| {
            s.keys().is_superset(&all_steps(&pods, 4))
        })
        .await;
}
