//! The tekton.dev/v1 types, field for field with Tekton's v1 API.

mod duration;
mod params;
mod pipeline;
mod pipelinerun;
mod pod_template;
pub(crate) mod schema;
mod status;
mod task;
mod taskrun;
pub mod when;
mod workspace;

pub use duration::{Duration, DurationError, parse_go_duration};
pub use params::{Param, ParamSpec, ParamType, ParamValue, PropertySpec};
pub use pipeline::{
    EmbeddedTask, IncludeParams, Matrix, Pipeline, PipelineRef, PipelineResult, PipelineSpec,
    PipelineTask, PipelineTaskMetadata, TaskRef,
};
pub use pipelinerun::{
    ChildStatusReference, PipelineRun, PipelineRunResult, PipelineRunSpec, PipelineRunSpecStatus,
    PipelineRunStatus, PipelineTaskRunSpec, PipelineTaskRunTemplate, SkippedTask, TimeoutFields,
    skip_reason,
};
pub use pod_template::PodTemplate;
pub use status::{Condition, Provenance, RefSource, SUCCEEDED, pipelinerun_reason, taskrun_reason};
pub use task::{
    OnError, Ref, Sidecar, Step, StepOnError, StepOutputConfig, StepResult, StepTemplate, Task,
    TaskResult, TaskSpec,
};
pub use taskrun::{
    Artifact, ArtifactValue, Artifacts, SidecarState, StepState, TaskBreakpoints, TaskRun,
    TaskRunDebug, TaskRunResult, TaskRunSidecarSpec, TaskRunSpec, TaskRunSpecStatus, TaskRunStatus,
    TaskRunStepSpec,
};
pub use when::{WhenExpression, WhenOperator};
pub use workspace::{
    BindingSource, PipelineWorkspaceDeclaration, WorkspaceBinding, WorkspaceDeclaration,
    WorkspacePipelineTaskBinding, WorkspaceUsage,
};

/// The API group of every tektite kind.
pub const GROUP: &str = "tekton.dev";
/// The version these types are.
pub const VERSION: &str = "v1";
/// `tekton.dev/v1`.
pub const API_VERSION: &str = "tekton.dev/v1";

/// Makes a kind a Kubernetes resource for k8s-openapi (and so for kube, which builds on
/// these traits), without this crate depending on a Kubernetes client. `API_VERSION`,
/// `GROUP` and `VERSION` are those where it is called (v1 here, v1beta1 there).
macro_rules! resource {
    ($ty:ident, $plural:literal) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = API_VERSION;
            const GROUP: &'static str = GROUP;
            const KIND: &'static str = stringify!($ty);
            const VERSION: &'static str = VERSION;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::ListableResource for $ty {
            const LIST_KIND: &'static str = concat!(stringify!($ty), "List");
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }
    };
}

pub(crate) use resource;

resource!(Task, "tasks");
resource!(TaskRun, "taskruns");
resource!(Pipeline, "pipelines");
resource!(PipelineRun, "pipelineruns");
