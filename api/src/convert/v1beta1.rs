//! tekton.dev/v1beta1 → v1, following Tekton's migration rules.

use serde_json::{Map, Value};

use super::{Findings, drop_fields, each_object, ensure_array, ensure_object, object_mut, rename};
use crate::problem::FieldPath;

/// Container fields a v1beta1 step could set that v1 steps no longer have.
pub(crate) const DROPPED_STEP_FIELDS: &[&str] = &[
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "stdin",
    "stdinOnce",
    "tty",
];

fn container_resources(c: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    rename(c, "resources", "computeResources", path, f);
}

/// A v1beta1 Task spec (also an embedded one).
pub(crate) fn task_spec(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    each_object(spec, "steps", path, |step, p| {
        container_resources(step, p, f);
        drop_fields(
            step,
            DROPPED_STEP_FIELDS,
            "v1 steps have no such container field",
            p,
            f,
        );
    });
    if let Some(template) = object_mut(spec, "stepTemplate") {
        let p = path.field("stepTemplate");
        container_resources(template, &p, f);
        drop_fields(
            template,
            DROPPED_STEP_FIELDS,
            "v1 step templates have no such container field",
            &p,
            f,
        );
        drop_fields(
            template,
            &["name"],
            "a step template has no name in v1",
            &p,
            f,
        );
    }
    each_object(spec, "sidecars", path, |sidecar, p| {
        container_resources(sidecar, p, f)
    });
}

fn bundle_to_resolver(r: &mut Map<String, Value>, kind: &str, path: &FieldPath, f: &mut Findings) {
    if let Some(bundle) = r.remove("bundle") {
        let name = r.get("name").cloned().unwrap_or(Value::Null);
        let mut params = vec![
            serde_json::json!({"name": "bundle", "value": bundle}),
            serde_json::json!({"name": "kind", "value": kind}),
        ];
        if !name.is_null() {
            params.push(serde_json::json!({"name": "name", "value": name}));
        }
        r.remove("name");
        r.remove("kind");
        r.insert("resolver".into(), "bundles".into());
        r.insert("params".into(), Value::Array(params));
        f.note(
            &path.field("bundle"),
            "converted to the bundles resolver, as v1 requires",
        );
    }
}

/// A TaskRun's (or a taskRunSpecs entry's) step and sidecar overrides: v1's stepSpecs and
/// sidecarSpecs, their `resources` v1's `computeResources`.
fn overrides(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    for (old, new) in [
        ("stepOverrides", "stepSpecs"),
        ("sidecarOverrides", "sidecarSpecs"),
    ] {
        rename(spec, old, new, path, f);
        each_object(spec, new, path, |o, p| container_resources(o, p, f));
    }
}

/// A v1beta1 TaskRun spec.
pub(crate) fn taskrun_spec(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    overrides(spec, path, f);
    if let Some(task_spec) = object_mut(spec, "taskSpec") {
        self::task_spec(task_spec, &path.field("taskSpec"), f);
    }
    if let Some(r) = object_mut(spec, "taskRef") {
        bundle_to_resolver(r, "task", &path.field("taskRef"), f);
    }
}

/// A v1beta1 Pipeline spec (also an embedded one).
pub(crate) fn pipeline_spec(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    for list in ["tasks", "finally"] {
        each_object(spec, list, path, |task, p| {
            if let Some(ts) = object_mut(task, "taskSpec") {
                task_spec(ts, &p.field("taskSpec"), f);
            }
            if let Some(r) = object_mut(task, "taskRef") {
                bundle_to_resolver(r, "task", &p.field("taskRef"), f);
            }
        });
    }
}

/// A v1beta1 PipelineRun spec.
pub(crate) fn pipelinerun_spec(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    if let Some(timeout) = spec.remove("timeout") {
        let timeouts = ensure_object(spec, "timeouts");
        if timeouts.contains_key("pipeline") {
            f.problem(
                &path.field("timeout"),
                "\"timeout\" and \"timeouts.pipeline\" are both set; keep only \"timeouts\"",
            );
        } else {
            timeouts.insert("pipeline".into(), timeout);
        }
    }
    for (old, new) in [
        ("serviceAccountName", "serviceAccountName"),
        ("podTemplate", "podTemplate"),
    ] {
        if let Some(v) = spec.remove(old) {
            let template = ensure_object(spec, "taskRunTemplate");
            if template.contains_key(new) {
                f.problem(
                    &path.field(old),
                    format!("{old:?} and \"taskRunTemplate.{new}\" are both set; keep one"),
                );
            } else {
                template.insert(new.into(), v);
            }
        }
    }
    // The long-deprecated per-task service accounts become taskRunSpecs.
    if let Some(Value::Array(names)) = spec.remove("serviceAccountNames") {
        let specs = ensure_array(spec, "taskRunSpecs");
        for entry in names {
            if let Value::Object(mut e) = entry {
                let task = e.remove("taskName").unwrap_or(Value::Null);
                let sa = e.remove("serviceAccountName").unwrap_or(Value::Null);
                specs.push(serde_json::json!({"pipelineTaskName": task, "serviceAccountName": sa}));
            }
        }
    }
    each_object(spec, "taskRunSpecs", path, |s, p| {
        rename(s, "taskServiceAccountName", "serviceAccountName", p, f);
        rename(s, "taskPodTemplate", "podTemplate", p, f);
        overrides(s, p, f);
    });
    if let Some(ps) = object_mut(spec, "pipelineSpec") {
        pipeline_spec(ps, &path.field("pipelineSpec"), f);
    }
    if let Some(r) = object_mut(spec, "pipelineRef") {
        bundle_to_resolver(r, "pipeline", &path.field("pipelineRef"), f);
    }
}

/// Status fields renamed in v1 (present when a status is round-tripped).
pub(crate) fn taskrun_status(status: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    rename(status, "taskResults", "results", path, f);
    drop_fields(
        status,
        &["cloudEvents", "resourcesResult", "taskRunResults"],
        "v1 status has no such field",
        path,
        f,
    );
}

/// Status fields renamed in v1 (present when a status is round-tripped).
pub(crate) fn pipelinerun_status(
    status: &mut Map<String, Value>,
    path: &FieldPath,
    f: &mut Findings,
) {
    rename(status, "pipelineResults", "results", path, f);
    drop_fields(
        status,
        &["taskRuns", "runs"],
        "v1 reports children in childReferences",
        path,
        f,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(
        spec: Value,
        convert: fn(&mut Map<String, Value>, &FieldPath, &mut Findings),
    ) -> (Value, Findings) {
        let mut spec = spec;
        let mut f = Findings::default();
        convert(
            spec.as_object_mut().unwrap(),
            &FieldPath::from("spec"),
            &mut f,
        );
        (spec, f)
    }

    #[test]
    fn pipelinerun_timeout_and_service_account_move_to_their_v1_homes() {
        let (spec, f) = run(
            json!({"timeout": "1h", "serviceAccountName": "sa", "podTemplate": {"nodeSelector": {"a": "b"}},
                   "taskRunSpecs": [{"pipelineTaskName": "t", "taskServiceAccountName": "x", "taskPodTemplate": {}}]}),
            pipelinerun_spec,
        );
        assert_eq!(
            spec,
            json!({"timeouts": {"pipeline": "1h"},
            "taskRunTemplate": {"serviceAccountName": "sa", "podTemplate": {"nodeSelector": {"a": "b"}}},
            "taskRunSpecs": [{"pipelineTaskName": "t", "serviceAccountName": "x", "podTemplate": {}}]})
        );
        assert!(f.problems.is_empty());
    }

    #[test]
    fn timeout_and_timeouts_pipeline_together_are_a_problem() {
        let (_, f) = run(
            json!({"timeout": "1h", "timeouts": {"pipeline": "2h"}}),
            pipelinerun_spec,
        );
        assert_eq!(f.problems[0].path.as_str(), "spec.timeout");
    }

    #[test]
    fn step_resources_become_compute_resources_and_dropped_fields_are_noted() {
        let (spec, f) = run(
            json!({"steps": [{"name": "a", "resources": {"limits": {"cpu": "1"}}, "ports": [{"containerPort": 80}]}]}),
            task_spec,
        );
        assert_eq!(
            spec,
            json!({"steps": [{"name": "a", "computeResources": {"limits": {"cpu": "1"}}}]})
        );
        assert_eq!(f.notes[0].path.as_str(), "spec.steps[0].ports");
    }

    #[test]
    fn bundles_become_the_bundles_resolver() {
        let (spec, _) = run(
            json!({"taskRef": {"name": "t", "bundle": "reg/img:1"}}),
            taskrun_spec,
        );
        assert_eq!(spec["taskRef"]["resolver"], "bundles");
        assert_eq!(
            spec["taskRef"]["params"][0],
            json!({"name": "bundle", "value": "reg/img:1"})
        );
    }
}
