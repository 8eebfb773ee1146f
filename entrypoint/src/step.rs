//! One step from start to end: wait for the files that let it start, record the start,
//! run the command, then leave behind — in this order — its results, `exitCode`, the
//! termination message, the state record, and last the post file or `.err`.

use jiff::Timestamp;
use std::ffi::OsString;
use std::path::Path;

use tektite_api::step::creds;
use tektite_api::step::{EntrypointArgs, StepReason, StepState};
use tektite_api::v1::OnError;

use crate::exit;
use crate::markers::{self, MarkerError};
use crate::results;
use crate::signals::Signals;
use crate::step_results;
use crate::supervise::{self, Kill, Limits, SuperviseError};
use crate::wait::{self, Waited};

/// Runs the step; returns this process's exit code (see [`exit`]).
pub fn run(args: &EntrypointArgs) -> i32 {
    match try_run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tektite-entrypoint: {e}");
            record_failure(args, &e);
            exit::INTERNAL
        }
    }
}

/// After the entrypoint itself failed: the state record must not keep saying what it said
/// before (a command that exited 0 is no success when its end could not be recorded), and
/// the steps after this one must not wait forever. Best effort: the failure may be that
/// these very files cannot be written.
fn record_failure(args: &EntrypointArgs, error: &StepError) {
    let now = Timestamp::now();
    let started = markers::read_state(&args.post_file).map_or(now, |s| s.started_at);
    let mut state = StepState::ended(
        started,
        now,
        StepReason::Error,
        format!("the step's entrypoint failed: {error}"),
    );
    state.exit_code = Some(exit::INTERNAL);
    let _ = markers::write_state(&args.post_file, &state);
    let _ = markers::post(&args.post_file, false);
}

/// Writes the ServiceAccount's credentials and copies them into `$HOME`. As in Tekton, a
/// failure is reported and the step still runs: its tool then says which access failed.
fn install_credentials(args: &EntrypointArgs) {
    let dir = Path::new(creds::CREDS_DIR);
    let written = crate::creds::write(&args.credentials, Path::new(creds::SECRETS_DIR), dir);
    let copied = written.and_then(|()| match crate::env::var_os("HOME") {
        Some(home) if !home.is_empty() => crate::creds::copy_home(dir, Path::new(&home)),
        _ => {
            eprintln!(
                "tektite-entrypoint: HOME is not set: the credentials stay in {}",
                dir.display()
            );
            Ok(())
        }
    });
    if let Err(e) = copied {
        eprintln!("tektite-entrypoint: credentials not installed: {e}");
    }
}

/// What stopped the entrypoint itself.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("cannot handle signals: {0}")]
    Signals(#[source] nix::Error),
    #[error(transparent)]
    Wait(#[from] wait::WaitError),
    #[error(transparent)]
    Marker(#[from] MarkerError),
}

fn try_run(args: &EntrypointArgs) -> Result<i32, StepError> {
    let signals = Signals::take().map_err(StepError::Signals)?;
    markers::prepare(&args.post_file)?;

    let (waited, held) = wait::wait_all(
        &args.wait_files,
        args.wait_file_content,
        args.wait_mode,
        &signals,
    )?;
    match waited {
        Waited::Ready => {}
        Waited::PreviousFailed(marker) => {
            let message = format!(
                "not run: a step before it failed ({} exists)",
                marker.display()
            );
            finish(args, not_run(StepReason::Skipped, message), false)?;
            return Ok(exit::SKIPPED);
        }
        Waited::Interrupted(signal) => {
            let message = format!("not run: stopped by {signal} while waiting to start");
            finish(args, not_run(StepReason::Cancelled, message), false)?;
            return Ok(128 + signal as i32);
        }
    }

    if args
        .cancel_file
        .as_deref()
        .is_some_and(supervise::cancel_requested)
    {
        let message = "not run: the run was cancelled before the step started".to_owned();
        finish(args, not_run(StepReason::Cancelled, message), false)?;
        return Ok(exit::CANCELLED);
    }

    // Earlier steps' results in the command, env and when expressions, then the when.
    let prepared = match prepare(args) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("tektite-entrypoint: {message}");
            let mut state = not_run(StepReason::Error, message);
            state.exit_code = Some(1);
            if let Some(dir) = &args.step_metadata_dir {
                markers::write_exit_code(dir, 1)?;
            }
            finish(args, state, false)?;
            return Ok(1);
        }
    };
    let Some((command, env)) = prepared else {
        let mut state = not_run(
            StepReason::WhenSkipped,
            "not run: its when expressions are false".to_owned(),
        );
        state.exit_code = Some(0);
        if let Some(dir) = &args.step_metadata_dir {
            markers::write_exit_code(dir, 0)?;
        }
        finish(args, state, true)?;
        return Ok(0);
    };

    if !args.credentials.is_empty() {
        install_credentials(args);
    }
    let started = StepState::started(Timestamp::now());
    markers::write_state(&args.post_file, &started)?;
    let limits = Limits {
        timeout: args.timeout,
        cancel_file: args.cancel_file.as_deref(),
        stdout_path: args.stdout_path.as_deref(),
        stderr_path: args.stderr_path.as_deref(),
        env: &env,
    };
    let ran = supervise::run(&command, &limits, &signals, held);
    let mut state = StepState {
        finished_at: Some(Timestamp::now()),
        ..started
    };
    let (mut ok, mut code) = judge(args, &ran, &mut state);
    if let Ok(ended) = &ran {
        state.exit_code = Some(ended.code);
    }

    // Results are read whatever the outcome (a failed step may still have left some).
    match results::collect(args) {
        Ok(found) => state.results = found,
        Err(e) => {
            let message = e.to_string();
            eprintln!("tektite-entrypoint: {message}");
            if ok {
                state.reason = Some(e.reason());
                state.message = Some(message);
                ok = false;
                code = exit::RESULTS_REJECTED;
            } else {
                let before = state.message.take().unwrap_or_default();
                state.message = Some(
                    format!("{before}; {message}")
                        .trim_start_matches("; ")
                        .into(),
                );
            }
        }
    }

    // The state record is what the agent reports: it is written once everything it
    // vouches for is in place, so a failure before it leaves the earlier record to be
    // replaced by [`record_failure`] and never a success that did not happen.
    if let (Some(dir), Some(exit_code)) = (&args.step_metadata_dir, state.exit_code) {
        markers::write_exit_code(dir, exit_code)?;
    }
    if let Some(path) = &args.termination_path {
        markers::write_termination(path, &state)?;
    }
    markers::write_state(&args.post_file, &state)?;
    markers::post(&args.post_file, ok)?;
    Ok(code)
}

/// The command and the env values to set, with earlier steps' results in them; `None`
/// when the step's when expressions are false. `Err` says which reference or expression
/// failed.
type Prepared = Option<(Vec<String>, Vec<(OsString, OsString)>)>;

fn prepare(args: &EntrypointArgs) -> Result<Prepared, String> {
    use tektite_api::step::layout::{PodPaths, Volume};
    let in_pod = PodPaths::in_pod().mount_path(&Volume::Steps);
    let steps_dir = args
        .step_metadata_dir
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(&in_pod);
    let mut reader = step_results::Reader::new(steps_dir);
    let fail = |e: step_results::StepResultError| e.to_string();
    if !args.when.is_empty() {
        let when = reader.when(&args.when).map_err(fail)?;
        let allowed = tektite_api::v1::when::allows(&when)
            .map_err(|e| format!("the step's when expressions cannot be evaluated: {e}"))?;
        if !allowed {
            return Ok(None);
        }
    }
    let mut command = reader.list(&args.command).map_err(fail)?;
    if let Some(rewritten) = script_with_step_values(args, &command, &mut reader)? {
        command = vec![rewritten];
    }
    if args.artifacts_dir.is_some()
        && let Some(dir) = &args.step_metadata_dir
    {
        // Where `$(step.artifacts.path)` points: the step writes the file itself.
        let dir = dir.join(tektite_api::step::layout::STEP_ARTIFACTS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "cannot create the step's artifacts directory {}: {e}",
                dir.display()
            )
        })?;
    }
    let mut env = Vec::new();
    for (k, v) in crate::env::vars_os() {
        let Some(text) = v.to_str().filter(|t| t.contains("$(steps.")) else {
            continue;
        };
        let replaced = reader
            .text(text)
            .map_err(|e| format!("env {}: {e}", k.to_string_lossy()))?;
        env.push((k, replaced.into()));
    }
    Ok(Some((command, env)))
}

/// A script step whose script names earlier steps' results or artifacts: the script as
/// they make it, written beside the step's metadata (`<metadata dir>/script`), as
/// Tekton's entrypoint rewrites it; `None` when there is nothing to replace.
fn script_with_step_values(
    args: &EntrypointArgs,
    command: &[String],
    reader: &mut step_results::Reader<'_>,
) -> Result<Option<String>, String> {
    let [script] = command else { return Ok(None) };
    let path = Path::new(script);
    let scripts = tektite_api::step::layout::Volume::Scripts.mount_path();
    if !path.parent().is_some_and(|p| p.ends_with(&scripts)) {
        return Ok(None);
    }
    let Ok(body) = std::fs::read_to_string(path) else {
        return Ok(None); // not ours to read: the step runs it and says what is wrong
    };
    if !body.contains("$(steps.") {
        return Ok(None);
    }
    let replaced = reader
        .text(&body)
        .map_err(|e| format!("script {}: {e}", path.display()))?;
    if replaced == body {
        return Ok(None);
    }
    let Some(dir) = &args.step_metadata_dir else {
        return Err(format!(
            "script {} names earlier steps' values, and the step has no metadata directory to write it to",
            path.display()
        ));
    };
    let out = dir.join("script");
    use std::os::unix::fs::OpenOptionsExt;
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(&out)
            .and_then(|mut f| std::io::Write::write_all(&mut f, replaced.as_bytes()))
    });
    written.map_err(|e| format!("cannot write the step's script to {}: {e}", out.display()))?;
    Ok(Some(out.display().to_string()))
}

/// The step's reason and message, whether the next step may run, and this process's exit code.
fn judge(
    args: &EntrypointArgs,
    ran: &Result<supervise::Ended, SuperviseError>,
    state: &mut StepState,
) -> (bool, i32) {
    let (reason, message, ok, code) = match ran {
        Err(e) => {
            eprintln!("tektite-entrypoint: {e}");
            let code = match e {
                SuperviseError::NotFound { .. } => exit::NOT_FOUND,
                SuperviseError::NotExecutable { .. } => exit::NOT_EXECUTABLE,
                _ => exit::INTERNAL,
            };
            state.exit_code = Some(code);
            (StepReason::Error, Some(e.to_string()), false, code)
        }
        Ok(ended) => match ended.killed {
            Some(Kill::Timeout) => {
                let limit = args.timeout.unwrap_or_default();
                let message = format!("step exceeded its timeout of {limit:?} and was killed");
                eprintln!("tektite-entrypoint: {message}");
                (
                    StepReason::TimeoutExceeded,
                    Some(message),
                    false,
                    exit::TIMEOUT,
                )
            }
            Some(Kill::Cancelled) => {
                let message = "step was cancelled and killed".to_owned();
                (StepReason::Cancelled, Some(message), false, exit::CANCELLED)
            }
            None if ended.code == 0 => (StepReason::Completed, None, true, 0),
            None if args.on_error == OnError::Continue => {
                let message = format!(
                    "exited with code {}; continuing (onError: continue)",
                    ended.code
                );
                (StepReason::Continued, Some(message), true, 0)
            }
            None => (
                StepReason::Error,
                Some(format!("exited with code {}", ended.code)),
                false,
                ended.code,
            ),
        },
    };
    state.reason = Some(reason);
    state.message = message;
    (ok, code)
}

fn not_run(reason: StepReason, message: String) -> StepState {
    let now = Timestamp::now();
    StepState {
        finished_at: Some(now),
        reason: Some(reason),
        message: Some(message),
        ..StepState::started(now)
    }
}

/// Records a step that never ran: termination message, state, `.err`.
fn finish(args: &EntrypointArgs, state: StepState, ok: bool) -> Result<(), MarkerError> {
    if let Some(path) = &args.termination_path {
        markers::write_termination(path, &state)?;
    }
    markers::write_state(&args.post_file, &state)?;
    markers::post(&args.post_file, ok)
}
