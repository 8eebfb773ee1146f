//! What the kubelet reports of a step Pod: the authoritative fallback for steps no agent
//! reported (nodes without one, an agent that restarted), and the only source for what
//! only the kubelet knows: OOM kills, evictions, images that cannot be pulled, init
//! container failures. Reasons are Tekton's.

use jiff::Timestamp;
use k8s_openapi::api::core::v1 as core;
use tektite_api::labels::step_container;
use tektite_api::step::termination::{
    self, KEY_EXIT_CODE, KEY_MESSAGE, KEY_REASON, KEY_STARTED_AT, TYPE_INTERNAL,
    TYPE_STEP_ARTIFACTS, TYPE_STEP_RESULT, TYPE_TASK_ARTIFACTS, TYPE_TASK_RESULT,
};
use tektite_api::step::{RecordedResult, ResultKind, StepReason, StepState};
use tektite_api::v1::{Condition, TaskSpec};

use super::INIT_CONTAINER;

/// The kubelet's reason for a container killed for using too much memory.
pub const OOM_KILLED: &str = "OOMKilled";

/// Tekton's TaskRun reasons for failures only the kubelet sees.
pub mod reason {
    pub const POD_EVICTED: &str = "PodEvicted";
    pub const IMAGE_PULL_FAILED: &str = "TaskRunImagePullFailed";
    pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
    pub const INIT_CONTAINER_FAILED: &str = "InitContainerFailed";
    pub const INIT_CONTAINER_OOM: &str = "InitContainerOOM";
    pub const STEP_OOM: &str = "StepOOM";
    pub const FAILED: &str = "Failed";
}

/// The kubelet's `waiting` reasons that mean an image cannot be had.
const IMAGE_ERRORS: &[&str] = &[
    "ImagePullBackOff",
    "ImageInspectError",
    "ErrImagePull",
    "ErrImageNeverPull",
    "RegistryUnavailable",
    "InvalidImageName",
];

/// A failure of the whole Pod: the TaskRun fails with `reason` and `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFailure {
    pub reason: &'static str,
    pub message: String,
}

/// Every container's status the kubelet reports, init containers first.
pub fn statuses(pod: &core::Pod) -> impl Iterator<Item = &core::ContainerStatus> {
    let s = pod.status.as_ref();
    let init = s.and_then(|s| s.init_container_statuses.as_deref());
    let main = s.and_then(|s| s.container_statuses.as_deref());
    init.into_iter().flatten().chain(main.into_iter().flatten())
}

/// Container `name`'s status, if the kubelet reports one.
pub fn container_status<'a>(pod: &'a core::Pod, name: &str) -> Option<&'a core::ContainerStatus> {
    statuses(pod).find(|c| c.name == name)
}

/// The image a container was given: the spec's where the cache kept it (sidecars), else
/// the one the kubelet reports, which is the spec's while the container waits.
fn image_of(pod: &core::Pod, container: &core::ContainerStatus) -> String {
    pod.spec
        .as_ref()
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
        .find(|c| c.name == container.name)
        .and_then(|c| c.image.clone())
        .unwrap_or_else(|| container.image.clone())
}

/// Whether the Pod failed in a way no step reports, and how.
pub fn failure(pod: &core::Pod, task_run: &str) -> Option<PodFailure> {
    let status = pod.status.as_ref()?;
    if status.reason.as_deref() == Some("Evicted") {
        return Some(PodFailure {
            reason: reason::POD_EVICTED,
            message: status
                .message
                .clone()
                .unwrap_or_else(|| "the Pod was evicted".into()),
        });
    }
    for c in statuses(pod) {
        let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let why = waiting.reason.as_deref().unwrap_or_default();
        let said = waiting.message.clone().unwrap_or_default();
        if IMAGE_ERRORS.contains(&why) {
            return Some(PodFailure {
                reason: reason::IMAGE_PULL_FAILED,
                message: format!(
                    "the container {:?} in TaskRun {task_run:?} failed to pull the image {:?}: {why}: {said}",
                    c.name,
                    image_of(pod, c)
                ),
            });
        }
        if why == reason::CREATE_CONTAINER_CONFIG_ERROR
            && !said.contains("failed to create subPath directory")
        {
            return Some(PodFailure {
                reason: reason::CREATE_CONTAINER_CONFIG_ERROR,
                message: format!("failed to create the container {:?}: {said}", c.name),
            });
        }
    }
    if let Some(init) = container_status(pod, INIT_CONTAINER)
        && let Some(t) = init.state.as_ref().and_then(|s| s.terminated.as_ref())
        && t.exit_code != 0
    {
        let oom = t.reason.as_deref() == Some(OOM_KILLED);
        return Some(PodFailure {
            reason: if oom {
                reason::INIT_CONTAINER_OOM
            } else {
                reason::INIT_CONTAINER_FAILED
            },
            message: format!(
                "init container failed, {:?} exited with code {}{}",
                INIT_CONTAINER,
                t.exit_code,
                t.message
                    .as_deref()
                    .map(|m| format!(": {}", m.trim()))
                    .unwrap_or_default()
            ),
        });
    }
    None
}

/// Whether step `name`'s container was killed for memory.
pub fn oom_killed(pod: &core::Pod, step: &str) -> bool {
    container_status(pod, &step_container(step))
        .and_then(|c| c.state.as_ref()?.terminated.as_ref())
        .is_some_and(|t| t.reason.as_deref() == Some(OOM_KILLED))
}

/// Each step's state as the kubelet reports it; `None` for steps not started.
pub fn step_states(pod: &core::Pod, spec: &TaskSpec) -> Vec<Option<StepState>> {
    spec.steps
        .iter()
        .map(|s| container_status(pod, &step_container(&s.name)).and_then(step_state))
        .collect()
}

fn step_state(c: &core::ContainerStatus) -> Option<StepState> {
    let state = c.state.as_ref()?;
    if let Some(r) = &state.running {
        return Some(StepState::started(r.started_at.as_ref()?.0));
    }
    let t = state.terminated.as_ref()?;
    let entries = t
        .message
        .as_deref()
        .and_then(|m| termination::decode(m).ok())
        .unwrap_or_default();
    let internal = |key: &str| {
        entries
            .iter()
            .find(|e| e.kind == TYPE_INTERNAL && e.key == key)
            .map(|e| e.value.clone())
    };
    let finished = t.finished_at.as_ref().map(|t| t.0).unwrap_or_default();
    let started: Timestamp = internal(KEY_STARTED_AT)
        .and_then(|s| s.parse().ok())
        .or(t.started_at.as_ref().map(|t| t.0))
        .unwrap_or(finished);
    let recorded: Option<StepReason> = internal(KEY_REASON)
        .and_then(|r| serde_json::from_value(serde_json::Value::String(r)).ok());
    let reason = recorded.unwrap_or(if t.exit_code == 0 {
        StepReason::Completed
    } else {
        StepReason::Error
    });
    let exit_code = internal(KEY_EXIT_CODE)
        .and_then(|c| c.parse().ok())
        .or((reason != StepReason::Skipped).then_some(t.exit_code));
    let message = internal(KEY_MESSAGE).or_else(|| {
        t.reason
            .clone()
            .filter(|r| r != "Completed" && r != "Error")
    });
    let results = entries
        .iter()
        .filter_map(|e| {
            let kind = match e.kind {
                TYPE_TASK_RESULT => ResultKind::Task,
                TYPE_STEP_RESULT => ResultKind::Step,
                TYPE_STEP_ARTIFACTS => ResultKind::StepArtifacts,
                TYPE_TASK_ARTIFACTS => ResultKind::TaskArtifacts,
                _ => return None,
            };
            Some(RecordedResult {
                name: e.key.clone(),
                kind,
                value: e.value.clone(),
            })
        })
        .collect();
    Some(StepState {
        finished_at: Some(finished),
        exit_code,
        reason: Some(reason),
        message,
        results,
        ..StepState::started(started)
    })
}

/// Whether every sidecar container is ready (true when there are none).
pub fn sidecars_ready(pod: &core::Pod, spec: &TaskSpec) -> bool {
    spec.sidecars.iter().all(|s| {
        container_status(pod, &tektite_api::labels::sidecar_container(&s.name))
            .is_some_and(|c| c.ready)
    })
}

/// Each step's state: the one reported from its record (by an agent, or `tkt run`'s
/// watcher) and, for the others, what the kubelet says. A container the kubelet calls
/// running may still be waiting for the step before it: it counts as started only once
/// the step before it finished.
pub fn merged_steps(
    reported: &[Option<StepState>],
    pod: &core::Pod,
    spec: &TaskSpec,
) -> Vec<Option<StepState>> {
    // Read once per call, and a container's state only where no record says it finished.
    let by_name: std::collections::HashMap<&str, &core::ContainerStatus> =
        statuses(pod).map(|c| (c.name.as_str(), c)).collect();
    let mut out: Vec<Option<StepState>> = Vec::with_capacity(spec.steps.len());
    for (i, step) in spec.steps.iter().enumerate() {
        let a = reported.get(i).and_then(Option::as_ref);
        if let Some(a) = a.filter(|a| a.is_finished()) {
            out.push(Some(a.clone()));
            continue;
        }
        let k = by_name
            .get(step_container(&step.name).as_str())
            .and_then(|c| step_state(c));
        let previous_done = i == 0 || out[i - 1].as_ref().is_some_and(StepState::is_finished);
        let merged = match (a, k) {
            (_, Some(k)) if k.is_finished() => Some(k),
            (Some(a), _) => Some(a.clone()),
            (None, Some(k)) if previous_done => Some(k),
            (None, _) => None,
        };
        out.push(merged);
    }
    out
}

/// A failed TaskRun's condition with what only the kubelet knows: the Pod's own failure
/// (unless the run was stopped), else a step killed for memory; and, as Tekton reports
/// it, `FailureIgnored` for the Pod of a pipeline task with `onError: continue`.
pub fn failed_condition(
    condition: &mut Condition,
    failure: Option<&PodFailure>,
    stopped: bool,
    pod: &core::Pod,
    spec: &TaskSpec,
) {
    if condition.status != "False" {
        return;
    }
    if let Some(f) = failure
        && !stopped
    {
        condition.reason = Some(f.reason.into());
        condition.message = Some(f.message.clone());
    } else if let Some(step) = spec.steps.iter().find(|s| oom_killed(pod, &s.name)) {
        condition.reason = Some(reason::STEP_OOM.into());
        condition.message = Some(format!(
            "{:?} exited with code 137: {OOM_KILLED}",
            step_container(&step.name)
        ));
    }
    // A pipeline task with `onError: continue` whose Pod failed (not one stopped).
    let ignored = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(tektite_api::labels::PIPELINE_TASK_ON_ERROR))
        .is_some_and(|v| v == "continue");
    let stopped_for = |r: &str| {
        use tektite_api::v1::taskrun_reason::{CANCELLED, TIMED_OUT};
        r == CANCELLED || r == TIMED_OUT
    };
    if ignored && !stopped && !condition.reason.as_deref().is_some_and(stopped_for) {
        condition.reason = Some(tektite_api::v1::taskrun_reason::FAILURE_IGNORED.into());
    }
}
