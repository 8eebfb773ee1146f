//! TaskRuns and PipelineRuns: what they reference and what they bind.

use super::pipeline::pipeline_spec;
use super::task::task_spec;
use super::{Catalog, Report, check_param_bindings, check_workspace_bindings, timeout};
use crate::problem::FieldPath;
use crate::v1::{ParamValue, PipelineRun, PipelineSpec, TaskRun, TaskSpec};

pub(crate) fn taskrun(run: &TaskRun, catalog: &Catalog<'_>, r: &mut Report) {
    let spec_path = FieldPath::root().field("spec");
    let s = &run.spec;
    let task: Option<(&TaskSpec, String)> = match (&s.task_ref, &s.task_spec) {
        (Some(_), Some(_)) => {
            r.problem(&spec_path, "a TaskRun takes taskRef or taskSpec, not both");
            None
        }
        (None, None) => {
            r.problem(&spec_path, "a TaskRun needs taskRef or taskSpec");
            None
        }
        (None, Some(ts)) => {
            task_spec(ts, &spec_path.field("taskSpec"), None, r);
            Some((ts, "the taskSpec".into()))
        }
        (Some(tr), None) => {
            if tr.name.is_none() && tr.resolver.is_none() {
                r.problem(
                    &spec_path.field("taskRef"),
                    "a taskRef needs a name or a resolver",
                );
            }
            match tr
                .name
                .as_deref()
                .filter(|_| tr.resolver.is_none() && !tr.is_custom())
            {
                Some(name) => match catalog.tasks.get(name) {
                    Some(ts) => Some((*ts, format!("Task {name:?}"))),
                    None => {
                        let msg =
                            format!("Task {name:?} is not among the documents given; add its file");
                        if catalog.complete {
                            r.problem(&spec_path.field("taskRef").field("name"), msg);
                        } else {
                            r.note(
                                &spec_path.field("taskRef").field("name"),
                                format!("{msg} to check params and workspaces"),
                            );
                        }
                        None
                    }
                },
                None => None,
            }
        }
    };
    if let Some(t) = &s.timeout {
        timeout(t, &spec_path.field("timeout"), r);
    }
    if let Some(retries) = s.retries
        && retries < 0
    {
        r.problem(&spec_path.field("retries"), "retries cannot be negative");
    }
    let value_type = |v: &ParamValue| v.param_type();
    match &task {
        Some((ts, owner)) => {
            check_param_bindings(
                &s.params,
                &[],
                &ts.params,
                &spec_path.field("params"),
                owner,
                &value_type,
                r,
            );
            let decls: Vec<(&str, bool)> = ts
                .workspaces
                .iter()
                .map(|w| (w.name.as_str(), w.optional))
                .collect();
            check_workspace_bindings(
                &s.workspaces,
                Some(&decls),
                &spec_path.field("workspaces"),
                owner,
                r,
            );
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
        None => {
            check_param_bindings(
                &s.params,
                &[],
                &[],
                &spec_path.field("params"),
                "",
                &value_type,
                r,
            );
            check_workspace_bindings(&s.workspaces, None, &spec_path.field("workspaces"), "", r);
        }
    }
}

pub(crate) fn pipelinerun(run: &PipelineRun, catalog: &Catalog<'_>, r: &mut Report) {
    let spec_path = FieldPath::root().field("spec");
    let s = &run.spec;
    let pipeline: Option<(&PipelineSpec, String)> = match (&s.pipeline_ref, &s.pipeline_spec) {
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
            pipeline_spec(ps, &spec_path.field("pipelineSpec"), catalog, r);
            Some((ps, "the pipelineSpec".into()))
        }
        (Some(pr), None) => {
            if pr.name.is_none() && pr.resolver.is_none() {
                r.problem(
                    &spec_path.field("pipelineRef"),
                    "a pipelineRef needs a name or a resolver",
                );
            }
            match pr.name.as_deref().filter(|_| pr.resolver.is_none()) {
                Some(name) => match catalog.pipelines.get(name) {
                    Some(ps) => Some((*ps, format!("Pipeline {name:?}"))),
                    None => {
                        let msg = format!(
                            "Pipeline {name:?} is not among the documents given; add its file"
                        );
                        if catalog.complete {
                            r.problem(&spec_path.field("pipelineRef").field("name"), msg);
                        } else {
                            r.note(
                                &spec_path.field("pipelineRef").field("name"),
                                format!("{msg} to check params and workspaces"),
                            );
                        }
                        None
                    }
                },
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
                r.problem(&tp, format!("timeouts.tasks + timeouts.finally ({}) exceed timeouts.pipeline ({}); raise the pipeline timeout or lower the others",
                    crate::v1::Duration::from(sum).0, crate::v1::Duration::from(pipeline).0));
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

    let value_type = |v: &ParamValue| v.param_type();
    match &pipeline {
        Some((ps, owner)) => {
            check_param_bindings(
                &s.params,
                &[],
                &ps.params,
                &spec_path.field("params"),
                owner,
                &value_type,
                r,
            );
            let decls: Vec<(&str, bool)> = ps
                .workspaces
                .iter()
                .map(|w| (w.name.as_str(), w.optional))
                .collect();
            check_workspace_bindings(
                &s.workspaces,
                Some(&decls),
                &spec_path.field("workspaces"),
                owner,
                r,
            );
            for (i, trs) in s.task_run_specs.iter().enumerate() {
                let known = ps
                    .tasks
                    .iter()
                    .chain(&ps.finally)
                    .any(|t| t.name == trs.pipeline_task_name);
                if !known {
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
        None => {
            check_param_bindings(
                &s.params,
                &[],
                &[],
                &spec_path.field("params"),
                "",
                &value_type,
                r,
            );
            check_workspace_bindings(&s.workspaces, None, &spec_path.field("workspaces"), "", r);
        }
    }
}
