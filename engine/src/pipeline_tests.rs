use super::*;

use serde_json::json;

fn spec(value: serde_json::Value) -> PipelineSpec {
    serde_json::from_value(value).unwrap()
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const START: &str = "2026-11-22T10:00:00Z";

struct Run {
    spec: PipelineSpec,
    params: Vec<v1::Param>,
    children: BTreeMap<String, Child>,
    cancel: Option<Cancel>,
    pending: bool,
    timeouts: Timeouts,
    finally_started_at: Option<Timestamp>,
    now: Timestamp,
}

impl Run {
    fn new(spec_json: serde_json::Value) -> Self {
        Run {
            spec: spec(spec_json),
            params: Vec::new(),
            children: BTreeMap::new(),
            cancel: None,
            pending: false,
            timeouts: Timeouts::default(),
            finally_started_at: None,
            now: t(START),
        }
    }

    fn decide(&self) -> Decision {
        decide(&PipelineRunFacts {
            name: "run-1",
            namespace: "ci",
            uid: "uid-1",
            pipeline_name: "p",
            spec: &self.spec,
            params: &self.params,
            cancel: self.cancel,
            pending: self.pending,
            timeouts: self.timeouts,
            started_at: t(START),
            finally_started_at: self.finally_started_at,
            children: &self.children,
            now: self.now,
        })
    }

    fn child(&mut self, name: &str, outcome: Outcome, results: &[(&str, &str)]) -> &mut Self {
        self.children.insert(
            name.into(),
            Child {
                runs: 1,
                artifacts: None,
                outcome,
                results: results
                    .iter()
                    .map(|(k, v)| (k.to_string(), ParamValue::String(v.to_string())))
                    .collect(),
            },
        );
        self
    }

    fn succeeded(&mut self, name: &str) -> &mut Self {
        self.child(name, Outcome::Succeeded, &[])
    }
}

fn started(d: &Decision) -> Vec<&str> {
    d.start.iter().map(|s| s.task.name.as_str()).collect()
}

fn skipped_names(d: &Decision) -> Vec<(&str, &str)> {
    d.skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect()
}

fn param<'a>(s: &'a Start, name: &str) -> &'a ParamValue {
    &s.task.params.iter().find(|p| p.name == name).unwrap().value
}

fn failed_outcome() -> Outcome {
    Outcome::Failed {
        reason: "Failed".into(),
    }
}

fn diamond() -> serde_json::Value {
    json!({
        "tasks": [
            {"name": "a", "taskRef": {"name": "t"}},
            {"name": "b", "taskRef": {"name": "t"}},
            {"name": "c", "taskRef": {"name": "t"}, "runAfter": ["a", "b"]},
        ]
    })
}

#[test]
fn every_ready_task_starts_at_once_and_dependents_wait() {
    let run = Run::new(diamond());
    let d = run.decide();
    assert_eq!(started(&d), ["a", "b"]);
    assert!(!d.done);
    assert_eq!(d.condition.status, "Unknown");
    assert_eq!(d.condition.reason.as_deref(), Some("Running"));
    assert_eq!(
        d.condition.message.as_deref(),
        Some("Tasks Completed: 0 (Failed: 0, Cancelled 0), Incomplete: 3, Skipped: 0")
    );
}

#[test]
fn a_task_starts_once_all_its_parents_succeeded() {
    let mut run = Run::new(diamond());
    run.succeeded("a").child("b", Outcome::Running, &[]);
    assert!(
        run.decide().start.is_empty(),
        "running tasks do not start again"
    );
    run.succeeded("b");
    assert_eq!(started(&run.decide()), ["c"]);
    run.succeeded("c");
    let d = run.decide();
    assert!(d.done);
    assert_eq!(
        (d.condition.status.as_str(), d.condition.reason.as_deref()),
        ("True", Some("Succeeded"))
    );
    assert_eq!(
        d.condition.message.as_deref(),
        Some("Tasks Completed: 3 (Failed: 0, Cancelled 0), Skipped: 0")
    );
}

#[test]
fn params_default_results_flow_and_context_is_filled_in() {
    let mut run = Run::new(json!({
        "params": [{"name": "who", "default": "world"}, {"name": "flags", "type": "array", "default": ["-v", "-x"]}],
        "tasks": [
            {"name": "build", "taskRef": {"name": "t"}},
            {"name": "test", "taskRef": {"name": "t"}, "params": [
                {"name": "id", "value": "$(tasks.build.results.id)-$(params.who)"},
                {"name": "flags", "value": ["$(params.flags[*])", "-q"]},
                {"name": "run", "value": "$(context.pipelineRun.name)/$(context.pipelineRun.namespace)"},
            ]},
        ],
        "results": [{"name": "id", "value": "$(tasks.build.results.id)"}],
    }));
    run.child("build", Outcome::Succeeded, &[("id", "42")]);
    let d = run.decide();
    assert_eq!(started(&d), ["test"]);
    let s = &d.start[0];
    assert_eq!(param(s, "id"), &ParamValue::String("42-world".into()));
    assert_eq!(
        param(s, "flags"),
        &ParamValue::Array(vec!["-v".into(), "-x".into(), "-q".into()])
    );
    assert_eq!(param(s, "run"), &ParamValue::String("run-1/ci".into()));

    run.succeeded("test");
    let d = run.decide();
    assert_eq!(
        d.results,
        [PipelineRunResult {
            name: "id".into(),
            value: ParamValue::String("42".into())
        }]
    );
}

#[test]
fn a_missing_param_fails_the_run_naming_it() {
    let mut run = Run::new(
        json!({"params": [{"name": "repo"}], "tasks": [{"name": "a", "taskRef": {"name": "t"}}]}),
    );
    let d = run.decide();
    assert!(d.done && d.start.is_empty());
    assert_eq!(d.condition.reason.as_deref(), Some("ParameterMissing"));
    assert!(d.condition.message.unwrap().contains("repo"));
    run.params = vec![v1::Param {
        name: "repo".into(),
        value: ParamValue::String("x".into()),
    }];
    assert_eq!(started(&run.decide()), ["a"]);
}

#[test]
fn a_false_when_skips_only_its_task_and_those_needing_its_results() {
    let mut run = Run::new(json!({
        "params": [{"name": "deploy", "default": "no"}],
        "tasks": [
            {"name": "gate", "taskRef": {"name": "t"}, "when": [{"input": "$(params.deploy)", "operator": "in", "values": ["yes"]}]},
            {"name": "after", "taskRef": {"name": "t"}, "runAfter": ["gate"]},
            {"name": "uses", "taskRef": {"name": "t"}, "params": [{"name": "x", "value": "$(tasks.gate.results.out)"}]},
        ]
    }));
    let d = run.decide();
    assert_eq!(started(&d), ["after"]);
    assert_eq!(
        skipped_names(&d),
        [
            ("gate", "When Expressions evaluated to false"),
            ("uses", "Results were missing")
        ]
    );
    assert_eq!(d.skipped[0].when_expressions.len(), 1);
    run.succeeded("after");
    let d = run.decide();
    assert!(d.done);
    assert_eq!(
        (d.condition.status.as_str(), d.condition.reason.as_deref()),
        ("True", Some("Completed"))
    );
    assert_eq!(
        d.condition.message.as_deref(),
        Some("Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 2")
    );
}

#[test]
fn cel_when_expressions_see_substituted_values() {
    let run = Run::new(json!({
        "params": [{"name": "branch", "default": "release-1"}],
        "tasks": [
            {"name": "a", "taskRef": {"name": "t"}, "when": [{"cel": "'$(params.branch)'.startsWith('release')"}]},
            {"name": "b", "taskRef": {"name": "t"}, "when": [{"cel": "'$(params.branch)' == 'main'"}]},
        ]
    }));
    let d = run.decide();
    assert_eq!(started(&d), ["a"]);
    assert_eq!(
        skipped_names(&d),
        [("b", "When Expressions evaluated to false")]
    );
}

#[test]
fn a_broken_cel_expression_fails_the_run() {
    let run = Run::new(
        json!({"tasks": [{"name": "a", "taskRef": {"name": "t"}, "when": [{"cel": "1 +"}]}]}),
    );
    let d = run.decide();
    assert!(d.done);
    assert_eq!(d.condition.reason.as_deref(), Some("CELEvaluationFailed"));
}

#[test]
fn a_skip_for_another_reason_cascades_to_dependents() {
    let mut run = Run::new(json!({
        "tasks": [
            {"name": "a", "taskRef": {"name": "t"}},
            {"name": "b", "taskRef": {"name": "t"}, "params": [{"name": "x", "value": "$(tasks.a.results.r)"}], "when": [{"input": "x", "operator": "in", "values": ["x"]}]},
            {"name": "c", "taskRef": {"name": "t"}, "runAfter": ["b"]},
        ]
    }));
    run.child("a", failed_outcome(), &[]);
    let d = run.decide();
    assert_eq!(
        skipped_names(&d),
        [
            ("b", "PipelineRun was stopping"),
            ("c", "PipelineRun was stopping")
        ]
    );
    // With onError: continue the failure does not stop the run; b misses a's result
    // and c, after b, is skipped as its parent was.
    run.spec.tasks[0].on_error = Some(OnError::Continue);
    let d = run.decide();
    assert_eq!(
        skipped_names(&d),
        [
            ("b", "Results were missing"),
            ("c", "Parent Tasks were skipped")
        ]
    );
    assert!(d.done);
    assert_eq!(
        d.condition.message.as_deref(),
        Some("Tasks Completed: 1 (Failed: 1 (Ignored: 1), Cancelled 0), Skipped: 2")
    );
    assert_eq!(d.condition.reason.as_deref(), Some("Completed"));
}

#[test]
fn a_failure_stops_new_tasks_and_finally_sees_the_statuses() {
    let mut run = Run::new(json!({
        "tasks": [
            {"name": "test", "taskRef": {"name": "t"}},
            {"name": "build", "taskRef": {"name": "t"}, "runAfter": ["test"]},
        ],
        "finally": [
            {"name": "report", "taskRef": {"name": "t"}, "params": [
                {"name": "all", "value": "$(tasks.status)"},
                {"name": "test", "value": "$(tasks.test.status)/$(tasks.test.reason)"},
                {"name": "build", "value": "$(tasks.build.status)"},
            ]},
        ]
    }));
    run.child("test", failed_outcome(), &[]);
    let d = run.decide();
    assert_eq!(skipped_names(&d), [("build", "PipelineRun was stopping")]);
    assert_eq!(started(&d), ["report"]);
    assert!(d.finally_starts && d.start[0].finally);
    let s = &d.start[0];
    assert_eq!(param(s, "all"), &ParamValue::String("Failed".into()));
    assert_eq!(
        param(s, "test"),
        &ParamValue::String("Failed/Failed".into())
    );
    assert_eq!(param(s, "build"), &ParamValue::String("None".into()));
    assert_eq!(d.condition.reason.as_deref(), Some("Running"));

    run.finally_started_at = Some(t(START));
    run.succeeded("report");
    let d = run.decide();
    assert!(d.done && !d.finally_starts);
    assert_eq!(
        (d.condition.status.as_str(), d.condition.reason.as_deref()),
        ("False", Some("Failed"))
    );
    assert_eq!(
        d.condition.message.as_deref(),
        Some("Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 1")
    );
}

#[test]
fn a_succeeded_task_without_a_referenced_result_fails_the_run() {
    let mut run = Run::new(json!({"tasks": [
        {"name": "a", "taskRef": {"name": "t"}},
        {"name": "b", "taskRef": {"name": "t"}, "params": [{"name": "x", "value": "$(tasks.a.results.digest)"}]},
    ]}));
    run.succeeded("a");
    let d = run.decide();
    assert!(d.done);
    assert_eq!(
        d.condition.reason.as_deref(),
        Some("InvalidTaskResultReference")
    );
    assert!(d.condition.message.unwrap().contains("digest"));
}

#[test]
fn the_pipeline_timeout_stops_running_tasks_then_ends_the_run() {
    let mut run = Run::new(diamond());
    run.timeouts.pipeline = Some(SignedDuration::from_hours(1));
    run.child("a", Outcome::Running, &[]).succeeded("b");
    run.now = t("2026-11-22T11:00:01Z");
    let d = run.decide();
    assert_eq!(d.stop, [("a".to_owned(), Stop::TimedOut)]);
    assert!(!d.done, "done once the stopped task has ended");
    run.child("a", Outcome::Cancelled { timed_out: true }, &[]);
    let d = run.decide();
    assert!(d.done);
    assert_eq!(d.condition.reason.as_deref(), Some("PipelineRunTimeout"));
    assert_eq!(
        d.condition.message.as_deref(),
        Some("PipelineRun \"run-1\" failed to finish within \"1h0m0s\"")
    );
}

#[test]
fn the_tasks_timeout_still_runs_finally_within_its_own_budget() {
    let mut run = Run::new(json!({
        "tasks": [{"name": "a", "taskRef": {"name": "t"}}, {"name": "b", "taskRef": {"name": "t"}, "runAfter": ["a"]}],
        "finally": [{"name": "cleanup", "taskRef": {"name": "t"}, "timeout": "1h"}],
    }));
    run.timeouts = Timeouts {
        pipeline: Some(SignedDuration::from_mins(30)),
        tasks: Some(SignedDuration::from_mins(10)),
        finally: Some(SignedDuration::from_mins(5)),
    };
    run.child("a", Outcome::Running, &[]);
    run.now = t("2026-11-22T10:10:30Z");
    let d = run.decide();
    assert_eq!(d.stop, [("a".to_owned(), Stop::TimedOut)]);
    run.child("a", Outcome::Cancelled { timed_out: true }, &[]);
    let d = run.decide();
    assert_eq!(skipped_names(&d), [("b", "PipelineRun was stopping")]);
    assert_eq!(started(&d), ["cleanup"]);
    // The finally task gets at most the finally timeout, not its own hour.
    assert_eq!(d.start[0].timeout, Some(SignedDuration::from_mins(5)));
    assert_eq!(
        d.condition.reason.as_deref(),
        Some("PipelineRunTimeoutRunningFinally")
    );
    run.finally_started_at = Some(run.now);
    run.succeeded("cleanup");
    let d = run.decide();
    assert!(d.done);
    assert_eq!(
        d.condition.message.as_deref(),
        Some("PipelineRun \"run-1\" failed due to tasks failed to finish within \"10m0s\"")
    );
}

#[test]
fn task_timeouts_are_cut_to_what_the_run_has_left() {
    let mut run = Run::new(
        json!({"tasks": [{"name": "a", "taskRef": {"name": "t"}, "timeout": "1h"}, {"name": "b", "taskRef": {"name": "t"}}]}),
    );
    run.timeouts.tasks = Some(SignedDuration::from_mins(10));
    run.now = t("2026-11-22T10:04:00Z");
    let d = run.decide();
    assert_eq!(d.start[0].timeout, Some(SignedDuration::from_mins(6)));
    assert_eq!(d.start[1].timeout, Some(SignedDuration::from_mins(6)));
    run.timeouts.tasks = None;
    let d = run.decide();
    assert_eq!(d.start[0].timeout, Some(SignedDuration::from_hours(1)));
    assert_eq!(d.start[1].timeout, None);
}

#[test]
fn a_hard_cancel_stops_everything_and_skips_finally() {
    let mut run = Run::new(json!({
        "tasks": [{"name": "a", "taskRef": {"name": "t"}}, {"name": "b", "taskRef": {"name": "t"}, "runAfter": ["a"]}],
        "finally": [{"name": "f", "taskRef": {"name": "t"}}],
    }));
    run.child("a", Outcome::Running, &[]);
    run.cancel = Some(Cancel::Cancelled);
    let d = run.decide();
    assert_eq!(d.stop, [("a".to_owned(), Stop::Cancelled)]);
    assert!(d.start.is_empty() && !d.done);
    run.child("a", Outcome::Cancelled { timed_out: false }, &[]);
    let d = run.decide();
    assert!(d.done && d.start.is_empty());
    assert_eq!(d.condition.reason.as_deref(), Some("Cancelled"));
    assert_eq!(
        d.condition.message.as_deref(),
        Some("PipelineRun \"run-1\" was cancelled")
    );
}

#[test]
fn a_graceful_cancel_runs_finally_and_ends_cancelled() {
    let mut run = Run::new(json!({
        "tasks": [{"name": "a", "taskRef": {"name": "t"}}, {"name": "b", "taskRef": {"name": "t"}, "runAfter": ["a"]}],
        "finally": [{"name": "f", "taskRef": {"name": "t"}}],
    }));
    run.child("a", Outcome::Running, &[]);
    run.cancel = Some(Cancel::CancelledRunFinally);
    let d = run.decide();
    assert_eq!(d.stop, [("a".to_owned(), Stop::Cancelled)]);
    assert_eq!(
        skipped_names(&d),
        [("b", "PipelineRun was gracefully cancelled")]
    );
    assert_eq!(
        d.condition.reason.as_deref(),
        Some("CancelledRunningFinally")
    );
    run.child("a", Outcome::Cancelled { timed_out: false }, &[]);
    assert_eq!(started(&run.decide()), ["f"]);
    run.succeeded("f");
    let d = run.decide();
    assert!(d.done);
    assert_eq!(
        (d.condition.status.as_str(), d.condition.reason.as_deref()),
        ("False", Some("Cancelled"))
    );
}

#[test]
fn a_graceful_stop_lets_running_tasks_finish() {
    let mut run = Run::new(diamond());
    run.child("a", Outcome::Running, &[]);
    run.cancel = Some(Cancel::StoppedRunFinally);
    let d = run.decide();
    assert!(d.stop.is_empty());
    assert_eq!(
        skipped_names(&d),
        [
            ("b", "PipelineRun was gracefully stopped"),
            ("c", "PipelineRun was gracefully stopped")
        ]
    );
    assert_eq!(d.condition.reason.as_deref(), Some("StoppedRunningFinally"));
}

#[test]
fn a_cycle_fails_the_run_instead_of_hanging() {
    let run = Run::new(json!({"tasks": [
        {"name": "a", "taskRef": {"name": "t"}, "runAfter": ["b"]},
        {"name": "b", "taskRef": {"name": "t"}, "runAfter": ["a"]},
    ]}));
    let d = run.decide();
    assert!(d.done);
    assert_eq!(d.condition.reason.as_deref(), Some("PipelineInvalidGraph"));
}

#[test]
fn a_long_results_chain_advances_one_task_per_decision() {
    let n = 1000;
    let tasks: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            if i == 0 {
                json!({"name": "t0", "taskRef": {"name": "t"}})
            } else {
                json!({"name": format!("t{i}"), "taskRef": {"name": "t"},
                       "params": [{"name": "in", "value": format!("$(tasks.t{}.results.out)", i - 1)}]})
            }
        })
        .collect();
    let mut run = Run::new(json!({ "tasks": tasks }));
    for i in 0..n - 1 {
        run.child(&format!("t{i}"), Outcome::Succeeded, &[("out", "v")]);
    }
    let d = run.decide();
    assert_eq!(started(&d), [format!("t{}", n - 1)]);
    assert_eq!(param(&d.start[0], "in"), &ParamValue::String("v".into()));
}

#[test]
fn a_pipeline_task_sees_its_own_retries() {
    let run = Run::new(json!({
        "tasks": [
            {"name": "flaky", "taskRef": {"name": "t"}, "retries": 2,
             "params": [{"name": "n", "value": "$(context.pipelineTask.retries)"}]},
            {"name": "steady", "taskRef": {"name": "t"},
             "params": [{"name": "n", "value": "$(context.pipelineTask.retries)"}]},
        ],
    }));
    let d = run.decide();
    let n = |task: &str| {
        let s = d.start.iter().find(|s| s.task.name == task).unwrap();
        param(s, "n").clone()
    };
    assert_eq!(n("flaky"), ParamValue::String("2".into()));
    assert_eq!(n("steady"), ParamValue::String("0".into()));
}

#[test]
fn an_embedded_task_sees_the_run_context_and_undeclared_pipeline_params() {
    let mut run = Run::new(json!({
        "params": [{"name": "who", "default": "team"}, {"name": "flags", "type": "array", "default": ["-a", "-b"]}],
        "tasks": [{"name": "report", "taskSpec": {
            "params": [{"name": "own"}],
            "steps": [{"name": "s", "image": "alpine",
                "args": ["$(params.flags[*])", "$(params.own)"],
                "script": "echo $(context.pipelineRun.name) $(params.who) $(params.own) $(context.taskRun.name)"}]
        }, "params": [{"name": "own", "value": "mine"}]}]
    }));
    run.params = vec![];
    let d = run.decide();
    let step = &d.start[0].task.task_spec.as_ref().unwrap().task.steps[0];
    // The task's own params and the TaskRun's context are left for the TaskRun.
    assert_eq!(
        step.script.as_deref(),
        Some("echo run-1 team $(params.own) $(context.taskRun.name)")
    );
    assert_eq!(step.args, ["-a", "-b", "$(params.own)"]);
}

#[test]
fn an_embedded_task_sees_finished_tasks_results_and_artifacts_undeclared() {
    let mut run = Run::new(json!({
        "tasks": [
            {"name": "build", "taskSpec": {"results": [{"name": "digest"}],
                "steps": [{"name": "s", "image": "alpine", "script": "true"}]}},
            {"name": "report", "runAfter": ["build"], "taskSpec": {
                "steps": [{"name": "s", "image": "alpine",
                    "script": "echo $(tasks.build.results.digest) $(tasks.build.outputs.image) $(tasks.build.inputs)"}]}}
        ]
    }));
    let artifacts: v1::Artifacts = serde_json::from_value(json!({
        "inputs": [{"name": "src", "values": [{"uri": "git"}]}],
        "outputs": [{"name": "image", "values": [{"uri": "pkg:oci/app"}]}]
    }))
    .unwrap();
    run.children.insert(
        "build".into(),
        Child {
            artifacts: Some(artifacts),
            ..Child::of(
                Outcome::Succeeded,
                BTreeMap::from([("digest".into(), ParamValue::String("sha256:1".into()))]),
            )
        },
    );
    let d = run.decide();
    let step = &d.start[0].task.task_spec.as_ref().unwrap().task.steps[0];
    assert_eq!(
        step.script.as_deref(),
        Some(r#"echo sha256:1 [{"uri":"pkg:oci/app"}] [{"uri":"git"}]"#)
    );
}

fn combos(d: &Start) -> Vec<Vec<(String, String)>> {
    d.combinations
        .iter()
        .map(|c| {
            c.iter()
                .map(|p| (p.name.clone(), p.value.as_str().unwrap().to_owned()))
                .collect()
        })
        .collect()
}

fn pairs(list: &[&[(&str, &str)]]) -> Vec<Vec<(String, String)>> {
    list.iter()
        .map(|c| {
            c.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn a_matrix_fans_out_over_every_combination_and_its_includes() {
    let run = Run::new(json!({
        "params": [{"name": "oses", "type": "array", "default": ["linux", "mac"]}],
        "tasks": [{"name": "build", "taskRef": {"name": "b"},
            "matrix": {
                "params": [
                    {"name": "os", "value": "$(params.oses[*])"},
                    {"name": "arch", "value": ["amd64", "arm64"]}
                ],
                "include": [
                    {"name": "mac-flags", "params": [{"name": "os", "value": "mac"}, {"name": "flags", "value": "-m"}]},
                    {"name": "windows", "params": [{"name": "os", "value": "windows"}]},
                    // Shares arch=amd64 with a combination and matches none: dropped, as
                    // Tekton drops it.
                    {"name": "odd", "params": [{"name": "os", "value": "bsd"}, {"name": "arch", "value": "amd64"}]}
                ]
            }}]
    }));
    let d = run.decide();
    assert_eq!(
        combos(&d.start[0]),
        pairs(&[
            &[("arch", "amd64"), ("os", "linux")],
            &[("arch", "amd64"), ("flags", "-m"), ("os", "mac")],
            &[("arch", "arm64"), ("os", "linux")],
            &[("arch", "arm64"), ("flags", "-m"), ("os", "mac")],
            &[("os", "windows")],
        ])
    );
}

#[test]
fn a_matrix_of_includes_alone_runs_each_include() {
    let run = Run::new(json!({
        "tasks": [{"name": "t", "taskRef": {"name": "b"}, "matrix": {"include": [
            {"name": "a", "params": [{"name": "x", "value": "1"}]},
            {"name": "b", "params": [{"name": "x", "value": "2"}, {"name": "y", "value": "3"}]}
        ]}}]
    }));
    let d = run.decide();
    assert_eq!(
        combos(&d.start[0]),
        pairs(&[&[("x", "1")], &[("x", "2"), ("y", "3")]])
    );
}

#[test]
fn an_empty_matrix_array_skips_the_task() {
    let run = Run::new(json!({
        "tasks": [{"name": "t", "taskRef": {"name": "b"},
            "matrix": {"params": [{"name": "x", "value": []}]}}]
    }));
    let d = run.decide();
    assert!(d.start.is_empty());
    assert_eq!(
        skipped_names(&d),
        [("t", skip_reason::EMPTY_ARRAY_IN_MATRIX)]
    );
}

#[test]
fn matrixed_children_gather_into_one_outcome_and_array_results() {
    let child = |outcome: Outcome, v: &str| {
        Child::of(
            outcome,
            BTreeMap::from([("artifact".to_owned(), ParamValue::String(v.into()))]),
        )
    };
    let all = gather(&[
        child(Outcome::Succeeded, "a"),
        child(Outcome::Succeeded, "b"),
    ]);
    assert_eq!(all.outcome, Outcome::Succeeded);
    assert_eq!(
        all.results["artifact"],
        ParamValue::Array(vec!["a".into(), "b".into()])
    );
    let one_running = gather(&[child(Outcome::Running, "a"), child(Outcome::Succeeded, "b")]);
    assert_eq!(one_running.outcome, Outcome::Running);
    let failed = gather(&[
        child(Outcome::Cancelled { timed_out: false }, "a"),
        child(
            Outcome::Failed {
                reason: "Failed".into(),
            },
            "b",
        ),
    ]);
    assert_eq!(
        failed.outcome,
        Outcome::Failed {
            reason: "Failed".into()
        }
    );
}

#[test]
fn a_pending_run_starts_nothing_until_released() {
    let mut run = Run::new(json!({"tasks": [{"name": "a", "taskRef": {"name": "t"}}]}));
    run.pending = true;
    let d = run.decide();
    assert!(d.start.is_empty() && !d.done);
    assert_eq!(d.condition.status, "Unknown");
    assert_eq!(d.condition.reason.as_deref(), Some("PipelineRunPending"));
    assert_eq!(
        d.condition.message.as_deref(),
        Some("PipelineRun \"run-1\" is pending")
    );
    run.pending = false;
    assert_eq!(started(&run.decide()), ["a"]);
}

#[test]
fn a_finished_task_runs_condition_becomes_its_outcome() {
    let c = |status: &str, reason: &str| Condition {
        type_: "Succeeded".into(),
        status: status.into(),
        reason: Some(reason.into()),
        ..Condition::default()
    };
    assert_eq!(
        Outcome::of_finished(Some(&c("True", "Succeeded")), false),
        Outcome::Succeeded
    );
    assert_eq!(
        Outcome::of_finished(Some(&c("False", "TaskRunCancelled")), true),
        Outcome::Cancelled { timed_out: true }
    );
    assert_eq!(
        Outcome::of_finished(Some(&c("False", "TaskRunTimeout")), false),
        Outcome::Failed {
            reason: "TaskRunTimeout".into()
        }
    );
    assert_eq!(
        Outcome::of_finished(None, false),
        Outcome::Failed {
            reason: "Failed".into()
        }
    );
}

#[test]
fn cancel_and_timeouts_are_read_from_a_pipeline_runs_spec() {
    let run = |v: serde_json::Value| -> v1::PipelineRunSpec { serde_json::from_value(v).unwrap() };
    let plain = run(json!({}));
    assert_eq!(Cancel::of(&plain), None);
    let t = Timeouts::of(&plain);
    assert_eq!(t.pipeline, Some(crate::names::DEFAULT_TIMEOUT));
    assert_eq!((t.tasks, t.finally), (None, None));
    let given = run(json!({"status": "CancelledRunFinally",
                           "timeouts": {"pipeline": "0s", "tasks": "8m", "finally": "2m"}}));
    assert_eq!(Cancel::of(&given), Some(Cancel::CancelledRunFinally));
    let t = Timeouts::of(&given);
    assert_eq!(t.pipeline, Some(SignedDuration::ZERO));
    assert_eq!(t.tasks, Some(SignedDuration::from_mins(8)));
    assert_eq!(t.finally, Some(SignedDuration::from_mins(2)));
    assert_eq!(
        Cancel::of(&run(json!({"status": "PipelineRunPending"}))),
        None
    );
    assert_eq!(
        Cancel::of(&run(json!({"status": "Cancelled"}))),
        Some(Cancel::Cancelled)
    );
    assert_eq!(
        Cancel::of(&run(json!({"status": "StoppedRunFinally"}))),
        Some(Cancel::StoppedRunFinally)
    );
}

#[test]
fn children_are_grouped_by_task_and_a_matrixed_tasks_gathered() {
    let s = spec(json!({"tasks": [
        {"name": "build", "taskRef": {"name": "b"},
         "matrix": {"params": [{"name": "os", "value": ["linux", "mac"]}]}},
        {"name": "test", "taskRef": {"name": "t"}}
    ]}));
    let child = |outcome: Outcome, v: &str| {
        Child::of(
            outcome,
            [("out".to_string(), ParamValue::String(v.into()))].into(),
        )
    };
    let grouped = by_task(
        &s,
        [
            ("build".to_string(), child(Outcome::Succeeded, "l")),
            ("test".to_string(), child(Outcome::Running, "t")),
            ("build".to_string(), child(Outcome::Running, "m")),
        ],
    );
    assert_eq!(grouped.len(), 2);
    assert_eq!(grouped["build"].outcome, Outcome::Running);
    assert_eq!(
        grouped["build"].results["out"],
        ParamValue::Array(vec!["l".into(), "m".into()])
    );
    assert_eq!(
        grouped["test"].results["out"],
        ParamValue::String("t".into())
    );
}

#[test]
fn a_run_is_done_only_once_nothing_it_started_still_runs() {
    // a fails while b, independent of it, still runs: b may finish (Tekton's graceful
    // stop), nothing new starts, and the run is Stopping until b has ended.
    let mut run = Run::new(json!({"tasks": [
        {"name": "a", "taskRef": {"name": "t"}},
        {"name": "b", "taskRef": {"name": "t"}},
        {"name": "c", "taskRef": {"name": "t"}, "runAfter": ["b"]}
    ]}));
    run.child("a", failed_outcome(), &[]);
    run.child("b", Outcome::Running, &[]);
    let d = run.decide();
    assert!(!d.done);
    assert!(d.start.is_empty() && d.stop.is_empty());
    assert_eq!(d.condition.status, "Unknown");
    assert_eq!(d.condition.reason.as_deref(), Some(reason::STOPPING));
    run.succeeded("b");
    let d = run.decide();
    assert!(d.done);
    assert_eq!(d.condition.status, "False");

    // The pipeline's timeout passes while b runs: b is stopped, and the run waits for it.
    let mut run = Run::new(json!({"tasks": [{"name": "b", "taskRef": {"name": "t"}}]}));
    run.child("b", Outcome::Running, &[]);
    run.timeouts.pipeline = Some(SignedDuration::from_mins(1));
    run.now = t("2026-11-22T10:02:00Z");
    let d = run.decide();
    assert!(!d.done, "{d:?}");
    assert_eq!(d.stop, [("b".to_string(), Stop::TimedOut)]);
    assert_eq!(d.condition.status, "Unknown");
    assert!(d.results.is_empty());
    run.child("b", Outcome::Cancelled { timed_out: true }, &[]);
    let d = run.decide();
    assert!(d.done);
    assert_eq!(d.condition.status, "False");
}

#[test]
fn a_matrixed_tasks_length_and_its_results_length_reach_later_tasks() {
    let mut run = Run::new(json!({
        "tasks": [
            {"name": "build", "taskRef": {"name": "t"},
             "matrix": {"params": [{"name": "os", "value": ["linux", "mac", "windows"]}]}},
            {"name": "count", "taskRef": {"name": "t"}, "params": [
                {"name": "n", "value": "$(tasks.build.matrix.length)"},
                {"name": "urls", "value": "$(tasks.build.matrix.url.length)"},
                {"name": "none", "value": "$(tasks.build.matrix.nothing.length)"},
            ]},
        ]
    }));
    let one = |url: Option<&str>| {
        let results = url
            .map(|u| BTreeMap::from([("url".to_owned(), ParamValue::String(u.into()))]))
            .unwrap_or_default();
        Child::of(Outcome::Succeeded, results)
    };
    run.children.insert(
        "build".into(),
        gather(&[one(Some("a")), one(None), one(Some("c"))]),
    );
    let d = run.decide();
    assert_eq!(started(&d), ["count"]);
    let count = &d.start[0];
    assert_eq!(param(count, "n"), &ParamValue::String("3".into()));
    assert_eq!(param(count, "urls"), &ParamValue::String("2".into()));
    assert_eq!(param(count, "none"), &ParamValue::String("0".into()));
}
