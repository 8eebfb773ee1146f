//! `tkt`: the tektite command line.

mod cluster;
mod convert;
mod files;
mod params;
mod run;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tektite_cli::kubelet;

/// tektite: Tekton pipelines, fast. Same YAML, same habits.
#[derive(Debug, Parser)]
#[command(name = "tkt", version, about, long_about = None)]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, global = true, env = "TKT_LOG", default_value = "warn")]
    log_level: String,
    /// Log format.
    #[arg(long, global = true, env = "TKT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check Tekton YAML files (any of tekton.dev/v1, v1beta1, v1alpha1) and print every
    /// problem as `FILE: Kind/name: field.path: message`. Exits 0 when all are valid, 2
    /// when any is not.
    Validate(validate::Args),
    /// Run a Pipeline or Task on this machine, no cluster needed: every step runs as a
    /// process here, wrapped by tektite's entrypoint. Exits 0 when the run succeeded, 1
    /// when it failed, timed out or was cancelled, 2 when the input is invalid.
    Run(run::Args),
    /// Print the files' documents as tekton.dev/v1 (from v1beta1 and v1alpha1,
    /// PipelineResources read into the runs that bind them), for `kubectl apply -f -`.
    /// Exits 2, printing nothing, when a document is invalid.
    Convert(convert::Args),
    /// PipelineRuns on the cluster: list, describe, logs, cancel, delete, rerun.
    #[command(visible_alias = "pr", visible_alias = "pipelineruns")]
    Pipelinerun(cluster::RunArgs),
    /// TaskRuns on the cluster: list, describe, logs, cancel, delete, rerun.
    #[command(visible_alias = "tr", visible_alias = "taskruns")]
    Taskrun(cluster::RunArgs),
    /// Pipelines on the cluster: list, start, delete.
    #[command(visible_alias = "p", visible_alias = "pipelines")]
    Pipeline(cluster::DefArgs),
    /// Tasks on the cluster: list, start, delete.
    #[command(visible_alias = "t", visible_alias = "tasks")]
    Task(cluster::DefArgs),
}

/// Called by this name (the local kubelet's entrypoint image holds `tkt` as
/// `/tektite/entrypoint`, and a Pod's init container copies it to `/tekton/bin/entrypoint`),
/// `tkt` is tektite's entrypoint; `tkt container SPEC` starts a container of the local
/// kubelet. Neither is a user command, so they bypass the command line parser.
fn main() -> ExitCode {
    let exit = |code: i32| ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX));
    let mut argv = std::env::args_os();
    // Installed as the entrypoint of a Pod (`/tektite/entrypoint`, `/tekton/bin/entrypoint`),
    // `tkt` is the entrypoint.
    let called = argv.next().map(std::path::PathBuf::from);
    if called.is_some_and(|p| {
        p.file_name()
            .is_some_and(|n| n == kubelet::container::ENTRYPOINT)
    }) {
        return exit(tektite_entrypoint::run(argv.collect()));
    }
    match argv.next() {
        Some(a) if a == kubelet::container::SUBCOMMAND => {
            return exit(kubelet::container::main(argv.collect()));
        }
        _ => {}
    }
    let cli = Cli::parse();
    // kube's client logs the error of a request it also returns, which the cluster
    // commands print once, with what it means: its own events only when asked for.
    let spec = if cli.log_level.contains("kube") {
        cli.log_level.clone()
    } else {
        format!("{},kube_client=off", cli.log_level)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Pipelinerun(args) => cluster::runs(cluster::Kind::PipelineRun, &args),
        Command::Taskrun(args) => cluster::runs(cluster::Kind::TaskRun, &args),
        Command::Pipeline(args) => cluster::definitions(cluster::Kind::Pipeline, &args),
        Command::Task(args) => cluster::definitions(cluster::Kind::Task, &args),
    }
}
