//! `tkt convert FILE...`: the documents as the cluster takes them, tekton.dev/v1
//! (StepActions tekton.dev/v1beta1, as Tekton serves them), so that
//! `tkt convert old.yaml | kubectl apply -f -` works for files written for v1beta1 and
//! v1alpha1. PipelineResources are read into the runs that bind them (v1 has none); other
//! cluster objects in the files are passed on as written. Nothing is printed unless every
//! document is valid.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;
use tektite_api::document::Object;
use tektite_api::{Source, load, validate};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// YAML files, each with one or more documents separated by `---`.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// `yaml`: documents separated by `---`; `json`: one List, as `kubectl get -o json`.
    #[arg(long, short, value_enum, default_value_t = Output::Yaml)]
    output: Output,
    /// Do not print notes (what the conversion changed or dropped).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Yaml,
    Json,
}

/// Exit code when a document is invalid (or a file cannot be read): nothing is printed.
const INVALID: u8 = 2;

/// The object as the cluster takes it; `None` for what v1 has no place for.
fn as_written(object: &Object) -> Option<Value> {
    let json = match object {
        Object::Task(t) => serde_json::to_value(t),
        Object::TaskRun(t) => serde_json::to_value(t),
        Object::Pipeline(p) => serde_json::to_value(p),
        Object::PipelineRun(p) => serde_json::to_value(p),
        Object::StepAction(a) => serde_json::to_value(a),
        Object::ConfigMap(c) => serde_json::to_value(c),
        Object::Secret(s) => serde_json::to_value(s),
        Object::ServiceAccount(a) => serde_json::to_value(a),
        Object::Other(v) => Ok((**v).clone()),
        Object::PipelineResource(_) => return None,
    };
    json.ok()
}

pub fn run(args: &Args) -> ExitCode {
    let (texts, unreadable) = crate::files::read_all(&args.files);
    let mut err = std::io::stderr().lock();
    for line in &unreadable {
        let _ = writeln!(err, "{line}");
    }
    let sources: Vec<Source<'_>> = texts
        .iter()
        .map(|(name, text)| Source { name, text })
        .collect();
    let mut docs = load(&sources);
    validate::validate(&mut docs);
    let (_, problems) = {
        let mut notes = std::io::stderr().lock();
        crate::files::report(&docs, &sources, args.quiet, &mut err, &mut notes)
    };
    let mut out = Vec::new();
    for d in &docs {
        let (file, who) = (sources[d.source].name, d.display_name());
        match d.object.as_ref() {
            Some(Object::PipelineResource(_)) if !args.quiet => {
                let _ = writeln!(
                    err,
                    "{file}: {who}: note: tekton.dev/v1 has no PipelineResource: it is read into the runs and Tasks that use it"
                );
            }
            Some(o) => out.extend(as_written(o)),
            None => {}
        }
    }
    if problems > 0 || !unreadable.is_empty() {
        let _ = writeln!(
            err,
            "{problems} problem(s){}: nothing converted",
            if unreadable.is_empty() {
                String::new()
            } else {
                format!("; {} file(s) unreadable", unreadable.len())
            }
        );
        return ExitCode::from(INVALID);
    }
    if out.is_empty() {
        let _ = writeln!(err, "no documents found in {} file(s)", args.files.len());
        return ExitCode::from(INVALID);
    }
    let text = match args.output {
        Output::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": out});
            serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
        }
        Output::Yaml => out
            .iter()
            .filter_map(|v| serde_saphyr::to_string(v).ok())
            .collect::<Vec<_>>()
            .join("---\n"),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
