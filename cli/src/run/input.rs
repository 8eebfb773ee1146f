//! What `tkt run` was asked to run: the files' documents, checked as `tkt validate` checks
//! them (with every reference required to be among them), the run document (given, or
//! made from the single Pipeline or Task), and `-p`/`-w` applied to it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tektite_api::document::{Document, Object, Source, load};
use tektite_api::v1::{
    Param, ParamSpec, ParamType, PipelineRef, PipelineRun, PipelineRunSpec, PipelineSpec, TaskRef,
    TaskRun, TaskRunSpec, TaskSpec, WorkspaceBinding,
};
use tektite_api::validate;

/// Everything the executor needs, all references resolved.
#[derive(Debug)]
pub struct Plan {
    pub run: RunObject,
    /// Tasks by name, for `taskRef`.
    pub tasks: BTreeMap<String, TaskSpec>,
    /// Pipelines by name, for a pipeline task's `pipelineRef`.
    pub pipelines: BTreeMap<String, PipelineSpec>,
    pub config_maps: BTreeMap<String, core::ConfigMap>,
    pub secrets: BTreeMap<String, core::Secret>,
    pub step_actions: BTreeMap<String, tektite_api::v1beta1::StepActionSpec>,
    pub service_accounts: BTreeMap<String, core::ServiceAccount>,
    /// `-w name=PATH`: host directories bound by name.
    pub host_workspaces: BTreeMap<String, PathBuf>,
    /// Workspaces no one bound: each gets a fresh directory shared by all tasks.
    pub defaulted_workspaces: Vec<String>,
}

#[derive(Debug)]
pub enum RunObject {
    Pipeline {
        run: Box<PipelineRun>,
        spec: Box<PipelineSpec>,
        pipeline_name: String,
    },
    Task {
        run: Box<TaskRun>,
        spec: Box<TaskSpec>,
        task_name: Option<String>,
    },
}

/// The input cannot be run; each line is one problem, as `tkt validate` prints them.
#[derive(Debug)]
pub struct Invalid {
    pub lines: Vec<String>,
}

/// Settings from the command line.
#[derive(Debug, Default)]
pub struct Overrides<'a> {
    pub params: &'a [String],
    pub workspaces: &'a [String],
    /// The files hold several runs: plan the `n`-th (in file order) and leave the others.
    pub only_run: Option<usize>,
}

/// How many TaskRuns and PipelineRuns `files` hold (a file that cannot be read counts
/// none: the plan says why).
pub fn count_runs(files: &[PathBuf]) -> usize {
    let texts: Vec<(String, String)> = files
        .iter()
        .filter_map(|f| Some((f.display().to_string(), std::fs::read_to_string(f).ok()?)))
        .collect();
    let sources: Vec<Source<'_>> = texts
        .iter()
        .map(|(name, text)| Source { name, text })
        .collect();
    load(&sources)
        .iter()
        .filter(|d| matches!(d.kind.as_str(), "TaskRun" | "PipelineRun"))
        .count()
}

const COMMAND_LINE: &str = "command line";

/// Loads `files` and makes a [`Plan`], or says every reason it cannot.
pub fn plan(files: &[PathBuf], overrides: &Overrides<'_>) -> Result<Plan, Invalid> {
    let (mut texts, mut lines) = crate::files::read_all(files);
    texts.push((COMMAND_LINE.to_owned(), String::new()));
    let sources: Vec<Source<'_>> = texts
        .iter()
        .map(|(name, text)| Source { name, text })
        .collect();
    let mut docs = load(&sources);
    let line = |d: &Document, path: &dyn std::fmt::Display, message: &str| {
        format!(
            "{}: {}: {path}: {message}",
            sources[d.source].name,
            d.display_name()
        )
    };

    let mut runs: Vec<usize> = (0..docs.len())
        .filter(|&i| matches!(docs[i].kind.as_str(), "TaskRun" | "PipelineRun"))
        .collect();
    if let Some(n) = overrides.only_run.filter(|n| *n < runs.len()) {
        // The other runs are left out, as if they were in other files.
        for &i in runs.iter().rev().filter(|&&i| i != runs[n]) {
            docs.remove(i);
        }
        runs = vec![runs[n] - runs[..n].len()];
    }
    if runs.len() > 1 {
        let names: Vec<String> = runs.iter().map(|&i| docs[i].display_name()).collect();
        lines.push(format!(
            "the files hold {} runs ({}); `tkt run` runs one: pass the file with the one you want",
            runs.len(),
            names.join(", ")
        ));
    }
    let host_workspaces = parse_workspaces(overrides.workspaces, &mut lines);
    let params = parse_params(overrides.params, &mut lines);

    // The run: the one given, or one made from the single Pipeline (or Task).
    let mut defaulted_workspaces = Vec::new();
    if runs.is_empty() {
        match synthesize(&docs) {
            Ok(object) => docs.push(Document {
                source: sources.len() - 1,
                line: 0,
                kind: kind_of(&object).into(),
                name: String::new(),
                api_version: "tekton.dev/v1".into(),
                object: Some(object),
                problems: Vec::new(),
                notes: Vec::new(),
            }),
            Err(message) => lines.push(message),
        }
    }
    let run_index = docs
        .iter()
        .position(|d| matches!(d.object, Some(Object::PipelineRun(_) | Object::TaskRun(_))));
    if let Some(i) = run_index {
        let declared = declared_of(&docs[i], &validate::Catalog::of(&docs));
        apply(
            &mut docs[i],
            &params,
            &host_workspaces,
            &declared,
            &mut defaulted_workspaces,
            &mut lines,
        );
    }

    validate::validate_with(&mut docs, true);
    // A run made here from an invalid Pipeline or Task only repeats their problems.
    let synthesized = sources.len() - 1;
    let inputs_invalid = docs
        .iter()
        .any(|d| d.source != synthesized && !d.problems.is_empty());
    for d in docs
        .iter()
        .filter(|d| !(inputs_invalid && d.source == synthesized))
    {
        for p in &d.problems {
            lines.push(line(d, &p.path, &p.message));
        }
    }
    if !lines.is_empty() {
        return Err(Invalid { lines });
    }
    build(docs, host_workspaces, defaulted_workspaces)
}

fn kind_of(o: &Object) -> &'static str {
    match o {
        Object::PipelineRun(_) => "PipelineRun",
        _ => "TaskRun",
    }
}

/// A PipelineRun of the single Pipeline that no other runs (the others run as its
/// children), else a TaskRun of the single Task.
fn synthesize(docs: &[Document]) -> Result<Object, String> {
    let named = |kind: &str| -> Vec<String> {
        docs.iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.name.clone())
            .collect()
    };
    fn children(spec: &PipelineSpec, depth: usize, out: &mut Vec<String>) {
        for t in spec.tasks.iter().chain(&spec.finally) {
            out.extend(t.pipeline_ref.as_ref().and_then(|r| r.name.clone()));
            if let Some(inline) = t.pipeline_spec.as_deref().filter(|_| depth < MAX_NESTING) {
                children(inline, depth + 1, out);
            }
        }
    }
    let mut run_by_others = Vec::new();
    for d in docs {
        if let Some(Object::Pipeline(p)) = &d.object {
            children(&p.spec, 0, &mut run_by_others);
        }
    }
    let mut pipelines = named("Pipeline");
    if pipelines.len() > 1 {
        let roots: Vec<String> = pipelines
            .iter()
            .filter(|p| !run_by_others.contains(p))
            .cloned()
            .collect();
        if roots.len() == 1 {
            pipelines = roots;
        }
    }
    let tasks = named("Task");
    let meta = |name: &str| ObjectMeta {
        generate_name: Some(format!("{name}-run-")),
        ..ObjectMeta::default()
    };
    match (pipelines.as_slice(), tasks.as_slice()) {
        ([p], _) => Ok(Object::PipelineRun(Box::new(PipelineRun {
            api_version: Some("tekton.dev/v1".into()),
            kind: Some("PipelineRun".into()),
            metadata: meta(p),
            spec: PipelineRunSpec {
                pipeline_ref: Some(PipelineRef {
                    name: Some(p.clone()),
                    ..PipelineRef::default()
                }),
                ..PipelineRunSpec::default()
            },
            status: None,
        }))),
        ([], [t]) => Ok(Object::TaskRun(Box::new(TaskRun {
            api_version: Some("tekton.dev/v1".into()),
            kind: Some("TaskRun".into()),
            metadata: meta(t),
            spec: TaskRunSpec {
                task_ref: Some(TaskRef {
                    name: Some(t.clone()),
                    ..TaskRef::default()
                }),
                ..TaskRunSpec::default()
            },
            status: None,
        }))),
        ([], []) => {
            Err("nothing to run: the files hold no PipelineRun, TaskRun, Pipeline or Task".into())
        }
        ([], many) => Err(format!(
            "the files hold {} Tasks ({}) and no run: add a TaskRun, or pass only the Task to run",
            many.len(),
            many.join(", ")
        )),
        (many, _) => Err(format!(
            "the files hold {} Pipelines ({}) and no run: add a PipelineRun, or pass only the Pipeline to run",
            many.len(),
            many.join(", ")
        )),
    }
}

/// `-p name=value`; arrays are `a,b,c` and objects `k:v,k2:v2` (as `tkn` reads them),
/// decided by the declared type.
fn parse_params(given: &[String], lines: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in given {
        match crate::params::split(p) {
            Ok(pair) => out.push(pair),
            Err(why) => lines.push(why),
        }
    }
    out
}

fn parse_workspaces(given: &[String], lines: &mut Vec<String>) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for w in given {
        match w.split_once('=') {
            Some((name, path)) if !name.is_empty() && !path.is_empty() => {
                let path = PathBuf::from(path);
                let path = if path.is_absolute() {
                    path
                } else {
                    std::env::current_dir().unwrap_or_default().join(path)
                };
                out.insert(name.to_owned(), path);
            }
            _ => lines.push(format!(
                "-w {w}: expected NAME=PATH (a directory on this machine)"
            )),
        }
    }
    out
}

/// The params and workspaces the run's Pipeline or Task declares.
struct Declared {
    params: Vec<ParamSpec>,
    workspaces: Vec<(String, bool)>,
}

/// What the run's Pipeline or Task declares, found among the documents.
fn declared_of(run: &Document, catalog: &validate::Catalog<'_>) -> Option<Declared> {
    let declared = |params: &[ParamSpec], workspaces: Vec<(String, bool)>| Declared {
        params: params.to_vec(),
        workspaces,
    };
    match run.object.as_ref()? {
        Object::PipelineRun(pr) => {
            let spec = match (&pr.spec.pipeline_spec, &pr.spec.pipeline_ref) {
                (Some(s), _) => s,
                (None, Some(r)) => catalog.pipelines.get(r.name.as_deref()?)?,
                _ => return None,
            };
            let ws = spec.workspaces.iter().map(|w| (w.name.clone(), w.optional));
            Some(declared(&spec.params, ws.collect()))
        }
        Object::TaskRun(tr) => {
            let spec = match (&tr.spec.task_spec, &tr.spec.task_ref) {
                (Some(s), _) => s,
                (None, Some(r)) => catalog.tasks.get(r.name.as_deref()?)?,
                _ => return None,
            };
            let ws = spec.workspaces.iter().map(|w| (w.name.clone(), w.optional));
            Some(declared(&spec.params, ws.collect()))
        }
        _ => None,
    }
}

/// Applies `-p` and `-w` to the run document, and binds every required workspace no one
/// bound to a fresh shared directory (a PVC-like `volumeClaimTemplate`).
fn apply(
    run: &mut Document,
    params: &[(String, String)],
    host: &BTreeMap<String, PathBuf>,
    declared: &Option<Declared>,
    defaulted: &mut Vec<String>,
    lines: &mut Vec<String>,
) {
    let (run_params, run_workspaces): (&mut Vec<Param>, &mut Vec<WorkspaceBinding>) =
        match run.object.as_mut() {
            Some(Object::PipelineRun(pr)) => (&mut pr.spec.params, &mut pr.spec.workspaces),
            Some(Object::TaskRun(tr)) => (&mut tr.spec.params, &mut tr.spec.workspaces),
            _ => return,
        };
    for (name, text) in params {
        let declared_type = declared.as_ref().and_then(|d| {
            d.params
                .iter()
                .find(|p| &p.name == name)
                .map(ParamSpec::effective_type)
        });
        if declared.is_some() && declared_type.is_none() {
            lines.push(format!(
                "-p {name}={text}: the run's {} declares no param {name:?}",
                if run.kind == "PipelineRun" {
                    "Pipeline"
                } else {
                    "Task"
                }
            ));
            continue;
        }
        let value =
            match crate::params::value(name, text, declared_type.unwrap_or(ParamType::String)) {
                Ok(v) => v,
                Err(why) => {
                    lines.push(why);
                    continue;
                }
            };
        run_params.retain(|p| &p.name != name);
        run_params.push(Param {
            name: name.clone(),
            value,
        });
    }
    for name in host.keys() {
        if let Some(d) = declared
            && !d.workspaces.iter().any(|(w, _)| w == name)
        {
            lines.push(format!(
                "-w {name}=...: the run's {} declares no workspace {name:?}",
                if run.kind == "PipelineRun" {
                    "Pipeline"
                } else {
                    "Task"
                }
            ));
            continue;
        }
        // The executor binds the host directory; for validation it is a bound volume.
        run_workspaces.retain(|w| &w.name != name);
        run_workspaces.push(WorkspaceBinding {
            name: name.clone(),
            empty_dir: Some(core::EmptyDirVolumeSource::default()),
            ..WorkspaceBinding::default()
        });
    }
    if let Some(d) = declared {
        for (name, optional) in &d.workspaces {
            if !optional && !run_workspaces.iter().any(|w| &w.name == name) {
                defaulted.push(name.clone());
                run_workspaces.push(WorkspaceBinding {
                    name: name.clone(),
                    volume_claim_template: Some(core::PersistentVolumeClaim::default()),
                    ..WorkspaceBinding::default()
                });
            }
        }
    }
}

fn build(
    docs: Vec<Document>,
    host_workspaces: BTreeMap<String, PathBuf>,
    defaulted_workspaces: Vec<String>,
) -> Result<Plan, Invalid> {
    let mut tasks = BTreeMap::new();
    let mut pipelines = BTreeMap::new();
    let mut config_maps = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut step_actions = BTreeMap::new();
    let mut service_accounts = BTreeMap::new();
    let mut run = None;
    for d in docs {
        match d.object {
            Some(Object::Task(t)) => {
                tasks.insert(t.metadata.name.clone().unwrap_or_default(), t.spec);
            }
            Some(Object::Pipeline(p)) => {
                pipelines.insert(p.metadata.name.clone().unwrap_or_default(), p.spec);
            }
            Some(Object::ConfigMap(c)) => {
                config_maps.insert(c.metadata.name.clone().unwrap_or_default(), *c);
            }
            Some(Object::Secret(s)) => {
                secrets.insert(s.metadata.name.clone().unwrap_or_default(), *s);
            }
            Some(Object::StepAction(a)) => {
                step_actions.insert(a.metadata.name.clone().unwrap_or_default(), a.spec);
            }
            Some(Object::ServiceAccount(a)) => {
                service_accounts.insert(a.metadata.name.clone().unwrap_or_default(), *a);
            }
            Some(o @ (Object::PipelineRun(_) | Object::TaskRun(_))) => run = Some(o),
            _ => {}
        }
    }
    let invalid = |line: String| Invalid { lines: vec![line] };
    let run = match run {
        Some(Object::PipelineRun(pr)) => {
            let (spec, pipeline_name) = match (&pr.spec.pipeline_spec, &pr.spec.pipeline_ref) {
                (Some(s), _) => (s.clone(), String::new()),
                (
                    None,
                    Some(PipelineRef {
                        name: Some(name),
                        resolver: None,
                        ..
                    }),
                ) => match pipelines.get(name) {
                    Some(s) => (s.clone(), name.clone()),
                    None => {
                        return Err(invalid(format!("Pipeline {name:?} is not among the files")));
                    }
                },
                _ => {
                    return Err(invalid(
                        "spec.pipelineRef: resolvers need a cluster; pass the Pipeline's file instead"
                            .into(),
                    ));
                }
            };
            RunObject::Pipeline {
                run: pr,
                spec: Box::new(spec),
                pipeline_name,
            }
        }
        Some(Object::TaskRun(tr)) => {
            let (spec, task_name) = match (&tr.spec.task_spec, &tr.spec.task_ref) {
                (Some(s), _) => (s.clone(), None),
                (
                    None,
                    Some(TaskRef {
                        name: Some(name),
                        resolver: None,
                        ..
                    }),
                ) => match tasks.get(name) {
                    Some(s) => (s.clone(), Some(name.clone())),
                    None => return Err(invalid(format!("Task {name:?} is not among the files"))),
                },
                _ => {
                    return Err(invalid(
                        "spec.taskRef: resolvers need a cluster; pass the Task's file instead"
                            .into(),
                    ));
                }
            };
            RunObject::Task {
                run: tr,
                spec: Box::new(spec),
                task_name,
            }
        }
        _ => return Err(invalid("nothing to run".into())),
    };
    let plan = Plan {
        run,
        tasks,
        pipelines,
        config_maps,
        secrets,
        step_actions,
        service_accounts,
        host_workspaces,
        defaulted_workspaces,
    };
    let lines = local_limits(&plan);
    if lines.is_empty() {
        Ok(plan)
    } else {
        Err(Invalid { lines })
    }
}

/// What a valid run needs that this machine cannot give: checked before anything starts.
fn local_limits(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    let check_task = |who: &str, spec: &TaskSpec, lines: &mut Vec<String>| {
        for (i, s) in spec.steps.iter().enumerate() {
            // A step that runs a StepAction runs the StepAction's container.
            let (command, script, image, of) = match &s.ref_ {
                Some(r) if r.resolver.is_some() => {
                    lines.push(format!(
                        "{who}: spec.steps[{i}].ref: resolvers need a cluster; pass the StepAction's file instead"
                    ));
                    continue;
                }
                Some(r) => match r.name.as_ref().and_then(|n| plan.step_actions.get(n)) {
                    Some(a) => (&a.command, &a.script, &a.image, " (its StepAction)"),
                    None => continue, // validation names what is missing
                },
                None => (&s.command, &s.script, &s.image, ""),
            };
            let no_command = command.is_empty()
                && spec
                    .step_template
                    .as_ref()
                    .is_none_or(|t| t.command.is_empty());
            if no_command && script.is_none() {
                lines.push(format!(
                    "{who}: spec.steps[{i}] ({:?}){of}: it has no command and no script, so it would run the entrypoint of image {:?}, which tkt run cannot know: add a command or a script",
                    s.name,
                    image.as_deref().unwrap_or("(none)")
                ));
            }
        }
        for (i, s) in spec.sidecars.iter().enumerate() {
            if s.command.is_empty() && s.script.is_none() {
                lines.push(format!(
                    "{who}: spec.sidecars[{i}] ({:?}): it has no command and no script, so it would run the entrypoint of image {:?}, which tkt run cannot know: add a command or a script",
                    s.name,
                    s.image.as_deref().unwrap_or("(none)")
                ));
            }
        }
    };
    let bindings = match &plan.run {
        RunObject::Pipeline { run, spec, .. } => {
            let who = format!("PipelineRun/{}", run_name(&run.metadata));
            check_pipeline(&who, spec, plan, &check_task, 0, &mut lines);
            &run.spec.workspaces
        }
        RunObject::Task { run, spec, .. } => {
            check_task(
                &format!("TaskRun/{}", run_name(&run.metadata)),
                spec,
                &mut lines,
            );
            &run.spec.workspaces
        }
    };
    for (i, b) in bindings.iter().enumerate() {
        let at = format!("spec.workspaces[{i}] ({:?})", b.name);
        if plan.host_workspaces.contains_key(&b.name) {
            continue;
        }
        if let Some(cm) = &b.config_map {
            let name = cm.name.as_str();
            if !plan.config_maps.contains_key(name) && cm.optional != Some(true) {
                lines.push(format!(
                    "{at}: ConfigMap {name:?} is not among the files: add it, or bind the workspace with -w {}=PATH",
                    b.name
                ));
            }
        }
        if let Some(s) = &b.secret {
            let name = s.secret_name.as_deref().unwrap_or_default();
            if !plan.secrets.contains_key(name) && s.optional != Some(true) {
                lines.push(format!(
                    "{at}: Secret {name:?} is not among the files: add it, or bind the workspace with -w {}=PATH",
                    b.name
                ));
            }
        }
        // A projected volume's ConfigMaps and Secrets must be among the files too.
        for source in b.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map
                && !plan.config_maps.contains_key(&cm.name)
                && cm.optional != Some(true)
            {
                lines.push(format!(
                    "{at}: projected ConfigMap {:?} is not among the files: add it, or bind the workspace with -w {}=PATH",
                    cm.name, b.name
                ));
            }
            if let Some(sec) = &source.secret
                && !plan.secrets.contains_key(&sec.name)
                && sec.optional != Some(true)
            {
                lines.push(format!(
                    "{at}: projected Secret {:?} is not among the files: add it, or bind the workspace with -w {}=PATH",
                    sec.name, b.name
                ));
            }
        }
        if b.csi.is_some() {
            lines.push(format!(
                "{at}: csi volumes need a cluster (their driver): bind the workspace with -w {}=PATH",
                b.name
            ));
        }
    }
    lines
}

/// What [`local_limits`] checks of each task of a Pipeline, and of the Pipelines its
/// tasks run (`depth` of them above; validation refuses a Pipeline that runs itself).
fn check_pipeline(
    who: &str,
    spec: &PipelineSpec,
    plan: &Plan,
    check_task: &dyn Fn(&str, &TaskSpec, &mut Vec<String>),
    depth: usize,
    lines: &mut Vec<String>,
) {
    for (i, t) in spec.tasks.iter().chain(&spec.finally).enumerate() {
        let at = if i < spec.tasks.len() {
            format!("tasks[{i}]")
        } else {
            format!("finally[{}]", i - spec.tasks.len())
        };
        match (&t.pipeline_spec, &t.pipeline_ref) {
            (Some(child), _) if depth < MAX_NESTING => check_pipeline(
                &format!("{who}: pipeline {at} ({:?}) pipelineSpec", t.name),
                child,
                plan,
                check_task,
                depth + 1,
                lines,
            ),
            (None, Some(r)) if r.resolver.is_some() => lines.push(format!(
                "{who}: pipeline {at}.pipelineRef ({:?}): resolvers need a cluster; pass the Pipeline's file instead",
                t.name
            )),
            (None, Some(r)) if depth < MAX_NESTING => {
                let name = r.name.as_deref().unwrap_or_default();
                if let Some(child) = plan.pipelines.get(name) {
                    check_pipeline(&format!("Pipeline/{name}"), child, plan, check_task, depth + 1, lines);
                }
            }
            _ => {}
        }
        match (&t.task_spec, &t.task_ref) {
            (Some(embedded), _) if embedded.is_custom() => lines.push(format!(
                "{who}: pipeline {at}.taskSpec ({:?}): a custom task ({}) runs under its own controller on a cluster; tkt run has none",
                t.name,
                embedded.kind.as_deref().unwrap_or_default()
            )),
            (Some(embedded), _) => {
                check_task(&format!("Pipeline {at} ({:?}) taskSpec", t.name), &embedded.task, lines)
            }
            (None, Some(r)) if r.is_custom() => lines.push(format!(
                "{who}: pipeline {at}.taskRef ({:?}): a custom task ({}) runs under its own controller on a cluster; tkt run has none",
                t.name,
                r.kind.as_deref().unwrap_or_default()
            )),
            (None, Some(r)) if r.resolver.is_some() => lines.push(format!(
                "{who}: pipeline {at}.taskRef ({:?}): resolvers need a cluster; pass the Task's file instead",
                t.name
            )),
            (None, Some(r)) => {
                let name = r.name.as_deref().unwrap_or_default();
                if let Some(spec) = plan.tasks.get(name) {
                    check_task(&format!("Task/{name}"), spec, lines);
                }
            }
            (None, None) => {}
        }
    }
}

/// How deep Pipelines in Pipelines are followed before anything runs.
const MAX_NESTING: usize = 16;

/// The run's name, or its generateName prefix before one is chosen.
pub fn run_name(meta: &ObjectMeta) -> String {
    meta.name
        .clone()
        .or_else(|| meta.generate_name.clone())
        .unwrap_or_default()
}
