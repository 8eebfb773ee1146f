//! Which variables are defined where, and the check of every `$(...)` against that.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::Report;
use crate::problem::FieldPath;
use crate::v1::{ParamSpec, ParamType};
use crate::vars::{self, Reference, Selector, WorkspaceAttr};

/// The type of a declared param or result, and its keys when it is an object.
#[derive(Clone, Debug, Default)]
pub(crate) struct TypeInfo {
    pub type_: ParamType,
    pub keys: Option<BTreeSet<String>>,
    /// Propagated, not declared: the type is the value's, which Tekton does not check
    /// against its uses (a use that does not fit stays as written).
    pub implicit: bool,
}

impl TypeInfo {
    /// The type a propagated param takes from its value (Tekton's implicit params).
    pub fn of_value(v: &crate::v1::ParamValue) -> Self {
        TypeInfo {
            type_: v.param_type(),
            keys: match v {
                crate::v1::ParamValue::Object(o) => Some(o.keys().cloned().collect()),
                _ => None,
            },
            implicit: true,
        }
    }

    pub fn of_param(p: &ParamSpec) -> Self {
        TypeInfo {
            type_: p.effective_type(),
            keys: p.properties.as_ref().map(|m| m.keys().cloned().collect()),
            implicit: false,
        }
    }
}

/// What is known of a pipeline task's results: `None` when its Task is not among the
/// documents given (a cluster or resolver reference), so references cannot be checked.
pub(crate) type ResultsInfo = Option<HashMap<String, TypeInfo>>;

/// The tasks of a pipeline, as result references see them.
#[derive(Debug, Default)]
pub(crate) struct PipelineTasks {
    pub dag: HashMap<String, ResultsInfo>,
    pub finally: HashMap<String, ResultsInfo>,
    /// DAG tasks that may not run (guarded by `when`, or downstream of such a task).
    pub may_not_run: HashSet<String>,
    /// Tasks that run a child Pipeline: as in Tekton, its results do not reach the parent.
    pub pipelines: HashSet<String>,
}

/// Where a string is being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place<'a> {
    /// Inside a Task (or an embedded task spec).
    Task,
    /// In a pipeline task's own fields (params, when, matrix...).
    PipelineTask { name: &'a str, finally: bool },
    /// In `spec.results` of a Pipeline.
    PipelineResults,
}

/// Everything declared around the strings being checked.
#[derive(Debug, Default)]
pub(crate) struct Scope<'a> {
    pub params: HashMap<String, TypeInfo>,
    pub task_results: HashSet<String>,
    /// Step name → the results it declares; `None` when they are not known here (a
    /// StepAction not among the documents).
    pub steps: HashMap<String, Option<HashSet<String>>>,
    pub workspaces: HashSet<String>,
    pub pipeline: Option<&'a PipelineTasks>,
    /// Context objects allowed here, e.g. `taskRun`, `pipelineRun`.
    pub context: Vec<(&'static str, &'static [&'static str])>,
    /// Inside a StepAction: the Task around it is not known, so only its own params and
    /// step results are checked.
    pub step_action: bool,
}

/// Every context object Tekton defines, wherever it may be used.
const ALL_CONTEXTS: [&str; 5] = ["taskRun", "task", "pipelineRun", "pipeline", "pipelineTask"];

pub(crate) const TASK_CONTEXT: [(&str, &[&str]); 2] = [
    ("taskRun", &["name", "namespace", "uid"]),
    ("task", &["name", "retry-count"]),
];
pub(crate) const PIPELINE_CONTEXT: [(&str, &[&str]); 3] = [
    ("pipelineRun", &["name", "namespace", "uid"]),
    ("pipeline", &["name"]),
    ("pipelineTask", &["retries"]),
];

/// How a string sits in the document: alone in a list (where an array may expand), or
/// inside other text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    WholeElement,
    InText,
}

impl<'a> Scope<'a> {
    /// Walks a tree and checks every string. `step_results` is set inside one step.
    pub fn check_tree(
        &self,
        tree: &Value,
        path: &FieldPath,
        place: Place<'_>,
        step: Option<&str>,
        r: &mut Report,
    ) {
        match tree {
            Value::String(s) => self.check_string(s, path, place, step, Position::InText, r),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = path.index(i);
                    match item {
                        Value::String(s) => {
                            self.check_string(s, &p, place, step, Position::WholeElement, r)
                        }
                        other => self.check_tree(other, &p, place, step, r),
                    }
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "description" {
                        continue;
                    }
                    let p = path.field(k);
                    // A param value may be one whole array reference.
                    if k == "value"
                        && let Value::String(s) = v
                    {
                        self.check_string(s, &p, place, step, Position::WholeElement, r);
                        continue;
                    }
                    self.check_tree(v, &p, place, step, r);
                }
            }
            _ => {}
        }
    }

    pub fn check_string(
        &self,
        s: &str,
        path: &FieldPath,
        place: Place<'_>,
        step: Option<&str>,
        pos: Position,
        r: &mut Report,
    ) {
        if !s.contains("$(") {
            return;
        }
        let occurrences = vars::references(s);
        let alone =
            occurrences.len() == 1 && occurrences[0].start == 0 && occurrences[0].end == s.len();
        let whole = pos == Position::WholeElement && alone;
        for o in &occurrences {
            if let Err(msg) = self.check_reference(&o.reference, place, step, whole) {
                let implicit = matches!(&o.reference, Reference::Param { name, .. }
                    if self.params.get(name).is_some_and(|i| i.implicit));
                // What Tekton does not check stays as written: a workspace a step's `when`
                // names but the Task does not declare (no `in` matches it), a workspace path
                // in a pipeline task's params (the Task substitutes it as its own), a
                // context object it does not define.
                let unchecked = match &o.reference {
                    Reference::Workspace { attr, name } => match place {
                        Place::Task => {
                            *attr == WorkspaceAttr::Bound && !self.workspaces.contains(name)
                        }
                        Place::PipelineTask { .. } => *attr != WorkspaceAttr::Bound,
                        Place::PipelineResults => false,
                    },
                    Reference::Context { object, .. } => !ALL_CONTEXTS.contains(&object.as_str()),
                    _ => false,
                };
                if implicit || unchecked {
                    r.note(
                        path,
                        format!("{}: {msg}; as in Tekton, it stays as written", o.raw),
                    );
                } else {
                    r.problem(path, format!("{}: {msg}", o.raw));
                }
            }
        }
    }

    fn check_reference(
        &self,
        reference: &Reference,
        place: Place<'_>,
        step: Option<&str>,
        whole: bool,
    ) -> Result<(), String> {
        let in_task = place == Place::Task;
        match reference {
            Reference::Malformed { reason } => Err(format!("not a valid variable; {reason}")),
            Reference::Resource { .. } => Err("PipelineResources were removed from tekton.dev/v1; declare the resource in a v1beta1 or v1alpha1 document, or use params and workspaces".into()),
            Reference::Param { name, selector } => {
                if place == Place::PipelineResults {
                    return Err("pipeline results may only reference task results".into());
                }
                self.check_param(name, selector, whole)
            }
            // What a StepAction's step sees of its Task is not known here.
            _ if self.step_action && !matches!(reference, Reference::OwnStepResultPath { .. }) => Ok(()),
            Reference::TaskResult { task, result, selector } => self.check_task_result(task, result, selector, place, whole),
            Reference::TaskStatus { task } | Reference::TaskReason { task } => match (place, self.pipeline) {
                (Place::PipelineTask { finally: true, .. }, Some(p)) => {
                    if p.dag.contains_key(task) {
                        Ok(())
                    } else {
                        Err(format!("there is no task {task:?} among the pipeline's tasks"))
                    }
                }
                _ => Err("only finally tasks can read the status of other tasks".into()),
            },
            Reference::MatrixLength { task, result } => match (place, self.pipeline) {
                (Place::PipelineTask { name, .. }, _) if name == task => {
                    Err("a task cannot use its own matrix".into())
                }
                (Place::PipelineTask { .. } | Place::PipelineResults, Some(p)) => match p.dag.get(task) {
                    None => Err(format!("there is no task {task:?} in this pipeline")),
                    Some(Some(results)) if result.as_ref().is_some_and(|r| !results.contains_key(r)) => {
                        Err(format!("task {task:?} declares no result {:?}", result.as_deref().unwrap_or_default()))
                    }
                    Some(_) => Ok(()),
                },
                _ => Err("$(tasks.<task>.matrix...) can only be used in a Pipeline".into()),
            },
            Reference::TasksStatus => match place {
                Place::PipelineTask { finally: true, .. } => Ok(()),
                _ => Err("only finally tasks can read $(tasks.status)".into()),
            },
            Reference::CredentialsPath => {
                if in_task {
                    Ok(())
                } else {
                    Err("$(credentials.path) can only be used inside a Task's steps".into())
                }
            }
            Reference::ResultPath { name } => {
                if !in_task {
                    Err("$(results.<r>.path) can only be used inside a Task's steps".into())
                } else if self.task_results.contains(name) {
                    Ok(())
                } else {
                    Err(format!("the Task declares no result {name:?}; add it to spec.results"))
                }
            }
            Reference::OwnStepResultPath { name } => match step.and_then(|s| self.steps.get(s)) {
                Some(None) => Ok(()),
                Some(Some(results)) if results.contains(name) => Ok(()),
                Some(_) => Err(format!("this step declares no result {name:?}; add it to the step's results")),
                None => Err("$(step.results.<r>.path) can only be used inside a step".into()),
            },
            Reference::StepExitCodePath { step: s } => {
                if in_task && self.steps.contains_key(s) {
                    Ok(())
                } else {
                    Err(format!("there is no step {s:?} in this Task"))
                }
            }
            Reference::StepResult { step: s, result, .. } => match self.steps.get(s) {
                Some(None) => Ok(()),
                Some(Some(results)) if results.contains(result) => Ok(()),
                Some(_) => Err(format!("step {s:?} declares no result {result:?}")),
                None => Err(format!("there is no step {s:?} in this Task")),
            },
            Reference::OwnStepArtifactsPath => match step {
                Some(_) if in_task => Ok(()),
                _ => Err("$(step.artifacts.path) can only be used inside a step".into()),
            },
            Reference::ArtifactsPath => {
                if in_task {
                    Ok(())
                } else {
                    Err("$(artifacts.path) can only be used inside a Task's steps".into())
                }
            }
            Reference::StepArtifact { step: s, .. } => {
                if self.steps.contains_key(s) {
                    Ok(())
                } else {
                    Err(format!("there is no step {s:?} in this Task"))
                }
            }
            Reference::TaskArtifact { task, .. } => match self.pipeline {
                Some(p) if p.pipelines.contains(task) => Err(format!(
                    "task {task:?} runs a Pipeline (pipelineRef or pipelineSpec), whose artifacts do not reach this Pipeline"
                )),
                Some(p) if p.dag.contains_key(task) => match place {
                    Place::PipelineTask { name, .. } if name == task => {
                        Err("a task cannot use its own artifacts".into())
                    }
                    _ => Ok(()),
                },
                Some(_) => Err(format!("there is no task {task:?} in this pipeline")),
                None => Err("task artifacts can only be referenced in a Pipeline".into()),
            },
            Reference::Workspace { name, attr } => {
                if !self.workspaces.contains(name) {
                    Err(format!("there is no workspace {name:?} declared here"))
                } else if !in_task && *attr != WorkspaceAttr::Bound {
                    Err("a pipeline task can only read $(workspaces.<w>.bound); paths exist inside Tasks".into())
                } else {
                    Ok(())
                }
            }
            Reference::Context { object, field } => match self.context.iter().find(|(o, _)| o == object) {
                Some((_, fields)) if fields.contains(&field.as_str()) => Ok(()),
                Some((_, fields)) => Err(format!("context.{object} has {}, not {field:?}", fields.join(", "))),
                None => Err(format!(
                    "context.{object} is not available here (available: {})",
                    self.context.iter().map(|(o, _)| format!("context.{o}")).collect::<Vec<_>>().join(", ")
                )),
            },
        }
    }

    fn check_param(&self, name: &str, selector: &Selector, whole: bool) -> Result<(), String> {
        let Some(info) = self.params.get(name) else {
            if let Selector::Key(k) = selector
                && self.params.contains_key(&format!("{name}.{k}"))
            {
                return Err(format!(
                    "a param name with dots needs brackets: write $(params[\"{name}.{k}\"])"
                ));
            }
            return Err(format!(
                "there is no param {name:?}; declare it in spec.params"
            ));
        };
        check_selector("param", name, info, selector, whole)
    }

    fn check_task_result(
        &self,
        task: &str,
        result: &str,
        selector: &Selector,
        place: Place<'_>,
        whole: bool,
    ) -> Result<(), String> {
        let Some(p) = self.pipeline else {
            return Err("task results can only be referenced in a Pipeline".into());
        };
        let info = match (place, p.dag.get(task), p.finally.get(task)) {
            (Place::PipelineTask { name, .. }, _, _) if name == task => {
                return Err("a task cannot use its own results".into());
            }
            _ if p.pipelines.contains(task) => {
                return Err(format!(
                    "task {task:?} runs a Pipeline (pipelineRef or pipelineSpec), whose results do not reach this Pipeline; pass values on through params instead"
                ));
            }
            (_, Some(info), _) => info,
            (Place::PipelineResults, None, Some(info)) => info,
            (_, None, Some(_)) => {
                return Err(format!(
                    "{task:?} is a finally task; only pipeline results can use its results"
                ));
            }
            (_, None, None) => return Err(format!("there is no task {task:?} in this pipeline")),
        };
        let Some(results) = info else { return Ok(()) };
        let Some(rinfo) = results.get(result) else {
            return Err(format!("task {task:?} declares no result {result:?}"));
        };
        check_selector(
            "result",
            result,
            rinfo,
            selector,
            whole || place == Place::PipelineResults,
        )
    }
}

fn check_selector(
    what: &str,
    name: &str,
    info: &TypeInfo,
    selector: &Selector,
    whole: bool,
) -> Result<(), String> {
    match (info.type_, selector) {
        (ParamType::String, Selector::Whole) => Ok(()),
        (ParamType::String, _) => Err(format!(
            "{what} {name:?} is a string; it has no elements or keys"
        )),
        (ParamType::Array, Selector::Index(_)) => Ok(()),
        (ParamType::Array, Selector::Star | Selector::Whole) if whole => Ok(()),
        (ParamType::Array, Selector::Star | Selector::Whole) => Err(format!(
            "{what} {name:?} is an array; use $(…[*]) alone as a whole list element, or $(…[i]) for one element"
        )),
        (ParamType::Array, Selector::Key(_)) => {
            Err(format!("{what} {name:?} is an array; it has no keys"))
        }
        (ParamType::Object, Selector::Key(k)) => match &info.keys {
            Some(keys) if !keys.contains(k) => Err(format!(
                "object {what} {name:?} has no key {k:?} (keys: {})",
                keys.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            _ => Ok(()),
        },
        (ParamType::Object, Selector::Star | Selector::Whole) if whole => Ok(()),
        (ParamType::Object, Selector::Star | Selector::Whole) => Err(format!(
            "{what} {name:?} is an object; use $(….key) for one key, or $(…[*]) alone as a whole value"
        )),
        (ParamType::Object, Selector::Index(_)) => {
            Err(format!("{what} {name:?} is an object; it has no index"))
        }
    }
}
