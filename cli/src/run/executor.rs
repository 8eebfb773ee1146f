//! The local shell around the engine: one loop that starts each TaskRun attempt as the
//! Pod the engine builds, run by the local kubelet; feeds what the watcher sees of their
//! steps and what the kubelet reports of their Pods to the engine's TaskRun and
//! PipelineRun decisions; and carries those decisions out (start, stop, retry, finish).
//! A task that runs a Pipeline (Pipelines in Pipelines) is a child PipelineRun, decided
//! in the same loop as its parent.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use tektite_api::labels;
use tektite_api::step::{StepReason, StepState};
use tektite_api::v1::{
    self, API_VERSION, Condition, Param, ParamValue, PipelineRun, PipelineRunResult,
    PipelineRunStatus, PipelineSpec, SkippedTask, TaskRef, TaskRun, TaskRunSpec, TaskRunStatus,
    TaskSpec, WorkspaceBinding, pipelinerun_reason,
};
use tektite_engine::names::pod_name;
use tektite_engine::pipeline::{
    self, Cancel, Child, Outcome, PipelineRunFacts, Start, Stop, Timeouts,
};
use tektite_engine::taskrun::{self, TaskRunFacts};
use tektite_node_agent::{Config, Event, WatchError, Watcher};

use k8s_openapi::api::core::v1::PodStatus;
use tektite_cli::kubelet::{self, Bind, Image, Isolation, Kubelet};
use tektite_engine::pod::{ENTRYPOINT_IN_IMAGE, PodSettings};

use super::names;
use super::pod::{LocalHost, Pod, PodRequest};
use super::view::View;
use super::volumes::Sources;

/// How long the loop sleeps when nothing happens: bounds the latency of timeouts, Ctrl-C,
/// sidecar readiness and Pod failures (step ends wake it at once through inotify).
const TICK: Duration = Duration::from_millis(50);
pub const NAMESPACE: &str = "default";
/// Set (non-empty, not 0) to run steps without private mount namespaces.
const NO_SANDBOX: &str = "TKT_NO_SANDBOX";

/// What the run needs besides the plan.
pub struct Settings {
    /// `--timeout`: replaces the run's own timeout.
    pub timeout: Option<SignedDuration>,
    /// The run's state directory (`kubelet/`, `claims/` inside).
    pub state_dir: PathBuf,
    pub view: View,
    /// Ctrl-C (and SIGTERM) count: 1 cancels gracefully, 2 stops at once.
    pub interrupts: Arc<AtomicUsize>,
    /// At most this many TaskRuns run at once; the others wait their turn.
    pub parallel: usize,
    /// `--keep`: every Pod's directory stays.
    pub keep: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("watching the run's step markers: {0}")]
    Watch(#[from] WatchError),
    #[error("creating {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The final objects.
pub struct Finished {
    pub pipeline_run: Option<PipelineRun>,
    /// The child PipelineRuns of tasks that run a Pipeline, parents first.
    pub child_pipeline_runs: Vec<PipelineRun>,
    pub task_runs: Vec<TaskRun>,
    pub succeeded: bool,
}

struct Attempt {
    pod: Pod,
    started_at: Timestamp,
    /// What the steps' records say (the watcher's events).
    steps: Vec<Option<StepState>>,
}

/// One TaskRun: its spec, its attempts, its status.
struct Run {
    name: String,
    /// What logs and task lines are prefixed with: the pipeline task (`build-2` for a
    /// matrix child), or the TaskRun.
    label: String,
    uid: String,
    /// The PipelineRun it belongs to (an index into the executor's `pipelines`).
    owner: Option<usize>,
    pipeline_task: Option<String>,
    task_ref: Option<TaskRef>,
    spec: TaskSpec,
    params: Vec<Param>,
    workspaces: BTreeMap<String, (WorkspaceBinding, Option<String>)>,
    /// Its workspaces bound to host directories (`-w NAME=PATH`), by its workspace name.
    host_dirs: BTreeMap<String, PathBuf>,
    timeout: Option<SignedDuration>,
    retries: u32,
    created_at: Timestamp,
    attempt: Option<Attempt>,
    retries_status: Vec<TaskRunStatus>,
    status: TaskRunStatus,
    stop: Option<Stop>,
    done: bool,
    /// A pipeline task's TaskRun as the engine makes a PipelineRun's children (the
    /// controller creates the same object); none for a TaskRun run alone.
    object: Option<TaskRun>,
    /// A TaskRun run alone: its spec as given (podTemplate, serviceAccountName, ...).
    given: TaskRunSpec,
}

impl Run {
    fn label(&self) -> &str {
        &self.label
    }

    fn outcome(&self) -> Outcome {
        if !self.done {
            return Outcome::Running;
        }
        Outcome::of_finished(
            self.status.conditions.first(),
            self.stop == Some(Stop::TimedOut),
        )
    }

    fn results(&self) -> BTreeMap<String, ParamValue> {
        self.status
            .results
            .iter()
            .map(|r| (r.name.clone(), r.value.clone()))
            .collect()
    }
}

/// What is being run.
pub enum Target {
    Pipeline {
        run: Box<PipelineRun>,
        spec: Box<PipelineSpec>,
        pipeline_name: String,
        tasks: BTreeMap<String, TaskSpec>,
        /// Pipelines by name, for a task's `pipelineRef`.
        pipelines: BTreeMap<String, PipelineSpec>,
    },
    Task {
        run: Box<TaskRun>,
        spec: Box<TaskSpec>,
        task_name: Option<String>,
    },
}

/// Images whose shell is busybox's ash (alpine, busybox, and the bash image, built on
/// alpine): scripts written for them use what ash does (`[[ ]]`, `==`, and ash's own
/// answers where shells differ: an empty unquoted word inside `[[ ]]` vanishes), and
/// `ash` is on their PATH (`#!/usr/bin/env ash`). Where this machine has busybox, their
/// containers get it as `/bin/sh` and `ash`, the shell they have; else, where this
/// machine's `/bin/sh` is another shell (Debian's dash), its bash (a POSIX sh that also
/// knows `[[ ]]` and `==`). `ash`, where this machine has none, is linked in `dir`, bound
/// at `/tektite/shells`, first on their PATH. Only with mount namespaces: rewritten paths
/// cannot swap a script's interpreter.
fn shells(sandboxed: bool, dir: &std::path::Path) -> Vec<Image> {
    let on_path = |name: &str| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    };
    let bash = std::path::Path::new("/bin/bash");
    let shell = match on_path("busybox") {
        Some(busybox) => busybox,
        None if bash.is_file() => bash.to_path_buf(),
        None => return Vec::new(),
    };
    if !sandboxed {
        return Vec::new();
    }
    let sh_is_it = std::fs::canonicalize("/bin/sh")
        .ok()
        .zip(std::fs::canonicalize(&shell).ok())
        .is_some_and(|(a, b)| a == b);
    let has_ash = on_path("ash").is_some();
    let mut binds = Vec::new();
    let mut env = Vec::new();
    if !sh_is_it {
        binds.push(Bind {
            host: shell.clone(),
            path: "/bin/sh".into(),
            read_only: true,
        });
    }
    let ash = dir.join("ash");
    let linked = std::fs::create_dir_all(dir).is_ok()
        && (ash.exists() || std::os::unix::fs::symlink(&shell, &ash).is_ok());
    if !has_ash && linked {
        binds.push(Bind {
            host: dir.to_path_buf(),
            path: SHELLS_DIR.into(),
            read_only: true,
        });
        env.push(("PATH".to_owned(), format!("{SHELLS_DIR}:$(PATH)")));
    }
    if binds.is_empty() {
        return Vec::new();
    }
    let registries = [
        "",
        "docker.io/",
        "docker.io/library/",
        "index.docker.io/library/",
        "mirror.gcr.io/",
        "mirror.gcr.io/library/",
        "cgr.dev/chainguard/",
    ];
    let names = ["alpine", "busybox", "bash"];
    registries
        .iter()
        .flat_map(|r| names.iter().map(move |n| format!("{r}{n}")))
        .map(|prefix| Image {
            prefix,
            binds: binds.clone(),
            env: env.clone(),
            ..Image::default()
        })
        .collect()
}

/// Where an alpine-like container finds `ash` when this machine has none.
const SHELLS_DIR: &str = "/tektite/shells";

/// One PipelineRun: the one run, or the child of a task that runs a Pipeline.
struct PipelineState {
    /// Its object, with its name and uid.
    run: Box<PipelineRun>,
    spec: Box<PipelineSpec>,
    pipeline_name: String,
    /// A child's parent (an index into the executor's `pipelines`) and pipeline task.
    parent: Option<(usize, String)>,
    /// What its tasks' labels start with: empty for the run, `scans/` for the child of
    /// task `scans`.
    prefix: String,
    /// Its workspaces bound to host directories, by its workspace name.
    host: BTreeMap<String, PathBuf>,
    started_at: Timestamp,
    cancel: Option<Cancel>,
    timeouts: Timeouts,
    finally_started_at: Option<Timestamp>,
    skipped: Vec<SkippedTask>,
    reported_skips: Vec<String>,
    status: Option<(Condition, Vec<PipelineRunResult>)>,
}

pub struct Executor {
    settings: Settings,
    host: Arc<LocalHost>,
    kubelet: Kubelet,
    /// The kubelet's Pod statuses, by Pod UID.
    statuses: mpsc::Receiver<(String, PodStatus)>,
    watcher: Watcher,
    runs: Vec<Run>,
    by_pod: HashMap<String, usize>,
    /// The PipelineRuns: the one run first, then children as their tasks start.
    pipelines: Vec<PipelineState>,
    /// Tasks and Pipelines by name, for references.
    tasks: BTreeMap<String, TaskSpec>,
    pipeline_specs: BTreeMap<String, PipelineSpec>,
    uid: String,
    name: String,
    handled_interrupts: usize,
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

impl Executor {
    pub fn new(
        target: Target,
        sources: Sources,
        settings: Settings,
        name: String,
    ) -> Result<Self, ExecError> {
        let root = settings.state_dir.join("kubelet");
        let claims = settings.state_dir.join("claims");
        let bin = settings.state_dir.join("bin");
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| ExecError::Io { path, source }
        };
        for dir in [root.join("pods"), claims.clone(), bin.clone()] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        // The entrypoint's image holds `tkt`, under the entrypoint's name.
        let exe = std::env::current_exe().map_err(io(&PathBuf::from("/proc/self/exe")))?;
        let entrypoint = bin.join("entrypoint");
        let _ = std::fs::remove_file(&entrypoint);
        std::os::unix::fs::symlink(&exe, &entrypoint).map_err(io(&entrypoint))?;
        let watcher = Watcher::new(Config::new(&root))?;
        let refused = std::env::var_os(NO_SANDBOX).is_some_and(|v| !v.is_empty() && v != "0");
        let sandboxed = !refused
            && kubelet::container::available(&exe, &settings.state_dir.join("sandbox-check"));
        let image = PodSettings::default().entrypoint_image;
        let mut images = shells(sandboxed, &settings.state_dir.join("shells"));
        images.push(Image {
            prefix: image.split(':').next().unwrap_or_default().into(),
            binds: vec![Bind {
                host: entrypoint.clone(),
                path: ENTRYPOINT_IN_IMAGE.into(),
                read_only: true,
            }],
            command: vec![ENTRYPOINT_IN_IMAGE.into()],
            bare: true,
            // Every container here sees this machine's paths: the init container links
            // `/tekton/bin/entrypoint` to `tkt` rather than copying it.
            env: vec![(
                tektite_entrypoint::LINK_ENV.into(),
                entrypoint.display().to_string(),
            )],
        });
        let config = kubelet::Config {
            root,
            relist: Duration::ZERO,
            images,
            // The host's tools with the user's environment, but a HOME of the Pod's own, so
            // that steps do not write into the user's.
            userland_env: std::env::vars()
                .filter(|(k, _)| k != "HOME")
                .chain([(
                    "HOME".to_string(),
                    format!("/{}", tektite_api::step::layout::Volume::Home.mount_path()),
                )])
                .collect(),
            isolation: if sandboxed {
                Isolation::Namespaces { tkt: exe }
            } else {
                Isolation::Rewritten
            },
            // A finished TaskRun's Pod goes with its volumes, as on a node (each holds a copy
            // of `tkt`); `--keep` keeps them all, for whoever looks.
            keep_pod_dirs: settings.keep,
        };
        let (host, statuses) = LocalHost::new(sources, claims, settings.view.clone());
        let host = Arc::new(host);
        let kubelet = Kubelet::new(config, host.clone());
        settings.view.note(if sandboxed {
            "steps run in private mount namespaces: they see /tekton/... and /workspace/... as in a Pod"
        } else if refused {
            "TKT_NO_SANDBOX is set: /tekton/... and /workspace/... paths in steps are rewritten to the run's directories"
        } else {
            "this machine allows no private mount namespace (neither root nor user namespaces): /tekton/... and /workspace/... paths in steps are rewritten to the run's directories"
        });
        let started_at = Timestamp::now();
        let uid = names::uid();
        let mut ex = Executor {
            settings,
            host,
            kubelet,
            statuses,
            watcher,
            runs: Vec::new(),
            by_pod: HashMap::new(),
            pipelines: Vec::new(),
            tasks: BTreeMap::new(),
            pipeline_specs: BTreeMap::new(),
            uid,
            name,
            handled_interrupts: 0,
        };
        match target {
            Target::Pipeline {
                mut run,
                spec,
                pipeline_name,
                tasks,
                pipelines,
            } => {
                if run.spec.status == Some(v1::PipelineRunSpecStatus::PipelineRunPending) {
                    ex.settings.view.note(
                        "spec.status is PipelineRunPending: tkt run starts it anyway (on a cluster it waits until spec.status is cleared)",
                    );
                }
                ex.tasks = tasks;
                ex.pipeline_specs = pipelines;
                run.metadata.name = Some(ex.name.clone());
                run.metadata.uid = Some(ex.uid.clone());
                run.metadata.namespace = Some(NAMESPACE.into());
                let host = ex.host.sources().host.clone();
                let timeout = ex.settings.timeout;
                ex.add_pipeline(run, *spec, pipeline_name, None, host, timeout, started_at);
            }
            Target::Task {
                run,
                spec,
                task_name,
            } => {
                let timeout = Some(
                    ex.settings
                        .timeout
                        .unwrap_or_else(|| tektite_engine::taskrun::timeout_of(&run.spec)),
                );
                let task_ref = task_name.map(|n| TaskRef {
                    name: Some(n),
                    kind: Some("Task".into()),
                    ..TaskRef::default()
                });
                let workspaces = run
                    .spec
                    .workspaces
                    .iter()
                    .map(|b| (b.name.clone(), (b.clone(), None)))
                    .collect();
                let cancelled = tektite_engine::taskrun::cancelled(&run.spec);
                let mut spec = *spec;
                if task_ref.is_none() {
                    // A spec the TaskRun embeds sees the run's workspaces undeclared.
                    spec.propagate_workspaces(&run.spec.workspaces);
                }
                let host_dirs = run
                    .spec
                    .workspaces
                    .iter()
                    .filter_map(|b| {
                        let dir = ex.host.sources().host.get(&b.name)?;
                        Some((b.name.clone(), dir.clone()))
                    })
                    .collect();
                let mut r = Run {
                    label: ex.name.clone(),
                    name: ex.name.clone(),
                    uid: ex.uid.clone(),
                    owner: None,
                    pipeline_task: None,
                    task_ref,
                    spec,
                    params: run.spec.params.clone(),
                    workspaces,
                    host_dirs,
                    timeout,
                    retries: run.spec.retries.unwrap_or(0).max(0) as u32,
                    created_at: started_at,
                    attempt: None,
                    retries_status: Vec::new(),
                    status: TaskRunStatus::default(),
                    stop: None,
                    done: false,
                    object: None,
                    given: run.spec.clone(),
                };
                if cancelled {
                    r.stop = Some(Stop::Cancelled);
                }
                ex.runs.push(r);
                ex.start_attempt(0);
            }
        }
        Ok(ex)
    }

    /// Adds PipelineRun `run` (named, with its uid) of `spec`: the run itself, or the
    /// child of `parent`'s task. `timeout` replaces its own.
    #[allow(clippy::too_many_arguments)]
    fn add_pipeline(
        &mut self,
        run: Box<PipelineRun>,
        mut spec: PipelineSpec,
        pipeline_name: String,
        parent: Option<(usize, String)>,
        host: BTreeMap<String, PathBuf>,
        timeout: Option<SignedDuration>,
        now: Timestamp,
    ) {
        spec.propagate_workspaces(&run.spec.workspaces, run.spec.pipeline_spec.is_some());
        let mut timeouts = Timeouts::of(&run.spec);
        if let Some(t) = timeout {
            timeouts.pipeline = Some(t);
        }
        let prefix = match &parent {
            Some((i, task)) => format!("{}{task}/", self.pipelines[*i].prefix),
            None => String::new(),
        };
        self.pipelines.push(PipelineState {
            cancel: Cancel::of(&run.spec),
            run,
            spec: Box::new(spec),
            pipeline_name,
            parent,
            prefix,
            host,
            started_at: now,
            timeouts,
            finally_started_at: None,
            skipped: Vec::new(),
            reported_skips: Vec::new(),
            status: None,
        });
    }

    /// Runs to the end.
    pub fn run(mut self) -> Result<Finished, ExecError> {
        loop {
            self.interrupts();
            let now = Timestamp::now();
            for i in 0..self.runs.len() {
                self.decide_task_run(i, now);
            }
            // Children first: a parent then sees what they decided.
            for p in (0..self.pipelines.len()).rev() {
                self.decide_pipeline(p, now);
            }
            if self.finished() {
                break;
            }
            let events = self.watcher.next_events(Some(TICK))?;
            for e in events {
                self.apply(e);
            }
            self.observe_pods();
        }
        self.settings.view.finish();
        Ok(self.finish())
    }

    fn interrupts(&mut self) {
        let n = self.settings.interrupts.load(Ordering::SeqCst);
        if n == self.handled_interrupts {
            return;
        }
        let first = self.handled_interrupts == 0;
        self.handled_interrupts = n;
        if first && n == 1 {
            self.settings.view.note(
                "cancelling: running tasks are stopped, finally tasks run; press Ctrl-C again to stop at once",
            );
            match self.pipelines.is_empty() {
                false => {
                    for p in &mut self.pipelines {
                        p.cancel.get_or_insert(Cancel::CancelledRunFinally);
                    }
                }
                true => {
                    for r in &mut self.runs {
                        r.stop.get_or_insert(Stop::Cancelled);
                        if let Some(a) = &mut r.attempt {
                            a.pod.cancel();
                        }
                    }
                }
            }
        } else {
            self.settings.view.note("stopping now");
            for p in &mut self.pipelines {
                p.cancel = Some(Cancel::Cancelled);
            }
            for r in &mut self.runs {
                if let Some(a) = &mut r.attempt {
                    r.stop.get_or_insert(Stop::Cancelled);
                    a.pod.delete();
                }
            }
            // What the entrypoints recorded while being stopped.
            if let Ok(events) = self.watcher.next_events(Some(Duration::from_millis(100))) {
                for e in events {
                    self.apply(e);
                }
            }
            let now = Timestamp::now();
            for r in &mut self.runs {
                if let Some(a) = &mut r.attempt {
                    for (i, s) in a.steps.iter_mut().enumerate() {
                        if !s.as_ref().is_some_and(StepState::is_finished) {
                            *s = Some(StepState::ended(
                                s.as_ref().map(|s| s.started_at).unwrap_or(now),
                                now,
                                StepReason::Cancelled,
                                format!("step {i} was stopped by a second Ctrl-C"),
                            ));
                        }
                    }
                }
            }
        }
    }

    fn finished(&self) -> bool {
        self.runs.iter().all(|r| r.done) && self.pipelines.iter().all(|p| p.status.is_some())
    }

    fn apply(&mut self, e: Event) {
        let Some(&i) = self.by_pod.get(e.pod_uid()) else {
            return;
        };
        let Some(a) = self.runs[i].attempt.as_mut() else {
            return;
        };
        if a.pod.uid != e.pod_uid() {
            return;
        }
        match e {
            Event::StepStarted {
                step, started_at, ..
            } => {
                if let Some(slot) = a.steps.get_mut(step)
                    && slot.is_none()
                {
                    *slot = Some(StepState::started(started_at));
                }
            }
            Event::StepFinished { step, state, .. } => {
                if let Some(slot) = a.steps.get_mut(step) {
                    *slot = Some(state);
                }
            }
            Event::StepUnreadable { step, error, .. } => {
                let now = Timestamp::now();
                if let Some(slot) = a.steps.get_mut(step) {
                    let started = slot.as_ref().map(|s| s.started_at).unwrap_or(now);
                    *slot = Some(StepState::ended(
                        started,
                        now,
                        StepReason::Error,
                        format!("the step's state record cannot be used: {error}"),
                    ));
                }
            }
            Event::PodGone { .. } => {}
        }
    }

    /// Hands the kubelet's new Pod statuses to their attempts; lets a Pod's first step
    /// start once its sidecars are ready.
    fn observe_pods(&mut self) {
        while let Ok((uid, status)) = self.statuses.try_recv() {
            self.observe(uid, status);
        }
        for r in &mut self.runs {
            if let Some(a) = r.attempt.as_mut() {
                a.pod.poll_ready(&self.settings.view, &r.label);
            }
        }
    }

    fn observe(&mut self, uid: String, status: PodStatus) {
        let Some(&i) = self.by_pod.get(&uid) else {
            return;
        };
        if let Some(a) = self.runs[i].attempt.as_mut()
            && a.pod.uid == uid
        {
            a.pod.observe(status);
        }
    }

    fn running(&self) -> usize {
        self.runs.iter().filter(|r| r.attempt.is_some()).count()
    }

    fn start_attempt(&mut self, i: usize) {
        let view = self.settings.view.clone();
        let pod_uid = names::uid();
        let r = &self.runs[i];
        let retry = r.retries_status.len() as u32;
        let task_run = task_run_object(r);
        let host_dirs = r.host_dirs.clone();
        let task_name = r.task_ref.as_ref().and_then(|t| t.name.clone());
        let req = PodRequest {
            uid: pod_uid.clone(),
            label: r.label().to_owned(),
            task_run: &task_run,
            spec: &r.spec,
            task_name: task_name.as_deref(),
            retry,
            host_dirs,
        };
        let now = Timestamp::now();
        if retry == 0 {
            view.task_started(r.label());
        }
        if let Some(why) = r.stop {
            // Stopped before its Pod exists: it ends without one, as on a cluster.
            let condition = taskrun::stopped(&r.name, why, r.timeout);
            let reason = condition.reason.clone().unwrap_or_default();
            let r = &mut self.runs[i];
            r.status = TaskRunStatus {
                conditions: vec![Condition {
                    last_transition_time: Some(time(now)),
                    ..condition
                }],
                start_time: Some(time(now)),
                completion_time: Some(time(now)),
                ..TaskRunStatus::default()
            };
            r.done = true;
            view.task_finished(r.label(), &reason, Some(0.0));
            return;
        }
        let started = Pod::start(&self.kubelet, &self.host, req);
        let r = &mut self.runs[i];
        match started {
            Ok(pod) => {
                let steps = vec![None; pod.spec.steps.len()];
                r.status.pod_name = pod_name(&r.name, retry);
                r.status.start_time = Some(time(now));
                r.status.task_spec = Some(pod.spec.clone());
                r.attempt = Some(Attempt {
                    pod,
                    started_at: now,
                    steps,
                });
                self.by_pod.insert(pod_uid, i);
            }
            Err(e) => {
                r.status = TaskRunStatus {
                    conditions: vec![Condition {
                        last_transition_time: Some(time(now)),
                        ..Condition::succeeded("False", e.reason(), e.to_string())
                    }],
                    pod_name: String::new(),
                    start_time: Some(time(now)),
                    completion_time: Some(time(now)),
                    ..TaskRunStatus::default()
                };
                r.done = true;
                view.task_finished(r.label(), e.reason(), Some(0.0));
                view.note(&format!("{}: {e}", r.label()));
            }
        }
    }

    fn decide_task_run(&mut self, i: usize, now: Timestamp) {
        let r = &mut self.runs[i];
        let Some(a) = r.attempt.as_mut() else {
            return;
        };
        let mut steps = a.pod.steps(&a.steps);
        let failure = a.pod.failure(&r.name);
        if let Some(f) = &failure {
            taskrun::close_unfinished(&mut steps, now, StepReason::Error, &f.message);
        }
        let d = taskrun::decide(&TaskRunFacts {
            name: &r.name,
            spec: &a.pod.spec,
            steps: &steps,
            started_at: a.started_at,
            timeout: r.timeout,
            cancelled: r.stop.is_some(),
            retries: r.retries,
            retries_used: r.retries_status.len() as u32,
            now,
        });
        if d.stop.is_some() {
            a.pod.cancel();
        }
        let mut condition = d.condition.clone();
        tektite_engine::pod::status::failed_condition(
            &mut condition,
            failure.as_ref(),
            d.stop.is_some(),
            a.pod.object(),
            &a.pod.spec,
        );
        let status = TaskRunStatus {
            conditions: vec![Condition {
                last_transition_time: Some(time(now)),
                ..condition
            }],
            pod_name: r.status.pod_name.clone(),
            start_time: Some(time(a.started_at)),
            completion_time: d.done.then(|| time(now)),
            steps: d.steps,
            results: d.results,
            artifacts: d.artifacts,
            task_spec: Some(a.pod.spec.clone()),
            ..TaskRunStatus::default()
        };
        if !d.done {
            r.status = status;
            return;
        }
        let Some(mut a) = r.attempt.take() else {
            return;
        };
        // The task is reported finished after its logs: once its steps' containers ended.
        let pod = &mut a.pod;
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !pod.steps_ended() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.statuses.recv_timeout(left) {
                Ok((uid, status)) if uid == pod.uid => pod.observe(status),
                Ok((uid, status)) => self.observe(uid, status),
                Err(_) => break,
            }
        }
        self.by_pod.remove(&a.pod.uid);
        a.pod.delete();
        let r = &mut self.runs[i];
        let view = self.settings.view.clone();
        if d.retry {
            let reason = status
                .conditions
                .first()
                .and_then(|c| c.reason.clone())
                .unwrap_or_default();
            view.note(&format!(
                "{}: attempt {} ended {reason}; retrying ({} of {})",
                r.label(),
                r.retries_status.len() + 1,
                r.retries_status.len() + 1,
                r.retries
            ));
            let next = taskrun::rollover(&TaskRunStatus {
                retries_status: std::mem::take(&mut r.retries_status),
                ..status
            });
            r.retries_status = next.retries_status.clone();
            r.status = next;
            self.start_attempt(i);
            return;
        }
        r.status = status;
        r.done = true;
        let reason = r
            .status
            .conditions
            .first()
            .and_then(|c| c.reason.clone())
            .unwrap_or_default();
        let took = now.duration_since(r.created_at).as_secs_f64();
        view.task_finished(r.label(), &reason, Some(took));
    }

    /// What a child PipelineRun is to its parent, as far as it is known.
    fn pipeline_outcome(&self, p: usize) -> Outcome {
        match &self.pipelines[p].status {
            None => Outcome::Running,
            Some((condition, _)) => Outcome::of_finished(Some(condition), false),
        }
    }

    fn decide_pipeline(&mut self, idx: usize, now: Timestamp) {
        if self.pipelines[idx].status.is_some() {
            return;
        }
        let task_runs = self
            .runs
            .iter()
            .filter(|r| r.owner == Some(idx))
            .filter_map(|r| {
                let child = Child {
                    artifacts: r.status.artifacts.clone(),
                    ..Child::of(r.outcome(), r.results())
                };
                Some((r.pipeline_task.clone()?, child))
            });
        // A child Pipeline's results do not reach its parent, as in Tekton.
        let pipeline_runs: Vec<(String, Child)> = (0..self.pipelines.len())
            .filter_map(|c| {
                let (parent, task) = self.pipelines[c].parent.as_ref()?;
                (*parent == idx).then(|| {
                    (
                        task.clone(),
                        Child::of(self.pipeline_outcome(c), BTreeMap::new()),
                    )
                })
            })
            .collect();
        let p = &self.pipelines[idx];
        let children = pipeline::by_task(&p.spec, task_runs.chain(pipeline_runs));
        let name = p.run.metadata.name.clone().unwrap_or_default();
        let uid = p.run.metadata.uid.clone().unwrap_or_default();
        let d = pipeline::decide(&PipelineRunFacts {
            name: &name,
            namespace: NAMESPACE,
            uid: &uid,
            pipeline_name: &p.pipeline_name,
            spec: &p.spec,
            params: &p.run.spec.params,
            cancel: p.cancel,
            // A local run has no one to release it: tkt run says so and starts it.
            pending: false,
            timeouts: p.timeouts,
            started_at: p.started_at,
            finally_started_at: p.finally_started_at,
            children: &children,
            now,
        });
        let p = &mut self.pipelines[idx];
        if d.finally_starts && p.finally_started_at.is_none() {
            p.finally_started_at = Some(now);
        }
        for s in &d.skipped {
            if !p.reported_skips.contains(&s.name) {
                p.reported_skips.push(s.name.clone());
                self.settings.view.task_finished(
                    &format!("{}{}", p.prefix, s.name),
                    &format!("Skipped ({})", s.reason),
                    None,
                );
            }
        }
        p.skipped = d.skipped.clone();
        for (name, why) in &d.stop {
            for r in self.runs.iter_mut().filter(|r| {
                r.owner == Some(idx) && r.pipeline_task.as_deref() == Some(name) && !r.done
            }) {
                r.stop.get_or_insert(*why);
                if let Some(a) = &mut r.attempt {
                    a.pod.cancel();
                }
            }
            for c in &mut self.pipelines {
                if c.parent
                    .as_ref()
                    .is_some_and(|(i, t)| *i == idx && t == name)
                {
                    c.cancel = Some(Cancel::Cancelled);
                }
            }
        }
        if d.done {
            let p = &mut self.pipelines[idx];
            if p.parent.is_some() {
                let label = p.prefix.trim_end_matches('/').to_owned();
                let reason = d.condition.reason.clone().unwrap_or_default();
                let took = now.duration_since(p.started_at).as_secs_f64();
                self.settings
                    .view
                    .task_finished(&label, &reason, Some(took));
            }
            p.status = Some((d.condition, d.results));
            return;
        }
        let mut starts = d.start;
        let room = self.settings.parallel.saturating_sub(self.running());
        starts.truncate(room);
        for s in starts {
            if s.task.runs_pipeline() {
                self.start_child_pipeline(idx, s, now);
            } else {
                self.create_task_runs(idx, s, now);
            }
        }
    }

    /// The child PipelineRun of a task that runs a Pipeline, as the engine makes it (the
    /// controller creates the same object), with host directories passed on.
    fn start_child_pipeline(&mut self, idx: usize, start: Start, now: Timestamp) {
        let p = &self.pipelines[idx];
        let task = &start.task;
        let (spec, pipeline_name) = match (&task.pipeline_spec, &task.pipeline_ref) {
            (Some(spec), _) => ((**spec).clone(), String::new()),
            (None, Some(r)) => {
                let name = r.name.clone().unwrap_or_default();
                // Validation found it among the files.
                let spec = self.pipeline_specs.get(&name).cloned().unwrap_or_default();
                (spec, name)
            }
            (None, None) => (PipelineSpec::default(), String::new()),
        };
        let host = task
            .workspaces
            .iter()
            .filter_map(|w| {
                let from = w.workspace.as_deref().unwrap_or(&w.name);
                Some((w.name.clone(), p.host.get(from)?.clone()))
            })
            .collect();
        let run_name = p.run.metadata.name.clone().unwrap_or_default();
        // One child: validation refuses a matrix on a task that runs a Pipeline.
        let Some(child) = start.child_runs(&run_name).into_iter().next() else {
            return;
        };
        let mut run = tektite_engine::child::pipeline_run(&p.run, &p.pipeline_name, &start, &child);
        run.metadata.uid = Some(names::uid());
        run.metadata.creation_timestamp = Some(time(now));
        let label = format!("{}{}", p.prefix, task.name);
        self.settings.view.task_started(&label);
        let parent = Some((idx, task.name.clone()));
        self.add_pipeline(Box::new(run), spec, pipeline_name, parent, host, None, now);
    }

    /// The TaskRun of a pipeline task, or one per combination of its matrix.
    fn create_task_runs(&mut self, idx: usize, start: Start, now: Timestamp) {
        let p = &self.pipelines[idx];
        let task = &start.task;
        let (spec, task_ref) = match (&task.task_spec, &task.task_ref) {
            (Some(embedded), _) => (embedded.task.clone(), None),
            (None, Some(r)) => {
                let name = r.name.clone().unwrap_or_default();
                (
                    self.tasks.get(&name).cloned().unwrap_or_default(),
                    Some(TaskRef {
                        name: Some(name),
                        kind: Some("Task".into()),
                        ..TaskRef::default()
                    }),
                )
            }
            (None, None) => (TaskSpec::default(), None),
        };
        let mut workspaces = BTreeMap::new();
        let mut host_dirs = BTreeMap::new();
        for w in &task.workspaces {
            let from = w.workspace.as_deref().unwrap_or(&w.name);
            if let Some(b) = p.run.spec.workspaces.iter().find(|b| b.name == from) {
                workspaces.insert(w.name.clone(), (b.clone(), w.sub_path.clone()));
            }
            if let Some(dir) = p.host.get(from) {
                host_dirs.insert(w.name.clone(), dir.clone());
            }
        }
        let mut spec = spec;
        if task.task_spec.is_some() {
            let bound: Vec<WorkspaceBinding> = workspaces
                .iter()
                .map(|(name, (b, _))| WorkspaceBinding {
                    name: name.clone(),
                    ..b.clone()
                })
                .collect();
            spec.propagate_workspaces(&bound);
        }
        let timeout = start
            .timeout
            .or_else(|| task.timeout.as_ref().and_then(v1::Duration::signed));
        let owner = &p.run;
        let run_name = owner.metadata.name.clone().unwrap_or_default();
        let mut runs = Vec::new();
        for child in start.child_runs(&run_name) {
            let object = tektite_engine::child::task_run(owner, &p.pipeline_name, &start, &child);
            let label = match child.index {
                Some(i) => format!("{}{}-{i}", p.prefix, task.name),
                None => format!("{}{}", p.prefix, task.name),
            };
            runs.push(Run {
                name: child.name,
                label,
                uid: names::uid(),
                owner: Some(idx),
                pipeline_task: Some(task.name.clone()),
                task_ref: task_ref.clone(),
                spec: spec.clone(),
                params: child.params,
                workspaces: workspaces.clone(),
                host_dirs: host_dirs.clone(),
                timeout,
                retries: task.retries.unwrap_or(0).max(0) as u32,
                created_at: now,
                attempt: None,
                retries_status: Vec::new(),
                status: TaskRunStatus::default(),
                stop: None,
                done: false,
                object: Some(object),
                given: TaskRunSpec::default(),
            });
        }
        for run in runs {
            self.runs.push(run);
            self.start_attempt(self.runs.len() - 1);
        }
    }

    fn finish(self) -> Finished {
        let now = Timestamp::now();
        let mut task_runs = Vec::new();
        for r in &self.runs {
            // A pipeline task's TaskRun is the one the controller would create; a TaskRun
            // run alone is the one given.
            let mut tr = task_run_object(r);
            tr.status = Some(TaskRunStatus {
                retries_status: r.retries_status.clone(),
                ..r.status.clone()
            });
            task_runs.push(tr);
        }
        if self.pipelines.is_empty() {
            let succeeded = self.runs.iter().all(|r| r.outcome() == Outcome::Succeeded);
            return Finished {
                pipeline_run: None,
                child_pipeline_runs: Vec::new(),
                task_runs,
                succeeded,
            };
        }
        let mut objects: Vec<PipelineRun> = (0..self.pipelines.len())
            .map(|i| self.pipeline_object(i, now))
            .collect();
        let top = objects.remove(0);
        let succeeded = top
            .status
            .as_ref()
            .and_then(|s| s.conditions.first())
            .is_some_and(|c| c.status == "True");
        Finished {
            pipeline_run: Some(top),
            child_pipeline_runs: objects,
            task_runs,
            succeeded,
        }
    }

    /// PipelineRun `idx` as it ended, with a cluster's additions (namespace, creation
    /// time, the pipeline label) and its children referenced.
    fn pipeline_object(&self, idx: usize, now: Timestamp) -> PipelineRun {
        let p = &self.pipelines[idx];
        let (condition, results) = p.status.clone().unwrap_or_default();
        let mut run = (*p.run).clone();
        run.api_version = Some(API_VERSION.into());
        run.kind = Some("PipelineRun".into());
        run.metadata.namespace = Some(NAMESPACE.into());
        run.metadata.creation_timestamp = Some(time(p.started_at));
        if !p.pipeline_name.is_empty() {
            run.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(labels::PIPELINE.into(), p.pipeline_name.clone());
        }
        let reference = |kind, name: &str, task: &str| {
            tektite_engine::child::reference(API_VERSION, kind, name, task, &p.spec)
        };
        let task_runs = self.runs.iter().filter(|r| r.owner == Some(idx)).map(|r| {
            reference(
                "TaskRun",
                &r.name,
                r.pipeline_task.as_deref().unwrap_or_default(),
            )
        });
        let pipeline_runs = self.pipelines.iter().filter_map(|c| {
            let (parent, task) = c.parent.as_ref()?;
            (*parent == idx).then(|| {
                reference(
                    "PipelineRun",
                    c.run.metadata.name.as_deref().unwrap_or_default(),
                    task,
                )
            })
        });
        run.status = Some(PipelineRunStatus {
            conditions: vec![Condition {
                last_transition_time: Some(time(now)),
                ..condition
            }],
            start_time: Some(time(p.started_at)),
            completion_time: Some(time(now)),
            results,
            pipeline_spec: Some((*p.spec).clone()),
            skipped_tasks: p.skipped.clone(),
            child_references: task_runs.chain(pipeline_runs).collect(),
            finally_start_time: p.finally_started_at.map(time),
            ..PipelineRunStatus::default()
        });
        run
    }
}

/// A TaskRun as the controller sees it: a pipeline task's as the engine makes a
/// PipelineRun's children, a TaskRun run alone as given; with what a cluster adds (the API
/// server's uid and creation time, the default service account and managed-by label
/// Tekton's defaulting gives every TaskRun, and the taskRun label its Pod carries).
fn task_run_object(r: &Run) -> TaskRun {
    let mut tr = r.object.clone().unwrap_or_else(|| {
        let mut labels_map = BTreeMap::new();
        if let Some(name) = r.task_ref.as_ref().and_then(|t| t.name.clone()) {
            labels_map.insert(labels::TASK.into(), name);
        }
        TaskRun {
            api_version: Some(API_VERSION.into()),
            kind: Some("TaskRun".into()),
            metadata: ObjectMeta {
                name: Some(r.name.clone()),
                namespace: Some(NAMESPACE.into()),
                labels: Some(labels_map),
                ..ObjectMeta::default()
            },
            spec: TaskRunSpec {
                params: r.params.clone(),
                task_ref: r.task_ref.clone(),
                task_spec: r.task_ref.is_none().then(|| r.spec.clone()),
                retries: (r.retries > 0).then_some(r.retries as i32),
                timeout: r.timeout.map(|t| v1::Duration::from(t.unsigned_abs())),
                workspaces: r
                    .workspaces
                    .iter()
                    .map(|(name, (b, sub))| WorkspaceBinding {
                        name: name.clone(),
                        sub_path: match (&b.sub_path, sub) {
                            (Some(a), Some(b)) => Some(format!("{a}/{b}")),
                            (a, b) => a.clone().or(b.clone()),
                        },
                        ..b.clone()
                    })
                    .collect(),
                ..r.given.clone()
            },
            status: None,
        }
    });
    tr.metadata.uid = Some(r.uid.clone());
    tr.metadata.creation_timestamp = Some(time(r.created_at));
    let labels_map = tr.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels_map.insert(labels::TASK_RUN.into(), r.name.clone());
    labels_map.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_TEKTITE.into());
    tr.spec
        .service_account_name
        .get_or_insert_with(|| "default".into());
    tr
}

/// The run's condition reason, for the summary.
pub fn reason_of(c: &[Condition]) -> String {
    c.first()
        .and_then(|c| c.reason.clone())
        .unwrap_or_else(|| pipelinerun_reason::RUNNING.into())
}
