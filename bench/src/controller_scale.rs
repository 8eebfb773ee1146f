//! The whole controller under load: the release `tektite-controller` binary, in its own
//! process, pointed by a kubeconfig at an in-memory API server in this process
//! (`tektite_tests::api_server`: answers at once, HTTP/1.1 on loopback). Everything the controller does on
//! a cluster happens here too: the leader Lease, list and watch of PipelineRuns, TaskRuns,
//! Pods and claims, the reconciles, creates and status patches. What is not here: a real
//! API server's latency, admission, etcd, and the network.
//!
//! 1. Throughput: 100 PipelineRuns of 20 independent tasks arrive at once; how soon each
//!    TaskRun and its Pod are created (the fake kubelet is off, so no Pod starts). Three
//!    rounds on one controller.
//! 2. Memory: 1,000 PipelineRuns of 10 tasks arrive at once; the fake kubelet starts every
//!    Pod as it is created, so the controller ends with 1,000 running PipelineRuns, 10,000
//!    running TaskRuns and their 10,000 running Pods in its caches. RSS once quiet, then
//!    again after a restart against the same objects (and how many writes the restart
//!    made: none is right).
//!
//! Targets (DESIGN.md): controller memory with 1,000 running PipelineRuns / 10,000
//! TaskRuns ≤ 64 MiB RSS (Tekton: 128 Mi reported OOM).
//!
//! Run: `cargo build --release -p tektite-controller && cargo run --release -p tektite-bench --bin controller-scale [-- --quick]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tektite_bench::{Samples, build_kind, ms};
use tektite_tests::api_server::{FakeApi, Kubelet, Write};

const PIPELINE_RUNS: &str = "apis/tekton.dev/v1/pipelineruns";
const TASK_RUNS: &str = "apis/tekton.dev/v1/taskruns";
const PODS: &str = "api/v1/pods";
const LEASES: &str = "apis/coordination.k8s.io/v1/leases";

fn pipeline_run(name: &str, tasks: usize) -> Value {
    let tasks: Vec<Value> = (0..tasks)
        .map(|j| {
            json!({"name": format!("t{j:02}"), "taskSpec": {
                "results": [{"name": "digest"}],
                "steps": [{"name": "build", "image": "alpine:3.20",
                           "script": "echo built > $(results.digest.path)"}]}})
        })
        .collect();
    json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
           "metadata": {"name": name, "namespace": "bench"},
           "spec": {"pipelineSpec": {"tasks": tasks}}})
}

/// The tektite-controller process.
struct Controller {
    child: Child,
    metrics: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Controller {
    fn start(dir: &Path, api: std::net::SocketAddr, n: usize) -> Controller {
        let binary = std::env::current_exe()
            .expect("the bench's own path")
            .with_file_name("tektite-controller");
        if !binary.exists() {
            eprintln!(
                "{} is missing: build it first with `cargo build --release -p tektite-controller`",
                binary.display()
            );
            std::process::exit(2);
        }
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"http://{api}\"}}}}]\n\
                 users: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n\
                 current-context: fake\n"
            ),
        )
        .expect("writing the kubeconfig");
        let metrics = free_port();
        let log = dir.join(format!("controller-{n}.log"));
        let child = Command::new(&binary)
            .args([
                "--entrypoint-image=bench.local/tektite-entrypoint:bench",
                "--scheduler-name=tektite-scheduler",
                "--grpc-addr=127.0.0.1:0",
                "--no-tls",
                "--extender-addr=127.0.0.1:0",
                &format!("--metrics-addr=127.0.0.1:{metrics}"),
                "--identity=bench",
                // The Lease's own steps too, so that a start that never becomes ready
                // shows where it waited (one was: two waiters on one kube-runtime store,
                // see `http::Health::cache_synced`).
                "--log-level=warn,kube_lease_manager=debug",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating the controller's log"))
            .spawn()
            .expect("starting tektite-controller");
        Controller {
            child,
            metrics,
            log,
        }
    }

    /// Waits for `/readyz`: leading and caches synced.
    async fn ready(&mut self) -> Duration {
        let began = Instant::now();
        let client = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
        let uri: http::Uri = format!("http://127.0.0.1:{}/readyz", self.metrics)
            .parse()
            .expect("a valid URI");
        loop {
            if let Ok(r) = client.get(uri.clone()).await
                && r.status().is_success()
            {
                return began.elapsed();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(&format!("tektite-controller exited ({status})"));
            }
            if began.elapsed() > Duration::from_secs(120) {
                self.fail("tektite-controller was not ready within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn fail(&self, why: &str) -> ! {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        eprintln!("{why}; its log ({}):\n{log}", self.log.display());
        std::process::exit(1);
    }

    /// (current, peak) resident set in MiB.
    fn rss(&self) -> (f64, f64) {
        let (now, peak) = tektite_bench::memory_kib(self.child.id());
        (now as f64 / 1024.0, peak as f64 / 1024.0)
    }

    /// SIGTERM, then SIGKILL if it has not stopped within 10 s.
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `done` every 10 ms; gives up after `limit`.
async fn wait_for(ctl: &Controller, limit: Duration, what: &str, done: impl Fn() -> bool) {
    let began = Instant::now();
    while !done() {
        if began.elapsed() > limit {
            ctl.fail(&format!("{what} did not happen within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_work(w: &Write) -> bool {
    w.resource != LEASES
}

/// Waits until the controller has written nothing but its Lease for `quiet`.
async fn settle(fake: &FakeApi, quiet: Duration) {
    loop {
        let last = fake
            .writes()
            .iter()
            .rev()
            .find(|w| is_work(w))
            .map(|w| w.at);
        match last {
            Some(at) if at.elapsed() < quiet => tokio::time::sleep(quiet - at.elapsed()).await,
            _ => return,
        }
    }
}

fn reason(o: &Value) -> Option<&str> {
    o["status"]["conditions"][0]["reason"].as_str()
}

async fn throughput(dir: &Path, rounds: usize, runs: usize, tasks: usize) {
    let fake = FakeApi::new(Kubelet::Off);
    let addr = fake.serve().await.expect("serving the fake API");
    let mut ctl = Controller::start(dir, addr, 0);
    ctl.ready().await;
    println!(
        "\nthroughput: {runs} PipelineRuns × {tasks} independent tasks arriving at once, {rounds} rounds, Pods not started"
    );
    println!(
        "| round | TaskRuns | TaskRuns/s | PR seen → TaskRun created p50/p99 (ms) | PR seen → Pod created p50/p99 (ms) | Pods/s | status patches per TaskRun | per PipelineRun |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let n = runs * tasks;
    for round in 0..rounds {
        let prefix = format!("r{round}-");
        let prs = (0..runs)
            .map(|i| pipeline_run(&format!("{prefix}pr{i:03}"), tasks))
            .collect();
        let created = |resource: &str| {
            fake.writes()
                .into_iter()
                .filter(|w| {
                    w.method == http::Method::POST
                        && w.resource == resource
                        && w.name.starts_with(&prefix)
                })
                .collect::<Vec<_>>()
        };
        let t0 = fake.insert(PIPELINE_RUNS, prs);
        wait_for(
            &ctl,
            Duration::from_secs(300),
            "every TaskRun and Pod",
            || created(TASK_RUNS).len() >= n && created(PODS).len() >= n,
        )
        .await;
        settle(&fake, Duration::from_millis(500)).await;
        let since = |ws: Vec<Write>| Samples(ws.into_iter().map(|w| w.at - t0).collect());
        let trs = since(created(TASK_RUNS));
        let pods = since(created(PODS));
        let rate = |s: &Samples| s.0.len() as f64 / s.pct(1.0).as_secs_f64();
        let patches = |resource: &str| {
            fake.writes()
                .iter()
                .filter(|w| {
                    w.method == http::Method::PATCH
                        && w.resource == resource
                        && w.name.starts_with(&prefix)
                })
                .count()
        };
        println!(
            "| {round} | {} | **{:.0}** | {} / {} | {} / {} | {:.0} | {:.2} | {:.2} |",
            trs.0.len(),
            rate(&trs),
            ms(trs.p50()),
            ms(trs.p99()),
            ms(pods.p50()),
            ms(pods.p99()),
            rate(&pods),
            patches(TASK_RUNS) as f64 / n as f64,
            patches(PIPELINE_RUNS) as f64 / runs as f64,
        );
    }
    let (rss, peak) = ctl.rss();
    println!("  controller RSS after {rounds} rounds: {rss:.1} MiB (peak {peak:.1} MiB)");
    ctl.stop();
}

async fn memory(dir: &Path, runs: usize, tasks: usize) {
    let fake = FakeApi::new(Kubelet::Run { nodes: 100 });
    let addr = fake.serve().await.expect("serving the fake API");
    let mut ctl = Controller::start(dir, addr, 1);
    ctl.ready().await;
    let (idle, _) = ctl.rss();
    let n = runs * tasks;
    println!(
        "\nmemory: {runs} PipelineRuns × {tasks} tasks arriving at once, every Pod started by the fake kubelet"
    );
    let t0 = fake.insert(
        PIPELINE_RUNS,
        (0..runs)
            .map(|i| pipeline_run(&format!("pr{i:04}"), tasks))
            .collect(),
    );
    wait_for(&ctl, Duration::from_secs(600), "every run Running", || {
        fake.count(TASK_RUNS, |o| reason(o) == Some("Running")) >= n
            && fake.count(PIPELINE_RUNS, |o| reason(o) == Some("Running")) >= runs
    })
    .await;
    let all_running = t0.elapsed();
    settle(&fake, Duration::from_secs(2)).await;
    let (rss, peak) = ctl.rss();
    let objects = (
        fake.count(PIPELINE_RUNS, |_| true),
        fake.count(TASK_RUNS, |_| true),
        fake.count(PODS, |_| true),
    );
    println!(
        "  {} PipelineRuns, {} TaskRuns, {} Pods, all Running {:.1} s after they arrived",
        objects.0,
        objects.1,
        objects.2,
        all_running.as_secs_f64()
    );
    let size = |r: &str, n: usize| fake.json_bytes(r) as f64 / n.max(1) as f64 / 1024.0;
    println!(
        "  as compact JSON: {:.1} KiB per PipelineRun, {:.1} KiB per TaskRun, {:.1} KiB per Pod, {:.0} MiB in all",
        size(PIPELINE_RUNS, objects.0),
        size(TASK_RUNS, objects.1),
        size(PODS, objects.2),
        [PIPELINE_RUNS, TASK_RUNS, PODS]
            .iter()
            .map(|r| fake.json_bytes(r))
            .sum::<usize>() as f64
            / 1048576.0
    );
    println!("| controller | RSS (MiB) | peak RSS (MiB) |");
    println!("|---|---:|---:|");
    println!("| started, nothing cached | {idle:.1} | |");
    println!("| having run them, quiet | **{rss:.1}** | {peak:.1} |");
    ctl.stop();

    let writes_before = fake.writes().iter().filter(|w| is_work(w)).count();
    let mut ctl = Controller::start(dir, addr, 2);
    let ready = ctl.ready().await;
    settle(&fake, Duration::from_secs(2)).await;
    let (rss, peak) = ctl.rss();
    let writes = fake.writes().iter().filter(|w| is_work(w)).count() - writes_before;
    println!("| restarted on the same objects, quiet | **{rss:.1}** | {peak:.1} |");
    println!(
        "  restart: ready (Lease won, caches synced) in {} ms, {writes} writes",
        ms(ready)
    );
    ctl.stop();
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = tempfile::tempdir().expect("a temp dir");
    println!(
        "controller at scale ({}), fake API in process on loopback, {} cores",
        build_kind(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if quick {
        throughput(dir.path(), 1, 10, 20).await;
        memory(dir.path(), 20, 10).await;
    } else {
        throughput(dir.path(), 3, 100, 20).await;
        memory(dir.path(), 1_000, 10).await;
    }
}
