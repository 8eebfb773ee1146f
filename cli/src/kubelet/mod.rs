//! The local kubelet: it runs a Pod as processes on this machine the way a kubelet runs
//! it. `tkt run` executes the Pods the engine builds through it, and the CI level's
//! kubelet stand-in (`tektite_tests::kubelet`) runs an API server's Pods through it, so
//! that both meet what a cluster's kubelet does.
//!
//! What it does as a kubelet does:
//! - lays out each Pod's volumes under `<root>/pods/<uid>/volumes/kubernetes.io~<kind>/<name>`
//!   (emptyDir; downwardAPI, configMap, secret and projected through the atomic writer's
//!   `..data` symlink swap, the downward API rewritten when labels or annotations change;
//!   persistentVolumeClaim where the [`Host`] keeps its claims; hostPath as itself);
//! - runs each container in a private mount namespace on a root of its own (see
//!   [`container`]): volumeMounts and subPaths bound, readOnly honoured, and a file of its
//!   own bound at `terminationMessagePath`, whose content becomes the terminated state's
//!   message (`FallbackToLogsOnError`: the log's tail);
//! - init containers one by one, then every container; native sidecars (init containers
//!   with `restartPolicy: Always`) started in their turn, kept running, and stopped once
//!   every container has ended; a container whose image the spec changes is stopped and
//!   started again with the new image (`restartCount` + 1);
//! - readiness probes (exec, tcpSocket, httpGet on 127.0.0.1);
//! - the PLEG: a container's start or exit becomes visible to the kubelet, and so to its
//!   status writes and its own decisions (the next init container, the sidecars' stop),
//!   only at the next relist, which comes every [`Config::relist`] on one clock for every
//!   Pod (zero: at once);
//! - the Pod it was given written to `<root>/pods/<uid>/pod.json` ([`POD_FILE`]);
//! - the Pod's status handed to the [`Host`] when it changes; every line a container
//!   prints handed to the [`Host`] too.
//!
//! What it does not: pull images (an image is this machine's userland plus the binds its
//! [`Image`] entry gives; a container with no command takes the entry's), network, PID or
//! user isolation, resource limits, liveness and startup probes, lifecycle hooks.
//!
//! Where this machine allows no private mount namespace ([`Isolation::Rewritten`]), a
//! container runs as a plain process and every Pod path its command, args, env and
//! working directory name is rewritten to the directory it stands for on this machine
//! (see [`rewrite`]); the termination-message file likewise.
//!
//! Every container it starts is a process group it signals by PID, and, with mount
//! namespaces, a session of its own (`tkt container` calls `setsid`): when a container
//! ends or is killed, every process of its session is killed too, as a runtime kills its
//! cgroup (the entrypoint runs a step in a process group of its own, which a kill of the
//! container's group alone would miss): when the Pod is deleted, and at
//! [`Kubelet::kill_all`].

pub mod container;
pub mod files;
mod probe;
pub mod rewrite;
mod worker;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

pub use container::{Bind, ContainerSpec};
pub use worker::POD_FILE;

/// What an image stands for: the binds it brings, its entrypoint and its env. The longest
/// matching prefix of a container's image wins; an image with no entry is this machine's
/// userland with [`Config::userland_env`].
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub prefix: String,
    pub binds: Vec<Bind>,
    /// The image's ENTRYPOINT, for containers that give no command.
    pub command: Vec<String>,
    /// The image holds nothing but its binds (and the C library they link), as the
    /// entrypoint's image holds nothing but the entrypoint: no shell, no `/bin`.
    pub bare: bool,
    /// The image's ENV: when not bare, over [`Config::userland_env`] (a `$(NAME)` in a
    /// value is that variable of the userland env, as in `PATH=/x:$(PATH)`).
    pub env: Vec<(String, String)>,
}

/// How containers are kept apart from this machine.
#[derive(Clone, Debug)]
pub enum Isolation {
    /// Each in a private mount namespace, started by `tkt container` (this `tkt`).
    Namespaces { tkt: PathBuf },
    /// None: Pod paths are rewritten to this machine's directories.
    Rewritten,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The kubelet root (`/var/lib/kubelet` on a node).
    pub root: PathBuf,
    /// How often starts and exits are observed (a kubelet's PLEG relists every second).
    pub relist: Duration,
    pub images: Vec<Image>,
    /// The env of an image with no entry (this machine's userland): its `PATH` and `HOME`.
    pub userland_env: Vec<(String, String)>,
    pub isolation: Isolation,
    /// A deleted Pod's directory stays (its processes end all the same).
    pub keep_pod_dirs: bool,
}

/// The world around the kubelet: where ConfigMaps, Secrets and claims come from, and
/// where the Pod's status and its containers' output go. Called from the Pods' threads.
pub trait Host: Send + Sync {
    /// The data of ConfigMap (`secret` false) or Secret `name`; `None` when there is none.
    fn data(
        &self,
        secret: bool,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String>;
    /// The directory of PersistentVolumeClaim `claim`.
    fn claim(&self, namespace: &str, claim: &str) -> PathBuf;
    /// Writes the Pod's status (the kubelet's status manager); an error is retried with
    /// the next change.
    fn status(&self, pod: &Pod, status: &PodStatus) -> Result<(), String>;
    /// One line (without its end of line) container `container` printed.
    fn log(&self, pod: &Pod, container: &str, line: &[u8]);
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
    /// When the kubelet started: its relists fall on multiples of the period from here,
    /// for every Pod alike, as one PLEG's do.
    epoch: Instant,
    /// Process groups alive, by leader PID.
    groups: Mutex<HashSet<i32>>,
    timeline: Mutex<Vec<Record>>,
}

impl Shared {
    /// The first relist after now.
    fn next_relist(&self, period: Duration) -> Instant {
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

    fn groups(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A kubelet: Pods run through [`Kubelet::run`].
#[derive(Clone)]
pub struct Kubelet {
    config: Arc<Config>,
    host: Arc<dyn Host>,
    shared: Arc<Shared>,
}

enum Message {
    Update(Box<Pod>),
    Deleted,
    Exited { slot: usize, pid: i32, code: i32 },
}

/// A Pod the kubelet runs. Dropping it deletes the Pod without waiting: its processes are
/// ended (TERM, then KILL after a second) and its directory removed.
pub struct PodHandle {
    tx: mpsc::Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl PodHandle {
    /// The Pod changed (labels and annotations reach its downward-API files; a
    /// container's new image restarts it).
    pub fn update(&self, pod: Pod) {
        let _ = self.tx.send(Message::Update(Box::new(pod)));
    }

    /// Deletes the Pod and waits until its processes are gone.
    pub fn delete(mut self) {
        let _ = self.tx.send(Message::Deleted);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PodHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(Message::Deleted);
    }
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PodHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodHandle").finish_non_exhaustive()
    }
}

impl Kubelet {
    pub fn new(config: Config, host: Arc<dyn Host>) -> Kubelet {
        Kubelet {
            config: Arc::new(config),
            host,
            shared: Arc::new(Shared {
                epoch: Instant::now(),
                groups: Mutex::default(),
                timeline: Mutex::default(),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts running `pod` (bound to this kubelet's node) on a thread of its own.
    pub fn run(&self, pod: Pod) -> PodHandle {
        let (tx, rx) = mpsc::channel();
        let worker = worker::Worker::new(self.clone(), pod, tx.clone());
        let name = format!(
            "pod {}",
            worker.key().rsplit('/').next().unwrap_or_default()
        );
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || worker.run(rx))
            .expect("a thread for the Pod");
        PodHandle {
            tx,
            thread: Some(thread),
        }
    }

    /// Every container start, exit, observation and status write so far.
    pub fn timeline(&self) -> Vec<Record> {
        self.shared
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends SIGKILL to every container's process group.
    pub fn kill_all(&self) {
        for pid in self.shared.groups().iter() {
            signal_container(*pid, Signal::SIGKILL);
        }
    }

    /// Whether a container's process group is still alive.
    pub fn any_alive(&self) -> bool {
        self.shared
            .groups()
            .iter()
            .any(|pid| killpg(Pid::from_raw(*pid), None).is_ok())
    }
}

/// Sends `signal` to the container whose process is `pid`: its process group (the
/// process itself if it has not made its group yet); a SIGKILL reaches every process of
/// its session as well.
pub(crate) fn signal_container(pid: i32, signal: Signal) {
    if killpg(Pid::from_raw(pid), signal).is_err() {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
    }
    if signal == Signal::SIGKILL {
        kill_session(pid);
    }
}

/// SIGKILL to every process whose session is `sid` (read from `/proc/<pid>/stat`).
fn kill_session(sid: i32) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp session ...`; comm may hold spaces and parentheses.
        let session = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(3))
            .and_then(|s| s.parse::<i32>().ok());
        if session == Some(sid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
