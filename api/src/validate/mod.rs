//! Validation: every problem of every document, each with its field path and a message
//! that says what to do.

mod names;
mod pipeline;
mod run;
mod scope;
mod task;
mod update;

pub use update::update;

use std::collections::HashMap;

use crate::document::{Document, Object};
use crate::problem::{FieldPath, Problem};
use crate::v1::{self, Param, ParamSpec, ParamType, ParamValue, WhenExpression, WorkspaceBinding};

pub use names::{dns_label, dns_subdomain, param_name, result_name};
pub use pipeline::MAX_MATRIX_COMBINATIONS;

/// Collects problems and notes.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub problems: Vec<Problem>,
    pub notes: Vec<Problem>,
}

impl Report {
    pub fn problem(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }
    pub fn note(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.notes.push(Problem::new(path, message));
    }
}

/// The Tasks and Pipelines among the documents, by name, so references can be checked.
#[derive(Debug, Default)]
pub struct Catalog<'a> {
    pub tasks: HashMap<&'a str, &'a v1::TaskSpec>,
    pub pipelines: HashMap<&'a str, &'a v1::PipelineSpec>,
    pub step_actions: HashMap<&'a str, &'a crate::v1beta1::StepActionSpec>,
    /// When true, a reference by name to a Task or Pipeline that is not here is a
    /// problem (a local run has nowhere else to find it); otherwise it is a note.
    pub complete: bool,
}

impl<'a> Catalog<'a> {
    pub fn of(docs: &'a [Document]) -> Self {
        let mut c = Catalog::default();
        for d in docs {
            match &d.object {
                Some(Object::Task(t)) if t.metadata.name.is_some() => {
                    c.tasks
                        .insert(t.metadata.name.as_deref().unwrap_or_default(), &t.spec);
                }
                Some(Object::Pipeline(p)) if p.metadata.name.is_some() => {
                    c.pipelines
                        .insert(p.metadata.name.as_deref().unwrap_or_default(), &p.spec);
                }
                Some(Object::StepAction(a)) if a.metadata.name.is_some() => {
                    c.step_actions
                        .insert(a.metadata.name.as_deref().unwrap_or_default(), &a.spec);
                }
                _ => {}
            }
        }
        c
    }
}

/// Validates every decoded document against the others, adding to its problems and notes.
pub fn validate(docs: &mut [Document]) {
    validate_with(docs, false);
}

/// Like [`validate`]; with `complete`, references to Tasks and Pipelines not among the
/// documents are problems rather than notes.
pub fn validate_with(docs: &mut [Document], complete: bool) {
    let reports: Vec<Report> = {
        let mut catalog = Catalog::of(docs);
        catalog.complete = complete;
        docs.iter().map(|d| document(d, &catalog)).collect()
    };
    for (d, r) in docs.iter_mut().zip(reports) {
        d.problems.extend(r.problems);
        d.notes.extend(r.notes);
    }
}

fn document(doc: &Document, catalog: &Catalog<'_>) -> Report {
    let mut r = Report::default();
    let Some(object) = &doc.object else { return r };
    let spec = FieldPath::root().field("spec");
    match object {
        Object::Task(t) => {
            metadata(&t.metadata, false, &mut r);
            task::task_spec(&t.spec, &spec, None, catalog, &mut r);
        }
        Object::Pipeline(p) => {
            metadata(&p.metadata, false, &mut r);
            pipeline::pipeline_spec(&p.spec, &spec, catalog, &[], &mut r);
            if let Some(name) = p.metadata.name.as_deref()
                && let Some((at, chain)) = pipeline::ref_cycle(name, &p.spec, catalog)
            {
                r.problem(
                    &at,
                    format!(
                        "Pipeline {name:?} would run itself: {}; a Pipeline cannot be its own child",
                        chain.join(" → ")
                    ),
                );
            }
        }
        Object::TaskRun(tr) => {
            metadata(&tr.metadata, true, &mut r);
            run::taskrun(tr, catalog, &mut r);
        }
        Object::PipelineRun(pr) => {
            metadata(&pr.metadata, true, &mut r);
            run::pipelinerun(pr, catalog, &mut r);
        }
        Object::StepAction(a) => {
            metadata(&a.metadata, false, &mut r);
            task::step_action(&a.spec, &spec, &mut r);
        }
        Object::ConfigMap(_)
        | Object::Secret(_)
        | Object::ServiceAccount(_)
        | Object::PipelineResource(_)
        | Object::Other(_) => {}
    }
    r
}

fn metadata(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    generate_ok: bool,
    r: &mut Report,
) {
    let p = FieldPath::root().field("metadata");
    match (&meta.name, &meta.generate_name) {
        (Some(name), _) => {
            if let Err(e) = dns_subdomain(name) {
                r.problem(&p.field("name"), format!("name {name:?} {e}"));
            }
        }
        (None, Some(_)) if generate_ok => {}
        (None, Some(_)) => r.problem(
            &p.field("name"),
            "a name is required (generateName is only for runs)",
        ),
        (None, None) if generate_ok => {
            r.problem(&p.field("name"), "a name or generateName is required")
        }
        (None, None) => r.problem(&p.field("name"), "a name is required"),
    }
}

/// Reports names used more than once in a list (given in list order).
pub(crate) fn duplicates<'n>(
    names: impl Iterator<Item = &'n str>,
    list: &FieldPath,
    what: &str,
    r: &mut Report,
) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    // Empty names are reported (or allowed, for steps and sidecars) by the name checks.
    for (i, name) in names.enumerate().filter(|(_, n)| !n.is_empty()) {
        if let Some(first) = seen.insert(name, i) {
            r.problem(
                &list.index(i).field("name"),
                format!(
                    "{what} name {name:?} is already used at {}",
                    list.index(first)
                ),
            );
        }
    }
}

/// Param declarations: names, duplicates, defaults that match the type, enums.
pub(crate) fn params_decl(params: &[ParamSpec], list: &FieldPath, r: &mut Report) {
    duplicates(params.iter().map(|p| p.name.as_str()), list, "param", r);
    for (i, p) in params.iter().enumerate() {
        let pp = list.index(i);
        if let Err(e) = param_name(&p.name) {
            r.problem(&pp.field("name"), format!("param name {:?} {e}", p.name));
        }
        let declared = p.effective_type();
        if let Some(d) = &p.default {
            if d.param_type() != declared {
                r.problem(
                    &pp.field("default"),
                    format!(
                        "the default is {} but the param is declared {declared}",
                        d.param_type()
                    ),
                );
            }
            // A default may give only some keys: a run gives the others (Tekton's).
            if let (ParamValue::String(s), false) = (d, p.enum_.is_empty())
                && !p.enum_.contains(s)
            {
                r.problem(
                    &pp.field("default"),
                    format!(
                        "default {s:?} is not one of the enum values ({})",
                        p.enum_.join(", ")
                    ),
                );
            }
        }
        if declared == ParamType::Object && p.properties.is_none() {
            r.problem(
                &pp.field("properties"),
                "an object param needs properties naming its keys",
            );
        }
        if !p.enum_.is_empty() && declared != ParamType::String {
            r.problem(&pp.field("enum"), "only string params can have an enum");
        }
    }
}

/// What params and workspaces are bound to: a Task or Pipeline by name, or a spec
/// embedded in the run or pipeline task, which sees what it does not declare (Tekton
/// propagates it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub name: String,
    pub embedded: bool,
}

impl Owner {
    pub fn named(kind: &str, name: &str) -> Owner {
        Owner {
            name: format!("{kind} {name:?}"),
            embedded: false,
        }
    }

    pub fn embedded(what: &str) -> Owner {
        Owner {
            name: format!("the {what}"),
            embedded: true,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Param bindings against declarations: duplicates, missing required params, types,
/// enums. Extra params are allowed (Tekton propagates them); bound to a named Task or
/// Pipeline, they are noted.
pub(crate) fn check_param_bindings(
    bound: &[Param],
    also_bound: &[&str],
    decls: &[ParamSpec],
    list: &FieldPath,
    owner: &Owner,
    value_type: &dyn Fn(&ParamValue) -> ParamType,
    r: &mut Report,
) {
    duplicates(bound.iter().map(|p| p.name.as_str()), list, "param", r);
    for d in decls.iter().filter(|d| d.default.is_none()) {
        if !bound.iter().any(|b| b.name == d.name) && !also_bound.contains(&d.name.as_str()) {
            r.problem(
                list,
                format!(
                    "param {:?} is required by {owner} and has no default; give it a value",
                    d.name
                ),
            );
        }
    }
    // An object's keys: those given, else the default's; all its properties are needed.
    for d in decls {
        let (Some(props), Some(ParamValue::Object(default))) = (&d.properties, &d.default) else {
            continue;
        };
        let given = bound.iter().find(|b| b.name == d.name);
        let given_keys = match given.map(|b| &b.value) {
            Some(ParamValue::Object(o)) => Some(o),
            Some(_) => continue, // a reference, or a type error reported below
            None if also_bound.contains(&d.name.as_str()) => continue,
            None => None,
        };
        let missing: Vec<&str> = props
            .keys()
            .filter(|k| {
                !default.contains_key(*k) && !given_keys.is_some_and(|g| g.contains_key(*k))
            })
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let at = bound
                .iter()
                .position(|b| b.name == d.name)
                .map_or_else(|| list.clone(), |i| list.index(i).field("value"));
            r.problem(
                &at,
                format!(
                    "object param {:?} of {owner} has no value for key {} (neither given nor in its default)",
                    d.name,
                    missing.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    for (i, b) in bound.iter().enumerate() {
        let bp = list.index(i);
        let Some(d) = decls.iter().find(|d| d.name == b.name) else {
            // An embedded spec sees the param undeclared: it is propagated, not unused.
            if owner.embedded {
                continue;
            }
            r.note(
                &bp.field("name"),
                format!(
                    "{owner} declares no param {:?}; the value is passed on but not used by it",
                    b.name
                ),
            );
            continue;
        };
        let (got, want) = (value_type(&b.value), d.effective_type());
        if got != want {
            r.problem(
                &bp.field("value"),
                format!(
                    "param {:?} of {owner} is {want}, but the value given is {got}",
                    b.name
                ),
            );
        }
        if let ParamValue::String(s) = &b.value
            && !d.enum_.is_empty()
            && !s.contains("$(")
            && !d.enum_.contains(s)
        {
            r.problem(
                &bp.field("value"),
                format!(
                    "{s:?} is not one of the allowed values of param {:?} ({})",
                    b.name,
                    d.enum_.join(", ")
                ),
            );
        }
    }
}

/// Workspace bindings of a run: one volume source each; against declarations, every
/// required workspace bound and nothing bound that is not declared.
pub(crate) fn check_workspace_bindings(
    bindings: &[WorkspaceBinding],
    decls: Option<&[(&str, bool)]>,
    list: &FieldPath,
    owner: Option<&Owner>,
    r: &mut Report,
) {
    let owner = owner.map(|o| o.name.as_str()).unwrap_or_default();
    duplicates(
        bindings.iter().map(|b| b.name.as_str()),
        list,
        "workspace binding",
        r,
    );
    for (i, b) in bindings.iter().enumerate() {
        let sources = b.sources();
        if sources.len() != 1 {
            r.problem(&list.index(i), format!(
                "a workspace binding takes exactly one of emptyDir, persistentVolumeClaim, volumeClaimTemplate, configMap, secret, projected and csi (it has {})",
                sources.len()
            ));
        }
        if let Some(decls) = decls
            && !decls.iter().any(|(n, _)| *n == b.name)
        {
            r.problem(
                &list.index(i).field("name"),
                format!("{owner} declares no workspace {:?}", b.name),
            );
        }
    }
    if let Some(decls) = decls {
        for (name, optional) in decls {
            // Tekton admits the run: a cluster's config-defaults may bind it
            // (default-task-run-workspace-binding); `tkt run` gives it a fresh directory.
            if !optional && !bindings.iter().any(|b| b.name == *name) {
                r.note(
                    list,
                    format!(
                        "workspace {name:?} is required by {owner} and not bound: on a cluster the run fails unless config-defaults' default-task-run-workspace-binding binds it; tkt run gives it a fresh directory (bind it, e.g. emptyDir: {{}})"
                    ),
                );
            }
        }
    }
}

/// A timeout that must parse; returns it when it does.
pub(crate) fn timeout(
    d: &v1::Duration,
    path: &FieldPath,
    r: &mut Report,
) -> Option<std::time::Duration> {
    match d.parse() {
        Ok(t) => Some(t),
        Err(e) => {
            r.problem(path, e.to_string());
            None
        }
    }
}

/// Checks a CEL `when` expression as Tekton does: it must compile with no variables
/// declared, so `$(...)` references belong inside quotes (`'$(params.env)' == 'prod'`),
/// where they are substituted before evaluation.
fn check_cel(expr: &str) -> Result<(), String> {
    if expr.trim().is_empty() {
        return Err("the cel expression is empty".into());
    }
    let hint = "put $(...) variables inside quotes, e.g. '$(params.env)' == 'prod'";
    match cel::Program::compile(expr) {
        Err(e) => {
            let first = e
                .errors
                .first()
                .map(|e| format!("{} at {}:{}", e.msg, e.pos.0, e.pos.1))
                .unwrap_or_else(|| e.to_string());
            Err(format!("invalid CEL expression: {first}; {hint}"))
        }
        Ok(program) => {
            let references = program.references();
            let mut vars = references.variables();
            vars.sort_unstable();
            if vars.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "the CEL expression uses undeclared names ({}); {hint}",
                    vars.join(", ")
                ))
            }
        }
    }
}

/// When expressions: `cel`, or `input` + `operator` + non-empty `values`.
pub(crate) fn when(exprs: &[WhenExpression], list: &FieldPath, r: &mut Report) {
    for (i, w) in exprs.iter().enumerate() {
        let p = list.index(i);
        match (&w.cel, &w.input) {
            (Some(cel), _) => {
                if w.input.is_some() || w.operator.is_some() || !w.values.is_empty() {
                    r.problem(
                        &p,
                        "a when expression takes cel, or input with operator and values, not both",
                    );
                }
                if let Err(e) = check_cel(cel) {
                    r.problem(&p.field("cel"), e);
                }
            }
            (None, Some(_)) => {
                if w.operator.is_none() {
                    r.problem(
                        &p.field("operator"),
                        "a when expression needs an operator (in or notin)",
                    );
                }
                if w.values.is_empty() {
                    r.problem(
                        &p.field("values"),
                        "a when expression needs at least one value",
                    );
                }
            }
            (None, None) => r.problem(
                &p,
                "a when expression needs input, operator and values (or cel)",
            ),
        }
    }
}
