//! `tkt run FILE...`: runs a Pipeline or Task on this machine, no cluster needed.

mod executor;
mod input;
mod names;
mod pod;

mod view;
mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::SignedDuration;
use serde_json::json;
use tektite_api::v1::{self, ParamValue, PipelineSpec, TaskRun, TaskSpec};

use executor::{Executor, Finished, Settings, Target};
use input::{Overrides, RunObject};
use view::View;
use volumes::Sources;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// YAML files with Tasks, Pipelines, ConfigMaps, Secrets and at most one TaskRun or
    /// PipelineRun. With no run among them, the single Pipeline (or Task) is run.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A param of the run: NAME=VALUE (arrays as a,b,c; objects as key:value,key2:value2).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Binds a workspace to a directory on this machine (kept after the run, so caches
    /// persist across runs).
    #[arg(short = 'w', long = "workspace", value_name = "NAME=PATH")]
    workspaces: Vec<String>,
    /// text: logs and a summary; json or yaml: only the final PipelineRun and TaskRuns on
    /// stdout, as a List in tekton.dev/v1 shape (logs go to stderr).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Replaces the run's own timeout (PipelineRun timeouts.pipeline, TaskRun timeout),
    /// e.g. 90s, 10m, 1h30m; 0 for none.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<SignedDuration>,
    /// Keep the run's state directory even when it succeeds.
    #[arg(long)]
    keep: bool,
    /// At most this many TaskRuns at once (default: 8 per CPU).
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Text,
    Json,
    Yaml,
}

fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let d = v1::parse_go_duration(text).map_err(|e| e.to_string())?;
    SignedDuration::try_from(d).map_err(|e| e.to_string())
}

/// Exit codes.
const FAILED: u8 = 1;
const INVALID: u8 = 2;

pub fn run(args: &Args) -> ExitCode {
    let machine = args.output != Output::Text;
    let view = View::new(machine);
    let interrupts = Arc::new(AtomicUsize::new(0));
    if let Err(e) = watch_signals(&interrupts) {
        view.note(&format!(
            "cannot handle Ctrl-C ({e}); it will stop tkt without cleanup"
        ));
    }
    // Several runs in the files: each is run in turn, as they come, and reported; all of
    // them are checked before the first one starts.
    let runs = input::count_runs(&args.files);
    for k in (0..runs).filter(|_| runs > 1) {
        if let Err(invalid) = input::plan(&args.files, &overrides(args, Some(k))) {
            return refuse(&invalid);
        }
    }
    let mut finished = Vec::new();
    for k in 0..runs.max(1) {
        let only = (runs > 1).then_some(k);
        if let Some(k) = only {
            view.note(&format!("run {} of {runs}", k + 1));
        }
        match run_one(args, only, &view, &interrupts) {
            Ok(f) => finished.push(f),
            Err(code) => return code,
        }
        if interrupts.load(Ordering::SeqCst) > 0 {
            break;
        }
    }
    if args.output != Output::Text {
        let items: Vec<serde_json::Value> = finished
            .iter()
            .flat_map(|(f, _)| list(f)["items"].as_array().cloned().unwrap_or_default())
            .collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items});
        let text = if args.output == Output::Json {
            serde_json::to_string_pretty(&list)
                .map(|s| s + "\n")
                .map_err(|e| e.to_string())
        } else {
            serde_saphyr::to_string(&list).map_err(|e| e.to_string())
        };
        match text {
            Ok(t) => {
                let _ = std::io::stdout().lock().write_all(t.as_bytes());
            }
            Err(e) => view.note(&format!("cannot print the result: {e}")),
        }
    }
    let interrupted = interrupts.load(Ordering::SeqCst) > 0;
    for (f, state_dir) in &finished {
        if f.succeeded && !args.keep && !interrupted {
            if let Err(e) = std::fs::remove_dir_all(state_dir) {
                view.note(&format!("cannot remove {}: {e}", state_dir.display()));
            }
        } else {
            view.note(&format!("state kept in {}", state_dir.display()));
        }
    }
    if finished.iter().all(|(f, _)| f.succeeded) && !interrupted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

fn overrides(args: &Args, only_run: Option<usize>) -> Overrides<'_> {
    Overrides {
        params: &args.params,
        workspaces: &args.workspaces,
        only_run,
    }
}

/// Prints why nothing runs.
fn refuse(invalid: &input::Invalid) -> ExitCode {
    let mut err = std::io::stderr().lock();
    for line in &invalid.lines {
        let _ = writeln!(err, "{line}");
    }
    let _ = writeln!(
        err,
        "tkt run: {} problem(s); nothing was run",
        invalid.lines.len()
    );
    ExitCode::from(INVALID)
}

/// Plans and runs one run of the files (the `only`-th, when they hold several); its
/// result and state directory, or the exit code when it could not run.
fn run_one(
    args: &Args,
    only: Option<usize>,
    view: &View,
    interrupts: &Arc<AtomicUsize>,
) -> Result<(Finished, PathBuf), ExitCode> {
    let plan = match input::plan(&args.files, &overrides(args, only)) {
        Ok(plan) => plan,
        Err(invalid) => return Err(refuse(&invalid)),
    };

    let (target, mut meta_name, images) = match plan.run {
        RunObject::Pipeline {
            run,
            spec,
            pipeline_name,
        } => {
            let mut images = BTreeSet::new();
            pipeline_images(&spec, &plan.tasks, &plan.pipelines, 0, &mut images);
            let name = run.metadata.name.clone();
            let generate = run.metadata.generate_name.clone();
            (
                Target::Pipeline {
                    run,
                    spec,
                    pipeline_name,
                    tasks: plan.tasks,
                    pipelines: plan.pipelines,
                },
                name.or_else(|| generate.map(|g| names::generated(&g))),
                images,
            )
        }
        RunObject::Task {
            run,
            spec,
            task_name,
        } => {
            let mut images = BTreeSet::new();
            collect_images(&spec, &mut images);
            let name = run.metadata.name.clone();
            let generate = run.metadata.generate_name.clone();
            (
                Target::Task {
                    run,
                    spec,
                    task_name,
                },
                name.or_else(|| generate.map(|g| names::generated(&g))),
                images,
            )
        }
    };
    let name = meta_name.take().unwrap_or_else(|| names::generated("run-"));
    if !images.is_empty() {
        view.note(&format!(
            "images are not pulled here: steps run with this machine's own tools ({})",
            images.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if !plan.defaulted_workspaces.is_empty() {
        view.note(&format!(
            "workspace(s) {} not bound: each gets a fresh directory shared by all tasks (bind one with -w NAME=PATH)",
            plan.defaulted_workspaces.join(", ")
        ));
    }

    let state_dir = state_root().join(&name);
    let settings = Settings {
        timeout: args.timeout,
        keep: args.keep,
        state_dir: state_dir.clone(),
        view: view.clone(),
        interrupts: interrupts.clone(),
        parallel: args
            .parallel
            .unwrap_or_else(|| 8 * std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let sources = Sources {
        config_maps: plan.config_maps,
        secrets: plan.secrets,
        step_actions: plan.step_actions,
        service_accounts: plan.service_accounts,
        host: plan.host_workspaces,
    };
    let finished = match Executor::new(target, sources, settings, name).and_then(Executor::run) {
        Ok(f) => f,
        Err(e) => {
            view.note(&format!("{e}"));
            view.note(&format!("state kept in {}", state_dir.display()));
            return Err(ExitCode::from(FAILED));
        }
    };

    if args.output == Output::Text {
        view.summary(&summary(&finished));
    }
    Ok((finished, state_dir))
}

/// `$XDG_STATE_HOME/tektite/runs`, else `~/.local/state/tektite/runs`.
fn state_root() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("tektite").join("runs")
}

fn watch_signals(count: &Arc<AtomicUsize>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let count = count.clone();
    std::thread::spawn(move || {
        for s in signals.forever() {
            // SIGTERM and SIGHUP stop at once, as a second Ctrl-C does.
            let add = if s == SIGINT { 1 } else { 2 };
            count.fetch_add(add, Ordering::SeqCst);
        }
    });
    Ok(())
}

/// The images of a Pipeline's tasks, and of the Pipelines its tasks run.
fn pipeline_images(
    spec: &PipelineSpec,
    tasks: &BTreeMap<String, TaskSpec>,
    pipelines: &BTreeMap<String, PipelineSpec>,
    depth: usize,
    out: &mut BTreeSet<String>,
) {
    for t in spec.tasks.iter().chain(&spec.finally) {
        if let Some(e) = &t.task_spec {
            collect_images(&e.task, out);
        } else if let Some(s) = t
            .task_ref
            .as_ref()
            .and_then(|r| r.name.as_ref())
            .and_then(|n| tasks.get(n))
        {
            collect_images(s, out);
        }
        let child = t.pipeline_spec.as_deref().or_else(|| {
            let name = t.pipeline_ref.as_ref()?.name.as_ref()?;
            pipelines.get(name)
        });
        // Validation refuses a Pipeline that runs itself; the depth bounds it anyway.
        if let Some(child) = child.filter(|_| depth < 16) {
            pipeline_images(child, tasks, pipelines, depth + 1, out);
        }
    }
}

fn collect_images(spec: &TaskSpec, out: &mut BTreeSet<String>) {
    for s in &spec.steps {
        if let Some(i) = s
            .image
            .as_ref()
            .or(spec.step_template.as_ref().and_then(|t| t.image.as_ref()))
        {
            out.insert(i.clone());
        }
    }
    for s in &spec.sidecars {
        if let Some(i) = &s.image {
            out.insert(i.clone());
        }
    }
}

/// The final objects as a `List`, as `kubectl get -o json` prints several.
fn list(f: &Finished) -> serde_json::Value {
    let mut items = Vec::new();
    if let Some(pr) = &f.pipeline_run {
        items.push(serde_json::to_value(pr).unwrap_or_default());
    }
    for pr in &f.child_pipeline_runs {
        items.push(serde_json::to_value(pr).unwrap_or_default());
    }
    for tr in &f.task_runs {
        items.push(serde_json::to_value(tr).unwrap_or_default());
    }
    json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
}

fn text_of(v: &ParamValue) -> String {
    match v {
        ParamValue::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn short(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}

fn seconds(tr: &TaskRun) -> String {
    let s = tr.status.as_ref();
    match (
        s.and_then(|s| s.start_time.as_ref()),
        s.and_then(|s| s.completion_time.as_ref()),
    ) {
        (Some(a), Some(b)) => format!("{:.2}s", b.0.duration_since(a.0).as_secs_f64()),
        _ => "-".into(),
    }
}

/// The pipeline tasks above the tasks of PipelineRun `run`: empty for the run, `scans/`
/// for the child PipelineRun of its task `scans`, and so on down.
fn tasks_path(f: &Finished, run: &str, depth: usize) -> String {
    let child = f
        .child_pipeline_runs
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(run));
    let Some(labels) = child.and_then(|c| c.metadata.labels.as_ref()) else {
        return String::new();
    };
    let (Some(parent), Some(task)) = (
        labels.get(tektite_api::labels::PIPELINE_RUN),
        labels.get(tektite_api::labels::PIPELINE_TASK),
    ) else {
        return String::new();
    };
    if depth > 16 {
        return format!("{task}/");
    }
    format!("{}{task}/", tasks_path(f, parent, depth + 1))
}

/// Each task, its status, duration and results; then the run's.
fn summary(f: &Finished) -> String {
    let mut out = String::from("\n");
    let condition = |c: &[v1::Condition]| {
        c.first()
            .map(|c| {
                format!(
                    "{} ({})",
                    c.reason.as_deref().unwrap_or(&c.status),
                    c.message.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_default()
    };
    let mut rows = vec![(
        "TASK".to_owned(),
        "STATUS".to_owned(),
        "DURATION".to_owned(),
        "RESULTS".to_owned(),
    )];
    for tr in &f.task_runs {
        let labels = tr.metadata.labels.clone().unwrap_or_default();
        // The pipeline task (`build-1` for a matrix child, `scans/lint` in the child
        // PipelineRun of task `scans`), else the TaskRun.
        let name = tr.metadata.name.clone().unwrap_or_default();
        let owner = labels.get(tektite_api::labels::PIPELINE_RUN);
        let task = match (owner, labels.get(tektite_api::labels::PIPELINE_TASK)) {
            (Some(owner), Some(task)) => {
                let leaf = name
                    .strip_prefix(owner.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .unwrap_or(task);
                format!("{}{leaf}", tasks_path(f, owner, 0))
            }
            _ => name,
        };
        let status = tr.status.clone().unwrap_or_default();
        let reason = executor::reason_of(&status.conditions);
        let retries = if status.retries_status.is_empty() {
            String::new()
        } else {
            format!(" after {} retries", status.retries_status.len())
        };
        let results = status
            .results
            .iter()
            .map(|r| format!("{}={}", r.name, short(&text_of(&r.value), 40)))
            .collect::<Vec<_>>()
            .join(" ");
        rows.push((task, format!("{reason}{retries}"), seconds(tr), results));
    }
    for pr in &f.child_pipeline_runs {
        // A task that ran a Pipeline: its child PipelineRun.
        let path = tasks_path(f, pr.metadata.name.as_deref().unwrap_or_default(), 0);
        let status = pr.status.clone().unwrap_or_default();
        let took = match (&status.start_time, &status.completion_time) {
            (Some(a), Some(b)) => format!("{:.2}s", b.0.duration_since(a.0).as_secs_f64()),
            _ => "-".into(),
        };
        rows.push((
            format!("{} (PipelineRun)", path.trim_end_matches('/')),
            executor::reason_of(&status.conditions),
            took,
            String::new(),
        ));
    }
    for pr in f.pipeline_run.iter().chain(&f.child_pipeline_runs) {
        let status = pr.status.clone().unwrap_or_default();
        let path = tasks_path(f, pr.metadata.name.as_deref().unwrap_or_default(), 0);
        for s in &status.skipped_tasks {
            rows.push((
                format!("{path}{}", s.name),
                format!("Skipped: {}", s.reason),
                "-".into(),
                String::new(),
            ));
        }
    }
    let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.2.chars().count()).max().unwrap_or(0);
    for (a, b, c, d) in &rows {
        let _ = writeln!(out, "{a:<w0$}  {b:<w1$}  {c:<w2$}  {d}").map(|_| ());
    }
    out = out
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    match &f.pipeline_run {
        Some(pr) => {
            let status = pr.status.clone().unwrap_or_default();
            let name = pr.metadata.name.clone().unwrap_or_default();
            let _ = writeln!(
                out,
                "\nPipelineRun {name}: {}",
                condition(&status.conditions)
            );
            for r in &status.results {
                let _ = writeln!(out, "  {} = {}", r.name, short(&text_of(&r.value), 200));
            }
        }
        None => {
            if let Some(tr) = f.task_runs.first() {
                let status = tr.status.clone().unwrap_or_default();
                let name = tr.metadata.name.clone().unwrap_or_default();
                let _ = writeln!(out, "\nTaskRun {name}: {}", condition(&status.conditions));
            }
        }
    }
    out
}
