//! Between tekton.dev/v1beta1 and tekton.dev/v1 for the API server's conversion webhook,
//! both ways: Task, TaskRun, Pipeline and PipelineRun are stored at v1 and served at both.
//!
//! Nothing v1beta1 can hold is lost on the way to v1 and back: what v1 has no field for is
//! kept in annotations, as Tekton keeps it, and put back on the way to v1beta1 (where the
//! annotations go again):
//! - a step's and a step template's container fields v1 dropped (ports, probes, lifecycle,
//!   terminationMessage*, stdin*, tty; a step template's name) in
//!   [`TASK_DEPRECATIONS`], a JSON object keyed by the Task's name (a Task, a TaskRun's
//!   `taskSpec`: the object's name) or the pipeline task's name (a Pipeline's, a
//!   PipelineRun's `pipelineSpec`); a spec under `status` is keyed by its field path
//!   instead, so that it never meets the spec's;
//! - a TaskRun status's `cloudEvents` and `resourcesResult` in [`CLOUD_EVENTS`] and
//!   [`RESOURCES_RESULT`].
//!
//! What v1beta1 says in an older form becomes its v1 form, which v1beta1 reads as well
//! and so is served as it is: a `bundle` becomes the bundles resolver, a PipelineRun's
//! `timeout` its `timeouts.pipeline`, `serviceAccountNames` its `taskRunSpecs`.
//!
//! Refused on the way to v1, with the field: PipelineResources (Tekton no longer runs
//! them; `tkt convert` turns them into steps), a field both forms set, and whatever the
//! v1 types do not know (the v1beta1 schema is open, so this is where an unknown field is
//! caught, with its path, instead of being pruned without a word).

use serde_json::{Map, Value};

use super::{Findings, each_object, object_mut, rename, v1beta1};
use crate::document::{Source, load};
use crate::problem::{FieldPath, Problem};

/// Where a Task's container fields that v1 has no place for are kept.
pub const TASK_DEPRECATIONS: &str = "tekton.dev/v1beta1.task-deprecations";
/// Where a v1beta1 TaskRun status's `cloudEvents` is kept.
pub const CLOUD_EVENTS: &str = "tekton.dev/v1beta1CloudEvents";
/// Where a v1beta1 TaskRun status's `resourcesResult` is kept.
pub const RESOURCES_RESULT: &str = "tekton.dev/v1beta1ResourcesResult";

const V1: &str = "tekton.dev/v1";
const V1BETA1: &str = "tekton.dev/v1beta1";

/// The v1beta1 step fields v1 has no place for.
const STEP_FIELDS: &[&str] = v1beta1::DROPPED_STEP_FIELDS;

/// Why an object could not be converted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{0:?} objects are not converted here: only Task, TaskRun, Pipeline and PipelineRun")]
    Kind(String),
    #[error("cannot convert {from:?} to {to:?}: only between {V1BETA1} and {V1}")]
    Version { from: String, to: String },
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Task,
    TaskRun,
    Pipeline,
    PipelineRun,
}

/// `object` at `to` (`tekton.dev/v1` or `tekton.dev/v1beta1`); an object already there is
/// returned as it is.
pub fn to_version(mut object: Value, to: &str) -> Result<Value, Error> {
    let from = object["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = match object["kind"].as_str().unwrap_or_default() {
        "Task" => Kind::Task,
        "TaskRun" => Kind::TaskRun,
        "Pipeline" => Kind::Pipeline,
        "PipelineRun" => Kind::PipelineRun,
        other => return Err(Error::Kind(other.to_owned())),
    };
    let Some(obj) = object.as_object_mut() else {
        return Err(Error::Kind(String::new()));
    };
    match (from.as_str(), to) {
        (a, b) if a == b && (a == V1 || a == V1BETA1) => {}
        (V1BETA1, V1) => {
            up(obj, kind).map_err(Error::Invalid)?;
            check(&object).map_err(Error::Invalid)?;
        }
        (V1, V1BETA1) => down(obj, kind).map_err(Error::Invalid)?,
        _ => {
            return Err(Error::Version {
                from,
                to: to.to_owned(),
            });
        }
    }
    Ok(object)
}

/// The object's name (a Task's or TaskRun's spec is kept under it).
fn name(obj: &Map<String, Value>) -> String {
    obj.get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn annotations(obj: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let meta = super::ensure_object(obj, "metadata");
    super::ensure_object(meta, "annotations")
}

/// Takes the annotation `key` away, decoded; an empty `annotations` goes with it.
fn take_annotation(obj: &mut Map<String, Value>, key: &str) -> Result<Option<Value>, Problem> {
    let Some(meta) = object_mut(obj, "metadata") else {
        return Ok(None);
    };
    let Some(all) = object_mut(meta, "annotations") else {
        return Ok(None);
    };
    let taken = all.remove(key);
    if all.is_empty() {
        meta.remove("annotations");
    }
    let path = FieldPath::root()
        .field("metadata")
        .field("annotations")
        .key(key);
    match taken {
        None => Ok(None),
        Some(Value::String(text)) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Problem::new(&path, format!("not the JSON tektite wrote there: {e}"))),
        Some(_) => Err(Problem::new(&path, "an annotation's value is a string")),
    }
}

fn put_annotation(obj: &mut Map<String, Value>, key: &str, value: &Value) {
    annotations(obj).insert(key.to_owned(), Value::String(value.to_string()));
}

/// What is done with each Task spec of an object: the spec, its key, its path.
type EachSpec<'a> = dyn FnMut(&mut Map<String, Value>, &str, &FieldPath) + 'a;

/// The places a Task spec sits in an object, each with the key its deprecated fields are
/// kept under, visited with `each`.
fn task_specs(obj: &mut Map<String, Value>, kind: Kind, each: &mut EachSpec<'_>) {
    let name = name(obj);
    let spec_path = FieldPath::root().field("spec");
    let status_path = FieldPath::root().field("status");
    if let Some(spec) = object_mut(obj, "spec") {
        match kind {
            Kind::Task => each(spec, &name, &spec_path),
            Kind::TaskRun => {
                if let Some(ts) = object_mut(spec, "taskSpec") {
                    each(ts, &name, &spec_path.field("taskSpec"));
                }
            }
            Kind::Pipeline => pipeline_tasks(spec, &spec_path, "", false, each),
            Kind::PipelineRun => {
                if let Some(ps) = object_mut(spec, "pipelineSpec") {
                    pipeline_tasks(ps, &spec_path.field("pipelineSpec"), "", false, each);
                }
            }
        }
    }
    if let Some(status) = object_mut(obj, "status") {
        match kind {
            Kind::TaskRun => taskrun_status_specs(status, &status_path, each),
            Kind::PipelineRun => {
                if let Some(ps) = object_mut(status, "pipelineSpec") {
                    pipeline_tasks(ps, &status_path.field("pipelineSpec"), "", true, each);
                }
            }
            Kind::Task | Kind::Pipeline => {}
        }
    }
}

fn taskrun_status_specs(
    status: &mut Map<String, Value>,
    path: &FieldPath,
    each: &mut EachSpec<'_>,
) {
    if let Some(ts) = object_mut(status, "taskSpec") {
        let p = path.field("taskSpec");
        each(ts, p.as_str(), &p);
    }
    each_object(status, "retriesStatus", path, |retry, p| {
        taskrun_status_specs(retry, p, each)
    });
}

/// A Pipeline spec's pipeline tasks' Task specs, keyed by pipeline task name (under
/// `prefix`, for a Pipeline a pipeline task embeds); by field path under `status`.
fn pipeline_tasks(
    spec: &mut Map<String, Value>,
    path: &FieldPath,
    prefix: &str,
    by_path: bool,
    each: &mut EachSpec<'_>,
) {
    for list in ["tasks", "finally"] {
        each_object(spec, list, path, |task, p| {
            let task_name = task.get("name").and_then(Value::as_str).unwrap_or_default();
            let key = format!("{prefix}{task_name}");
            if let Some(ts) = object_mut(task, "taskSpec") {
                let tp = p.field("taskSpec");
                let k = if by_path { tp.to_string() } else { key.clone() };
                each(ts, &k, &tp);
            }
            if let Some(ps) = object_mut(task, "pipelineSpec") {
                pipeline_tasks(
                    ps,
                    &p.field("pipelineSpec"),
                    &format!("{key}/"),
                    by_path,
                    each,
                );
            }
        });
    }
}

/// Moves a Task spec's deprecated container fields out, into `kept` under `key`.
fn keep_deprecated(spec: &mut Map<String, Value>, key: &str, kept: &mut Map<String, Value>) {
    let mut entry = Map::new();
    if let Some(Value::Array(steps)) = spec.get_mut("steps") {
        let mut any = false;
        let taken: Vec<Value> = steps
            .iter_mut()
            .map(|step| {
                let mut fields = Map::new();
                if let Value::Object(step) = step {
                    for f in STEP_FIELDS {
                        if let Some(v) = step.remove(*f) {
                            fields.insert((*f).to_owned(), v);
                            any = true;
                        }
                    }
                }
                Value::Object(fields)
            })
            .collect();
        if any {
            entry.insert("deprecatedSteps".into(), Value::Array(taken));
        }
    }
    if let Some(template) = object_mut(spec, "stepTemplate") {
        let mut fields = Map::new();
        for f in STEP_FIELDS.iter().chain(&["name"]) {
            if let Some(v) = template.remove(*f) {
                fields.insert((*f).to_owned(), v);
            }
        }
        if !fields.is_empty() {
            entry.insert("deprecatedStepTemplate".into(), Value::Object(fields));
        }
    }
    if !entry.is_empty() {
        kept.insert(key.to_owned(), Value::Object(entry));
    }
}

/// Puts back what [`keep_deprecated`] kept of the spec at `path`.
fn restore_deprecated(
    spec: &mut Map<String, Value>,
    entry: &Value,
    path: &FieldPath,
) -> Result<(), Problem> {
    let merge = |into: &mut Map<String, Value>, from: &Value| {
        if let Value::Object(fields) = from {
            for (k, v) in fields {
                into.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    };
    if let Some(Value::Array(kept)) = entry.get("deprecatedSteps") {
        let steps = super::ensure_array(spec, "steps");
        if steps.len() != kept.len() {
            return Err(Problem::new(
                path.field("steps"),
                format!(
                    "{} steps, but {TASK_DEPRECATIONS} keeps fields of {}: the annotation no longer fits the spec",
                    steps.len(),
                    kept.len()
                ),
            ));
        }
        for (step, fields) in steps.iter_mut().zip(kept) {
            if let Value::Object(step) = step {
                merge(step, fields);
            }
        }
    }
    if let Some(fields) = entry.get("deprecatedStepTemplate") {
        merge(super::ensure_object(spec, "stepTemplate"), fields);
    }
    Ok(())
}

/// Refuses PipelineResources, which Tekton no longer runs.
fn refuse_resources(obj: &mut Map<String, Value>, kind: Kind, problems: &mut Vec<Problem>) {
    const WHY: &str = "PipelineResources are not run on a cluster (Tekton removed them): `tkt convert FILE | kubectl apply -f -` turns them into steps and params";
    let spec_path = FieldPath::root().field("spec");
    let Some(spec) = object_mut(obj, "spec") else {
        return;
    };
    if spec.contains_key("resources") {
        problems.push(Problem::new(spec_path.field("resources"), WHY));
    }
    let mut pipeline = |ps: &mut Map<String, Value>, p: &FieldPath| {
        if ps.contains_key("resources") {
            problems.push(Problem::new(p.field("resources"), WHY));
        }
        for list in ["tasks", "finally"] {
            each_object(ps, list, p, |task, tp| {
                if task.contains_key("resources") {
                    problems.push(Problem::new(tp.field("resources"), WHY));
                }
                if let Some(ts) = object_mut(task, "taskSpec")
                    && ts.contains_key("resources")
                {
                    problems.push(Problem::new(tp.field("taskSpec").field("resources"), WHY));
                }
            });
        }
    };
    match kind {
        Kind::Pipeline => pipeline(spec, &spec_path),
        Kind::PipelineRun => {
            if let Some(ps) = object_mut(spec, "pipelineSpec") {
                pipeline(ps, &spec_path.field("pipelineSpec"));
            }
        }
        Kind::TaskRun => {
            if let Some(ts) = object_mut(spec, "taskSpec")
                && ts.contains_key("resources")
            {
                problems.push(Problem::new(
                    spec_path.field("taskSpec").field("resources"),
                    WHY,
                ));
            }
        }
        Kind::Task => {}
    }
}

/// tekton.dev/v1beta1 → v1, in place.
fn up(obj: &mut Map<String, Value>, kind: Kind) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    refuse_resources(obj, kind, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut kept = Map::new();
    task_specs(obj, kind, &mut |spec, key, _| {
        keep_deprecated(spec, key, &mut kept)
    });
    if !kept.is_empty() {
        put_annotation(obj, TASK_DEPRECATIONS, &Value::Object(kept));
    }
    if kind == Kind::TaskRun
        && let Some(status) = object_mut(obj, "status")
    {
        let events = status.remove("cloudEvents");
        let results = status.remove("resourcesResult");
        for (key, value) in [(CLOUD_EVENTS, events), (RESOURCES_RESULT, results)] {
            if let Some(v) = value {
                put_annotation(obj, key, &v);
            }
        }
    }
    let mut f = Findings::default();
    let spec_path = FieldPath::root().field("spec");
    if let Some(spec) = object_mut(obj, "spec") {
        match kind {
            Kind::Task => v1beta1::task_spec(spec, &spec_path, &mut f),
            Kind::TaskRun => v1beta1::taskrun_spec(spec, &spec_path, &mut f),
            Kind::Pipeline => v1beta1::pipeline_spec(spec, &spec_path, &mut f),
            Kind::PipelineRun => v1beta1::pipelinerun_spec(spec, &spec_path, &mut f),
        }
    }
    if let Some(status) = object_mut(obj, "status") {
        let p = FieldPath::root().field("status");
        match kind {
            Kind::TaskRun => taskrun_status_up(status, &p, &mut f),
            Kind::PipelineRun => {
                v1beta1::pipelinerun_status(status, &p, &mut f);
                if let Some(ps) = object_mut(status, "pipelineSpec") {
                    v1beta1::pipeline_spec(ps, &p.field("pipelineSpec"), &mut f);
                }
            }
            Kind::Task | Kind::Pipeline => {}
        }
    }
    obj.insert("apiVersion".into(), Value::String(V1.into()));
    if f.problems.is_empty() {
        Ok(())
    } else {
        Err(f.problems)
    }
}

fn taskrun_status_up(status: &mut Map<String, Value>, p: &FieldPath, f: &mut Findings) {
    v1beta1::taskrun_status(status, p, f);
    if let Some(ts) = object_mut(status, "taskSpec") {
        v1beta1::task_spec(ts, &p.field("taskSpec"), f);
    }
    each_object(status, "retriesStatus", p, |retry, rp| {
        taskrun_status_up(retry, rp, f)
    });
}

/// What the v1 types do not know, with its path: the v1beta1 schema is open. Only what a
/// user writes is checked: a status is its controller's (another controller's may say
/// more than tektite's types know, and the v1 schema prunes it).
fn check(object: &Value) -> Result<(), Vec<Problem>> {
    let mut written = object.clone();
    if let Some(o) = written.as_object_mut() {
        o.remove("status");
    }
    let text = written.to_string();
    let docs = load(&[Source {
        name: "the object",
        text: &text,
    }]);
    let problems: Vec<Problem> = docs.into_iter().flat_map(|d| d.problems).collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// tekton.dev/v1 → v1beta1, in place.
fn down(obj: &mut Map<String, Value>, kind: Kind) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    let kept = take_annotation(obj, TASK_DEPRECATIONS).map_err(|p| vec![p])?;
    if kind == Kind::TaskRun {
        for key in [CLOUD_EVENTS, RESOURCES_RESULT] {
            let value = take_annotation(obj, key).map_err(|p| vec![p])?;
            if let Some(v) = value {
                let field = if key == CLOUD_EVENTS {
                    "cloudEvents"
                } else {
                    "resourcesResult"
                };
                super::ensure_object(obj, "status").insert(field.into(), v);
            }
        }
    }
    let single = matches!(kind, Kind::Task | Kind::TaskRun);
    task_specs(obj, kind, &mut |spec, key, path| {
        task_spec_down(spec);
        let Some(Value::Object(kept)) = &kept else {
            return;
        };
        // A Task's or TaskRun's spec is kept under the object's name; a name the object
        // did not have yet when it was converted (generateName) is read as its own.
        let entry = kept.get(key).or_else(|| {
            (single && !path.as_str().starts_with("status"))
                .then(|| kept.iter().find(|(k, _)| !k.starts_with("status")))
                .flatten()
                .map(|(_, v)| v)
        });
        if let Some(entry) = entry
            && let Err(p) = restore_deprecated(spec, entry, path)
        {
            problems.push(p);
        }
    });
    if let Some(spec) = object_mut(obj, "spec") {
        match kind {
            Kind::TaskRun => overrides_down(spec),
            Kind::PipelineRun => pipelinerun_spec_down(spec),
            Kind::Task | Kind::Pipeline => {}
        }
    }
    if let Some(status) = object_mut(obj, "status") {
        match kind {
            Kind::TaskRun => taskrun_status_down(status),
            Kind::PipelineRun => rename_back(status, "results", "pipelineResults"),
            Kind::Task | Kind::Pipeline => {}
        }
    }
    obj.insert("apiVersion".into(), Value::String(V1BETA1.into()));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `obj[from]` to `obj[to]` (v1 fields are never set in both forms).
fn rename_back(obj: &mut Map<String, Value>, from: &str, to: &str) {
    let mut f = Findings::default();
    rename(obj, from, to, &FieldPath::root(), &mut f);
}

fn container_down(c: &mut Map<String, Value>) {
    rename_back(c, "computeResources", "resources");
}

fn task_spec_down(spec: &mut Map<String, Value>) {
    for list in ["steps", "sidecars"] {
        each_object(spec, list, &FieldPath::root(), |c, _| container_down(c));
    }
    if let Some(t) = object_mut(spec, "stepTemplate") {
        container_down(t);
    }
}

fn overrides_down(spec: &mut Map<String, Value>) {
    for (new, old) in [
        ("stepSpecs", "stepOverrides"),
        ("sidecarSpecs", "sidecarOverrides"),
    ] {
        each_object(spec, new, &FieldPath::root(), |o, _| container_down(o));
        rename_back(spec, new, old);
    }
}

fn pipelinerun_spec_down(spec: &mut Map<String, Value>) {
    if let Some(Value::Object(mut template)) = spec.remove("taskRunTemplate") {
        for field in ["serviceAccountName", "podTemplate"] {
            if let Some(v) = template.remove(field) {
                spec.insert(field.into(), v);
            }
        }
    }
    each_object(spec, "taskRunSpecs", &FieldPath::root(), |s, _| {
        rename_back(s, "serviceAccountName", "taskServiceAccountName");
        rename_back(s, "podTemplate", "taskPodTemplate");
        overrides_down(s);
    });
}

fn taskrun_status_down(status: &mut Map<String, Value>) {
    rename_back(status, "results", "taskResults");
    each_object(status, "retriesStatus", &FieldPath::root(), |retry, _| {
        taskrun_status_down(retry)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(beta: Value) -> Value {
        let v1 = to_version(beta.clone(), V1).expect("to v1");
        assert_eq!(v1["apiVersion"], V1);
        let back = to_version(v1, V1BETA1).expect("back to v1beta1");
        assert_eq!(back, beta, "v1beta1 → v1 → v1beta1 changed the object");
        to_version(beta, V1).unwrap()
    }

    #[test]
    fn deprecated_step_fields_are_kept_in_tektons_annotation_and_put_back() {
        let v1 = round_trip(json!({
            "apiVersion": V1BETA1, "kind": "Task", "metadata": {"name": "t"},
            "spec": {"stepTemplate": {"name": "tpl", "image": "alpine"},
                     "steps": [{"name": "a", "image": "alpine", "script": "true"},
                               {"name": "b", "image": "alpine", "script": "true", "tty": true,
                                "resources": {"limits": {"cpu": "1"}},
                                "ports": [{"containerPort": 8080}]}]}
        }));
        assert_eq!(
            v1["spec"]["steps"][1]["computeResources"]["limits"]["cpu"],
            "1"
        );
        assert!(v1["spec"]["steps"][1].get("tty").is_none());
        assert!(v1["spec"]["stepTemplate"].get("name").is_none());
        let kept: Value = serde_json::from_str(
            v1["metadata"]["annotations"][TASK_DEPRECATIONS]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            kept,
            json!({"t": {"deprecatedSteps": [{}, {"tty": true, "ports": [{"containerPort": 8080}]}],
                         "deprecatedStepTemplate": {"name": "tpl"}}})
        );
    }

    #[test]
    fn a_pipeline_keeps_each_embedded_tasks_fields_under_its_name() {
        let v1 = round_trip(json!({
            "apiVersion": V1BETA1, "kind": "PipelineRun", "metadata": {"name": "pr", "annotations": {"a": "b"}},
            "spec": {"serviceAccountName": "sa", "pipelineSpec": {"tasks": [
                {"name": "one", "taskSpec": {"steps": [{"image": "alpine", "script": "true", "stdin": true}]}},
            ]}, "taskRunSpecs": [{"pipelineTaskName": "one", "taskServiceAccountName": "x"}]},
            "status": {"pipelineResults": [{"name": "r", "value": "v"}]}
        }));
        assert_eq!(v1["spec"]["taskRunTemplate"]["serviceAccountName"], "sa");
        assert_eq!(v1["spec"]["taskRunSpecs"][0]["serviceAccountName"], "x");
        assert_eq!(v1["status"]["results"][0]["name"], "r");
        assert!(
            v1["metadata"]["annotations"][TASK_DEPRECATIONS]
                .as_str()
                .unwrap()
                .contains("\"one\"")
        );
    }

    #[test]
    fn a_taskrun_status_keeps_cloud_events_and_resources_results() {
        let v1 = round_trip(json!({
            "apiVersion": V1BETA1, "kind": "TaskRun", "metadata": {"name": "tr"},
            "spec": {"taskRef": {"name": "t"}, "stepOverrides": [{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}]},
            "status": {"taskResults": [{"name": "r", "value": "v"}],
                       "cloudEvents": [{"target": "http://sink"}],
                       "resourcesResult": [{"key": "digest", "value": "sha256:1"}],
                       "retriesStatus": [{"taskResults": [{"name": "r", "value": "w"}]}]}
        }));
        assert_eq!(
            v1["spec"]["stepSpecs"][0]["computeResources"]["requests"]["memory"],
            "1Gi"
        );
        assert_eq!(v1["status"]["retriesStatus"][0]["results"][0]["value"], "w");
        assert!(v1["status"].get("cloudEvents").is_none());
        assert!(v1["metadata"]["annotations"][CLOUD_EVENTS].is_string());
    }

    #[test]
    fn what_v1beta1_says_in_an_older_form_is_served_in_its_v1_form() {
        let beta = json!({"apiVersion": V1BETA1, "kind": "PipelineRun", "metadata": {"name": "p"},
            "spec": {"timeout": "1h", "pipelineRef": {"name": "p", "bundle": "reg/p:1"}}});
        let v1 = to_version(beta, V1).unwrap();
        assert_eq!(v1["spec"]["timeouts"]["pipeline"], "1h");
        assert_eq!(v1["spec"]["pipelineRef"]["resolver"], "bundles");
        let back = to_version(v1, V1BETA1).unwrap();
        assert_eq!(back["spec"]["timeouts"]["pipeline"], "1h");
        assert_eq!(back["spec"]["pipelineRef"]["resolver"], "bundles");
    }

    #[test]
    fn pipeline_resources_unknown_fields_and_both_forms_are_refused_with_their_paths() {
        let refused = |object: Value| match to_version(object, V1) {
            Err(Error::Invalid(p)) => p.iter().map(|p| p.path.to_string()).collect::<Vec<_>>(),
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            refused(
                json!({"apiVersion": V1BETA1, "kind": "Task", "metadata": {"name": "t"},
                "spec": {"resources": {"inputs": [{"name": "src", "type": "git"}]}, "steps": []}})
            ),
            ["spec.resources"]
        );
        assert_eq!(
            refused(
                json!({"apiVersion": V1BETA1, "kind": "Pipeline", "metadata": {"name": "p"},
                "spec": {"tasks": [{"name": "a", "taskRef": {"name": "t"}, "resources": {}}]}})
            ),
            ["spec.tasks[0].resources"]
        );
        assert_eq!(
            refused(
                json!({"apiVersion": V1BETA1, "kind": "PipelineRun", "metadata": {"name": "p"},
                "spec": {"timeout": "1h", "timeouts": {"pipeline": "2h"}, "pipelineRef": {"name": "p"}}})
            ),
            ["spec.timeout"]
        );
        let unknown = refused(
            json!({"apiVersion": V1BETA1, "kind": "Task", "metadata": {"name": "t"},
            "spec": {"steps": [{"name": "a", "image": "alpine", "scrpt": "true"}]}}),
        );
        assert!(unknown.iter().any(|p| p.contains("scrpt")), "{unknown:?}");
    }

    #[test]
    fn a_status_field_tektites_types_do_not_know_is_not_refused() {
        let beta = json!({"apiVersion": V1BETA1, "kind": "TaskRun", "metadata": {"name": "tr"},
            "spec": {"taskRef": {"name": "t"}},
            "status": {"podName": "p", "spanContext": {"traceparent": "00-1"}}});
        let v1 = to_version(beta, V1).unwrap();
        assert_eq!(v1["status"]["spanContext"]["traceparent"], "00-1");
    }

    #[test]
    fn other_kinds_and_versions_are_refused_and_the_same_version_is_left_alone() {
        let task = json!({"apiVersion": V1, "kind": "Task", "metadata": {"name": "t"}, "spec": {}});
        assert_eq!(to_version(task.clone(), V1).unwrap(), task);
        assert!(matches!(
            to_version(task.clone(), "tekton.dev/v1alpha1"),
            Err(Error::Version { .. })
        ));
        assert!(matches!(
            to_version(json!({"apiVersion": V1BETA1, "kind": "CustomRun"}), V1),
            Err(Error::Kind(_))
        ));
    }

    #[test]
    fn an_annotation_that_no_longer_fits_is_an_error_not_a_guess() {
        let v1 = json!({"apiVersion": V1, "kind": "Task",
            "metadata": {"name": "t", "annotations": {TASK_DEPRECATIONS: "{\"t\":{\"deprecatedSteps\":[{},{\"tty\":true}]}}"}},
            "spec": {"steps": [{"name": "a", "image": "alpine", "script": "true"}]}});
        let Err(Error::Invalid(p)) = to_version(v1, V1BETA1) else {
            panic!("expected an error")
        };
        assert_eq!(p[0].path.as_str(), "spec.steps");
    }
}
