//! The entrypoint's arguments: one typed contract that the pod builder and the local
//! executor write with [`EntrypointArgs::to_args`] and the entrypoint reads with
//! [`EntrypointArgs::parse`]. The flags mean what Tekton's entrypoint flags of the same
//! name mean (`-wait_file`, `-post_file`, `-on_error`, ...), spelled `--wait-file`, etc.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::{Arg, Parser, ValueExt};

use super::creds::Credential;
use crate::v1::{self, OnError, parse_go_duration};

/// The results of one TaskRun may total this many bytes unless configured otherwise.
pub const DEFAULT_RESULTS_LIMIT: u64 = 1024 * 1024;

/// How a step waits for its wait files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitMode {
    /// inotify while an instance can be had, else the FIFO beside the post file, else polling.
    #[default]
    Auto,
    /// Never inotify: the FIFO handshake, else polling.
    Fifo,
    /// stat() every interval and nothing else (Tekton's scheme at 1s; for comparisons).
    Poll(Duration),
}

/// Everything the entrypoint needs to run one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntrypointArgs {
    /// Files to wait for, in order, before starting. If `<file>.err` appears instead, the
    /// step before failed and this one is skipped.
    pub wait_files: Vec<PathBuf>,
    /// Wait until each wait file is non-empty, not just present (the downward ready file).
    pub wait_file_content: bool,
    pub wait_mode: WaitMode,
    /// Written last when the step ends (`<post>.err` on failure); the state record, the FIFO
    /// and the error marker sit beside it (see [`super::layout::Marker`]).
    pub post_file: PathBuf,
    /// `/tekton/steps/step-<name>`: gets `exitCode` and holds the step results.
    pub step_metadata_dir: Option<PathBuf>,
    /// The task results directory (`/tekton/results`).
    pub results_dir: Option<PathBuf>,
    /// Task result names to collect from `results_dir`.
    pub results: Vec<String>,
    /// Step result names to collect from `<step_metadata_dir>/results`.
    pub step_results: Vec<String>,
    /// Upper bound in bytes on all results together.
    pub results_limit: u64,
    /// The Task's artifacts directory (`/tekton/artifacts`, alpha): given when a step of
    /// the Task names an artifacts path; then the step's artifacts file
    /// (`<step_metadata_dir>/artifacts/provenance.json`) and the Task's are collected.
    pub artifacts_dir: Option<PathBuf>,
    /// Where to write the Tekton-style termination message, if anywhere.
    pub termination_path: Option<PathBuf>,
    pub on_error: OnError,
    pub timeout: Option<Duration>,
    pub stdout_path: Option<PathBuf>,
    pub stderr_path: Option<PathBuf>,
    /// A file whose content becomes non-empty when the step must be cancelled.
    pub cancel_file: Option<PathBuf>,
    /// Credentials to write into [`super::creds::CREDS_DIR`] and copy into `$HOME` first.
    pub credentials: Vec<Credential>,
    /// The step's `when` expressions, left for the step's start because they may read
    /// earlier steps' results; when one is false the step is skipped and the next runs.
    pub when: Vec<v1::WhenExpression>,
    /// The command and its arguments; never empty.
    pub command: Vec<String>,
}

impl EntrypointArgs {
    /// Arguments for a step that runs `command` and then writes `post_file`, with every
    /// other setting at its default.
    pub fn new(post_file: impl Into<PathBuf>, command: Vec<String>) -> Self {
        Self {
            wait_files: Vec::new(),
            wait_file_content: false,
            wait_mode: WaitMode::Auto,
            post_file: post_file.into(),
            step_metadata_dir: None,
            results_dir: None,
            results: Vec::new(),
            step_results: Vec::new(),
            results_limit: DEFAULT_RESULTS_LIMIT,
            artifacts_dir: None,
            termination_path: None,
            on_error: OnError::StopAndFail,
            timeout: None,
            stdout_path: None,
            stderr_path: None,
            cancel_file: None,
            credentials: Vec::new(),
            when: Vec::new(),
            command,
        }
    }

    /// The argument list (without the program name) that [`EntrypointArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Args::default();
        for f in &self.wait_files {
            out.path("--wait-file", f);
        }
        if self.wait_file_content {
            out.flag("--wait-file-content");
        }
        match self.wait_mode {
            WaitMode::Auto => {}
            WaitMode::Fifo => out.value("--wait-mode", "fifo".into()),
            WaitMode::Poll(every) => out.value(
                "--wait-mode",
                format!("poll:{}", v1::Duration::from(every).0),
            ),
        }
        out.path("--post-file", &self.post_file);
        if let Some(d) = &self.step_metadata_dir {
            out.path("--step-metadata-dir", d);
        }
        if let Some(d) = &self.results_dir {
            out.path("--results-dir", d);
        }
        for r in &self.results {
            out.value("--result", r.clone());
        }
        for r in &self.step_results {
            out.value("--step-result", r.clone());
        }
        if self.results_limit != DEFAULT_RESULTS_LIMIT {
            out.value("--results-limit", self.results_limit.to_string());
        }
        if let Some(d) = &self.artifacts_dir {
            out.path("--artifacts-dir", d);
        }
        if let Some(p) = &self.termination_path {
            out.path("--termination-path", p);
        }
        if self.on_error == OnError::Continue {
            out.value("--on-error", "continue".into());
        }
        if let Some(t) = self.timeout {
            out.value("--timeout", v1::Duration::from(t).0);
        }
        if let Some(p) = &self.stdout_path {
            out.path("--stdout-path", p);
        }
        if let Some(p) = &self.stderr_path {
            out.path("--stderr-path", p);
        }
        if let Some(p) = &self.cancel_file {
            out.path("--cancel-file", p);
        }
        for c in &self.credentials {
            let (flag, value) = c.to_flag();
            out.value(flag, value);
        }
        if !self.when.is_empty() {
            let json = serde_json::to_string(&self.when).expect("when expressions serialize");
            out.value("--when", json);
        }
        out.0.push("--".into());
        out.0.extend(self.command.iter().cloned());
        out.0
    }

    /// Reads the arguments (without the program name). Every value must be UTF-8.
    pub fn parse<I>(args: I) -> Result<Self, ArgsError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        let mut p = Parser::from_args(args);
        let mut a = Self::new(PathBuf::new(), Vec::new());
        let mut post_file = None;
        while let Some(arg) = p.next()? {
            match arg {
                Arg::Long("wait-file") => a.wait_files.push(path(&mut p)?),
                Arg::Long("wait-file-content") => a.wait_file_content = true,
                Arg::Long("wait-mode") => a.wait_mode = parse_wait_mode(&string(&mut p)?)?,
                Arg::Long("post-file") => post_file = Some(path(&mut p)?),
                Arg::Long("step-metadata-dir") => a.step_metadata_dir = Some(path(&mut p)?),
                Arg::Long("results-dir") => a.results_dir = Some(path(&mut p)?),
                Arg::Long("result") => a.results.push(string(&mut p)?),
                Arg::Long("step-result") => a.step_results.push(string(&mut p)?),
                Arg::Long("results-limit") => {
                    let v = string(&mut p)?;
                    a.results_limit = v.parse().map_err(|_| ArgsError::Invalid {
                        flag: "--results-limit",
                        value: v,
                        why: "it must be a number of bytes".into(),
                    })?;
                }
                Arg::Long("artifacts-dir") => a.artifacts_dir = Some(path(&mut p)?),
                Arg::Long("termination-path") => a.termination_path = Some(path(&mut p)?),
                Arg::Long("on-error") => {
                    a.on_error = match string(&mut p)?.as_str() {
                        "continue" => OnError::Continue,
                        "stopAndFail" => OnError::StopAndFail,
                        other => {
                            return Err(ArgsError::Invalid {
                                flag: "--on-error",
                                value: other.into(),
                                why: "it must be continue or stopAndFail".into(),
                            });
                        }
                    }
                }
                Arg::Long("timeout") => {
                    let v = string(&mut p)?;
                    a.timeout = Some(parse_go_duration(&v).map_err(|e| ArgsError::Invalid {
                        flag: "--timeout",
                        value: v,
                        why: e.to_string(),
                    })?);
                }
                Arg::Long("stdout-path") => a.stdout_path = Some(path(&mut p)?),
                Arg::Long("stderr-path") => a.stderr_path = Some(path(&mut p)?),
                Arg::Long("cancel-file") => a.cancel_file = Some(path(&mut p)?),
                Arg::Long("when") => {
                    let v = string(&mut p)?;
                    a.when = serde_json::from_str(&v).map_err(|e| ArgsError::Invalid {
                        flag: "--when",
                        value: v.clone(),
                        why: format!("it must be a JSON list of when expressions: {e}"),
                    })?;
                }
                Arg::Long(name) if Credential::flag(name).is_some() => {
                    let flag = Credential::flag(name).unwrap_or_default();
                    let value = string(&mut p)?;
                    match Credential::from_flag(flag, &value) {
                        Ok(c) => a.credentials.push(c),
                        Err(why) => return Err(ArgsError::Invalid { flag, value, why }),
                    }
                }
                Arg::Value(first) => {
                    a.command.push(first.string()?);
                    for rest in p.raw_args()? {
                        a.command.push(rest.string()?);
                    }
                }
                other => return Err(other.unexpected().into()),
            }
        }
        a.post_file = post_file.ok_or(ArgsError::Missing("--post-file"))?;
        if a.command.is_empty() {
            return Err(ArgsError::NoCommand);
        }
        Ok(a)
    }
}

fn parse_wait_mode(text: &str) -> Result<WaitMode, ArgsError> {
    let invalid = |why: String| ArgsError::Invalid {
        flag: "--wait-mode",
        value: text.into(),
        why,
    };
    match text {
        "auto" => Ok(WaitMode::Auto),
        "fifo" => Ok(WaitMode::Fifo),
        _ => {
            let every = text
                .strip_prefix("poll:")
                .ok_or_else(|| invalid("it must be auto, fifo or poll:<duration>".into()))?;
            let every = parse_go_duration(every).map_err(|e| invalid(e.to_string()))?;
            if every.is_zero() {
                return Err(invalid("the poll interval must be above zero".into()));
            }
            Ok(WaitMode::Poll(every))
        }
    }
}

/// What the init step does before any step runs: copy the entrypoint into the tools volume,
/// place scripts, and create the directories and FIFOs the steps expect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitArgs {
    /// Copy this binary here (`/tekton/bin/entrypoint`).
    pub copy_self_to: Option<PathBuf>,
    /// Where scripts go (`/tekton/scripts`).
    pub scripts_dir: Option<PathBuf>,
    /// Scripts to place under `scripts_dir`: file name and body.
    pub scripts: Vec<(String, String)>,
    /// `/tekton/steps`: gets `step-<name>/results` and a link `<index>` for each step.
    pub steps_dir: Option<PathBuf>,
    pub step_names: Vec<String>,
    /// Run directories (`/tekton/run/<i>`) to create with their wake FIFO.
    pub run_dirs: Vec<PathBuf>,
    /// Other directories to create (working dirs).
    pub dirs: Vec<PathBuf>,
}

/// The most of a script one argument carries (well under the kernel's 128 KiB per
/// argument).
const SCRIPT_PIECE: usize = 96 * 1024;

/// `text` in pieces of at most `max` bytes, cut at character boundaries.
fn chunks(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    let mut first = true;
    std::iter::from_fn(move || {
        if rest.is_empty() && !std::mem::take(&mut first) {
            return None;
        }
        first = false;
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// The subcommand that selects [`InitArgs`].
pub const INIT_SUBCOMMAND: &str = "init";

impl InitArgs {
    /// The argument list, starting with the `init` subcommand.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Args::default();
        out.0.push(INIT_SUBCOMMAND.into());
        if let Some(p) = &self.copy_self_to {
            out.path("--copy-self-to", p);
        }
        if let Some(p) = &self.scripts_dir {
            out.path("--scripts-dir", p);
        }
        for (name, body) in &self.scripts {
            // One argument may be at most 128 KiB (MAX_ARG_STRLEN): a longer script goes in
            // pieces, each continuing the one before.
            let mut pieces = chunks(body, SCRIPT_PIECE);
            out.value(
                "--script",
                format!("{name}={}", pieces.next().unwrap_or_default()),
            );
            for piece in pieces {
                out.value("--script-more", piece.to_owned());
            }
        }
        if let Some(p) = &self.steps_dir {
            out.path("--steps-dir", p);
        }
        for name in &self.step_names {
            out.value("--step", name.clone());
        }
        for d in &self.run_dirs {
            out.path("--run-dir", d);
        }
        for d in &self.dirs {
            out.path("--dir", d);
        }
        out.0
    }

    /// Reads the arguments that follow the program name, starting with `init`.
    pub fn parse<I>(args: I) -> Result<Self, ArgsError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        let mut p = Parser::from_args(args);
        match p.next()? {
            Some(Arg::Value(v)) if v == INIT_SUBCOMMAND => {}
            _ => return Err(ArgsError::Missing(INIT_SUBCOMMAND)),
        }
        let mut a = Self::default();
        while let Some(arg) = p.next()? {
            match arg {
                Arg::Long("copy-self-to") => a.copy_self_to = Some(path(&mut p)?),
                Arg::Long("scripts-dir") => a.scripts_dir = Some(path(&mut p)?),
                Arg::Long("script") => {
                    let v = string(&mut p)?;
                    let (name, body) = v.split_once('=').ok_or_else(|| ArgsError::Invalid {
                        flag: "--script",
                        value: v.chars().take(40).collect(),
                        why: "it must be NAME=BODY".into(),
                    })?;
                    a.scripts.push((name.into(), body.into()));
                }
                Arg::Long("script-more") => {
                    let v = string(&mut p)?;
                    let Some((_, body)) = a.scripts.last_mut() else {
                        return Err(ArgsError::Missing("--script"));
                    };
                    body.push_str(&v);
                }
                Arg::Long("steps-dir") => a.steps_dir = Some(path(&mut p)?),
                Arg::Long("step") => a.step_names.push(string(&mut p)?),
                Arg::Long("run-dir") => a.run_dirs.push(path(&mut p)?),
                Arg::Long("dir") => a.dirs.push(path(&mut p)?),
                other => return Err(other.unexpected().into()),
            }
        }
        if !a.scripts.is_empty() && a.scripts_dir.is_none() {
            return Err(ArgsError::Missing("--scripts-dir"));
        }
        if !a.step_names.is_empty() && a.steps_dir.is_none() {
            return Err(ArgsError::Missing("--steps-dir"));
        }
        Ok(a)
    }
}

/// Why an argument list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("invalid value {value:?} for {flag}: {why}")]
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error("no command to run: give it after `--`")]
    NoCommand,
    #[error(transparent)]
    Syntax(#[from] lexopt::Error),
}

#[derive(Default)]
struct Args(Vec<String>);

impl Args {
    fn flag(&mut self, name: &str) {
        self.0.push(name.into());
    }
    // `--name=value` keeps values that start with '-' unambiguous.
    fn value(&mut self, name: &str, value: String) {
        self.0.push(format!("{name}={value}"));
    }
    fn path(&mut self, name: &str, value: &std::path::Path) {
        self.value(name, value.to_string_lossy().into_owned());
    }
}

fn string(p: &mut Parser) -> Result<String, ArgsError> {
    Ok(p.value()?.string()?)
}

fn path(p: &mut Parser) -> Result<PathBuf, ArgsError> {
    Ok(PathBuf::from(string(p)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full() -> EntrypointArgs {
        EntrypointArgs {
            wait_files: vec!["/tekton/downward/ready".into(), "/tekton/run/0/out".into()],
            wait_file_content: true,
            wait_mode: WaitMode::Poll(Duration::from_secs(1)),
            post_file: "/tekton/run/1/out".into(),
            step_metadata_dir: Some("/tekton/steps/step-build".into()),
            results_dir: Some("/tekton/results".into()),
            results: vec!["digest".into(), "url".into()],
            step_results: vec!["sha".into()],
            results_limit: 4096,
            artifacts_dir: Some("/tekton/artifacts".into()),
            termination_path: Some("/tekton/termination".into()),
            on_error: OnError::Continue,
            timeout: Some(Duration::from_millis(90_500)),
            stdout_path: Some("/data/out.log".into()),
            stderr_path: Some("/data/err.log".into()),
            cancel_file: Some("/tekton/downward/cancel".into()),
            credentials: vec![
                Credential::BasicGit {
                    secret: "gh".into(),
                    url: "https://github.com/a?x=1".into(),
                },
                Credential::SshGit {
                    secret: "key".into(),
                    url: "github.com:2222/org/repo".into(),
                },
                Credential::BasicDocker {
                    secret: "hub".into(),
                    url: "https://index.docker.io/v1/".into(),
                },
                Credential::DockerConfig {
                    secret: "regcred".into(),
                },
                Credential::DockerCfg {
                    secret: "old".into(),
                },
            ],
            when: vec![v1::WhenExpression {
                input: Some("$(steps.make.results.ok)".into()),
                operator: Some(v1::WhenOperator::In),
                values: vec!["yes".into()],
                cel: None,
            }],
            command: vec!["sh".into(), "-c".into(), "--not-a-flag".into(), "".into()],
        }
    }

    #[test]
    fn every_field_round_trips() {
        let a = full();
        assert_eq!(EntrypointArgs::parse(a.to_args()).unwrap(), a);
        let minimal = EntrypointArgs::new("/tekton/run/0/out", vec!["true".into()]);
        assert_eq!(
            minimal.to_args(),
            ["--post-file=/tekton/run/0/out", "--", "true"]
        );
        assert_eq!(EntrypointArgs::parse(minimal.to_args()).unwrap(), minimal);
    }

    #[test]
    fn flags_also_read_with_separate_values() {
        let a = EntrypointArgs::parse([
            "--post-file",
            "/p",
            "--timeout",
            "1m",
            "--wait-mode",
            "fifo",
            "echo",
            "--post-file",
        ])
        .unwrap();
        assert_eq!(a.timeout, Some(Duration::from_secs(60)));
        assert_eq!(a.wait_mode, WaitMode::Fifo);
        assert_eq!(a.command, ["echo", "--post-file"]);
    }

    #[test]
    fn bad_arguments_say_which_flag_and_why() {
        let err = |args: &[&str]| EntrypointArgs::parse(args).unwrap_err().to_string();
        assert_eq!(err(&["--", "true"]), "--post-file is required");
        assert_eq!(
            err(&["--post-file=/p"]),
            "no command to run: give it after `--`"
        );
        assert!(err(&["--post-file=/p", "--timeout=soon", "--", "x"]).contains("--timeout"));
        assert!(
            err(&["--post-file=/p", "--on-error=ignore", "--", "x"])
                .contains("continue or stopAndFail")
        );
        assert!(err(&["--post-file=/p", "--wait-mode=poll:0s", "--", "x"]).contains("above zero"));
        assert!(err(&["--post-file=/p", "--results-limit=big", "--", "x"]).contains("bytes"));
        assert!(err(&["--post-file=/p", "--bogus", "--", "x"]).contains("--bogus"));
        assert!(err(&["--post-file"]).contains("missing argument"));
        assert!(err(&["--post-file=/p", "--basic-git=nourl", "--", "x"]).contains("SECRET=URL"));
        assert!(err(&["--post-file=/p", "--ssh-git==github.com", "--", "x"]).contains("--ssh-git"));
        assert!(err(&["--post-file=/p", "--docker-config=", "--", "x"]).contains("name a Secret"));
    }

    #[test]
    fn init_arguments_round_trip() {
        let a = InitArgs {
            copy_self_to: Some("/tekton/bin/entrypoint".into()),
            scripts_dir: Some("/tekton/scripts".into()),
            scripts: vec![("script-0".into(), "#!/bin/sh\necho a=b\n--x".into())],
            steps_dir: Some("/tekton/steps".into()),
            step_names: vec!["build".into(), "push".into()],
            run_dirs: vec!["/tekton/run/0".into(), "/tekton/run/1".into()],
            dirs: vec!["/workspace/src".into()],
        };
        let args = a.to_args();
        assert_eq!(args[0], "init");
        assert_eq!(InitArgs::parse(args).unwrap(), a);
        assert_eq!(InitArgs::parse(["init"]).unwrap(), InitArgs::default());
    }

    #[test]
    fn a_script_longer_than_an_argument_may_be_goes_in_pieces() {
        let body = format!(
            "#!/bin/sh\n{}é{}",
            "x".repeat(SCRIPT_PIECE - 12),
            "y".repeat(300_000)
        );
        let a = InitArgs {
            scripts_dir: Some("/tekton/scripts".into()),
            scripts: vec![
                ("script-0".into(), body),
                ("script-1".into(), String::new()),
            ],
            ..InitArgs::default()
        };
        let args = a.to_args();
        assert!(
            args.iter().all(|a| a.len() <= SCRIPT_PIECE + 20),
            "{}",
            args.len()
        );
        assert_eq!(
            args.iter()
                .filter(|a| a.starts_with("--script-more="))
                .count(),
            4
        );
        assert_eq!(InitArgs::parse(args).unwrap(), a);
        let err = InitArgs::parse(["init", "--scripts-dir=/s", "--script-more=x"]).unwrap_err();
        assert!(err.to_string().contains("--script"), "{err}");
    }

    #[test]
    fn init_refuses_scripts_without_a_directory() {
        let err = InitArgs::parse(["init", "--script=a=b"]).unwrap_err();
        assert_eq!(err.to_string(), "--scripts-dir is required");
        let err = InitArgs::parse(["init", "--scripts-dir=/s", "--script=nobody"]).unwrap_err();
        assert!(err.to_string().contains("NAME=BODY"), "{err}");
        assert!(InitArgs::parse(["run"]).is_err());
    }

    fn text() -> impl Strategy<Value = String> {
        "[ -~\n\u{e9}\u{4e2d}]{0,12}"
    }

    proptest! {
        #[test]
        fn arbitrary_arguments_round_trip(
            wait_files in proptest::collection::vec("/[a-z0-9/._-]{1,10}", 0..3),
            content: bool,
            post in "/[a-z0-9/._=-]{1,20}",
            results in proptest::collection::vec("[a-z][a-z0-9-]{0,8}", 0..3),
            limit: u64,
            continue_: bool,
            timeout_ms in proptest::option::of(0u64..10_000_000),
            poll_ms in proptest::option::of(1u64..100_000),
            command in proptest::collection::vec(text(), 1..5),
        ) {
            let mut a = EntrypointArgs::new(post, command);
            a.wait_files = wait_files.into_iter().map(PathBuf::from).collect();
            a.wait_file_content = content;
            a.results = results;
            a.results_limit = limit;
            a.on_error = if continue_ { OnError::Continue } else { OnError::StopAndFail };
            a.timeout = timeout_ms.map(Duration::from_millis);
            a.wait_mode = poll_ms.map_or(WaitMode::Auto, |ms| WaitMode::Poll(Duration::from_millis(ms)));
            prop_assert_eq!(EntrypointArgs::parse(a.to_args()).unwrap(), a);
        }
    }
}
