//! One TaskRun attempt on this machine: a pod directory laid out as the kubelet lays out
//! a Pod's volumes (`<root>/pods/<uid>/volumes/kubernetes.io~empty-dir/tekton-internal-*`),
//! prepared by the entrypoint's own init, its sidecars as background processes, and every
//! step as `tkt entrypoint ...` waiting on the step before it, exactly as in a Pod.
//!
//! Steps run without a private mount namespace, so the paths they are given are rewritten
//! to where the directories are here (see [`super::rewrite`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tektite_api::step::layout::{
    PodPaths, ScriptOwner, Volume, node_volume_dir, script_name, step_dir_name,
};
use tektite_api::step::{EntrypointArgs, InitArgs};
use tektite_api::v1::{OnError, Param, TaskSpec, WorkspaceBinding};
use tektite_engine::task::{BoundWorkspace, ResolveError, TaskContext, TaskPaths, resolve};

use super::sandbox::{self, Sandbox, SandboxError};
use super::view::View;
use super::volumes::{Sources, VolumeError};
use tektite_cli::kubelet::rewrite::Rewrites;

/// What to start.
pub struct PodRequest<'a> {
    pub uid: String,
    /// The name logs are prefixed with: the pipeline task, or the TaskRun.
    pub label: String,
    pub spec: &'a TaskSpec,
    pub params: &'a [Param],
    pub context: TaskContext,
    /// The Task's workspaces: each binding, and a pipeline task's own subPath.
    pub workspaces: BTreeMap<String, (WorkspaceBinding, Option<String>)>,
    pub sources: &'a Sources,
    /// Each step gets a private mount namespace showing the Pod paths (else the paths
    /// are rewritten).
    pub sandboxed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("workspace {name:?}: {source}")]
    Workspace {
        name: String,
        #[source]
        source: VolumeError,
    },
    #[error("volume {name:?}: {source}")]
    Volume {
        name: String,
        #[source]
        source: VolumeError,
    },
    #[error("{container}: env {var}: {why}")]
    Env {
        container: String,
        var: String,
        why: String,
    },
    #[error("{container}: workingDir {dir} does not exist on this machine")]
    WorkingDir { container: String, dir: String },
    #[error("preparing the step sandbox: {0}")]
    Sandbox(#[source] SandboxError),
    #[error("preparing the pod directory: {0}")]
    Init(#[from] tektite_entrypoint::InitError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StartError {
    /// Tekton's TaskRun reason for this failure.
    pub fn reason(&self) -> &'static str {
        use tektite_api::v1::taskrun_reason as r;
        match self {
            StartError::Resolve(_) => r::VALIDATION_FAILED,
            StartError::Env { .. } | StartError::WorkingDir { .. } => {
                r::CREATE_CONTAINER_CONFIG_ERROR
            }
            _ => r::POD_CREATION_FAILED,
        }
    }
}

fn io_err<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> StartError + 'p {
    move |source| StartError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// A started process, ended by its PID.
struct Proc {
    child: Child,
    exit: Option<ExitStatus>,
    /// The threads copying its output into the view.
    logs: Vec<JoinHandle<()>>,
}

impl Proc {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
    fn poll(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }
}

enum Probe {
    /// Ready once running.
    Running,
    Exec(Vec<String>),
    Tcp(u16),
    Http {
        port: u16,
        path: String,
    },
}

struct SidecarProc {
    name: String,
    proc: Proc,
    probe: Probe,
    not_before: Instant,
    ready: bool,
}

pub struct Pod {
    pub uid: String,
    /// The resolved Task, as the TaskRun's status shows it.
    pub spec: TaskSpec,
    steps: Vec<Proc>,
    sidecars: Vec<SidecarProc>,
    ready_file: PathBuf,
    cancel_file: PathBuf,
    ready: bool,
    cancelled: bool,
    sidecars_stopped: bool,
}

const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// `tkt entrypoint`: the step wrapper (`tkt` is its own entrypoint on this machine).
pub const ENTRYPOINT: &str = "entrypoint";
/// After the sandbox arguments of `tkt entrypoint`: run this command (a sidecar) in the
/// sandbox instead of a step.
pub const EXEC: &str = "--exec";

/// The fields of a step or sidecar that see paths.
struct Container<'c> {
    mounts: &'c [core::VolumeMount],
    command: &'c mut Vec<String>,
    args: &'c mut Vec<String>,
    script: &'c Option<String>,
    working_dir: &'c mut Option<String>,
    env: &'c mut Vec<core::EnvVar>,
}

/// Where a container starts.
struct Workdir {
    /// The process's directory on this machine.
    host: PathBuf,
    /// The directory inside its sandbox, when it has one.
    in_sandbox: Option<String>,
}

impl Pod {
    /// Lays out the pod directory under `kubelet_root` and starts the sidecars and steps.
    pub fn start(kubelet_root: &Path, req: PodRequest<'_>, view: &View) -> Result<Pod, StartError> {
        let volume = |v: &Volume| node_volume_dir(kubelet_root, &req.uid, v);
        let pod_dir = kubelet_root.join("pods").join(&req.uid);
        let pod_volumes = pod_dir.join("volumes");
        let pod = PodPaths::in_pod();
        let sandboxed = req.sandboxed;
        // A path as the steps see it: the Pod path in a sandbox, else the host path.
        let seen = |pod_path: String, host: &Path| {
            if sandboxed {
                pod_path
            } else {
                host.display().to_string()
            }
        };

        // Where the Pod's paths are here.
        let mut rewrites = Rewrites::default();
        for v in [
            Volume::Results,
            Volume::Steps,
            Volume::Home,
            Volume::Scripts,
            Volume::Bin,
            Volume::Downward,
            Volume::Workspace,
        ] {
            rewrites.add(&format!("/{}", v.mount_path()), &volume(&v));
        }
        let mut bound = BTreeMap::new();
        for decl in &req.spec.workspaces {
            let Some((binding, sub_path)) = req.workspaces.get(&decl.name) else {
                continue;
            };
            let volume_name = format!("ws-{}", decl.name);
            let host = req
                .sources
                .workspace(binding, &volume_name, &pod_volumes, sub_path.as_deref())
                .map_err(|source| StartError::Workspace {
                    name: decl.name.clone(),
                    source,
                })?;
            rewrites.add(&decl.path(), &host.path);
            bound.insert(
                decl.name.clone(),
                BoundWorkspace {
                    path: seen(decl.path(), &host.path),
                    claim: host.claim,
                    volume: volume_name,
                },
            );
        }
        let mut volumes = BTreeMap::new();
        for v in &req.spec.volumes {
            let host =
                req.sources
                    .task_volume(v, &pod_volumes)
                    .map_err(|source| StartError::Volume {
                        name: v.name.clone(),
                        source,
                    })?;
            volumes.insert(v.name.clone(), host);
        }

        let paths = TaskPaths {
            results: seen(
                format!("/{}", Volume::Results.mount_path()),
                &volume(&Volume::Results),
            ),
            steps: seen(
                format!("/{}", Volume::Steps.mount_path()),
                &volume(&Volume::Steps),
            ),
            workspaces: bound,
        };
        let run_binds: Vec<(PathBuf, String)> = (0..req.spec.steps.len())
            .map(|i| {
                (
                    volume(&Volume::Run(i)),
                    format!("/{}", Volume::Run(i).mount_path()),
                )
            })
            .collect();
        let script_path = |name: &str| {
            seen(
                format!("/{}/{name}", Volume::Scripts.mount_path()),
                &volume(&Volume::Scripts).join(name),
            )
        };
        let resolved = resolve(req.spec, req.params, &req.context, &paths)?;
        // What runs here: scripts placed, paths rewritten (the status shows `resolved`).
        let mut spec = resolved.clone();

        // Prepare the shared volumes as the init container does.
        let mut scripts = Vec::new();
        let scripts_dir = volume(&Volume::Scripts);
        // One container's view: its volume mounts added; in a sandbox the Pod paths are
        // bound (returned), else rewritten in its fields; its script placed.
        let mut prepare =
            |c: Container<'_>, owner: ScriptOwner, i: usize, extra: &[(PathBuf, String)]| {
                let mut r = rewrites.clone();
                add_mounts(&mut r, c.mounts, &volumes);
                let binds = if sandboxed {
                    let mut b = r.binds();
                    b.extend(extra.iter().cloned());
                    r = Rewrites::default();
                    b
                } else {
                    Vec::new()
                };
                r.apply_all(c.command);
                r.apply_all(c.args);
                if let Some(script) = c.script.as_deref() {
                    let name = script_name(owner, i);
                    scripts.push((name.clone(), r.apply(script)));
                    // The script gets the args as its positional parameters, as in Tekton.
                    *c.command = vec![script_path(&name)];
                }
                *c.working_dir = c.working_dir.as_deref().map(|d| r.apply(d));
                for e in c.env.iter_mut() {
                    e.value = e.value.as_deref().map(|v| r.apply(v));
                }
                binds
            };
        let step_binds: Vec<_> = spec
            .steps
            .iter_mut()
            .enumerate()
            .map(|(i, s)| {
                let c = Container {
                    mounts: &s.volume_mounts,
                    command: &mut s.command,
                    args: &mut s.args,
                    script: &s.script,
                    working_dir: &mut s.working_dir,
                    env: &mut s.env,
                };
                prepare(c, ScriptOwner::Step, i, &run_binds)
            })
            .collect();
        let sidecar_binds: Vec<_> = spec
            .sidecars
            .iter_mut()
            .enumerate()
            .map(|(i, s)| {
                let c = Container {
                    mounts: &s.volume_mounts,
                    command: &mut s.command,
                    args: &mut s.args,
                    script: &s.script,
                    working_dir: &mut s.working_dir,
                    env: &mut s.env,
                };
                prepare(c, ScriptOwner::Sidecar, i, &[])
            })
            .collect();
        let mirror = pod_dir.join("root");
        if sandboxed {
            sandbox::mirror_root(&mirror).map_err(StartError::Sandbox)?;
        }
        let workspace_dir = volume(&Volume::Workspace);
        tektite_entrypoint::init(&InitArgs {
            copy_self_to: None,
            scripts_dir: Some(scripts_dir),
            scripts,
            steps_dir: Some(volume(&Volume::Steps)),
            step_names: spec.steps.iter().map(|s| s.name.clone()).collect(),
            run_dirs: (0..spec.steps.len())
                .map(|i| volume(&Volume::Run(i)))
                .collect(),
            dirs: vec![
                volume(&Volume::Results),
                volume(&Volume::Home),
                volume(&Volume::Downward),
                workspace_dir.clone(),
            ],
        })?;
        let downward = volume(&Volume::Downward);
        let ready_file = downward.join(pod.ready_file().file_name().unwrap_or_default());
        let cancel_file = downward.join(pod.cancel_file().file_name().unwrap_or_default());
        for f in [&ready_file, &cancel_file] {
            fs::write(f, b"").map_err(io_err("cannot write", f))?;
        }

        let mut out = Pod {
            uid: req.uid.clone(),
            spec: TaskSpec::default(),
            steps: Vec::new(),
            sidecars: Vec::new(),
            ready_file,
            cancel_file,
            ready: false,
            cancelled: false,
            sidecars_stopped: false,
        };
        let home = volume(&Volume::Home);
        let env_of = |container: &str,
                      env: &[core::EnvVar],
                      env_from: &[core::EnvFromSource]|
         -> Result<Vec<(String, String)>, StartError> {
            let home = seen(format!("/{}", Volume::Home.mount_path()), &home);
            let mut out = vec![("HOME".to_owned(), home)];
            out.extend(container_env(container, env, env_from, req.sources)?);
            Ok(out)
        };
        // The directory to start in: on this machine, or (sandboxed) a Pod path the
        // sandbox changes to, from the pod directory.
        let cwd = |container: &str, dir: Option<&str>| -> Result<Workdir, StartError> {
            if sandboxed {
                return Ok(Workdir {
                    host: pod_dir.clone(),
                    in_sandbox: Some(tektite_api::step::layout::working_dir(dir)),
                });
            }
            let host = |host: PathBuf| Workdir {
                host,
                in_sandbox: None,
            };
            let Some(dir) = dir.filter(|d| !d.is_empty()) else {
                return Ok(host(workspace_dir.clone()));
            };
            let path = workspace_dir.join(dir); // relative: under /workspace
            if path.starts_with(kubelet_root.parent().unwrap_or(kubelet_root)) {
                fs::create_dir_all(&path).map_err(io_err("cannot create", &path))?;
            } else if !path.is_dir() {
                return Err(StartError::WorkingDir {
                    container: container.into(),
                    dir: dir.into(),
                });
            }
            Ok(host(path))
        };

        // Everything that can be refused is checked before the first process starts.
        let mut sidecar_plans = Vec::new();
        for (s, binds) in spec.sidecars.iter().zip(sidecar_binds) {
            let container = format!("sidecar-{}", s.name);
            let env = env_of(&container, &s.env, &s.env_from)?;
            let dir = cwd(&container, s.working_dir.as_deref())?;
            let mut argv = s.command.clone();
            argv.extend(s.args.iter().cloned());
            sidecar_plans.push((s, argv, env, dir, binds));
        }
        let mut step_plans = Vec::new();
        let task_results: Vec<String> = spec.results.iter().map(|r| r.name.clone()).collect();
        for ((i, s), binds) in spec.steps.iter().enumerate().zip(step_binds) {
            let container = format!("step-{}", s.name);
            let env = env_of(&container, &s.env, &s.env_from)?;
            let dir = cwd(&container, s.working_dir.as_deref())?;
            let mut command = s.command.clone();
            command.extend(s.args.iter().cloned());
            let mut args = EntrypointArgs::new(volume(&Volume::Run(i)).join("out"), command);
            if i == 0 {
                args.wait_files = vec![out.ready_file.clone()];
                args.wait_file_content = true;
            } else {
                args.wait_files = vec![volume(&Volume::Run(i - 1)).join("out")];
            }
            args.step_metadata_dir = Some(volume(&Volume::Steps).join(step_dir_name(&s.name)));
            args.results_dir = Some(volume(&Volume::Results));
            args.results = task_results.clone();
            args.step_results = s.results.iter().map(|r| r.name.clone()).collect();
            args.on_error = s.on_error.unwrap_or(OnError::StopAndFail);
            args.timeout = s
                .timeout
                .as_ref()
                .and_then(|t| t.parse().ok())
                .filter(|t| !t.is_zero());
            args.stdout_path = s
                .stdout_config
                .as_ref()
                .and_then(|c| c.path.as_deref())
                .map(|p| {
                    PathBuf::from(if sandboxed {
                        p.to_owned()
                    } else {
                        rewrites.apply(p)
                    })
                });
            args.stderr_path = s
                .stderr_config
                .as_ref()
                .and_then(|c| c.path.as_deref())
                .map(|p| {
                    PathBuf::from(if sandboxed {
                        p.to_owned()
                    } else {
                        rewrites.apply(p)
                    })
                });
            args.cancel_file = Some(out.cancel_file.clone());
            step_plans.push((s.name.clone(), args, env, dir, binds));
        }

        let exe =
            std::env::current_exe().map_err(io_err("cannot find", Path::new("/proc/self/exe")))?;
        let sandbox_args = |binds: Vec<(PathBuf, String)>, dir: &Workdir| {
            dir.in_sandbox.as_ref().map(|cwd| {
                Sandbox {
                    root: mirror.clone(),
                    binds,
                    cwd: cwd.clone(),
                }
                .to_args()
            })
        };
        for (s, argv, env, dir, binds) in sidecar_plans {
            let cmd = match sandbox_args(binds, &dir) {
                Some(sandbox) => {
                    let mut cmd = Command::new(&exe);
                    cmd.arg(ENTRYPOINT).args(sandbox).arg(EXEC).args(&argv);
                    cmd
                }
                None => {
                    let mut cmd = Command::new(&argv[0]);
                    cmd.args(&argv[1..]);
                    cmd
                }
            };
            let label = format!("sidecar-{}", s.name);
            let proc = spawn(cmd, &env, &dir.host, view, &req.label, &label).map_err(|source| {
                StartError::Io {
                    what: "cannot start sidecar",
                    path: PathBuf::from(&argv[0]),
                    source,
                }
            })?;
            let delay = s
                .readiness_probe
                .as_ref()
                .and_then(|p| p.initial_delay_seconds)
                .unwrap_or(0)
                .max(0) as u64;
            out.sidecars.push(SidecarProc {
                name: s.name.clone(),
                proc,
                probe: probe_of(s),
                not_before: Instant::now() + Duration::from_secs(delay),
                ready: false,
            });
        }
        for (name, args, env, dir, binds) in step_plans {
            let mut cmd = Command::new(&exe);
            cmd.arg(ENTRYPOINT);
            if let Some(sandbox) = sandbox_args(binds, &dir) {
                cmd.args(sandbox);
            }
            cmd.args(args.to_args());
            let proc = match spawn(cmd, &env, &dir.host, view, &req.label, &name) {
                Ok(p) => p,
                Err(source) => {
                    out.kill();
                    return Err(StartError::Io {
                        what: "cannot start the entrypoint",
                        path: exe,
                        source,
                    });
                }
            };
            out.steps.push(proc);
        }
        out.spec = resolved;
        out.poll_ready(view, &req.label);
        Ok(out)
    }

    /// Probes the sidecars not yet ready; once all are, lets the first step start.
    pub fn poll_ready(&mut self, view: &View, label: &str) {
        if self.ready {
            return;
        }
        let now = Instant::now();
        for s in &mut self.sidecars {
            if s.ready || now < s.not_before {
                continue;
            }
            if let Some(status) = s.proc.poll() {
                view.note(&format!(
                    "{label}: sidecar {:?} exited ({status}) before it was ready; the steps start anyway",
                    s.name
                ));
                s.ready = true;
                continue;
            }
            s.ready = match &s.probe {
                Probe::Running => true,
                Probe::Exec(argv) => exec_probe(argv),
                Probe::Tcp(port) => connect(*port).is_some(),
                Probe::Http { port, path } => http_probe(*port, path),
            };
        }
        if self.sidecars.iter().all(|s| s.ready) {
            self.ready = true;
            let _ = write_atomic(&self.ready_file, b"READY");
        }
    }

    /// Tells every step to stop (the entrypoints kill what runs and skip what waits).
    pub fn cancel(&mut self) {
        if !self.cancelled {
            self.cancelled = true;
            let _ = write_atomic(&self.cancel_file, b"cancelled");
            // A step waiting on the ready file must not wait for sidecars any longer.
            if !self.ready {
                self.ready = true;
                let _ = write_atomic(&self.ready_file, b"READY");
            }
        }
    }

    /// Reaps what exited; returns the indices of steps whose entrypoint exited now.
    pub fn reap(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut out = Vec::new();
        for (i, p) in self.steps.iter_mut().enumerate() {
            let before = p.exit.is_some();
            if let Some(status) = p.poll()
                && !before
            {
                out.push((i, status));
            }
        }
        for s in &mut self.sidecars {
            s.proc.poll();
        }
        out
    }

    /// Waits (at most `max`) until every step's output has been printed, so that a task
    /// is reported finished after its logs.
    pub fn wait_logs(&mut self, max: Duration) {
        let deadline = Instant::now() + max;
        while Instant::now() < deadline
            && self
                .steps
                .iter()
                .any(|p| p.logs.iter().any(|t| !t.is_finished()))
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn steps_exited(&mut self) -> bool {
        self.steps.iter_mut().all(|p| p.poll().is_some())
    }

    /// Stops the sidecars (TERM, then KILL after a grace period); called once the steps
    /// are done.
    pub fn stop_sidecars(&mut self) {
        if self.sidecars_stopped {
            return;
        }
        self.sidecars_stopped = true;
        for s in &mut self.sidecars {
            if s.proc.poll().is_none() {
                let _ = killpg(s.proc.pid(), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && self.sidecars.iter_mut().any(|s| s.proc.poll().is_none())
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        for s in &mut self.sidecars {
            if s.proc.poll().is_none() {
                let _ = killpg(s.proc.pid(), Signal::SIGKILL);
                let _ = s.proc.child.wait();
            }
        }
    }

    /// Ends every process of this pod now and waits for them.
    pub fn kill(&mut self) {
        self.cancel();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && self.steps.iter_mut().any(|p| p.poll().is_none()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        for p in &mut self.steps {
            if p.poll().is_none() {
                let _ = killpg(p.pid(), Signal::SIGKILL);
                let _ = p.child.wait();
            }
        }
        self.stop_sidecars();
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if self.steps.iter_mut().any(|p| p.poll().is_none())
            || self.sidecars.iter_mut().any(|s| s.proc.poll().is_none())
        {
            self.kill();
        }
    }
}

fn add_mounts(r: &mut Rewrites, mounts: &[core::VolumeMount], volumes: &BTreeMap<String, PathBuf>) {
    for m in mounts {
        if let Some(host) = volumes.get(&m.name) {
            let host = match &m.sub_path {
                Some(sub) if !sub.is_empty() && !sub.contains("..") => host.join(sub),
                _ => host.clone(),
            };
            r.add(&m.mount_path, &host);
        }
    }
}

fn container_env(
    container: &str,
    env: &[core::EnvVar],
    env_from: &[core::EnvFromSource],
    sources: &Sources,
) -> Result<Vec<(String, String)>, StartError> {
    let mut out = Vec::new();
    let err = |var: &str, why: String| StartError::Env {
        container: container.into(),
        var: var.into(),
        why,
    };
    for from in env_from {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional) = if let Some(c) = &from.config_map_ref {
            ("ConfigMap", c.name.clone(), c.optional == Some(true))
        } else if let Some(s) = &from.secret_ref {
            ("Secret", s.name.clone(), s.optional == Some(true))
        } else {
            continue;
        };
        match sources.all_keys(kind, &name) {
            Ok(pairs) => out.extend(pairs.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v))),
            Err(_) if optional => {}
            Err(e) => return Err(err("envFrom", e.to_string())),
        }
    }
    for e in env {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, None) => String::new(),
            (None, Some(from)) => {
                let (kind, name, key, optional) = if let Some(k) = &from.config_map_key_ref {
                    (
                        "ConfigMap",
                        k.name.clone(),
                        k.key.clone(),
                        k.optional == Some(true),
                    )
                } else if let Some(k) = &from.secret_key_ref {
                    (
                        "Secret",
                        k.name.clone(),
                        k.key.clone(),
                        k.optional == Some(true),
                    )
                } else {
                    return Err(err(
                        &e.name,
                        "fieldRef and resourceFieldRef need a cluster; set a value".into(),
                    ));
                };
                match sources.key(kind, &name, &key) {
                    Ok(v) => v,
                    Err(_) if optional => continue,
                    Err(why) => return Err(err(&e.name, why.to_string())),
                }
            }
        };
        out.push((e.name.clone(), value));
    }
    Ok(out)
}

/// Starts `cmd` in its own process group (a Ctrl-C in the terminal reaches only `tkt`),
/// with its output read line by line into the view.
fn spawn(
    mut cmd: Command,
    env: &[(String, String)],
    dir: &Path,
    view: &View,
    task: &str,
    step: &str,
) -> io::Result<Proc> {
    cmd.envs(
        env.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    )
    .current_dir(dir)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = cmd.spawn().map_err(|e| {
        if e.raw_os_error() == Some(nix::errno::Errno::E2BIG as i32) {
            io::Error::other(
                "its command, args or an env value is longer than one argument may be (128 KiB): pass large values in a script or a file",
            )
        } else {
            e
        }
    })?;
    let mut logs = Vec::new();
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
        let view = view.clone();
        let (task, step) = (task.to_owned(), step.to_owned());
        logs.push(std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        view.log(&task, &step, text.trim_end_matches(['\n', '\r']));
                    }
                }
            }
        }));
    }
    Ok(Proc {
        child,
        exit: None,
        logs,
    })
}

fn probe_of(s: &tektite_api::v1::Sidecar) -> Probe {
    let Some(p) = &s.readiness_probe else {
        return Probe::Running;
    };
    let port = |p: &IntOrString| -> Option<u16> {
        match p {
            IntOrString::Int(i) => u16::try_from(*i).ok(),
            IntOrString::String(name) => s
                .ports
                .iter()
                .find(|cp| cp.name.as_deref() == Some(name))
                .and_then(|cp| u16::try_from(cp.container_port).ok()),
        }
    };
    if let Some(exec) = &p.exec {
        return Probe::Exec(exec.command.clone().unwrap_or_default());
    }
    if let Some(tcp) = &p.tcp_socket
        && let Some(port) = port(&tcp.port)
    {
        return Probe::Tcp(port);
    }
    if let Some(http) = &p.http_get
        && let Some(port) = port(&http.port)
    {
        return Probe::Http {
            port,
            path: http.path.clone().unwrap_or_else(|| "/".into()),
        };
    }
    Probe::Running
}

fn connect(port: u16) -> Option<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok()
}

fn exec_probe(argv: &[String]) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return true;
    };
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An HTTP/1.0 GET on localhost: ready on a 2xx or 3xx status, as the kubelet counts it.
fn http_probe(port: u16, path: &str) -> bool {
    let Some(mut stream) = connect(port) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: tkt-probe\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).unwrap_or(0);
    let head = String::from_utf8_lossy(&head[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| (200..400).contains(&code))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}
