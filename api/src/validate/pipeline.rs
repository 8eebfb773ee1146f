//! Pipeline specs: tasks, finally, ordering, bindings, matrix, results and variables.

use std::collections::{HashMap, HashSet};

use super::run::{by_name, retries};
use super::scope::{PIPELINE_CONTEXT, PipelineTasks, Place, Position, Scope, TypeInfo};
use super::task::{Outer, task_spec};
use super::{
    Catalog, Owner, Report, check_param_bindings, duplicates, names, params_decl, timeout, when,
};
use crate::dag::{Dag, Slot, own_strings};
use crate::problem::FieldPath;
use crate::v1::{ParamType, ParamValue, PipelineSpec, PipelineTask, TaskSpec};
use crate::vars::{self, Reference, Selector};

/// Tekton's default limit on the TaskRuns one matrix may fan out to.
pub const MAX_MATRIX_COMBINATIONS: usize = 256;

/// The Task a pipeline task runs, when it is known: embedded, or a Task document given.
fn resolved<'c>(task: &'c PipelineTask, catalog: &'c Catalog<'_>) -> Option<(&'c TaskSpec, Owner)> {
    if let Some(embedded) = &task.task_spec {
        if embedded.is_custom() {
            return None; // a custom task's spec
        }
        return Some((&embedded.task, Owner::embedded("embedded taskSpec")));
    }
    let r = task.task_ref.as_ref()?;
    if r.resolver.is_some() || r.is_custom() {
        return None;
    }
    let name = r.name.as_deref()?;
    catalog
        .tasks
        .get(name)
        .map(|spec| (*spec, Owner::named("Task", name)))
}

fn results_info(spec: &TaskSpec) -> HashMap<String, TypeInfo> {
    spec.results
        .iter()
        .map(|res| {
            let type_ = res.type_.unwrap_or(if res.properties.is_some() {
                ParamType::Object
            } else {
                ParamType::String
            });
            (
                res.name.clone(),
                TypeInfo {
                    type_,
                    keys: res.properties.as_ref().map(|p| p.keys().cloned().collect()),
                    implicit: false,
                },
            )
        })
        .collect()
}

/// `propagated`: the params of the PipelineRun that embeds this spec, which its tasks see
/// whether or not the spec declares them (Tekton's implicit params).
pub(crate) fn pipeline_spec(
    spec: &PipelineSpec,
    path: &FieldPath,
    catalog: &Catalog<'_>,
    propagated: &[crate::v1::Param],
    r: &mut Report,
) {
    let tasks_path = path.field("tasks");
    let finally_path = path.field("finally");
    if spec.tasks.is_empty() {
        r.problem(&tasks_path, "a Pipeline needs at least one task");
    }
    params_decl(&spec.params, &path.field("params"), r);
    duplicates(
        spec.workspaces.iter().map(|w| w.name.as_str()),
        &path.field("workspaces"),
        "workspace",
        r,
    );

    // Names are unique across tasks and finally.
    let mut seen: HashMap<&str, FieldPath> = HashMap::new();
    for (list, list_path) in [(&spec.tasks, &tasks_path), (&spec.finally, &finally_path)] {
        for (i, t) in list.iter().enumerate() {
            let p = list_path.index(i).field("name");
            if let Err(e) = names::dns_label(&t.name) {
                r.problem(&p, format!("task name {:?} {e}", t.name));
            }
            if let Some(first) = seen.insert(&t.name, p.clone()) {
                r.problem(&p, format!("task name {:?} is already used at {first}; pipeline task names must be unique", t.name));
            }
        }
    }

    // What result references can see.
    // A matrixed task's string results gather into arrays, one entry per child.
    let info = |t: &PipelineTask| {
        resolved(t, catalog).map(|(s, _)| {
            let mut info = results_info(s);
            if t.matrix.is_some() {
                for i in info.values_mut() {
                    if i.type_ == ParamType::String {
                        i.type_ = ParamType::Array;
                    }
                }
            }
            info
        })
    };
    let mut tasks = PipelineTasks {
        dag: spec
            .tasks
            .iter()
            .map(|t| (t.name.clone(), info(t)))
            .collect(),
        finally: spec
            .finally
            .iter()
            .map(|t| (t.name.clone(), info(t)))
            .collect(),
        may_not_run: HashSet::new(),
        pipelines: spec
            .tasks
            .iter()
            .chain(&spec.finally)
            .filter(|t| t.runs_pipeline())
            .map(|t| t.name.clone())
            .collect(),
    };

    match Dag::build(&spec.tasks, &tasks_path) {
        Ok(dag) => {
            // A task guarded by `when` may be skipped, and with it everything after it.
            let mut stack: Vec<usize> = (0..dag.len())
                .filter(|&i| !spec.tasks[i].when.is_empty())
                .collect();
            let mut seen = vec![false; dag.len()];
            while let Some(i) = stack.pop() {
                if std::mem::replace(&mut seen[i], true) {
                    continue;
                }
                tasks.may_not_run.insert(dag.name(i).to_owned());
                stack.extend(dag.children(i));
            }
        }
        Err(errors) => {
            for e in errors {
                let problem = e.to_problem(&tasks_path);
                // Unknown names are reported once, by the variable check, for result refs.
                if !matches!(e, crate::dag::DagError::UnknownTask { .. })
                    || problem.path.as_str().contains(".runAfter[")
                {
                    r.problems.push(problem);
                }
            }
        }
    }

    let mut pipeline_params: HashMap<String, TypeInfo> = spec
        .params
        .iter()
        .map(|p| (p.name.clone(), TypeInfo::of_param(p)))
        .collect();
    for p in propagated {
        pipeline_params
            .entry(p.name.clone())
            .or_insert_with(|| TypeInfo::of_value(&p.value));
    }
    let pipeline_workspaces: HashSet<String> =
        spec.workspaces.iter().map(|w| w.name.clone()).collect();
    let scope = Scope {
        params: pipeline_params.clone(),
        workspaces: pipeline_workspaces.clone(),
        pipeline: Some(&tasks),
        context: PIPELINE_CONTEXT.to_vec(),
        ..Default::default()
    };

    for (list, list_path, finally) in [
        (&spec.tasks, &tasks_path, false),
        (&spec.finally, &finally_path, true),
    ] {
        for (i, task) in list.iter().enumerate() {
            pipeline_task(
                task,
                &list_path.index(i),
                finally,
                catalog,
                &scope,
                &pipeline_params,
                &pipeline_workspaces,
                r,
            );
        }
    }

    // Pipeline results.
    let results_path = path.field("results");
    duplicates(
        spec.results.iter().map(|res| res.name.as_str()),
        &results_path,
        "result",
        r,
    );
    for (i, res) in spec.results.iter().enumerate() {
        let p = results_path.index(i);
        if let Err(e) = names::result_name(&res.name) {
            r.problem(&p.field("name"), format!("result name {:?} {e}", res.name));
        }
        if let Ok(tree) = serde_json::to_value(&res.value) {
            scope.check_tree(&tree, &p.field("value"), Place::PipelineResults, None, r);
        }
        if res
            .value
            .strings()
            .iter()
            .all(|s| vars::references(s).is_empty())
        {
            r.problem(&p.field("value"), "a pipeline result must take its value from task results, e.g. $(tasks.build.results.digest)");
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn pipeline_task(
    task: &PipelineTask,
    p: &FieldPath,
    finally: bool,
    catalog: &Catalog<'_>,
    scope: &Scope<'_>,
    pipeline_params: &HashMap<String, TypeInfo>,
    pipeline_workspaces: &HashSet<String>,
    r: &mut Report,
) {
    let kinds = [
        task.task_ref.is_some(),
        task.task_spec.is_some(),
        task.pipeline_ref.is_some(),
        task.pipeline_spec.is_some(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        0 => r.problem(
            p,
            "a pipeline task needs taskRef or taskSpec (or, to run a Pipeline, pipelineRef or pipelineSpec)",
        ),
        1 => {}
        _ => r.problem(
            p,
            "a pipeline task takes exactly one of taskRef, taskSpec, pipelineRef and pipelineSpec",
        ),
    }
    if let Some(tr) = &task.task_ref {
        // A custom task's controller decides what its reference needs beyond the kind.
        if tr.name.is_none() && tr.resolver.is_none() && !tr.is_custom() {
            r.problem(&p.field("taskRef"), "a taskRef needs a name or a resolver");
        }
        if tr.name.is_some() && tr.resolver.is_some() {
            r.problem(
                &p.field("taskRef").field("resolver"),
                "a taskRef takes a name or a resolver, not both",
            );
        }
        if let Some(kind) = tr.kind.as_deref()
            && !["Task", "ClusterTask"].contains(&kind)
            && tr.api_version.is_none()
        {
            r.problem(
                &p.field("taskRef").field("apiVersion"),
                format!("a custom task of kind {kind:?} needs an apiVersion"),
            );
        }
        if tr.is_custom() {
            custom_type(
                tr.api_version.as_deref(),
                tr.kind.as_deref(),
                &p.field("taskRef"),
                r,
            );
        }
    }
    if let Some(embedded) = &task.task_spec
        && embedded.is_custom()
    {
        custom_type(
            embedded.api_version.as_deref(),
            embedded.kind.as_deref(),
            &p.field("taskSpec"),
            r,
        );
        if !embedded.task.steps.is_empty() {
            r.problem(
                &p.field("taskSpec").field("steps"),
                "a custom task's taskSpec (it has an apiVersion or kind) has no steps: its controller runs it from `spec`",
            );
        }
    }
    if let Some(tr) = &task.task_ref
        && let Some(name) = tr.name.as_deref()
        && tr.resolver.is_none()
        && !tr.is_custom()
    {
        let path = p.field("taskRef").field("name");
        by_name(
            catalog.tasks.get(name).copied(),
            "Task",
            name,
            &path,
            catalog,
            r,
        );
    }
    let child = child_pipeline(task, p, catalog, r);
    retries(task.retries, &p.field("retries"), r);
    if task.runs_pipeline() && task.retries.is_some_and(|n| n > 0) {
        r.note(
            &p.field("retries"),
            "a child PipelineRun is not retried: retries apply to TaskRuns",
        );
    }
    if let Some(t) = &task.timeout {
        timeout(t, &p.field("timeout"), r);
    }
    if finally && !task.run_after.is_empty() {
        r.problem(
            &p.field("runAfter"),
            "finally tasks cannot use runAfter: they all run after the pipeline's tasks",
        );
    }
    when(&task.when, &p.field("when"), r);

    let target = resolved(task, catalog);
    let value_type = |v: &ParamValue| value_type(v, scope);
    // What a matrix gives each combination: its params, and those of its include entries
    // (an explicit combination gives its own).
    let matrix_names: Vec<&str> = task
        .matrix
        .iter()
        .flat_map(|m| {
            m.params
                .iter()
                .chain(m.include.iter().flat_map(|i| &i.params))
                .map(|x| x.name.as_str())
        })
        .collect();
    match &target {
        Some((tspec, owner)) => {
            check_param_bindings(
                &task.params,
                &matrix_names,
                &tspec.params,
                &p.field("params"),
                owner,
                &value_type,
                r,
            );
        }
        None => match &child {
            Some((cspec, owner)) => check_param_bindings(
                &task.params,
                &[],
                &cspec.params,
                &p.field("params"),
                owner,
                &value_type,
                r,
            ),
            None => duplicates(
                task.params.iter().map(|x| x.name.as_str()),
                &p.field("params"),
                "param",
                r,
            ),
        },
    }
    if let Some(matrix) = &task.matrix {
        if task.runs_pipeline() {
            r.problem(
                &p.field("matrix"),
                "a task that runs a Pipeline (pipelineRef or pipelineSpec) cannot fan out with a matrix",
            );
        }
        check_matrix(task, matrix, &p.field("matrix"), &value_type, r);
    }

    // Workspaces.
    let ws_path = p.field("workspaces");
    duplicates(
        task.workspaces.iter().map(|w| w.name.as_str()),
        &ws_path,
        "workspace binding",
        r,
    );
    for (i, w) in task.workspaces.iter().enumerate() {
        let bound_to = w.workspace.as_deref().unwrap_or(&w.name);
        if !pipeline_workspaces.contains(bound_to) {
            r.problem(
                &ws_path.index(i).field("workspace"),
                format!(
                    "the Pipeline declares no workspace {bound_to:?}; add it to spec.workspaces"
                ),
            );
        }
        let declared = match (&target, &child) {
            (Some((tspec, owner)), _) => Some((
                tspec.workspaces.iter().any(|d| d.name == w.name),
                &owner.name,
            )),
            (None, Some((cspec, owner))) => Some((
                cspec.workspaces.iter().any(|d| d.name == w.name),
                &owner.name,
            )),
            (None, None) => None,
        };
        if let Some((false, owner)) = declared {
            r.problem(
                &ws_path.index(i).field("name"),
                format!("{owner} declares no workspace {:?}", w.name),
            );
        }
    }
    if let Some((cspec, owner)) = &child {
        for d in cspec.workspaces.iter().filter(|d| !d.optional) {
            if !task.workspaces.iter().any(|w| w.name == d.name) {
                r.problem(
                    &ws_path,
                    format!(
                        "{owner} needs workspace {:?}; bind it to one of the Pipeline's workspaces",
                        d.name
                    ),
                );
            }
        }
    }
    if let Some((tspec, owner)) = &target {
        let embedded = task.task_spec.is_some();
        for d in tspec.workspaces.iter().filter(|d| !d.optional) {
            let propagated = embedded && pipeline_workspaces.contains(&d.name);
            if !task.workspaces.iter().any(|w| w.name == d.name) && !propagated {
                r.problem(
                    &ws_path,
                    format!(
                        "{owner} needs workspace {:?}; bind it to one of the Pipeline's workspaces",
                        d.name
                    ),
                );
            }
        }
    }

    // The embedded task, with the pipeline's params, workspaces and tasks visible.
    if let Some(embedded) = &task.task_spec
        && !embedded.is_custom()
    {
        // The task's own params reach its embedded spec too, an object's keys merged
        // with the pipeline's (Tekton's implicit params).
        let mut params = pipeline_params.clone();
        for tp in &task.params {
            let given = TypeInfo::of_value(&tp.value);
            match params.get_mut(&tp.name) {
                Some(have) if have.keys.is_some() && given.keys.is_some() => {
                    let keys = have.keys.get_or_insert_with(Default::default);
                    keys.extend(given.keys.into_iter().flatten());
                }
                _ => {
                    params.insert(tp.name.clone(), given);
                }
            }
        }
        let outer = Outer {
            params: &params,
            workspaces: pipeline_workspaces,
            scope,
        };
        task_spec(
            &embedded.task,
            &p.field("taskSpec"),
            Some(&outer),
            catalog,
            r,
        );
    }

    // An embedded child Pipeline: its PipelineRun gets the task's params.
    if let Some(child) = &task.pipeline_spec {
        pipeline_spec(child, &p.field("pipelineSpec"), catalog, &task.params, r);
    }

    // Variables in the task's own fields.
    let place = Place::PipelineTask {
        name: &task.name,
        finally,
    };
    own_strings(task, &mut |s, slot| {
        if !s.contains("$(") {
            return;
        }
        // A matrixed task's displayName may name its matrix params (one value each):
        // the rest of it is checked.
        let mut text = s.to_owned();
        if matches!(slot, Slot::DisplayName) {
            for o in vars::references(s).iter().rev() {
                if matches!(&o.reference, Reference::Param { name, selector: Selector::Whole }
                    if matrix_names.contains(&name.as_str()))
                {
                    text.replace_range(o.start..o.end, "");
                }
            }
        }
        let position = if slot.whole_element() {
            Position::WholeElement
        } else {
            Position::InText
        };
        scope.check_string(&text, &slot.path(p), place, None, position, r);
    });

    // A finally task reading results of a task that may be skipped.
    if finally && let Some(pipeline) = scope.pipeline {
        let mut warned = HashSet::new();
        for s in task.params.iter().flat_map(|x| x.value.strings()) {
            for o in vars::references(s) {
                if let Reference::TaskResult { task: t, .. } = &o.reference
                    && pipeline.may_not_run.contains(t)
                    && warned.insert(t.clone())
                {
                    r.note(&p.field("params"), format!("task {t:?} may be skipped (a when expression guards it or a task before it); then {:?} is skipped for missing results — give the result a fallback or guard with when: $(tasks.{t}.status)", task.name));
                }
            }
        }
    }
}

/// The Pipeline a task runs as a child PipelineRun, when it is known: embedded, or a
/// Pipeline document given (its reference checked here).
fn child_pipeline<'c>(
    task: &'c PipelineTask,
    p: &FieldPath,
    catalog: &'c Catalog<'_>,
    r: &mut Report,
) -> Option<(&'c PipelineSpec, Owner)> {
    if let Some(spec) = &task.pipeline_spec {
        return Some((spec, Owner::embedded("embedded pipelineSpec")));
    }
    let pr = task.pipeline_ref.as_ref()?;
    let path = p.field("pipelineRef");
    match (&pr.name, &pr.resolver) {
        (None, None) => {
            r.problem(&path, "a pipelineRef needs a name or a resolver");
            None
        }
        (Some(_), Some(_)) => {
            r.problem(
                &path.field("resolver"),
                "a pipelineRef takes a name or a resolver, not both",
            );
            None
        }
        (None, Some(_)) => None,
        (Some(name), None) => by_name(
            catalog.pipelines.get(name.as_str()).copied(),
            "Pipeline",
            name,
            &path.field("name"),
            catalog,
            r,
        ),
    }
}

/// A Pipeline that runs itself through pipelineRefs (directly, or through Pipelines it
/// runs): the path of the first reference on the way, and the chain of names.
pub(crate) fn ref_cycle(
    name: &str,
    spec: &PipelineSpec,
    catalog: &Catalog<'_>,
) -> Option<(FieldPath, Vec<String>)> {
    fn walk(
        root: &str,
        spec: &PipelineSpec,
        catalog: &Catalog<'_>,
        chain: &mut Vec<String>,
    ) -> bool {
        for t in spec.tasks.iter().chain(&spec.finally) {
            if let Some(inline) = &t.pipeline_spec
                && walk(root, inline, catalog, chain)
            {
                return true;
            }
            let Some(next) = t.pipeline_ref.as_ref().and_then(|r| r.name.as_deref()) else {
                continue;
            };
            if next == root {
                chain.push(next.to_owned());
                return true;
            }
            if chain.iter().any(|c| c == next) {
                continue; // a cycle that does not pass through `root`: its own report
            }
            if let Some(s) = catalog.pipelines.get(next) {
                chain.push(next.to_owned());
                if walk(root, s, catalog, chain) {
                    return true;
                }
                chain.pop();
            }
        }
        false
    }
    let lists = [("tasks", &spec.tasks), ("finally", &spec.finally)];
    for (field, list) in lists {
        for (i, t) in list.iter().enumerate() {
            let mut chain = vec![name.to_owned()];
            let one = PipelineSpec {
                tasks: vec![t.clone()],
                ..PipelineSpec::default()
            };
            if walk(name, &one, catalog, &mut chain) {
                let at = FieldPath::root().field("spec").field(field).index(i);
                let at = if t.pipeline_ref.is_some() {
                    at.field("pipelineRef").field("name")
                } else {
                    at.field("pipelineSpec")
                };
                return Some((at, chain));
            }
        }
    }
    None
}

/// A custom task names its type as Tekton requires: a `group/version` apiVersion outside
/// tekton.dev, and a kind.
fn custom_type(api_version: Option<&str>, kind: Option<&str>, p: &FieldPath, r: &mut Report) {
    match api_version {
        None => r.problem(
            &p.field("apiVersion"),
            "a custom task needs an apiVersion, e.g. example.dev/v1alpha1",
        ),
        Some(v) => {
            let well_formed = v
                .split_once('/')
                .is_some_and(|(g, ver)| !g.is_empty() && !ver.is_empty() && !ver.contains('/'));
            if !well_formed {
                r.problem(
                    &p.field("apiVersion"),
                    format!("apiVersion {v:?} must be group/version, e.g. example.dev/v1alpha1"),
                );
            } else if v.starts_with("tekton.dev/") {
                r.problem(
                    &p.field("apiVersion"),
                    format!("{v:?} is Tekton's own group: a custom task's apiVersion names its controller's group"),
                );
            }
        }
    }
    if kind.is_none_or(str::is_empty) {
        r.problem(
            &p.field("kind"),
            "a custom task needs a kind: the kind its controller watches for",
        );
    }
}

/// The type a param value has once substituted: a lone reference to an array or
/// object takes that type.
fn value_type(v: &ParamValue, scope: &Scope<'_>) -> ParamType {
    let ParamValue::String(s) = v else {
        return v.param_type();
    };
    let refs = vars::references(s);
    let [only] = refs.as_slice() else {
        return ParamType::String;
    };
    if only.start != 0 || only.end != s.len() {
        return ParamType::String;
    }
    let info = match &only.reference {
        Reference::Param {
            name,
            selector: Selector::Whole | Selector::Star,
        } => scope.params.get(name).cloned(),
        Reference::TaskResult {
            task,
            result,
            selector: Selector::Whole | Selector::Star,
        } => scope
            .pipeline
            .and_then(|p| p.dag.get(task).or_else(|| p.finally.get(task)))
            .and_then(|info| info.as_ref())
            .and_then(|results| results.get(result).cloned()),
        _ => None,
    };
    info.map(|i| i.type_).unwrap_or(ParamType::String)
}

fn check_matrix(
    task: &PipelineTask,
    matrix: &crate::v1::Matrix,
    p: &FieldPath,
    value_type: &dyn Fn(&ParamValue) -> ParamType,
    r: &mut Report,
) {
    if matrix.params.is_empty() && matrix.include.is_empty() {
        r.problem(p, "a matrix needs params or include");
    }
    duplicates(
        matrix.params.iter().map(|x| x.name.as_str()),
        &p.field("params"),
        "matrix param",
        r,
    );
    let mut combinations: usize = 1;
    for (i, mp) in matrix.params.iter().enumerate() {
        let mpp = p.field("params").index(i);
        if task.params.iter().any(|x| x.name == mp.name) {
            r.problem(
                &mpp.field("name"),
                format!(
                    "param {:?} is both in params and in matrix.params; keep it in one",
                    mp.name
                ),
            );
        }
        match value_type(&mp.value) {
            ParamType::Array => {}
            other => r.problem(
                &mpp.field("value"),
                format!("matrix params must be arrays; this is {other}"),
            ),
        }
        if let ParamValue::Array(values) = &mp.value {
            combinations = combinations.saturating_mul(values.len());
        }
    }
    if combinations > MAX_MATRIX_COMBINATIONS {
        r.problem(&p.field("params"), format!("the matrix fans out to {combinations} TaskRuns, more than the limit of {MAX_MATRIX_COMBINATIONS}"));
    }
    for (i, inc) in matrix.include.iter().enumerate() {
        for (j, ip) in inc.params.iter().enumerate() {
            if ip.value.param_type() != ParamType::String {
                r.problem(
                    &p.field("include")
                        .index(i)
                        .field("params")
                        .index(j)
                        .field("value"),
                    "matrix include params must be strings",
                );
            }
        }
    }
}
