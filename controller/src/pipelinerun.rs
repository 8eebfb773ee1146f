//! The PipelineRun reconciler: not ours → done → the Pipeline (fetched once, then kept in
//! `status.pipelineSpec`) → its TaskRuns from the cache → the engine's decision → create
//! the TaskRuns it starts (deterministic names: after a restart AlreadyExists is success),
//! cancel the ones it stops → one status write → requeue at the next deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use kube::api::{Api, Patch, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tektite_api::labels;
use tektite_api::v1::{
    self, API_VERSION, ChildStatusReference, Condition, ParamValue, Pipeline, PipelineRun,
    PipelineRunSpecStatus, PipelineRunStatus, PipelineSpec, TaskRef, TaskRun, TaskRunSpec,
    TaskRunSpecStatus, WorkspaceBinding, pipelinerun_reason,
};
use tektite_engine::names::{DEFAULT_TIMEOUT, claim_name};
use tektite_engine::pipeline::{
    self, Cancel, Child, Outcome, PipelineRunFacts, Start, Stop, Timeouts,
};

use crate::conditions::{condition, is_done, transition};
use crate::context::Context;
use crate::metrics::{Kind, PipelineRunLabels, StatusLabel, status_of};
use crate::patch::{self, write_params};

/// `spec.statusMessage` of a TaskRun stopped because its PipelineRun timed out.
pub const TIMED_OUT_MESSAGE: &str =
    "TaskRun cancelled as the PipelineRun it belongs to has timed out.";
/// `spec.statusMessage` of a TaskRun stopped because its PipelineRun was cancelled.
pub const CANCELLED_MESSAGE: &str =
    "TaskRun cancelled as the PipelineRun it belongs to has been cancelled.";
/// `tekton.dev/memberOf`: whether a TaskRun is one of the tasks or of finally.
pub const MEMBER_OF: &str = "tekton.dev/memberOf";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("fetching Pipeline {name:?}: {source}")]
    GetPipeline {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating TaskRun {name:?}: {source}")]
    CreateTaskRun {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating PersistentVolumeClaim {name:?}: {source}")]
    CreateClaim {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cancelling TaskRun {name:?}: {source}")]
    CancelTaskRun {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of PipelineRun {name:?}: {source}")]
    WriteStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::GetPipeline { .. } => "get_pipeline",
            Error::CreateTaskRun { .. } => "create_taskrun",
            Error::CreateClaim { .. } => "create_claim",
            Error::CancelTaskRun { .. } => "cancel_taskrun",
            Error::WriteStatus { .. } => "write_status",
        }
    }
}

pub fn error_policy(pr: Arc<PipelineRun>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(pipeline_run = %pr.name_any(), %error, kind = error.metric_label(), "reconciling a PipelineRun failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&Kind::PipelineRun.label())
        .inc();
    Action::requeue(Duration::from_secs(5))
}

#[tracing::instrument(skip_all, fields(pipeline_run = %pr.name_any(), namespace = pr.namespace().unwrap_or_default()))]
pub async fn reconcile(pr: Arc<PipelineRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let began = Instant::now();
    let out = reconcile_run(&pr, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .get_or_create(&Kind::PipelineRun.label())
        .observe(began.elapsed().as_secs_f64());
    out
}

/// The PipelineRun's own TaskRuns in the cache, in name order.
fn children(pr: &PipelineRun, ctx: &Context) -> Vec<Arc<TaskRun>> {
    let ns = pr.namespace().unwrap_or_default();
    ctx.task_run_owners
        .names(&pr.uid().unwrap_or_default())
        .iter()
        .filter_map(|name| ctx.task_runs.get(&ObjectRef::new(name).within(&ns)))
        .collect()
}

fn outcome(tr: &TaskRun) -> Outcome {
    let conditions = tr
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if !is_done(conditions) {
        return Outcome::Running;
    }
    let timed_out = tr.spec.status_message.as_deref() == Some(TIMED_OUT_MESSAGE);
    Outcome::of_finished(conditions.first(), timed_out)
}

fn results(tr: &TaskRun) -> BTreeMap<String, ParamValue> {
    tr.status
        .iter()
        .flat_map(|s| &s.results)
        .map(|r| (r.name.clone(), r.value.clone()))
        .collect()
}

async fn reconcile_run(pr: &PipelineRun, ctx: &Context) -> Result<Action, Error> {
    if !ctx.settings.claim.claims(pr.spec.managed_by.as_deref()) {
        return Ok(Action::await_change());
    }
    let old = pr.status.clone().unwrap_or_default();
    if is_done(&old.conditions) {
        return Ok(Action::await_change());
    }
    let name = pr.name_any();
    let ns = pr.namespace().unwrap_or_default();
    let uid = pr.uid().unwrap_or_default();
    let now = ctx.now();
    ctx.metrics.track(Kind::PipelineRun, &uid, true);
    let started_at = old.start_time.as_ref().map(|t| t.0).unwrap_or(now);

    let (spec, pipeline_name) = match pipeline_spec(pr, &old, ctx).await? {
        Ok(found) => found,
        Err(c) => {
            let new = PipelineRunStatus {
                conditions: transition(&old.conditions, c, now),
                start_time: Some(Time(started_at)),
                completion_time: Some(Time(now)),
                ..old.clone()
            };
            write_status(pr, ctx, &old, &new).await?;
            record_done(pr, ctx, &new, "", started_at, now);
            return Ok(Action::await_change());
        }
    };

    let kids = children(pr, ctx);
    let mut by_task: BTreeMap<String, (bool, Vec<Child>)> = BTreeMap::new();
    for t in &kids {
        let Some(task) = t.labels().get(labels::PIPELINE_TASK) else {
            continue;
        };
        let entry = by_task.entry(task.clone()).or_default();
        // A matrixed task's children are named `<run>-<task>-<i>`.
        entry.0 |= t.name_any() != tektite_engine::names::task_run_name(&name, task, None);
        entry.1.push(Child {
            outcome: outcome(t),
            results: results(t),
        });
    }
    let gathered: BTreeMap<String, Child> = by_task
        .into_iter()
        .map(|(task, (matrixed, mut c))| {
            let child = if matrixed {
                pipeline::gather(&c)
            } else {
                c.remove(0)
            };
            (task, child)
        })
        .collect();
    let cancel = match pr.spec.status {
        Some(PipelineRunSpecStatus::Cancelled) => Some(Cancel::Cancelled),
        Some(PipelineRunSpecStatus::CancelledRunFinally) => Some(Cancel::CancelledRunFinally),
        Some(PipelineRunSpecStatus::StoppedRunFinally) => Some(Cancel::StoppedRunFinally),
        _ => None,
    };
    let t = pr.spec.timeouts.clone().unwrap_or_default();
    let timeouts = Timeouts {
        pipeline: t
            .pipeline
            .as_ref()
            .and_then(v1::Duration::signed)
            .or(Some(DEFAULT_TIMEOUT)),
        tasks: t.tasks.as_ref().and_then(v1::Duration::signed),
        finally: t.finally.as_ref().and_then(v1::Duration::signed),
    };
    let finally_started_at = old.finally_start_time.as_ref().map(|t| t.0);
    let d = pipeline::decide(&PipelineRunFacts {
        name: &name,
        namespace: &ns,
        uid: &uid,
        pipeline_name: &pipeline_name,
        spec: &spec,
        params: &pr.spec.params,
        cancel,
        pending: pr.spec.status == Some(PipelineRunSpecStatus::PipelineRunPending),
        timeouts,
        started_at,
        finally_started_at,
        children: &gathered,
        now,
    });

    // Stop what the decision stops, and (when it is done) anything still running.
    let mut stops: Vec<(&TaskRun, Stop)> = Vec::new();
    for t in &kids {
        let task = t
            .labels()
            .get(labels::PIPELINE_TASK)
            .cloned()
            .unwrap_or_default();
        if let Some((_, why)) = d.stop.iter().find(|(n, _)| *n == task) {
            stops.push((t, *why));
        } else if d.done && outcome(t) == Outcome::Running {
            stops.push((t, Stop::Cancelled));
        }
    }
    let waiting = !stops.is_empty() && d.done;
    for (t, why) in stops {
        cancel_task_run(ctx, t, why).await?;
    }

    let mut refs: Vec<ChildStatusReference> = kids
        .iter()
        .map(|t| {
            child_ref(
                &t.name_any(),
                t.labels()
                    .get(labels::PIPELINE_TASK)
                    .cloned()
                    .unwrap_or_default(),
                &spec,
            )
        })
        .collect();
    if !d.done && !d.start.is_empty() && kids.is_empty() && old.child_references.is_empty() {
        // Before the first TaskRun: the claims its workspaces bind.
        let ns = pr.namespace().unwrap_or_default();
        patch::create_claims(
            &ctx.client,
            &ns,
            crate::patch::controller_ref(pr),
            &pr.spec.workspaces,
        )
        .await
        .map_err(|(name, source)| Error::CreateClaim { name, source })?;
    }
    if !d.done {
        for s in &d.start {
            for child in s.child_runs(&name) {
                if !refs.iter().any(|r| r.name == child.name) {
                    create_task_run(pr, ctx, &pipeline_name, s, &child).await?;
                    refs.push(child_ref(&child.name, s.task.name.clone(), &spec));
                }
            }
        }
    }
    let finally_started = finally_started_at.or((d.finally_starts).then_some(now));
    let finished = d.done && !waiting;
    let mut c: Condition = d.condition.clone();
    if (d.done && waiting) || (!d.done && c.status != "Unknown") {
        // Not done until the TaskRuns it stopped have stopped.
        c = condition(
            "Unknown",
            pipelinerun_reason::STOPPING,
            "the PipelineRun is stopping: waiting for its TaskRuns to stop",
        );
    }
    let new = PipelineRunStatus {
        conditions: transition(&old.conditions, c, now),
        start_time: Some(Time(started_at)),
        completion_time: finished.then_some(Time(now)),
        results: if finished {
            d.results.clone()
        } else {
            Vec::new()
        },
        pipeline_spec: Some(spec.clone()),
        skipped_tasks: d.skipped.clone(),
        child_references: refs,
        finally_start_time: finally_started.map(Time),
        ..old.clone()
    };
    write_status(pr, ctx, &old, &new).await?;
    if finished {
        record_done(pr, ctx, &new, &pipeline_name, started_at, now);
        return Ok(Action::await_change());
    }
    Ok(requeue_at(started_at, timeouts.pipeline, now))
}

fn requeue_at(started_at: Timestamp, timeout: Option<SignedDuration>, now: Timestamp) -> Action {
    let Some(t) = timeout.filter(|t| !t.is_zero()) else {
        return Action::await_change();
    };
    let left = started_at
        .checked_add(t)
        .map(|deadline| deadline.duration_since(now))
        .unwrap_or(SignedDuration::ZERO);
    Action::requeue(left.unsigned_abs().min(Duration::from_secs(3600)) + Duration::from_millis(10))
}

fn child_ref(name: &str, task: String, spec: &PipelineSpec) -> ChildStatusReference {
    let when = spec
        .tasks
        .iter()
        .chain(&spec.finally)
        .find(|t| t.name == task)
        .map(|t| t.when.clone())
        .unwrap_or_default();
    ChildStatusReference {
        api_version: Some(API_VERSION.into()),
        kind: Some("TaskRun".into()),
        name: name.to_owned(),
        pipeline_task_name: task,
        when_expressions: when,
        ..ChildStatusReference::default()
    }
}

/// The Pipeline and its name; `Err(condition)` when it cannot be had.
async fn pipeline_spec(
    pr: &PipelineRun,
    old: &PipelineRunStatus,
    ctx: &Context,
) -> Result<Result<(PipelineSpec, String), Condition>, Error> {
    let ref_name = pr.spec.pipeline_ref.as_ref().and_then(|r| r.name.clone());
    if let Some(spec) = &old.pipeline_spec {
        return Ok(Ok((spec.clone(), ref_name.unwrap_or_default())));
    }
    if let Some(spec) = &pr.spec.pipeline_spec {
        return Ok(Ok((spec.clone(), String::new())));
    }
    let Some(r) = &pr.spec.pipeline_ref else {
        return Ok(Err(condition(
            "False",
            pipelinerun_reason::VALIDATION_FAILED,
            "the PipelineRun has neither pipelineRef nor pipelineSpec (spec.pipelineRef)",
        )));
    };
    if r.resolver.is_some() {
        return Ok(Err(condition(
            "False",
            pipelinerun_reason::COULD_NOT_GET_PIPELINE,
            "tektite runs Pipelines of the PipelineRun's namespace; resolvers are not supported yet (spec.pipelineRef.resolver)",
        )));
    }
    let name = r.name.clone().unwrap_or_default();
    let ns = pr.namespace().unwrap_or_default();
    let api: Api<Pipeline> = Api::namespaced(ctx.client.clone(), &ns);
    match api.get_opt(&name).await {
        Ok(Some(p)) => Ok(Ok((p.spec, name))),
        Ok(None) => Ok(Err(condition(
            "False",
            pipelinerun_reason::COULD_NOT_GET_PIPELINE,
            format!("Pipeline {name:?} was not found in namespace {ns:?} (spec.pipelineRef.name)"),
        ))),
        Err(source) => Err(Error::GetPipeline { name, source }),
    }
}

/// The binding a TaskRun gets for pipeline workspace `from`, `sub_path` under it.
fn binding(
    pr: &PipelineRun,
    name: &str,
    from: &str,
    sub_path: Option<&str>,
) -> Option<WorkspaceBinding> {
    let b = pr.spec.workspaces.iter().find(|b| b.name == from)?;
    let mut out = b.clone();
    out.name = name.to_owned();
    if let Some(t) = &b.volume_claim_template {
        out.volume_claim_template = None;
        out.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim_name(
                t.metadata.name.as_deref(),
                &b.name,
                &pr.uid().unwrap_or_default(),
            ),
            read_only: None,
        });
    }
    out.sub_path = match (b.sub_path.as_deref(), sub_path) {
        (Some(a), Some(c)) => Some(format!("{a}/{c}")),
        (a, c) => a.or(c).map(str::to_owned),
    };
    Some(out)
}

async fn create_task_run(
    pr: &PipelineRun,
    ctx: &Context,
    pipeline_name: &str,
    start: &Start,
    child: &pipeline::ChildRun,
) -> Result<(), Error> {
    let task = &start.task;
    let ns = pr.namespace().unwrap_or_default();
    let mut labels_map = pr.labels().clone();
    if !pipeline_name.is_empty() {
        labels_map.insert(labels::PIPELINE.into(), pipeline_name.into());
    }
    labels_map.insert(labels::PIPELINE_RUN.into(), pr.name_any());
    labels_map.insert(labels::PIPELINE_TASK.into(), task.name.clone());
    labels_map.insert(
        MEMBER_OF.into(),
        if start.finally { "finally" } else { "tasks" }.into(),
    );
    if let Some(n) = task.task_ref.as_ref().and_then(|r| r.name.clone()) {
        labels_map.insert(labels::TASK.into(), n);
    }
    let template = pr.spec.task_run_template.clone().unwrap_or_default();
    let per_task = pr
        .spec
        .task_run_specs
        .iter()
        .find(|s| s.pipeline_task_name == task.name);
    let spec = TaskRunSpec {
        params: child.params.clone(),
        service_account_name: per_task
            .and_then(|s| s.service_account_name.clone())
            .or(template.service_account_name),
        task_ref: task.task_ref.clone().map(|r| TaskRef {
            kind: r.kind.clone().or(Some("Task".into())),
            ..r
        }),
        task_spec: task.task_spec.as_ref().map(|e| e.task.clone()),
        retries: task.retries,
        timeout: start.timeout.map(|t| v1::Duration::from(t.unsigned_abs())),
        pod_template: per_task
            .and_then(|s| s.pod_template.clone())
            .or(template.pod_template),
        workspaces: task
            .workspaces
            .iter()
            .filter_map(|w| {
                binding(
                    pr,
                    &w.name,
                    w.workspace.as_deref().unwrap_or(&w.name),
                    w.sub_path.as_deref(),
                )
            })
            .collect(),
        step_specs: per_task.map(|s| s.step_specs.clone()).unwrap_or_default(),
        sidecar_specs: per_task
            .map(|s| s.sidecar_specs.clone())
            .unwrap_or_default(),
        compute_resources: per_task.and_then(|s| s.compute_resources.clone()),
        managed_by: pr.spec.managed_by.clone(),
        ..TaskRunSpec::default()
    };
    let annotations: BTreeMap<String, String> = pr
        .annotations()
        .iter()
        .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let tr = TaskRun {
        api_version: Some(API_VERSION.into()),
        kind: Some("TaskRun".into()),
        metadata: ObjectMeta {
            name: Some(child.name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels_map),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: crate::patch::controller_ref(pr).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    let api: Api<TaskRun> = Api::namespaced(ctx.client.clone(), &ns);
    match api.create(&PostParams::default(), &tr).await {
        Ok(_) => {
            tracing::info!(task_run = %child.name, pipeline_task = %task.name, "created the TaskRun");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(source) => Err(Error::CreateTaskRun {
            name: child.name.clone(),
            source,
        }),
    }
}

/// As Tekton does: `spec.status: TaskRunCancelled`, with a message saying why.
async fn cancel_task_run(ctx: &Context, tr: &TaskRun, why: Stop) -> Result<(), Error> {
    if tr.spec.status.is_some() || outcome(tr) != Outcome::Running {
        return Ok(());
    }
    let message = match why {
        Stop::TimedOut => TIMED_OUT_MESSAGE,
        Stop::Cancelled => CANCELLED_MESSAGE,
    };
    let name = tr.name_any();
    let api: Api<TaskRun> =
        Api::namespaced(ctx.client.clone(), &tr.namespace().unwrap_or_default());
    let patch =
        json!({"spec": {"status": TaskRunSpecStatus::TaskRunCancelled, "statusMessage": message}});
    api.patch(&name, &write_params(), &Patch::Merge(patch))
        .await
        .map_err(|source| Error::CancelTaskRun { name, source })?;
    Ok(())
}

async fn write_status(
    pr: &PipelineRun,
    ctx: &Context,
    old: &PipelineRunStatus,
    new: &PipelineRunStatus,
) -> Result<(), Error> {
    let name = pr.name_any();
    let api: Api<PipelineRun> =
        Api::namespaced(ctx.client.clone(), &pr.namespace().unwrap_or_default());
    let written = patch::write_status(&api, &name, old, new)
        .await
        .map_err(|source| Error::WriteStatus { name, source })?;
    if written {
        ctx.metrics
            .count_write(&pr.uid().unwrap_or_default(), Kind::PipelineRun);
    }
    Ok(())
}

fn record_done(
    pr: &PipelineRun,
    ctx: &Context,
    s: &PipelineRunStatus,
    pipeline: &str,
    started_at: Timestamp,
    now: Timestamp,
) {
    ctx.metrics
        .track(Kind::PipelineRun, &pr.uid().unwrap_or_default(), false);
    let c = s.conditions.first();
    let ok = c.is_some_and(|c| c.status == "True");
    let status = status_of(ok, c.and_then(|c| c.reason.as_deref()).unwrap_or_default());
    ctx.metrics
        .pipelinerun_total
        .get_or_create(&StatusLabel {
            status: status.into(),
        })
        .inc();
    ctx.metrics
        .pipelinerun_duration
        .get_or_create(&PipelineRunLabels {
            namespace: pr.namespace().unwrap_or_default(),
            pipeline: pipeline.into(),
            status: status.into(),
        })
        .observe(now.duration_since(started_at).as_secs_f64());
}
