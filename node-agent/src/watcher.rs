//! One inotify instance for every pod on the node. Watches `<root>/pods/`, each pod's
//! `volumes/kubernetes.io~empty-dir/`, and each step's run volume
//! (`tekton-internal-run-<i>`), and turns the entrypoint's markers into [`Event`]s.
//!
//! Every watch is followed by a scan of its directory (what happened before the watch
//! existed is otherwise lost); a queue overflow triggers a full rescan; watches of deleted
//! directories are forgotten when the kernel drops them (`IN_IGNORED`). Events are
//! deduplicated per pod UID + step + kind, so rescans do not repeat them; after a restart,
//! the first scan rebuilds every live pod's state from its files alone.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tektite_api::step::DEFAULT_RESULTS_LIMIT;
use tektite_api::step::layout::{EMPTY_DIR_PLUGIN, Marker, POST_FILE, Volume};

use crate::event::{Event, EventKind};
use crate::state_file;

/// Where and what to watch.
#[derive(Clone, Debug)]
pub struct Config {
    /// The kubelet's root directory (`/var/lib/kubelet`); pods live under `<root>/pods`.
    pub root: PathBuf,
    /// Upper bound on one TaskRun's results, as the entrypoints are configured.
    pub results_limit: u64,
}

impl Config {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            results_limit: DEFAULT_RESULTS_LIMIT,
        }
    }
}

/// Why the watcher cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot create the inotify instance: {0}")]
    Init(#[source] io::Error),
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading inotify events: {0}")]
    Read(#[source] io::Error),
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Queue overflows, each answered by a full rescan.
    pub overflows: u64,
    /// Watches that could not be added (other than for directories already gone).
    pub watch_failures: u64,
}

/// What a watched directory is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Dir {
    Pods,
    Pod(String),
    Volumes(String),
    EmptyDirs(String),
    Run(String, usize),
}

/// The events already reported for one tektite pod.
#[derive(Debug, Default)]
struct PodSeen {
    reported: HashSet<(usize, EventKind)>,
}

pub struct Watcher {
    inotify: Inotify,
    config: Config,
    dirs: HashMap<WatchDescriptor, Dir>,
    /// Pods with at least one run volume: the only ones reported.
    pods: HashMap<String, PodSeen>,
    pending: Vec<Event>,
    stats: Stats,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("root", &self.config.root)
            .field("watches", &self.dirs.len())
            .field("pods", &self.pods.len())
            .finish()
    }
}

const DIR_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::ONLYDIR);
const RUN_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::ONLYDIR);

impl Watcher {
    /// Starts watching and scans what is already there; the events found are returned by
    /// the first [`Watcher::next_events`].
    pub fn new(config: Config) -> Result<Self, WatchError> {
        let inotify = Inotify::init().map_err(WatchError::Init)?;
        let mut w = Self {
            inotify,
            config,
            dirs: HashMap::new(),
            pods: HashMap::new(),
            pending: Vec::new(),
            stats: Stats::default(),
            buf: vec![0; 64 * 1024],
        };
        let pods = w.pods_dir();
        let wd = w
            .inotify
            .watches()
            .add(&pods, DIR_MASK)
            .map_err(|source| WatchError::Watch { path: pods, source })?;
        w.dirs.insert(wd, Dir::Pods);
        w.rescan();
        Ok(w)
    }

    fn pods_dir(&self) -> PathBuf {
        self.config.root.join("pods")
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Directories watched right now.
    pub fn watch_count(&self) -> usize {
        self.dirs.len()
    }

    /// tektite pods known right now.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Waits up to `timeout` (forever when `None`) for markers and returns what they mean.
    /// May return an empty list (a timeout, or only uninteresting changes).
    pub fn next_events(&mut self, timeout: Option<Duration>) -> Result<Vec<Event>, WatchError> {
        if self.pending.is_empty() {
            let timeout = timeout.map_or(PollTimeout::NONE, |t| {
                PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX)
            });
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(WatchError::Read(e.into())),
            }
            self.read_available()?;
        }
        Ok(std::mem::take(&mut self.pending))
    }

    /// Handles every queued inotify event without blocking.
    fn read_available(&mut self) -> Result<(), WatchError> {
        loop {
            let mut buf = std::mem::take(&mut self.buf);
            let raw: Vec<(WatchDescriptor, EventMask, Option<String>)> =
                match self.inotify.read_events(&mut buf) {
                    Ok(events) => events
                        .map(|e| {
                            (
                                e.wd,
                                e.mask,
                                e.name.and_then(OsStr::to_str).map(str::to_owned),
                            )
                        })
                        .collect(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Vec::new(),
                    Err(e) => {
                        self.buf = buf;
                        return Err(WatchError::Read(e));
                    }
                };
            self.buf = buf;
            if raw.is_empty() {
                return Ok(());
            }
            for (wd, mask, name) in raw {
                self.handle(wd, mask, name);
            }
        }
    }

    fn handle(&mut self, wd: WatchDescriptor, mask: EventMask, name: Option<String>) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            self.stats.overflows += 1;
            tracing::warn!("inotify queue overflowed; rescanning every pod");
            self.rescan();
            return;
        }
        if mask.contains(EventMask::IGNORED) {
            self.dirs.remove(&wd);
            return;
        }
        let (Some(dir), Some(name)) = (self.dirs.get(&wd).cloned(), name) else {
            return;
        };
        let appeared =
            mask.intersects(EventMask::CREATE | EventMask::MOVED_TO | EventMask::CLOSE_WRITE);
        let vanished = mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM);
        match dir {
            Dir::Pods if appeared => self.add_pod(&name),
            Dir::Pods if vanished => self.pod_gone(&name),
            Dir::Pod(uid) if appeared && name == "volumes" => self.add_volumes(&uid),
            Dir::Volumes(uid) if appeared && name == EMPTY_DIR_PLUGIN => self.add_empty_dirs(&uid),
            Dir::EmptyDirs(uid) if appeared => {
                if let Some(Volume::Run(step)) = Volume::from_name(&name) {
                    self.add_run(&uid, step);
                }
            }
            Dir::Run(uid, step) if appeared => self.on_marker(&uid, step, &name),
            _ => {}
        }
    }

    /// Everything again from the top: after an overflow, and at start.
    fn rescan(&mut self) {
        let on_disk: Vec<String> = list(&self.pods_dir());
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !on_disk.contains(uid))
            .cloned()
            .collect();
        for uid in gone {
            self.pod_gone(&uid);
        }
        for uid in on_disk {
            self.add_pod(&uid);
        }
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    fn add_pod(&mut self, uid: &str) {
        if self.watch(self.pod_dir(uid), DIR_MASK, Dir::Pod(uid.into()))
            && self.pod_dir(uid).join("volumes").is_dir()
        {
            self.add_volumes(uid);
        }
    }

    fn add_volumes(&mut self, uid: &str) {
        let dir = self.pod_dir(uid).join("volumes");
        if self.watch(dir.clone(), DIR_MASK, Dir::Volumes(uid.into()))
            && dir.join(EMPTY_DIR_PLUGIN).is_dir()
        {
            self.add_empty_dirs(uid);
        }
    }

    fn add_empty_dirs(&mut self, uid: &str) {
        let dir = self.pod_dir(uid).join("volumes").join(EMPTY_DIR_PLUGIN);
        if self.watch(dir.clone(), DIR_MASK, Dir::EmptyDirs(uid.into())) {
            for name in list(&dir) {
                if let Some(Volume::Run(step)) = Volume::from_name(&name) {
                    self.add_run(uid, step);
                }
            }
        }
    }

    fn run_dir(&self, uid: &str, step: usize) -> PathBuf {
        self.pod_dir(uid)
            .join("volumes")
            .join(EMPTY_DIR_PLUGIN)
            .join(Volume::Run(step).name())
    }

    fn add_run(&mut self, uid: &str, step: usize) {
        self.pods.entry(uid.to_owned()).or_default();
        let dir = self.run_dir(uid, step);
        if self.watch(dir.clone(), RUN_MASK, Dir::Run(uid.into(), step)) {
            // Markers written before the watch existed. The state record first, so a step
            // seen finished reports its start before its end.
            let names = list(&dir);
            let state = Marker::State
                .path(Path::new(POST_FILE))
                .display()
                .to_string();
            if names.contains(&state) {
                self.on_marker(uid, step, &state);
            }
            for name in names.iter().filter(|n| **n != state) {
                self.on_marker(uid, step, name);
            }
        }
    }

    /// Adds a watch; false when the directory is gone (or cannot be watched).
    fn watch(&mut self, path: PathBuf, mask: WatchMask, dir: Dir) -> bool {
        match self.inotify.watches().add(&path, mask) {
            Ok(wd) => {
                self.dirs.insert(wd, dir);
                true
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::ENOENT | nix::libc::ENOTDIR)
                ) =>
            {
                false
            }
            Err(e) => {
                self.stats.watch_failures += 1;
                tracing::error!(path = %path.display(), error = %e, "cannot watch a pod directory");
                false
            }
        }
    }

    fn on_marker(&mut self, uid: &str, step: usize, name: &str) {
        let Some(marker) = Marker::from_file_name(name) else {
            return;
        };
        let state_path = Marker::State.path(&self.run_dir(uid, step).join(POST_FILE));
        match marker {
            Marker::Wake => {}
            Marker::State => {
                // The start record (or the final one, ahead of its post file).
                if let Ok(state) = state_file::read(&state_path, self.config.results_limit) {
                    self.report_started(uid, step, &state);
                }
            }
            Marker::Post | Marker::Error => {
                match state_file::read(&state_path, self.config.results_limit) {
                    Ok(state) if state.is_finished() => {
                        self.report_started(uid, step, &state);
                        self.report(Event::StepFinished {
                            pod_uid: uid.into(),
                            step,
                            state,
                        });
                    }
                    Err(e) if e.is_gone() && !self.pod_dir(uid).exists() => {}
                    result => {
                        let error = match result {
                            Ok(_) => state_file::StateFileError::Unfinished.to_string(),
                            Err(e) => e.to_string(),
                        };
                        self.report(Event::StepUnreadable {
                            pod_uid: uid.into(),
                            step,
                            error,
                        });
                    }
                }
            }
        }
    }

    fn report_started(&mut self, uid: &str, step: usize, state: &tektite_api::step::StepState) {
        self.report(Event::StepStarted {
            pod_uid: uid.into(),
            step,
            started_at: state.started_at,
        });
    }

    /// Queues `event` unless it was reported before.
    fn report(&mut self, event: Event) {
        let Some(step) = event.step() else { return };
        let seen = self.pods.entry(event.pod_uid().to_owned()).or_default();
        if seen.reported.insert((step, event.kind())) {
            self.pending.push(event);
        }
    }

    fn pod_gone(&mut self, uid: &str) {
        // Its watches go with its directories (IN_IGNORED); only tektite pods are reported.
        if self.pods.remove(uid).is_some() {
            self.pending.push(Event::PodGone {
                pod_uid: uid.into(),
            });
        }
    }
}

impl AsFd for Watcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

/// The UTF-8 names in a directory; none when it is gone.
fn list(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}
