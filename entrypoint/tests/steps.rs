//! The entrypoint as a real process: real marker files, real inotify, real FIFOs, real
//! signals. Every process a test starts is ended by its PID when the test ends.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tektite_api::step::layout::{Marker, PodPaths};
use tektite_api::step::termination::{self, TerminationEntry};
use tektite_api::step::{EntrypointArgs, InitArgs, ResultKind, StepReason, StepState, WaitMode};
use tektite_api::v1::{OnError, WhenExpression, WhenOperator};

const BIN: &str = env!("CARGO_BIN_EXE_tektite-entrypoint");

/// A TaskRun's pod tree under a temp dir.
struct Pod {
    dir: tempfile::TempDir,
    paths: PodPaths,
}

impl Pod {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = PodPaths::rooted_at(dir.path());
        Pod { dir, paths }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Step `i` of a chain: waits for step `i - 1`, records results and a termination message.
    fn step(&self, i: usize, script: &str) -> EntrypointArgs {
        let mut a = EntrypointArgs::new(
            self.paths.post_file(i),
            vec!["sh".into(), "-c".into(), script.into()],
        );
        if i > 0 {
            a.wait_files.push(self.paths.post_file(i - 1));
        }
        a.step_metadata_dir = Some(self.paths.step_metadata_dir(&format!("s{i}")));
        a.results_dir = Some(self.root().join("tekton/results"));
        a.termination_path = Some(self.root().join(format!("termination-{i}")));
        fs::create_dir_all(self.root().join("tekton/results")).unwrap();
        a
    }

    fn state(&self, i: usize) -> StepState {
        let bytes = fs::read(Marker::State.path(&self.paths.post_file(i))).unwrap();
        StepState::decode(&bytes).unwrap()
    }

    fn termination(&self, i: usize) -> Vec<TerminationEntry> {
        termination::decode(
            &fs::read_to_string(self.root().join(format!("termination-{i}"))).unwrap(),
        )
        .unwrap()
    }

    fn posted(&self, i: usize) -> bool {
        self.paths.post_file(i).exists()
    }

    fn failed(&self, i: usize) -> bool {
        Marker::Error.path(&self.paths.post_file(i)).exists()
    }
}

/// A running entrypoint, killed by its PID if the test ends first.
struct Running(Child);

impl Running {
    fn start(args: &EntrypointArgs) -> Self {
        Running(
            Command::new(BIN)
                .args(args.to_args())
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.0.id() as i32)
    }

    fn wait(mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the entrypoint did not end within 30 s"
            );
            sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn run(args: &EntrypointArgs) -> i32 {
    Running::start(args)
        .wait()
        .code()
        .expect("exited, not killed")
}

fn handoff(pod: &Pod, from: usize, to: usize) -> Duration {
    let finished = pod.state(from).finished_at.unwrap();
    let started = pod.state(to).started_at;
    Duration::try_from(started.duration_since(finished)).unwrap_or_default()
}

/// All steps start at once, as a Pod's containers do; their markers order them.
fn chain_runs_in_order(mode: WaitMode) {
    let pod = Pod::new();
    let log = pod.root().join("log");
    let steps: Vec<Running> = (0..8)
        .rev()
        .map(|i| {
            let mut a = pod.step(i, &format!("echo {i} >> {}", log.display()));
            a.wait_mode = mode;
            Running::start(&a)
        })
        .collect();
    for s in steps {
        assert!(s.wait().success());
    }
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "0\n1\n2\n3\n4\n5\n6\n7\n"
    );
    for i in 0..8 {
        assert!(pod.posted(i));
        assert_eq!(pod.state(i).reason, Some(StepReason::Completed));
    }
    for i in 1..8 {
        // Nowhere near the 1 s safety re-check: the wake-up came from inotify or the FIFO.
        let h = handoff(&pod, i - 1, i);
        assert!(h < Duration::from_millis(500), "handoff {i}: {h:?}");
    }
}

#[test]
fn steps_run_in_order_through_their_markers() {
    chain_runs_in_order(WaitMode::Auto);
}

#[test]
fn without_inotify_the_fifo_keeps_order_and_speed() {
    chain_runs_in_order(WaitMode::Fifo);
}

#[test]
fn a_failed_step_skips_every_step_after_it() {
    let pod = Pod::new();
    let steps: Vec<Running> = (0..5)
        .map(|i| {
            let script = if i == 2 {
                "echo boom >&2; exit 3"
            } else {
                "true"
            };
            Running::start(&pod.step(i, script))
        })
        .collect();
    let codes: Vec<i32> = steps
        .into_iter()
        .map(|s| s.wait().code().unwrap())
        .collect();
    assert_eq!(codes, [0, 0, 3, 123, 123]);
    assert!(pod.posted(1) && pod.failed(2) && pod.failed(3) && pod.failed(4));
    let failed = pod.state(2);
    assert_eq!(
        (failed.reason, failed.exit_code),
        (Some(StepReason::Error), Some(3))
    );
    for i in [3, 4] {
        let s = pod.state(i);
        assert_eq!(s.reason, Some(StepReason::Skipped));
        assert_eq!(s.exit_code, None);
        assert!(pod.termination(i).contains(&TerminationEntry {
            key: "Reason".into(),
            value: "Skipped".into(),
            kind: 3
        }));
    }
    assert_eq!(
        fs::read_to_string(pod.root().join("tekton/steps/step-s2/exitCode")).unwrap(),
        "3"
    );
}

#[test]
fn a_step_past_its_timeout_is_killed_with_its_children() {
    let pod = Pod::new();
    let pidfile = pod.root().join("grandchild");
    let mut a = pod.step(
        0,
        &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
    );
    a.timeout = Some(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(run(&a), 124);
    assert!(started.elapsed() < Duration::from_secs(10));
    let s = pod.state(0);
    assert_eq!(s.reason, Some(StepReason::TimeoutExceeded));
    assert_eq!(s.exit_code, Some(137));
    assert!(pod.failed(0));
    let grandchild: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(gone(grandchild), "the step's background sleep outlived it");
}

/// Waits up to 10 s for `test` to hold.
fn wait_until(what: &str, test: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !test() {
        assert!(Instant::now() < deadline, "never: {what}");
        sleep(Duration::from_millis(2));
    }
}

/// Whether process `pid` holds an inotify instance with a watch: the entrypoint is then
/// blocked waiting on a file (its signal handlers are set before it waits).
fn waiting_on_a_file(pid: Pid) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| fs::read_to_string(fd.path()).is_ok_and(|info| info.contains("inotify wd:")))
}

/// Whether a process has ended (a zombie not yet reaped by whoever inherited it counts).
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        let zombie = state
            .as_deref()
            .and_then(|s| s.rsplit(')').next())
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if state.is_none() || zombie || kill(Pid::from_raw(pid), None).is_err() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(10));
    }
}

#[test]
fn orphans_of_the_step_are_reaped() {
    let pod = Pod::new();
    let pidfile = pod.root().join("orphan");
    // The orphan's parent exits at once; the orphan ends after 50 ms while the step still runs.
    let script = format!(
        "sh -c 'sleep 0.05 & echo $! > {}'; sleep 1",
        pidfile.display()
    );
    let running = Running::start(&pod.step(0, &script));
    wait_until("the orphan's pid is written", || {
        fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    });
    let orphan: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Reaped: gone from /proc (a zombie keeps its entry), while the step still runs.
    wait_until("the orphan is reaped", || {
        fs::metadata(format!("/proc/{orphan}")).is_err()
    });
    assert!(
        kill(running.pid(), None).is_ok(),
        "the step ended before the orphan"
    );
    assert!(running.wait().success());
}

#[test]
fn a_cancel_file_that_fills_kills_the_step() {
    let pod = Pod::new();
    let cancel = pod.paths.cancel_file();
    fs::create_dir_all(cancel.parent().unwrap()).unwrap();
    fs::write(&cancel, "").unwrap();
    let mut a = pod.step(0, "sleep 30");
    a.cancel_file = Some(cancel.clone());
    let running = Running::start(&a);
    // The command runs (its start is recorded) before the cancel comes.
    wait_until("the step started", || {
        Marker::State.path(&pod.paths.post_file(0)).exists()
    });
    fs::write(&cancel, "true").unwrap();
    assert_eq!(running.wait().code(), Some(137));
    assert_eq!(pod.state(0).reason, Some(StepReason::Cancelled));
    assert!(pod.failed(0));
    assert!(
        pod.termination(0)
            .iter()
            .any(|e| e.key == "Reason" && e.value == "Cancelled")
    );
}

#[test]
fn on_error_continue_records_the_code_and_lets_the_next_step_run() {
    let pod = Pod::new();
    let mut a = pod.step(0, "exit 5");
    a.on_error = OnError::Continue;
    assert_eq!(run(&a), 0);
    assert!(pod.posted(0) && !pod.failed(0));
    let s = pod.state(0);
    assert_eq!(
        (s.reason, s.exit_code),
        (Some(StepReason::Continued), Some(5))
    );
    assert_eq!(
        fs::read_to_string(pod.root().join("tekton/steps/step-s0/exitCode")).unwrap(),
        "5"
    );
    assert!(
        pod.termination(0)
            .iter()
            .any(|e| e.key == "ExitCode" && e.value == "5")
    );
    assert_eq!(run(&pod.step(1, "true")), 0);
}

#[test]
fn results_land_in_the_state_record_and_the_termination_message() {
    let pod = Pod::new();
    let mut a = pod.step(
        0,
        "printf sha256:abc > $RES/digest; printf 7 > $STEP/results/n",
    );
    a.results = vec!["digest".into(), "never-written".into()];
    a.step_results = vec!["n".into()];
    let mut cmd = Command::new(BIN);
    cmd.args(a.to_args())
        .env("RES", pod.root().join("tekton/results"))
        .env("STEP", a.step_metadata_dir.as_ref().unwrap());
    fs::create_dir_all(a.step_metadata_dir.as_ref().unwrap().join("results")).unwrap();
    assert!(cmd.status().unwrap().success());
    let s = pod.state(0);
    let got: Vec<(&str, ResultKind, &str)> = s
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.kind, r.value.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("digest", ResultKind::Task, "sha256:abc"),
            ("n", ResultKind::Step, "7")
        ]
    );
    let t = pod.termination(0);
    assert!(t.contains(&TerminationEntry {
        key: "digest".into(),
        value: "sha256:abc".into(),
        kind: 1
    }));
    assert!(t.contains(&TerminationEntry {
        key: "n".into(),
        value: "7".into(),
        kind: 4
    }));
    assert!(t.iter().any(|e| e.key == "StartedAt"));
}

#[test]
fn earlier_step_results_reach_args_env_and_when_and_a_false_when_skips_the_step() {
    let pod = Pod::new();
    // Step s0 writes two step results, as its own step_results would collect them.
    let mut a = pod.step(
        0,
        "printf yes > $STEP/results/go; printf '[\"a\",\"b\"]' > $STEP/results/list",
    );
    a.step_results = vec!["go".into(), "list".into()];
    fs::create_dir_all(a.step_metadata_dir.as_ref().unwrap().join("results")).unwrap();
    let status = Command::new(BIN)
        .args(a.to_args())
        .env("STEP", a.step_metadata_dir.as_ref().unwrap())
        .status()
        .unwrap();
    assert!(status.success());

    // Step s1 reads them in its args and env; its when holds.
    let out = pod.root().join("seen");
    let mut b = pod.step(1, "");
    b.command = vec![
        "sh".into(),
        "-c".into(),
        format!("echo \"$@ $GO\" > {}", out.display()),
        "sh".into(),
        "$(steps.s0.results.list[*])".into(),
        "$(steps.s0.results.list[1])".into(),
    ];
    b.when = vec![WhenExpression {
        input: Some("$(steps.s0.results.go)".into()),
        operator: Some(WhenOperator::In),
        values: vec!["yes".into()],
        cel: None,
    }];
    let status = Command::new(BIN)
        .args(b.to_args())
        .env("GO", "go=$(steps.s0.results.go)")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read_to_string(&out).unwrap(), "a b b go=yes\n");

    // Step s2's when is false: skipped, and the next step may run.
    let mut c = pod.step(2, "echo ran > /dev/stderr; exit 1");
    c.when = vec![WhenExpression {
        input: Some("$(steps.s0.results.go)".into()),
        operator: Some(WhenOperator::NotIn),
        values: vec!["yes".into()],
        cel: None,
    }];
    assert_eq!(run(&c), 0);
    assert!(pod.posted(2) && !pod.failed(2));
    let s = pod.state(2);
    assert_eq!(
        (s.reason, s.exit_code),
        (Some(StepReason::WhenSkipped), Some(0))
    );
    assert!(
        pod.termination(2)
            .iter()
            .any(|e| e.key == "Reason" && e.value == "WhenSkipped")
    );

    // A result no step wrote fails the step, naming the reference.
    let mut d = pod.step(3, "true");
    d.command.push("$(steps.s0.results.nope)".into());
    assert_eq!(run(&d), 1);
    assert!(pod.failed(3));
    let message = pod.state(3).message.unwrap();
    assert!(
        message.starts_with("$(steps.s0.results.nope): step \"s0\" wrote no result \"nope\""),
        "{message}"
    );
}

const PROVENANCE: &str = r#"{"inputs":[{"name":"src","values":[{"uri":"git+https://x"}]}],"outputs":[{"name":"image","values":[{"uri":"pkg:oci/app","digest":{"sha256":"ab"}}]}]}"#;

#[test]
fn artifacts_are_collected_and_a_later_scripts_references_read_them() {
    let pod = Pod::new();
    let artifacts = pod.root().join("tekton/artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    // Step s0 writes its own artifacts file (its directory made by the entrypoint), a
    // step result, and the Task's artifacts file.
    let mut a = pod.step(
        0,
        &format!(
            "printf '%s' '{PROVENANCE}' > $STEP/artifacts/provenance.json; printf v1 > $STEP/results/tag; printf '%s' '{{\"outputs\":[{{\"name\":\"log\",\"values\":[{{\"uri\":\"file:///log\"}}]}}]}}' > $ART/provenance.json"
        ),
    );
    a.artifacts_dir = Some(artifacts.clone());
    a.step_results = vec!["tag".into()];
    fs::create_dir_all(a.step_metadata_dir.as_ref().unwrap().join("results")).unwrap();
    let status = Command::new(BIN)
        .args(a.to_args())
        .env("STEP", a.step_metadata_dir.as_ref().unwrap())
        .env("ART", &artifacts)
        .status()
        .unwrap();
    assert!(status.success());
    let kinds: Vec<ResultKind> = pod.state(0).results.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ResultKind::Step,
            ResultKind::StepArtifacts,
            ResultKind::TaskArtifacts
        ]
    );
    assert!(pod.termination(0).iter().any(|e| e.kind == 5));

    // Step s1's script names s0's output and result: the entrypoint rewrites it.
    let scripts = pod.root().join("tekton/scripts");
    fs::create_dir_all(&scripts).unwrap();
    let out = pod.root().join("seen");
    let script = scripts.join("script-1");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho '$(steps.s0.outputs.image) $(steps.s0.results.tag) $(steps.s0.inputs)' > {}\n",
            out.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut b = pod.step(1, "");
    b.command = vec![script.display().to_string()];
    assert_eq!(run(&b), 0, "{:?}", pod.state(1).message);
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "[{\"digest\":{\"sha256\":\"ab\"},\"uri\":\"pkg:oci/app\"}] v1 [{\"uri\":\"git+https://x\"}]\n"
    );
    // The script as written is left alone.
    assert!(
        fs::read_to_string(&script)
            .unwrap()
            .contains("$(steps.s0.outputs.image)")
    );

    // A reference to an artifact that is not there fails the step before it runs.
    let mut c = pod.step(2, "");
    c.command = vec!["echo".into(), "$(steps.s0.outputs.nope)".into()];
    assert_eq!(run(&c), 1);
    let s = pod.state(2);
    assert_eq!(s.reason, Some(StepReason::Error));
    assert!(
        s.message
            .as_deref()
            .unwrap_or_default()
            .contains("no output artifact named \"nope\""),
        "{:?}",
        s.message
    );
}

#[test]
fn an_artifacts_file_that_is_not_an_artifacts_document_fails_the_step() {
    let pod = Pod::new();
    let artifacts = pod.root().join("tekton/artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    let mut a = pod.step(0, "echo '{\"outputs\": 3}' > $ART/provenance.json");
    a.artifacts_dir = Some(artifacts.clone());
    let status = Command::new(BIN)
        .args(a.to_args())
        .env("ART", &artifacts)
        .status()
        .unwrap();
    assert!(!status.success());
    let s = pod.state(0);
    assert_eq!(s.reason, Some(StepReason::InvalidResult));
    assert!(
        s.message
            .as_deref()
            .unwrap_or_default()
            .contains("is not an artifacts document"),
        "{:?}",
        s.message
    );
}

#[test]
fn oversized_results_fail_the_step_and_name_the_limit() {
    let pod = Pod::new();
    let res = pod.root().join("tekton/results");
    let mut a = pod.step(
        0,
        &format!(
            "head -c 3000 /dev/zero | tr '\\0' x > {}/big",
            res.display()
        ),
    );
    a.results = vec!["big".into()];
    a.results_limit = 2048;
    assert_eq!(run(&a), 122);
    assert!(pod.failed(0));
    let s = pod.state(0);
    assert_eq!(s.reason, Some(StepReason::ResultLargerThanAllowedLimit));
    assert_eq!(s.exit_code, Some(0));
    let message = s.message.unwrap();
    assert!(
        message.contains("\"big\"") && message.contains("2 KiB"),
        "{message}"
    );
    assert_eq!(run(&pod.step(1, "true")), 123);
}

#[test]
fn large_results_are_kept_whole_for_the_agent_and_named_in_the_termination_message() {
    let pod = Pod::new();
    let res = pod.root().join("tekton/results");
    let mut a = pod.step(
        0,
        &format!(
            "head -c 100000 /dev/zero | tr '\\0' x > {}/big",
            res.display()
        ),
    );
    a.results = vec!["big".into()];
    assert_eq!(run(&a), 0);
    assert_eq!(pod.state(0).results[0].value.len(), 100_000);
    let raw = fs::read_to_string(pod.root().join("termination-0")).unwrap();
    assert!(raw.len() <= 4096);
    let omitted = pod
        .termination(0)
        .into_iter()
        .find(|e| e.key == "ResultsOmitted")
        .unwrap();
    assert!(omitted.value.contains("big"), "{}", omitted.value);
}

#[test]
fn result_names_that_traverse_or_symlinks_are_refused() {
    let pod = Pod::new();
    let mut a = pod.step(0, "true");
    a.results = vec!["../../etc/passwd".into()];
    assert_eq!(run(&a), 122);
    assert_eq!(pod.state(0).reason, Some(StepReason::InvalidResult));

    let pod = Pod::new();
    let res = pod.root().join("tekton/results");
    let mut a = pod.step(0, &format!("ln -s /etc/passwd {}/leak", res.display()));
    a.results = vec!["leak".into()];
    assert_eq!(run(&a), 122);
    let s = pod.state(0);
    assert_eq!(s.reason, Some(StepReason::InvalidResult));
    assert!(s.results.is_empty());
    assert!(s.message.unwrap().contains("symbolic link"));
}

#[test]
fn the_ready_file_is_waited_for_through_a_symlink_swap() {
    let pod = Pod::new();
    let downward = pod.root().join("tekton/downward");
    // The kubelet's layout: ready -> ..data/ready, ..data -> ..<timestamp>.
    fs::create_dir_all(downward.join("..2026_11_22_1")).unwrap();
    fs::write(downward.join("..2026_11_22_1/ready"), "").unwrap();
    std::os::unix::fs::symlink("..2026_11_22_1", downward.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/ready", downward.join("ready")).unwrap();

    let mut a = pod.step(0, "true");
    a.wait_files = vec![pod.paths.ready_file()];
    a.wait_file_content = true;
    let running = Running::start(&a);
    wait_until("the entrypoint waits on the ready file", || {
        waiting_on_a_file(running.pid())
    });
    assert!(
        !pod.posted(0) && !Marker::State.path(&pod.paths.post_file(0)).exists(),
        "started before the ready annotation was set"
    );

    fs::create_dir_all(downward.join("..2026_11_22_2")).unwrap();
    fs::write(downward.join("..2026_11_22_2/ready"), "READY").unwrap();
    std::os::unix::fs::symlink("..2026_11_22_2", downward.join("..data_tmp")).unwrap();
    let swapped = jiff::Timestamp::now();
    fs::rename(downward.join("..data_tmp"), downward.join("..data")).unwrap();
    assert!(running.wait().success());
    let latency = pod.state(0).started_at.duration_since(swapped);
    assert!(
        Duration::try_from(latency).unwrap() < Duration::from_millis(500),
        "started {latency:?} after the swap"
    );
}

#[test]
fn a_missing_command_fails_with_127_and_says_so() {
    let pod = Pod::new();
    let mut a = pod.step(0, "");
    a.command = vec!["no-such-command-tektite".into()];
    let out = Command::new(BIN).args(a.to_args()).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"no-such-command-tektite\" not found in PATH"),
        "{stderr}"
    );
    let s = pod.state(0);
    assert_eq!(
        (s.reason, s.exit_code),
        (Some(StepReason::Error), Some(127))
    );
    assert!(pod.failed(0));
}

#[test]
fn sigterm_is_passed_on_to_the_step() {
    let pod = Pod::new();
    let marker = pod.root().join("trapped");
    let ready = pod.root().join("trap-set");
    let script = format!(
        "trap 'echo term > {}; exit 7' TERM; touch {}; while :; do sleep 0.02; done",
        marker.display(),
        ready.display()
    );
    let running = Running::start(&pod.step(0, &script));
    wait_until("the step's trap is set", || ready.exists());
    kill(running.pid(), Signal::SIGTERM).unwrap();
    assert_eq!(running.wait().code(), Some(7));
    assert_eq!(fs::read_to_string(&marker).unwrap(), "term\n");
    assert_eq!(pod.state(0).exit_code, Some(7));
}

#[test]
fn sigterm_while_waiting_stops_the_step_and_releases_the_next() {
    let pod = Pod::new();
    let running = Running::start(&pod.step(1, "true"));
    wait_until("the entrypoint waits for the step before", || {
        waiting_on_a_file(running.pid())
    });
    kill(running.pid(), Signal::SIGTERM).unwrap();
    assert_eq!(running.wait().code(), Some(128 + 15));
    assert!(pod.failed(1));
    assert_eq!(pod.state(1).reason, Some(StepReason::Cancelled));
}

#[test]
fn output_is_passed_through_and_copied_to_files() {
    let pod = Pod::new();
    let mut a = pod.step(0, "echo to-out; echo to-err >&2");
    a.stdout_path = Some(pod.root().join("logs/out.txt"));
    a.stderr_path = Some(pod.root().join("logs/err.txt"));
    let out = Command::new(BIN).args(a.to_args()).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"to-out\n");
    assert_eq!(out.stderr, b"to-err\n");
    assert_eq!(
        fs::read_to_string(pod.root().join("logs/out.txt")).unwrap(),
        "to-out\n"
    );
    assert_eq!(
        fs::read_to_string(pod.root().join("logs/err.txt")).unwrap(),
        "to-err\n"
    );
}

#[test]
fn garbage_from_a_crashed_run_does_not_confuse_a_rerun() {
    let pod = Pod::new();
    let post = pod.paths.post_file(0);
    fs::create_dir_all(post.parent().unwrap()).unwrap();
    fs::write(
        Marker::State.path(&post),
        "{\"version\":1,\"startedAt\":\"2026-",
    )
    .unwrap();
    let mut tmp = Marker::State.path(&post).into_os_string();
    tmp.push(".tmp");
    fs::write(&tmp, [0u8; 64]).unwrap();
    fs::write(Marker::Error.path(&post), "").unwrap();
    fs::write(pod.root().join("termination-0"), "\0garbage").unwrap();
    // A regular file where the FIFO should be: waiters must not hang on it.
    fs::write(Marker::Wake.path(&post), "not a fifo").unwrap();

    assert_eq!(run(&pod.step(0, "true")), 0);
    assert!(pod.posted(0) && !pod.failed(0));
    assert_eq!(pod.state(0).reason, Some(StepReason::Completed));
    assert!(!Path::new(&tmp).exists());
    assert!(pod.termination(0).iter().any(|e| e.key == "StartedAt"));
    let mut next = pod.step(1, "true");
    next.wait_mode = WaitMode::Fifo;
    assert_eq!(run(&next), 0);
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let out = Command::new(BIN).args(["--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--post-file is required"));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Exit codes"));
}

#[test]
fn init_places_scripts_that_run_under_sh_with_set_e() {
    let pod = Pod::new();
    let scripts = pod.root().join("tekton/scripts");
    let init = InitArgs {
        copy_self_to: Some(pod.paths.entrypoint_binary()),
        scripts_dir: Some(scripts.clone()),
        scripts: vec![("script-0".into(), "false\necho never\n".into())],
        steps_dir: Some(pod.root().join("tekton/steps")),
        step_names: vec!["s0".into()],
        run_dirs: vec![pod.paths.post_file(0).parent().unwrap().to_owned()],
        dirs: vec![],
    };
    assert!(
        Command::new(BIN)
            .args(init.to_args())
            .status()
            .unwrap()
            .success()
    );
    let mut a = pod.step(0, "");
    a.command = vec![scripts.join("script-0").display().to_string()];
    // The copied binary runs the step.
    let out = Command::new(pod.paths.entrypoint_binary())
        .args(a.to_args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "set -e did not stop the script");
}

#[test]
fn every_started_step_records_its_start_before_the_command_runs() {
    let pod = Pod::new();
    let seen = pod.root().join("seen");
    let state = Marker::State.path(&pod.paths.post_file(0));
    let script = format!("cat {} > {}", state.display(), seen.display());
    assert_eq!(run(&pod.step(0, &script)), 0);
    let at_start = StepState::decode(&fs::read(&seen).unwrap()).unwrap();
    assert!(!at_start.is_finished());
    assert_eq!(at_start.started_at, pod.state(0).started_at);
}

/// The entrypoint run in a private mount namespace where, as a kubelet does, a file of its
/// own is bind-mounted at the step's termination path.
#[test]
fn a_termination_file_bound_as_a_kubelet_binds_it_is_written_in_place() {
    let pod = Pod::new();
    let a = pod.step(0, "true");
    let target = a.termination_path.clone().unwrap();
    let kubelet_file = pod.root().join("kubelet-termination-log");
    fs::write(&target, "").unwrap();
    fs::write(&kubelet_file, "").unwrap();
    let status = Command::new("unshare")
        .args([
            "--mount",
            "--map-root-user",
            "--propagation",
            "private",
            "--",
        ])
        .args([
            "sh",
            "-c",
            r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#,
            "sh",
        ])
        .arg(&kubelet_file)
        .arg(&target)
        .arg(BIN)
        .args(a.to_args())
        .stdin(Stdio::null())
        .status()
        .expect("unshare runs");
    assert_eq!(status.code(), Some(0), "the step failed on the bind mount");
    assert!(pod.posted(0));
    assert_eq!(pod.state(0).reason, Some(StepReason::Completed));
    // What the step wrote went through the mount into the kubelet's file.
    let written = termination::decode(&fs::read_to_string(&kubelet_file).unwrap()).unwrap();
    assert!(written.iter().any(|e| e.key == "StartedAt"), "{written:?}");
}

#[test]
fn an_entrypoint_failure_after_the_command_reaches_the_state_record() {
    let pod = Pod::new();
    let mut a = pod.step(0, "true");
    // The termination message cannot be written: its directory is a regular file.
    fs::write(pod.root().join("not-a-dir"), "").unwrap();
    a.termination_path = Some(pod.root().join("not-a-dir/termination"));
    assert_eq!(run(&a), 125);
    assert!(pod.failed(0) && !pod.posted(0));
    let s = pod.state(0);
    assert_eq!(
        (s.reason, s.exit_code),
        (Some(StepReason::Error), Some(125)),
        "{s:?}"
    );
    assert!(
        s.message
            .as_deref()
            .unwrap_or_default()
            .contains("not-a-dir"),
        "{s:?}"
    );
    // The next step is skipped, as after any failure.
    assert_eq!(run(&pod.step(1, "true")), 123);
}
