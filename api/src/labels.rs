//! The labels and container names a step Pod carries, shared by the controller that
//! writes them and the node agent that reads them. The `tekton.dev/*` keys are Tekton's,
//! so `kubectl get pods -l tekton.dev/taskRun=...` habits carry over.

/// `app.kubernetes.io/managed-by`: the controller a TaskRun or PipelineRun belongs to
/// (Tekton's defaulting sets it on runs). Never put on a Pod: Tekton's Pod informer
/// selects every Pod that has this key and reconciles the TaskRun that owns it, whatever
/// its `spec.managedBy`, so a tektite Pod carrying it would have two controllers.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`] on the runs `tkt run` makes.
pub const MANAGED_BY_TEKTITE: &str = "tektite";
/// The label on every step Pod tektite created, instead of [`MANAGED_BY`].
pub const TEKTITE_POD: &str = "tektite.dev/managed-by";
/// The value of [`TEKTITE_POD`].
pub const TEKTITE_POD_VALUE: &str = "tektite";
/// The label selector matching every step Pod tektite created.
pub const TEKTITE_POD_SELECTOR: &str = "tektite.dev/managed-by=tektite";

pub const TASK: &str = "tekton.dev/task";
pub const TASK_RUN: &str = "tekton.dev/taskRun";
pub const PIPELINE: &str = "tekton.dev/pipeline";
pub const PIPELINE_RUN: &str = "tekton.dev/pipelineRun";
pub const PIPELINE_TASK: &str = "tekton.dev/pipelineTask";
/// `tekton.dev/memberOf`: whether a PipelineRun's child is one of the tasks or of finally.
pub const MEMBER_OF: &str = "tekton.dev/memberOf";
/// `tekton.dev/pipelineRunUID`: the UID of a child's PipelineRun.
pub const PIPELINE_RUN_UID: &str = "tekton.dev/pipelineRunUID";
/// `tekton.dev/taskRunUID`: the UID of a Pod's TaskRun.
pub const TASK_RUN_UID: &str = "tekton.dev/taskRunUID";
/// The annotation on a pipeline task's TaskRun (and so its Pod) whose task has
/// `onError: continue`: its failure is reported as `FailureIgnored`.
pub const PIPELINE_TASK_ON_ERROR: &str = "pipeline.tekton.dev/pipeline-task-on-error";
/// Annotations kubectl writes that are not copied onto children.
pub const NOT_COPIED: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

const STEP_PREFIX: &str = "step-";
const SIDECAR_PREFIX: &str = "sidecar-";

/// The container running step `name`: `step-<name>`.
pub fn step_container(name: &str) -> String {
    format!("{STEP_PREFIX}{name}")
}

/// The container running sidecar `name`: `sidecar-<name>`.
pub fn sidecar_container(name: &str) -> String {
    format!("{SIDECAR_PREFIX}{name}")
}

/// What a container of a step Pod is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container<'a> {
    Step(&'a str),
    Sidecar(&'a str),
}

impl<'a> Container<'a> {
    /// `step-build` is step `build`, `sidecar-db` sidecar `db`; other names are neither.
    pub fn parse(container_name: &'a str) -> Option<Self> {
        if let Some(step) = container_name.strip_prefix(STEP_PREFIX) {
            Some(Self::Step(step))
        } else {
            container_name
                .strip_prefix(SIDECAR_PREFIX)
                .map(Self::Sidecar)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_round_trip() {
        assert_eq!(
            Container::parse(&step_container("build")),
            Some(Container::Step("build"))
        );
        assert_eq!(
            Container::parse(&sidecar_container("db")),
            Some(Container::Sidecar("db"))
        );
        assert_eq!(Container::parse("istio-proxy"), None);
    }

    #[test]
    fn the_selector_is_the_label_pair() {
        assert_eq!(
            TEKTITE_POD_SELECTOR,
            format!("{TEKTITE_POD}={TEKTITE_POD_VALUE}")
        );
    }
}
