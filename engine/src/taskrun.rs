//! TaskRun decisions: from what each step left (its state record) and `now`, the
//! TaskRun's status in Tekton's shape (condition, steps, results) and what to do next:
//! wait, stop the steps (timeout, cancel), retry, or nothing more.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tektite_api::labels::step_container;
use tektite_api::step::{self as contract, ResultKind, StepReason};
use tektite_api::v1::{
    self, Condition, ParamType, ParamValue, TaskRunResult, TaskSpec, taskrun_reason,
};

use crate::pipeline::Stop;

/// Everything a TaskRun decision depends on.
#[derive(Clone, Debug)]
pub struct TaskRunFacts<'a> {
    pub name: &'a str,
    /// The resolved Task (see [`crate::task::resolve`]).
    pub spec: &'a TaskSpec,
    /// Each step's state record, by step index; `None` until the step starts.
    pub steps: &'a [Option<contract::StepState>],
    pub started_at: Timestamp,
    pub timeout: Option<SignedDuration>,
    pub cancelled: bool,
    /// `retries` allowed, and how many were used before this attempt.
    pub retries: u32,
    pub retries_used: u32,
    pub now: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TaskRunDecision {
    pub condition: Condition,
    pub steps: Vec<v1::StepState>,
    pub results: Vec<TaskRunResult>,
    /// What the steps reported of the alpha artifacts, merged (`status.artifacts`).
    pub artifacts: Option<v1::Artifacts>,
    /// Stop the steps still running or waiting.
    pub stop: Option<Stop>,
    /// This attempt has ended.
    pub done: bool,
    /// It failed and a retry remains: keep this status in `retriesStatus`, run again.
    pub retry: bool,
}

const REASON_RESULTS_TOO_LARGE: &str = "TaskRunResultLargerThanAllowedLimit";

/// The condition of TaskRun `name` stopped for `why` (with its `timeout`).
/// A TaskRun's `spec.timeout`, Tekton's default (an hour) when not given; zero is none.
pub fn timeout_of(spec: &v1::TaskRunSpec) -> SignedDuration {
    spec.timeout
        .as_ref()
        .and_then(v1::Duration::signed)
        .unwrap_or(crate::names::DEFAULT_TIMEOUT)
}

/// The status a TaskRun goes on with when attempt `ended` failed and is retried: the
/// attempt (without the history it carries) appended to that history in
/// `retriesStatus`, the condition `Unknown`/`ToBeRetried` with the attempt's message, and
/// of the rest only the start time; the next attempt gets a new Pod.
pub fn rollover(ended: &v1::TaskRunStatus) -> v1::TaskRunStatus {
    let mut history = ended.retries_status.clone();
    history.push(v1::TaskRunStatus {
        retries_status: Vec::new(),
        ..ended.clone()
    });
    let message = ended
        .conditions
        .first()
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    v1::TaskRunStatus {
        conditions: vec![Condition::succeeded(
            "Unknown",
            taskrun_reason::TO_BE_RETRIED,
            message,
        )],
        start_time: ended.start_time.clone(),
        retries_status: history,
        ..v1::TaskRunStatus::default()
    }
}

/// Whether a TaskRun's `spec.status` cancels it.
pub fn cancelled(spec: &v1::TaskRunSpec) -> bool {
    spec.status == Some(v1::TaskRunSpecStatus::TaskRunCancelled)
}

pub fn stopped(name: &str, why: Stop, timeout: Option<SignedDuration>) -> Condition {
    let (reason, message) = match why {
        Stop::Cancelled => (
            taskrun_reason::CANCELLED,
            format!("TaskRun {name:?} was cancelled"),
        ),
        Stop::TimedOut => (
            taskrun_reason::TIMED_OUT,
            format!(
                "TaskRun {name:?} failed to finish within {:?}",
                v1::Duration::from(timeout.unwrap_or_default().unsigned_abs()).0
            ),
        ),
    };
    Condition::succeeded("False", reason, message)
}

/// Ends every step not finished at `now` for `reason`: what a stopped TaskRun's steps
/// come to when no entrypoint could record it.
pub fn close_unfinished(
    steps: &mut [Option<contract::StepState>],
    now: Timestamp,
    reason: StepReason,
    message: &str,
) {
    for s in steps.iter_mut() {
        if !s.as_ref().is_some_and(contract::StepState::is_finished) {
            let started = s.as_ref().map(|s| s.started_at).unwrap_or(now);
            *s = Some(contract::StepState::ended(
                started,
                now,
                reason,
                message.to_owned(),
            ));
        }
    }
}

pub fn decide(f: &TaskRunFacts<'_>) -> TaskRunDecision {
    let finished = |i: usize| {
        f.steps
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|s| s.is_finished())
    };
    let all_finished = (0..f.spec.steps.len()).all(finished);
    let timed_out = f
        .timeout
        .is_some_and(|t| !t.is_zero() && f.now.duration_since(f.started_at) > t);
    let stop = if all_finished {
        None
    } else if f.cancelled {
        Some(Stop::Cancelled)
    } else if timed_out {
        Some(Stop::TimedOut)
    } else {
        None
    };
    let failure = f.spec.steps.iter().zip(f.steps).find_map(|(step, state)| {
        let state = state.as_ref()?;
        let reason = state.reason?;
        (!reason.is_success() && reason != StepReason::Skipped).then_some((step, state, reason))
    });
    // A step is skipped only because one before it failed; a skipped step with no failed
    // one means an end went unrecorded (an entrypoint that failed after its command), and
    // that is no success.
    let unexplained_skip = f
        .spec
        .steps
        .iter()
        .zip(f.steps)
        .find(|(_, state)| {
            state
                .as_ref()
                .is_some_and(|s| s.reason == Some(StepReason::Skipped))
        })
        .map(|(step, _)| step);
    let (status, reason, message) = if !all_finished {
        (
            "Unknown",
            taskrun_reason::RUNNING.to_owned(),
            "Not all Steps in the Task have finished executing".to_owned(),
        )
    } else if f.cancelled || timed_out {
        let why = if f.cancelled {
            Stop::Cancelled
        } else {
            Stop::TimedOut
        };
        let c = stopped(f.name, why, f.timeout);
        (
            "False",
            c.reason.unwrap_or_default(),
            c.message.unwrap_or_default(),
        )
    } else if let Some((step, state, why)) = failure {
        let container = step_container(&step.name);
        let message = match (why, state.exit_code) {
            (StepReason::Error, Some(code)) => format!("{container:?} exited with code {code}"),
            _ => format!(
                "{container:?} {}: {}",
                why.as_str(),
                state.message.as_deref().unwrap_or("no message")
            ),
        };
        let reason = match why {
            StepReason::ResultLargerThanAllowedLimit => REASON_RESULTS_TOO_LARGE,
            _ => taskrun_reason::FAILED,
        };
        ("False", reason.to_owned(), message)
    } else if let Some(step) = unexplained_skip {
        (
            "False",
            taskrun_reason::FAILED.to_owned(),
            format!(
                "{:?} was skipped although no step before it failed: a step's end was not recorded",
                step_container(&step.name)
            ),
        )
    } else {
        (
            "True",
            taskrun_reason::SUCCEEDED.to_owned(),
            "All Steps have completed executing".to_owned(),
        )
    };
    let done = all_finished;
    let retry = done && status == "False" && !f.cancelled && f.retries_used < f.retries;
    TaskRunDecision {
        condition: Condition::succeeded(status, &reason, message),
        steps: f
            .spec
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| step_state(&step.name, f.steps.get(i).and_then(Option::as_ref)))
            .collect(),
        results: task_results(f),
        artifacts: artifacts(f),
        stop,
        done,
        retry,
    }
}

fn step_state(name: &str, state: Option<&contract::StepState>) -> v1::StepState {
    let mut out = v1::StepState {
        name: name.to_owned(),
        container: Some(step_container(name)),
        ..v1::StepState::default()
    };
    match state {
        None => {
            out.waiting = Some(k8s::ContainerStateWaiting {
                reason: Some("PodInitializing".into()),
                message: None,
            })
        }
        Some(s) if !s.is_finished() => {
            out.running = Some(k8s::ContainerStateRunning {
                started_at: Some(Time(s.started_at)),
            })
        }
        Some(s) => {
            let reason = s.reason.unwrap_or(StepReason::Error);
            let exit_code = s
                .exit_code
                .unwrap_or(if reason.is_success() { 0 } else { 1 });
            out.terminated = Some(k8s::ContainerStateTerminated {
                exit_code,
                reason: Some(
                    if matches!(reason, StepReason::Completed | StepReason::WhenSkipped) {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .into(),
                ),
                message: s.message.clone(),
                started_at: Some(Time(s.started_at)),
                finished_at: s.finished_at.map(Time),
                ..k8s::ContainerStateTerminated::default()
            });
            out.termination_reason = Some(reason.as_str().to_owned());
            out.results = s
                .results
                .iter()
                .filter(|r| r.kind == ResultKind::Step)
                .map(|r| TaskRunResult {
                    name: r.name.clone(),
                    type_: Some(ParamType::String),
                    value: ParamValue::String(r.value.clone()),
                })
                .collect();
            if let Some(a) = recorded_artifacts(s, ResultKind::StepArtifacts) {
                out.inputs = a.inputs;
                out.outputs = a.outputs;
            }
        }
    }
    out
}

/// The artifacts of `kind` a step reported (the entrypoint checked the document).
fn recorded_artifacts(s: &tektite_api::step::StepState, kind: ResultKind) -> Option<v1::Artifacts> {
    let r = s.results.iter().find(|r| r.kind == kind)?;
    serde_json::from_str(&r.value).ok()
}

/// The TaskRun's artifacts: each step's view of the Task's artifacts file, then its own,
/// merged as Tekton merges them; none when no step reported any.
fn artifacts(f: &TaskRunFacts<'_>) -> Option<v1::Artifacts> {
    let mut out: Option<v1::Artifacts> = None;
    for s in f.steps.iter().flatten() {
        for kind in [ResultKind::TaskArtifacts, ResultKind::StepArtifacts] {
            if let Some(a) = recorded_artifacts(s, kind) {
                out.get_or_insert_with(Default::default).merge(&a);
            }
        }
    }
    out
}

/// The task results the steps wrote (a later step's value wins), then those a declared
/// result takes from a step result (`value: $(steps.<s>.results.<r>)`), typed as
/// declared: array and object results are JSON in their files.
fn task_results(f: &TaskRunFacts<'_>) -> Vec<TaskRunResult> {
    let mut out: Vec<TaskRunResult> = Vec::new();
    let mut put = |name: &str, raw: &str| {
        let declared = f
            .spec
            .results
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.type_)
            .unwrap_or_default();
        let value = match declared {
            ParamType::Array => serde_json::from_str::<Vec<String>>(raw.trim())
                .map(ParamValue::Array)
                .unwrap_or_else(|_| ParamValue::String(raw.to_owned())),
            ParamType::Object => serde_json::from_str(raw.trim())
                .map(ParamValue::Object)
                .unwrap_or_else(|_| ParamValue::String(raw.to_owned())),
            ParamType::String => ParamValue::String(raw.to_owned()),
        };
        let result = TaskRunResult {
            name: name.to_owned(),
            type_: Some(value.param_type()),
            value,
        };
        match out.iter_mut().find(|o| o.name == name) {
            Some(existing) => *existing = result,
            None => out.push(result),
        }
    };
    for r in f
        .steps
        .iter()
        .flatten()
        .flat_map(|s| &s.results)
        .filter(|r| r.kind == ResultKind::Task)
    {
        put(&r.name, &r.value);
    }
    for d in &f.spec.results {
        let Some((step, result)) = d.value.as_ref().and_then(step_result_reference) else {
            continue;
        };
        let written = f
            .spec
            .steps
            .iter()
            .position(|s| s.name == step)
            .and_then(|i| f.steps.get(i)?.as_ref())
            .and_then(|s| {
                s.results
                    .iter()
                    .find(|r| r.kind == ResultKind::Step && r.name == result)
            });
        if let Some(r) = written {
            put(&d.name, &r.value);
        }
    }
    out
}

/// `(step, result)` of a task result's `value` that is one step result, whole.
fn step_result_reference(value: &ParamValue) -> Option<(String, String)> {
    use tektite_api::vars::{self, Reference, Selector};
    let ParamValue::String(text) = value else {
        return None;
    };
    match vars::alone(text)? {
        Reference::StepResult {
            step,
            result,
            selector: Selector::Whole | Selector::Star,
        } => Some((step, result)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_attempt_goes_to_the_history_and_the_run_waits_for_the_next() {
        let failed = |n: &str| v1::TaskRunStatus {
            conditions: vec![Condition::succeeded(
                "False",
                "Failed",
                format!("attempt {n}"),
            )],
            pod_name: format!("pod-{n}"),
            start_time: Some(Time(Timestamp::UNIX_EPOCH)),
            results: vec![TaskRunResult {
                name: "r".into(),
                type_: Some(ParamType::String),
                value: ParamValue::String(n.into()),
            }],
            ..v1::TaskRunStatus::default()
        };
        let first = rollover(&failed("1"));
        assert_eq!(first.retries_status, vec![failed("1")]);
        let c = &first.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
            ("Unknown", Some("ToBeRetried"), Some("attempt 1"))
        );
        assert!(first.pod_name.is_empty() && first.results.is_empty());
        assert_eq!(first.start_time, Some(Time(Timestamp::UNIX_EPOCH)));
        // The second attempt's status carries the first in its history; the history
        // holds each attempt once, without its own history.
        let second = rollover(&v1::TaskRunStatus {
            retries_status: first.retries_status.clone(),
            ..failed("2")
        });
        assert_eq!(second.retries_status, vec![failed("1"), failed("2")]);
    }
    use serde_json::json;
    use tektite_api::step::RecordedResult;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec() -> TaskSpec {
        serde_json::from_value(json!({
            "results": [{"name": "digest"}, {"name": "tags", "type": "array"}],
            "steps": [{"name": "build", "script": "x"}, {"name": "push", "script": "y"}]
        }))
        .unwrap()
    }

    fn ended(
        reason: StepReason,
        code: Option<i32>,
        results: &[(&str, ResultKind, &str)],
    ) -> Option<contract::StepState> {
        let mut s = contract::StepState::started(t("2026-11-22T10:00:00Z"));
        s.finished_at = Some(t("2026-11-22T10:00:02Z"));
        s.exit_code = code;
        s.reason = Some(reason);
        s.results = results
            .iter()
            .map(|(n, k, v)| RecordedResult {
                name: n.to_string(),
                kind: *k,
                value: v.to_string(),
            })
            .collect();
        Some(s)
    }

    fn facts<'a>(spec: &'a TaskSpec, steps: &'a [Option<contract::StepState>]) -> TaskRunFacts<'a> {
        TaskRunFacts {
            name: "build-run",
            spec,
            steps,
            started_at: t("2026-11-22T10:00:00Z"),
            timeout: Some(SignedDuration::from_mins(1)),
            cancelled: false,
            retries: 0,
            retries_used: 0,
            now: t("2026-11-22T10:00:05Z"),
        }
    }

    #[test]
    fn a_task_runs_timeout_defaults_to_an_hour_and_its_status_cancels() {
        let spec = |v: serde_json::Value| -> v1::TaskRunSpec { serde_json::from_value(v).unwrap() };
        assert_eq!(
            timeout_of(&spec(serde_json::json!({}))),
            crate::names::DEFAULT_TIMEOUT
        );
        assert_eq!(
            timeout_of(&spec(serde_json::json!({"timeout": "90s"}))),
            SignedDuration::from_secs(90)
        );
        assert!(timeout_of(&spec(serde_json::json!({"timeout": "0s"}))).is_zero());
        assert!(!cancelled(&spec(serde_json::json!({}))));
        assert!(cancelled(&spec(
            serde_json::json!({"status": "TaskRunCancelled"})
        )));
    }

    #[test]
    fn steps_artifacts_become_their_inputs_and_outputs_and_merge_into_the_runs() {
        let spec = spec();
        let task_file = r#"{"outputs":[{"name":"log","values":[{"uri":"file:///log"}]}]}"#;
        let steps = [
            ended(
                StepReason::Completed,
                Some(0),
                &[
                    (
                        "provenance.json",
                        ResultKind::StepArtifacts,
                        r#"{"inputs":[{"name":"src","values":[{"uri":"git"}]}],"outputs":[{"name":"image","values":[{"uri":"a"}]}]}"#,
                    ),
                    ("provenance.json", ResultKind::TaskArtifacts, task_file),
                ],
            ),
            ended(
                StepReason::Completed,
                Some(0),
                &[("provenance.json", ResultKind::TaskArtifacts, task_file)],
            ),
        ];
        let d = decide(&facts(&spec, &steps));
        assert_eq!(d.steps[0].inputs[0].name.as_deref(), Some("src"));
        assert_eq!(d.steps[0].outputs[0].values[0].uri.as_deref(), Some("a"));
        assert!(d.steps[1].inputs.is_empty() && d.steps[1].outputs.is_empty());
        assert_eq!(
            serde_json::to_value(d.artifacts).unwrap(),
            json!({
                "inputs": [{"name": "src", "values": [{"uri": "git"}]}],
                "outputs": [
                    {"name": "log", "values": [{"uri": "file:///log"}]},
                    {"name": "image", "values": [{"uri": "a"}]}
                ]
            })
        );
        // No step reported any: none.
        let steps = [
            ended(StepReason::Completed, Some(0), &[]),
            ended(StepReason::Completed, Some(0), &[]),
        ];
        assert_eq!(decide(&facts(&spec, &steps)).artifacts, None);
    }

    #[test]
    fn a_run_whose_steps_all_completed_succeeded_with_typed_results() {
        let spec = spec();
        let steps = [
            ended(
                StepReason::Completed,
                Some(0),
                &[
                    ("digest", ResultKind::Task, "sha256:1"),
                    ("log", ResultKind::Step, "l"),
                ],
            ),
            ended(
                StepReason::Completed,
                Some(0),
                &[
                    ("tags", ResultKind::Task, "[\"a\",\"b\"]\n"),
                    ("digest", ResultKind::Task, "sha256:2"),
                ],
            ),
        ];
        let d = decide(&facts(&spec, &steps));
        assert!(d.done && !d.retry && d.stop.is_none());
        assert_eq!(d.condition.status, "True");
        assert_eq!(d.condition.reason.as_deref(), Some("Succeeded"));
        assert_eq!(
            d.condition.message.as_deref(),
            Some("All Steps have completed executing")
        );
        assert_eq!(
            d.results,
            [
                TaskRunResult {
                    name: "digest".into(),
                    type_: Some(ParamType::String),
                    value: ParamValue::String("sha256:2".into())
                },
                TaskRunResult {
                    name: "tags".into(),
                    type_: Some(ParamType::Array),
                    value: ParamValue::Array(vec!["a".into(), "b".into()])
                },
            ]
        );
        let build = &d.steps[0];
        assert_eq!(build.container.as_deref(), Some("step-build"));
        assert_eq!(build.terminated.as_ref().unwrap().exit_code, 0);
        assert_eq!(build.results[0].name, "log");
    }

    #[test]
    fn a_failed_step_names_its_container_and_exit_code() {
        let spec = spec();
        let steps = [
            ended(StepReason::Error, Some(3), &[]),
            ended(StepReason::Skipped, None, &[]),
        ];
        let d = decide(&facts(&spec, &steps));
        assert_eq!(d.condition.status, "False");
        assert_eq!(d.condition.reason.as_deref(), Some("Failed"));
        assert_eq!(
            d.condition.message.as_deref(),
            Some("\"step-build\" exited with code 3")
        );
        assert_eq!(d.steps[1].termination_reason.as_deref(), Some("Skipped"));
        assert_eq!(d.steps[1].terminated.as_ref().unwrap().exit_code, 1);
    }

    #[test]
    fn a_skipped_step_with_no_failed_step_is_no_success() {
        let spec = spec();
        let steps = [
            ended(StepReason::Completed, Some(0), &[]),
            ended(StepReason::Skipped, None, &[]),
        ];
        let d = decide(&facts(&spec, &steps));
        assert!(d.done);
        assert_eq!(d.condition.status, "False");
        assert_eq!(d.condition.reason.as_deref(), Some("Failed"));
        assert_eq!(
            d.condition.message.as_deref(),
            Some(
                "\"step-push\" was skipped although no step before it failed: a step's end was not recorded"
            )
        );
    }

    #[test]
    fn continued_failures_do_not_fail_the_run() {
        let spec = spec();
        let steps = [
            ended(StepReason::Continued, Some(1), &[]),
            ended(StepReason::Completed, Some(0), &[]),
        ];
        let d = decide(&facts(&spec, &steps));
        assert_eq!(d.condition.status, "True");
        assert_eq!(d.steps[0].terminated.as_ref().unwrap().exit_code, 1);
    }

    #[test]
    fn a_running_step_shows_running_and_the_next_waiting() {
        let spec = spec();
        let steps = [
            Some(contract::StepState::started(t("2026-11-22T10:00:01Z"))),
            None,
        ];
        let d = decide(&facts(&spec, &steps));
        assert!(!d.done && d.stop.is_none());
        assert_eq!(d.condition.reason.as_deref(), Some("Running"));
        assert!(d.steps[0].running.is_some() && d.steps[1].waiting.is_some());
    }

    #[test]
    fn past_its_timeout_a_run_stops_its_steps_then_times_out() {
        let spec = spec();
        let running = [
            Some(contract::StepState::started(t("2026-11-22T10:00:01Z"))),
            None,
        ];
        let mut f = facts(&spec, &running);
        f.now = t("2026-11-22T10:01:01Z");
        assert_eq!(decide(&f).stop, Some(Stop::TimedOut));
        let ended_steps = [
            ended(StepReason::Cancelled, None, &[]),
            ended(StepReason::Skipped, None, &[]),
        ];
        f.steps = &ended_steps;
        f.retries = 1;
        let d = decide(&f);
        assert!(
            d.done && d.retry,
            "a timed-out run is retried while retries remain"
        );
        assert_eq!(d.condition.reason.as_deref(), Some("TaskRunTimeout"));
        assert_eq!(
            d.condition.message.as_deref(),
            Some("TaskRun \"build-run\" failed to finish within \"1m0s\"")
        );
        f.retries_used = 1;
        assert!(!decide(&f).retry);
    }

    #[test]
    fn a_cancelled_run_is_not_retried() {
        let spec = spec();
        let steps = [
            ended(StepReason::Cancelled, None, &[]),
            ended(StepReason::Skipped, None, &[]),
        ];
        let mut f = facts(&spec, &steps);
        f.cancelled = true;
        f.retries = 3;
        let d = decide(&f);
        assert_eq!(d.condition.reason.as_deref(), Some("TaskRunCancelled"));
        assert!(d.done && !d.retry);
    }

    #[test]
    fn oversized_results_have_their_own_reason() {
        let spec = spec();
        let mut big = ended(StepReason::ResultLargerThanAllowedLimit, Some(0), &[]);
        big.as_mut().unwrap().message =
            Some("result \"digest\" is 2 MiB; the limit is 1 MiB".into());
        let steps = [big, ended(StepReason::Skipped, None, &[])];
        let d = decide(&facts(&spec, &steps));
        assert_eq!(
            d.condition.reason.as_deref(),
            Some("TaskRunResultLargerThanAllowedLimit")
        );
        assert!(d.condition.message.unwrap().contains("2 MiB"));
    }
}
