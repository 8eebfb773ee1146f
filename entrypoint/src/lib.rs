//! The tektite entrypoint: wraps every step of every TaskRun. Knows nothing of Kubernetes;
//! its arguments are [`tektite_api::step::EntrypointArgs`], written by the pod builder. It
//! must depend on neither kube nor tonic.
//!
//! A library so that `tkt` can be its own entrypoint on a laptop (called by the name
//! `entrypoint`, as the Pods `tkt run` executes call it, `tkt` runs [`run`]); in Pods on a
//! cluster it is the small static `tektite-entrypoint`.

mod creds;
mod env;
mod init;
mod markers;
mod results;
mod signals;
mod step;
mod step_results;
mod supervise;
mod wait;

use tektite_api::step::{EntrypointArgs, INIT_SUBCOMMAND, InitArgs};

/// This binary's exit codes. Otherwise it exits with the step's own code (0 on success,
/// and 0 for a failure under `onError: continue`).
mod exit {
    /// Bad arguments.
    pub const USAGE: i32 = 2;
    /// The step's results were refused (too large, or not plain files).
    pub const RESULTS_REJECTED: i32 = 122;
    /// Not run: a step before it failed.
    pub const SKIPPED: i32 = 123;
    /// Killed at its timeout.
    pub const TIMEOUT: i32 = 124;
    /// The entrypoint itself failed (could not write its markers, spawn, ...).
    pub const INTERNAL: i32 = 125;
    /// The command exists but cannot be executed.
    pub const NOT_EXECUTABLE: i32 = 126;
    /// The command was not found.
    pub const NOT_FOUND: i32 = 127;
    /// Killed because the run was cancelled (128 + SIGKILL).
    pub const CANCELLED: i32 = 137;
}

const HELP: &str = "\
tektite-entrypoint: runs one step of a TaskRun and records what it did.

Usage:
  tektite-entrypoint --post-file PATH [OPTIONS] -- COMMAND [ARG]...
  tektite-entrypoint init [--copy-self-to PATH] [--scripts-dir DIR --script NAME=BODY]...
                          [--steps-dir DIR --step NAME]... [--run-dir DIR]... [--dir DIR]...

Options:
  --wait-file PATH          wait for PATH before starting (repeatable); PATH.err skips the step
  --wait-file-content       wait until each wait file is non-empty
  --wait-mode MODE          auto (inotify, else FIFO, else polling), fifo, or poll:DURATION
  --post-file PATH          written when the step ends (PATH.err on failure)
  --step-metadata-dir DIR   gets exitCode; holds step results under results/
  --results-dir DIR         task results directory (default /tekton/results)
  --result NAME             a task result to collect (repeatable)
  --step-result NAME        a step result to collect (repeatable)
  --results-limit BYTES     all results together may not exceed this (default 1048576)
  --artifacts-dir DIR       the Task's artifacts directory: collect its provenance.json and
                            the step's (under the metadata dir's artifacts/) when it ends
  --termination-path PATH   write a Tekton-style termination message there
  --on-error continue       a non-zero exit does not fail the step
  --timeout DURATION        kill the step after DURATION (e.g. 90s, 1h30m)
  --stdout-path PATH        also copy stdout to PATH
  --stderr-path PATH        also copy stderr to PATH
  --cancel-file PATH        kill the step when PATH becomes non-empty
  --when JSON               the step's when expressions: a false one skips it (the next runs)
  --basic-git SECRET=URL    git credentials from a basic-auth Secret mounted under
                            /tekton/creds-secrets (repeatable, like the four below)
  --ssh-git SECRET=HOST     an ssh key for git from an ssh-auth Secret (HOST[:PORT][/PATH])
  --basic-docker SECRET=URL registry credentials from a basic-auth Secret
  --docker-config SECRET    a kubernetes.io/dockerconfigjson Secret
  --docker-cfg SECRET       a kubernetes.io/dockercfg Secret
                            All five are written to /tekton/creds and copied into $HOME
                            before the command runs.

Exit codes: the step's own; 0 under --on-error continue; 2 bad arguments; 122 results
refused; 123 skipped; 124 timeout; 125 entrypoint failure; 126 not executable;
127 not found; 137 cancelled; 128+N stopped by signal N while waiting.
";

pub use init::{InitError, LINK_ENV};

/// Prepares a Pod's shared volumes as the `init` subcommand does (copy of this binary,
/// scripts, step directories, wake-up FIFOs), in the calling process: touches no signals.
pub fn init(args: &InitArgs) -> Result<(), InitError> {
    init::run(args)
}

/// Runs the entrypoint with `args` (without the program name); returns the exit code.
/// Blocks SIGTERM, SIGINT and SIGCHLD in the calling thread: call it from a process of
/// its own, on the main thread.
pub fn run(args: Vec<std::ffi::OsString>) -> i32 {
    let first = args.first().and_then(|a| a.to_str());
    match first {
        Some("-h" | "--help") => {
            print!("{HELP}");
            0
        }
        Some("-V" | "--version") => {
            println!("tektite-entrypoint {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some(INIT_SUBCOMMAND) => match InitArgs::parse(args) {
            Ok(init) => match init::run(&init) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("tektite-entrypoint init: {e}");
                    exit::INTERNAL
                }
            },
            Err(e) => usage(e),
        },
        _ => match EntrypointArgs::parse(args) {
            Ok(step) => step::run(&step),
            Err(e) => usage(e),
        },
    }
}

/// [`run`] with `env` as the entrypoint's environment (what it reads, what its step gets)
/// in place of the process's: for a process started for something else that runs the
/// entrypoint in place of exec'ing it.
pub fn run_in(args: Vec<std::ffi::OsString>, env: Vec<(String, String)>) -> i32 {
    env::set(env.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
    run(args)
}

fn usage(e: tektite_api::step::ArgsError) -> i32 {
    eprintln!("tektite-entrypoint: {e}\nRun with --help for the options.");
    exit::USAGE
}
