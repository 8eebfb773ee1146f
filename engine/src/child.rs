//! A PipelineRun's children as objects: a TaskRun for a pipeline task, a CustomRun for a
//! custom task, a PipelineRun for a task that runs a Pipeline (Pipelines in Pipelines),
//! with Tekton's names, labels, annotations and owner, and the run's
//! workspaces (a claim template bound to the claim it becomes), service account and
//! per-task settings. Both shells make their children here: the controller creates them,
//! `tkt run` runs and reports them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tektite_api::labels;
use tektite_api::v1::{
    self, API_VERSION, ChildStatusReference, PipelineRun, PipelineRunSpec, PipelineSpec,
    PipelineTaskRunSpec, TaskRef, TaskRun, TaskRunSpec, TimeoutFields, WorkspaceBinding,
};
use tektite_api::v1beta1::{self, CustomRun, CustomRunSpec, EmbeddedCustomRunSpec};

use crate::names::claim_name;
use crate::pipeline::{ChildRun, Start};
use crate::pod::controller_ref;

/// The TaskRun of `child`, one run of `start`'s pipeline task. `pipeline_name` is the
/// Pipeline's (empty for an embedded pipelineSpec).
pub fn task_run(pr: &PipelineRun, pipeline_name: &str, start: &Start, child: &ChildRun) -> TaskRun {
    TaskRun {
        api_version: Some(API_VERSION.into()),
        kind: Some("TaskRun".into()),
        metadata: metadata(pr, pipeline_name, start, child, true),
        spec: task_run_spec(pr, start, child),
        status: None,
    }
}

/// `status.childReferences[]` for child `name`, a `kind` at `api_version`, of pipeline
/// task `task` of `spec`: the task's `when` expressions go with it, as Tekton reports them.
pub fn reference(
    api_version: &str,
    kind: &str,
    name: &str,
    task: &str,
    spec: &PipelineSpec,
) -> ChildStatusReference {
    let when = spec
        .tasks
        .iter()
        .chain(&spec.finally)
        .find(|t| t.name == task)
        .map(|t| t.when.clone())
        .unwrap_or_default();
    ChildStatusReference {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
        name: name.to_owned(),
        pipeline_task_name: task.to_owned(),
        when_expressions: when,
        ..ChildStatusReference::default()
    }
}

/// The CustomRun of `child`, one run of `start`'s custom task.
pub fn custom_run(
    pr: &PipelineRun,
    pipeline_name: &str,
    start: &Start,
    child: &ChildRun,
) -> CustomRun {
    CustomRun {
        api_version: Some(v1beta1::API_VERSION.into()),
        kind: Some("CustomRun".into()),
        metadata: metadata(pr, pipeline_name, start, child, false),
        spec: custom_run_spec(pr, start, child),
        status: None,
    }
}

/// The child PipelineRun of `child`, one run of `start`'s Pipeline (its `pipelineRef`, or
/// its `pipelineSpec` passed on as written): the task's params and workspaces, the run's
/// TaskRun template and owner. Its `tekton.dev/pipeline` label names the Pipeline it runs,
/// which is how a chain of runs is seen to repeat (see [`repeats`]). The task's timeout,
/// cut to what the run's leave, is its pipeline timeout.
pub fn pipeline_run(
    pr: &PipelineRun,
    pipeline_name: &str,
    start: &Start,
    child: &ChildRun,
) -> PipelineRun {
    let task = &start.task;
    let mut metadata = metadata(pr, pipeline_name, start, child, false);
    if let Some(name) = task.pipeline_ref.as_ref().and_then(|r| r.name.clone())
        && let Some(l) = metadata.labels.as_mut()
    {
        l.insert(labels::PIPELINE.into(), name);
    }
    PipelineRun {
        api_version: Some(API_VERSION.into()),
        kind: Some("PipelineRun".into()),
        metadata,
        spec: PipelineRunSpec {
            pipeline_ref: task.pipeline_ref.clone(),
            pipeline_spec: task.pipeline_spec.as_deref().cloned(),
            params: child.params.clone(),
            timeouts: timeout(start).map(|t| TimeoutFields {
                pipeline: Some(t),
                ..TimeoutFields::default()
            }),
            task_run_template: pr.spec.task_run_template.clone(),
            workspaces: workspaces(pr, start),
            managed_by: pr.spec.managed_by.clone(),
            ..PipelineRunSpec::default()
        },
        status: None,
    }
}

/// Whether running Pipeline `target` under a run whose chain of Pipelines (its own, its
/// parent's, ... : their `tekton.dev/pipeline` labels) is `ancestors` repeats one of
/// them: then the child would run itself, without end. The message names the chain.
pub fn repeats<'a>(target: &str, ancestors: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut chain: Vec<&str> = Vec::new();
    for a in ancestors {
        chain.push(a);
        if a == target {
            chain.reverse();
            return Some(format!(
                "Pipeline {target:?} would run itself: {} → {target}; a Pipeline cannot be its own child",
                chain.join(" → ")
            ));
        }
    }
    None
}

/// Tekton's labels (the run's own, then pipeline, run, task and membership), the run's
/// annotations, and the run as controlling owner.
fn metadata(
    pr: &PipelineRun,
    pipeline_name: &str,
    start: &Start,
    child: &ChildRun,
    task_run: bool,
) -> ObjectMeta {
    let task = &start.task;
    let mut labels_map = pr.metadata.labels.clone().unwrap_or_default();
    if !pipeline_name.is_empty() {
        labels_map.insert(labels::PIPELINE.into(), pipeline_name.into());
    }
    labels_map.insert(
        labels::PIPELINE_RUN.into(),
        pr.metadata.name.clone().unwrap_or_default(),
    );
    labels_map.insert(
        labels::PIPELINE_RUN_UID.into(),
        pr.metadata.uid.clone().unwrap_or_default(),
    );
    labels_map.insert(labels::PIPELINE_TASK.into(), task.name.clone());
    labels_map.insert(
        labels::MEMBER_OF.into(),
        if start.finally { "finally" } else { "tasks" }.into(),
    );
    if task_run && let Some(n) = task.task_ref.as_ref().and_then(|r| r.name.clone()) {
        labels_map.insert(labels::TASK.into(), n);
    }
    let mut annotations: BTreeMap<String, String> = pr
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !labels::NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if task_run && task.on_error == Some(tektite_api::v1::OnError::Continue) {
        annotations.insert(labels::PIPELINE_TASK_ON_ERROR.into(), "continue".into());
    }
    ObjectMeta {
        name: Some(child.name.clone()),
        namespace: pr.metadata.namespace.clone(),
        labels: Some(labels_map),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: controller_ref(pr).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

fn per_task<'p>(pr: &'p PipelineRun, start: &Start) -> Option<&'p PipelineTaskRunSpec> {
    pr.spec
        .task_run_specs
        .iter()
        .find(|s| s.pipeline_task_name == start.task.name)
}

fn service_account(pr: &PipelineRun, start: &Start) -> Option<String> {
    per_task(pr, start)
        .and_then(|s| s.service_account_name.clone())
        .or_else(|| {
            pr.spec
                .task_run_template
                .as_ref()
                .and_then(|t| t.service_account_name.clone())
        })
}

fn workspaces(pr: &PipelineRun, start: &Start) -> Vec<WorkspaceBinding> {
    start
        .task
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
        .collect()
}

fn timeout(start: &Start) -> Option<v1::Duration> {
    start.timeout.map(|t| v1::Duration::from(t.unsigned_abs()))
}

fn task_run_spec(pr: &PipelineRun, start: &Start, child: &ChildRun) -> TaskRunSpec {
    let task = &start.task;
    let per_task = per_task(pr, start);
    TaskRunSpec {
        params: child.params.clone(),
        service_account_name: service_account(pr, start),
        task_ref: task.task_ref.clone().map(|r| TaskRef {
            kind: r.kind.clone().or(Some("Task".into())),
            ..r
        }),
        task_spec: task.task_spec.as_ref().map(|e| e.task.clone()),
        retries: task.retries,
        timeout: timeout(start),
        pod_template: per_task.and_then(|s| s.pod_template.clone()).or_else(|| {
            pr.spec
                .task_run_template
                .as_ref()
                .and_then(|t| t.pod_template.clone())
        }),
        workspaces: workspaces(pr, start),
        step_specs: per_task.map(|s| s.step_specs.clone()).unwrap_or_default(),
        sidecar_specs: per_task
            .map(|s| s.sidecar_specs.clone())
            .unwrap_or_default(),
        compute_resources: per_task.and_then(|s| s.compute_resources.clone()),
        managed_by: pr.spec.managed_by.clone(),
        ..TaskRunSpec::default()
    }
}

/// As Tekton builds it: the reference (or the embedded spec, passed on as written), the
/// params, retries, timeout, service account and workspaces; the custom task's
/// controller does the rest.
fn custom_run_spec(pr: &PipelineRun, start: &Start, child: &ChildRun) -> CustomRunSpec {
    let task = &start.task;
    CustomRunSpec {
        custom_ref: task.task_ref.clone(),
        custom_spec: task.task_spec.as_ref().map(|e| EmbeddedCustomRunSpec {
            api_version: e.api_version.clone(),
            kind: e.kind.clone(),
            metadata: e.metadata.clone(),
            spec: e.spec.clone(),
        }),
        params: child.params.clone(),
        retries: task.retries,
        service_account_name: service_account(pr, start),
        timeout: timeout(start),
        workspaces: workspaces(pr, start),
        ..CustomRunSpec::default()
    }
}

/// The binding a child gets for pipeline workspace `from`, `sub_path` under it.
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
                pr.metadata.uid.as_deref().unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_that_runs_a_pipeline_becomes_a_child_pipeline_run() {
        let pr: PipelineRun = serde_saphyr::from_str(
            r#"
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: parent-run
  namespace: ci
  uid: u-1
  labels: {team: a}
spec:
  pipelineRef: {name: parent}
  managedBy: tektite.dev/controller
  taskRunTemplate: {serviceAccountName: builder}
  workspaces:
  - name: shared
    volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce]}}
"#,
        )
        .unwrap();
        let task: v1::PipelineTask = serde_saphyr::from_str(
            r#"
name: scans
pipelineRef: {name: security-scans}
params: [{name: repo, value: https://example.com/r.git}]
workspaces: [{name: source, workspace: shared, subPath: src}]
"#,
        )
        .unwrap();
        let start = Start {
            task,
            combinations: Vec::new(),
            finally: false,
            timeout: Some(jiff::SignedDuration::from_secs(600)),
        };
        let [child] = start.child_runs("parent-run").try_into().unwrap();
        let got = pipeline_run(&pr, "parent", &start, &child);
        let want: PipelineRun = serde_saphyr::from_str(
            r#"
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: parent-run-scans
  namespace: ci
  labels:
    team: a
    tekton.dev/pipeline: security-scans
    tekton.dev/pipelineRun: parent-run
    tekton.dev/pipelineRunUID: u-1
    tekton.dev/pipelineTask: scans
    tekton.dev/memberOf: tasks
  ownerReferences:
  - {apiVersion: tekton.dev/v1, kind: PipelineRun, name: parent-run, uid: u-1, controller: true, blockOwnerDeletion: true}
spec:
  pipelineRef: {name: security-scans}
  params: [{name: repo, value: https://example.com/r.git}]
  timeouts: {pipeline: 10m0s}
  taskRunTemplate: {serviceAccountName: builder}
  managedBy: tektite.dev/controller
  workspaces:
  - name: source
    subPath: src
    persistentVolumeClaim: {claimName: set-below}
"#,
        )
        .unwrap();
        let mut want = want;
        if let Some(c) = want.spec.workspaces[0].persistent_volume_claim.as_mut() {
            // The claim its template becomes, as for a TaskRun.
            c.claim_name = claim_name(None, "shared", "u-1");
        }
        assert_eq!(got, want);
    }

    #[test]
    fn a_chain_that_comes_back_to_its_pipeline_repeats() {
        assert_eq!(repeats("c", ["b", "a"]), None);
        assert_eq!(
            repeats("a", ["b", "a"]).as_deref(),
            Some("Pipeline \"a\" would run itself: a → b → a; a Pipeline cannot be its own child")
        );
        assert!(repeats("b", ["b"]).is_some());
    }
}
