//! What may change when a run is updated, as Tekton's webhook allows it: `spec.managedBy`
//! never; once the run has started, only `spec.status` (and a TaskRun's
//! `spec.statusMessage`); once it is done, nothing in its spec.

use crate::document::Object;
use crate::problem::{FieldPath, Problem};
use crate::v1::Condition;

fn done(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Succeeded" && c.status != "Unknown")
}

/// The problems with updating `old` to `new` (both decoded, the same kind); none for
/// kinds that are not runs.
pub fn update(old: &Object, new: &Object) -> Vec<Problem> {
    let spec = FieldPath::root().field("spec");
    let mut out = Vec::new();
    let (managed_by, started, finished, same_but_status) = match (old, new) {
        (Object::TaskRun(o), Object::TaskRun(n)) => {
            let status = o.status.clone().unwrap_or_default();
            let mut old_spec = o.spec.clone();
            old_spec.status = n.spec.status;
            old_spec.status_message = n.spec.status_message.clone();
            old_spec.managed_by = n.spec.managed_by.clone();
            (
                o.spec.managed_by != n.spec.managed_by,
                status.start_time.is_some(),
                done(&status.conditions).then(|| o.spec == n.spec),
                old_spec == n.spec,
            )
        }
        (Object::PipelineRun(o), Object::PipelineRun(n)) => {
            let status = o.status.clone().unwrap_or_default();
            let mut old_spec = o.spec.clone();
            old_spec.status = n.spec.status;
            old_spec.managed_by = n.spec.managed_by.clone();
            (
                o.spec.managed_by != n.spec.managed_by,
                status.start_time.is_some(),
                done(&status.conditions).then(|| o.spec == n.spec),
                old_spec == n.spec,
            )
        }
        _ => return out,
    };
    let kind = match new {
        Object::TaskRun(_) => "TaskRun",
        _ => "PipelineRun",
    };
    if managed_by {
        out.push(Problem::new(
            spec.field("managedBy"),
            "managedBy cannot change: the controller it names owns the run",
        ));
    }
    match finished {
        Some(false) => out.push(Problem::new(
            spec.clone(),
            format!("the {kind} is done: its spec can no longer change"),
        )),
        Some(true) => {}
        None if started && !same_but_status => out.push(Problem::new(
            spec.clone(),
            format!(
                "the {kind} has started: only spec.status{} may change (to cancel it)",
                if kind == "TaskRun" {
                    " and spec.statusMessage"
                } else {
                    ""
                }
            ),
        )),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{PipelineRun, TaskRun};

    fn task_run(extra: serde_json::Value) -> Object {
        let mut tr = serde_json::json!({
            "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "t"},
            "spec": {"taskRef": {"name": "build"}, "params": [{"name": "a", "value": "1"}]},
        });
        json_patch(&mut tr, extra);
        Object::TaskRun(Box::new(serde_json::from_value::<TaskRun>(tr).unwrap()))
    }

    fn pipeline_run(extra: serde_json::Value) -> Object {
        let mut pr = serde_json::json!({
            "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"name": "p"},
            "spec": {"pipelineRef": {"name": "ship"}},
        });
        json_patch(&mut pr, extra);
        Object::PipelineRun(Box::new(serde_json::from_value::<PipelineRun>(pr).unwrap()))
    }

    fn json_patch(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    json_patch(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    fn messages(p: Vec<Problem>) -> Vec<String> {
        p.into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    const STARTED: &str = "2026-11-22T10:00:00Z";

    #[test]
    fn a_run_not_started_may_change_and_managed_by_never() {
        let old = task_run(serde_json::json!({}));
        let new = task_run(serde_json::json!({"spec": {"params": [{"name": "a", "value": "2"}]}}));
        assert!(update(&old, &new).is_empty());
        let moved = task_run(serde_json::json!({"spec": {"managedBy": "tekton.dev/pipeline"}}));
        assert_eq!(
            messages(update(&old, &moved)),
            ["spec.managedBy: managedBy cannot change: the controller it names owns the run"]
        );
    }

    #[test]
    fn a_started_run_takes_only_a_cancel() {
        let started = serde_json::json!({"status": {"startTime": STARTED}});
        let old = task_run(started.clone());
        let cancel = task_run(serde_json::json!({
            "spec": {"status": "TaskRunCancelled", "statusMessage": "by hand"},
        }));
        assert!(update(&old, &cancel).is_empty());
        let changed =
            task_run(serde_json::json!({"spec": {"params": [{"name": "a", "value": "2"}]}}));
        assert_eq!(
            messages(update(&old, &changed)),
            [
                "spec: the TaskRun has started: only spec.status and spec.statusMessage may change (to cancel it)"
            ]
        );
        let old = pipeline_run(started);
        let cancel = pipeline_run(serde_json::json!({"spec": {"status": "Cancelled"}}));
        assert!(update(&old, &cancel).is_empty());
        let changed =
            pipeline_run(serde_json::json!({"spec": {"params": [{"name": "x", "value": "y"}]}}));
        assert_eq!(
            messages(update(&old, &changed)),
            ["spec: the PipelineRun has started: only spec.status may change (to cancel it)"]
        );
    }

    #[test]
    fn a_done_run_keeps_its_spec_but_its_metadata_may_change() {
        let done = serde_json::json!({"status": {"startTime": STARTED,
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}});
        let old = pipeline_run(done.clone());
        let relabelled = pipeline_run(serde_json::json!({"metadata": {"labels": {"keep": "yes"}}}));
        assert!(update(&old, &relabelled).is_empty());
        let cancel = pipeline_run(serde_json::json!({"spec": {"status": "Cancelled"}}));
        assert_eq!(
            messages(update(&old, &cancel)),
            ["spec: the PipelineRun is done: its spec can no longer change"]
        );
    }
}
