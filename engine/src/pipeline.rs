//! PipelineRun decisions. Given the Pipeline, the run's params, cancel request and
//! timeouts, what is known of each pipeline task's TaskRun, and `now`: which tasks start
//! (params, results and context substituted), which running ones must stop, which are
//! skipped and why, and the run's `Succeeded` condition with Tekton's reasons and
//! messages. Every call recomputes everything from its inputs, so a decision can be
//! repeated safely.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use tektite_api::dag::Dag;
use tektite_api::problem::FieldPath;
use tektite_api::v1::pipelinerun_reason as reason;
use tektite_api::v1::taskrun_reason;
use tektite_api::v1::{
    self, Condition, Matrix, OnError, ParamValue, PipelineRunResult, PipelineSpec, PipelineTask,
    SkippedTask, TaskSpec, skip_reason,
};
use tektite_api::vars::{self, Reference, Resolved, SubstituteError};

use crate::params::{effective_params, select};
use tektite_api::v1::when;

/// A cancel request in `spec.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancel {
    /// Stop everything now; finally tasks do not run.
    Cancelled,
    /// Stop running tasks, start no new ones, run the finally tasks.
    CancelledRunFinally,
    /// Let running tasks finish, start no new ones, run the finally tasks.
    StoppedRunFinally,
}

impl Cancel {
    /// What a PipelineRun's `spec.status` asks (`PipelineRunPending` is not a cancel).
    pub fn of(spec: &v1::PipelineRunSpec) -> Option<Cancel> {
        match spec.status {
            Some(v1::PipelineRunSpecStatus::Cancelled) => Some(Cancel::Cancelled),
            Some(v1::PipelineRunSpecStatus::CancelledRunFinally) => {
                Some(Cancel::CancelledRunFinally)
            }
            Some(v1::PipelineRunSpecStatus::StoppedRunFinally) => Some(Cancel::StoppedRunFinally),
            Some(v1::PipelineRunSpecStatus::PipelineRunPending) | None => None,
        }
    }
}

/// What became of a pipeline task's TaskRun.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Succeeded,
    /// Failed for `reason` (Failed, TaskRunTimeout, ...), after any retries.
    Failed {
        reason: String,
    },
    /// Stopped by a cancel; `timed_out` when a pipeline-level timeout caused it.
    Cancelled {
        timed_out: bool,
    },
}

impl Outcome {
    /// What a finished TaskRun's (or child PipelineRun's) `Succeeded` condition means to
    /// its PipelineRun; `stopped_for_timeout` when the PipelineRun stopped it at a
    /// pipeline-level timeout.
    pub fn of_finished(condition: Option<&Condition>, stopped_for_timeout: bool) -> Outcome {
        match condition.map(|c| (c.status.as_str(), c.reason.as_deref())) {
            Some(("True", _)) => Outcome::Succeeded,
            Some((_, Some(taskrun_reason::CANCELLED | reason::CANCELLED))) => Outcome::Cancelled {
                timed_out: stopped_for_timeout,
            },
            Some((_, Some(reason))) => Outcome::Failed {
                reason: reason.to_owned(),
            },
            _ => Outcome::Failed {
                reason: taskrun_reason::FAILED.to_owned(),
            },
        }
    }

    fn is_done(&self) -> bool {
        !matches!(self, Outcome::Running)
    }

    fn reason(&self) -> &str {
        match self {
            Outcome::Running => taskrun_reason::RUNNING,
            Outcome::Succeeded => taskrun_reason::SUCCEEDED,
            Outcome::Failed { reason } => reason,
            Outcome::Cancelled { timed_out: true } => taskrun_reason::TIMED_OUT,
            Outcome::Cancelled { timed_out: false } => taskrun_reason::CANCELLED,
        }
    }
}

/// A pipeline task's TaskRun as far as it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    pub outcome: Outcome,
    pub results: BTreeMap<String, ParamValue>,
    /// How many TaskRuns it stands for: 1, or a matrixed task's gathered children.
    pub runs: usize,
    /// What it reported of the alpha artifacts (`status.artifacts`).
    pub artifacts: Option<v1::Artifacts>,
}

impl Child {
    /// One TaskRun.
    pub fn of(outcome: Outcome, results: BTreeMap<String, ParamValue>) -> Child {
        Child {
            outcome,
            results,
            runs: 1,
            artifacts: None,
        }
    }
}

/// `spec.timeouts`; `None` (or zero, which Tekton reads as "no timeout") for none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub pipeline: Option<SignedDuration>,
    pub tasks: Option<SignedDuration>,
    pub finally: Option<SignedDuration>,
}

impl Timeouts {
    /// A PipelineRun's `spec.timeouts`; the whole run's is Tekton's default (an hour)
    /// when not given (zero: no timeout).
    pub fn of(spec: &v1::PipelineRunSpec) -> Timeouts {
        let t = spec.timeouts.clone().unwrap_or_default();
        Timeouts {
            pipeline: t
                .pipeline
                .as_ref()
                .and_then(v1::Duration::signed)
                .or(Some(crate::names::DEFAULT_TIMEOUT)),
            tasks: t.tasks.as_ref().and_then(v1::Duration::signed),
            finally: t.finally.as_ref().and_then(v1::Duration::signed),
        }
    }
}

/// Everything a decision depends on.
#[derive(Clone, Debug)]
pub struct PipelineRunFacts<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub pipeline_name: &'a str,
    /// The resolved Pipeline.
    pub spec: &'a PipelineSpec,
    pub params: &'a [v1::Param],
    pub cancel: Option<Cancel>,
    /// `spec.status: PipelineRunPending`: nothing starts until it is cleared.
    pub pending: bool,
    pub timeouts: Timeouts,
    pub started_at: Timestamp,
    /// When the first finally task started (`status.finallyStartTime`).
    pub finally_started_at: Option<Timestamp>,
    /// By pipeline task name.
    pub children: &'a BTreeMap<String, Child>,
    pub now: Timestamp,
}

/// A pipeline task to start now, with everything known substituted.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    pub task: PipelineTask,
    /// A matrixed task fans out into one TaskRun per combination: each child gets the
    /// task's params plus its combination's (see [`fan_out`]). Empty otherwise.
    pub combinations: Vec<Vec<v1::Param>>,
    pub finally: bool,
    /// The TaskRun's timeout: the task's own, cut to what the run's timeouts leave.
    pub timeout: Option<SignedDuration>,
}

/// One TaskRun a [`Start`] creates.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildRun {
    /// The TaskRun's name (see [`crate::names::task_run_name`]).
    pub name: String,
    /// The matrix combination's index, for a matrixed task.
    pub index: Option<usize>,
    pub params: Vec<v1::Param>,
}

impl Start {
    /// The TaskRuns to create in PipelineRun `pipeline_run`: one, or one per combination
    /// of the matrix, each with the task's params and its combination's (which win).
    pub fn child_runs(&self, pipeline_run: &str) -> Vec<ChildRun> {
        if self.combinations.is_empty() {
            return vec![ChildRun {
                name: crate::names::task_run_name(pipeline_run, &self.task.name, None),
                index: None,
                params: self.task.params.clone(),
            }];
        }
        self.combinations
            .iter()
            .enumerate()
            .map(|(i, combination)| {
                let mut params = self.task.params.clone();
                params.retain(|p| !combination.iter().any(|c| c.name == p.name));
                params.extend(combination.iter().cloned());
                ChildRun {
                    name: crate::names::task_run_name(pipeline_run, &self.task.name, Some(i)),
                    index: Some(i),
                    params,
                }
            })
            .collect()
    }
}

/// Why a running TaskRun must be stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Cancelled,
    TimedOut,
}

/// What to do, and the run's status after doing it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    pub start: Vec<Start>,
    /// Running pipeline tasks to stop, by name.
    pub stop: Vec<(String, Stop)>,
    pub skipped: Vec<SkippedTask>,
    /// The `Succeeded` condition (no transition time: the caller stamps it).
    pub condition: Condition,
    /// The pipeline's results, once done.
    pub results: Vec<PipelineRunResult>,
    /// The finally tasks start with this decision: record `finallyStartTime`.
    pub finally_starts: bool,
    pub done: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum State<'a> {
    Child(&'a Outcome),
    Skipped(&'static str),
    Ready,
    Pending,
}

impl State<'_> {
    fn is_done(&self) -> bool {
        match self {
            State::Child(o) => o.is_done(),
            State::Skipped(_) => true,
            State::Ready | State::Pending => false,
        }
    }
}

const TIMEOUT_SKIPS: [&str; 3] = [
    skip_reason::PIPELINE_TIMED_OUT,
    skip_reason::TASKS_TIMED_OUT,
    skip_reason::FINALLY_TIMED_OUT,
];

/// Decides what happens next in a PipelineRun. A run is done only once nothing it
/// started still runs: a verdict reached while children run stops them (as cancelled,
/// unless a stop with another reason is already asked) and waits for them as
/// `PipelineRunStopping`, with no new starts and no results yet.
pub fn decide(f: &PipelineRunFacts<'_>) -> Decision {
    let mut d = verdict(f);
    let running: Vec<&String> = f
        .children
        .iter()
        .filter(|(_, c)| c.outcome == Outcome::Running)
        .map(|(name, _)| name)
        .collect();
    if d.done && !running.is_empty() {
        for name in running {
            if !d.stop.iter().any(|(n, _)| n == name) {
                d.stop.push((name.clone(), Stop::Cancelled));
            }
        }
        d.done = false;
        d.start.clear();
        d.results.clear();
    }
    if !d.done && d.condition.status != "Unknown" {
        d.condition = Condition::succeeded(
            "Unknown",
            reason::STOPPING,
            "the PipelineRun is stopping: waiting for its TaskRuns to stop",
        );
    }
    d
}

/// What the run's state adds up to, before waiting for what still runs.
/// Why the run fails before any task can start: its reason and message.
type Failure = (&'static str, String);

/// Where the run stands against its timeouts.
#[derive(Clone, Copy, Debug)]
struct Clock {
    elapsed: SignedDuration,
    finally_elapsed: Option<SignedDuration>,
    pipeline_timed_out: bool,
    tasks_timed_out: bool,
    finally_timed_out: bool,
}

impl Clock {
    fn of(f: &PipelineRunFacts<'_>) -> Clock {
        let elapsed = f.now.duration_since(f.started_at);
        let over = |limit: Option<SignedDuration>, since: SignedDuration| {
            limit.is_some_and(|l| !l.is_zero() && since > l)
        };
        let finally_elapsed = f.finally_started_at.map(|s| f.now.duration_since(s));
        Clock {
            elapsed,
            finally_elapsed,
            pipeline_timed_out: over(f.timeouts.pipeline, elapsed),
            tasks_timed_out: over(f.timeouts.tasks, elapsed),
            finally_timed_out: finally_elapsed.is_some_and(|e| over(f.timeouts.finally, e)),
        }
    }

    /// What is left of the run's and the tasks' budgets for a task starting now.
    fn task_budget(&self, f: &PipelineRunFacts<'_>) -> Option<SignedDuration> {
        [f.timeouts.pipeline, f.timeouts.tasks]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_zero())
            .map(|t| t - self.elapsed)
            .min()
    }

    /// What is left of the run's and the finally tasks' budgets.
    fn finally_budget(&self, f: &PipelineRunFacts<'_>) -> Option<SignedDuration> {
        [
            f.timeouts.pipeline.map(|t| t - self.elapsed),
            f.timeouts
                .finally
                .filter(|t| !t.is_zero())
                .map(|t| t - self.finally_elapsed.unwrap_or_default()),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

fn verdict(f: &PipelineRunFacts<'_>) -> Decision {
    if f.pending && f.children.is_empty() {
        return Decision {
            condition: Condition::succeeded(
                "Unknown",
                reason::PENDING,
                format!("PipelineRun {:?} is pending", f.name),
            ),
            ..Decision::default()
        };
    }
    let params = match effective_params(&f.spec.params, f.params) {
        Ok(p) => p,
        Err(e) => return failed(f, reason::PARAMETER_MISSING, e.to_string()),
    };
    let dag = match Dag::build(
        &f.spec.tasks,
        &FieldPath::root().field("spec").field("tasks"),
    ) {
        Ok(dag) => dag,
        Err(errors) => {
            let message = errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            return failed(f, reason::INVALID_GRAPH, message);
        }
    };
    let clock = Clock::of(f);
    let ctx = Context { f, params: &params };
    let mut d = Decision::default();
    let states = match dag_states(&ctx, &dag, &clock, &mut d) {
        Ok(s) => s,
        Err((why, message)) => return failed(f, why, message),
    };
    stop_running(f, &clock, &mut d);
    let final_states = match finally_states(&ctx, &states, &clock, &mut d) {
        Ok(s) => s,
        Err((why, message)) => return failed(f, why, message),
    };
    let count = Counts::of(f, &states, &final_states);
    let nothing_running = d.start.is_empty()
        && states
            .iter()
            .chain(&final_states)
            .all(|s| !matches!(s, State::Child(Outcome::Running)));
    let dag_done = states.iter().all(State::is_done);
    let finally_done = final_states.iter().all(State::is_done);
    let (condition, done) = condition(f, &clock, &count, nothing_running, dag_done && finally_done);
    d.condition = condition;
    d.done = done;
    if done {
        d.results = ctx.pipeline_results();
    }
    d
}

/// The state of each task of the DAG, in the order of `spec.tasks`; the ones that start
/// now and the ones skipped go into `d`. `Err` is the run failing.
fn dag_states<'f>(
    ctx: &Context<'_, 'f>,
    dag: &Dag,
    clock: &Clock,
    d: &mut Decision,
) -> Result<Vec<State<'f>>, Failure> {
    let f = ctx.f;
    let tasks = &f.spec.tasks;
    let hard_cancel = f.cancel == Some(Cancel::Cancelled);
    let stopping = tasks.iter().any(|t| {
        f.children.get(&t.name).is_some_and(|c| {
            matches!(
                c.outcome,
                Outcome::Failed { .. } | Outcome::Cancelled { .. }
            ) && t.on_error != Some(OnError::Continue)
        })
    });
    let mut states: Vec<State<'f>> = vec![State::Pending; tasks.len()];
    for i in topological(dag) {
        let task = &tasks[i];
        if let Some(child) = f.children.get(&task.name) {
            states[i] = State::Child(&child.outcome);
            continue;
        }
        let parents_done = dag.parents(i).all(|p| states[p].is_done());
        let parent_skipped = dag
            .parents(i)
            .any(|p| matches!(states[p], State::Skipped(r) if r != skip_reason::WHEN_EXPRESSIONS));
        let state = if hard_cancel {
            State::Pending
        } else if stopping {
            State::Skipped(skip_reason::STOPPING)
        } else if f.cancel == Some(Cancel::CancelledRunFinally) {
            State::Skipped(skip_reason::GRACEFULLY_CANCELLED)
        } else if f.cancel == Some(Cancel::StoppedRunFinally) {
            State::Skipped(skip_reason::GRACEFULLY_STOPPED)
        } else if parent_skipped {
            State::Skipped(skip_reason::PARENT_SKIPPED)
        } else if !parents_done {
            State::Pending
        } else {
            match ctx.missing_results(task) {
                Err(message) => {
                    return Err((reason::INVALID_TASK_RESULT_REFERENCE, message));
                }
                Ok(true) => State::Skipped(skip_reason::MISSING_RESULTS),
                Ok(false) if clock.pipeline_timed_out => {
                    State::Skipped(skip_reason::PIPELINE_TIMED_OUT)
                }
                Ok(false) if clock.tasks_timed_out => State::Skipped(skip_reason::TASKS_TIMED_OUT),
                Ok(false) => State::Ready,
            }
        };
        states[i] = match state {
            State::Ready => match ctx.prepare(task, None) {
                Err(failure) => return Err(failure),
                Ok(Prepared::Skip) => State::Skipped(skip_reason::WHEN_EXPRESSIONS),
                Ok(Prepared::EmptyMatrix) => State::Skipped(skip_reason::EMPTY_ARRAY_IN_MATRIX),
                Ok(Prepared::Start(task)) => {
                    d.start.push(start(*task, clock.task_budget(f), false));
                    State::Ready
                }
            },
            other => other,
        };
        if let State::Skipped(reason) = states[i] {
            d.skipped.push(skipped(task, reason));
        }
    }
    Ok(states)
}

/// Starting `task` (a finally task or not) with what is left of its `budget`.
fn start(task: PipelineTask, budget: Option<SignedDuration>, finally: bool) -> Start {
    Start {
        timeout: cut(task.timeout.as_ref(), budget),
        combinations: task.matrix.as_ref().map(fan_out).unwrap_or_default(),
        task,
        finally,
    }
}

/// The running tasks a cancel or a timeout stops.
fn stop_running(f: &PipelineRunFacts<'_>, clock: &Clock, d: &mut Decision) {
    let running = |name: &str| {
        f.children
            .get(name)
            .is_some_and(|c| c.outcome == Outcome::Running)
    };
    let why = if matches!(
        f.cancel,
        Some(Cancel::Cancelled | Cancel::CancelledRunFinally)
    ) {
        Stop::Cancelled
    } else if clock.pipeline_timed_out || clock.tasks_timed_out {
        Stop::TimedOut
    } else {
        return;
    };
    for t in f.spec.tasks.iter().filter(|t| running(&t.name)) {
        d.stop.push((t.name.clone(), why));
    }
}

/// The finally tasks' states, once every task of the DAG is done (and unless cancelled
/// outright); those that start now, stop or are skipped go into `d`.
fn finally_states<'f>(
    ctx: &Context<'_, 'f>,
    states: &[State<'f>],
    clock: &Clock,
    d: &mut Decision,
) -> Result<Vec<State<'f>>, Failure> {
    let f = ctx.f;
    let mut final_states: Vec<State<'f>> = vec![State::Pending; f.spec.finally.len()];
    let dag_done = states.iter().all(State::is_done);
    if !dag_done || f.cancel == Some(Cancel::Cancelled) || f.spec.finally.is_empty() {
        return Ok(final_states);
    }
    let statuses = ctx.task_statuses(states);
    d.finally_starts = f.finally_started_at.is_none();
    for (j, task) in f.spec.finally.iter().enumerate() {
        if let Some(child) = f.children.get(&task.name) {
            final_states[j] = State::Child(&child.outcome);
            if child.outcome == Outcome::Running
                && (clock.pipeline_timed_out || clock.finally_timed_out)
            {
                d.stop.push((task.name.clone(), Stop::TimedOut));
            }
            continue;
        }
        let state = match ctx.missing_results(task) {
            Err(message) => return Err((reason::INVALID_TASK_RESULT_REFERENCE, message)),
            Ok(true) => State::Skipped(skip_reason::MISSING_RESULTS),
            Ok(false) => match ctx.prepare(task, Some(&statuses)) {
                Err(failure) => return Err(failure),
                Ok(Prepared::Skip) => State::Skipped(skip_reason::WHEN_EXPRESSIONS),
                Ok(Prepared::EmptyMatrix) => State::Skipped(skip_reason::EMPTY_ARRAY_IN_MATRIX),
                Ok(Prepared::Start(_)) if clock.pipeline_timed_out => {
                    State::Skipped(skip_reason::PIPELINE_TIMED_OUT)
                }
                Ok(Prepared::Start(_)) if clock.finally_timed_out => {
                    State::Skipped(skip_reason::FINALLY_TIMED_OUT)
                }
                Ok(Prepared::Start(task)) => {
                    d.start.push(start(*task, clock.finally_budget(f), true));
                    State::Ready
                }
            },
        };
        if let State::Skipped(reason) = state {
            d.skipped.push(skipped(task, reason));
        }
        final_states[j] = state;
    }
    Ok(final_states)
}

/// The run's condition, and whether it is done, from its tasks' counts; `all_done` is
/// every task and finally task done.
fn condition(
    f: &PipelineRunFacts<'_>,
    clock: &Clock,
    count: &Counts,
    nothing_running: bool,
    all_done: bool,
) -> (Condition, bool) {
    let duration =
        |t: Option<SignedDuration>| v1::Duration::from(t.unwrap_or_default().unsigned_abs()).0;
    let (status, reason, message, done) = if clock.pipeline_timed_out {
        (
            "False",
            reason::TIMED_OUT,
            format!(
                "PipelineRun {:?} failed to finish within {:?}",
                f.name,
                duration(f.timeouts.pipeline)
            ),
            nothing_running,
        )
    } else if clock.tasks_timed_out && (f.spec.finally.is_empty() || all_done) {
        (
            "False",
            reason::TIMED_OUT,
            format!(
                "PipelineRun {:?} failed due to tasks failed to finish within {:?}",
                f.name,
                duration(f.timeouts.tasks)
            ),
            nothing_running,
        )
    } else if f.cancel == Some(Cancel::Cancelled) {
        (
            "False",
            reason::CANCELLED,
            format!("PipelineRun {:?} was cancelled", f.name),
            nothing_running,
        )
    } else if count.incomplete == 0 {
        let (status, reason, message) = count.ended(f);
        (status, reason, message, true)
    } else {
        let finally_done = all_done || f.spec.finally.is_empty();
        let why = if clock.tasks_timed_out && !f.spec.finally.is_empty() {
            reason::TIMED_OUT_RUNNING_FINALLY
        } else if f.cancel == Some(Cancel::CancelledRunFinally) {
            reason::CANCELLED_RUNNING_FINALLY
        } else if f.cancel == Some(Cancel::StoppedRunFinally) {
            reason::STOPPED_RUNNING_FINALLY
        } else if count.cancelled > 0 || (count.failed > 0 && finally_done) {
            reason::STOPPING
        } else {
            reason::RUNNING
        };
        (
            "Unknown",
            why,
            format!(
                "Tasks Completed: {} (Failed: {}, Cancelled {}), Incomplete: {}, Skipped: {}",
                count.completed(),
                count.failed,
                count.cancelled,
                count.incomplete,
                count.skipped
            ),
            false,
        )
    };
    (Condition::succeeded(status, reason, message), done)
}

impl Counts {
    /// Counting as Tekton counts for its condition message.
    fn of(f: &PipelineRunFacts<'_>, states: &[State<'_>], final_states: &[State<'_>]) -> Counts {
        let mut count = Counts::default();
        let all = f
            .spec
            .tasks
            .iter()
            .zip(states)
            .chain(f.spec.finally.iter().zip(final_states));
        for (task, state) in all {
            match state {
                State::Child(Outcome::Succeeded) => count.succeeded += 1,
                State::Child(Outcome::Cancelled { timed_out: true }) => count.failed += 1,
                State::Child(Outcome::Cancelled { timed_out: false }) => count.cancelled += 1,
                State::Child(Outcome::Failed { .. })
                    if task.on_error == Some(OnError::Continue) =>
                {
                    count.ignored += 1
                }
                State::Child(Outcome::Failed { .. }) => count.failed += 1,
                State::Skipped(r) if TIMEOUT_SKIPS.contains(r) => {
                    count.skipped += 1;
                    count.skipped_for_timeout += 1;
                }
                State::Skipped(_) => count.skipped += 1,
                State::Child(Outcome::Running) | State::Ready | State::Pending => {
                    count.incomplete += 1
                }
            }
        }
        count
    }

    /// The condition's status, reason and message of a run with nothing incomplete.
    fn ended(&self, f: &PipelineRunFacts<'_>) -> (&'static str, &'static str, String) {
        let mut message = if self.ignored > 0 {
            format!(
                "Tasks Completed: {} (Failed: {} (Ignored: {}), Cancelled {}), Skipped: {}",
                self.completed(),
                self.failed + self.ignored,
                self.ignored,
                self.cancelled,
                self.skipped
            )
        } else {
            format!(
                "Tasks Completed: {} (Failed: {}, Cancelled {}), Skipped: {}",
                self.completed(),
                self.failed,
                self.cancelled,
                self.skipped
            )
        };
        let (status, reason) = if self.failed > 0 || self.skipped_for_timeout > 0 {
            ("False", reason::FAILED)
        } else if matches!(
            f.cancel,
            Some(Cancel::CancelledRunFinally | Cancel::StoppedRunFinally)
        ) {
            message = format!("PipelineRun {:?} was cancelled", f.name);
            ("False", reason::CANCELLED)
        } else if self.cancelled > 0 {
            ("False", reason::CANCELLED)
        } else if self.skipped > 0 {
            ("True", reason::COMPLETED)
        } else {
            ("True", reason::SUCCEEDED)
        };
        (status, reason, message)
    }
}

#[derive(Debug, Default)]
struct Counts {
    succeeded: usize,
    failed: usize,
    ignored: usize,
    cancelled: usize,
    skipped: usize,
    skipped_for_timeout: usize,
    incomplete: usize,
}

impl Counts {
    fn completed(&self) -> usize {
        self.succeeded + self.failed + self.cancelled + self.ignored
    }
}

/// The run fails before any task can start.
fn failed(f: &PipelineRunFacts<'_>, reason: &str, message: String) -> Decision {
    let message = format!("PipelineRun {}/{}: {message}", f.namespace, f.name);
    Decision {
        start: Vec::new(),
        stop: f
            .children
            .iter()
            .filter(|(_, c)| c.outcome == Outcome::Running)
            .map(|(name, _)| (name.clone(), Stop::Cancelled))
            .collect(),
        skipped: Vec::new(),
        condition: Condition::succeeded("False", reason, message),
        results: Vec::new(),
        finally_starts: false,
        done: true,
    }
}

fn skipped(task: &PipelineTask, reason: &'static str) -> SkippedTask {
    SkippedTask {
        name: task.name.clone(),
        reason: reason.into(),
        when_expressions: if reason == skip_reason::WHEN_EXPRESSIONS {
            task.when.clone()
        } else {
            Vec::new()
        },
    }
}

/// The shorter of a task's own timeout and the time the run has left.
fn cut(own: Option<&v1::Duration>, budget: Option<SignedDuration>) -> Option<SignedDuration> {
    let own = own
        .and_then(|d| v1::parse_go_duration(&d.0).ok())
        .and_then(|d| SignedDuration::try_from(d).ok())
        .filter(|d| !d.is_zero());
    let budget = budget.map(|b| b.max(SignedDuration::ZERO));
    match (own, budget) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Task indices with every task after all the tasks it depends on (Kahn's algorithm,
/// pipeline order among tasks that are ready together).
fn topological(dag: &Dag) -> Vec<usize> {
    let mut waiting: Vec<usize> = (0..dag.len()).map(|i| dag.parents(i).count()).collect();
    let mut queue: std::collections::VecDeque<usize> =
        (0..dag.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(dag.len());
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for c in dag.children(i) {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                queue.push_back(c);
            }
        }
    }
    order
}

enum Prepared {
    Start(Box<PipelineTask>),
    Skip,
    /// A matrix param is an empty array: nothing to fan out.
    EmptyMatrix,
}

struct Context<'a, 'f> {
    f: &'a PipelineRunFacts<'f>,
    params: &'a BTreeMap<String, ParamValue>,
}

/// `$(tasks.<t>.status)`, `$(tasks.<t>.reason)` and `$(tasks.status)` for finally tasks.
struct Statuses {
    tasks: BTreeMap<String, (String, String)>,
    aggregate: String,
}

impl Context<'_, '_> {
    /// Whether `task` refers to results that will never exist (their task was skipped or
    /// failed); an error when a task that succeeded did not produce one.
    fn missing_results(&self, task: &PipelineTask) -> Result<bool, String> {
        let mut missing = false;
        let mut error = None;
        for_each_string(task, &mut |text| {
            for o in vars::references(text) {
                if let Reference::TaskResult {
                    task: t, result, ..
                } = &o.reference
                {
                    match self.f.children.get(t) {
                        Some(c) if c.results.contains_key(result) => {}
                        Some(Child {
                            outcome: Outcome::Succeeded,
                            ..
                        }) => {
                            error.get_or_insert(format!(
                                "Could not find result with name {result} for task {t}"
                            ));
                        }
                        _ => missing = true,
                    }
                }
            }
        });
        match error {
            Some(e) => Err(e),
            None => Ok(missing),
        }
    }

    fn task_statuses(&self, states: &[State<'_>]) -> Statuses {
        let mut tasks = BTreeMap::new();
        let mut aggregate = "Succeeded";
        for (task, state) in self.f.spec.tasks.iter().zip(states) {
            let (status, reason) = match state {
                State::Child(Outcome::Succeeded) => ("Succeeded", "Succeeded".to_owned()),
                State::Child(o @ (Outcome::Failed { .. } | Outcome::Cancelled { .. })) => {
                    aggregate = "Failed";
                    ("Failed", o.reason().to_owned())
                }
                State::Skipped(_) => {
                    if aggregate == "Succeeded" {
                        aggregate = "Completed";
                    }
                    ("None", String::new())
                }
                _ => ("None", String::new()),
            };
            tasks.insert(task.name.clone(), (status.to_owned(), reason));
        }
        Statuses {
            tasks,
            aggregate: aggregate.to_owned(),
        }
    }

    fn resolve(&self, reference: &Reference, statuses: Option<&Statuses>) -> Option<Resolved> {
        match reference {
            Reference::Param { name, selector } => select(self.params.get(name)?, selector),
            Reference::TaskResult {
                task,
                result,
                selector,
            } => select(self.f.children.get(task)?.results.get(result)?, selector),
            Reference::TaskArtifact { task, io, name } => {
                let child = self.f.children.get(task)?;
                let values = child
                    .artifacts
                    .as_ref()?
                    .values_json(*io, name.as_deref())?;
                Some(Resolved::Text(values))
            }
            Reference::TaskStatus { task } => {
                Some(Resolved::Text(statuses?.tasks.get(task)?.0.clone()))
            }
            Reference::TaskReason { task } => {
                Some(Resolved::Text(statuses?.tasks.get(task)?.1.clone()))
            }
            Reference::TasksStatus => Some(Resolved::Text(statuses?.aggregate.clone())),
            Reference::MatrixLength { task, result } => {
                let child = self.f.children.get(task)?;
                let n = match result {
                    None => child.runs,
                    Some(r) => match child.results.get(r) {
                        Some(ParamValue::Array(a)) => a.len(),
                        Some(_) => 1,
                        None => 0,
                    },
                };
                Some(Resolved::Text(n.to_string()))
            }
            Reference::Context { object, field } => {
                let value = match (object.as_str(), field.as_str()) {
                    ("pipelineRun", "name") => self.f.name,
                    ("pipelineRun", "namespace") => self.f.namespace,
                    ("pipelineRun", "uid") => self.f.uid,
                    ("pipeline", "name") => self.f.pipeline_name,
                    _ => return None,
                };
                Some(Resolved::Text(value.to_owned()))
            }
            _ => None,
        }
    }

    /// `task` with params, results and context substituted, unless its when
    /// expressions keep it from running.
    fn prepare(
        &self,
        task: &PipelineTask,
        statuses: Option<&Statuses>,
    ) -> Result<Prepared, (&'static str, String)> {
        let retries = task.retries.unwrap_or(0).max(0).to_string();
        let mut lookup = |r: &Reference| match r {
            Reference::Context { object, field }
                if object == "pipelineTask" && field == "retries" =>
            {
                Some(Resolved::Text(retries.clone()))
            }
            _ => self.resolve(r, statuses),
        };
        let task = substitute_task(task, &mut lookup).map_err(|e| {
            (
                reason::INVALID_PARAM_VALUE,
                format!("pipeline task {:?}: {e}", task.name),
            )
        })?;
        let empty = task.matrix.as_ref().is_some_and(|m| {
            m.params
                .iter()
                .any(|p| matches!(&p.value, ParamValue::Array(a) if a.is_empty()))
        });
        match when::allows(&task.when) {
            Ok(true) if empty => Ok(Prepared::EmptyMatrix),
            Ok(true) => Ok(Prepared::Start(Box::new(task))),
            Ok(false) => Ok(Prepared::Skip),
            Err(e) => Err((
                reason::CEL_EVALUATION_FAILED,
                format!("pipeline task {:?}: {e}", task.name),
            )),
        }
    }

    /// The pipeline's results whose references all resolve.
    fn pipeline_results(&self) -> Vec<PipelineRunResult> {
        let mut lookup = |r: &Reference| self.resolve(r, None);
        self.f
            .spec
            .results
            .iter()
            .filter_map(|r| {
                let value = vars::substitute_param_value(&r.value, &mut lookup).ok()?;
                let unresolved = value
                    .strings()
                    .iter()
                    .any(|s| !vars::references(s).is_empty());
                (!unresolved).then(|| PipelineRunResult {
                    name: r.name.clone(),
                    value,
                })
            })
            .collect()
    }
}

type Lookup<'l> = dyn FnMut(&Reference) -> Option<Resolved> + 'l;

fn substitute_task(
    task: &PipelineTask,
    lookup: &mut Lookup<'_>,
) -> Result<PipelineTask, SubstituteError> {
    let mut out = task.clone();
    for p in &mut out.params {
        p.value = vars::substitute_param_value(&p.value, lookup)?;
    }
    for w in &mut out.when {
        if let Some(input) = &w.input {
            w.input = Some(vars::substitute(input, lookup)?);
        }
        w.values = vars::substitute_list(&w.values, lookup)?;
        if let Some(cel) = &w.cel {
            w.cel = Some(vars::substitute(cel, lookup)?);
        }
    }
    if let Some(name) = &out.display_name {
        out.display_name = Some(vars::substitute(name, lookup)?);
    }
    for w in &mut out.workspaces {
        if let Some(sub) = &w.sub_path {
            w.sub_path = Some(vars::substitute(sub, lookup)?);
        }
    }
    if let Some(embedded) = &mut out.task_spec {
        substitute_embedded(&mut embedded.task, lookup)?;
    }
    if let Some(m) = &mut out.matrix {
        for p in m
            .params
            .iter_mut()
            .chain(m.include.iter_mut().flat_map(|i| i.params.iter_mut()))
        {
            p.value = vars::substitute_param_value(&p.value, lookup)?;
        }
    }
    Ok(out)
}

/// Tekton's matrix fan-out: the combinations of the matrix params (the first param's
/// values vary fastest), each `include` entry added to the combinations it matches or
/// appended as a new one; each combination's params sorted by name.
pub fn fan_out(m: &Matrix) -> Vec<Vec<v1::Param>> {
    type Combination = BTreeMap<String, String>;
    let text = |v: &ParamValue| v.as_str().unwrap_or_default().to_owned();
    let includes: Vec<Combination> = m
        .include
        .iter()
        .map(|i| {
            i.params
                .iter()
                .map(|p| (p.name.clone(), text(&p.value)))
                .collect()
        })
        .collect();
    let mut combinations: Vec<Combination> = Vec::new();
    for p in &m.params {
        let values = p.value.strings();
        combinations = if combinations.is_empty() {
            values
                .iter()
                .map(|v| Combination::from([(p.name.clone(), (*v).to_owned())]))
                .collect()
        } else {
            values
                .iter()
                .flat_map(|v| {
                    combinations.iter().map(move |c| {
                        let mut c = c.clone();
                        c.insert(p.name.clone(), (*v).to_owned());
                        c
                    })
                })
                .collect()
        };
    }
    if m.params.is_empty() {
        combinations = includes;
    } else {
        for c in &mut combinations {
            for inc in &includes {
                let matches = inc
                    .iter()
                    .all(|(k, v)| c.get(k).is_none_or(|have| have == v));
                if matches {
                    c.extend(inc.clone());
                }
            }
        }
        for inc in includes {
            let shares_a_value = combinations
                .iter()
                .any(|c| inc.iter().any(|(k, v)| c.get(k) == Some(v)));
            if !inc.is_empty() && !shares_a_value {
                combinations.push(inc);
            }
        }
    }
    combinations
        .into_iter()
        .map(|c| {
            c.into_iter()
                .map(|(name, value)| v1::Param {
                    name,
                    value: ParamValue::String(value),
                })
                .collect()
        })
        .collect()
}

/// The children of a PipelineRun, each named by its pipeline task, as [`decide`] takes
/// them: one per pipeline task, a matrixed task's children (in child order) gathered.
pub fn by_task(
    spec: &PipelineSpec,
    children: impl IntoIterator<Item = (String, Child)>,
) -> BTreeMap<String, Child> {
    let mut grouped: BTreeMap<String, Vec<Child>> = BTreeMap::new();
    for (task, child) in children {
        grouped.entry(task).or_default().push(child);
    }
    let matrixed = |task: &str| {
        spec.tasks
            .iter()
            .chain(&spec.finally)
            .any(|t| t.name == task && t.matrix.is_some())
    };
    grouped
        .into_iter()
        .map(|(task, mut children)| {
            let child = if matrixed(&task) {
                gather(&children)
            } else {
                children.remove(0)
            };
            (task, child)
        })
        .collect()
}

/// What a matrixed pipeline task's children add up to, as the other tasks see it: running
/// while any runs; succeeded when all did; else cancelled or failed as the first that
/// was; each string result gathered into an array in child order.
pub fn gather(children: &[Child]) -> Child {
    let outcome = if children.iter().any(|c| c.outcome == Outcome::Running) {
        Outcome::Running
    } else if let Some(c) = children
        .iter()
        .find(|c| matches!(c.outcome, Outcome::Failed { .. }))
    {
        c.outcome.clone()
    } else if let Some(c) = children
        .iter()
        .find(|c| matches!(c.outcome, Outcome::Cancelled { .. }))
    {
        c.outcome.clone()
    } else {
        Outcome::Succeeded
    };
    let mut results: BTreeMap<String, ParamValue> = BTreeMap::new();
    for c in children {
        for (name, value) in &c.results {
            if let ParamValue::String(s) = value {
                match results
                    .entry(name.clone())
                    .or_insert_with(|| ParamValue::Array(Vec::new()))
                {
                    ParamValue::Array(a) => a.push(s.clone()),
                    _ => unreachable!("only arrays are inserted"),
                }
            }
        }
    }
    let mut artifacts: Option<v1::Artifacts> = None;
    for a in children.iter().filter_map(|c| c.artifacts.as_ref()) {
        artifacts.get_or_insert_with(Default::default).merge(a);
    }
    Child {
        outcome,
        results,
        runs: children.len(),
        artifacts,
    }
}

/// An embedded taskSpec sees the PipelineRun's context, the results and artifacts of the
/// tasks that have them, and, propagated, every Pipeline param it does not declare
/// itself (Tekton's PropagateResults, PropagateArtifacts); everything else is the
/// TaskRun's to substitute.
fn substitute_embedded(
    spec: &mut TaskSpec,
    lookup: &mut Lookup<'_>,
) -> Result<(), SubstituteError> {
    let declared: Vec<String> = spec.params.iter().map(|p| p.name.clone()).collect();
    let mut outer = |r: &Reference| match r {
        Reference::Context { object, .. } if object == "pipelineRun" || object == "pipeline" => {
            lookup(r)
        }
        Reference::Param { name, .. } if !declared.contains(name) => lookup(r),
        Reference::TaskResult { .. } | Reference::TaskArtifact { .. } => lookup(r),
        _ => None,
    };
    let misfit = |field: String, e: &dyn std::fmt::Display| SubstituteError::Misfit {
        field,
        message: e.to_string(),
    };
    let mut tree = serde_json::to_value(&*spec).map_err(|e| misfit("taskSpec".into(), &e))?;
    vars::substitute_tree(&mut tree, &mut outer).map_err(|(_, e)| e)?;
    *spec = serde_path_to_error::deserialize(tree)
        .map_err(|e| misfit(format!("taskSpec.{}", e.path()), e.inner()))?;
    Ok(())
}

/// Every string of a pipeline task that may hold references to other tasks' results.
fn for_each_string(task: &PipelineTask, f: &mut dyn FnMut(&str)) {
    for p in &task.params {
        for s in p.value.strings() {
            f(s);
        }
    }
    if let Some(m) = &task.matrix {
        for p in m
            .params
            .iter()
            .chain(m.include.iter().flat_map(|i| &i.params))
        {
            for s in p.value.strings() {
                f(s);
            }
        }
    }
    for w in &task.when {
        if let Some(input) = &w.input {
            f(input);
        }
        for v in &w.values {
            f(v);
        }
        if let Some(cel) = &w.cel {
            f(cel);
        }
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
