//! The PipelineRun reconciler: not ours → done → the Pipeline (fetched once, then kept in
//! `status.pipelineSpec`; a child PipelineRun that would run a Pipeline above it fails
//! here) → its TaskRuns, CustomRuns and child PipelineRuns from the caches → the engine's
//! decision → create the children it starts (deterministic names: after a restart
//! AlreadyExists is success), cancel the ones it stops → one status write → requeue at
//! the next deadline.

mod children;
mod create;

pub use children::ChildKind;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use tektite_api::v1::{
    ChildStatusReference, Condition, Pipeline, PipelineRun, PipelineRunSpecStatus,
    PipelineRunStatus, PipelineSpec, pipelinerun_reason,
};
use tektite_engine::pipeline::{self, Cancel, PipelineRunFacts, Timeouts};

use crate::conditions::{is_done, transition};
use crate::context::Context;
use crate::metrics::{Kind, PipelineRunLabels, StatusLabel, status_of};
use crate::patch;

/// `spec.statusMessage` of a TaskRun stopped because its PipelineRun timed out.
pub const TIMED_OUT_MESSAGE: &str =
    "TaskRun cancelled as the PipelineRun it belongs to has timed out.";
/// `spec.statusMessage` of a TaskRun stopped because its PipelineRun was cancelled.
pub const CANCELLED_MESSAGE: &str =
    "TaskRun cancelled as the PipelineRun it belongs to has been cancelled.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("fetching Pipeline {name:?}: {source}")]
    GetPipeline {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating {kind} {name:?}: {source}")]
    CreateChild {
        kind: ChildKind,
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
    #[error("cancelling {kind} {name:?}: {source}")]
    CancelChild {
        kind: ChildKind,
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
            Error::CreateChild { .. } => "create_child",
            Error::CreateClaim { .. } => "create_claim",
            Error::CancelChild { .. } => "cancel_child",
            Error::WriteStatus { .. } => "write_status",
        }
    }
}

pub fn error_policy(pr: Arc<PipelineRun>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(pipeline_run = %pr.name_any(), %error, kind = error.metric_label(), "reconciling a PipelineRun failed");
    ctx.events.error(&*pr, error);
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

    let (spec, pipeline_name, ref_source) = match pipeline_spec(pr, &old, ctx).await? {
        Ok(found) => found,
        Err(c) if c.status == "Unknown" => {
            // Waiting for a resolver's answer: looked at again shortly.
            let new = PipelineRunStatus {
                conditions: transition(&old.conditions, c, now),
                start_time: Some(Time(started_at)),
                ..old.clone()
            };
            write_status(pr, ctx, &old, &new).await?;
            return Ok(Action::requeue(crate::resolve::WAITING_POLL));
        }
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

    let kids = children::of(pr, ctx);
    let gathered = pipeline::by_task(
        &spec,
        kids.iter().filter_map(|k| {
            let child = pipeline::Child {
                artifacts: k.artifacts(),
                ..pipeline::Child::of(k.outcome(), k.results())
            };
            Some((k.pipeline_task()?.to_owned(), child))
        }),
    );
    let cancel = Cancel::of(&pr.spec);
    let timeouts = Timeouts::of(&pr.spec);
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

    // Stop what the decision stops (when it is done, nothing runs any more).
    for k in &kids {
        let task = k.pipeline_task().unwrap_or_default();
        if let Some((_, why)) = d.stop.iter().find(|(n, _)| *n == task) {
            k.cancel(ctx, *why).await?;
        }
    }

    let mut refs: Vec<ChildStatusReference> = kids
        .iter()
        .map(|k| {
            children::reference(
                k.kind(),
                &k.name(),
                k.pipeline_task().unwrap_or_default(),
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
            tektite_engine::pod::controller_ref(pr),
            &pr.spec.workspaces,
        )
        .await
        .map_err(|(name, source)| Error::CreateClaim { name, source })?;
    }
    if !d.done {
        for s in &d.start {
            for child in s.child_runs(&name) {
                if !refs.iter().any(|r| r.name == child.name) {
                    let kind = create::child(pr, ctx, &pipeline_name, s, &child).await?;
                    refs.push(children::reference(kind, &child.name, &s.task.name, &spec));
                }
            }
        }
    }
    let finally_started = finally_started_at.or((d.finally_starts).then_some(now));
    let finished = d.done;
    let new = PipelineRunStatus {
        conditions: transition(&old.conditions, d.condition.clone(), now),
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
        provenance: ref_source
            .map(|r| tektite_api::v1::Provenance {
                ref_source: Some(r),
                ..Default::default()
            })
            .or_else(|| old.provenance.clone()),
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

/// The Pipeline, its name, and where a resolver found it (the first time only).
type FoundPipeline = (PipelineSpec, String, Option<tektite_api::v1::RefSource>);

/// The Pipeline to run; `Err(condition)` when it cannot be had.
async fn pipeline_spec(
    pr: &PipelineRun,
    old: &PipelineRunStatus,
    ctx: &Context,
) -> Result<Result<FoundPipeline, Condition>, Error> {
    let ref_name = pr.spec.pipeline_ref.as_ref().and_then(|r| r.name.clone());
    if let Some(spec) = &old.pipeline_spec {
        let name = ref_name.or_else(|| {
            let entry = old
                .provenance
                .as_ref()?
                .ref_source
                .as_ref()?
                .entry_point
                .clone();
            entry.filter(|_| pr.spec.pipeline_ref.is_some())
        });
        return Ok(Ok((spec.clone(), name.unwrap_or_default(), None)));
    }
    if let Some(spec) = &pr.spec.pipeline_spec {
        // A spec the PipelineRun embeds sees its workspaces undeclared.
        let mut spec = spec.clone();
        spec.propagate_workspaces(&pr.spec.workspaces, true);
        return Ok(Ok((spec, String::new(), None)));
    }
    let Some(r) = &pr.spec.pipeline_ref else {
        return Ok(Err(Condition::succeeded(
            "False",
            pipelinerun_reason::VALIDATION_FAILED,
            "the PipelineRun has neither pipelineRef nor pipelineSpec (spec.pipelineRef)",
        )));
    };
    // A child that would run a Pipeline above it, by name or as resolved, runs nothing.
    let repeats = |name: &str, field: &str| {
        let ancestors = ancestors(pr, ctx);
        tektite_engine::child::repeats(name, ancestors.iter().map(String::as_str)).map(|m| {
            Condition::succeeded(
                "False",
                pipelinerun_reason::VALIDATION_FAILED,
                format!("{m} ({field})"),
            )
        })
    };
    if let Some(resolver) = &r.resolver {
        let found = resolve_pipeline(pr, ctx, resolver, &r.params).await?;
        if let Ok((_, name, _)) = &found
            && let Some(c) = repeats(name, "spec.pipelineRef")
        {
            return Ok(Err(c));
        }
        return Ok(found);
    }
    let name = r.name.clone().unwrap_or_default();
    let ns = pr.namespace().unwrap_or_default();
    if let Some(c) = repeats(&name, "spec.pipelineRef.name") {
        return Ok(Err(c));
    }
    let api: Api<Pipeline> = Api::namespaced(ctx.client.clone(), &ns);
    match api.get_opt(&name).await {
        Ok(Some(p)) => {
            // Its embedded taskSpecs see its workspaces undeclared.
            let mut spec = p.spec;
            spec.propagate_workspaces(&pr.spec.workspaces, false);
            Ok(Ok((spec, name, None)))
        }
        Ok(None) => Ok(Err(Condition::succeeded(
            "False",
            pipelinerun_reason::COULD_NOT_GET_PIPELINE,
            format!("Pipeline {name:?} was not found in namespace {ns:?} (spec.pipelineRef.name)"),
        ))),
        Err(source) => Err(Error::GetPipeline { name, source }),
    }
}

/// A `pipelineRef` with a `resolver`: the Pipeline it resolves to (see
/// [`crate::resolve`]).
async fn resolve_pipeline(
    pr: &PipelineRun,
    ctx: &Context,
    resolver: &str,
    params: &[tektite_api::v1::Param],
) -> Result<Result<FoundPipeline, Condition>, Error> {
    let resolved = crate::resolve::resolve_spec::<PipelineSpec>(
        &ctx.client,
        &ctx.resolvers,
        &ctx.settings.sources,
        &pr.namespace().unwrap_or_default(),
        kube::Resource::controller_owner_ref(pr, &()).as_ref(),
        resolver,
        params,
        crate::resolve::Kind::Pipeline,
    )
    .await
    .map_err(|source| Error::GetPipeline {
        name: format!("{resolver} reference"),
        source,
    })?;
    Ok(match resolved {
        Ok((mut spec, name, source)) => {
            spec.propagate_workspaces(&pr.spec.workspaces, false);
            Ok((spec, name, Some(source)))
        }
        Err(why) => Err(why.condition(
            "spec.pipelineRef",
            pipelinerun_reason::COULD_NOT_GET_PIPELINE,
            "ResolvingPipelineRef",
        )),
    })
}

/// The Pipelines of the runs above a child PipelineRun, its parent's first: each one's
/// `tekton.dev/pipeline` label, else its pipelineRef, read from the cache up the chain of
/// controlling owners.
fn ancestors(pr: &PipelineRun, ctx: &Context) -> Vec<String> {
    let ns = pr.namespace().unwrap_or_default();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut current = pr.clone();
    while let Some(owner) = current
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "PipelineRun")
    {
        if !seen.insert(owner.uid.clone()) {
            break;
        }
        let Some(parent) = ctx
            .pipeline_runs
            .get(&ObjectRef::new(&owner.name).within(&ns))
        else {
            break;
        };
        let name = parent
            .labels()
            .get(tektite_api::labels::PIPELINE)
            .cloned()
            .or_else(|| {
                parent
                    .spec
                    .pipeline_ref
                    .as_ref()
                    .and_then(|r| r.name.clone())
            });
        out.extend(name);
        current = (*parent).clone();
    }
    out
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
        ctx.events.transition(pr, &old.conditions, &new.conditions);
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
