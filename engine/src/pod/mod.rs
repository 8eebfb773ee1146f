//! The Pod of one TaskRun attempt, built as a sequence of small transformations, one
//! module per concern: [`meta`] (name, labels, owner), [`volumes`] (tektite's volumes and
//! the workspace bindings), [`creds`] (the ServiceAccount's credentials), [`steps`] (a container per step and sidecar, wrapped by the
//! entrypoint), [`init`] (the one init container), [`template`] (the run's podTemplate).
//! [`status`] reads back what the kubelet reports.
//!
//! Pure: the shell fetches everything the build needs first (a ServiceAccount's
//! credentials, the Task). Both shells build their Pods here: the controller creates them,
//! `tkt run` runs them.

mod creds;
mod init;
mod meta;
mod quantity;
pub mod status;
mod steps;
mod template;
mod volumes;

use crate::step_action::{self, StepActionError};
use crate::task::{self, ResolveError, TaskContext, TaskPaths};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;
use tektite_api::step::creds::Credential;
use tektite_api::v1::{TaskRun, TaskSpec};
use tektite_api::v1beta1::StepActionSpec;

pub use meta::{CANCEL_ANNOTATION, READY_ANNOTATION, READY_VALUE, controller_ref};
pub use volumes::volume_name as workspace_volume;

/// Where the entrypoint binary lives in its image; the init container copies it from
/// there into `/tekton/bin`.
pub const ENTRYPOINT_IN_IMAGE: &str = "/tektite/entrypoint";
/// The init container's name.
pub const INIT_CONTAINER: &str = "prepare";

/// How Pods are built (the controller's flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSettings {
    /// The image holding the entrypoint at [`ENTRYPOINT_IN_IMAGE`].
    pub entrypoint_image: String,
    /// Upper bound in bytes on all results of one TaskRun together.
    pub results_limit: u64,
    /// `schedulerName` of every Pod (a podTemplate's own wins), e.g. the scheduler that
    /// consults tektite's extender.
    pub scheduler_name: Option<String>,
    /// An extended resource the init container asks one of, so that a scheduler whose
    /// extender lists it in `managedResources` consults tektite's extender for this Pod
    /// (and for no other).
    pub extender_resource: Option<String>,
    /// Sidecars are native (init containers with `restartPolicy: Always`, Kubernetes 1.29
    /// and later), stopped by the kubelet once the steps end; else containers beside the
    /// steps, stopped by swapping their image for the entrypoint's.
    pub native_sidecars: bool,
}

impl Default for PodSettings {
    fn default() -> Self {
        Self {
            entrypoint_image: "ghcr.io/tektite-dev/tektite-entrypoint:0.1.0".into(),
            results_limit: tektite_api::step::DEFAULT_RESULTS_LIMIT,
            scheduler_name: None,
            extender_resource: None,
            native_sidecars: true,
        }
    }
}

/// Whether an API server of this version runs native sidecars: the SidecarContainers
/// feature is on by default from Kubernetes 1.29 (beta; GA in 1.33). Minor versions may
/// carry a suffix (`29+`).
pub fn has_native_sidecars(info: &k8s_openapi::apimachinery::pkg::version::Info) -> bool {
    let number = |s: &str| -> Option<u32> {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    match (number(&info.major), number(&info.minor)) {
        (Some(major), Some(minor)) => (major, minor) >= (1, 29),
        _ => false,
    }
}

/// What an image's config says a container runs when it gives no command (its
/// ENTRYPOINT and CMD), as the shell looked it up in the image's registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// The node labels a Pod running it must be placed by: for an image index whose
    /// platforms run different commands, the platform this one was looked up for
    /// (`kubernetes.io/os`, `kubernetes.io/arch`); else none.
    pub node_selector: BTreeMap<String, String>,
}

/// One attempt of a TaskRun to build a Pod for.
#[derive(Clone, Copy, Debug)]
pub struct PodRequest<'a> {
    pub task_run: &'a TaskRun,
    /// The Task as written (a taskRef's fetched spec, or the TaskRun's taskSpec).
    pub spec: &'a TaskSpec,
    /// The referenced Task's name, for `$(context.task.name)` and the `tekton.dev/task` label.
    pub task_name: Option<&'a str>,
    /// 0 for the first attempt.
    pub retry: u32,
    pub settings: &'a PodSettings,
    /// What the ServiceAccount's Secrets provide.
    pub credentials: &'a [Credential],
    /// The StepActions the steps name ([`step_action::names`]), by name.
    pub step_actions: &'a BTreeMap<String, StepActionSpec>,
    /// Where the shell looked for them, for the error when one is missing
    /// (` in namespace "ci"`, with a leading space), or empty.
    pub step_actions_from: &'a str,
    /// The configs of the images of steps with neither command nor script, by image as
    /// the step names it ([`BuildError::NeedImages`] says which are wanted).
    pub images: &'a BTreeMap<String, ImageConfig>,
}

/// The Pod, and the Task as its steps run it (for `status.taskSpec`).
#[derive(Clone, Debug, PartialEq)]
pub struct Built {
    pub pod: core::Pod,
    pub spec: TaskSpec,
}

/// Why no Pod can be built: the TaskRun fails with the reason given.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    StepAction(#[from] StepActionError),
    /// Steps with neither command nor script run their image's entrypoint: these images'
    /// configs must be looked up (and given in [`PodRequest::images`]) first.
    #[error("{}", need_images(.0))]
    NeedImages(Vec<NeedImage>),
    #[error(
        "workspace {0:?} binds no volume: give it one of emptyDir, persistentVolumeClaim, volumeClaimTemplate, configMap, secret, projected or csi"
    )]
    NoVolume(String),
    #[error(
        "step {step:?} has onError {value:?}: it must be continue or stopAndFail (spec.steps[{index}].onError)"
    )]
    OnError {
        index: usize,
        step: String,
        value: String,
    },
}

impl BuildError {
    /// The TaskRun's condition reason, as Tekton's.
    pub fn reason(&self) -> &'static str {
        use tektite_api::v1::taskrun_reason;
        match self {
            BuildError::Resolve(ResolveError::Params(_)) => "InvalidParamValue",
            BuildError::StepAction(StepActionError::Params { .. }) => "InvalidParamValue",
            BuildError::StepAction(_) => taskrun_reason::RESOLUTION_FAILED,
            // Tekton's, when an image's entrypoint cannot be looked up.
            BuildError::NeedImages(_) => taskrun_reason::POD_CREATION_FAILED,
            BuildError::Resolve(_) | BuildError::NoVolume(_) | BuildError::OnError { .. } => {
                taskrun_reason::VALIDATION_FAILED
            }
        }
    }
}

/// Whether a step names an artifacts path or an earlier step's artifacts (alpha): then
/// the Pod gets `/tekton/artifacts` and every step's entrypoint collects them, as
/// Tekton's pod builder decides it.
fn uses_artifacts(spec: &TaskSpec) -> bool {
    use tektite_api::vars::{self, Reference};
    let Ok(mut tree) = serde_json::to_value(&spec.steps) else {
        return false;
    };
    let mut found = false;
    // Read, not replaced: every reference answers "unknown".
    let _ = vars::substitute_tree(&mut tree, &mut |r| {
        found |= matches!(
            r,
            Reference::ArtifactsPath
                | Reference::OwnStepArtifactsPath
                | Reference::StepArtifact { .. }
        );
        None
    });
    found
}

/// The Pod for `req`.
pub fn build(req: &PodRequest<'_>) -> Result<Built, BuildError> {
    let tr = req.task_run;
    let name = tr.metadata.name.clone().unwrap_or_default();
    let owner_uid = tr.metadata.uid.as_deref().unwrap_or_default();
    // A spec the TaskRun embeds sees the run's workspaces undeclared.
    let propagated;
    let written = match &tr.spec.task_spec {
        Some(_) => {
            let mut s = req.spec.clone();
            s.propagate_workspaces(&tr.spec.workspaces);
            propagated = s;
            &propagated
        }
        None => req.spec,
    };
    let written = step_action::inline(
        written,
        &tr.spec.params,
        req.step_actions,
        req.step_actions_from,
    )?;
    let written = &written;
    let artifacts = uses_artifacts(written);
    let workspaces = volumes::workspaces(written, &tr.spec.workspaces, owner_uid)?;
    let context = TaskContext {
        task_run_name: name,
        namespace: tr.metadata.namespace.clone().unwrap_or_default(),
        uid: tr.metadata.uid.clone().unwrap_or_default(),
        task_name: req.task_name.unwrap_or_default().to_owned(),
        retry_count: req.retry,
    };
    let paths = TaskPaths {
        workspaces: workspaces.bound.clone(),
        ..TaskPaths::default()
    };
    let spec = task::resolve(written, &tr.spec.params, &context, &paths)?;
    if let Some((index, s, value)) =
        spec.steps
            .iter()
            .enumerate()
            .find_map(|(i, s)| match &s.on_error {
                Some(tektite_api::v1::StepOnError::Variable(v)) => Some((i, s, v)),
                _ => None,
            })
    {
        return Err(BuildError::OnError {
            index,
            step: s.name.clone(),
            value: value.clone(),
        });
    }
    let mut spec = spec;
    let needed: Vec<NeedImage> = spec
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.command.is_empty() && s.script.is_none())
        .map(|(index, s)| NeedImage {
            index,
            step: s.name.clone(),
            image: s.image.clone().unwrap_or_default(),
        })
        .filter(|n| !req.images.contains_key(&n.image))
        .collect();
    if !needed.is_empty() {
        return Err(BuildError::NeedImages(needed));
    }
    let mut node_selector = BTreeMap::new();
    for s in spec
        .steps
        .iter_mut()
        .filter(|s| s.command.is_empty() && s.script.is_none())
    {
        let image = &req.images[s.image.as_deref().unwrap_or_default()];
        image_command(s, image);
        node_selector.extend(image.node_selector.clone());
    }

    let mut pod = core::Pod {
        metadata: meta::metadata(tr, req.task_name, req.retry, !spec.sidecars.is_empty()),
        spec: Some(core::PodSpec {
            restart_policy: Some("Never".into()),
            service_account_name: Some(
                tr.spec
                    .service_account_name
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ),
            scheduler_name: req.settings.scheduler_name.clone(),
            ..core::PodSpec::default()
        }),
        status: None,
    };
    let pod_spec = pod.spec.get_or_insert_with(Default::default);
    let mut all_volumes = volumes::volumes(&spec, workspaces.volumes, artifacts);
    all_volumes.extend(creds::volumes(req.credentials, spec.steps.len()));
    pod_spec.volumes = Some(all_volumes);
    let scripts = steps::containers(
        pod_spec,
        &spec,
        &workspaces.mounts,
        req.settings,
        req.credentials,
        artifacts,
    );
    steps::apply_compute_resources(pod_spec, tr);
    let mut prepare = init::container(&spec, scripts, req.settings);
    if let Some(resource) = &req.settings.extender_resource {
        // Extended resources are whole and ask as much as they limit. The scheduler
        // ignores it (`ignoredByScheduler`) and the kubelet drops a resource its node
        // does not have before admitting the Pod.
        let one = std::collections::BTreeMap::from([(resource.clone(), Quantity("1".into()))]);
        let resources = prepare.resources.get_or_insert_with(Default::default);
        resources
            .requests
            .get_or_insert_with(Default::default)
            .extend(one.clone());
        resources
            .limits
            .get_or_insert_with(Default::default)
            .extend(one);
    }
    pod_spec
        .init_containers
        .get_or_insert_with(Vec::new)
        .insert(0, prepare);
    if !node_selector.is_empty() {
        pod_spec
            .node_selector
            .get_or_insert_with(Default::default)
            .extend(node_selector);
    }
    if let Some(t) = &tr.spec.pod_template {
        template::apply(pod_spec, t);
    }
    Ok(Built { pod, spec })
}

fn need_images(needed: &[NeedImage]) -> String {
    match needed.first() {
        Some(n) => format!(
            "step {:?} has neither command nor script, and the entrypoint of its image {:?} is not known: give the step a command (spec.steps[{}].command)",
            n.step, n.image, n.index
        ),
        None => "no image's entrypoint is needed".into(),
    }
}

/// A step the Pod cannot be built for until its image's config is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeedImage {
    pub index: usize,
    pub step: String,
    pub image: String,
}

/// What a container runs, as a container runtime decides it: its command and args; with
/// no command, the image's ENTRYPOINT with the container's args, or with the image's CMD
/// when it gives none.
pub fn container_argv(command: &[String], args: &[String], image: &ImageConfig) -> Vec<String> {
    if !command.is_empty() {
        return command.iter().chain(args).cloned().collect();
    }
    let args = if args.is_empty() { &image.cmd } else { args };
    image.entrypoint.iter().chain(args).cloned().collect()
}

/// A step with no command and no script given what its image runs, as its command.
fn image_command(step: &mut tektite_api::v1::Step, image: &ImageConfig) {
    let mut argv = container_argv(&[], &step.args, image).into_iter();
    step.command = argv.next().into_iter().collect();
    step.args = argv.collect();
}

#[cfg(test)]
mod examples;
#[cfg(test)]
mod tests;
