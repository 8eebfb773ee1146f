//! One Pod's worker: its volumes, its containers' processes, the relist and its status.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{self as core, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use nix::sys::signal::Signal;

use super::container::{self, Bind, ContainerSpec, START_ERROR, START_ERROR_CODE, SUBCOMMAND};
use super::files::{expand, field, key_to_path, write_atomic};
use super::rewrite::Rewrites;
use super::{Image, Isolation, Kubelet, Message, What, probe, signal_container};

/// The Pod as the kubelet was given it, in its directory.
pub const POD_FILE: &str = "pod.json";

/// How many lines of a container's output are kept for `FallbackToLogsOnError`.
const TAIL_LINES: usize = 80;

/// A container's state as the kubelet reports it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum State {
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

/// A time as the API carries it: whole seconds.
fn time(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

impl State {
    fn waiting(reason: &str) -> State {
        State::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    fn to_api(&self) -> core::ContainerState {
        match self {
            State::Waiting { reason, message } => core::ContainerState {
                waiting: Some(core::ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..core::ContainerState::default()
            },
            State::Running { started } => core::ContainerState {
                running: Some(core::ContainerStateRunning {
                    started_at: Some(time(*started)),
                }),
                ..core::ContainerState::default()
            },
            State::Terminated {
                code,
                reason,
                message,
                started,
                finished,
            } => core::ContainerState {
                terminated: Some(core::ContainerStateTerminated {
                    exit_code: *code,
                    reason: Some(reason.clone()),
                    message: message.clone(),
                    started_at: Some(time(*started)),
                    finished_at: Some(time(*finished)),
                    ..core::ContainerStateTerminated::default()
                }),
                ..core::ContainerState::default()
            },
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
    /// The last lines it printed.
    tail: Arc<Mutex<VecDeque<String>>>,
}

pub(super) struct Worker {
    kubelet: Kubelet,
    pod: Pod,
    /// The Pod as the threads copying output see it.
    shared_pod: Arc<Pod>,
    key: String,
    dir: PathBuf,
    slots: Vec<Slot>,
    volumes: HashMap<String, PathBuf>,
    started: Timestamp,
    tx: mpsc::Sender<Message>,
    /// Why the volumes cannot be set up yet.
    blocked: Option<String>,
    phase: &'static str,
    written: Option<core::PodStatus>,
}

/// A container's process and what it needs, ready to start.
struct Launch {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    binds: Vec<Bind>,
    cwd: String,
    userland: bool,
}

impl Worker {
    pub(super) fn new(kubelet: Kubelet, pod: Pod, tx: mpsc::Sender<Message>) -> Worker {
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
            tail: Arc::default(),
        };
        let slots = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| slot(c, true))
            .chain(spec.containers.iter().map(|c| slot(c, false)))
            .collect();
        Worker {
            dir: kubelet.config.root.join("pods").join(&uid),
            kubelet,
            shared_pod: Arc::new(pod.clone()),
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

    pub(super) fn key(&self) -> &str {
        &self.key
    }

    fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_default()
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Message>) {
        // The Pod as it was given, beside its volumes: what ran, for whoever looks.
        let given = std::fs::create_dir_all(&self.dir).and_then(|_| {
            let json = serde_json::to_vec_pretty(&self.pod).map_err(std::io::Error::other)?;
            std::fs::write(self.dir.join(POD_FILE), json)
        });
        if let Err(error) = given {
            tracing::warn!(%error, pod = %self.key, "writing the Pod's manifest");
        }
        let relist = self.kubelet.config.relist;
        let mut next_relist = self.kubelet.shared.next_relist(relist);
        let mut next_retry = Instant::now();
        loop {
            if self.blocked.is_some() && Instant::now() >= next_retry {
                self.blocked = self.set_up_volumes().err();
                next_retry = Instant::now() + Duration::from_secs(1);
                let state = match &self.blocked {
                    Some(why) => State::Waiting {
                        reason: "ContainerCreating".into(),
                        message: Some(why.clone()),
                    },
                    None => State::waiting("PodInitializing"),
                };
                for s in &mut self.slots {
                    s.raw = state.clone();
                }
                if relist.is_zero() {
                    self.observe();
                }
            }
            if self.blocked.is_none() {
                self.act();
            }
            self.probe();
            self.write_status();
            let mut wake = Instant::now() + Duration::from_millis(200);
            if !relist.is_zero() {
                wake = wake.min(next_relist);
            }
            if self.blocked.is_some() {
                wake = wake.min(next_retry);
            }
            let timeout = wake.saturating_duration_since(Instant::now());
            match rx.recv_timeout(timeout) {
                Ok(Message::Deleted) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(Message::Update(pod)) => self.update(*pod),
                Ok(Message::Exited { slot, pid, code }) => self.exited(slot, pid, code),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if !relist.is_zero() && Instant::now() >= next_relist {
                next_relist = self.kubelet.shared.next_relist(relist);
                self.observe();
            }
            if relist.is_zero() {
                self.observe();
            }
        }
        self.tear_down(&rx);
    }

    /// Ends every container (TERM, then KILL after a second) and removes the Pod's
    /// directory.
    fn tear_down(&mut self, rx: &mpsc::Receiver<Message>) {
        let groups: Vec<i32> = self.slots.iter().filter_map(|s| s.pid).collect();
        for pid in &groups {
            signal_container(*pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.slots.iter().any(|s| s.pid.is_some()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                for s in &self.slots {
                    if let Some(pid) = s.pid {
                        signal_container(pid, Signal::SIGKILL);
                    }
                }
            }
            match rx.recv_timeout(left.max(Duration::from_millis(10))) {
                Ok(Message::Exited { slot, pid, code }) => self.exited(slot, pid, code),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        if !self.kubelet.config.keep_pod_dirs {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// The relist: what the processes did becomes what the kubelet knows.
    fn observe(&mut self) {
        for s in &mut self.slots {
            if s.seen != s.raw {
                s.seen = s.raw.clone();
                if !s.seen.running() {
                    s.ready = false;
                }
                self.kubelet
                    .shared
                    .record(&self.key, &s.spec.name, What::Observed);
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
        self.shared_pod = Arc::new(pod.clone());
        self.pod = pod;
        if meta_changed && self.blocked.is_none() {
            self.refresh_downward();
        }
    }

    fn exited(&mut self, slot: usize, pid: i32, code: i32) {
        let termination = self.termination_file(slot);
        let s = &mut self.slots[slot];
        if s.pid != Some(pid) {
            return; // an earlier run of a restarted container
        }
        s.pid = None;
        self.kubelet.shared.groups().remove(&pid);
        let started = match &s.raw {
            State::Running { started } => *started,
            _ => Timestamp::now(),
        };
        let tail: Vec<String> = s
            .tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let start_error =
            code == START_ERROR_CODE && tail.last().is_some_and(|l| l.starts_with(START_ERROR));
        let mut message = std::fs::read(&termination)
            .ok()
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).to_string())
            .filter(|m| !m.is_empty());
        if message.is_none()
            && code != 0
            && (start_error
                || s.spec.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"))
        {
            let tail = tail.join("\n");
            message = Some(tail[floor_char(&tail, tail.len().saturating_sub(2048))..].to_string());
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
        self.kubelet
            .shared
            .record(&self.key, &s.spec.name, What::Exited(code));
    }

    /// The file bound at container `slot`'s `terminationMessagePath`: one file per
    /// container (a file system's inodes cost), `<pod>/containers/<name>`.
    fn termination_file(&self, slot: usize) -> PathBuf {
        self.dir
            .join("containers")
            .join(&self.slots[slot].spec.name)
    }

    /// Decides, from what the relist saw, what to start and what to stop.
    fn act(&mut self) {
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
                    self.launch(i);
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
                    self.relaunch(i);
                    initialized = false;
                    break;
                }
                _ => {
                    if !s.launched {
                        self.launch(i);
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
                    self.launch(i);
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
                    signal_container(pid, Signal::SIGTERM);
                }
                s.stopping = true;
            } else if s.seen.terminated() && s.raw.terminated() {
                self.relaunch(i);
            }
        }
        let mains_done = initialized && mains.iter().all(|i| self.slots[*i].seen.terminated());
        if mains_done || init_failed {
            for s in self.slots.iter_mut().filter(|s| s.sidecar) {
                if s.seen.running() && !s.stopping {
                    if let Some(pid) = s.pid {
                        signal_container(pid, Signal::SIGTERM);
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

    fn relaunch(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.last = Some(s.seen.clone());
        s.restarts += 1;
        s.stopping = false;
        self.launch(slot);
    }

    fn image_for(&self, image: &str) -> Option<&Image> {
        self.kubelet
            .config
            .images
            .iter()
            .filter(|i| image.starts_with(&i.prefix))
            .max_by_key(|i| i.prefix.len())
    }

    fn data(&self, secret: bool, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        self.kubelet.host.data(secret, &self.namespace(), name)
    }

    fn env_of(&self, c: &core::Container) -> Result<Vec<(String, String)>, String> {
        let namespace = self.namespace();
        let image = c.image.as_deref().unwrap_or_default();
        let mut env: Vec<(String, String)> = match self.image_for(image) {
            Some(i) if i.bare => i.env.clone(),
            Some(i) => {
                // The image's ENV over this machine's, `$(NAME)` in it read from that.
                let mut e = self.kubelet.config.userland_env.clone();
                for (k, v) in &i.env {
                    let v = expand(v, &e);
                    e.retain(|(have, _)| have != k);
                    e.push((k.clone(), v));
                }
                e
            }
            None => self.kubelet.config.userland_env.clone(),
        };
        env.push((
            "HOSTNAME".into(),
            self.pod.metadata.name.clone().unwrap_or_default(),
        ));
        let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
            env.retain(|(have, _)| *have != k);
            env.push((k, v));
        };
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        for from in c.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            let (secret, name, optional) = if let Some(r) = &from.config_map_ref {
                (false, &r.name, r.optional == Some(true))
            } else if let Some(r) = &from.secret_ref {
                (true, &r.name, r.optional == Some(true))
            } else {
                continue;
            };
            match self.data(secret, name)? {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut env, format!("{prefix}{k}"), text(&v));
                    }
                }
                None if optional => {}
                None => {
                    let kind = if secret { "secret" } else { "configmap" };
                    return Err(format!("{kind} {name:?} not found"));
                }
            }
        }
        for e in c.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => expand(v, &env),
                (None, Some(from)) => {
                    let keyed = if let Some(r) = &from.config_map_key_ref {
                        Some((false, &r.name, &r.key, r.optional == Some(true)))
                    } else {
                        from.secret_key_ref
                            .as_ref()
                            .map(|r| (true, &r.name, &r.key, r.optional == Some(true)))
                    };
                    if let Some(f) = &from.field_ref {
                        field(&self.pod, &f.field_path).unwrap_or_default()
                    } else if let Some((secret, name, key, optional)) = keyed {
                        match self.data(secret, name)?.and_then(|d| d.get(key).cloned()) {
                            Some(v) => text(&v),
                            None if optional => continue,
                            None => {
                                let kind = if secret { "Secret" } else { "ConfigMap" };
                                return Err(format!(
                                    "couldn't find key {key} in {kind} {namespace}/{name}"
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
            host: self.termination_file(slot),
            path: s
                .spec
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
            read_only: false,
        });
        Ok(binds)
    }

    /// What container `c` (in `slot`) runs, with `argv` instead of its command when given
    /// (an exec probe).
    fn prepare(
        &self,
        slot: usize,
        c: &core::Container,
        argv: Option<Vec<String>>,
    ) -> Result<Launch, (bool, String)> {
        let image = c.image.clone().unwrap_or_default();
        let entry = self.image_for(&image);
        let userland = entry.is_none_or(|i| !i.bare);
        let env = self.env_of(c).map_err(|why| (true, why))?;
        let argv = match argv {
            Some(a) => a,
            None => {
                let command = c.command.clone().unwrap_or_default();
                let known = entry.filter(|i| !i.command.is_empty());
                if command.is_empty() && known.is_none() {
                    return Err((
                        false,
                        format!(
                            "container {:?} has no command and the local kubelet knows no entrypoint for image {image:?}",
                            c.name
                        ),
                    ));
                }
                let config = tektite_engine::pod::ImageConfig {
                    entrypoint: known.map(|i| i.command.clone()).unwrap_or_default(),
                    ..Default::default()
                };
                let args = c.args.clone().unwrap_or_default();
                tektite_engine::pod::container_argv(&command, &args, &config)
                    .iter()
                    .map(|a| expand(a, &env))
                    .collect()
            }
        };
        let binds = self.binds_of(slot).map_err(|why| (true, why))?;
        Ok(Launch {
            argv,
            env,
            binds,
            cwd: c.working_dir.clone().unwrap_or_else(|| "/".into()),
            userland,
        })
    }

    /// The process for `launch`, and what it reads on its stdin (`tkt container`'s spec).
    fn command(&self, launch: Launch) -> Result<(Command, Option<Vec<u8>>), String> {
        match &self.kubelet.config.isolation {
            Isolation::Namespaces { tkt } => {
                // Each container mounts its root's tmpfs here in a mount namespace of its
                // own: one directory serves them all.
                let root = self.kubelet.config.root.join("rootfs");
                std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
                let spec = ContainerSpec {
                    root,
                    binds: launch.binds,
                    cwd: launch.cwd,
                    argv: launch.argv,
                    env: launch.env,
                    userland: launch.userland,
                };
                let mut cmd = Command::new(tkt);
                cmd.args([SUBCOMMAND, container::FROM_STDIN]).env_clear();
                Ok((
                    cmd,
                    Some(serde_json::to_vec(&spec).expect("JSON serializes")),
                ))
            }
            Isolation::Rewritten => {
                // A script is placed by another container than the one that runs it: every
                // path any container of the Pod mounts is rewritten, the container's own
                // mounts first.
                let mut r = Rewrites::default();
                for (path, host) in self.pod_mounts() {
                    r.add(&path, &host);
                }
                for b in &launch.binds {
                    r.add(&b.path, &b.host);
                }
                let argv: Vec<String> = launch.argv.iter().map(|a| r.apply(a)).collect();
                let Some((program, args)) = argv.split_first() else {
                    return Err("the container has no command".into());
                };
                let cwd = PathBuf::from(r.apply(&launch.cwd));
                let state = self.kubelet.config.root.parent().unwrap_or(&self.dir);
                if cwd.starts_with(state) {
                    std::fs::create_dir_all(&cwd)
                        .map_err(|e| format!("working directory {}: {e}", cwd.display()))?;
                } else if !cwd.is_dir() {
                    return Err(format!(
                        "working directory {} does not exist on this machine (containers run without a mount namespace here)",
                        launch.cwd
                    ));
                }
                let mut cmd = Command::new(program);
                cmd.args(args)
                    .env_clear()
                    .envs(launch.env.iter().map(|(k, v)| (k, r.apply(v))))
                    .current_dir(cwd);
                Ok((cmd, None))
            }
        }
    }

    /// Every (mount path, directory) of the Pod's containers, the first container that
    /// mounts a path deciding it.
    fn pod_mounts(&self) -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = Vec::new();
        for s in &self.slots {
            for m in s.spec.volume_mounts.iter().flatten() {
                if out.iter().any(|(p, _)| *p == m.mount_path) {
                    continue;
                }
                if let Some(v) = self.volumes.get(&m.name) {
                    let sub = m
                        .sub_path
                        .as_deref()
                        .filter(|s| !s.is_empty() && !s.contains(".."));
                    out.push((m.mount_path.clone(), sub.map_or(v.clone(), |s| v.join(s))));
                }
            }
        }
        out
    }

    fn launch(&mut self, slot: usize) {
        let termination = self.termination_file(slot);
        let name = self.slots[slot].spec.name.clone();
        self.slots[slot].launched = true;
        let fail = |s: &mut Slot, why: String| {
            s.raw = State::Terminated {
                code: START_ERROR_CODE,
                reason: "StartError".into(),
                message: Some(why),
                started: Timestamp::now(),
                finished: Timestamp::now(),
            };
        };
        let spec = self.slots[slot].spec.clone();
        let image = spec.image.clone().unwrap_or_default();
        let launch = match self.prepare(slot, &spec, None) {
            Ok(l) => l,
            // As the kubelet: a container whose config cannot be had yet waits and is
            // tried again.
            Err((true, why)) => {
                let s = &mut self.slots[slot];
                s.launched = false;
                s.raw = State::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(why),
                };
                return;
            }
            Err((false, why)) => return fail(&mut self.slots[slot], why),
        };
        let containers = self.dir.join("containers");
        let cmd = std::fs::create_dir_all(&containers)
            .and_then(|_| std::fs::write(&termination, b""))
            .map_err(|e| format!("{}: {e}", containers.display()))
            .and_then(|_| self.command(launch));
        let (mut cmd, input) = match cmd {
            Ok(c) => c,
            Err(why) => return fail(&mut self.slots[slot], why),
        };
        use std::os::unix::process::CommandExt;
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        // `tkt container` makes its own session (and so its group); a plain process gets
        // a group of its own here.
        if matches!(self.kubelet.config.isolation, Isolation::Rewritten) {
            cmd.process_group(0);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let why = if e.raw_os_error() == Some(nix::errno::Errno::E2BIG as i32) {
                    "its command, args or an env value is longer than one argument may be (128 KiB): pass large values in a script or a file".to_string()
                } else {
                    e.to_string()
                };
                return fail(
                    &mut self.slots[slot],
                    format!("cannot start {name:?}: {why}"),
                );
            }
        };
        let pid = child.id() as i32;
        self.kubelet.shared.groups().insert(pid);
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A spec is well under a pipe's buffer; if `tkt container` died first, its exit
            // says why.
            let _ = std::io::Write::write_all(&mut stdin, &input);
        }
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let mut readers = Vec::new();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let host = self.kubelet.host.clone();
            let pod = self.shared_pod.clone();
            let (name, tail) = (name.clone(), tail.clone());
            readers.push(std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = line.strip_suffix(b"\n").unwrap_or(&line);
                            let text = text.strip_suffix(b"\r").unwrap_or(text);
                            host.log(&pod, &name, text);
                            let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                            t.push_back(String::from_utf8_lossy(text).into_owned());
                            if t.len() > TAIL_LINES {
                                t.pop_front();
                            }
                        }
                    }
                }
            }));
        }
        let s = &mut self.slots[slot];
        s.pid = Some(pid);
        s.image = image;
        s.tail = tail;
        s.raw = State::Running {
            started: Timestamp::now(),
        };
        s.stopping = false;
        s.probed_at = None;
        self.kubelet.shared.record(&self.key, &name, What::Started);
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            use std::os::unix::process::ExitStatusExt;
            let (code, killed) = match child.wait() {
                Ok(status) => (
                    status
                        .code()
                        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                    status.signal().is_some(),
                ),
                Err(_) => (255, true),
            };
            // What it left behind dies with it, as in a container; then its output is
            // complete. Its whole session only when it was killed: an entrypoint that
            // ended has ended its step's process group itself.
            if killed {
                signal_container(pid, Signal::SIGKILL);
            } else {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
            }
            for r in readers {
                let _ = r.join();
            }
            let _ = tx.send(Message::Exited { slot, pid, code });
        });
    }

    fn set_up_volumes(&mut self) -> Result<(), String> {
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
            let atomic = |dir: PathBuf, files: &BTreeMap<String, Vec<u8>>| {
                write_atomic(&dir, files)
                    .map(|_| dir)
                    .map_err(|e| format!("volume {:?}: {e}", v.name))
            };
            let path = if let Some(claim) = &v.persistent_volume_claim {
                self.kubelet.host.claim(&namespace, &claim.claim_name)
            } else if let Some(h) = &v.host_path {
                PathBuf::from(&h.path)
            } else if let Some(cm) = &v.config_map {
                let files = self.data_files(false, &cm.name, cm.optional, &cm.items)?;
                atomic(kind_dir("configmap"), &files)?
            } else if let Some(s) = &v.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                let files = self.data_files(true, &name, s.optional, &s.items)?;
                atomic(kind_dir("secret"), &files)?
            } else if let Some(d) = &v.downward_api {
                let files = self.downward_files(d.items.as_deref().unwrap_or_default());
                atomic(kind_dir("downward-api"), &files)?
            } else if let Some(p) = &v.projected {
                let mut files = BTreeMap::new();
                for source in p.sources.iter().flatten() {
                    if let Some(cm) = &source.config_map {
                        files.extend(self.data_files(false, &cm.name, cm.optional, &cm.items)?);
                    }
                    if let Some(s) = &source.secret {
                        files.extend(self.data_files(true, &s.name, s.optional, &s.items)?);
                    }
                    if let Some(d) = &source.downward_api {
                        files.extend(self.downward_files(d.items.as_deref().unwrap_or_default()));
                    }
                    if let Some(t) = &source.service_account_token {
                        // No token issuer here: an empty token, as a placeholder.
                        files.insert(t.path.clone(), Vec::new());
                    }
                }
                atomic(kind_dir("projected"), &files)?
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
    fn data_files(
        &self,
        secret: bool,
        name: &str,
        optional: Option<bool>,
        items: &Option<Vec<core::KeyToPath>>,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        match self.data(secret, name)? {
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
    fn probe(&mut self) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if !s.seen.running() {
                continue;
            }
            let Some(p) = s.spec.readiness_probe.clone() else {
                self.slots[i].ready = true;
                continue;
            };
            let period = Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
            let delay = Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64);
            let due = s.probed_at.is_none_or(|at| at.elapsed() >= period);
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
            let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
            let ok = self.check(i, &p, timeout);
            self.slots[i].ready = ok;
        }
    }

    fn check(&self, slot: usize, p: &core::Probe, timeout: Duration) -> bool {
        let spec = &self.slots[slot].spec;
        let port = |port| probe::port(port, spec.ports.as_deref().unwrap_or_default());
        if let Some(tcp) = &p.tcp_socket {
            return port(&tcp.port).is_some_and(|port| probe::tcp(port, timeout));
        }
        if let Some(get) = &p.http_get {
            let path = get.path.as_deref().unwrap_or("/");
            return port(&get.port).is_some_and(|port| probe::http(port, path, timeout));
        }
        if let Some(exec) = &p.exec {
            let argv = exec.command.clone().unwrap_or_default();
            let Ok(launch) = self.prepare(slot, spec, Some(argv)) else {
                return false;
            };
            let Ok((mut cmd, input)) = self.command(launch) else {
                return false;
            };
            return probe::exec(&mut cmd, input, timeout);
        }
        false
    }

    fn container_status(&self, s: &Slot) -> core::ContainerStatus {
        let image = s.spec.image.clone().unwrap_or_default();
        core::ContainerStatus {
            name: s.spec.name.clone(),
            image_id: format!("tektite-kubelet://{image}"),
            image,
            ready: s.ready && s.seen.running(),
            started: Some(s.seen.running()),
            restart_count: s.restarts as i32,
            state: Some(s.seen.to_api()),
            last_state: Some(s.last.as_ref().map(State::to_api).unwrap_or_default()),
            container_id: (s.launched && !matches!(s.seen, State::Waiting { .. }))
                .then(|| format!("tektite-kubelet://{}-{}", s.spec.name, s.restarts)),
            ..core::ContainerStatus::default()
        }
    }

    /// Hands the Pod's status to the host when what the kubelet knows changed.
    fn write_status(&mut self) {
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
        let condition = |kind: &str, on: bool| core::PodCondition {
            type_: kind.into(),
            status: if on { "True" } else { "False" }.into(),
            last_transition_time: Some(time(self.started)),
            ..core::PodCondition::default()
        };
        let localhost = "127.0.0.1".to_string();
        let status = core::PodStatus {
            phase: Some(self.phase.into()),
            host_ip: Some(localhost.clone()),
            pod_ip: Some(localhost.clone()),
            pod_ips: Some(vec![core::PodIP { ip: localhost }]),
            start_time: Some(time(self.started)),
            conditions: Some(vec![
                condition("PodReadyToStartContainers", self.blocked.is_none()),
                condition("Initialized", initialized),
                condition("Ready", containers_ready),
                condition("ContainersReady", containers_ready),
                condition("PodScheduled", true),
            ]),
            init_container_statuses: Some(inits.iter().map(|s| self.container_status(s)).collect()),
            container_statuses: Some(mains.iter().map(|s| self.container_status(s)).collect()),
            ..core::PodStatus::default()
        };
        if self.written.as_ref() == Some(&status) {
            return;
        }
        let before = |name: &str| {
            let w = self.written.as_ref()?;
            w.init_container_statuses
                .iter()
                .flatten()
                .chain(w.container_statuses.iter().flatten())
                .find(|c| c.name == name)
                .and_then(|c| c.state.clone())
        };
        let changed: Vec<String> = self
            .slots
            .iter()
            .filter(|s| before(&s.spec.name) != Some(s.seen.to_api()))
            .map(|s| s.spec.name.clone())
            .collect();
        match self.kubelet.host.status(&self.pod, &status) {
            Ok(()) => {
                for c in changed {
                    self.kubelet
                        .shared
                        .record(&self.key, &c, What::StatusWritten);
                }
                self.written = Some(status);
            }
            Err(error) => tracing::debug!(%error, pod = %self.key, "writing the Pod's status"),
        }
    }
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
