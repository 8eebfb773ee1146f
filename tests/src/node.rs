//! One node's worth of tektite with no cluster: the in-test API server
//! ([`crate::api_server`]), the real `tektite-controller` and `tektite-node-agent`
//! binaries pointed at it by a kubeconfig, and the kubelet stand-in ([`crate::kubelet`])
//! running the Pods with the real entrypoint binary as the entrypoint image.
//!
//! The binaries are taken from the target directory the caller runs from
//! (`cargo test --workspace` and `cargo build --workspace` build them all); a missing one
//! is named with the command that builds it. Every process is ended by its PID when the
//! [`Node`] is stopped or dropped, and everything it writes is under its temp dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::api_server::{FakeApi, Kubelet as Nodes};
use crate::kubelet::{Bind, Config, Image, Kubelet};

/// The image the controller gives its init container; the stand-in maps it to the
/// entrypoint binary.
pub const ENTRYPOINT_IMAGE: &str = "ghcr.io/tektite-dev/tektite-entrypoint:0.1.0";
pub const NODE: &str = "node-0";
const AGENT_TOKEN: &str = "tektite-node-agent-token";
const AGENT_ACCOUNT: &str = "system:serviceaccount:tektite-system:tektite-node-agent";

/// A binary of this workspace, next to the running executable.
pub fn binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable's path");
    let mut dir = exe.parent().expect("an executable has a directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("deps has a parent");
    }
    let path = dir.join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified());
    let Ok(built) = built else {
        panic!(
            "{} is missing: build it with `cargo build -p {package}` (`cargo test --workspace` builds it)",
            path.display()
        );
    };
    // A binary older than the sources it is built from would test yesterday's code: the
    // sources are the ones cargo's dep-info (`<binary>.d`) lists for it.
    if let Some(newer) = newest_source(&path.with_extension("d")).filter(|(t, _)| *t > built) {
        panic!(
            "{} is older than {}: rebuild it with `cargo build -p {package}` (`cargo test --workspace` builds it)",
            path.display(),
            newer.1.display()
        );
    }
    path
}

/// The most recently changed of the files a cargo dep-info file lists (`target: a b c`).
fn newest_source(dep_info: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let text = std::fs::read_to_string(dep_info).ok()?;
    let (_, deps) = text.lines().next()?.split_once(": ")?;
    deps.split_whitespace()
        .map(PathBuf::from)
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max_by_key(|(t, _)| *t)
}

/// A loopback port free now and never handed out before in this process, so that two
/// nodes starting at once cannot be given the same one.
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A process this node started, ended by its PID.
#[derive(Debug)]
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn stop(&mut self) {
        crate::stop(&mut self.child);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Node {
    pub api: Arc<FakeApi>,
    pub client: kube::Client,
    pub kubelet: Option<Kubelet>,
    pub dir: PathBuf,
    processes: Vec<Process>,
    controller_metrics: u16,
    agent_metrics: u16,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("dir", &self.dir).finish()
    }
}

impl Node {
    /// Starts everything under `dir` (an empty temp dir), with the kubelet's relist every
    /// `relist`, and waits until the controller leads and the agent streams to it.
    pub async fn start(dir: &Path, relist: Duration) -> Node {
        Node::start_with(dir, relist, &[]).await
    }

    /// [`Node::start`] with more arguments for the controller.
    pub async fn start_with(dir: &Path, relist: Duration, controller_args: &[&str]) -> Node {
        let api = FakeApi::new(Nodes::Off);
        let addr: SocketAddr = api.serve().await.expect("serving the in-test API server");
        api.accept_token(AGENT_TOKEN, AGENT_ACCOUNT, Some(NODE));
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, crate::kubeconfig(&addr.to_string()))
            .expect("writing the kubeconfig");
        let config = kube::Config::new(format!("http://{addr}").parse().expect("a URI"));
        let client = kube::Client::try_from(config).expect("a client");
        let root = dir.join("kubelet");
        // A kubelet makes its pods directory when it starts; the agent watches it.
        std::fs::create_dir_all(root.join("pods")).expect("creating the kubelet root");
        // pods/log reads what the kubelet stand-in writes, as an API server asks a kubelet.
        api.serve_logs_from(&root.join("logs"));
        let token = dir.join("token");
        std::fs::write(&token, AGENT_TOKEN).expect("writing the agent's token");
        for namespace in ["default", "tektite-system"] {
            api.insert(
                "api/v1/serviceaccounts",
                vec![json!({"apiVersion": "v1", "kind": "ServiceAccount",
                            "metadata": {"name": "default", "namespace": namespace}})],
            );
        }

        let grpc = free_port();
        let controller_metrics = free_port();
        let agent_metrics = free_port();
        let spawn = |name: &'static str, mut command: Command| {
            let log = dir.join(format!("{name}.log"));
            let file = std::fs::File::create(&log).expect("creating a log");
            let child = command
                .env("KUBECONFIG", &kubeconfig)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(file.try_clone().expect("a log file's handle"))
                .stderr(file)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {name}: {e}"));
            Process { name, child, log }
        };
        let mut controller = Command::new(binary("tektite-controller", "tektite-controller"));
        controller.args([
            &format!("--entrypoint-image={ENTRYPOINT_IMAGE}"),
            &format!("--grpc-addr=127.0.0.1:{grpc}"),
            "--no-tls",
            "--extender-addr=127.0.0.1:0",
            &format!("--metrics-addr=127.0.0.1:{controller_metrics}"),
            "--identity=test",
            // The Lease's own steps too: a start that never becomes ready shows where.
            "--log-level=info,kube_lease_manager=debug",
        ]);
        controller.args(controller_args);
        let mut agent = Command::new(binary("tektite-node-agent", "tektite-node-agent"));
        agent.args([
            &format!("--controller=http://127.0.0.1:{grpc}"),
            &format!("--node-name={NODE}"),
            &format!("--kubelet-root={}", root.display()),
            &format!("--token-file={}", token.display()),
            &format!("--metrics-addr=127.0.0.1:{agent_metrics}"),
        ]);
        let processes = vec![spawn("controller", controller), spawn("agent", agent)];
        let entrypoint = binary("tektite-entrypoint", "tektite-entrypoint");
        let kubelet = Kubelet::start(
            client.clone(),
            Config {
                node: NODE.into(),
                root,
                relist,
                images: vec![Image {
                    prefix: ENTRYPOINT_IMAGE
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .into(),
                    binds: vec![Bind {
                        host: entrypoint,
                        path: "/tektite/entrypoint".into(),
                        read_only: true,
                    }],
                    command: vec!["/tektite/entrypoint".into()],
                    bare: true,
                    env: Vec::new(),
                }],
                tkt: binary("tkt", "tektite-cli"),
            },
        );
        let mut node = Node {
            api,
            client,
            kubelet: Some(kubelet),
            dir: dir.to_owned(),
            processes,
            controller_metrics,
            agent_metrics,
        };
        node.wait_ready().await;
        node
    }

    async fn metric(&self, port: u16, path: &str) -> Option<String> {
        crate::http_get(port, path).await
    }

    /// The kubeconfig that points at this node's API server.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Where the controller's and the agent's `/metrics` are served (`host:port`).
    pub fn metrics_addrs(&self) -> (String, String) {
        (
            format!("127.0.0.1:{}", self.controller_metrics),
            format!("127.0.0.1:{}", self.agent_metrics),
        )
    }

    /// What the controller's and the agent's `/metrics` answer now (the HTTP responses).
    pub async fn scrape(&self) -> (String, String) {
        (
            self.metric(self.controller_metrics, "/metrics")
                .await
                .unwrap_or_default(),
            self.metric(self.agent_metrics, "/metrics")
                .await
                .unwrap_or_default(),
        )
    }

    /// Waits until the controller is ready and one agent is connected.
    async fn wait_ready(&mut self) {
        for _ in 0..1500 {
            let ready = self
                .metric(self.controller_metrics, "/readyz")
                .await
                .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"));
            let agents = self
                .metric(self.controller_metrics, "/metrics")
                .await
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    l.starts_with("tektite_controller_connected_agents")
                        && l.split_whitespace().last().is_some_and(|v| v != "0")
                });
            if ready && agents {
                return;
            }
            self.check_alive();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.fail("the controller was not ready with an agent connected within 30 s");
    }

    /// Panics with the processes' logs if one of them has exited.
    pub fn check_alive(&mut self) {
        let exited: Vec<String> = self
            .processes
            .iter_mut()
            .filter_map(|p| match p.child.try_wait() {
                Ok(Some(status)) => Some(format!("{} exited ({status})", p.name)),
                _ => None,
            })
            .collect();
        if !exited.is_empty() {
            self.fail(&exited.join(", "));
        }
    }

    /// The processes' logs, for a failure message.
    pub fn logs(&self) -> String {
        self.processes
            .iter()
            .map(|p| {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!(
                    "--- {} ({}):\n{}\n",
                    p.name,
                    p.log.display(),
                    tail.join("\n")
                )
            })
            .collect()
    }

    pub fn fail(&self, why: &str) -> ! {
        panic!("{why}\n{}", self.logs());
    }

    /// Ends the kubelet's containers, then the agent and the controller (SIGTERM, then
    /// SIGKILL after 5 s), each by its PID.
    pub async fn stop(mut self) {
        if let Some(k) = self.kubelet.take() {
            k.stop().await;
        }
        for p in self.processes.iter_mut().rev() {
            p.stop();
        }
    }
}
