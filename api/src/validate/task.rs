//! Task specs: steps, sidecars, params, results, workspaces, volumes and variables.

use std::collections::{HashMap, HashSet};

use super::scope::{Place, Scope, TASK_CONTEXT, TypeInfo};
use super::{Report, duplicates, names, params_decl, timeout, when};
use crate::problem::FieldPath;
use crate::v1::{ParamType, TaskSpec};

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
            for (set, field) in [
                (step.image.is_some(), "image"),
                (!step.command.is_empty(), "command"),
                (step.script.is_some(), "script"),
            ] {
                if set {
                    r.problem(
                        &p.field(field),
                        format!(
                            "a step with ref takes {field} from the StepAction; remove {field}"
                        ),
                    );
                }
            }
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
        }
        if let Some(t) = &step.timeout {
            timeout(t, &p.field("timeout"), r);
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
                (name, s.results.iter().map(|res| res.name.clone()).collect())
            })
            .collect(),
        workspaces: spec.workspaces.iter().map(|w| w.name.clone()).collect(),
        pipeline: None,
        context: TASK_CONTEXT.to_vec(),
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
