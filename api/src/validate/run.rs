//! TaskRuns and PipelineRuns: what they reference and what they bind.

use super::pipeline::pipeline_spec;
use std::collections::{HashMap, HashSet};

use super::scope::{Scope, TypeInfo};
use super::task::{Outer, task_spec};
use super::{
    Catalog, Owner, Report, check_param_bindings, check_workspace_bindings, duplicates, timeout,
};
use crate::problem::FieldPath;
use crate::v1::{
    Param, ParamSpec, ParamValue, PipelineRun, PipelineSpec, TaskRun, TaskSpec, WorkspaceBinding,
};

/// What a run binds against, once its Task or Pipeline is known.
struct Target<'a> {
    owner: Owner,
    params: &'a [ParamSpec],
    workspaces: Vec<(&'a str, bool)>,
}

/// Looks a referenced Task or Pipeline up among the documents. Missing is a problem when
/// the catalog is complete (a local run), a note otherwise (it may be on the cluster).
pub(crate) fn by_name<'c, T>(
    found: Option<&'c T>,
    kind: &str,
    name: &str,
    path: &FieldPath,
    catalog: &Catalog<'_>,
    r: &mut Report,
) -> Option<(&'c T, Owner)> {
    if let Some(t) = found {
        return Some((t, Owner::named(kind, name)));
    }
    let msg = format!("{kind} {name:?} is not among the documents given; add its file");
    if catalog.complete {
        r.problem(path, msg);
    } else {
        r.note(path, format!("{msg} to check what is bound to it"));
    }
    None
}

/// Params and workspaces a run binds, checked against its target when it is known.
fn bindings(
    params: &[Param],
    workspaces: &[WorkspaceBinding],
    target: Option<&Target<'_>>,
    spec: &FieldPath,
    r: &mut Report,
) {
    let value_type = |v: &ParamValue| v.param_type();
    let Some(t) = target else {
        duplicates(
            params.iter().map(|p| p.name.as_str()),
            &spec.field("params"),
            "param",
            r,
        );
        check_workspace_bindings(workspaces, None, &spec.field("workspaces"), None, r);
        return;
    };
    check_param_bindings(
        params,
        &[],
        t.params,
        &spec.field("params"),
        &t.owner,
        &value_type,
        r,
    );
    check_workspace_bindings(
        workspaces,
        Some(&t.workspaces),
        &spec.field("workspaces"),
        Some(&t.owner),
        r,
    );
}

pub(crate) fn retries(retries: Option<i32>, path: &FieldPath, r: &mut Report) {
    if retries.is_some_and(|n| n < 0) {
        r.problem(path, "retries cannot be negative");
    }
}

pub(crate) fn taskrun(run: &TaskRun, catalog: &Catalog<'_>, r: &mut Report) {
    let spec_path = FieldPath::root().field("spec");
    let s = &run.spec;
    let embedded = s.task_spec.clone().map(|mut t| {
        t.propagate_workspaces(&s.workspaces);
        t
    });
    let task: Option<(&TaskSpec, Owner)> = match (&s.task_ref, &embedded) {
        (Some(_), Some(_)) => {
            r.problem(&spec_path, "a TaskRun takes taskRef or taskSpec, not both");
            None
        }
        (None, None) => {
            r.problem(&spec_path, "a TaskRun needs taskRef or taskSpec");
            None
        }
        (None, Some(ts)) => {
            // The run's params reach its embedded spec undeclared (Tekton's implicit params).
            let params: HashMap<String, TypeInfo> = s
                .params
                .iter()
                .map(|p| (p.name.clone(), TypeInfo::of_value(&p.value)))
                .collect();
            let workspaces = HashSet::new(); // propagated by propagate_workspaces above
            let scope = Scope::default();
            let outer = Outer {
                params: &params,
                workspaces: &workspaces,
                scope: &scope,
            };
            task_spec(ts, &spec_path.field("taskSpec"), Some(&outer), catalog, r);
            Some((ts, Owner::embedded("taskSpec")))
        }
        (Some(tr), None) => {
            let path = spec_path.field("taskRef");
            if tr.name.is_none() && tr.resolver.is_none() {
                r.problem(&path, "a taskRef needs a name or a resolver");
            }
            match tr
                .name
                .as_deref()
                .filter(|_| tr.resolver.is_none() && !tr.is_custom())
            {
                Some(name) => by_name(
                    catalog.tasks.get(name).copied(),
                    "Task",
                    name,
                    &path.field("name"),
                    catalog,
                    r,
                ),
                None => None,
            }
        }
    };
    if let Some(t) = &s.timeout {
        timeout(t, &spec_path.field("timeout"), r);
    }
    retries(s.retries, &spec_path.field("retries"), r);
    let target = task.as_ref().map(|(ts, owner)| Target {
        owner: owner.clone(),
        params: &ts.params,
        workspaces: ts
            .workspaces
            .iter()
            .map(|w| (w.name.as_str(), w.optional))
            .collect(),
    });
    bindings(&s.params, &s.workspaces, target.as_ref(), &spec_path, r);
    if let Some((ts, owner)) = &task {
        for (i, step) in s.step_specs.iter().enumerate() {
            if !ts.steps.iter().any(|x| x.name == step.name) {
                r.problem(
                    &spec_path.field("stepSpecs").index(i).field("name"),
                    format!("{owner} has no step {:?}", step.name),
                );
            }
        }
        for (i, sc) in s.sidecar_specs.iter().enumerate() {
            if !ts.sidecars.iter().any(|x| x.name == sc.name) {
                r.problem(
                    &spec_path.field("sidecarSpecs").index(i).field("name"),
                    format!("{owner} has no sidecar {:?}", sc.name),
                );
            }
        }
    }
}

pub(crate) fn pipelinerun(run: &PipelineRun, catalog: &Catalog<'_>, r: &mut Report) {
    let spec_path = FieldPath::root().field("spec");
    let s = &run.spec;
    let embedded = s.pipeline_spec.clone().map(|mut p| {
        p.propagate_workspaces(&s.workspaces, true);
        p
    });
    let pipeline: Option<(&PipelineSpec, Owner)> = match (&s.pipeline_ref, &embedded) {
        (Some(_), Some(_)) => {
            r.problem(
                &spec_path,
                "a PipelineRun takes pipelineRef or pipelineSpec, not both",
            );
            None
        }
        (None, None) => {
            r.problem(
                &spec_path,
                "a PipelineRun needs pipelineRef or pipelineSpec",
            );
            None
        }
        (None, Some(ps)) => {
            pipeline_spec(ps, &spec_path.field("pipelineSpec"), catalog, &s.params, r);
            Some((ps, Owner::embedded("pipelineSpec")))
        }
        (Some(pr), None) => {
            let path = spec_path.field("pipelineRef");
            if pr.name.is_none() && pr.resolver.is_none() {
                r.problem(&path, "a pipelineRef needs a name or a resolver");
            }
            match pr.name.as_deref().filter(|_| pr.resolver.is_none()) {
                Some(name) => by_name(
                    catalog.pipelines.get(name).copied(),
                    "Pipeline",
                    name,
                    &path.field("name"),
                    catalog,
                    r,
                ),
                None => None,
            }
        }
    };

    // Timeouts: tasks + finally must fit in pipeline (unless pipeline is 0: no limit).
    if let Some(t) = &s.timeouts {
        let tp = spec_path.field("timeouts");
        let pipeline = t
            .pipeline
            .as_ref()
            .and_then(|d| timeout(d, &tp.field("pipeline"), r));
        let tasks = t
            .tasks
            .as_ref()
            .and_then(|d| timeout(d, &tp.field("tasks"), r));
        let finally = t
            .finally
            .as_ref()
            .and_then(|d| timeout(d, &tp.field("finally"), r));
        if let Some(pipeline) = pipeline.filter(|p| !p.is_zero()) {
            let sum = tasks.unwrap_or_default() + finally.unwrap_or_default();
            if sum > pipeline {
                r.problem(
                    &tp,
                    format!(
                        "timeouts.tasks + timeouts.finally ({}) exceed timeouts.pipeline ({}); raise the pipeline timeout or lower the others",
                        crate::v1::Duration::from(sum).0,
                        crate::v1::Duration::from(pipeline).0
                    ),
                );
            }
        }
    }
    for (i, trs) in s.task_run_specs.iter().enumerate() {
        if let Some(t) = &trs.timeout {
            timeout(
                t,
                &spec_path.field("taskRunSpecs").index(i).field("timeout"),
                r,
            );
        }
    }

    let target = pipeline.as_ref().map(|(ps, owner)| Target {
        owner: owner.clone(),
        params: &ps.params,
        workspaces: ps
            .workspaces
            .iter()
            .map(|w| (w.name.as_str(), w.optional))
            .collect(),
    });
    bindings(&s.params, &s.workspaces, target.as_ref(), &spec_path, r);
    if let Some((ps, owner)) = &pipeline {
        for (i, trs) in s.task_run_specs.iter().enumerate() {
            if !ps
                .tasks
                .iter()
                .chain(&ps.finally)
                .any(|t| t.name == trs.pipeline_task_name)
            {
                r.problem(
                    &spec_path
                        .field("taskRunSpecs")
                        .index(i)
                        .field("pipelineTaskName"),
                    format!("{owner} has no task {:?}", trs.pipeline_task_name),
                );
            }
        }
    }
}
