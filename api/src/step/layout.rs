//! Where a step's files live: inside the Pod (Tekton's `/tekton/...` paths, kept so that
//! existing Tasks reading them still work) and on the node, where the kubelet keeps each
//! emptyDir volume under `<kubelet-root>/pods/<pod-uid>/volumes/kubernetes.io~empty-dir/`.
//!
//! The local executor builds exactly the node-side tree under its own root, so the agent's
//! watcher reads both the same way.

use std::path::{Path, PathBuf};

/// The Pod-side paths, rooted at `/` in a Pod. The local executor may root them elsewhere
/// when it cannot give a step a private mount namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPaths {
    root: PathBuf,
}

impl Default for PodPaths {
    fn default() -> Self {
        Self::in_pod()
    }
}

impl PodPaths {
    /// The paths as a step container sees them.
    pub fn in_pod() -> Self {
        Self {
            root: PathBuf::from("/"),
        }
    }

    /// The same tree under `root` (`<root>/tekton/run/0/out`, ...).
    pub fn rooted_at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn at(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// The mount point of a [`Volume`].
    pub fn mount_path(&self, volume: &Volume) -> PathBuf {
        self.at(&volume.mount_path())
    }

    /// The entrypoint binary as the init step copies it.
    pub fn entrypoint_binary(&self) -> PathBuf {
        self.mount_path(&Volume::Bin).join("entrypoint")
    }

    /// The post file of step `index`: written last, when the step has finished.
    pub fn post_file(&self, index: usize) -> PathBuf {
        self.mount_path(&Volume::Run(index)).join(POST_FILE)
    }

    /// `/tekton/steps/step-<name>`: the step's `exitCode` and its step results.
    pub fn step_metadata_dir(&self, step_name: &str) -> PathBuf {
        self.mount_path(&Volume::Steps)
            .join(step_dir_name(step_name))
    }

    /// `/tekton/scripts/<name>`: a step's or sidecar's script, see [`script_name`].
    pub fn script(&self, name: &str) -> PathBuf {
        self.mount_path(&Volume::Scripts).join(name)
    }

    /// The downward-API file whose content becomes non-empty once the first step may start.
    pub fn ready_file(&self) -> PathBuf {
        self.mount_path(&Volume::Downward).join(READY_FILE)
    }

    /// The downward-API file whose content becomes non-empty when the run is cancelled.
    pub fn cancel_file(&self) -> PathBuf {
        self.mount_path(&Volume::Downward).join(CANCEL_FILE)
    }

    /// Where the termination message is written (the container's `terminationMessagePath`).
    pub fn termination_file(&self) -> PathBuf {
        self.at("tekton/termination")
    }
}

/// The volumes tektite adds to a step Pod, each an emptyDir (the downward one excepted).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Volume {
    /// `/tekton/bin`: the entrypoint binary.
    Bin,
    /// `/tekton/run/<i>`: step `i`'s markers; writable only by step `i`.
    Run(usize),
    /// `/tekton/steps`: per-step metadata (`exitCode`, step results).
    Steps,
    /// `/tekton/results`: the task results.
    Results,
    /// `/tekton/scripts`: script steps, executable.
    Scripts,
    /// `/tekton/home`: `$HOME` of every step.
    Home,
    /// `/tekton/downward`: the ready and cancel annotations (a downward-API volume).
    Downward,
    /// `/tekton/artifacts`: the Task's artifacts file (alpha), only where a step names it.
    Artifacts,
    /// `/workspace`: Tekton's implicit working directory.
    Workspace,
}

/// The prefix shared by every tektite volume name; the agent ignores other volumes.
pub const VOLUME_PREFIX: &str = "tekton-internal-";

impl Volume {
    /// The volume's name in the Pod spec, and so its directory on the node.
    pub fn name(&self) -> String {
        let suffix = match self {
            Volume::Bin => "bin".to_owned(),
            Volume::Run(i) => format!("run-{i}"),
            Volume::Steps => "steps".to_owned(),
            Volume::Results => "results".to_owned(),
            Volume::Scripts => "scripts".to_owned(),
            Volume::Home => "home".to_owned(),
            Volume::Downward => "downward".to_owned(),
            Volume::Artifacts => "artifacts".to_owned(),
            Volume::Workspace => "workspace".to_owned(),
        };
        format!("{VOLUME_PREFIX}{suffix}")
    }

    /// Reads a volume name back; `None` for volumes that are not tektite's.
    pub fn from_name(name: &str) -> Option<Volume> {
        let suffix = name.strip_prefix(VOLUME_PREFIX)?;
        Some(match suffix {
            "bin" => Volume::Bin,
            "steps" => Volume::Steps,
            "results" => Volume::Results,
            "scripts" => Volume::Scripts,
            "home" => Volume::Home,
            "downward" => Volume::Downward,
            "artifacts" => Volume::Artifacts,
            "workspace" => Volume::Workspace,
            other => {
                let index = other.strip_prefix("run-")?;
                // Only canonical decimal numbers: "run-01" would name the same step twice.
                if index.is_empty() || (index.len() > 1 && index.starts_with('0')) {
                    return None;
                }
                Volume::Run(index.parse().ok()?)
            }
        })
    }

    /// Where the volume is mounted in a step container, relative to `/`.
    pub fn mount_path(&self) -> String {
        match self {
            Volume::Bin => "tekton/bin".to_owned(),
            Volume::Run(i) => format!("tekton/run/{i}"),
            Volume::Steps => "tekton/steps".to_owned(),
            Volume::Results => "tekton/results".to_owned(),
            Volume::Scripts => "tekton/scripts".to_owned(),
            Volume::Home => "tekton/home".to_owned(),
            Volume::Downward => "tekton/downward".to_owned(),
            Volume::Artifacts => "tekton/artifacts".to_owned(),
            Volume::Workspace => "workspace".to_owned(),
        }
    }
}

/// Where a step or sidecar starts: an absolute `workingDir` as given, a relative one
/// under `/workspace`, none at `/workspace`.
pub fn working_dir(dir: Option<&str>) -> String {
    let workspace = format!("/{}", Volume::Workspace.mount_path());
    match dir.filter(|d| !d.is_empty()) {
        Some(d) if d.starts_with('/') => d.to_owned(),
        Some(d) => format!("{workspace}/{d}"),
        None => workspace,
    }
}

/// The post file's name in a step's run directory.
pub const POST_FILE: &str = "out";
/// The downward-API file names.
pub const READY_FILE: &str = "ready";
pub const CANCEL_FILE: &str = "cancel";
/// The file under a step's metadata dir holding its exit code.
pub const EXIT_CODE_FILE: &str = "exitCode";
/// The directory under a step's metadata dir holding its step results.
pub const STEP_RESULTS_DIR: &str = "results";

/// A step's artifacts directory under its metadata directory (alpha artifacts).
pub const STEP_ARTIFACTS_DIR: &str = "artifacts";

/// The artifacts file, in a step's artifacts directory and in `/tekton/artifacts`.
pub const ARTIFACTS_FILE: &str = "provenance.json";

/// `step-<name>`, the directory of a step under `/tekton/steps`.
pub fn step_dir_name(step_name: &str) -> String {
    format!("step-{step_name}")
}

/// The script file of step (or sidecar) `index`.
pub fn script_name(kind: ScriptOwner, index: usize) -> String {
    match kind {
        ScriptOwner::Step => format!("script-{index}"),
        ScriptOwner::Sidecar => format!("sidecar-script-{index}"),
    }
}

/// Whose script a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptOwner {
    Step,
    Sidecar,
}

/// The files a step leaves beside its post file `<run>/out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// `out`: the step finished and the next one may start.
    Post,
    /// `out.err`: the step failed, was skipped, timed out or was cancelled.
    Error,
    /// `out.state`: the step state record, replaced atomically (start, then end).
    State,
    /// `out.wake`: a FIFO the next step may wait on when it has no inotify instance.
    Wake,
}

impl Marker {
    const ALL: [Marker; 4] = [Marker::Post, Marker::Error, Marker::State, Marker::Wake];

    fn suffix(self) -> &'static str {
        match self {
            Marker::Post => "",
            Marker::Error => ".err",
            Marker::State => ".state",
            Marker::Wake => ".wake",
        }
    }

    /// This marker's path for the step whose post file is `post_file`.
    pub fn path(self, post_file: &Path) -> PathBuf {
        let mut name = post_file.as_os_str().to_owned();
        name.push(self.suffix());
        PathBuf::from(name)
    }

    /// Which marker a file name in a run directory is, for the post file name `out`.
    pub fn from_file_name(name: &str) -> Option<Marker> {
        let rest = name.strip_prefix(POST_FILE)?;
        Marker::ALL.into_iter().find(|m| m.suffix() == rest)
    }
}

/// `<kubelet-root>/pods/<pod-uid>/volumes/kubernetes.io~empty-dir/<volume>`: where the
/// kubelet keeps a Pod's emptyDir volume on the node.
pub fn node_volume_dir(kubelet_root: &Path, pod_uid: &str, volume: &Volume) -> PathBuf {
    kubelet_root
        .join("pods")
        .join(pod_uid)
        .join("volumes")
        .join(EMPTY_DIR_PLUGIN)
        .join(volume.name())
}

/// The kubelet's directory name for emptyDir volumes.
pub const EMPTY_DIR_PLUGIN: &str = "kubernetes.io~empty-dir";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_dirs_are_absolute_or_under_the_workspace() {
        assert_eq!(working_dir(None), "/workspace");
        assert_eq!(working_dir(Some("")), "/workspace");
        assert_eq!(working_dir(Some("src/app")), "/workspace/src/app");
        assert_eq!(working_dir(Some("/opt/app")), "/opt/app");
    }

    #[test]
    fn pod_paths_are_tektons() {
        let pod = PodPaths::in_pod();
        assert_eq!(pod.post_file(2), Path::new("/tekton/run/2/out"));
        assert_eq!(
            pod.step_metadata_dir("build"),
            Path::new("/tekton/steps/step-build")
        );
        assert_eq!(pod.ready_file(), Path::new("/tekton/downward/ready"));
        assert_eq!(pod.cancel_file(), Path::new("/tekton/downward/cancel"));
        assert_eq!(pod.entrypoint_binary(), Path::new("/tekton/bin/entrypoint"));
        assert_eq!(
            pod.script("script-0"),
            Path::new("/tekton/scripts/script-0")
        );
        assert_eq!(pod.termination_file(), Path::new("/tekton/termination"));
        assert_eq!(pod.mount_path(&Volume::Workspace), Path::new("/workspace"));
    }

    #[test]
    fn rooted_paths_keep_the_same_tree() {
        let local = PodPaths::rooted_at("/tmp/run1");
        assert_eq!(local.post_file(0), Path::new("/tmp/run1/tekton/run/0/out"));
    }

    #[test]
    fn markers_sit_beside_the_post_file() {
        let post = Path::new("/tekton/run/0/out");
        assert_eq!(Marker::Error.path(post), Path::new("/tekton/run/0/out.err"));
        assert_eq!(
            Marker::State.path(post),
            Path::new("/tekton/run/0/out.state")
        );
        assert_eq!(Marker::Wake.path(post), Path::new("/tekton/run/0/out.wake"));
        for m in Marker::ALL {
            let name = m.path(Path::new("out")).display().to_string();
            assert_eq!(Marker::from_file_name(&name), Some(m));
        }
        assert_eq!(Marker::from_file_name("out.state.tmp"), None);
        assert_eq!(Marker::from_file_name("other"), None);
    }

    #[test]
    fn volume_names_read_back() {
        for v in [
            Volume::Bin,
            Volume::Run(0),
            Volume::Run(17),
            Volume::Steps,
            Volume::Results,
            Volume::Scripts,
            Volume::Home,
            Volume::Downward,
            Volume::Workspace,
        ] {
            assert_eq!(Volume::from_name(&v.name()), Some(v));
        }
        assert_eq!(Volume::from_name("tekton-internal-run-01"), None);
        assert_eq!(Volume::from_name("tekton-internal-run-"), None);
        assert_eq!(Volume::from_name("tekton-internal-run-x"), None);
        assert_eq!(Volume::from_name("cache"), None);
    }

    #[test]
    fn node_volume_dirs_follow_the_kubelet() {
        let dir = node_volume_dir(Path::new("/var/lib/kubelet"), "uid-1", &Volume::Run(3));
        assert_eq!(
            dir,
            Path::new(
                "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/tekton-internal-run-3"
            )
        );
    }
}
