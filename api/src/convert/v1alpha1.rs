//! tekton.dev/v1alpha1 as the seeds write it: `inputs`/`outputs`, `serviceAccount`,
//! `trigger`, and `${inputs.params.x}` variables. Converted to the v1beta1 shape, which
//! the v1beta1 conversion then takes to v1.

use serde_json::{Map, Value};

use super::{
    Findings, drop_fields, ensure_array, ensure_object, object_mut, rename, rewrite_strings,
};
use crate::problem::FieldPath;

/// Rewrites the old variable spellings everywhere in a spec:
/// `${inputs.params.x}` and `$(inputs.params.x)` → `$(params.x)`,
/// `$(inputs.resources.r.path)` → `$(resources.inputs.r.path)`,
/// `$(outputs.resources.r.url)` → `$(resources.outputs.r.url)`.
pub(crate) fn rewrite_old_variables(spec: &mut Value) {
    rewrite_strings(spec, &|s: &str| {
        if !s.contains("inputs.") && !s.contains("outputs.") {
            return None;
        }
        let mut out = curly_to_round(s);
        for (old, new) in [
            ("$(inputs.params.", "$(params."),
            ("$(inputs.resources.", "$(resources.inputs."),
            ("$(outputs.resources.", "$(resources.outputs."),
        ] {
            out = out.replace(old, new);
        }
        (out != s).then_some(out)
    });
}

/// `${inputs.…}` / `${outputs.…}` → `$(inputs.…)` / `$(outputs.…)`; other `${…}` (shell
/// variables) are left alone.
fn curly_to_round(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let is_tekton = after.starts_with("inputs.") || after.starts_with("outputs.");
        match after.find('}') {
            Some(end) if is_tekton => {
                out.push_str("$(");
                out.push_str(&after[..end]);
                out.push(')');
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `spec.inputs.{params,resources}` and `spec.outputs.resources` of a Task spec.
pub(crate) fn task_spec(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    if let Some(Value::Object(mut inputs)) = spec.remove("inputs") {
        if let Some(params) = inputs.remove("params") {
            if spec.contains_key("params") {
                f.problem(
                    &path.field("inputs").field("params"),
                    "\"inputs.params\" and \"params\" are both set; keep only \"params\"",
                );
            } else {
                spec.insert("params".into(), params);
            }
        }
        if let Some(resources) = inputs.remove("resources") {
            ensure_object(spec, "resources").insert("inputs".into(), resources);
        }
        for key in inputs.keys() {
            f.problem(
                &path.field("inputs").field(key),
                format!("unknown field {key:?}"),
            );
        }
    }
    if let Some(Value::Object(mut outputs)) = spec.remove("outputs") {
        if let Some(resources) = outputs.remove("resources") {
            ensure_object(spec, "resources").insert("outputs".into(), resources);
        }
        for key in outputs.keys() {
            f.problem(
                &path.field("outputs").field(key),
                format!("unknown field {key:?}"),
            );
        }
    }
}

/// A v1alpha1 TaskRun spec.
pub(crate) fn taskrun_spec(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    rename(spec, "serviceAccount", "serviceAccountName", path, f);
    drop_fields(
        spec,
        &["trigger"],
        "v1alpha1 triggers were removed upstream; runs start when created",
        path,
        f,
    );
    for (key, side) in [("inputs", "inputs"), ("outputs", "outputs")] {
        if let Some(Value::Object(mut io)) = spec.remove(key) {
            if key == "inputs"
                && let Some(Value::Array(params)) = io.remove("params")
            {
                ensure_array(spec, "params").extend(params);
            }
            if let Some(resources) = io.remove("resources") {
                ensure_object(spec, "resources").insert(side.into(), resources);
            }
            for k in io.keys() {
                f.problem(&path.field(key).field(k), format!("unknown field {k:?}"));
            }
        }
    }
    if let Some(task_spec) = object_mut(spec, "taskSpec") {
        self::task_spec(task_spec, &path.field("taskSpec"), f);
    }
}

/// A v1alpha1 PipelineRun spec.
pub(crate) fn pipelinerun_spec(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    rename(spec, "serviceAccount", "serviceAccountName", path, f);
    drop_fields(
        spec,
        &["trigger"],
        "v1alpha1 triggers were removed upstream; runs start when created",
        path,
        f,
    );
}

/// Tasks embedded in a v1alpha1 Pipeline spec.
pub(crate) fn pipeline_spec(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    for list in ["tasks", "finally"] {
        super::each_object(spec, list, path, |task, p| {
            if let Some(ts) = object_mut(task, "taskSpec") {
                task_spec(ts, &p.field("taskSpec"), f);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn curly_input_params_become_round_params() {
        let mut v = json!([
            "${inputs.params.pathToContext}",
            "a-$(inputs.params.x)-b",
            "${HOME}",
            "$(outputs.resources.img.url)"
        ]);
        rewrite_old_variables(&mut v);
        assert_eq!(
            v,
            json!([
                "$(params.pathToContext)",
                "a-$(params.x)-b",
                "${HOME}",
                "$(resources.outputs.img.url)"
            ])
        );
    }

    #[test]
    fn inputs_and_outputs_move_to_params_and_resources() {
        let mut spec = json!({"inputs": {"params": [{"name": "p"}], "resources": [{"name": "src", "type": "git"}]},
                              "outputs": {"resources": [{"name": "img", "type": "image"}]}});
        let mut f = Findings::default();
        task_spec(
            spec.as_object_mut().unwrap(),
            &FieldPath::from("spec"),
            &mut f,
        );
        assert_eq!(
            spec,
            json!({"params": [{"name": "p"}], "resources": {
            "inputs": [{"name": "src", "type": "git"}], "outputs": [{"name": "img", "type": "image"}]}})
        );
        assert!(f.problems.is_empty());
    }
}
