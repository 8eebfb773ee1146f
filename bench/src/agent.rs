//! The node agent on a busy node: marker written -> event received by a gRPC server
//! standing in for the controller, and the agent's memory and CPU, idle and under load.
//!
//!   agent [--quick] [--agent PATH] [--pods N] [--steps N]
//!
//! PATH defaults to `tektite-node-agent` beside this binary: build both with
//! `cargo build --release -p tektite-node-agent -p tektite-bench`.
//! The markers are written the way the entrypoint writes them (state record by rename,
//! then the post file), on a schedule: every pod runs its steps one after another, each
//! lasting 50-150 ms (seeded), all pods at once.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tektite_api::step::layout::{Marker, Volume, node_volume_dir};
use tektite_api::step::{StepReason, StepState};
use tektite_bench::{Samples, build_kind, ms};
use tektite_proto::agent::{self as pb, agent_server};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

/// (pod UID, step, finished?)
type Key = (String, u32, bool);

#[derive(Default)]
struct Received {
    at: HashMap<Key, Instant>,
    hellos: usize,
    events: usize,
}

#[derive(Clone, Default)]
struct Server {
    received: Arc<Mutex<Received>>,
}

#[tonic::async_trait]
impl agent_server::Agent for Server {
    type ReportStream = ReceiverStream<Result<pb::ControllerMessage, tonic::Status>>;

    async fn report(
        &self,
        request: tonic::Request<tonic::Streaming<pb::AgentMessage>>,
    ) -> Result<tonic::Response<Self::ReportStream>, tonic::Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        let received = self.received.clone();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                let now = Instant::now();
                let seq = match message.body {
                    Some(pb::agent_message::Body::Event(e)) => {
                        let key = match e.kind {
                            Some(pb::event::Kind::StepStarted(s)) => {
                                Some((s.pod_uid, s.step_index, false))
                            }
                            Some(pb::event::Kind::StepFinished(s)) => {
                                Some((s.pod_uid, s.step_index, true))
                            }
                            _ => None,
                        };
                        let mut r = received.lock().unwrap();
                        r.events += 1;
                        if let Some(key) = key {
                            r.at.entry(key).or_insert(now);
                        }
                        e.seq
                    }
                    Some(pb::agent_message::Body::Hello(_)) => {
                        received.lock().unwrap().hellos += 1;
                        continue;
                    }
                    _ => continue,
                };
                let ack = pb::ControllerMessage {
                    body: Some(pb::controller_message::Body::Ack(pb::Ack {
                        up_to_seq: seq,
                    })),
                };
                if tx.send(Ok(ack)).await.is_err() {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }
}

struct Agent(Child);

impl Agent {
    fn start(binary: &Path, root: &Path, controller: &str) -> Self {
        let child = Command::new(binary)
            .args(["--controller", controller, "--node-name", "bench-node"])
            .arg("--kubelet-root")
            .arg(root)
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--no-pod-watch",
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Agent(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory(&self) -> (u64, u64) {
        tektite_bench::memory_kib(self.pid())
    }

    /// User + system CPU time so far.
    fn cpu(&self) -> Duration {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / hz)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One marker write on the schedule.
struct Write {
    at: Duration,
    pod: usize,
    step: usize,
    finish: bool,
}

fn schedule(pods: usize, steps: usize) -> Vec<Write> {
    let mut rng = fastrand::Rng::with_seed(42);
    let mut writes = Vec::new();
    for pod in 0..pods {
        let mut t = Duration::from_millis(rng.u64(0..100));
        for step in 0..steps {
            writes.push(Write {
                at: t,
                pod,
                step,
                finish: false,
            });
            t += Duration::from_millis(rng.u64(50..150));
            writes.push(Write {
                at: t,
                pod,
                step,
                finish: true,
            });
        }
    }
    writes.sort_by_key(|w| w.at);
    writes
}

fn uid(pod: usize) -> String {
    format!("pod-{pod:04}")
}

fn write_state(post: &Path, state: &StepState) {
    let path = Marker::State.path(post);
    let tmp = path.with_extension("state.tmp");
    fs::write(&tmp, state.encode()).unwrap();
    fs::rename(&tmp, &path).unwrap();
}

/// Writes every marker on schedule; returns when each was written.
fn write_markers(root: &Path, writes: &[Write]) -> HashMap<Key, Instant> {
    let start = Instant::now();
    let mut marked = HashMap::new();
    let started_at = jiff::Timestamp::now();
    for w in writes {
        let due = start + w.at;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let post = node_volume_dir(root, &uid(w.pod), &Volume::Run(w.step)).join("out");
        let mut state = StepState::started(started_at);
        if w.finish {
            state.finished_at = Some(jiff::Timestamp::now());
            state.exit_code = Some(0);
            state.reason = Some(StepReason::Completed);
            state.results = vec![tektite_api::step::RecordedResult {
                name: "digest".into(),
                kind: tektite_api::step::ResultKind::Task,
                value: format!("sha256:{:064x}", w.pod * 1000 + w.step),
            }];
            write_state(&post, &state);
            marked.insert((uid(w.pod), w.step as u32, true), Instant::now());
            fs::File::create(&post).unwrap();
        } else {
            marked.insert((uid(w.pod), w.step as u32, false), Instant::now());
            write_state(&post, &state);
        }
    }
    marked
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
    };
    let quick = args.iter().any(|a| a == "--quick");
    let pods: usize = value("--pods").map_or(if quick { 20 } else { 110 }, |v| v.parse().unwrap());
    let steps: usize = value("--steps").map_or(20, |v| v.parse().unwrap());
    let binary = value("--agent").map(PathBuf::from).unwrap_or_else(|| {
        std::env::current_exe()
            .unwrap()
            .with_file_name("tektite-node-agent")
    });
    if !binary.exists() {
        eprintln!(
            "no agent binary at {}: run `cargo build --release -p tektite-node-agent -p tektite-bench`, or pass --agent PATH",
            binary.display()
        );
        std::process::exit(2);
    }

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for pod in 0..pods {
        for step in 0..steps {
            fs::create_dir_all(node_volume_dir(root, &uid(pod), &Volume::Run(step))).unwrap();
        }
        fs::create_dir_all(node_volume_dir(root, &uid(pod), &Volume::Home)).unwrap();
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = Server::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(agent_server::AgentServer::new(server.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let received = server.received.clone();
    let count = |f: fn(&Received) -> usize| f(&received.lock().unwrap());

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("agent: marker -> event received, memory and CPU");
    println!(
        "setup: bench {} build; agent {}; {cpus} CPUs; {pods} pods x {steps} steps ({} watched run dirs); tmp on {}",
        build_kind(),
        binary.display(),
        pods * steps,
        std::env::temp_dir().display()
    );
    println!(
        "  steps last 50-150 ms each (seeded), all pods at once; each finished step has one 71-byte result"
    );
    println!(
        "  the stand-in controller acknowledges every event; the status write is not included"
    );

    let controller = format!("http://{address}");
    let mut agent = Agent::start(&binary, root, &controller);
    wait_until("the agent's hello", Duration::from_secs(10), || {
        count(|r| r.hellos) == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    let idle = Duration::from_secs(if quick { 2 } else { 5 });
    let cpu0 = agent.cpu();
    std::thread::sleep(idle);
    let idle_cpu = agent.cpu() - cpu0;
    let (idle_rss, _) = agent.memory();

    let writes = schedule(pods, steps);
    let cpu0 = agent.cpu();
    let load_start = Instant::now();
    let marked = write_markers(root, &writes);
    let total = writes.len();
    wait_until("every event", Duration::from_secs(60), || {
        received.lock().unwrap().at.len() == total
    });
    let load_time = load_start.elapsed();
    let load_cpu = agent.cpu() - cpu0;
    let (load_rss, load_hwm) = agent.memory();

    let latencies = |finished: bool| {
        let r = received.lock().unwrap();
        Samples(
            marked
                .iter()
                .filter(|(k, _)| k.2 == finished)
                .map(|(k, t)| r.at[k].saturating_duration_since(*t))
                .collect(),
        )
    };
    let events_first_run = count(|r| r.events);
    println!();
    println!("marker written -> event received by the gRPC server (ms)");
    println!("| event | n | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    for (label, finished) in [
        ("StepFinished (post file created)", true),
        ("StepStarted (state record renamed)", false),
    ] {
        let s = latencies(finished);
        println!(
            "| {label} | {} | {} | {} | {} |",
            s.0.len(),
            ms(s.p50()),
            ms(s.p99()),
            ms(s.pct(1.0))
        );
    }
    println!(
        "  {total} marker events in {:.2} s ({:.0}/s); events on the wire: {events_first_run} (duplicates: {})",
        load_time.as_secs_f64(),
        total as f64 / load_time.as_secs_f64(),
        events_first_run - total
    );

    let cpu0 = agent.cpu();
    std::thread::sleep(idle);
    let after_cpu = agent.cpu() - cpu0;
    let (after_rss, _) = agent.memory();
    let percent = |cpu: Duration, wall: Duration| 100.0 * cpu.as_secs_f64() / wall.as_secs_f64();

    println!();
    println!("the agent process");
    println!("| phase | CPU (% of one core) | RSS (MiB) |");
    println!("|---|---:|---:|");
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "| idle, {pods} pods waiting ({} s) | {:.2} | {:.1} |",
        idle.as_secs(),
        percent(idle_cpu, idle),
        mib(idle_rss)
    );
    println!(
        "| under load ({:.1} s) | {:.1} | {:.1} (peak {:.1}) |",
        load_time.as_secs_f64(),
        percent(load_cpu, load_time),
        mib(load_rss),
        mib(load_hwm)
    );
    println!(
        "| idle after the load ({} s) | {:.2} | {:.1} |",
        idle.as_secs(),
        percent(after_cpu, idle),
        mib(after_rss)
    );

    // A restarted agent rebuilds every pod's state from the files and resends it.
    drop(agent);
    received.lock().unwrap().at.clear();
    let restart = Instant::now();
    agent = Agent::start(&binary, root, &controller);
    wait_until("every event again", Duration::from_secs(60), || {
        received.lock().unwrap().at.len() == total
    });
    let rebuilt = restart.elapsed();
    let (_, restart_hwm) = agent.memory();
    println!();
    println!(
        "restart: a new agent process reported all {total} events from the files in {} ms (peak RSS {:.1} MiB)",
        ms(rebuilt),
        mib(restart_hwm)
    );
}
