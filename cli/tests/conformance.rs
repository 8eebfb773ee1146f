//! Tekton's own example suite through `tkt run`: every file outside `no-ci/` of
//! `../shared/tekton-examples/v1` (read in place, never copied) is run, and what happened
//! is compared with `conformance.txt`: the files expected to succeed, and for each one
//! expected to fail or to be refused, why. A file that newly fails, or fails for another
//! reason, fails this test; so does one that newly succeeds, until it is moved to the
//! list (`UPDATE_CONFORMANCE=1 cargo test -p tektite-cli --test conformance` rewrites it).
//! The counts are printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longer than any example that succeeds takes (the slowest sleeps 10 s).
const LIMIT: Duration = Duration::from_secs(60);

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tekton-examples/v1")
}

fn expected_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance.txt")
}

/// Every example file outside `no-ci/`, relative to the suite.
fn examples(dir: &Path, base: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "no-ci") {
                examples(&path, base, out);
            }
        } else if path.extension().is_some_and(|e| e == "yaml") {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push(rel);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    /// `succeeds`, `fails` or `refused`.
    kind: &'static str,
    /// Why, for the last two.
    why: String,
}

/// Why tkt run refused a file: the class of its first error.
fn refusal(stderr: &str) -> String {
    const CLASSES: [&str; 7] = [
        "resolvers need a cluster",
        "it has no command and no script",
        "is not supported with apiVersion",
        "unsupported apiVersion",
        "`tkt run` runs one",
        "a pipeline result must take its value from task results",
        "unknown field",
    ];
    let first = stderr
        .lines()
        .find(|l| !l.starts_with("tkt run: ") && !l.trim().is_empty())
        .unwrap_or_default();
    match CLASSES.iter().find(|c| first.contains(*c)) {
        Some(c) => (*c).to_string(),
        // The message after the document and field it names.
        None => first.rsplit(": ").next().unwrap_or(first).to_string(),
    }
}

/// Why a run failed: the first failed TaskRun's reason and message (else the run's).
fn failure(stdout: &str) -> String {
    let list: Value = serde_json::from_str(stdout).unwrap_or(Value::Null);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let condition = |i: &Value| i["status"]["conditions"][0].clone();
    let failed = items
        .iter()
        .filter(|i| i["kind"] == "TaskRun")
        .map(condition)
        .find(|c| c["status"] == "False")
        .or_else(|| items.first().map(condition))
        .unwrap_or(Value::Null);
    let mut why = format!(
        "{}: {}",
        failed["reason"].as_str().unwrap_or("?"),
        failed["message"].as_str().unwrap_or("?")
    );
    // Generated names differ from run to run.
    for i in &items {
        let meta = &i["metadata"];
        if let (Some(name), Some(prefix)) = (meta["name"].as_str(), meta["generateName"].as_str()) {
            why = why.replace(name, &format!("{prefix}*"));
        }
    }
    why
}

fn run(file: &str) -> Outcome {
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tkt"))
        .args(["run", "-o", "json"])
        .arg(suite().join(file))
        .env("XDG_STATE_HOME", state.path())
        .env_remove("TKT_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tkt starts");
    // Read both pipes as the run goes, so that a chatty run never blocks on them.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // Ended by its PID: a second SIGINT stops `tkt` at once, ending its Pods.
            for _ in 0..2 {
                let _ = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status();
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    match status.and_then(|s| s.code()) {
        Some(0) => Outcome {
            kind: "succeeds",
            why: String::new(),
        },
        Some(2) => Outcome {
            kind: "refused",
            why: refusal(&stderr),
        },
        Some(_) => Outcome {
            kind: "fails",
            why: failure(&stdout),
        },
        None => Outcome {
            kind: "fails",
            why: format!("still running after {LIMIT:?}"),
        },
    }
}

/// `conformance.txt`: `succeeds FILE`, or `fails FILE -- WHY` / `refused FILE -- WHY`.
fn expected() -> BTreeMap<String, Outcome> {
    let text = std::fs::read_to_string(expected_file()).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (head, why) = l.split_once(" -- ").unwrap_or((l, ""));
            let (kind, file) = head.split_once(' ').expect("KIND FILE");
            let kind = match kind {
                "succeeds" => "succeeds",
                "fails" => "fails",
                "refused" => "refused",
                other => panic!("conformance.txt: unknown outcome {other:?} in {l:?}"),
            };
            (
                file.trim().to_string(),
                Outcome {
                    kind,
                    why: why.to_string(),
                },
            )
        })
        .collect()
}

#[test]
fn tektons_example_suite_runs_as_listed() {
    // Alpine's shell is what Tekton's examples are written for (an empty unquoted word in
    // `[[ ]]` is ash's, not bash's): tkt run gives it to alpine-based images where this
    // machine has busybox, and the list below is what happens then.
    let busybox = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("busybox").is_file()));
    assert!(
        busybox,
        "busybox is not on PATH: install Debian's busybox package (.ci/run does) to run Tekton's examples with alpine's shell"
    );
    let base = suite();
    let mut files = Vec::new();
    examples(&base, &base, &mut files);
    assert!(
        files.len() > 100,
        "{} files in {}",
        files.len(),
        base.display()
    );
    let queue = Mutex::new(files.clone());
    let results = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some(file) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let outcome = run(&file);
                    results.lock().unwrap().insert(file, outcome);
                }
            });
        }
    });
    let actual = results.into_inner().unwrap();
    let count = |kind: &str| actual.values().filter(|o| o.kind == kind).count();
    println!(
        "Tekton's example suite through tkt run: {} files, {} succeed, {} fail, {} refused",
        actual.len(),
        count("succeeds"),
        count("fails"),
        count("refused")
    );
    if std::env::var_os("UPDATE_CONFORMANCE").is_some() {
        let mut text = String::from(
            "# What `tkt run` does with each file of Tekton's example suite outside no-ci/\n\
             # (cli/tests/conformance.rs): succeeds, or fails / refused -- why.\n",
        );
        for (file, o) in &actual {
            match o.kind {
                "succeeds" => text.push_str(&format!("succeeds {file}\n")),
                kind => text.push_str(&format!("{kind} {file} -- {}\n", o.why)),
            }
        }
        std::fs::write(expected_file(), text).unwrap();
        return;
    }
    let expected = expected();
    let mut wrong = Vec::new();
    for (file, got) in &actual {
        match expected.get(file) {
            Some(want) if want == got => {}
            Some(want) => wrong.push(format!(
                "{file}: expected {} {}, got {} {}",
                want.kind, want.why, got.kind, got.why
            )),
            None => wrong.push(format!(
                "{file}: not in conformance.txt; got {} {}",
                got.kind, got.why
            )),
        }
    }
    for file in expected.keys().filter(|f| !actual.contains_key(*f)) {
        wrong.push(format!("{file}: listed but not in the suite"));
    }
    assert!(
        wrong.is_empty(),
        "{} files differ from cli/tests/conformance.txt (UPDATE_CONFORMANCE=1 rewrites it once the change is meant):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
