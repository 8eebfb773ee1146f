//! tektite-container: how the kubelet stand-in ([`tektite_tests::kubelet`]) starts one
//! container. It reads a [`tektite_tests::kubelet::ContainerSpec`] (JSON, the file named by
//! its one argument), enters a private mount namespace (inside a user namespace when not
//! root), builds the container's root on a tmpfs (this machine's top-level directories
//! bound in, a `/dev` of its own with the usual devices, and the container's own mounts:
//! volumes, subPaths, read-only ones, the termination-message file), chroots into it and
//! execs the container's command. Every mount dies with the process; nothing is left on
//! the host.
//!
//! A mount point whose parent is one of this machine's own directories and does not exist
//! there (`/etc/maven` on a machine without it) is refused rather than created on the host.
//! Exit code 128 with a message on stderr means the container could not be started.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{Gid, Uid, chdir, chroot, execve};
use tektite_tests::kubelet::ContainerSpec;

/// What a bare image's container sees of this machine: the C library a dynamically linked
/// binary needs, and the file systems a runtime mounts (`/usr` only for its libraries).
const BARE: [&str; 7] = ["lib", "lib64", "lib32", "libx32", "usr", "proc", "sys"];

/// The devices a container runtime gives every container.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: tektite-container SPEC.json");
        std::process::exit(2);
    };
    let spec: ContainerSpec = match fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "tektite-container: cannot read {}: {e}",
                Path::new(&path).display()
            );
            std::process::exit(128);
        }
    };
    let error = start(&spec);
    eprintln!("tektite-container: cannot start the container: {error}");
    std::process::exit(128);
}

/// Enters the container and execs its command; returns only why it could not.
fn start(spec: &ContainerSpec) -> String {
    if let Err(e) = enter(spec) {
        return e;
    }
    let Some(program) = resolve(spec) else {
        return format!(
            "{:?}: executable file not found in $PATH",
            spec.argv.first().map(String::as_str).unwrap_or_default()
        );
    };
    let cstr = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let argv: Vec<_> = spec.argv.iter().map(|a| cstr(a)).collect();
    let env: Vec<_> = spec
        .env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect();
    match execve(&cstr(&program.to_string_lossy()), &argv, &env) {
        Err(e) => format!("exec {}: {e}", program.display()),
        Ok(never) => match never {},
    }
}

fn sys(what: impl std::fmt::Display) -> impl FnOnce(nix::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn bind(host: &Path, target: &Path, read_only: bool) -> Result<(), String> {
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
    )))?;
    if read_only {
        // A remount must keep the flags the mount is locked with in a user namespace.
        let locked = statvfs(target)
            .map(|s| s.flags())
            .map_err(sys(format!("statvfs {}", target.display())))?;
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
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
            .map_err(sys(format!("remount {} read-only", target.display())))?;
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
    // bare image, only the C library and what a runtime mounts.
    for entry in fs::read_dir("/").map_err(io("listing /"))? {
        let entry = entry.map_err(io("listing /"))?;
        let name = entry.file_name();
        let wanted = spec.userland || BARE.iter().any(|b| name == *b);
        let target = root.join(&name);
        let kind = entry.file_type().map_err(io(entry.path().display()))?;
        if !wanted || name == "dev" {
            continue;
        }
        if kind.is_symlink() {
            let to = fs::read_link(entry.path()).map_err(io(entry.path().display()))?;
            std::os::unix::fs::symlink(to, &target).map_err(io(target.display()))?;
        } else if kind.is_dir() && (spec.userland || name != "usr") {
            fs::create_dir(&target).map_err(io(target.display()))?;
            bind(&entry.path(), &target, false)?;
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
    for b in &binds {
        let target = mount_point(root, &b.path, b.host.is_dir())?;
        bind(&b.host, &target, b.read_only)?;
    }
    chroot(root).map_err(sys(format!("chroot {}", root.display())))?;
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    // As a container runtime does, a missing working directory is created.
    fs::create_dir_all(cwd).map_err(io(format!("working directory {cwd}")))?;
    chdir(cwd).map_err(sys(format!("chdir {cwd}")))?;
    Ok(())
}

/// The place under `root` to bind `path` at, made as a directory or an empty file; never
/// inside one of this machine's own directories, where it would be made on the host.
fn mount_point(root: &Path, path: &str, dir: bool) -> Result<PathBuf, String> {
    let target = root.join(path.trim_start_matches('/'));
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
    let host_dir = ancestor != root
        && ancestor
            .strip_prefix(root)
            .ok()
            .and_then(|rel| rel.components().next())
            .is_some_and(|top| top.as_os_str() != "dev" && Path::new("/").join(top).exists());
    if host_dir {
        return Err(format!(
            "mount point {path} would be made in this machine's {} (the stand-in has no image filesystem)",
            Path::new("/")
                .join(ancestor.strip_prefix(root).unwrap_or(ancestor))
                .display()
        ));
    }
    if dir {
        fs::create_dir_all(&target).map_err(io(target.display()))?;
    } else {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io(parent.display()))?;
        }
        fs::write(&target, b"").map_err(io(target.display()))?;
    }
    Ok(target)
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
