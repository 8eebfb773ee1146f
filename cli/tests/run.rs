//! `tkt run` end to end: the real binary runs every example and made-up pipelines, with
//! real processes, real files and real inotify; the JSON it prints is asserted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// `tkt run ARGS -o json` with its state under `state`.
fn command(args: &[&str], state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tkt"));
    cmd.arg("run")
        .args(args)
        .args(["-o", "json"])
        .env("XDG_STATE_HOME", state)
        .env_remove("TKT_LOG")
        .stdin(Stdio::null());
    cmd
}

struct Ran {
    code: i32,
    list: Value,
    stderr: String,
}

impl Ran {
    fn items(&self, kind: &str) -> Vec<&Value> {
        self.list["items"]
            .as_array()
            .map(|a| a.iter().filter(|i| i["kind"] == kind).collect())
            .unwrap_or_default()
    }

    fn pipeline_run(&self) -> &Value {
        self.items("PipelineRun")[0]
    }

    /// The TaskRun of pipeline task `name` (or the only TaskRun).
    fn task_run(&self, name: &str) -> &Value {
        let runs = self.items("TaskRun");
        if runs.len() == 1 && name.is_empty() {
            return runs[0];
        }
        runs.into_iter()
            .find(|t| t["metadata"]["labels"]["tekton.dev/pipelineTask"] == name)
            .unwrap_or_else(|| panic!("no TaskRun for {name}: {:#}", self.list))
    }

    fn reason(obj: &Value) -> &str {
        obj["status"]["conditions"][0]["reason"]
            .as_str()
            .unwrap_or("")
    }

    fn result<'v>(obj: &'v Value, name: &str) -> &'v Value {
        obj["status"]["results"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == name))
            .map(|r| &r["value"])
            .unwrap_or(&Value::Null)
    }
}

fn finish(out: Output) -> Ran {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let list = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    Ran {
        code: out.status.code().unwrap_or(-1),
        list,
        stderr,
    }
}

fn run(args: &[&str], state: &Path) -> Ran {
    finish(command(args, state).output().expect("run tkt"))
}

fn example(name: &str) -> String {
    examples().join(name).display().to_string()
}

fn succeeded(r: &Ran) {
    assert_eq!(r.code, 0, "stderr:\n{}\nstdout:\n{:#}", r.stderr, r.list);
}

fn leftover_runs(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("tektite/runs"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn the_hello_pipeline_runs_with_results_when_finally_and_a_shared_workspace() {
    let state = tempfile::tempdir().unwrap();
    let r = run(&[&example("hello-pipeline.yaml")], state.path());
    succeeded(&r);
    assert_eq!(r.list["kind"], "List");
    let pr = r.pipeline_run();
    assert_eq!(Ran::reason(pr), "Succeeded");
    assert_eq!(pr["metadata"]["labels"]["tekton.dev/pipeline"], "hello");
    assert!(
        pr["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("hello-run-")
    );
    assert_eq!(Ran::result(pr, "greeting"), "hello, platform team");
    assert_eq!(pr["status"]["childReferences"].as_array().unwrap().len(), 3);
    let shout = r.task_run("shout");
    assert_eq!(Ran::reason(shout), "Succeeded");
    let labels = &shout["metadata"]["labels"];
    assert_eq!(labels["tekton.dev/task"], "shout");
    assert_eq!(labels["tekton.dev/pipelineRun"], pr["metadata"]["name"]);
    assert_eq!(labels["tekton.dev/taskRun"], shout["metadata"]["name"]);
    assert_eq!(labels["tekton.dev/memberOf"], "tasks");
    assert_eq!(shout["spec"]["params"][0]["value"], "hello, platform team");
    let step = &shout["status"]["steps"][0];
    assert_eq!(step["name"], "shout");
    assert_eq!(step["terminated"]["exitCode"], 0);
    assert_eq!(step["terminated"]["reason"], "Completed");
    // The shared workspace carried greet's file to shout; logs went to stderr.
    assert!(
        r.stderr.contains("[shout : shout] greeted platform team"),
        "{}",
        r.stderr
    );
    let report = r.task_run("report");
    assert_eq!(
        report["metadata"]["labels"]["tekton.dev/memberOf"],
        "finally"
    );
    assert!(r.stderr.contains("finished: Succeeded"), "{}", r.stderr);
    assert!(
        leftover_runs(state.path()).is_empty(),
        "a successful run leaves no state"
    );
}

#[test]
fn a_when_guard_skips_a_task_with_its_reason() {
    let state = tempfile::tempdir().unwrap();
    let r = run(
        &[&example("hello-pipeline.yaml"), "-p", "loud=no"],
        state.path(),
    );
    succeeded(&r);
    let pr = r.pipeline_run();
    assert_eq!(Ran::reason(pr), "Completed");
    assert_eq!(pr["status"]["skippedTasks"][0]["name"], "shout");
    assert_eq!(
        pr["status"]["skippedTasks"][0]["reason"],
        "When Expressions evaluated to false"
    );
    assert!(r.stderr.contains("pipeline") && r.stderr.contains("finished: Completed"));
}

#[test]
fn the_two_step_echo_task_runs_alone() {
    let state = tempfile::tempdir().unwrap();
    let r = run(
        &[&example("echo-task.yaml"), "-p", "greeting=hi there"],
        state.path(),
    );
    succeeded(&r);
    assert!(r.items("PipelineRun").is_empty());
    let tr = r.task_run("");
    assert_eq!(Ran::reason(tr), "Succeeded");
    assert_eq!(
        tr["metadata"]["labels"]["tekton.dev/task"],
        "echo-hello-world"
    );
    let steps = tr["status"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        assert_eq!(s["terminated"]["reason"], "Completed");
        assert!(s["terminated"]["startedAt"].is_string());
        assert!(s["terminated"]["finishedAt"].is_string());
    }
    assert!(r.stderr.contains("] hi there"), "{}", r.stderr);
    assert!(r.stderr.contains(": hi there"), "{}", r.stderr);
}

#[test]
fn a_build_id_passes_between_steps_in_a_v1beta1_task() {
    let state = tempfile::tempdir().unwrap();
    let r = run(&[&example("build-id.yaml")], state.path());
    succeeded(&r);
    let tr = r.task_run("");
    let ts = Ran::result(tr, "timestamp").as_str().unwrap().to_owned();
    assert_eq!(ts.len(), "20261122-101500".len(), "{ts}");
    assert_eq!(
        Ran::result(tr, "build-id"),
        &Value::String(format!("2.3-{ts}"))
    );
}

#[test]
fn test_then_build_feeds_a_result_into_a_param() {
    let state = tempfile::tempdir().unwrap();
    let r = run(&[&example("test-then-build.yaml")], state.path());
    succeeded(&r);
    let pr = r.pipeline_run();
    let image = Ran::result(pr, "image").as_str().unwrap();
    assert!(
        image.starts_with("harbor.k8s.local/course/devops-demo:v0.4.0-"),
        "{image}"
    );
    let build = r.task_run("build-and-push");
    assert_eq!(build["spec"]["params"][0]["value"], image);
    // runAfter: build started only once test had finished.
    let test_end = r.task_run("test")["status"]["completionTime"]
        .as_str()
        .unwrap()
        .to_owned();
    let build_start = build["status"]["startTime"].as_str().unwrap();
    assert!(build_start >= test_end.as_str());
}

#[test]
fn a_bound_cache_persists_across_runs_and_feeds_parallel_tasks() {
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let bind = format!("maven-repo={}", cache.path().display());
    let args = [example("shared-cache.yaml"), "-w".into(), bind];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = run(&args, state.path());
    succeeded(&first);
    assert_eq!(Ran::result(first.pipeline_run(), "fetched"), "3");
    for t in ["build-api", "build-web"] {
        assert_eq!(Ran::result(first.task_run(t), "artifacts"), "3");
    }
    let second = run(&args, state.path());
    succeeded(&second);
    assert_eq!(Ran::result(second.pipeline_run(), "fetched"), "0");
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 3);
}

#[test]
fn retries_on_error_and_timeouts_end_as_tekton_reports_them() {
    let state = tempfile::tempdir().unwrap();
    let r = run(&[&example("retries-timeouts.yaml")], state.path());
    succeeded(&r);
    let pr = r.pipeline_run();
    // A failure under onError: continue still counts as success.
    assert_eq!(Ran::reason(pr), "Succeeded");
    let flaky = r.task_run("flaky");
    assert_eq!(Ran::reason(flaky), "Succeeded");
    let retries = flaky["status"]["retriesStatus"].as_array().unwrap();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0]["conditions"][0]["reason"], "Failed");
    assert_eq!(retries[0]["steps"][0]["terminated"]["exitCode"], 1);
    let lint = r.task_run("lint");
    assert_eq!(Ran::result(lint, "lint-exit-code"), "3");
    assert_eq!(lint["status"]["steps"][0]["terminated"]["exitCode"], 3);
    let slow = r.task_run("slow");
    assert_eq!(Ran::reason(slow), "TaskRunTimeout");
    assert_eq!(slow["spec"]["timeout"], "1s");
}

#[test]
fn steps_talk_to_a_ready_sidecar_which_is_stopped_afterwards() {
    let state = tempfile::tempdir().unwrap();
    let r = run(&[&example("sidecar-service.yaml")], state.path());
    succeeded(&r);
    assert_eq!(
        Ran::result(r.task_run(""), "answer"),
        "hello from the sidecar"
    );
    // The sidecar's port is free again: it was stopped.
    assert!(std::net::TcpStream::connect(("127.0.0.1", 18573)).is_err());
}

#[test]
fn a_v1alpha1_git_resource_clones_a_local_repository() {
    let state = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    tektite_tests::git_repo(
        repo.path(),
        &[("main.go", "package main\n"), ("README.md", "# app\n")],
    );
    let url = format!("resource-source-url={}", repo.path().display());
    let r = run(
        &[
            &example("v1alpha1-git-resource.yaml"),
            "-p",
            &url,
            "-p",
            "pattern=*.go",
        ],
        state.path(),
    );
    succeeded(&r);
    let tr = r.task_run("");
    let steps: Vec<&str> = tr["status"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["git-source-source", "count"]);
    assert!(
        r.stderr.contains("[count] ./main.go") || r.stderr.contains(": count] ./main.go"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("README.md\n"), "{}", r.stderr);
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn two_hundred_tasks_run_in_one_pipeline() {
    let state = tempfile::tempdir().unwrap();
    let mut yaml = String::from(
        "apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata:\n  name: wide\nspec:\n  tasks:\n",
    );
    for i in 0..200 {
        // A fan-out of 199 tasks after the first.
        let after = if i == 0 {
            String::new()
        } else {
            "\n      runAfter: [t0]".into()
        };
        yaml.push_str(&format!(
            "    - name: t{i}{after}\n      taskSpec:\n        results: [{{name: num}}]\n        steps:\n          - name: s\n            image: alpine\n            command: [sh, -c, 'printf {i} > $(results.num.path)']\n"
        ));
    }
    let file = write(state.path(), "wide.yaml", &yaml);
    let r = run(&[&file], state.path());
    succeeded(&r);
    let runs = r.items("TaskRun");
    assert_eq!(runs.len(), 200);
    assert!(runs.iter().all(|t| Ran::reason(t) == "Succeeded"));
    assert_eq!(Ran::result(r.task_run("t199"), "num"), "199");
}

#[test]
fn a_512_kib_result_passes_from_one_task_to_the_next() {
    let state = tempfile::tempdir().unwrap();
    let yaml = r#"
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: big
spec:
  results:
    - name: size
      value: $(tasks.consume.results.size)
  tasks:
    - name: produce
      taskSpec:
        results: [{name: blob}]
        steps:
          - name: make
            image: alpine
            command: [sh, -c, 'head -c 524288 /dev/zero | tr "\0" x > $(results.blob.path)']
    - name: consume
      params:
        - name: blob
          value: $(tasks.produce.results.blob)
      taskSpec:
        params: [{name: blob}]
        results: [{name: size}]
        steps:
          - name: measure
            image: alpine
            # Too long for an argument or an env value (128 KiB each): a script holds it.
            script: |
              printf %s '$(params.blob)' | wc -c | tr -d ' \n' > $(results.size.path)
"#;
    let file = write(state.path(), "big.yaml", yaml);
    let r = run(&[&file], state.path());
    succeeded(&r);
    assert_eq!(Ran::result(r.pipeline_run(), "size"), "524288");
    let blob = Ran::result(r.task_run("produce"), "blob").as_str().unwrap();
    assert_eq!(blob.len(), 524288);
}

/// A pipeline whose first task sleeps, writing its PID where the test can read it.
fn sleeper(dir: &Path) -> String {
    let pid_file = dir.join("sleep.pid");
    let yaml = format!(
        r#"
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: sleepy
spec:
  tasks:
    - name: nap
      taskSpec:
        steps:
          - name: sleep
            image: alpine
            script: |
              echo $$ > {pid}.tmp && mv {pid}.tmp {pid}
              exec sleep 300
    - name: after
      runAfter: [nap]
      taskSpec:
        steps:
          - name: never
            image: alpine
            command: ["true"]
  finally:
    - name: cleanup
      taskSpec:
        steps:
          - name: say
            image: alpine
            command: [echo, "cleaning up"]
"#,
        pid = pid_file.display()
    );
    write(dir, "sleepy.yaml", &yaml)
}

fn wait_for_pid(file: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: i32) -> bool {
    // A zombie is not running: only its parent's wait is missing.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `tkt run` of [`sleeper`] in the background, once its step runs: the child and the
/// step's PID.
fn start_sleeper(state: &Path) -> (Child, i32) {
    let file = sleeper(state);
    let child = command(&[&file], state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, wait_for_pid(&state.join("sleep.pid")))
}

fn wait_output(child: Child) -> Ran {
    finish(child.wait_with_output().unwrap())
}

#[test]
fn ctrl_c_cancels_running_tasks_runs_finally_and_leaves_no_process() {
    let state = tempfile::tempdir().unwrap();
    let (child, pid) = start_sleeper(state.path());
    interrupt(&child);
    let r = wait_output(child);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let pr = r.pipeline_run();
    assert_eq!(Ran::reason(pr), "Cancelled", "{:#}", pr["status"]);
    assert_eq!(Ran::reason(r.task_run("nap")), "TaskRunCancelled");
    assert_eq!(Ran::reason(r.task_run("cleanup")), "Succeeded");
    assert!(
        r.stderr.contains("[cleanup : say] cleaning up"),
        "{}",
        r.stderr
    );
    let skipped = pr["status"]["skippedTasks"].as_array().unwrap();
    assert_eq!(skipped[0]["name"], "after");
    assert!(!alive(pid), "the step's process {pid} outlived tkt");
    assert!(r.stderr.contains("state kept in"), "{}", r.stderr);
}

#[test]
fn a_second_ctrl_c_stops_at_once() {
    let state = tempfile::tempdir().unwrap();
    let (child, pid) = start_sleeper(state.path());
    interrupt(&child);
    interrupt(&child);
    let started = Instant::now();
    let r = wait_output(child);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!alive(pid), "the step's process {pid} outlived tkt");
}

#[test]
fn a_run_timeout_stops_the_pipeline_with_tektons_reason() {
    let state = tempfile::tempdir().unwrap();
    let file = sleeper(state.path());
    let r = run(&[&file, "--timeout", "1s"], state.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    let pr = r.pipeline_run();
    assert_eq!(Ran::reason(pr), "PipelineRunTimeout", "{:#}", pr["status"]);
    let pid = wait_for_pid(&state.path().join("sleep.pid"));
    assert!(!alive(pid));
}

#[test]
fn a_failing_step_fails_the_run_with_exit_code_1() {
    let state = tempfile::tempdir().unwrap();
    let yaml = "apiVersion: tekton.dev/v1\nkind: Task\nmetadata:\n  name: fails\nspec:\n  steps:\n    - name: boom\n      image: alpine\n      command: [sh, -c, 'echo no >&2; exit 7']\n    - name: skipped\n      image: alpine\n      command: ['true']\n";
    let file = write(state.path(), "fails.yaml", yaml);
    let r = run(&[&file], state.path());
    assert_eq!(r.code, 1);
    let tr = r.task_run("");
    assert_eq!(Ran::reason(tr), "Failed");
    assert_eq!(
        tr["status"]["conditions"][0]["message"],
        "\"step-boom\" exited with code 7"
    );
    assert_eq!(tr["status"]["steps"][0]["terminated"]["exitCode"], 7);
    assert!(r.stderr.contains("state kept in"), "{}", r.stderr);
    assert_eq!(
        leftover_runs(state.path()).len(),
        1,
        "a failed run keeps its state"
    );
}

fn invalid(name: &str, yaml: &str, extra: &[&str]) -> String {
    let state = tempfile::tempdir().unwrap();
    let file = write(state.path(), name, yaml);
    let mut args = vec![file.as_str()];
    args.extend(extra);
    let r = run(&args, state.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.list, Value::Null, "nothing on stdout");
    assert!(r.stderr.contains("nothing was run"), "{}", r.stderr);
    assert!(leftover_runs(state.path()).is_empty());
    r.stderr
}

#[test]
fn invalid_input_exits_2_with_field_paths() {
    let err = invalid(
        "bad.yaml",
        "kind: Task\napiVersion: tekton.dev/v1\nmetadata: {name: x}\nspec:\n  steps: [{name: a, image: alpine, script: 'true', imagee: x}]\n",
        &[],
    );
    assert!(err.contains("spec.steps[0].imagee"), "{err}");

    let err = invalid("yaml.yaml", "kind: Task\n  : [\n", &[]);
    assert!(err.contains("yaml.yaml"), "{err}");

    let err = invalid(
        "params.yaml",
        "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: x}\nspec:\n  params: [{name: who}]\n  steps: [{name: a, image: alpine, script: 'echo $(params.who)'}]\n",
        &[],
    );
    assert!(err.contains("spec.params") && err.contains("who"), "{err}");

    let err = invalid(
        "image.yaml",
        "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: x}\nspec:\n  steps: [{name: a, image: alpine}]\n",
        &[],
    );
    assert!(
        err.contains("spec.steps[0]") && err.contains("no command and no script"),
        "{err}"
    );

    let err = invalid(
        "cycle.yaml",
        "apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  tasks:\n    - {name: a, runAfter: [b], taskSpec: {steps: [{name: s, image: alpine, script: 'true'}]}}\n    - {name: b, runAfter: [a], taskSpec: {steps: [{name: s, image: alpine, script: 'true'}]}}\n",
        &[],
    );
    assert!(err.contains("cycle"), "{err}");

    let err = invalid(
        "param.yaml",
        "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: x}\nspec:\n  steps: [{name: a, image: alpine, script: 'true'}]\n",
        &["-p", "nope=1", "-w", "bad"],
    );
    assert!(err.contains("-p nope=1") && err.contains("-w bad"), "{err}");
}

#[test]
fn custom_tasks_are_refused_with_the_task_named_and_nothing_runs() {
    let err = invalid(
        "custom.yaml",
        "apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  tasks:\n    - {name: wait, taskRef: {apiVersion: wait.testing.tekton.dev/v1beta1, kind: Wait}}\n    - {name: ex, taskSpec: {apiVersion: example.dev/v1alpha1, kind: Example, spec: {a: b}}}\n",
        &[],
    );
    assert!(
        err.contains("tasks[0].taskRef (\"wait\")") && err.contains("custom task (Wait)"),
        "{err}"
    );
    assert!(
        err.contains("tasks[1].taskSpec (\"ex\")") && err.contains("custom task (Example)"),
        "{err}"
    );
}

#[test]
fn a_missing_config_map_is_named_before_anything_runs() {
    let err = invalid(
        "cm.yaml",
        "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: x}\nspec:\n  workspaces: [{name: conf}]\n  steps: [{name: a, image: alpine, script: 'true'}]\n---\napiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: r}\nspec:\n  taskRef: {name: x}\n  workspaces: [{name: conf, configMap: {name: settings}}]\n",
        &[],
    );
    assert!(
        err.contains("spec.workspaces[0]") && err.contains("ConfigMap \"settings\""),
        "{err}"
    );
}

#[test]
fn config_map_and_secret_workspaces_hold_their_files() {
    let state = tempfile::tempdir().unwrap();
    let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  mirror: https://maven.example.com
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData:
  token: s3cr3t
---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: read}
spec:
  workspaces: [{name: conf}, {name: creds}]
  results: [{name: out}]
  steps:
    - name: read
      image: alpine
      env:
        - name: TOKEN
          valueFrom: {secretKeyRef: {name: creds, key: token}}
      script: |
        printf '%s %s %s' "$(cat $(workspaces.conf.path)/mirror)" "$(cat /workspace/creds/token)" "$TOKEN" > $(results.out.path)
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: read-run}
spec:
  taskRef: {name: read}
  workspaces:
    - {name: conf, configMap: {name: settings}}
    - {name: creds, secret: {secretName: creds}}
"#;
    let file = write(state.path(), "cm.yaml", yaml);
    let r = run(&[&file], state.path());
    succeeded(&r);
    assert_eq!(
        Ran::result(r.task_run(""), "out"),
        "https://maven.example.com s3cr3t s3cr3t"
    );
}

#[test]
fn a_matrix_fans_out_and_gathers_results_into_arrays() {
    let state = tempfile::tempdir().unwrap();
    let r = run(&[&example("matrix-build.yaml")], state.path());
    succeeded(&r);
    let pr = r.pipeline_run();
    assert_eq!(
        Ran::result(pr, "artifacts"),
        &serde_json::json!(["app-linux/amd64", "app-linux/arm64", "app-windows/amd64"])
    );
    let builds: Vec<&Value> = r
        .items("TaskRun")
        .into_iter()
        .filter(|t| t["metadata"]["labels"]["tekton.dev/pipelineTask"] == "build")
        .collect();
    assert_eq!(builds.len(), 3);
    let name = pr["metadata"]["name"].as_str().unwrap();
    assert_eq!(builds[2]["metadata"]["name"], format!("{name}-build-2"));
    assert!(
        r.stderr
            .contains("[summary : summary] all platforms built: app-linux/amd64 app-linux/arm64 app-windows/amd64"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_step_runs_its_step_action_with_an_earlier_steps_result_and_a_false_when_skips_one() {
    let state = tempfile::tempdir().unwrap();
    let r = run(&[&example("step-action.yaml")], state.path());
    succeeded(&r);
    let tr = r.task_run("");
    assert_eq!(Ran::reason(tr), "Succeeded");
    // sha256 of "contents of tektite\n", the file the first step wrote.
    let digest = "0467ac1ca467a6cbe13a24bb06a67ababd9507f21581b704efcbdd0e86ed028b";
    assert_eq!(
        Ran::result(tr, "digest"),
        digest,
        "the Task's result is the step's"
    );
    let steps = tr["status"]["steps"].as_array().unwrap();
    assert_eq!(steps[1]["name"], "sum");
    assert_eq!(steps[1]["results"][0]["value"], digest);
    assert_eq!(steps[2]["name"], "publish");
    assert_eq!(steps[2]["terminationReason"], "Skipped");
    assert_eq!(steps[2]["terminated"]["exitCode"], 0);
    assert!(!r.stderr.contains("publishing"), "{}", r.stderr);
    // The StepAction's container is written into the step, as status.taskSpec shows.
    let sum = &tr["status"]["taskSpec"]["steps"][1];
    assert_eq!(sum["image"], "docker.io/library/alpine:3.20");
    assert!(sum.get("ref").is_none(), "{sum:#}");
    assert_eq!(sum["env"][0]["value"], "$(steps.write.results.file)");
    assert!(
        r.stderr
            .contains(" : sum] sha256 of /tekton/home/tektite.tar: 0467ac1c"),
        "{}",
        r.stderr
    );
}

const NESTED: &str = r#"
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: write-word}
spec:
  params: [{name: word}]
  workspaces: [{name: out}]
  tasks:
    - name: write
      workspaces: [{name: out}]
      taskSpec:
        workspaces: [{name: out}]
        steps:
          - name: w
            image: alpine
            script: printf %s "$(params.word)" > $(workspaces.out.path)/word
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: parent}
spec:
  workspaces: [{name: shared}]
  tasks:
    - name: nested
      pipelineRef: {name: write-word}
      params: [{name: word, value: hello}]
      workspaces: [{name: out, workspace: shared}]
    - name: after
      runAfter: [nested]
      workspaces: [{name: shared}]
      taskSpec:
        workspaces: [{name: shared}]
        steps:
          - name: read
            image: alpine
            script: test "$(cat $(workspaces.shared.path)/word)" = hello
"#;

#[test]
fn a_task_runs_a_pipeline_as_a_child_pipeline_run_that_shares_a_host_workspace() {
    let state = tempfile::tempdir().unwrap();
    let file = write(state.path(), "nested.yaml", NESTED);
    let host = state.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    let bind = format!("shared={}", host.display());
    let r = run(&[&file, "-w", &bind], state.path());
    succeeded(&r);
    assert_eq!(std::fs::read_to_string(host.join("word")).unwrap(), "hello");
    let runs = r.items("PipelineRun");
    assert_eq!(runs.len(), 2, "{:#}", r.list);
    let (top, child) = (runs[0], runs[1]);
    let top_name = top["metadata"]["name"].as_str().unwrap();
    assert_eq!(child["metadata"]["name"], format!("{top_name}-nested"));
    assert_eq!(
        child["metadata"]["labels"]["tekton.dev/pipeline"],
        "write-word"
    );
    assert_eq!(
        child["metadata"]["labels"]["tekton.dev/pipelineTask"],
        "nested"
    );
    assert_eq!(child["metadata"]["ownerReferences"][0]["name"], top_name);
    assert_eq!(child["spec"]["params"][0]["value"], "hello");
    assert_eq!(Ran::reason(child), "Succeeded");
    let refs = top["status"]["childReferences"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = refs
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap(),
                c["pipelineTaskName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("TaskRun", "after"), ("PipelineRun", "nested")]);
    // The child's TaskRun is the child PipelineRun's, named after it.
    let write = r.task_run("write");
    assert_eq!(
        write["metadata"]["name"],
        format!("{top_name}-nested-write")
    );
    assert_eq!(
        write["metadata"]["labels"]["tekton.dev/pipelineRun"],
        format!("{top_name}-nested")
    );
    assert_eq!(
        child["status"]["childReferences"][0]["name"],
        format!("{top_name}-nested-write")
    );
    assert!(r.stderr.contains("nested/write: Succeeded"), "{}", r.stderr);
}

#[test]
fn a_child_pipeline_run_times_out_at_its_tasks_timeout_and_fails_its_parent() {
    let state = tempfile::tempdir().unwrap();
    let file = write(
        state.path(),
        "slow.yaml",
        r#"
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: slow-parent}
spec:
  tasks:
    - name: slow
      timeout: 1s
      pipelineSpec:
        tasks:
          - name: sleep
            taskSpec:
              steps: [{name: s, image: alpine, script: exec sleep 30}]
    - name: after
      runAfter: [slow]
      taskSpec:
        steps: [{name: never, image: alpine, script: "true"}]
"#,
    );
    let began = Instant::now();
    let r = run(&[&file], state.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(began.elapsed() < Duration::from_secs(20));
    let runs = r.items("PipelineRun");
    assert_eq!(Ran::reason(runs[0]), "Failed");
    assert_eq!(Ran::reason(runs[1]), "PipelineRunTimeout");
    assert_eq!(runs[1]["spec"]["timeouts"]["pipeline"], "1s");
    assert_eq!(runs[0]["status"]["skippedTasks"][0]["name"], "after");
    // Stopped by its PipelineRun's timeout: cancelled, as Tekton reports it.
    assert_eq!(Ran::reason(r.task_run("sleep")), "TaskRunCancelled");
}

/// The README promises every example runs: each must be run by a test in this file.
#[test]
fn every_example_is_run_by_a_test() {
    let source = include_str!("run.rs");
    for entry in std::fs::read_dir(examples()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") {
            assert!(
                source.contains(&format!("example(\"{name}\")")),
                "examples/{name} is not run by any test in cli/tests/run.rs"
            );
        }
    }
}

const LITERAL_PATHS: &str = r#"
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: literal}
spec:
  results: [{name: where}, {name: seen}]
  workspaces: [{name: src}]
  steps:
    - name: write
      image: alpine
      workingDir: /workspace/src/sub
      script: |
        echo hello > /workspace/src/greeting
        printf '%s' "$HOME" > $(results.seen.path)
        printf '%s' "$(pwd)" > /tekton/results/where
    - name: read
      image: alpine
      script: |
        grep -q hello $(workspaces.src.path)/greeting
"#;

#[test]
fn steps_see_pod_paths_in_their_own_mount_namespace() {
    let state = tempfile::tempdir().unwrap();
    let file = write(state.path(), "literal.yaml", LITERAL_PATHS);
    let r = run(&[&file], state.path());
    succeeded(&r);
    let tr = r.task_run("");
    if r.stderr.contains("private mount namespaces") {
        assert_eq!(Ran::result(tr, "where"), "/workspace/src/sub");
        assert_eq!(Ran::result(tr, "seen"), "/tekton/home");
    } else {
        // A machine without namespaces: the paths were rewritten, the steps still work.
        assert!(Ran::result(tr, "where").as_str().unwrap().ends_with("/sub"));
    }
    assert!(!Path::new("/workspace/src/greeting").exists());
}

#[test]
fn without_a_sandbox_pod_paths_are_rewritten_to_the_run_directories() {
    let state = tempfile::tempdir().unwrap();
    let file = write(state.path(), "literal.yaml", LITERAL_PATHS);
    let r = finish(
        command(&[&file], state.path())
            .env("TKT_NO_SANDBOX", "1")
            .output()
            .unwrap(),
    );
    succeeded(&r);
    assert!(r.stderr.contains("TKT_NO_SANDBOX is set"), "{}", r.stderr);
    let tr = r.task_run("");
    let home = Ran::result(tr, "seen").as_str().unwrap();
    assert!(home.starts_with(state.path().to_str().unwrap()), "{home}");
    assert!(home.ends_with("tekton-internal-home"), "{home}");
    let hello = finish(
        command(&[&example("hello-pipeline.yaml")], state.path())
            .env("TKT_NO_SANDBOX", "1")
            .output()
            .unwrap(),
    );
    succeeded(&hello);
    assert_eq!(
        Ran::result(hello.pipeline_run(), "greeting"),
        "hello, platform team"
    );
}

/// Tekton's implicit params and workspaces: a TaskRun's and a PipelineRun's params and
/// workspaces reach embedded specs that do not declare them (Tekton's own examples, read
/// from its suite).
#[test]
fn params_and_workspaces_reach_embedded_specs_undeclared() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tekton-examples/v1");
    let state = tempfile::tempdir().unwrap();
    let tr = suite.join("taskruns/propagating_params_implicit.yaml");
    let r = run(&[tr.to_str().unwrap()], state.path());
    succeeded(&r);
    assert!(r.stderr.contains(": default] hello world!"), "{}", r.stderr);
    let ws = suite.join("taskruns/propagating_workspaces.yaml");
    let r = run(&[ws.to_str().unwrap()], state.path());
    succeeded(&r);
    assert!(
        r.stderr.contains(": simple-step] /workspace/tr-workspace"),
        "{}",
        r.stderr
    );
    let pws = suite.join("pipelineruns/propagating-workspaces.yaml");
    let r = run(&[pws.to_str().unwrap()], state.path());
    succeeded(&r);
    let pr = suite.join("pipelineruns/propagating_params_with_scope_precedence.yaml");
    let r = run(&[pr.to_str().unwrap()], state.path());
    succeeded(&r);
    assert!(
        r.stderr
            .contains("[echo-hello-finally : echo] And finally.. Pipeline Hello World!"),
        "{}",
        r.stderr
    );
}

/// A volume mounted where this machine has no directory (`/etc/<new>/conf`, as
/// `/etc/maven` or `/var/secret` in Tekton's examples) is mounted in the step's own view
/// of that directory: nothing is made on the host.
#[test]
fn a_mount_point_under_a_host_directory_is_made_in_the_step_not_on_the_host() {
    let state = tempfile::tempdir().unwrap();
    let unique = state
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches('.')
        .to_string();
    let mount = format!("/etc/tektite-test-{unique}/conf");
    let yaml = format!(
        r#"
apiVersion: tekton.dev/v1
kind: Task
metadata: {{name: shadow}}
spec:
  results: [{{name: seen}}]
  volumes: [{{name: conf, emptyDir: {{}}}}]
  steps:
    - name: write
      image: alpine
      volumeMounts: [{{name: conf, mountPath: {mount}}}]
      script: |
        echo hi > {mount}/file
        test -e /etc/passwd -o -e /etc/os-release
        cat {mount}/file | tr -d '\n' > $(results.seen.path)
"#
    );
    let file = write(state.path(), "shadow.yaml", &yaml);
    let r = run(&[&file], state.path());
    succeeded(&r);
    assert_eq!(Ran::result(r.task_run(""), "seen"), "hi");
    let parent = Path::new(&mount).parent().unwrap().to_owned();
    assert!(
        !parent.exists(),
        "{} was made on the host",
        parent.display()
    );
}

/// Several runs in the files are run one after another and all reported; when one of
/// them is invalid, none starts.
#[test]
fn several_runs_in_the_files_are_each_run_and_reported() {
    let state = tempfile::tempdir().unwrap();
    let marker = state.path().join("ran");
    let doc = |name: &str, step: &str| {
        format!(
            "apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {{name: {name}}}\nspec:\n  taskSpec:\n    steps:\n      - name: s\n        image: alpine\n        script: {step}\n"
        )
    };
    let two = format!(
        "{}---\n{}",
        doc("first", &format!("touch {}", marker.display())),
        doc("second", "exit 3")
    );
    let file = write(state.path(), "two.yaml", &two);
    let r = run(&[&file], state.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(marker.exists());
    let names: Vec<&str> = r
        .items("TaskRun")
        .iter()
        .filter_map(|t| t["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert!(r.stderr.contains("run 2 of 2"), "{}", r.stderr);

    std::fs::remove_file(&marker).unwrap();
    let bad = format!(
        "{}---\n{}",
        doc("first", &format!("touch {}", marker.display())),
        "apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: bad}\nspec: {}\n"
    );
    let file = write(state.path(), "bad.yaml", &bad);
    let r = run(&[&file], state.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        !marker.exists(),
        "the valid run started before the invalid one was seen"
    );
}
