//! The TaskRun reconciler, a chain of early returns: not ours → done → no Pod yet (fetch
//! the Task, build and create the Pod) → the Pod failed → the steps' state (the agents'
//! reports first, Pod status as the fallback) → the engine's decision → one status write
//! → requeue at the next deadline. The shell fetches and writes; the engine decides.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use tektite_api::step::{StepReason, StepState};
use tektite_api::v1::{Condition, Task, TaskRun, TaskRunStatus, TaskSpec, taskrun_reason};
use tektite_engine::names::pod_name;

use tektite_api::v1beta1::{StepAction, StepActionSpec};
use tektite_engine::pipeline::Stop;
use tektite_engine::step_action;
use tektite_engine::taskrun::{self, TaskRunFacts};

use crate::conditions::{is_done, transition};
use crate::context::Context;
use crate::metrics::{Kind, StatusLabel, TaskLabels, TaskRunLabels, status_of};
use crate::patch::{self, write_params};
use tektite_api::step::creds::{self, Credential};
use tektite_engine::pod::{self, BuildError, PodRequest, READY_ANNOTATION, READY_VALUE, status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("fetching Task {name:?}: {source}")]
    GetTask {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("fetching StepAction {name:?}: {source}")]
    GetStepAction {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating Pod {name:?}: {source}")]
    CreatePod {
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
    #[error("reading Pod {name:?}: {source}")]
    GetPod {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("updating Pod {name:?}: {source}")]
    PatchPod {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting Pod {name:?}: {source}")]
    DeletePod {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading the credentials of ServiceAccount {name:?}: {source}")]
    GetCredentials {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of TaskRun {name:?}: {source}")]
    WriteStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::GetTask { .. } => "get_task",
            Error::GetStepAction { .. } => "get_step_action",
            Error::CreatePod { .. } => "create_pod",
            Error::CreateClaim { .. } => "create_claim",
            Error::GetPod { .. } => "get_pod",
            Error::PatchPod { .. } => "patch_pod",
            Error::DeletePod { .. } => "delete_pod",
            Error::GetCredentials { .. } => "get_credentials",
            Error::WriteStatus { .. } => "write_status",
        }
    }
}

/// After a failed reconcile: try again soon.
pub fn error_policy(tr: Arc<TaskRun>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(task_run = %tr.name_any(), %error, kind = error.metric_label(), "reconciling a TaskRun failed");
    ctx.events.error(&*tr, error);
    ctx.metrics
        .reconcile_errors
        .get_or_create(&Kind::TaskRun.label())
        .inc();
    Action::requeue(Duration::from_secs(5))
}

#[tracing::instrument(skip_all, fields(task_run = %tr.name_any(), namespace = tr.namespace().unwrap_or_default()))]
pub async fn reconcile(tr: Arc<TaskRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let began = Instant::now();
    let out = reconcile_run(&tr, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .get_or_create(&Kind::TaskRun.label())
        .observe(began.elapsed().as_secs_f64());
    out
}

async fn reconcile_run(tr: &TaskRun, ctx: &Context) -> Result<Action, Error> {
    if !ctx.settings.claim.claims(tr.spec.managed_by.as_deref()) {
        return Ok(Action::await_change());
    }
    let name = tr.name_any();
    let ns = tr.namespace().unwrap_or_default();
    let uid = tr.uid().unwrap_or_default();
    let old = tr.status.clone().unwrap_or_default();
    if is_done(&old.conditions) {
        if let Some(p) = ctx.pods.get(&ObjectRef::new(&old.pod_name).within(&ns)) {
            stop_sidecars(ctx, &p).await?;
        }
        return Ok(Action::await_change());
    }
    let now = ctx.now();
    let started_at = old.start_time.as_ref().map(|t| t.0).unwrap_or(now);
    let timeout = taskrun::timeout_of(&tr.spec);
    let cancelled = taskrun::cancelled(&tr.spec);
    let timed_out = !timeout.is_zero() && now.duration_since(started_at) > timeout;
    let retry = old.retries_status.len() as u32;
    let wanted_pod = pod_name(&name, retry);
    ctx.metrics.track(Kind::TaskRun, &uid, true);

    let mut found = ctx
        .pods
        .get(&ObjectRef::new(&wanted_pod).within(&ns))
        .map(|p| (*p).clone());
    if found.is_none() && old.pod_name == wanted_pod {
        // Created before: the cache may lag, or the Pod was deleted under us.
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        found = pods
            .get_opt(&wanted_pod)
            .await
            .map_err(|source| Error::GetPod {
                name: wanted_pod.clone(),
                source,
            })?;
        if found.is_none() {
            let c = Condition::succeeded(
                "False",
                taskrun_reason::FAILED,
                format!(
                    "the Pod {wanted_pod:?} of TaskRun {name:?} was deleted before it finished"
                ),
            );
            return finish(tr, ctx, &old, c, now).await;
        }
    }
    let Some(pod) = found else {
        let stop = if cancelled {
            Some(Stop::Cancelled)
        } else if timed_out {
            Some(Stop::TimedOut)
        } else {
            None
        };
        if let Some(why) = stop {
            let c = taskrun::stopped(&name, why, Some(timeout));
            return finish(tr, ctx, &old, c, now).await;
        }
        return start_pod(tr, ctx, &old, retry, now, started_at, timeout).await;
    };

    // The Pod runs (or ran): what did its steps do?
    let spec = match &old.task_spec {
        Some(s) => s.clone(),
        None => match fetch_spec(tr, ctx).await? {
            Ok(fetched) => match build_looking_up(tr, ctx, &fetched, retry, &[]).await? {
                Ok(b) => b.spec,
                Err(c) => return finish(tr, ctx, &old, c, now).await,
            },
            Err(c) => return finish(tr, ctx, &old, c, now).await,
        },
    };
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let reported: Vec<Option<StepState>> = {
        let agent = ctx.steps.steps(&pod_uid);
        (0..spec.steps.len())
            .map(|i| agent.get(&i).cloned())
            .collect()
    };
    let mut steps = status::merged_steps(&reported, &pod, &spec);
    let failure = status::failure(&pod, &name);
    if let Some(f) = &failure {
        taskrun::close_unfinished(&mut steps, now, StepReason::Error, &f.message);
    }
    if !spec.sidecars.is_empty() && !is_ready(&pod) && status::sidecars_ready(&pod, &spec) {
        mark_ready(ctx, &pod).await?;
    }
    let decide = |steps: &[Option<StepState>]| {
        taskrun::decide(&TaskRunFacts {
            name: &name,
            spec: &spec,
            steps,
            started_at,
            timeout: Some(timeout),
            cancelled,
            retries: tr.spec.retries.unwrap_or(0).max(0) as u32,
            retries_used: retry,
            now,
        })
    };
    let mut d = decide(&steps);
    if let Some(stop) = d.stop {
        // As Tekton does: the Pod is deleted, its unfinished steps end now.
        let (reason, why) = match stop {
            Stop::TimedOut => (StepReason::TimeoutExceeded, "the TaskRun timed out"),
            Stop::Cancelled => (StepReason::Cancelled, "the TaskRun was cancelled"),
        };
        taskrun::close_unfinished(&mut steps, now, reason, why);
        d = decide(&steps);
        delete_pod(ctx, &pod).await?;
    }
    let mut cond = d.condition.clone();
    status::failed_condition(&mut cond, failure.as_ref(), d.stop.is_some(), &pod, &spec);
    let mut new = TaskRunStatus {
        conditions: transition(&old.conditions, cond, now),
        pod_name: old.pod_name.clone(),
        start_time: Some(Time(started_at)),
        completion_time: d.done.then_some(Time(now)),
        steps: d.steps.clone(),
        results: d.results.clone(),
        artifacts: d.artifacts.clone(),
        task_spec: Some(spec.clone()),
        retries_status: old.retries_status.clone(),
        ..old.clone()
    };
    if d.retry {
        // This attempt goes to retriesStatus; the next one gets a new Pod.
        new = taskrun::rollover(&new);
        new.conditions = transition(&old.conditions, new.conditions.remove(0), now);
        write_status(tr, ctx, &old, &new).await?;
        ctx.steps.forget(&pod_uid);
        return Ok(Action::requeue(Duration::ZERO));
    }
    write_status(tr, ctx, &old, &new).await?;
    if d.done {
        ctx.steps.forget(&pod_uid);
        record_done(tr, ctx, &new, started_at, now);
        stop_sidecars(ctx, &pod).await?;
        return Ok(Action::await_change());
    }
    Ok(requeue_at(started_at, timeout, now))
}

/// Wakes at the timeout (Pod and agent events wake it sooner).
fn requeue_at(started_at: Timestamp, timeout: SignedDuration, now: Timestamp) -> Action {
    if timeout.is_zero() {
        return Action::await_change();
    }
    let left = started_at
        .checked_add(timeout)
        .map(|deadline| deadline.duration_since(now))
        .unwrap_or(SignedDuration::ZERO);
    let left = left.unsigned_abs().min(Duration::from_secs(3600));
    Action::requeue(left + Duration::from_millis(10))
}

fn is_ready(pod: &Pod) -> bool {
    pod.annotations()
        .get(READY_ANNOTATION)
        .is_some_and(|v| !v.is_empty())
}

/// What a TaskRun's Pod is built from, as read from the cluster.
struct Fetched {
    spec: TaskSpec,
    /// The Task's name when referenced.
    task_name: Option<String>,
    /// The StepActions its steps name (a missing one is not here: the build says so).
    step_actions: BTreeMap<String, StepActionSpec>,
    /// Where a resolver found the Task.
    ref_source: Option<tektite_api::v1::RefSource>,
}

/// The Task to run and the StepActions it names; `Err(condition)` when the Task cannot
/// be had.
async fn fetch_spec(tr: &TaskRun, ctx: &Context) -> Result<Result<Fetched, Condition>, Error> {
    let (mut spec, task_name, ref_source) = match fetch_task(tr, ctx).await? {
        Ok(found) => found,
        Err(c) => return Ok(Err(c)),
    };
    let ns = tr.namespace().unwrap_or_default();
    let api: Api<StepAction> = Api::namespaced(ctx.client.clone(), &ns);
    let mut step_actions = BTreeMap::new();
    for name in step_action::names(&spec) {
        let found = api
            .get_opt(&name)
            .await
            .map_err(|source| Error::GetStepAction {
                name: name.clone(),
                source,
            })?;
        if let Some(a) = found {
            step_actions.insert(name, a.spec);
        }
    }
    // A step whose StepAction comes by resolver refers to it, once resolved, by a name of
    // its own among the StepActions the build is given.
    for (i, step) in spec.steps.iter_mut().enumerate() {
        let Some(r) = step.ref_.as_ref() else {
            continue;
        };
        let Some(resolver) = r.resolver.clone() else {
            continue;
        };
        let found = crate::resolve::resolve_spec::<StepActionSpec>(
            &ctx.client,
            &ctx.resolvers,
            &ctx.settings.sources,
            &ns,
            tr.controller_owner_ref(&()).as_ref(),
            &resolver,
            &r.params,
            crate::resolve::Kind::StepAction,
        )
        .await
        .map_err(|source| Error::GetStepAction {
            name: format!("{resolver} reference of spec.steps[{i}]"),
            source,
        })?;
        match found {
            Ok((action, name, _)) => {
                let key = format!("{name} ({resolver} resolver, step {i})");
                step.ref_ = Some(tektite_api::v1::Ref {
                    name: Some(key.clone()),
                    ..Default::default()
                });
                step_actions.insert(key, action);
            }
            Err(why) => {
                return Ok(Err(why.condition(
                    &format!("spec.steps[{i}].ref"),
                    taskrun_reason::RESOLUTION_FAILED,
                    "ResolvingStepActionRef",
                )));
            }
        }
    }

    Ok(Ok(Fetched {
        spec,
        task_name,
        step_actions,
        ref_source,
    }))
}

/// The Task to run, its name when referenced, and where a resolver found it.
type FoundTask = (TaskSpec, Option<String>, Option<tektite_api::v1::RefSource>);

/// The Task to run.
async fn fetch_task(tr: &TaskRun, ctx: &Context) -> Result<Result<FoundTask, Condition>, Error> {
    if let Some(spec) = &tr.spec.task_spec {
        return Ok(Ok((spec.clone(), None, None)));
    }
    let Some(r) = &tr.spec.task_ref else {
        return Ok(Err(Condition::succeeded(
            "False",
            taskrun_reason::VALIDATION_FAILED,
            "the TaskRun has neither taskRef nor taskSpec (spec.taskRef)",
        )));
    };
    if let Some(resolver) = &r.resolver {
        return resolve_task(tr, ctx, resolver, &r.params).await;
    }
    if r.kind.as_deref().is_some_and(|k| k != "Task") {
        return Ok(Err(Condition::succeeded(
            "False",
            taskrun_reason::RESOLUTION_FAILED,
            format!(
                "tektite runs Tasks of the TaskRun's namespace; resolvers and other kinds ({}) are not supported yet (spec.taskRef)",
                r.resolver
                    .as_deref()
                    .or(r.kind.as_deref())
                    .unwrap_or_default()
            ),
        )));
    }
    let task_name = r.name.clone().unwrap_or_default();
    let tasks: Api<Task> = Api::namespaced(ctx.client.clone(), &tr.namespace().unwrap_or_default());
    match tasks.get_opt(&task_name).await {
        Ok(Some(t)) => Ok(Ok((t.spec, Some(task_name), None))),
        Ok(None) => Ok(Err(Condition::succeeded(
            "False",
            taskrun_reason::RESOLUTION_FAILED,
            format!(
                "Task {task_name:?} was not found in namespace {:?} (spec.taskRef.name)",
                tr.namespace().unwrap_or_default()
            ),
        ))),
        Err(source) => Err(Error::GetTask {
            name: task_name,
            source,
        }),
    }
}

/// A `taskRef` with a `resolver`: the Task it resolves to (see [`crate::resolve`]).
async fn resolve_task(
    tr: &TaskRun,
    ctx: &Context,
    resolver: &str,
    params: &[tektite_api::v1::Param],
) -> Result<Result<FoundTask, Condition>, Error> {
    let resolved = crate::resolve::resolve_spec::<TaskSpec>(
        &ctx.client,
        &ctx.resolvers,
        &ctx.settings.sources,
        &tr.namespace().unwrap_or_default(),
        tr.controller_owner_ref(&()).as_ref(),
        resolver,
        params,
        crate::resolve::Kind::Task,
    )
    .await
    .map_err(|source| Error::GetTask {
        name: format!("{resolver} reference"),
        source,
    })?;
    Ok(match resolved {
        Ok((spec, name, source)) => Ok((spec, Some(name), Some(source))),
        Err(why) => Err(why.condition(
            "spec.taskRef",
            taskrun_reason::RESOLUTION_FAILED,
            "ResolvingTaskRef",
        )),
    })
}

fn build(
    tr: &TaskRun,
    ctx: &Context,
    fetched: &Fetched,
    retry: u32,
    credentials: &[Credential],
    images: &BTreeMap<String, pod::ImageConfig>,
) -> Result<pod::Built, BuildError> {
    pod::build(&PodRequest {
        task_run: tr,
        spec: &fetched.spec,
        task_name: fetched.task_name.as_deref(),
        retry,
        settings: &ctx.settings.pod,
        credentials,
        step_actions: &fetched.step_actions,
        step_actions_from: &format!(" in namespace {:?}", tr.namespace().unwrap_or_default()),
        images,
    })
}

/// The Pod, its steps' images looked up first where the engine asks for them; `Err`: the
/// condition the TaskRun fails with.
async fn build_looking_up(
    tr: &TaskRun,
    ctx: &Context,
    fetched: &Fetched,
    retry: u32,
    credentials: &[Credential],
) -> Result<Result<pod::Built, Condition>, Error> {
    let mut built = build(tr, ctx, fetched, retry, credentials, &BTreeMap::new());
    if let Err(BuildError::NeedImages(needed)) = &built {
        let images = match look_up_images(tr, ctx, needed).await? {
            Ok(images) => images,
            Err(c) => return Ok(Err(c)),
        };
        built = build(tr, ctx, fetched, retry, credentials, &images);
    }
    Ok(built.map_err(|e| Condition::succeeded("False", e.reason(), e.to_string())))
}

/// The data of the docker config Secrets the Pod pulls with: its podTemplate's
/// imagePullSecrets, then its ServiceAccount's (missing ones are skipped, as the kubelet
/// skips them).
async fn pull_secrets(
    tr: &TaskRun,
    ctx: &Context,
) -> Result<Vec<BTreeMap<String, Vec<u8>>>, Error> {
    let ns = tr.namespace().unwrap_or_default();
    let account = tr
        .spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    let err = |source| Error::GetCredentials {
        name: account.clone(),
        source,
    };
    let mut names: Vec<String> = tr
        .spec
        .pod_template
        .iter()
        .flat_map(|t| t.image_pull_secrets.iter())
        .map(|r| r.name.clone())
        .collect();
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(sa) = accounts.get_opt(&account).await.map_err(err)? {
        names.extend(sa.image_pull_secrets.into_iter().flatten().map(|r| r.name));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut out = Vec::new();
    for name in names {
        if let Some(s) = secrets.get_opt(&name).await.map_err(err)? {
            out.push(
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// The configs of the images the steps in `needed` run, looked up in their registries;
/// `Err` is the condition the TaskRun fails with, naming the step and the image.
async fn look_up_images(
    tr: &TaskRun,
    ctx: &Context,
    needed: &[pod::NeedImage],
) -> Result<Result<BTreeMap<String, pod::ImageConfig>, Condition>, Error> {
    let secrets = pull_secrets(tr, ctx).await?;
    let mut images = BTreeMap::new();
    for n in needed {
        if images.contains_key(&n.image) {
            continue;
        }
        let registry = crate::images::Images::registry_of(&n.image).unwrap_or_default();
        let auth = crate::images::auth_for(&registry, &secrets);
        match ctx.settings.sources.images.config(&n.image, &auth).await {
            Ok(c) => {
                images.insert(n.image.clone(), c);
            }
            Err(why) => {
                tracing::info!(task_run = %tr.name_any(), image = %n.image, error = %why, "an image's entrypoint could not be looked up");
                return Ok(Err(Condition::succeeded(
                    "False",
                    taskrun_reason::POD_CREATION_FAILED,
                    format!(
                        "failed to create task run pod {:?}: step {:?} has neither command nor script, so it runs its image's entrypoint, which could not be looked up (spec.steps[{}].image): {why}",
                        tr.name_any(),
                        n.step,
                        n.index
                    ),
                )));
            }
        }
    }
    Ok(Ok(images))
}

/// What the Secrets of the TaskRun's ServiceAccount provide, as Tekton reads them. A
/// missing ServiceAccount provides none (creating the Pod then says it is missing); a
/// missing Secret is skipped with a warning.
async fn credentials(tr: &TaskRun, ctx: &Context) -> Result<Vec<Credential>, Error> {
    let ns = tr.namespace().unwrap_or_default();
    let name = tr
        .spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    let err = |source| Error::GetCredentials {
        name: name.clone(),
        source,
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(account) = accounts.get_opt(&name).await.map_err(err)? else {
        return Ok(Vec::new());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut out = Vec::new();
    for secret_name in creds::account_secrets(&account) {
        match secrets.get_opt(&secret_name).await.map_err(err)? {
            Some(s) => out.extend(creds::of_secret(&secret_name, &s)),
            None => tracing::warn!(
                task_run = %tr.name_any(), service_account = %name, secret = %secret_name,
                "a Secret the ServiceAccount lists does not exist: its credentials are left out"
            ),
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn start_pod(
    tr: &TaskRun,
    ctx: &Context,
    old: &TaskRunStatus,
    retry: u32,
    now: Timestamp,
    started_at: Timestamp,
    timeout: SignedDuration,
) -> Result<Action, Error> {
    let fetched = match fetch_spec(tr, ctx).await? {
        Ok(found) => found,
        Err(c) => return finish(tr, ctx, old, c, now).await,
    };
    let credentials = credentials(tr, ctx).await?;
    let built = match build_looking_up(tr, ctx, &fetched, retry, &credentials).await? {
        Ok(b) => b,
        Err(c) => return finish(tr, ctx, old, c, now).await,
    };
    let ns = tr.namespace().unwrap_or_default();
    patch::create_claims(
        &ctx.client,
        &ns,
        tektite_engine::pod::controller_ref(tr),
        &tr.spec.workspaces,
    )
    .await
    .map_err(|(name, source)| Error::CreateClaim { name, source })?;
    let pod_name = built.pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    match pods.create(&PostParams::default(), &built.pod).await {
        Ok(_) => {
            tracing::info!(pod = %pod_name, "created the Pod");
            if let Some(created) = tr.metadata.creation_timestamp.as_ref() {
                let ms = now.duration_since(created.0).as_millis();
                ctx.metrics
                    .pod_latency_ms
                    .get_or_create(&TaskLabels {
                        namespace: ns.clone(),
                        task: fetched.task_name.clone().unwrap_or_default(),
                    })
                    .set(ms as i64);
            }
        }
        // Created by an earlier reconcile (or before a restart): the same Pod.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(source) => {
            return Err(Error::CreatePod {
                name: pod_name,
                source,
            });
        }
    }
    let new = TaskRunStatus {
        conditions: transition(
            &old.conditions,
            Condition::succeeded("Unknown", taskrun_reason::PENDING, "Pending"),
            now,
        ),
        pod_name,
        start_time: Some(Time(started_at)),
        task_spec: Some(built.spec),
        retries_status: old.retries_status.clone(),
        provenance: fetched
            .ref_source
            .clone()
            .map(|r| tektite_api::v1::Provenance {
                ref_source: Some(r),
                ..Default::default()
            })
            .or_else(|| old.provenance.clone()),
        ..TaskRunStatus::default()
    };
    write_status(tr, ctx, old, &new).await?;
    Ok(requeue_at(started_at, timeout, now))
}

/// Ends the TaskRun with `c` before (or without) its Pod; an Unknown `c` (a resolver not
/// answered yet) is written without ending it.
async fn finish(
    tr: &TaskRun,
    ctx: &Context,
    old: &TaskRunStatus,
    c: Condition,
    now: Timestamp,
) -> Result<Action, Error> {
    let started_at = old.start_time.as_ref().map(|t| t.0).unwrap_or(now);
    if c.status == "Unknown" {
        // Not ended: waiting for a resolver's answer, looked at again shortly.
        let new = TaskRunStatus {
            conditions: transition(&old.conditions, c, now),
            start_time: Some(Time(started_at)),
            ..old.clone()
        };
        write_status(tr, ctx, old, &new).await?;
        return Ok(Action::requeue(crate::resolve::WAITING_POLL));
    }
    let new = TaskRunStatus {
        conditions: transition(&old.conditions, c, now),
        start_time: Some(Time(started_at)),
        completion_time: Some(Time(now)),
        ..old.clone()
    };
    write_status(tr, ctx, old, &new).await?;
    record_done(tr, ctx, &new, started_at, now);
    Ok(Action::await_change())
}

fn record_done(
    tr: &TaskRun,
    ctx: &Context,
    s: &TaskRunStatus,
    started_at: Timestamp,
    now: Timestamp,
) {
    let uid = tr.uid().unwrap_or_default();
    ctx.metrics.track(Kind::TaskRun, &uid, false);
    ctx.metrics.finish_writes(&uid);
    let c = s.conditions.first();
    let ok = c.is_some_and(|c| c.status == "True");
    let status = status_of(ok, c.and_then(|c| c.reason.as_deref()).unwrap_or_default());
    let m = &ctx.metrics;
    m.taskrun_total
        .get_or_create(&StatusLabel {
            status: status.into(),
        })
        .inc();
    let seconds = now.duration_since(started_at).as_secs_f64();
    let labels = tr.labels();
    // The Task, as Tekton's metrics name it: a pipeline task's label, else the Task the
    // taskRef names (a lone TaskRun has no label); empty for an embedded taskSpec.
    let task = labels
        .get(tektite_api::labels::TASK)
        .cloned()
        .or_else(|| {
            tr.spec
                .task_ref
                .as_ref()
                .filter(|r| r.resolver.is_none())
                .and_then(|r| r.name.clone())
        })
        .unwrap_or_default();
    let ns = tr.namespace().unwrap_or_default();
    match labels.get(tektite_api::labels::PIPELINE_RUN) {
        Some(_) => m
            .pipelinerun_taskrun_duration
            .get_or_create(&crate::metrics::PipelineTaskLabels {
                namespace: ns,
                pipeline: labels
                    .get(tektite_api::labels::PIPELINE)
                    .cloned()
                    .unwrap_or_default(),
                task,
                status: status.into(),
            })
            .observe(seconds),
        None => m
            .taskrun_duration
            .get_or_create(&TaskRunLabels {
                namespace: ns,
                task,
                status: status.into(),
            })
            .observe(seconds),
    }
}

/// One merge patch of what changed, if anything did.
async fn write_status(
    tr: &TaskRun,
    ctx: &Context,
    old: &TaskRunStatus,
    new: &TaskRunStatus,
) -> Result<(), Error> {
    let name = tr.name_any();
    let api: Api<TaskRun> =
        Api::namespaced(ctx.client.clone(), &tr.namespace().unwrap_or_default());
    let written = patch::write_status(&api, &name, old, new)
        .await
        .map_err(|source| Error::WriteStatus { name, source })?;
    if written {
        ctx.metrics
            .count_write(&tr.uid().unwrap_or_default(), Kind::TaskRun);
        ctx.events.transition(tr, &old.conditions, &new.conditions);
    }
    Ok(())
}

async fn mark_ready(ctx: &Context, pod: &Pod) -> Result<(), Error> {
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {READY_ANNOTATION: READY_VALUE}}});
    api.patch(&name, &write_params(), &Patch::Merge(patch))
        .await
        .map_err(|source| Error::PatchPod { name, source })?;
    Ok(())
}

async fn delete_pod(ctx: &Context, pod: &Pod) -> Result<(), Error> {
    if pod.meta().deletion_timestamp.is_some() {
        return Ok(());
    }
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::DeletePod { name, source }),
    }
}

/// Sidecars keep a finished Pod running; as Tekton does, each running one gets the
/// entrypoint image, which ends it.
async fn stop_sidecars(ctx: &Context, pod: &Pod) -> Result<(), Error> {
    let image = &ctx.settings.pod.entrypoint_image;
    let running = |name: &str| {
        pod.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.name == name && c.state.as_ref().is_some_and(|s| s.running.is_some()))
    };
    let stop: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter(|c| {
            c.name.starts_with("sidecar-") && c.image.as_ref() != Some(image) && running(&c.name)
        })
        .map(|c| json!({"name": c.name, "image": image}))
        .collect();
    if stop.is_empty() || pod.meta().deletion_timestamp.is_some() {
        return Ok(());
    }
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    api.patch(
        &name,
        &write_params(),
        &Patch::Strategic(json!({"spec": {"containers": stop}})),
    )
    .await
    .map_err(|source| Error::PatchPod { name, source })?;
    Ok(())
}
