//! Task specs: steps, sidecars, params, results, workspaces, volumes and variables.

use std::collections::{HashMap, HashSet};

use super::scope::{Place, Scope, TASK_CONTEXT, TypeInfo};
use super::{Catalog, Report, duplicates, names, params_decl, timeout, when};
use crate::problem::FieldPath;
use crate::v1::{ParamType, ParamValue, Step, StepResult, TaskSpec};
use crate::v1beta1::StepActionSpec;

/// What a Pipeline passes into a task spec embedded in it: its params, workspaces and
/// tasks are visible inside (Tekton's propagation).
pub(crate) struct Outer<'a> {
    pub params: &'a HashMap<String, TypeInfo>,
    pub workspaces: &'a HashSet<String>,
    pub scope: &'a Scope<'a>,
}

pub(crate) fn task_spec(
    spec: &TaskSpec,
    path: &FieldPath,
    outer: Option<&Outer<'_>>,
    catalog: &Catalog<'_>,
    r: &mut Report,
) {
    if spec.steps.is_empty() {
        r.problem(&path.field("steps"), "a Task needs at least one step");
    }
    params_decl(&spec.params, &path.field("params"), r);

    // Steps.
    let step_names = spec.steps.iter().map(|s| s.name.as_str());
    duplicates(step_names, &path.field("steps"), "step", r);
    let template_image = spec
        .step_template
        .as_ref()
        .and_then(|t| t.image.as_ref())
        .is_some();
    let template_command = spec
        .step_template
        .as_ref()
        .is_some_and(|t| !t.command.is_empty());
    for (i, step) in spec.steps.iter().enumerate() {
        let p = path.field("steps").index(i);
        if !step.name.is_empty()
            && let Err(e) = names::dns_label(&step.name)
        {
            r.problem(&p.field("name"), format!("step name {:?} {e}", step.name));
        }
        if step.ref_.is_some() {
            step_ref(step, &p, catalog, r);
        } else {
            if step.image.is_none() && !template_image {
                r.problem(
                    &p.field("image"),
                    "a step needs an image (or spec.stepTemplate.image)",
                );
            }
            if step.script.is_some() && (!step.command.is_empty() || template_command) {
                r.problem(&p.field("script"), "script cannot be used together with command; put the command in the script, or drop the script");
            }
            if !step.params.is_empty() {
                r.problem(&p.field("params"), "params are for a step that runs a StepAction (ref); an inline step reads the Task's params");
            }
        }
        if let Some(t) = &step.timeout {
            timeout(t, &p.field("timeout"), r);
        }
        if let Some(crate::v1::StepOnError::Variable(v)) = &step.on_error
            && !v.contains("$(")
        {
            r.problem(
                &p.field("onError"),
                format!("onError {v:?} must be continue or stopAndFail (or a param that is one)"),
            );
        }
        for (j, w) in step.workspaces.iter().enumerate() {
            if !spec.workspaces.iter().any(|d| d.name == w.name)
                && !outer.is_some_and(|o| o.workspaces.contains(&w.name))
            {
                r.problem(
                    &p.field("workspaces").index(j).field("name"),
                    format!("the Task declares no workspace {:?}", w.name),
                );
            }
        }
        for (j, m) in step.volume_mounts.iter().enumerate() {
            // As Tekton's: /tekton is tektite's own, but for /tekton/home, which a step
            // may mount over (its own mount then wins over the shared home).
            let tekton = m.mount_path.starts_with("/tekton/") || m.mount_path == "/tekton";
            if tekton && !m.mount_path.starts_with("/tekton/home") {
                r.problem(
                    &p.field("volumeMounts").index(j).field("mountPath"),
                    format!(
                        "{:?} is reserved for tektite's own files; mount somewhere else",
                        m.mount_path
                    ),
                );
            }
        }
        duplicates(
            step.results.iter().map(|res| res.name.as_str()),
            &p.field("results"),
            "step result",
            r,
        );
        for (j, res) in step.results.iter().enumerate() {
            if let Err(e) = names::result_name(&res.name) {
                r.problem(
                    &p.field("results").index(j).field("name"),
                    format!("result name {:?} {e}", res.name),
                );
            }
        }
        when(&step.when, &p.field("when"), r);
    }

    // Sidecars.
    duplicates(
        spec.sidecars.iter().map(|s| s.name.as_str()),
        &path.field("sidecars"),
        "sidecar",
        r,
    );
    for (i, sidecar) in spec.sidecars.iter().enumerate() {
        let p = path.field("sidecars").index(i);
        // Optional, as a step's: an unnamed sidecar is named `unnamed-<i>`.
        if !sidecar.name.is_empty()
            && let Err(e) = names::dns_label(&sidecar.name)
        {
            r.problem(
                &p.field("name"),
                format!("sidecar name {:?} {e}", sidecar.name),
            );
        }
        if sidecar.image.is_none() {
            r.problem(&p.field("image"), "a sidecar needs an image");
        }
        if sidecar.script.is_some() && !sidecar.command.is_empty() {
            r.problem(
                &p.field("script"),
                "script cannot be used together with command",
            );
        }
    }

    // Results.
    duplicates(
        spec.results.iter().map(|res| res.name.as_str()),
        &path.field("results"),
        "result",
        r,
    );
    for (i, res) in spec.results.iter().enumerate() {
        let p = path.field("results").index(i);
        if let Err(e) = names::result_name(&res.name) {
            r.problem(&p.field("name"), format!("result name {:?} {e}", res.name));
        }
        if res.type_ == Some(ParamType::Object) && res.properties.is_none() {
            r.problem(
                &p.field("properties"),
                "an object result needs properties naming its keys",
            );
        }
    }

    // Workspaces and volumes.
    duplicates(
        spec.workspaces.iter().map(|w| w.name.as_str()),
        &path.field("workspaces"),
        "workspace",
        r,
    );
    let mut mount_paths: HashMap<String, usize> = HashMap::new();
    for (i, w) in spec.workspaces.iter().enumerate() {
        let mp = w.path();
        if let Some(first) = mount_paths.insert(mp.clone(), i) {
            r.problem(
                &path.field("workspaces").index(i).field("mountPath"),
                format!(
                    "workspaces {:?} and {:?} are both mounted at {mp:?}",
                    spec.workspaces[first].name, w.name
                ),
            );
        }
    }
    duplicates(
        spec.volumes.iter().map(|v| v.name.as_str()),
        &path.field("volumes"),
        "volume",
        r,
    );

    // Variables.
    let mut scope = Scope {
        params: spec
            .params
            .iter()
            .map(|p| (p.name.clone(), TypeInfo::of_param(p)))
            .collect(),
        task_results: spec.results.iter().map(|res| res.name.clone()).collect(),
        steps: spec
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let name = if s.name.is_empty() {
                    format!("unnamed-{i}")
                } else {
                    s.name.clone()
                };
                let results = |list: &[StepResult]| list.iter().map(|r| r.name.clone()).collect();
                let results = match &s.ref_ {
                    None => Some(results(&s.results)),
                    Some(_) => step_action_of(s, catalog).map(|a| results(&a.results)),
                };
                (name, results)
            })
            .collect(),
        workspaces: spec.workspaces.iter().map(|w| w.name.clone()).collect(),
        pipeline: None,
        context: TASK_CONTEXT.to_vec(),
        step_action: false,
    };
    if let Some(o) = outer {
        for (k, v) in o.params {
            scope.params.entry(k.clone()).or_insert_with(|| v.clone());
        }
        scope.workspaces.extend(o.workspaces.iter().cloned());
        scope.pipeline = o.scope.pipeline;
        scope.context.extend(o.scope.context.iter().copied());
    }
    let Ok(tree) = serde_json::to_value(spec) else {
        return;
    };
    let Some(map) = tree.as_object() else { return };
    for (key, value) in map {
        let p = path.field(key);
        match (key.as_str(), value) {
            ("description" | "params", _) => {}
            ("steps", serde_json::Value::Array(steps)) => {
                for (i, step) in steps.iter().enumerate() {
                    let step_name = spec.steps.get(i).map(|s| {
                        if s.name.is_empty() {
                            format!("unnamed-{i}")
                        } else {
                            s.name.clone()
                        }
                    });
                    scope.check_tree(step, &p.index(i), Place::Task, step_name.as_deref(), r);
                }
            }
            _ => scope.check_tree(value, &p, Place::Task, None, r),
        }
    }
}

/// The StepAction a step names, when it is among the documents.
fn step_action_of<'c>(step: &Step, catalog: &Catalog<'c>) -> Option<&'c StepActionSpec> {
    let r = step.ref_.as_ref()?;
    if r.resolver.is_some() {
        return None;
    }
    catalog.step_actions.get(r.name.as_deref()?).copied()
}

/// A step that runs a StepAction: it gives none of what the StepAction gives, and the
/// params it passes are ones the StepAction declares (all it needs, when known here).
fn step_ref(step: &Step, p: &FieldPath, catalog: &Catalog<'_>, r: &mut Report) {
    for (set, field) in [
        (step.image.is_some(), "image"),
        (!step.command.is_empty(), "command"),
        (!step.args.is_empty(), "args"),
        (step.script.is_some(), "script"),
        (!step.env.is_empty(), "env"),
        (!step.volume_mounts.is_empty(), "volumeMounts"),
        (!step.results.is_empty(), "results"),
    ] {
        if set {
            r.problem(
                &p.field(field),
                format!("a step with ref takes {field} from the StepAction; remove {field}"),
            );
        }
    }
    let Some(reference) = &step.ref_ else { return };
    let rp = p.field("ref");
    duplicates(
        step.params.iter().map(|x| x.name.as_str()),
        &p.field("params"),
        "param",
        r,
    );
    if reference.resolver.is_some() {
        if reference.name.is_some() {
            r.problem(
                &rp.field("name"),
                "ref takes a name or a resolver, not both",
            );
        }
        return;
    }
    let Some(name) = reference.name.as_deref().filter(|n| !n.is_empty()) else {
        r.problem(
            &rp.field("name"),
            "ref needs the StepAction's name (or a resolver)",
        );
        return;
    };
    let Some(action) = catalog.step_actions.get(name) else {
        let message = format!("there is no StepAction {name:?} among the files");
        if catalog.complete {
            r.problem(&rp.field("name"), format!("{message}; add it"));
        } else {
            r.note(
                &rp.field("name"),
                format!("{message}; on a cluster it is read from the run's namespace"),
            );
        }
        return;
    };
    for (j, given) in step.params.iter().enumerate() {
        match action.params.iter().find(|d| d.name == given.name) {
            None => r.problem(
                &p.field("params").index(j).field("name"),
                format!("StepAction {name:?} declares no param {:?}", given.name),
            ),
            // A reference alone may stand for an array or an object.
            Some(d) if !matches!(&given.value, ParamValue::String(t) if t.contains("$(")) => {
                let (have, want) = (given.value.param_type(), d.effective_type());
                if have != want {
                    r.problem(
                        &p.field("params").index(j).field("value"),
                        format!(
                            "param {:?} of StepAction {name:?} is {want}; this value is {have}",
                            d.name
                        ),
                    );
                }
            }
            Some(_) => {}
        }
    }
    for d in &action.params {
        if d.default.is_none() && !step.params.iter().any(|g| g.name == d.name) {
            r.problem(
                &p.field("params"),
                format!(
                    "StepAction {name:?} needs param {:?}, which has no default; give it a value",
                    d.name
                ),
            );
        }
    }
}

/// A StepAction document: a container with its params and results.
pub(crate) fn step_action(spec: &StepActionSpec, path: &FieldPath, r: &mut Report) {
    if spec.image.as_deref().is_none_or(str::is_empty) {
        r.problem(&path.field("image"), "a StepAction needs an image");
    }
    if spec.script.is_some() && !spec.command.is_empty() {
        r.problem(
            &path.field("script"),
            "script cannot be used together with command; put the command in the script, or drop the script",
        );
    }
    params_decl(&spec.params, &path.field("params"), r);
    duplicates(
        spec.results.iter().map(|res| res.name.as_str()),
        &path.field("results"),
        "result",
        r,
    );
    for (j, res) in spec.results.iter().enumerate() {
        if let Err(e) = names::result_name(&res.name) {
            r.problem(
                &path.field("results").index(j).field("name"),
                format!("result name {:?} {e}", res.name),
            );
        }
    }
    // As Tekton's: params reach a script only through env, never as text in it.
    if let Some(script) = &spec.script
        && crate::vars::references(script)
            .iter()
            .any(|o| matches!(o.reference, crate::vars::Reference::Param { .. }))
    {
        r.problem(
            &path.field("script"),
            "a StepAction's script cannot use $(params...) directly (it would be open to shell injection); pass the param in env and read the variable",
        );
    }
    const SELF: &str = "the StepAction";
    let scope = Scope {
        params: spec
            .params
            .iter()
            .map(|p| (p.name.clone(), TypeInfo::of_param(p)))
            .collect(),
        steps: HashMap::from([(
            SELF.to_owned(),
            Some(spec.results.iter().map(|r| r.name.clone()).collect()),
        )]),
        step_action: true,
        ..Scope::default()
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(spec) else {
        return;
    };
    for (key, value) in &map {
        if !matches!(key.as_str(), "description" | "params" | "results") {
            scope.check_tree(value, &path.field(key), Place::Task, Some(SELF), r);
        }
    }
}
