//! A kubelet stand-in: it runs the Pods an API server schedules onto its node as processes
//! on this machine, the way a kubelet runs them, so that the real controller, node agent
//! and entrypoint meet what they meet on a cluster with no cluster at hand.
//!
//! What it does as a kubelet does:
//! - binds every unscheduled Pod of the default scheduler to its node (it is the scheduler
//!   too: one stand-in per API server);
//! - lays out each Pod's volumes under `<root>/pods/<uid>/volumes/kubernetes.io~<kind>/<name>`
//!   (emptyDir; downwardAPI, configMap, secret and projected through the atomic writer's
//!   `..data` symlink swap, the downward API rewritten when labels or annotations change;
//!   persistentVolumeClaim under `<root>/pvc/<namespace>/<claim>`; hostPath as itself);
//! - runs each container in a private mount namespace on a root of its own (see the
//!   `tektite-container` binary): volumeMounts and subPaths bound, readOnly honoured, and a
//!   file of its own bound at `terminationMessagePath`, whose content becomes the
//!   terminated state's message (`FallbackToLogsOnError`: the log's tail);
//! - init containers one by one, then every container; native sidecars (init containers
//!   with `restartPolicy: Always`) started in their turn, kept running, and stopped once
//!   every container has ended; a container whose image the spec changes is stopped and
//!   started again with the new image (`restartCount` + 1);
//! - readiness probes (exec, tcpSocket, httpGet on 127.0.0.1);
//! - the PLEG: a container's start or exit becomes visible to the stand-in, and so to
//!   its status writes and its own decisions (the next init container, the sidecars'
//!   stop), only at the next relist, which comes every [`Config::relist`] on one clock
//!   for every Pod (zero: at once);
//! - status written with a merge patch of `pods/<name>/status`; logs appended under
//!   `<root>/logs/<namespace>_<pod>_<uid>/<container>.log`.
//!
//! What it does not: images (every image is this machine's userland plus the binds its
//! [`Image`] entry gives; a container with no command takes the entry's), network, PID or
//! user isolation, resource limits, liveness and startup probes, lifecycle hooks, graceful
//! deletion (a deleted Pod's processes get SIGTERM, then SIGKILL after a second).
//!
//! Every process it starts is a process group it ends by PID: at deletion, at
//! [`Kubelet::stop`], and when the [`Kubelet`] is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{self as core, ConfigMap, Pod, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One bind mount of a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// What is bound: a directory or a file on this machine.
    pub host: PathBuf,
    /// Where, in the container.
    pub path: String,
    pub read_only: bool,
}

/// What `tektite-container` is told: the container's root, mounts and process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// An empty directory the container's root tmpfs is mounted on.
    pub root: PathBuf,
    pub binds: Vec<Bind>,
    /// The working directory, in the container.
    pub cwd: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Whether the image is this machine's userland (else: its binds, the C library, and
    /// the `/proc`, `/sys` and `/dev` a runtime mounts).
    pub userland: bool,
}

/// What an image stands for: the binds it brings and its entrypoint. The longest matching
/// prefix of a container's image wins; an image with no entry is this machine's userland.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub prefix: String,
    pub binds: Vec<Bind>,
    /// The image's ENTRYPOINT, for containers that give no command.
    pub command: Vec<String>,
    /// The image holds nothing but its binds (and the C library they link), as the
    /// entrypoint's image holds nothing but the entrypoint: no shell, no `/bin`.
    pub bare: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub node: String,
    /// The kubelet root (`/var/lib/kubelet` on a node).
    pub root: PathBuf,
    /// How often starts and exits are observed (a kubelet's PLEG relists every second).
    pub relist: Duration,
    pub images: Vec<Image>,
    /// The `tektite-container` binary.
    pub container_binary: PathBuf,
}

/// What happened to a container, and when (this process's clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub at: Instant,
    /// `namespace/name` of the Pod.
    pub pod: String,
    pub container: String,
    pub what: What,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    Started,
    Exited(i32),
    /// The relist saw the container's new state.
    Observed,
    /// A status carrying the container's new state was written.
    StatusWritten,
}

#[derive(Debug)]
struct Shared {
    /// When the stand-in started: its relists fall on multiples of the period from here,
    /// for every Pod alike, as one PLEG's do.
    epoch: tokio::time::Instant,
    /// Process groups alive, by leader PID.
    groups: Mutex<HashSet<i32>>,
    timeline: Mutex<Vec<Record>>,
}

impl Shared {
    /// The first relist after now.
    fn next_relist(&self, period: Duration) -> tokio::time::Instant {
        let since = self.epoch.elapsed().as_nanos();
        let period_ns = period.as_nanos().max(1);
        let ticks = since / period_ns + 1;
        self.epoch + Duration::from_nanos((ticks * period_ns) as u64)
    }

    fn record(&self, pod: &str, container: &str, what: What) {
        self.timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Record {
                at: Instant::now(),
                pod: pod.into(),
                container: container.into(),
                what,
            });
    }

    fn kill_all(&self, signal: Signal) {
        for pid in self.groups.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = killpg(Pid::from_raw(*pid), signal);
        }
    }
}

/// A running kubelet stand-in.
#[derive(Debug)]
pub struct Kubelet {
    task: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Kubelet {
    /// Starts watching the API server's Pods.
    pub fn start(client: kube::Client, config: Config) -> Kubelet {
        let shared = Arc::new(Shared {
            epoch: tokio::time::Instant::now(),
            groups: Mutex::default(),
            timeline: Mutex::default(),
        });
        let task = tokio::spawn(run(client, Arc::new(config), shared.clone()));
        Kubelet { task, shared }
    }

    /// Every container start, exit, observation and status write so far.
    pub fn timeline(&self) -> Vec<Record> {
        self.shared
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Ends every container and waits until their processes are gone.
    pub async fn stop(self) {
        self.task.abort();
        self.shared.kill_all(Signal::SIGKILL);
        for _ in 0..200 {
            let alive = self
                .shared
                .groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|pid| killpg(Pid::from_raw(*pid), None).is_ok());
            if !alive {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.kill_all(Signal::SIGKILL);
    }
}

enum Message {
    Update(Box<Pod>),
    Deleted,
    Exited { slot: usize, code: i32 },
}

async fn run(client: kube::Client, config: Arc<Config>, shared: Arc<Shared>) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut workers: HashMap<String, mpsc::UnboundedSender<Message>> = HashMap::new();
    while let Some(event) = events.next().await {
        let (pod, deleted) = match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => (p, false),
            Ok(watcher::Event::Delete(p)) => (p, true),
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%error, "the kubelet stand-in's Pod watch failed");
                continue;
            }
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let node = spec.node_name.clone().unwrap_or_default();
        if deleted || pod.metadata.deletion_timestamp.is_some() {
            if let Some(w) = workers.remove(&uid) {
                let _ = w.send(Message::Deleted);
            }
            continue;
        }
        if node.is_empty() {
            if spec
                .scheduler_name
                .as_deref()
                .is_none_or(|s| s == "default-scheduler")
            {
                tokio::spawn(bind(client.clone(), pod, config.node.clone()));
            }
            continue;
        }
        if node != config.node {
            continue;
        }
        match workers.get(&uid) {
            Some(w) => {
                let _ = w.send(Message::Update(Box::new(pod)));
            }
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                workers.insert(uid, tx.clone());
                let worker = Worker::new(client.clone(), config.clone(), shared.clone(), pod, tx);
                tokio::spawn(worker.run(rx));
            }
        }
    }
}

async fn bind(client: kube::Client, pod: Pod, node: String) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    if let Err(error) = api
        .create_subresource::<Value, Value>("binding", &name, &PostParams::default(), &binding)
        .await
    {
        tracing::debug!(%error, pod = %name, "binding");
    }
}

/// A container's state as the kubelet reports it.
#[derive(Clone, Debug, PartialEq)]
enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started: Timestamp,
    },
    Terminated {
        code: i32,
        reason: String,
        message: Option<String>,
        started: Timestamp,
        finished: Timestamp,
    },
}

impl State {
    fn waiting(reason: &str) -> State {
        State::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    fn to_json(&self) -> Value {
        let time = |t: &Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = m.clone().into();
                }
                json!({ "waiting": w })
            }
            State::Running { started } => json!({"running": {"startedAt": time(started)}}),
            State::Terminated {
                code,
                reason,
                message,
                started,
                finished,
            } => {
                let mut t = json!({"exitCode": code, "reason": reason,
                                   "startedAt": time(started), "finishedAt": time(finished)});
                if let Some(m) = message {
                    t["message"] = m.clone().into();
                }
                json!({ "terminated": t })
            }
        }
    }

    fn terminated(&self) -> bool {
        matches!(self, State::Terminated { .. })
    }

    fn running(&self) -> bool {
        matches!(self, State::Running { .. })
    }
}

/// One container of the Pod.
#[derive(Debug)]
struct Slot {
    spec: core::Container,
    init: bool,
    /// A native sidecar: an init container with restartPolicy: Always.
    sidecar: bool,
    /// What the process did (at once) and what the relist saw of it.
    raw: State,
    seen: State,
    /// Whether a process was ever started; the image it runs.
    launched: bool,
    image: String,
    pid: Option<i32>,
    restarts: u32,
    last: Option<State>,
    stopping: bool,
    ready: bool,
    probed_at: Option<Instant>,
}

struct Worker {
    client: kube::Client,
    config: Arc<Config>,
    shared: Arc<Shared>,
    pod: Pod,
    key: String,
    dir: PathBuf,
    slots: Vec<Slot>,
    volumes: HashMap<String, PathBuf>,
    started: Timestamp,
    tx: mpsc::UnboundedSender<Message>,
    /// Why the volumes cannot be set up yet.
    blocked: Option<String>,
    phase: &'static str,
    written: Option<Value>,
}

fn expand(value: &str, env: &[(String, String)]) -> String {
    // $(VAR) from the variables defined before; $$( stays a literal $(.
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A `metadata.labels['k']`-style field of the Pod.
fn field(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let keyed = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        let key = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(map.as_ref()?.get(key).cloned().unwrap_or_default())
    };
    let all = |map: &Option<BTreeMap<String, String>>| {
        map.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => all(&meta.labels),
        "metadata.annotations" => all(&meta.annotations),
        "spec.nodeName" => spec?.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" => spec?.service_account_name.clone().unwrap_or_default(),
        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
        _ => {
            return keyed("metadata.labels", &meta.labels)
                .or_else(|| keyed("metadata.annotations", &meta.annotations));
        }
    })
}

/// Writes `files` into `dir` as the kubelet's atomic writer does: a new timestamped
/// directory, `..data` swapped to it by a rename, a symlink per top-level entry.
fn write_atomic(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let now = Timestamp::now();
    let stamp = format!(
        "..{}.{:09}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        now.subsec_nanosecond()
    );
    let fresh = dir.join(&stamp);
    for (path, bytes) in files {
        let file = fresh.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, bytes)?;
    }
    std::fs::create_dir_all(&fresh)?;
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    let top: HashSet<String> = files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("..") && !top.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old.filter(|o| o != Path::new(&stamp)) {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(())
}

fn key_to_path(
    items: &Option<Vec<core::KeyToPath>>,
    data: BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    match items {
        Some(items) if !items.is_empty() => items
            .iter()
            .filter_map(|i| Some((i.path.clone(), data.get(&i.key)?.clone())))
            .collect(),
        _ => data,
    }
}

impl Worker {
    fn new(
        client: kube::Client,
        config: Arc<Config>,
        shared: Arc<Shared>,
        pod: Pod,
        tx: mpsc::UnboundedSender<Message>,
    ) -> Worker {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default()
        );
        let spec = pod.spec.clone().unwrap_or_default();
        let slot = |c: &core::Container, init: bool| Slot {
            spec: c.clone(),
            init,
            sidecar: init && c.restart_policy.as_deref() == Some("Always"),
            raw: State::waiting("PodInitializing"),
            seen: State::waiting("PodInitializing"),
            launched: false,
            image: c.image.clone().unwrap_or_default(),
            pid: None,
            restarts: 0,
            last: None,
            stopping: false,
            ready: false,
            probed_at: None,
        };
        let slots = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| slot(c, true))
            .chain(spec.containers.iter().map(|c| slot(c, false)))
            .collect();
        Worker {
            dir: config.root.join("pods").join(&uid),
            client,
            config,
            shared,
            pod,
            key,
            slots,
            volumes: HashMap::new(),
            started: Timestamp::now(),
            tx,
            blocked: Some("volumes not set up yet".into()),
            phase: "Pending",
            written: None,
        }
    }

    fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_default()
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Message>) {
        let relist = self.config.relist;
        let mut next_relist = self.shared.next_relist(relist);
        let mut next_retry = tokio::time::Instant::now();
        loop {
            if self.blocked.is_some() && tokio::time::Instant::now() >= next_retry {
                self.blocked = self.set_up_volumes().await.err();
                next_retry = tokio::time::Instant::now() + Duration::from_secs(1);
                if let Some(why) = &self.blocked {
                    for s in &mut self.slots {
                        s.raw = State::Waiting {
                            reason: "ContainerCreating".into(),
                            message: Some(why.clone()),
                        };
                    }
                } else {
                    for s in &mut self.slots {
                        s.raw = State::waiting("PodInitializing");
                    }
                }
                if relist.is_zero() {
                    self.observe();
                }
            }
            if self.blocked.is_none() {
                self.act().await;
            }
            self.probe().await;
            self.write_status().await;
            let probe_tick = tokio::time::sleep(Duration::from_millis(200));
            tokio::select! {
                m = rx.recv() => match m {
                    None | Some(Message::Deleted) => break,
                    Some(Message::Update(pod)) => self.update(*pod),
                    Some(Message::Exited { slot, code }) => self.exited(slot, code),
                },
                _ = tokio::time::sleep_until(next_relist), if !relist.is_zero() => {
                    next_relist = self.shared.next_relist(relist);
                    self.observe();
                }
                _ = probe_tick => {}
            }
            if relist.is_zero() {
                self.observe();
            }
        }
        self.tear_down().await;
    }

    async fn tear_down(&mut self) {
        let groups: Vec<i32> = self.slots.iter().filter_map(|s| s.pid).collect();
        for pid in &groups {
            let _ = killpg(Pid::from_raw(*pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline
            && groups
                .iter()
                .any(|pid| killpg(Pid::from_raw(*pid), None).is_ok())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for pid in &groups {
            let _ = killpg(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The relist: what the processes did becomes what the stand-in knows.
    fn observe(&mut self) {
        for s in &mut self.slots {
            if s.seen != s.raw {
                s.seen = s.raw.clone();
                if !s.seen.running() {
                    s.ready = false;
                }
                self.shared.record(&self.key, &s.spec.name, What::Observed);
            }
        }
    }

    fn update(&mut self, pod: Pod) {
        let meta_changed = pod.metadata.labels != self.pod.metadata.labels
            || pod.metadata.annotations != self.pod.metadata.annotations;
        let spec = pod.spec.clone().unwrap_or_default();
        for s in &mut self.slots {
            let list = if s.init {
                spec.init_containers.as_deref().unwrap_or_default()
            } else {
                &spec.containers
            };
            if let Some(c) = list.iter().find(|c| c.name == s.spec.name) {
                s.spec = c.clone();
            }
        }
        self.pod = pod;
        if meta_changed && self.blocked.is_none() {
            self.refresh_downward();
        }
    }

    fn exited(&mut self, slot: usize, code: i32) {
        let dir = self.container_dir(slot);
        let s = &mut self.slots[slot];
        if let Some(pid) = s.pid.take() {
            self.shared
                .groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&pid);
            // What it left behind in its group dies with it, as in a container.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let started = match &s.raw {
            State::Running { started } => *started,
            _ => Timestamp::now(),
        };
        let log = std::fs::read_to_string(self.log_path(slot)).unwrap_or_default();
        let s = &mut self.slots[slot];
        let start_error = code == 128
            && log
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("tektite-container:"));
        let mut message = std::fs::read(dir.join("termination-log"))
            .ok()
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).to_string())
            .filter(|m| !m.is_empty());
        if message.is_none()
            && code != 0
            && (start_error
                || s.spec.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"))
        {
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            let tail: String = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
            message = Some(tail[tail.len().saturating_sub(2048)..].to_string());
        }
        s.raw = State::Terminated {
            code,
            reason: match (start_error, code) {
                (true, _) => "StartError".into(),
                (_, 0) => "Completed".into(),
                _ => "Error".into(),
            },
            message,
            started,
            finished: Timestamp::now(),
        };
        self.shared
            .record(&self.key, &s.spec.name, What::Exited(code));
    }

    fn container_dir(&self, slot: usize) -> PathBuf {
        self.dir
            .join("containers")
            .join(&self.slots[slot].spec.name)
    }

    fn log_path(&self, slot: usize) -> PathBuf {
        let meta = &self.pod.metadata;
        self.config
            .root
            .join("logs")
            .join(format!(
                "{}_{}_{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
                meta.uid.as_deref().unwrap_or_default()
            ))
            .join(format!("{}.log", self.slots[slot].spec.name))
    }

    /// Decides, from what the relist saw, what to start and what to stop.
    async fn act(&mut self) {
        if matches!(self.phase, "Succeeded" | "Failed") {
            return;
        }
        let never = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .is_none_or(|p| p == "Never");
        // Init containers in order; a native sidecar lets the next one start once running.
        let mut initialized = true;
        let mut init_failed = false;
        let inits: Vec<usize> = (0..self.slots.len())
            .filter(|i| self.slots[*i].init)
            .collect();
        for i in inits {
            let s = &self.slots[i];
            if s.sidecar {
                if !s.launched {
                    self.launch(i).await;
                    initialized = false;
                    break;
                }
                if !s.seen.running() && !s.seen.terminated() {
                    initialized = false;
                    break;
                }
                continue;
            }
            match &s.seen {
                State::Terminated { code: 0, .. } => continue,
                State::Terminated { .. } if never => {
                    init_failed = true;
                    initialized = false;
                    break;
                }
                State::Terminated { .. } if !s.raw.running() => {
                    self.relaunch(i).await;
                    initialized = false;
                    break;
                }
                _ => {
                    if !s.launched {
                        self.launch(i).await;
                    }
                    initialized = false;
                    break;
                }
            }
        }
        let mains: Vec<usize> = (0..self.slots.len())
            .filter(|i| !self.slots[*i].init)
            .collect();
        if initialized {
            for &i in &mains {
                if !self.slots[i].launched {
                    self.launch(i).await;
                }
            }
        }
        // A container whose image changed is stopped, then started with the new image.
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            let want = s.spec.image.clone().unwrap_or_default();
            if !s.launched || want == s.image {
                continue;
            }
            if s.seen.running() && !s.stopping {
                if let Some(pid) = s.pid {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
                }
                s.stopping = true;
            } else if s.seen.terminated() && s.raw.terminated() {
                self.relaunch(i).await;
            }
        }
        let mains_done = initialized && mains.iter().all(|i| self.slots[*i].seen.terminated());
        if mains_done || init_failed {
            for s in self.slots.iter_mut().filter(|s| s.sidecar) {
                if s.seen.running() && !s.stopping {
                    if let Some(pid) = s.pid {
                        let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
                    }
                    s.stopping = true;
                }
            }
            let sidecars_done = self
                .slots
                .iter()
                .filter(|s| s.sidecar)
                .all(|s| !s.seen.running() && !s.raw.running());
            if sidecars_done && never {
                let failed = init_failed
                    || mains.iter().any(|i| {
                        matches!(self.slots[*i].seen, State::Terminated { code, .. } if code != 0)
                    });
                self.phase = if failed { "Failed" } else { "Succeeded" };
            }
        } else if initialized {
            self.phase = "Running";
        } else if self.slots.iter().any(|s| s.seen.running()) {
            self.phase = "Pending";
        }
    }

    async fn relaunch(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.last = Some(s.seen.clone());
        s.restarts += 1;
        s.stopping = false;
        self.launch(slot).await;
    }

    fn image_for(&self, image: &str) -> Option<&Image> {
        self.config
            .images
            .iter()
            .filter(|i| image.starts_with(&i.prefix))
            .max_by_key(|i| i.prefix.len())
    }

    async fn env_of(&self, c: &core::Container) -> Result<Vec<(String, String)>, String> {
        let namespace = self.namespace();
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("HOME".into(), "/root".into()),
            (
                "HOSTNAME".into(),
                self.pod.metadata.name.clone().unwrap_or_default(),
            ),
        ];
        let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
            env.retain(|(have, _)| *have != k);
            env.push((k, v));
        };
        for from in c.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            if let Some(r) = &from.config_map_ref {
                match maps.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                    Some(m) => {
                        for (k, v) in m.data.unwrap_or_default() {
                            set(&mut env, format!("{prefix}{k}"), v);
                        }
                    }
                    None if r.optional == Some(true) => {}
                    None => return Err(format!("configmap {:?} not found", r.name)),
                }
            }
            if let Some(r) = &from.secret_ref {
                match secrets.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                    Some(s) => {
                        for (k, v) in s.data.unwrap_or_default() {
                            set(
                                &mut env,
                                format!("{prefix}{k}"),
                                String::from_utf8_lossy(&v.0).into(),
                            );
                        }
                    }
                    None if r.optional == Some(true) => {}
                    None => return Err(format!("secret {:?} not found", r.name)),
                }
            }
        }
        for e in c.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => expand(v, &env),
                (None, Some(from)) => {
                    if let Some(f) = &from.field_ref {
                        field(&self.pod, &f.field_path).unwrap_or_default()
                    } else if let Some(r) = &from.config_map_key_ref {
                        let m = maps.get_opt(&r.name).await.map_err(|e| e.to_string())?;
                        match m.and_then(|m| m.data?.get(&r.key).cloned()) {
                            Some(v) => v,
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in ConfigMap {}/{}",
                                    r.key, namespace, r.name
                                ));
                            }
                        }
                    } else if let Some(r) = &from.secret_key_ref {
                        let s = secrets.get_opt(&r.name).await.map_err(|e| e.to_string())?;
                        match s.and_then(|s| s.data?.get(&r.key).cloned()) {
                            Some(v) => String::from_utf8_lossy(&v.0).into(),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in Secret {}/{}",
                                    r.key, namespace, r.name
                                ));
                            }
                        }
                    } else {
                        // resourceFieldRef: no limits here.
                        "0".into()
                    }
                }
                (None, None) => String::new(),
            };
            set(&mut env, e.name.clone(), value);
        }
        Ok(env)
    }

    fn binds_of(&self, slot: usize) -> Result<Vec<Bind>, String> {
        let s = &self.slots[slot];
        let mut binds = Vec::new();
        for m in s.spec.volume_mounts.iter().flatten() {
            let Some(volume) = self.volumes.get(&m.name) else {
                return Err(format!(
                    "volume {:?} of mount {} is not in the Pod",
                    m.name, m.mount_path
                ));
            };
            let mut host = volume.clone();
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                if sub.split('/').any(|c| c == "..") || sub.starts_with('/') {
                    return Err(format!(
                        "subPath {sub:?} must be a relative path inside the volume"
                    ));
                }
                host = host.join(sub);
                if !host.exists() {
                    std::fs::create_dir_all(&host)
                        .map_err(|e| format!("failed to create subPath directory {sub}: {e}"))?;
                }
            }
            binds.push(Bind {
                host,
                path: m.mount_path.clone(),
                read_only: m.read_only == Some(true),
            });
        }
        let image = s.spec.image.clone().unwrap_or_default();
        if let Some(i) = self.image_for(&image) {
            binds.extend(i.binds.iter().cloned());
        }
        binds.push(Bind {
            host: self.container_dir(slot).join("termination-log"),
            path: s
                .spec
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
            read_only: false,
        });
        Ok(binds)
    }

    async fn launch(&mut self, slot: usize) {
        let dir = self.container_dir(slot);
        let name = self.slots[slot].spec.name.clone();
        self.slots[slot].launched = true;
        let fail = |s: &mut Slot, why: String| {
            s.raw = State::Terminated {
                code: 128,
                reason: "StartError".into(),
                message: Some(why),
                started: Timestamp::now(),
                finished: Timestamp::now(),
            };
        };
        let spec = self.slots[slot].spec.clone();
        let image = spec.image.clone().unwrap_or_default();
        let userland = self.image_for(&image).is_none_or(|i| !i.bare);
        let mut argv = spec.command.clone().unwrap_or_default();
        if argv.is_empty() {
            let Some(entry) = self.image_for(&image).filter(|i| !i.command.is_empty()) else {
                fail(
                    &mut self.slots[slot],
                    format!(
                        "container {name:?} has no command and the stand-in knows no entrypoint for image {image:?}"
                    ),
                );
                return;
            };
            argv = entry.command.clone();
        }
        // As the kubelet: a container whose config cannot be had yet waits and is tried
        // again.
        let wait = |s: &mut Slot, why: String| {
            s.launched = false;
            s.raw = State::Waiting {
                reason: "CreateContainerConfigError".into(),
                message: Some(why),
            };
        };
        let env = match self.env_of(&spec).await {
            Ok(e) => e,
            Err(why) => return wait(&mut self.slots[slot], why),
        };
        argv.extend(spec.args.iter().flatten().map(|a| expand(a, &env)));
        let argv: Vec<String> = argv.iter().map(|a| expand(a, &env)).collect();
        let binds = match self.binds_of(slot) {
            Ok(b) => b,
            Err(why) => return wait(&mut self.slots[slot], why),
        };
        let root = dir.join("rootfs");
        let prepared = std::fs::create_dir_all(&root)
            .and_then(|_| std::fs::write(dir.join("termination-log"), b""))
            .and_then(|_| {
                let spec = ContainerSpec {
                    root,
                    binds,
                    cwd: spec.working_dir.clone().unwrap_or_else(|| "/".into()),
                    argv,
                    env,
                    userland,
                };
                std::fs::write(
                    dir.join("spec.json"),
                    serde_json::to_vec_pretty(&spec).expect("JSON serializes"),
                )
            });
        let log_path = self.log_path(slot);
        let log = prepared.and_then(|_| {
            std::fs::create_dir_all(log_path.parent().expect("a log has a directory"))?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
        });
        let child = log.and_then(|log| {
            tokio::process::Command::new(&self.config.container_binary)
                .arg(dir.join("spec.json"))
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0)
                .kill_on_drop(false)
                .spawn()
        });
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                fail(&mut self.slots[slot], format!("cannot start {name:?}: {e}"));
                return;
            }
        };
        let pid = child.id().map(|p| p as i32);
        if let Some(pid) = pid {
            self.shared
                .groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(pid);
        }
        let s = &mut self.slots[slot];
        s.pid = pid;
        s.image = image;
        s.raw = State::Running {
            started: Timestamp::now(),
        };
        s.stopping = false;
        s.probed_at = None;
        self.shared.record(&self.key, &name, What::Started);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            use std::os::unix::process::ExitStatusExt;
            let code = match child.wait().await {
                Ok(status) => status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                Err(_) => 255,
            };
            let _ = tx.send(Message::Exited { slot, code });
        });
    }

    async fn set_up_volumes(&mut self) -> Result<(), String> {
        let volumes = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        let namespace = self.namespace();
        let base = self.dir.join("volumes");
        for v in &volumes {
            let kind_dir = |kind: &str| base.join(format!("kubernetes.io~{kind}")).join(&v.name);
            let path = if let Some(claim) = &v.persistent_volume_claim {
                self.config
                    .root
                    .join("pvc")
                    .join(&namespace)
                    .join(&claim.claim_name)
            } else if let Some(h) = &v.host_path {
                PathBuf::from(&h.path)
            } else if let Some(cm) = &v.config_map {
                let dir = kind_dir("configmap");
                let files = self
                    .data_files(false, &cm.name, cm.optional, &cm.items)
                    .await?;
                write_atomic(&dir, &files).map_err(|e| e.to_string())?;
                dir
            } else if let Some(s) = &v.secret {
                let dir = kind_dir("secret");
                let name = s.secret_name.clone().unwrap_or_default();
                let files = self.data_files(true, &name, s.optional, &s.items).await?;
                write_atomic(&dir, &files).map_err(|e| e.to_string())?;
                dir
            } else if let Some(d) = &v.downward_api {
                let dir = kind_dir("downward-api");
                write_atomic(
                    &dir,
                    &self.downward_files(d.items.as_deref().unwrap_or_default()),
                )
                .map_err(|e| e.to_string())?;
                dir
            } else if let Some(p) = &v.projected {
                let dir = kind_dir("projected");
                let mut files = BTreeMap::new();
                for source in p.sources.iter().flatten() {
                    if let Some(cm) = &source.config_map {
                        files.extend(
                            self.data_files(false, &cm.name, cm.optional, &cm.items)
                                .await?,
                        );
                    }
                    if let Some(s) = &source.secret {
                        files.extend(self.data_files(true, &s.name, s.optional, &s.items).await?);
                    }
                    if let Some(d) = &source.downward_api {
                        files.extend(self.downward_files(d.items.as_deref().unwrap_or_default()));
                    }
                    if let Some(t) = &source.service_account_token {
                        // No token issuer here: an empty token, as a placeholder.
                        files.insert(t.path.clone(), Vec::new());
                    }
                }
                write_atomic(&dir, &files).map_err(|e| e.to_string())?;
                dir
            } else {
                // emptyDir, and every other kind as an empty directory.
                kind_dir("empty-dir")
            };
            if v.host_path.is_none() {
                std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            self.volumes.insert(v.name.clone(), path);
        }
        Ok(())
    }

    /// The files a ConfigMap (`secret` false) or Secret volume or projection holds.
    async fn data_files(
        &self,
        secret: bool,
        name: &str,
        optional: Option<bool>,
        items: &Option<Vec<core::KeyToPath>>,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let ns = self.namespace();
        let text = |m: Option<BTreeMap<String, String>>| {
            m.unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
        };
        let bytes = |m: Option<BTreeMap<String, k8s_openapi::ByteString>>| {
            m.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0))
        };
        let found: Option<BTreeMap<String, Vec<u8>>> = if secret {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
            let s = api.get_opt(name).await.map_err(|e| e.to_string())?;
            s.map(|s| bytes(s.data).chain(text(s.string_data)).collect())
        } else {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
            let m = api.get_opt(name).await.map_err(|e| e.to_string())?;
            m.map(|m| text(m.data).chain(bytes(m.binary_data)).collect())
        };
        match found {
            Some(data) => Ok(key_to_path(items, data)),
            None if optional == Some(true) => Ok(BTreeMap::new()),
            None => Err(format!(
                "{} {name:?} not found",
                if secret { "secret" } else { "configmap" }
            )),
        }
    }

    fn downward_files(&self, items: &[core::DownwardAPIVolumeFile]) -> BTreeMap<String, Vec<u8>> {
        items
            .iter()
            .map(|i| {
                let value = i
                    .field_ref
                    .as_ref()
                    .and_then(|f| field(&self.pod, &f.field_path))
                    .unwrap_or_default();
                (i.path.clone(), value.into_bytes())
            })
            .collect()
    }

    fn refresh_downward(&mut self) {
        for v in self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default()
        {
            if let (Some(d), Some(dir)) = (&v.downward_api, self.volumes.get(&v.name)) {
                let files = self.downward_files(d.items.as_deref().unwrap_or_default());
                if let Err(error) = write_atomic(dir, &files) {
                    tracing::warn!(%error, volume = %v.name, "rewriting a downward API volume");
                }
            }
        }
    }

    /// Readiness probes of running containers, each at its period.
    async fn probe(&mut self) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if !s.seen.running() {
                continue;
            }
            let Some(probe) = s.spec.readiness_probe.clone() else {
                self.slots[i].ready = true;
                continue;
            };
            let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
            let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
            let due = match s.probed_at {
                Some(at) => at.elapsed() >= period,
                None => true,
            };
            let old_enough = match &s.seen {
                State::Running { started } => {
                    Timestamp::now().duration_since(*started).unsigned_abs() >= delay
                }
                _ => false,
            };
            if !due || !old_enough {
                continue;
            }
            self.slots[i].probed_at = Some(Instant::now());
            let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
            let ok = tokio::time::timeout(timeout, self.check(i, &probe))
                .await
                .unwrap_or(false);
            self.slots[i].ready = ok;
        }
    }

    async fn check(&self, slot: usize, probe: &core::Probe) -> bool {
        let port = |p: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString| -> Option<u16> {
            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
            match p {
                IntOrString::Int(n) => u16::try_from(*n).ok(),
                IntOrString::String(name) => self.slots[slot]
                    .spec
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name))
                    .and_then(|p| u16::try_from(p.container_port).ok()),
            }
        };
        if let Some(tcp) = &probe.tcp_socket {
            let Some(port) = port(&tcp.port) else {
                return false;
            };
            return tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok();
        }
        if let Some(get) = &probe.http_get {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Some(port) = port(&get.port) else {
                return false;
            };
            let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                return false;
            };
            let path = get.path.clone().unwrap_or_else(|| "/".into());
            let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            if stream.write_all(request.as_bytes()).await.is_err() {
                return false;
            }
            let mut head = [0u8; 12];
            if stream.read_exact(&mut head).await.is_err() {
                return false;
            }
            let code: u16 = String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0);
            return (200..400).contains(&code);
        }
        if let Some(exec) = &probe.exec {
            let dir = self.container_dir(slot);
            let Ok(binds) = self.binds_of(slot) else {
                return false;
            };
            let Ok(env) = self.env_of(&self.slots[slot].spec).await else {
                return false;
            };
            let root = dir.join("probe-rootfs");
            let image = self.slots[slot].spec.image.clone().unwrap_or_default();
            let spec = ContainerSpec {
                root: root.clone(),
                binds,
                cwd: self.slots[slot]
                    .spec
                    .working_dir
                    .clone()
                    .unwrap_or_else(|| "/".into()),
                argv: exec.command.clone().unwrap_or_default(),
                env,
                userland: self.image_for(&image).is_none_or(|i| !i.bare),
            };
            let file = dir.join("probe.json");
            if std::fs::create_dir_all(&root).is_err()
                || std::fs::write(&file, serde_json::to_vec(&spec).expect("JSON serializes"))
                    .is_err()
            {
                return false;
            }
            let status = tokio::process::Command::new(&self.config.container_binary)
                .arg(&file)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await;
            return status.is_ok_and(|s| s.success());
        }
        false
    }

    fn container_status(&self, s: &Slot) -> Value {
        let image = s.spec.image.clone().unwrap_or_default();
        let mut status = json!({
            "name": s.spec.name,
            "image": image,
            "imageID": format!("tektite-kubelet://{image}"),
            "ready": s.ready && s.seen.running(),
            "started": s.seen.running(),
            "restartCount": s.restarts,
            "state": s.seen.to_json(),
            "lastState": s.last.as_ref().map_or(json!({}), State::to_json),
        });
        if s.launched && !matches!(s.seen, State::Waiting { .. }) {
            status["containerID"] =
                format!("tektite-kubelet://{}-{}", s.spec.name, s.restarts).into();
        }
        status
    }

    /// Writes the Pod's status when what the stand-in knows changed.
    async fn write_status(&mut self) {
        let inits: Vec<&Slot> = self.slots.iter().filter(|s| s.init).collect();
        let mains: Vec<&Slot> = self.slots.iter().filter(|s| !s.init).collect();
        let initialized = inits.iter().all(|s| {
            if s.sidecar {
                s.seen.running() || s.seen.terminated()
            } else {
                matches!(s.seen, State::Terminated { code: 0, .. })
            }
        });
        let containers_ready = mains.iter().all(|s| s.ready && s.seen.running())
            && inits
                .iter()
                .filter(|s| s.sidecar)
                .all(|s| s.ready && s.seen.running());
        let time = self.started.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let condition = |kind: &str, on: bool| json!({"type": kind, "status": if on { "True" } else { "False" }, "lastTransitionTime": time});
        let status = json!({
            "phase": self.phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": time,
            "conditions": [
                condition("PodReadyToStartContainers", self.blocked.is_none()),
                condition("Initialized", initialized),
                condition("Ready", containers_ready),
                condition("ContainersReady", containers_ready),
                condition("PodScheduled", true),
            ],
            "initContainerStatuses": inits.iter().map(|s| self.container_status(s)).collect::<Vec<_>>(),
            "containerStatuses": mains.iter().map(|s| self.container_status(s)).collect::<Vec<_>>(),
        });
        if self.written.as_ref() == Some(&status) {
            return;
        }
        let changed: Vec<String> = self
            .slots
            .iter()
            .filter(|s| {
                let before = self.written.as_ref().and_then(|w| {
                    w["initContainerStatuses"]
                        .as_array()?
                        .iter()
                        .chain(w["containerStatuses"].as_array()?)
                        .find(|c| c["name"] == s.spec.name.as_str())
                        .map(|c| c["state"].clone())
                });
                before != Some(s.seen.to_json())
            })
            .map(|s| s.spec.name.clone())
            .collect();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace());
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
        {
            Ok(_) => {
                for c in changed {
                    self.shared.record(&self.key, &c, What::StatusWritten);
                }
                self.written = Some(status);
            }
            Err(error) => tracing::debug!(%error, pod = %self.key, "writing the Pod's status"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_from_those_defined_before() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
    }

    #[test]
    fn the_atomic_writer_swaps_data_and_keeps_only_current_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        write_atomic(dir.path(), &files(&[("ready", ""), ("cancel", "")])).unwrap();
        let first = std::fs::read_link(dir.path().join("..data")).unwrap();
        write_atomic(dir.path(), &files(&[("ready", "READY")])).unwrap();
        let second = std::fs::read_link(dir.path().join("..data")).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ready")).unwrap(),
            "READY"
        );
        assert!(std::fs::symlink_metadata(dir.path().join("cancel")).is_err());
        assert!(!dir.path().join(first).exists());
        assert_eq!(
            std::fs::read_link(dir.path().join("ready")).unwrap(),
            Path::new("..data/ready")
        );
    }

    #[test]
    fn pod_fields_are_read_as_the_downward_api_names_them() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ci", "uid": "u",
                         "annotations": {"tekton.dev/ready": "READY"}},
            "spec": {"nodeName": "n", "containers": []}
        }))
        .unwrap();
        assert_eq!(
            field(&pod, "metadata.annotations['tekton.dev/ready']").as_deref(),
            Some("READY")
        );
        assert_eq!(
            field(&pod, "metadata.annotations['tekton.dev/cancel']").as_deref(),
            Some("")
        );
        assert_eq!(field(&pod, "spec.nodeName").as_deref(), Some("n"));
        assert_eq!(field(&pod, "metadata.generation"), None);
    }
}
