//! A private mount namespace per step, so that a step sees the paths a Pod gives it
//! (`/tekton/results`, `/workspace/<name>`, volume mountPaths) while everything else is
//! this machine's own filesystem.
//!
//! Each TaskRun's pod directory gets a `root/` that mirrors `/` entry by entry (empty
//! directories, the same symlinks). A step's process (`tkt entrypoint --sandbox ...`)
//! unshares its mount namespace (with a user namespace when not root), bind-mounts every
//! top-level entry of `/` onto the mirror, binds the pod's volumes at their Pod paths,
//! and chroots into the mirror; host paths keep working inside, so the entrypoint's own
//! markers need no translation. The mounts end with the process: nothing to clean up.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{Gid, Uid, chdir, chroot};

/// Top-level names a Pod defines itself: never mirrored from this machine.
const POD_OWNED: [&str; 2] = ["tekton", "workspace"];

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("bad sandbox arguments: {0}")]
    Args(String),
}

fn io_err<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> SandboxError + 'p {
    move |source| SandboxError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Sys { what, source }
}

/// Where a step's sandbox is and what it binds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// The mirror of `/` in the pod directory.
    pub root: PathBuf,
    /// (host directory, Pod path), parents before children.
    pub binds: Vec<(PathBuf, String)>,
    /// The working directory as a Pod path.
    pub cwd: String,
}

impl Sandbox {
    /// The leading arguments of `tkt entrypoint` that carry this sandbox.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec!["--sandbox-root".into(), self.root.clone().into()];
        for (host, pod) in &self.binds {
            let mut b = OsString::from(pod);
            b.push("=");
            b.push(host);
            out.push("--bind".into());
            out.push(b);
        }
        out.push("--cwd".into());
        out.push(self.cwd.clone().into());
        out
    }

    /// Takes the sandbox arguments off the front of `args`, if there are any.
    pub fn take_from(args: &mut Vec<OsString>) -> Result<Option<Sandbox>, SandboxError> {
        if args.first().is_none_or(|a| a != "--sandbox-root") {
            return Ok(None);
        }
        let mut rest = std::mem::take(args).into_iter();
        let mut s = Sandbox::default();
        while let Some(flag) = rest.next() {
            let mut value = || {
                rest.next()
                    .ok_or_else(|| SandboxError::Args(format!("{flag:?} needs a value")))
            };
            match flag.to_str() {
                Some("--sandbox-root") => s.root = value()?.into(),
                Some("--cwd") => {
                    s.cwd = value()?
                        .into_string()
                        .map_err(|_| SandboxError::Args("--cwd is not UTF-8".into()))?;
                    // The sandbox options end with --cwd; the entrypoint's follow.
                    *args = rest.collect();
                    return Ok(Some(s));
                }
                Some("--bind") => {
                    let v = value()?
                        .into_string()
                        .map_err(|_| SandboxError::Args("--bind is not UTF-8".into()))?;
                    let (pod, host) = v
                        .split_once('=')
                        .ok_or_else(|| SandboxError::Args(format!("--bind {v}: POD=HOST")))?;
                    s.binds.push((host.into(), pod.into()));
                }
                _ => return Err(SandboxError::Args(format!("unexpected {flag:?}"))),
            }
        }
        Err(SandboxError::Args("--cwd missing".into()))
    }

    /// Enters the sandbox: call first thing in a fresh, single-threaded process.
    pub fn enter(&self) -> Result<(), SandboxError> {
        let uid = Uid::current();
        let gid = Gid::current();
        if uid.is_root() {
            unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare(mount namespace)"))?;
        } else {
            unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
                .map_err(sys("unshare(user and mount namespaces)"))?;
            // Keep our own ids inside; no privileges beyond the namespace.
            let write = |path: &str, text: String| {
                fs::write(path, text).map_err(io_err("cannot write", Path::new(path)))
            };
            write("/proc/self/setgroups", "deny".into())?;
            write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
            write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
        }
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(sys("making / private"))?;
        for entry in fs::read_dir(&self.root).map_err(io_err("cannot list", &self.root))? {
            let entry = entry.map_err(io_err("cannot list", &self.root))?;
            let name = entry.file_name();
            let kind = entry
                .file_type()
                .map_err(io_err("cannot stat", &entry.path()))?;
            if kind.is_symlink() || POD_OWNED.iter().any(|p| name == *p) {
                continue;
            }
            let host = Path::new("/").join(&name);
            bind(&host, &entry.path())?;
        }
        for (host, pod) in &self.binds {
            let target = self.root.join(pod.trim_start_matches('/'));
            if host.is_dir() {
                fs::create_dir_all(&target).map_err(io_err("cannot create", &target))?;
            } else if host.exists() {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
                }
                fs::write(&target, b"").map_err(io_err("cannot create", &target))?;
            } else {
                continue; // a volume the pod does not use (no tools copied to /tekton/bin)
            }
            bind(host, &target)?;
        }
        chroot(&self.root).map_err(sys(format!("chroot {}", self.root.display())))?;
        // As in a Pod, a workingDir under /workspace is created when missing.
        if self.cwd.starts_with("/workspace") {
            fs::create_dir_all(&self.cwd).map_err(io_err("cannot create", Path::new(&self.cwd)))?;
        }
        chdir(self.cwd.as_str()).map_err(sys(format!("chdir {}", self.cwd)))?;
        Ok(())
    }
}

fn bind(host: &Path, target: &Path) -> Result<(), SandboxError> {
    mount(
        Some(host),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!(
        "bind {} at {}",
        host.display(),
        target.display()
    )))
}

/// Makes `root` a mirror of `/`: an empty directory (or file) for each entry, the same
/// symlinks, and the Pod's own top-level directories.
pub fn mirror_root(root: &Path) -> Result<(), SandboxError> {
    fs::create_dir_all(root).map_err(io_err("cannot create", root))?;
    let top = Path::new("/");
    for entry in fs::read_dir(top).map_err(io_err("cannot list", top))? {
        let entry = entry.map_err(io_err("cannot list", top))?;
        let name = entry.file_name();
        if POD_OWNED.iter().any(|p| name == *p) {
            continue;
        }
        let target = root.join(&name);
        let kind = entry
            .file_type()
            .map_err(io_err("cannot stat", &entry.path()))?;
        if kind.is_symlink() {
            let to = fs::read_link(entry.path()).map_err(io_err("cannot read", &entry.path()))?;
            symlink(&to, &target).map_err(io_err("cannot link", &target))?;
        } else if kind.is_dir() {
            fs::create_dir(&target).map_err(io_err("cannot create", &target))?;
        } else {
            fs::write(&target, b"").map_err(io_err("cannot create", &target))?;
        }
    }
    for dir in POD_OWNED {
        let d = root.join(dir);
        fs::create_dir_all(&d).map_err(io_err("cannot create", &d))?;
    }
    Ok(())
}

/// Whether this machine lets a process enter a sandbox: tried once, in a child process
/// (`tkt entrypoint --sandbox-check DIR`), so that `tkt` itself stays as it was. `dir`
/// (fresh, in the run's state) holds the trial mirror and is removed here afterwards.
pub fn available(dir: &Path) -> bool {
    let ok = mirror_root(dir).is_ok()
        && std::env::current_exe()
            .ok()
            .and_then(|exe| {
                std::process::Command::new(exe)
                    .arg("entrypoint")
                    .arg(CHECK)
                    .arg(dir)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .ok()
            })
            .is_some_and(|s| s.success());
    // Safe: the child's mounts died with its namespace; here the mirror is empty dirs.
    let _ = fs::remove_dir_all(dir);
    ok
}

/// The argument that asks `tkt entrypoint` only whether a sandbox can be entered.
pub const CHECK: &str = "--sandbox-check";

/// What `tkt entrypoint --sandbox-check DIR` does: enter a sandbox rooted at DIR (already
/// mirrored) and report. Never removes anything: from inside, the mirror's entries are
/// this machine's own directories.
pub fn check(dir: &Path) -> i32 {
    let result = Sandbox {
        root: dir.to_owned(),
        binds: Vec::new(),
        cwd: "/".into(),
    }
    .enter();
    i32::from(result.is_err())
}
