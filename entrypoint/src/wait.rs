//! Waiting for the files that let a step start: the previous step's post file, or the
//! downward-API ready file (which the kubelet replaces by an atomic `..data` symlink swap).
//!
//! One inotify instance, held only while waiting, watches each file's directory; the watch
//! is added before the first check, so no event is lost. When no instance can be had (they
//! are scarce: often 128 per user on a node), the FIFO beside the post file wakes us: we
//! open it before checking, and the writer creates the post file before writing to it, so
//! neither order loses the wake-up. Where there is no FIFO either, a short poll.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use inotify::{Inotify, WatchDescriptor, WatchMask};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use tektite_api::step::WaitMode;
use tektite_api::step::layout::Marker;

use crate::markers;
use crate::signals::{FORWARDED, Signals};

/// How the wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited {
    /// Every file is there: the step may start.
    Ready,
    /// `<file>.err` appeared: the step before failed, so this one is skipped.
    PreviousFailed(PathBuf),
    /// A forwarded signal arrived first: the step must not start.
    Interrupted(Signal),
}

/// Why waiting failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("waiting for {path}: {source}")]
    Poll {
        path: PathBuf,
        #[source]
        source: Errno,
    },
}

/// Re-checks at this interval even when a wake-up source is present: a safety net, never
/// the way a step normally learns that it may start.
const SAFETY_RECHECK: Duration = Duration::from_secs(1);
/// The last resort when neither inotify nor a FIFO can be had.
const SHORT_POLL: Duration = Duration::from_millis(10);

/// The wake-up sources of a finished wait, released right after the command is spawned.
/// Closing the last reference to an inotify instance waits for the kernel's fsnotify grace
/// period (1-20 ms measured here). Closed before the spawn, that wait would delay every
/// step's start; closed by the child at exec, too (its copy would be the last one). So the
/// spawn happens first (the child's copy, close-on-exec, is never the last) and the last
/// reference is dropped on a short-lived thread while the command runs.
#[derive(Default)]
pub struct Held(Vec<Waker>);

impl Held {
    /// Removes the watch at once: the kernel then frees it in the background, so that the
    /// close in [`Held::release`] usually finds nothing left to wait for.
    fn keep(&mut self, mut waker: Waker) {
        if let Waker::Inotify(inotify, watch) = &mut waker {
            let _ = inotify.watches().remove(watch.clone());
        }
        self.0.push(waker);
    }

    pub fn release(self) {
        if !self.0.iter().any(|w| matches!(w, Waker::Inotify(..))) {
            return;
        }
        let closer = std::thread::Builder::new()
            .name("inotify-close".into())
            .stack_size(64 * 1024);
        // Should no thread be had, the closure (and the instance) is dropped here instead.
        let _ = closer.spawn(move || drop(self));
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({} wake-up sources)", self.0.len())
    }
}

/// Waits for each of `files` in turn.
pub fn wait_all(
    files: &[PathBuf],
    content: bool,
    mode: WaitMode,
    signals: &Signals,
) -> Result<(Waited, Held), WaitError> {
    let mut held = Held::default();
    for file in files {
        match wait_one(file, content, mode, signals, &mut held)? {
            Waited::Ready => {}
            other => return Ok((other, held)),
        }
    }
    Ok((Waited::Ready, held))
}

fn wait_one(
    file: &Path,
    content: bool,
    mode: WaitMode,
    signals: &Signals,
    held: &mut Held,
) -> Result<Waited, WaitError> {
    // Cheap first look: a step whose predecessor already finished needs no wake-up source.
    if let Some(done) = check(file, content) {
        return Ok(done);
    }
    let mut waker = Waker::for_file(file, content, mode);
    loop {
        if let Some(done) = check(file, content) {
            held.keep(waker);
            return Ok(done);
        }
        let (fd_ready, interrupted) = {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            if let Some(fd) = waker.fd() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            match poll(&mut fds, waker.timeout()) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(source) => {
                    return Err(WaitError::Poll {
                        path: file.to_owned(),
                        source,
                    });
                }
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            (fds.get(1).is_some_and(ready), ready(&fds[0]))
        };
        if interrupted
            && let Some(s) = signals
                .pending()
                .into_iter()
                .find(|s| FORWARDED.contains(s))
        {
            held.keep(waker);
            return Ok(Waited::Interrupted(s));
        }
        if fd_ready {
            waker.drain();
        }
    }
}

/// Whether `file` (or its error marker) is there.
fn check(file: &Path, content: bool) -> Option<Waited> {
    if let Ok(meta) = fs::metadata(file)
        && (!content || meta.len() > 0)
    {
        return Some(Waited::Ready);
    }
    let err = Marker::Error.path(file);
    err.exists().then_some(Waited::PreviousFailed(err))
}

/// What wakes the waiter up.
pub enum Waker {
    Inotify(Inotify, WatchDescriptor),
    Fifo(File),
    Poll(Duration),
}

impl Waker {
    fn for_file(file: &Path, content: bool, mode: WaitMode) -> Waker {
        match mode {
            WaitMode::Poll(every) => Waker::Poll(every),
            WaitMode::Fifo => Waker::fifo(file, content),
            WaitMode::Auto => match Waker::inotify(file) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!(
                        "tektite-entrypoint: cannot watch {} with inotify ({e}); waiting without it",
                        file.display()
                    );
                    Waker::fifo(file, content)
                }
            },
        }
    }

    fn inotify(file: &Path) -> io::Result<Waker> {
        let inotify = Inotify::init()?;
        let dir = file.parent().unwrap_or(Path::new("."));
        // In a Pod the kubelet made it; locally the step before may not have started yet.
        let _ = fs::create_dir_all(dir);
        // Moves cover the `..data` symlink swap and atomic renames; the rest cover files
        // created and written in place.
        let mask = WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::CLOSE_WRITE
            | WatchMask::MODIFY
            | WatchMask::ATTRIB;
        let watch = inotify.watches().add(dir, mask)?;
        Ok(Waker::Inotify(inotify, watch))
    }

    /// The FIFO beside a post file; the downward ready file (waited for with content) has
    /// none, so it and anything without a FIFO is polled.
    fn fifo(file: &Path, content: bool) -> Waker {
        if content {
            return Waker::Poll(SHORT_POLL);
        }
        let path = Marker::Wake.path(file);
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        markers::make_fifo(&path);
        // Read-write: the FIFO then never reports hang-up between writers (Linux, fifo(7)).
        match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) if f.metadata().is_ok_and(|m| markers::is_fifo(&m)) => Waker::Fifo(f),
            _ => Waker::Poll(SHORT_POLL),
        }
    }

    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            Waker::Inotify(i, _) => Some(i.as_fd()),
            Waker::Fifo(f) => Some(f.as_fd()),
            Waker::Poll(_) => None,
        }
    }

    fn timeout(&self) -> PollTimeout {
        let every = match self {
            Waker::Inotify(..) | Waker::Fifo(_) => SAFETY_RECHECK,
            Waker::Poll(every) => *every,
        };
        PollTimeout::try_from(every).unwrap_or(PollTimeout::MAX)
    }

    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        match self {
            Waker::Inotify(i, _) => while i.read_events(&mut buf).is_ok_and(|e| e.count() > 0) {},
            Waker::Fifo(f) => while f.read(&mut buf).is_ok_and(|n| n > 0) {},
            Waker::Poll(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_post_file_is_ready_and_an_error_marker_skips() {
        let dir = tempfile::tempdir().unwrap();
        let post = dir.path().join("out");
        assert_eq!(check(&post, false), None);
        fs::write(Marker::Error.path(&post), "").unwrap();
        assert_eq!(
            check(&post, false),
            Some(Waited::PreviousFailed(Marker::Error.path(&post)))
        );
        fs::write(&post, "").unwrap();
        assert_eq!(check(&post, false), Some(Waited::Ready));
    }

    #[test]
    fn content_waits_for_a_non_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        fs::write(&ready, "").unwrap();
        assert_eq!(check(&ready, true), None);
        assert_eq!(check(&ready, false), Some(Waited::Ready));
        fs::write(&ready, "true").unwrap();
        assert_eq!(check(&ready, true), Some(Waited::Ready));
    }

    #[test]
    fn without_inotify_a_post_file_is_waited_for_on_its_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let post = dir.path().join("out");
        assert!(matches!(Waker::fifo(&post, false), Waker::Fifo(_)));
        assert!(markers::is_fifo(
            &fs::metadata(Marker::Wake.path(&post)).unwrap()
        ));
        // The ready file has no FIFO: it is polled.
        assert!(matches!(Waker::fifo(&post, true), Waker::Poll(SHORT_POLL)));
    }

    #[test]
    fn a_directory_that_cannot_hold_a_fifo_falls_back_to_polling() {
        let post = Path::new("/proc/self/no-such-dir/out");
        assert!(matches!(Waker::fifo(post, false), Waker::Poll(SHORT_POLL)));
    }
}
