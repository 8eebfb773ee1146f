//! One TaskRun attempt on this machine: the Pod the engine builds for it, the same Pod the
//! controller creates, run by the local kubelet ([`tektite_cli::kubelet`]).
//!
//! What differs from a cluster is only how that Pod is executed, and it is written here:
//! - every image is this machine's userland (read-only but `/tmp`), with `tkt`'s own
//!   environment as its env (the host's tools); the entrypoint's image holds `tkt`, which
//!   is the entrypoint; alpine, busybox and bash images get this machine's busybox as
//!   `/bin/sh` and `ash` (their own shell), else its bash where `/bin/sh` is another
//!   shell (`executor::shells`);
//! - StepActions, ServiceAccounts and their Secrets come from the files given, not a
//!   namespace;
//! - a workspace bound with `-w NAME=PATH` is a hostPath volume at PATH;
//! - where no mount namespace can be had, the kubelet rewrites Pod paths to this
//!   machine's directories ([`tektite_cli::kubelet::Isolation::Rewritten`]);
//! - `tkt run` writes the ready and cancel annotations, as the controller does.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, mpsc};

use k8s_openapi::api::core::v1::{self as core, Pod as KubePod, PodStatus};
use tektite_api::step::StepState;
use tektite_api::v1::{TaskRun, TaskSpec};
use tektite_cli::kubelet::{Host, Kubelet, PodHandle};
use tektite_engine::pod::status::{self, PodFailure};
use tektite_engine::pod::{
    self, BuildError, CANCEL_ANNOTATION, PodSettings, READY_ANNOTATION, READY_VALUE,
};

use super::view::View;
use super::volumes::Sources;

/// The cancel annotation's value `tkt run` writes.
const CANCELLED: &str = "cancelled";

/// What the local kubelet reads and where what it reports goes: the run's input
/// documents, its claims directory, the executor (Pod statuses) and the view (logs).
pub struct LocalHost {
    sources: Sources,
    claims: PathBuf,
    view: View,
    statuses: Mutex<mpsc::Sender<(String, PodStatus)>>,
    /// The label (pipeline task or TaskRun) of each Pod, by UID.
    labels: Mutex<HashMap<String, String>>,
}

impl LocalHost {
    pub fn new(
        sources: Sources,
        claims: PathBuf,
        view: View,
    ) -> (LocalHost, mpsc::Receiver<(String, PodStatus)>) {
        let (tx, rx) = mpsc::channel();
        let host = LocalHost {
            sources,
            claims,
            view,
            statuses: Mutex::new(tx),
            labels: Mutex::default(),
        };
        (host, rx)
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }
}

impl Host for LocalHost {
    fn data(
        &self,
        secret: bool,
        _namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        Ok(self.sources.data(secret, name))
    }

    fn claim(&self, _namespace: &str, claim: &str) -> PathBuf {
        self.claims.join(claim)
    }

    fn status(&self, pod: &KubePod, status: &PodStatus) -> Result<(), String> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((uid, status.clone()))
            .map_err(|_| "the run has ended".to_string())
    }

    fn log(&self, pod: &KubePod, container: &str, line: &[u8]) {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let label = self
            .labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned()
            .unwrap_or_default();
        let step = container.strip_prefix("step-").unwrap_or(container);
        self.view.log(&label, step, &String::from_utf8_lossy(line));
    }
}

/// What to start.
pub struct PodRequest<'a> {
    pub uid: String,
    /// The name logs are prefixed with: the pipeline task, or the TaskRun.
    pub label: String,
    pub task_run: &'a TaskRun,
    /// The Task as written.
    pub spec: &'a TaskSpec,
    pub task_name: Option<&'a str>,
    pub retry: u32,
    /// Workspaces bound to this machine's directories (`-w`), by the Task's name for them.
    pub host_dirs: BTreeMap<String, PathBuf>,
}

pub struct Pod {
    pub uid: String,
    /// The resolved Task, as the TaskRun's status shows it.
    pub spec: TaskSpec,
    /// The Pod as created, with the kubelet's latest status.
    object: KubePod,
    handle: Option<PodHandle>,
    cancelled: bool,
}

impl Pod {
    /// Builds the attempt's Pod as the controller does and hands it to the kubelet.
    pub fn start(
        kubelet: &Kubelet,
        host: &LocalHost,
        req: PodRequest<'_>,
    ) -> Result<Pod, BuildError> {
        let settings = PodSettings::default();
        // The ServiceAccount's Secrets, when both are among the files, as on a cluster.
        let account = req
            .task_run
            .spec
            .service_account_name
            .as_deref()
            .unwrap_or("default");
        let (credentials, missing) = host.sources().credentials(account);
        for secret in missing {
            host.view.note(&format!(
                "{}: Secret {secret:?}, which ServiceAccount {account:?} lists, is not among the files: its credentials are left out",
                req.label
            ));
        }
        let built = pod::build(&pod::PodRequest {
            task_run: req.task_run,
            spec: req.spec,
            task_name: req.task_name,
            retry: req.retry,
            settings: &settings,
            credentials: &credentials,
            step_actions: &host.sources().step_actions,
            step_actions_from: " among the files",
            // A step with no command is refused before it gets here (input::local_limits).
            images: &Default::default(),
        })?;
        let mut object = built.pod;
        object.metadata.uid = Some(req.uid.clone());
        for v in object
            .spec
            .iter_mut()
            .flat_map(|s| s.volumes.iter_mut().flatten())
        {
            if let Some(dir) = req
                .host_dirs
                .iter()
                .find(|(w, _)| pod::workspace_volume(w) == v.name)
                .map(|(_, d)| d)
            {
                *v = core::Volume {
                    name: v.name.clone(),
                    host_path: Some(core::HostPathVolumeSource {
                        path: dir.display().to_string(),
                        type_: None,
                    }),
                    ..core::Volume::default()
                };
            }
        }
        host.labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(req.uid.clone(), req.label);
        let handle = kubelet.run(object.clone());
        Ok(Pod {
            uid: req.uid,
            spec: built.spec,
            object,
            handle: Some(handle),
            cancelled: false,
        })
    }

    /// The kubelet's new status of this Pod.
    pub fn observe(&mut self, status: PodStatus) {
        self.object.status = Some(status);
    }

    fn annotate(&mut self, key: &str, value: &str) {
        self.object
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        if let Some(h) = &self.handle {
            h.update(self.object.clone());
        }
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.object
            .metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// Once every sidecar is ready, lets the first step start (as the controller does).
    /// A sidecar that ended before it was ready will not be: here the steps start anyway,
    /// with a note, rather than wait for a timeout.
    pub fn poll_ready(&mut self, view: &View, label: &str) {
        if self.annotation(READY_ANNOTATION) == Some(READY_VALUE) {
            return;
        }
        let ended: Vec<&str> = self
            .spec
            .sidecars
            .iter()
            .map(|s| s.name.as_str())
            .filter(|name| self.sidecar_ended(name))
            .collect();
        let ready = self.spec.sidecars.iter().all(|s| {
            ended.contains(&s.name.as_str())
                || status::container_status(
                    &self.object,
                    &tektite_api::labels::sidecar_container(&s.name),
                )
                .is_some_and(|c| c.ready)
        });
        if ready {
            for name in ended {
                view.note(&format!(
                    "{label}: sidecar {name:?} ended before it was ready; the steps start anyway"
                ));
            }
            self.annotate(READY_ANNOTATION, READY_VALUE);
        }
    }

    /// Whether sidecar `name`'s container has ended.
    fn sidecar_ended(&self, name: &str) -> bool {
        self.ended(&tektite_api::labels::sidecar_container(name))
    }

    /// Whether container `name` has ended.
    fn ended(&self, name: &str) -> bool {
        status::container_status(&self.object, name)
            .and_then(|c| c.state.as_ref())
            .is_some_and(|st| st.terminated.is_some())
    }

    /// Tells every step to stop (the entrypoints kill what runs and skip what waits).
    pub fn cancel(&mut self) {
        if !self.cancelled {
            self.cancelled = true;
            self.annotate(CANCEL_ANNOTATION, CANCELLED);
        }
    }

    /// Each step's state: `reported` (from the step records) and what the kubelet says.
    pub fn steps(&self, reported: &[Option<StepState>]) -> Vec<Option<StepState>> {
        status::merged_steps(reported, &self.object, &self.spec)
    }

    /// How the Pod failed where no step can say (an init container, a config error).
    pub fn failure(&self, task_run: &str) -> Option<PodFailure> {
        status::failure(&self.object, task_run).or_else(|| self.cannot_start())
    }

    /// A Pod whose volumes cannot be set up waits on a cluster until they can; here
    /// nothing will change (every document is given), so it fails at once.
    fn cannot_start(&self) -> Option<PodFailure> {
        let waiting =
            status::statuses(&self.object).find_map(|c| c.state.as_ref()?.waiting.as_ref())?;
        (waiting.reason.as_deref() == Some("ContainerCreating"))
            .then(|| waiting.message.clone())
            .flatten()
            .map(|m| PodFailure {
                reason: status::reason::CREATE_CONTAINER_CONFIG_ERROR,
                message: format!("the Pod's volumes cannot be set up: {m}"),
            })
    }

    /// The Pod as it is now.
    pub fn object(&self) -> &KubePod {
        &self.object
    }

    /// Whether every step's container has ended (and so printed all it will).
    pub fn steps_ended(&self) -> bool {
        self.spec
            .steps
            .iter()
            .all(|step| self.ended(&tektite_api::labels::step_container(&step.name)))
    }

    /// Deletes the Pod: its processes end, and the kubelet is done with it.
    pub fn delete(&mut self) {
        if let Some(h) = self.handle.take() {
            h.delete();
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.delete();
    }
}
