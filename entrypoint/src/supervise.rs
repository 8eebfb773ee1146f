//! Running the step's command: spawned in its own process group, with SIGTERM and SIGINT
//! passed on to that group, its timeout and the cancel file enforced by killing the group,
//! every child reaped (orphans too: this process is their subreaper, as PID 1 of a
//! container would be), and its
//! stdout/stderr copied to files when the step asks for it. One poll loop, no threads.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::signals::{FORWARDED, Signals};
use crate::wait::Held;

/// What the step asks of its supervision.
#[derive(Debug, Default)]
pub struct Limits<'a> {
    pub timeout: Option<Duration>,
    pub cancel_file: Option<&'a Path>,
    pub stdout_path: Option<&'a Path>,
    pub stderr_path: Option<&'a Path>,
    /// Variables set for the command over the entrypoint's own.
    pub env: &'a [(std::ffi::OsString, std::ffi::OsString)],
}

/// How the command ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    /// The exit code as a shell reports it: the process's own, or 128 + the signal.
    pub code: i32,
    /// Set when we killed it.
    pub killed: Option<Kill>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    Timeout,
    Cancelled,
}

/// Why the command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("command {command:?} not found{}", path_hint(.command))]
    NotFound { command: String },
    #[error("command {command:?} cannot be executed: {source}")]
    NotExecutable {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open {path} for the step's output: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("waiting for the command failed: {0}")]
    Wait(#[source] Errno),
}

fn path_hint(command: &str) -> String {
    if command.contains('/') {
        String::new()
    } else {
        format!(
            " in PATH ({})",
            crate::env::var_os("PATH")
                .map_or_else(|| "unset".into(), |p| p.to_string_lossy().into_owned())
        )
    }
}

/// How often the cancel file is looked at while the command runs (no inotify instance is
/// held while a step runs: they are scarce on a node).
const CANCEL_POLL: Duration = Duration::from_millis(100);
/// How long output is still copied after the command exited, for what its leftover
/// processes had written.
const DRAIN: Duration = Duration::from_millis(500);

/// Runs the command; `held` (the finished wait's wake-up sources) is released as soon as
/// the command is spawned.
pub fn run(
    command: &[String],
    limits: &Limits,
    signals: &Signals,
    held: Held,
) -> Result<Ended, SuperviseError> {
    let (program, args) = command.split_first().expect("parse guarantees a command");
    let stdout_copy = open_copy(limits.stdout_path)?;
    let stderr_copy = open_copy(limits.stderr_path)?;
    // Orphans of the step come to us (as they would to PID 1 of the container) and are
    // reaped below; without this, outside a container they would go to the host's init.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut cmd = Command::new(program);
    crate::env::apply(&mut cmd);
    cmd.envs(limits.env.iter().map(|(k, v)| (k, v)));
    cmd.args(args).process_group(0);
    if stdout_copy.is_some() {
        cmd.stdout(Stdio::piped());
    }
    if stderr_copy.is_some() {
        cmd.stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => SuperviseError::NotFound {
            command: program.clone(),
        },
        io::ErrorKind::PermissionDenied => SuperviseError::NotExecutable {
            command: program.clone(),
            source,
        },
        _ => SuperviseError::Spawn {
            command: program.clone(),
            source,
        },
    })?;
    held.release();
    let pid = Pid::from_raw(child.id() as i32);
    let mut out = child
        .stdout
        .take()
        .zip(stdout_copy)
        .map(|(pipe, file)| Tee::new(Pipe::Out(pipe), file, Sink::Stdout));
    let mut err = child
        .stderr
        .take()
        .zip(stderr_copy)
        .map(|(pipe, file)| Tee::new(Pipe::Err(pipe), file, Sink::Stderr));

    let started = Instant::now();
    let deadline = limits.timeout.filter(|t| !t.is_zero()).map(|t| started + t);
    let mut status: Option<i32> = None;
    let mut killed = None;
    let mut drain_until = None;
    loop {
        let now = Instant::now();
        let open_pipes =
            out.as_ref().is_some_and(|t| t.open) || err.as_ref().is_some_and(|t| t.open);
        if status.is_some() && (!open_pipes || drain_until.is_some_and(|d| now >= d)) {
            break;
        }
        let wait = match (status, drain_until) {
            (Some(_), Some(until)) => Some(until.saturating_duration_since(now)),
            _ => {
                let to_deadline = deadline.map(|d| d.saturating_duration_since(now));
                let cancel = limits.cancel_file.map(|_| CANCEL_POLL);
                to_deadline.into_iter().chain(cancel).min()
            }
        };
        let timeout = wait.map_or(PollTimeout::NONE, |w| {
            PollTimeout::try_from(w.max(Duration::from_millis(1))).unwrap_or(PollTimeout::MAX)
        });
        let (sig_ready, out_ready, err_ready) = {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let out_at = push_pipe(&mut fds, out.as_ref());
            let err_at = push_pipe(&mut fds, err.as_ref());
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(SuperviseError::Wait(e)),
            }
            let ready = |at: Option<usize>| {
                at.is_some_and(|i| fds[i].revents().is_some_and(|r| !r.is_empty()))
            };
            (ready(Some(0)), ready(out_at), ready(err_at))
        };
        if out_ready && let Some(t) = out.as_mut() {
            t.copy();
        }
        if err_ready && let Some(t) = err.as_mut() {
            t.copy();
        }
        if sig_ready {
            for s in signals.pending() {
                if s == Signal::SIGCHLD {
                    if let Some(code) = reap(pid)? {
                        status.get_or_insert(code);
                        // Like a container whose main process ended: nothing of the step
                        // outlives it.
                        let _ = killpg(pid, Signal::SIGKILL);
                        drain_until = Some(Instant::now() + DRAIN);
                    }
                } else if FORWARDED.contains(&s) && status.is_none() {
                    let _ = killpg(pid, s);
                }
            }
        }
        if status.is_none() && killed.is_none() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                killed = Some(Kill::Timeout);
            } else if limits.cancel_file.is_some_and(cancel_requested) {
                killed = Some(Kill::Cancelled);
            }
            if killed.is_some() {
                let _ = killpg(pid, Signal::SIGKILL);
            }
        }
    }
    drop(child);
    Ok(Ended {
        code: status.expect("the loop ends only once the command was reaped"),
        killed,
    })
}

/// Reaps every child that has ended (orphans re-parented to PID 1 included); returns the
/// step's exit code once it is among them.
fn reap(step: Pid) -> Result<Option<i32>, SuperviseError> {
    let mut found = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == step => found = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == step => found = Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(found),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(SuperviseError::Wait(e)),
        }
    }
}

/// The cancel file is a downward-API projection of an annotation: empty until set.
pub(crate) fn cancel_requested(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

fn open_copy(path: Option<&Path>) -> Result<Option<File>, SuperviseError> {
    let Some(path) = path else { return Ok(None) };
    let err = |source| SuperviseError::Output {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    File::create(path).map(Some).map_err(err)
}

fn push_pipe<'a>(fds: &mut Vec<PollFd<'a>>, tee: Option<&'a Tee>) -> Option<usize> {
    let tee = tee.filter(|t| t.open)?;
    fds.push(PollFd::new(tee.pipe.as_fd(), PollFlags::POLLIN));
    Some(fds.len() - 1)
}

enum Pipe {
    Out(ChildStdout),
    Err(ChildStderr),
}

impl Pipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Pipe::Out(p) => p.as_fd(),
            Pipe::Err(p) => p.as_fd(),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Pipe::Out(p) => p.read(buf),
            Pipe::Err(p) => p.read(buf),
        }
    }
}

enum Sink {
    Stdout,
    Stderr,
}

/// One of the command's output streams, passed through and copied to a file.
struct Tee {
    pipe: Pipe,
    file: File,
    sink: Sink,
    open: bool,
}

impl Tee {
    fn new(pipe: Pipe, file: File, sink: Sink) -> Self {
        Self {
            pipe,
            file,
            sink,
            open: true,
        }
    }

    /// Copies what is available (poll said so, so this read does not block).
    fn copy(&mut self) {
        let mut buf = [0u8; 64 * 1024];
        match self.pipe.read(&mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Ok(0) | Err(_) => self.open = false,
            Ok(n) => {
                let chunk = &buf[..n];
                let _ = match self.sink {
                    Sink::Stdout => io::stdout()
                        .write_all(chunk)
                        .and_then(|()| io::stdout().flush()),
                    Sink::Stderr => io::stderr().write_all(chunk),
                };
                let _ = self.file.write_all(chunk);
            }
        }
    }
}
