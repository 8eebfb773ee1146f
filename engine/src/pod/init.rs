//! The one init container: copies the entrypoint into `/tekton/bin`, places the scripts,
//! and creates every step's directories and wake FIFO and the working directories under
//! `/workspace`. Tekton uses two or three init containers; each costs a kubelet relist
//! (about a second) on a real node, so tektite does all of it in one.

use k8s_openapi::api::core::v1 as core;
use tektite_api::step::InitArgs;
use tektite_api::step::layout::{PodPaths, Volume, working_dir};
use tektite_api::v1::TaskSpec;

use super::steps::Script;
use super::{ENTRYPOINT_IN_IMAGE, INIT_CONTAINER, PodSettings};

pub fn container(spec: &TaskSpec, scripts: Vec<Script>, settings: &PodSettings) -> core::Container {
    let paths = PodPaths::in_pod();
    let n = spec.steps.len();
    let mut dirs: Vec<String> = Vec::new();
    for step in &spec.steps {
        let dir = working_dir(step.working_dir.as_deref());
        // Only `/workspace` is known to be writable here; other directories are the image's.
        let under_workspace = format!("/{}/", Volume::Workspace.mount_path());
        if dir.starts_with(&under_workspace) && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let args = InitArgs {
        copy_self_to: Some(paths.entrypoint_binary()),
        scripts_dir: (!scripts.is_empty()).then(|| paths.mount_path(&Volume::Scripts)),
        scripts,
        steps_dir: Some(paths.mount_path(&Volume::Steps)),
        step_names: spec.steps.iter().map(|s| s.name.clone()).collect(),
        run_dirs: (0..n).map(|i| paths.mount_path(&Volume::Run(i))).collect(),
        dirs: dirs.into_iter().map(Into::into).collect(),
    };
    let mount = |v: Volume| core::VolumeMount {
        name: v.name(),
        mount_path: format!("/{}", v.mount_path()),
        ..core::VolumeMount::default()
    };
    let mut mounts = vec![
        mount(Volume::Bin),
        mount(Volume::Scripts),
        mount(Volume::Steps),
    ];
    mounts.extend((0..n).map(|i| mount(Volume::Run(i))));
    mounts.push(mount(Volume::Workspace));
    core::Container {
        name: INIT_CONTAINER.into(),
        image: Some(settings.entrypoint_image.clone()),
        command: Some(vec![ENTRYPOINT_IN_IMAGE.into()]),
        // The kubelet expands `$(VAR)` in args and turns `$$` into `$`: every `$` of a
        // script is doubled so that it reaches the init container as written.
        args: Some(
            args.to_args()
                .into_iter()
                .map(|a| a.replace('$', "$$"))
                .collect(),
        ),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..core::Container::default()
    }
}
