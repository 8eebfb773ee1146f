//! How the local kubelet starts one container: `tkt container SPEC.json` reads a
//! [`ContainerSpec`], enters a private mount namespace (inside a user namespace when not
//! root), builds the container's root on a tmpfs (this machine's top-level directories
//! bound in, read-only but `/tmp`, a `/dev` of its own with the usual devices, and the
//! container's own mounts:
//! volumes, subPaths, read-only ones, the termination-message file), chroots into it and
//! execs the container's command. Every mount dies with the process; nothing is left on
//! the host.
//!
//! A mount point whose parent is one of this machine's own directories and does not exist
//! there (`/etc/maven` on a machine without it) is never created on the host: that
//! directory becomes the container's own first (a tmpfs holding its entries).
//! Exit code 128 with a message on stderr ([`START_ERROR`]) means the container could not
//! be started.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{Gid, Uid, chdir, chroot, execve};
use serde::{Deserialize, Serialize};

/// One bind mount of a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// What is bound: a directory or a file on this machine.
    pub host: PathBuf,
    /// Where, in the container.
    pub path: String,
    pub read_only: bool,
}

/// What `tkt container` is told: the container's root, mounts and process.
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

/// The subcommand of `tkt` that starts a container.
pub const SUBCOMMAND: &str = "container";
/// The prefix of what `tkt container` prints when it cannot start the container.
pub const START_ERROR: &str = "tkt container:";
/// Its exit code then.
pub const START_ERROR_CODE: i32 = 128;
/// After [`SUBCOMMAND`]: read the spec from stdin.
pub const FROM_STDIN: &str = "-";
/// After [`SUBCOMMAND`]: only enter a container rooted at the directory that follows, and
/// exit 0 if that works.
const CHECK: &str = "--check";

/// What a bare image's container sees of this machine: the C library a dynamically linked
/// binary needs, and the file systems a runtime mounts (`/usr` only for its libraries).
const BARE: [&str; 7] = ["lib", "lib64", "lib32", "libx32", "usr", "proc", "sys"];

/// The devices a container runtime gives every container.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// `tkt container SPEC.json` (`-`: the spec on stdin; or `tkt container --check DIR`);
/// returns only on failure, with the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    // A session of its own, as a runtime gives a container: the kubelet ends every
    // process of it, whatever process group a process made.
    let _ = nix::unistd::setsid();
    if args.first().is_some_and(|a| a == CHECK) {
        let Some(dir) = args.get(1) else {
            return 2;
        };
        let spec = ContainerSpec {
            root: PathBuf::from(dir),
            binds: Vec::new(),
            cwd: "/".into(),
            argv: Vec::new(),
            env: Vec::new(),
            userland: true,
        };
        return i32::from(enter(&spec).is_err());
    }
    let Some(path) = args.first() else {
        eprintln!("usage: tkt container SPEC.json");
        return 2;
    };
    let read = if path == FROM_STDIN {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map(|_| b)
    } else {
        fs::read(path)
    };
    let spec: ContainerSpec = match read
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "{START_ERROR} cannot read {}: {e}",
                Path::new(path).display()
            );
            return START_ERROR_CODE;
        }
    };
    let error = match start(&spec) {
        Ok(code) => return code,
        Err(e) => e,
    };
    eprintln!("{START_ERROR} cannot start the container: {error}");
    START_ERROR_CODE
}

/// The name `tkt` answers to as the entrypoint (`/tektite/entrypoint`,
/// `/tekton/bin/entrypoint`).
pub const ENTRYPOINT: &str = "entrypoint";

/// Whether `program`, called as `argv0`, is this very `tkt` as the entrypoint: then it
/// runs here, as the exec would have run it, without loading the binary again.
fn is_own_entrypoint(program: &Path, argv0: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let same = |a: &fs::Metadata, b: &fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == ENTRYPOINT)
        && matches!(
            (fs::metadata(program), fs::metadata("/proc/self/exe")),
            (Ok(a), Ok(b)) if same(&a, &b)
        )
}

/// Whether this machine lets `tkt` (at `exe`) start containers: root, or unprivileged
/// user namespaces. `dir` is an empty scratch directory, removed afterwards.
pub fn available(exe: &Path, dir: &Path) -> bool {
    let ok = fs::create_dir_all(dir).is_ok()
        && std::process::Command::new(exe)
            .args([SUBCOMMAND, CHECK])
            .arg(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    // The child's mounts died with its namespace: here the directory is empty.
    let _ = fs::remove_dir(dir);
    ok
}

/// Enters the container and execs its command (or, when that is `tkt` as the entrypoint,
/// runs it here and returns its exit code); `Err` is why it could not.
fn start(spec: &ContainerSpec) -> Result<i32, String> {
    enter(spec)?;
    let Some(program) = resolve(spec) else {
        return Err(format!(
            "{:?}: executable file not found in $PATH",
            spec.argv.first().map(String::as_str).unwrap_or_default()
        ));
    };
    let argv0 = spec.argv.first().map(String::as_str).unwrap_or_default();
    if is_own_entrypoint(&program, argv0) {
        let args = spec.argv[1..].iter().map(OsString::from).collect();
        return Ok(tektite_entrypoint::run_in(args, spec.env.clone()));
    }
    let cstr = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let argv: Vec<_> = spec.argv.iter().map(|a| cstr(a)).collect();
    let env: Vec<_> = spec
        .env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect();
    match execve(&cstr(&program.to_string_lossy()), &argv, &env) {
        Err(e) => Err(format!("exec {}: {e}", program.display())),
        Ok(never) => match never {},
    }
}

fn sys(what: impl std::fmt::Display) -> impl FnOnce(nix::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// Binds `host` at `target`, read-only when asked, keeping the flags the mount has
/// (nosuid, nodev, noexec: in a user namespace they are locked). Called some hundred times
/// per container (a step's Pod mounts every step's run directory): nothing here is
/// formatted unless it fails.
fn bind(host: &Path, target: &Path, read_only: bool) -> Result<(), String> {
    mount(
        Some(host),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("bind {} at {}: {e}", host.display(), target.display()))?;
    if read_only {
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        let locked = statvfs(target)
            .map(|s| s.flags())
            .map_err(|e| format!("statvfs {}: {e}", target.display()))?;
        for (have, keep) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        ] {
            if locked.contains(have) {
                flags |= keep;
            }
        }
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("remount {} read-only: {e}", target.display()))?;
    }
    Ok(())
}

fn enter(spec: &ContainerSpec) -> Result<(), String> {
    let (uid, gid) = (Uid::current(), Gid::current());
    if uid.is_root() {
        unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare(mount namespace)"))?;
    } else {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(sys("unshare(user and mount namespaces)"))?;
        fs::write("/proc/self/setgroups", "deny").map_err(io("/proc/self/setgroups"))?;
        fs::write("/proc/self/uid_map", format!("0 {uid} 1")).map_err(io("uid_map"))?;
        fs::write("/proc/self/gid_map", format!("0 {gid} 1")).map_err(io("gid_map"))?;
    }
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("making / private"))?;
    let root = &spec.root;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .map_err(sys(format!("tmpfs at {}", root.display())))?;
    // This machine's top-level directories, but /dev, which is the container's own; of a
    // bare image, only the C library and what a runtime mounts. `from_host`: those a mount
    // point could be made in on the host (not the API file systems).
    let mut from_host: Vec<OsString> = Vec::new();
    for entry in fs::read_dir("/").map_err(io("listing /"))? {
        let entry = entry.map_err(io("listing /"))?;
        let name = entry.file_name();
        let wanted = spec.userland || BARE.iter().any(|b| name == *b);
        let target = root.join(&name);
        let kind = entry.file_type().map_err(io(entry.path().display()))?;
        if !wanted || name == "dev" {
            continue;
        }
        if (kind.is_symlink() || kind.is_dir()) && name != "proc" && name != "sys" {
            from_host.push(name.clone());
        }
        if kind.is_symlink() {
            let to = fs::read_link(entry.path()).map_err(io(entry.path().display()))?;
            std::os::unix::fs::symlink(to, &target).map_err(io(target.display()))?;
        } else if kind.is_dir() && (spec.userland || name != "usr") {
            fs::create_dir(&target).map_err(io(target.display()))?;
            // An image's files are its own; this machine's are not the container's to
            // change: read-only, but /tmp (and the API file systems, whose own rules hold).
            let writable = ["tmp", "proc", "sys"].iter().any(|w| name == *w);
            bind(&entry.path(), &target, !writable)?;
        }
    }
    if !spec.userland {
        for lib in ["usr/lib", "usr/lib64", "usr/lib32"] {
            let host = Path::new("/").join(lib);
            if host.is_dir() {
                let target = root.join(lib);
                fs::create_dir_all(&target).map_err(io(target.display()))?;
                bind(&host, &target, false)?;
            }
        }
    }
    let dev = root.join("dev");
    fs::create_dir(&dev).map_err(io(dev.display()))?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    )
    .map_err(sys("tmpfs at /dev"))?;
    for device in DEVICES {
        let host = Path::new("/dev").join(device);
        if host.exists() {
            let target = dev.join(device);
            fs::write(&target, b"").map_err(io(target.display()))?;
            bind(&host, &target, false)?;
        }
    }
    for dir in ["pts", "shm"] {
        let host = Path::new("/dev").join(dir);
        if host.is_dir() {
            let target = dev.join(dir);
            fs::create_dir(&target).map_err(io(target.display()))?;
            bind(&host, &target, false)?;
        }
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link)).map_err(io(link))?;
    }

    let mut binds = spec.binds.clone();
    binds.sort_by_key(|b| b.path.matches('/').count());
    let mut shadowed = Vec::new();
    let mut bound: Vec<PathBuf> = Vec::new();
    for b in &binds {
        let dir = b.host.is_dir();
        let target = mount_point(root, &b.path, dir, &from_host, &bound, &mut shadowed)?;
        bind(&b.host, &target, b.read_only)?;
        bound.push(target);
    }
    chroot(root).map_err(sys(format!("chroot {}", root.display())))?;
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    // As a container runtime does, a missing working directory is created.
    fs::create_dir_all(cwd).map_err(io(format!("working directory {cwd}")))?;
    chdir(cwd).map_err(sys(format!("chdir {cwd}")))?;
    Ok(())
}

/// The place under `root` to bind `path` at, made as a directory or an empty file; never
/// inside one of this machine's own directories, where it would be made on the host: such
/// a directory is shadowed first (see [`shadow`]), once (`shadowed`). `from_host` are the
/// top-level directories bound in from this machine; `bound` the container's mounts made
/// so far, inside which a mount point is made as a runtime does.
fn mount_point(
    root: &Path,
    path: &str,
    dir: bool,
    from_host: &[OsString],
    bound: &[PathBuf],
    shadowed: &mut Vec<PathBuf>,
) -> Result<PathBuf, String> {
    let relative = Path::new(path.trim_start_matches('/'));
    let target = root.join(relative);
    let make = |target: &Path| {
        if dir {
            return fs::create_dir_all(target).map_err(io(target.display()));
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io(parent.display()))?;
        }
        fs::write(target, b"").map_err(io(target.display()))
    };
    // Most mount points (/tekton/..., /workspace/...) are on the container's own tmpfs: no
    // host directory to look for (a Pod's steps each mount every step's run directory).
    let top = relative.components().next().map(|c| c.as_os_str());
    if !top.is_some_and(|t| from_host.iter().any(|h| h == t)) {
        if !dir && target.exists() {
            return Ok(target);
        }
        make(&target)?;
        return Ok(target);
    }
    if target.exists() {
        return Ok(target);
    }
    // The deepest existing ancestor must be on the container's tmpfs, not the host's.
    let mut existing = target.parent();
    while let Some(p) = existing {
        if p.exists() {
            break;
        }
        existing = p.parent();
    }
    let ancestor = existing.unwrap_or(root);
    let host_dir = ancestor != root;
    // Our own tmpfs (a bare image's directories, a shadow) and the container's volumes
    // take mount points as they are; only a bind of this machine's directory is shadowed.
    let on_host = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        matches!((fs::metadata(p), fs::metadata(root)), (Ok(a), Ok(b)) if a.dev() != b.dev())
    };
    // (Checked in this order: a step's Pod mounts every step's run directory, so `bound`
    // grows with the steps and is looked at only when it matters.)
    let in_volume = || bound.iter().any(|b| ancestor.starts_with(b));
    if host_dir && on_host(ancestor) && !in_volume() && !shadowed.iter().any(|s| s == ancestor) {
        shadow(root, ancestor)?;
        shadowed.push(ancestor.to_owned());
    }
    make(&target)?;
    Ok(target)
}

/// Makes `at` (under `root`, one of this machine's directories bound in) the container's
/// own, as an image's directory is: a tmpfs on it holding each of the host directory's
/// entries (bound in, symbolic links copied), so that a mount point can be made in it
/// without touching the host (`/etc/maven`, `/var/secret`).
fn shadow(root: &Path, at: &Path) -> Result<(), String> {
    let host = Path::new("/").join(at.strip_prefix(root).unwrap_or(at));
    let entries: Vec<fs::DirEntry> = fs::read_dir(&host)
        .map_err(io(host.display()))?
        .collect::<Result<_, _>>()
        .map_err(io(host.display()))?;
    mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .map_err(sys(format!("tmpfs at {}", at.display())))?;
    for e in entries {
        let (from, to) = (e.path(), at.join(e.file_name()));
        let kind = e.file_type().map_err(io(from.display()))?;
        if kind.is_symlink() {
            let link = fs::read_link(&from).map_err(io(from.display()))?;
            std::os::unix::fs::symlink(link, &to).map_err(io(to.display()))?;
            continue;
        }
        if kind.is_dir() {
            fs::create_dir(&to).map_err(io(to.display()))?;
        } else {
            fs::write(&to, b"").map_err(io(to.display()))?;
        }
        bind(&from, &to, false)?;
    }
    Ok(())
}

/// The program to exec: `argv[0]` as a path, or found on the container's `PATH`.
fn resolve(spec: &ContainerSpec) -> Option<PathBuf> {
    let first = spec.argv.first()?;
    if first.contains('/') {
        return Some(PathBuf::from(first));
    }
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|d| Path::new(d).join(first))
        .find(|p| p.is_file())
}
