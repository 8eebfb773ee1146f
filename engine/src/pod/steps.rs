//! A container per step, each running the entrypoint with its typed arguments (wait for
//! the step before, run, record, post), and a container per sidecar, as written: a native
//! sidecar (an init container with `restartPolicy: Always`, which the kubelet starts
//! before the steps and stops once they end) where the cluster has them, else a container
//! beside the steps.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1 as core;
use tektite_api::labels::{sidecar_container, step_container};
use tektite_api::step::EntrypointArgs;
use tektite_api::step::creds::Credential;
use tektite_api::step::layout::{
    PodPaths, ScriptOwner, Volume, script_name, step_dir_name, working_dir,
};
use tektite_api::v1::{OnError, TaskRun, TaskSpec, WorkspaceUsage};

use super::PodSettings;

/// A script to place: its file name under `/tekton/scripts` and its body.
pub type Script = (String, String);

fn mount(v: &Volume, read_only: bool) -> core::VolumeMount {
    core::VolumeMount {
        name: v.name(),
        mount_path: format!("/{}", v.mount_path()),
        read_only: read_only.then_some(true),
        ..core::VolumeMount::default()
    }
}

/// `mounts` plus those in `implicit` whose path the container does not mount itself.
fn with_implicit(
    own: &[core::VolumeMount],
    implicit: impl IntoIterator<Item = core::VolumeMount>,
) -> Vec<core::VolumeMount> {
    let mut out: Vec<core::VolumeMount> = implicit
        .into_iter()
        .filter(|m| !own.iter().any(|o| o.mount_path == m.mount_path))
        .collect();
    out.extend(own.iter().cloned());
    out
}

/// The workspace mounts of a step or sidecar that lists `usage`: every workspace no step
/// or sidecar lists (those are mounted everywhere), and the isolated ones it lists itself,
/// at its own mountPath where it gives one.
fn workspace_mounts(
    workspaces: &BTreeMap<String, core::VolumeMount>,
    isolated: &[&str],
    usage: &[WorkspaceUsage],
) -> Vec<core::VolumeMount> {
    let mut out: Vec<core::VolumeMount> = workspaces
        .iter()
        .filter(|(name, _)| !isolated.contains(&name.as_str()))
        .map(|(_, m)| m.clone())
        .collect();
    for u in usage {
        if let Some(m) = workspaces.get(&u.name) {
            let mut m = m.clone();
            if !u.mount_path.is_empty() {
                m.mount_path = u.mount_path.clone();
            }
            out.push(m);
        }
    }
    out
}

fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// The step and sidecar containers of `spec`; returns the scripts the init container places.
pub fn containers(
    pod: &mut core::PodSpec,
    spec: &TaskSpec,
    workspaces: &BTreeMap<String, core::VolumeMount>,
    settings: &PodSettings,
    credentials: &[Credential],
    artifacts: bool,
) -> Vec<Script> {
    let paths = PodPaths::in_pod();
    let n = spec.steps.len();
    let has_sidecars = !spec.sidecars.is_empty();
    let task_results: Vec<String> = spec.results.iter().map(|r| r.name.clone()).collect();
    let mut scripts = Vec::new();
    let mut containers = Vec::with_capacity(n);
    let mut sidecars = Vec::with_capacity(spec.sidecars.len());
    // Workspaces a step or sidecar lists are isolated to those that list them.
    let isolated: Vec<&str> = spec
        .steps
        .iter()
        .flat_map(|s| &s.workspaces)
        .chain(spec.sidecars.iter().flat_map(|s| &s.workspaces))
        .map(|u| u.name.as_str())
        .collect();
    for (i, step) in spec.steps.iter().enumerate() {
        let mut command = match &step.script {
            Some(body) => {
                let name = script_name(ScriptOwner::Step, i);
                scripts.push((name.clone(), body.clone()));
                vec![paths.script(&name).display().to_string()]
            }
            None => step.command.clone(),
        };
        command.extend(step.args.iter().cloned());
        let mut args = EntrypointArgs::new(paths.post_file(i), command);
        if i > 0 {
            args.wait_files = vec![paths.post_file(i - 1)];
        } else if has_sidecars {
            args.wait_files = vec![paths.ready_file()];
            args.wait_file_content = true;
        }
        args.step_metadata_dir = Some(paths.step_metadata_dir(&step.name));
        args.results_dir = Some(paths.mount_path(&Volume::Results));
        args.results = task_results.clone();
        args.step_results = step.results.iter().map(|r| r.name.clone()).collect();
        args.results_limit = settings.results_limit;
        args.artifacts_dir = artifacts.then(|| paths.mount_path(&Volume::Artifacts));
        args.termination_path = Some(paths.termination_file());
        // A variable left unsubstituted was refused by the build.
        args.on_error = step
            .on_error
            .as_ref()
            .and_then(|o| o.known())
            .unwrap_or(OnError::StopAndFail);
        args.timeout = step
            .timeout
            .as_ref()
            .and_then(|t| t.parse().ok())
            .filter(|t| !t.is_zero());
        let output = |c: &Option<tektite_api::v1::StepOutputConfig>| {
            c.as_ref().and_then(|c| c.path.clone()).map(PathBuf::from)
        };
        args.stdout_path = output(&step.stdout_config);
        args.stderr_path = output(&step.stderr_config);
        args.cancel_file = Some(paths.cancel_file());
        args.credentials = credentials.to_vec();
        args.when = step.when.clone();

        let mut implicit = vec![mount(&Volume::Bin, true)];
        implicit.extend((0..n).map(|j| mount(&Volume::Run(j), j != i)));
        // Every step reads the others' directories under /tekton/steps and writes only its
        // own, as in Tekton.
        let own = step_dir_name(&step.name);
        implicit.extend([
            mount(&Volume::Steps, true),
            core::VolumeMount {
                name: Volume::Steps.name(),
                mount_path: paths.step_metadata_dir(&step.name).display().to_string(),
                sub_path: Some(own),
                ..core::VolumeMount::default()
            },
            mount(&Volume::Results, false),
            mount(&Volume::Scripts, true),
            mount(&Volume::Home, false),
            mount(&Volume::Downward, true),
            mount(&Volume::Workspace, false),
        ]);
        if artifacts {
            implicit.push(mount(&Volume::Artifacts, false));
        }
        implicit.extend(workspace_mounts(workspaces, &isolated, &step.workspaces));
        implicit.extend(super::creds::mounts(credentials, i));
        containers.push(core::Container {
            name: step_container(&step.name),
            image: step.image.clone(),
            image_pull_policy: step.image_pull_policy.clone(),
            command: Some(vec![paths.entrypoint_binary().display().to_string()]),
            args: Some(args.to_args()),
            working_dir: Some(working_dir(step.working_dir.as_deref())),
            env: non_empty(&step.env),
            env_from: non_empty(&step.env_from),
            resources: step.compute_resources.clone(),
            volume_mounts: Some(with_implicit(&step.volume_mounts, implicit)),
            volume_devices: non_empty(&step.volume_devices),
            security_context: step.security_context.as_deref().cloned(),
            termination_message_path: Some(paths.termination_file().display().to_string()),
            termination_message_policy: Some("File".into()),
            ..core::Container::default()
        });
    }
    for (i, s) in spec.sidecars.iter().enumerate() {
        let mut implicit = Vec::new();
        let command = match &s.script {
            Some(body) => {
                let name = script_name(ScriptOwner::Sidecar, i);
                scripts.push((name.clone(), body.clone()));
                implicit.push(mount(&Volume::Scripts, true));
                Some(vec![paths.script(&name).display().to_string()])
            }
            None => non_empty(&s.command),
        };
        implicit.extend(workspace_mounts(workspaces, &isolated, &s.workspaces));
        let mounts = with_implicit(&s.volume_mounts, implicit);
        sidecars.push(core::Container {
            name: sidecar_container(&s.name),
            restart_policy: settings.native_sidecars.then(|| "Always".into()),
            image: s.image.clone(),
            image_pull_policy: s.image_pull_policy.clone(),
            command,
            args: non_empty(&s.args),
            working_dir: s.working_dir.clone(),
            ports: non_empty(&s.ports),
            env: non_empty(&s.env),
            env_from: non_empty(&s.env_from),
            resources: s.compute_resources.clone(),
            volume_mounts: non_empty(&mounts),
            volume_devices: non_empty(&s.volume_devices),
            liveness_probe: s.liveness_probe.clone(),
            readiness_probe: s.readiness_probe.clone(),
            startup_probe: s.startup_probe.clone(),
            lifecycle: s.lifecycle.clone(),
            termination_message_path: s.termination_message_path.clone(),
            termination_message_policy: s.termination_message_policy.clone(),
            security_context: s.security_context.as_deref().cloned(),
            stdin: s.stdin,
            ..core::Container::default()
        });
    }
    if settings.native_sidecars {
        pod.init_containers
            .get_or_insert_with(Vec::new)
            .extend(sidecars);
    } else {
        containers.extend(sidecars);
    }
    pod.containers = containers;
    scripts
}

/// The TaskRun's `stepSpecs`/`sidecarSpecs` overrides, then its Task-level
/// `computeResources`: the limits on every step, the requests shared out among them.
pub fn apply_compute_resources(pod: &mut core::PodSpec, tr: &TaskRun) {
    for o in &tr.spec.step_specs {
        if let Some(c) = pod
            .containers
            .iter_mut()
            .find(|c| c.name == step_container(&o.name))
        {
            c.resources = Some(o.compute_resources.clone());
        }
    }
    for o in &tr.spec.sidecar_specs {
        if let Some(c) = pod
            .containers
            .iter_mut()
            .chain(pod.init_containers.iter_mut().flatten())
            .find(|c| c.name == sidecar_container(&o.name))
        {
            c.resources = Some(o.compute_resources.clone());
        }
    }
    let Some(task_level) = &tr.spec.compute_resources else {
        return;
    };
    let steps: Vec<&mut core::Container> = pod
        .containers
        .iter_mut()
        .filter(|c| c.name.starts_with("step-"))
        .collect();
    let n = steps.len();
    let requests = task_level
        .requests
        .as_ref()
        .or(task_level.limits.as_ref())
        .map(|r| super::quantity::share(r, n));
    for c in steps {
        let r = c.resources.get_or_insert_with(Default::default);
        r.requests = requests.clone();
        r.limits = task_level.limits.clone();
    }
}
