//! Creating a PipelineRun's children (built by `tektite_engine::child`). Names are
//! deterministic, so after a restart AlreadyExists is success.

use kube::ResourceExt;
use kube::api::{Api, PostParams};
use tektite_api::v1::{PipelineRun, TaskRun};
use tektite_api::v1beta1::CustomRun;
use tektite_engine::pipeline::{ChildRun, Start};

use super::Error;
use super::children::ChildKind;
use crate::context::Context;

/// Creates the child `child` of `start`: a CustomRun for a custom task, a PipelineRun for a
/// task that runs a Pipeline, else a TaskRun.
pub async fn child(
    pr: &PipelineRun,
    ctx: &Context,
    pipeline_name: &str,
    start: &Start,
    child: &ChildRun,
) -> Result<ChildKind, Error> {
    let ns = pr.namespace().unwrap_or_default();
    let (kind, created) = if start.task.runs_pipeline() {
        let run = tektite_engine::child::pipeline_run(pr, pipeline_name, start, child);
        let created = Api::<PipelineRun>::namespaced(ctx.client.clone(), &ns)
            .create(&PostParams::default(), &run)
            .await
            .map(drop);
        (ChildKind::PipelineRun, created)
    } else if start.task.is_custom() {
        let cr = tektite_engine::child::custom_run(pr, pipeline_name, start, child);
        let created = Api::<CustomRun>::namespaced(ctx.client.clone(), &ns)
            .create(&PostParams::default(), &cr)
            .await
            .map(drop);
        (ChildKind::CustomRun, created)
    } else {
        let tr = tektite_engine::child::task_run(pr, pipeline_name, start, child);
        let created = Api::<TaskRun>::namespaced(ctx.client.clone(), &ns)
            .create(&PostParams::default(), &tr)
            .await
            .map(drop);
        (ChildKind::TaskRun, created)
    };
    match created {
        Ok(()) => {
            tracing::info!(%kind, name = %child.name, pipeline_task = %start.task.name, "created the child");
            Ok(kind)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(kind),
        Err(source) => Err(Error::CreateChild {
            kind,
            name: child.name.clone(),
            source,
        }),
    }
}
