//! `tkt run` on this machine, end to end through the real binary: the per-step overhead
//! of a 100-step Task of `true` (target ≤ 5 ms per step above the command itself), and
//! generated 1,000-task pipelines (fan-out/fan-in and a results chain).
//!
//! Run: `cargo build --release -p tektite-cli -p tektite-bench && target/release/local-run [--quick]`
//! (`TKT_NO_SANDBOX=1` in the environment measures steps without mount namespaces).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tektite_api::step::StepState;
use tektite_bench::pipelines::{Shape, pipeline_yaml};
use tektite_bench::{Samples, build_kind, ms};

fn tkt() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    let tkt = me.with_file_name("tkt");
    assert!(
        tkt.exists(),
        "{} is missing: cargo build --release -p tektite-cli -p tektite-bench",
        tkt.display()
    );
    tkt
}

/// Runs `tkt run FILE -o json` (with `--keep` when `keep`: the steps' records stay) with
/// its state under `state`; returns the wall time.
fn run(file: &Path, state: &Path, keep: bool) -> Duration {
    let t = Instant::now();
    let out = Command::new(tkt())
        .args(["run", "-o", "json"])
        .args(keep.then_some("--keep"))
        .arg(file)
        .env("XDG_STATE_HOME", state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run tkt");
    let wall = t.elapsed();
    assert!(
        out.status.success(),
        "tkt run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wall
}

/// Every step state record under `dir`, by step index.
fn records(dir: &Path, out: &mut Vec<(usize, StepState)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            records(&path, out);
        } else if path.file_name().is_some_and(|n| n == "out.state") {
            let index = path
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("tekton-internal-run-"))
                .and_then(|i| i.parse().ok());
            if let (Some(i), Ok(bytes)) = (index, std::fs::read(&path))
                && let Ok(s) = StepState::decode(&bytes)
            {
                out.push((i, s));
            }
        }
    }
}

fn steps_task(n: usize) -> String {
    let mut y = String::from(
        "apiVersion: tekton.dev/v1\nkind: Task\nmetadata:\n  name: many-steps\nspec:\n  steps:\n",
    );
    for i in 0..n {
        let _ = write!(
            y,
            "    - name: s{i}\n      image: docker.io/library/alpine:3.20\n      command: [\"true\"]\n"
        );
    }
    y
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!("local-run: tkt run end to end (real binary, real processes, real inotify)");
    println!(
        "build: {}; machine: {} CPUs",
        build_kind(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    println!(
        "steps: {}",
        if std::env::var_os("TKT_NO_SANDBOX").is_some_and(|v| !v.is_empty() && v != "0") {
            "paths rewritten, no mount namespace (TKT_NO_SANDBOX set)"
        } else {
            "each in a private mount namespace when the machine allows it (unset TKT_NO_SANDBOX)"
        }
    );

    // The command itself, started and reaped directly.
    let mut direct = Samples::default();
    for _ in 0..if quick { 20 } else { 200 } {
        let t = Instant::now();
        let ok = Command::new("true").status().expect("run true").success();
        assert!(ok);
        direct.0.push(t.elapsed());
    }
    println!(
        "\n`true` started and reaped directly: p50 {} ms, p99 {} ms",
        ms(direct.p50()),
        ms(direct.p99())
    );

    // A 100-step Task of `true`.
    const STEPS: usize = 100;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("steps.yaml");
    std::fs::write(&file, steps_task(STEPS)).expect("write the task");
    let mut walls = Samples::default();
    let mut handoffs = Samples::default();
    let mut in_entrypoint = Samples::default();
    for r in 0..if quick { 2 } else { 10 } {
        let state = dir.path().join(format!("state-{r}"));
        walls.0.push(run(&file, &state, true));
        let mut recs = Vec::new();
        records(&state, &mut recs);
        recs.sort_by_key(|(i, _)| *i);
        assert_eq!(recs.len(), STEPS, "one record per step");
        for w in recs.windows(2) {
            let (prev, next) = (&w[0].1, &w[1].1);
            if let Some(end) = prev.finished_at {
                handoffs
                    .0
                    .push(next.started_at.duration_since(end).unsigned_abs());
            }
        }
        for (_, s) in &recs {
            if let Some(end) = s.finished_at {
                in_entrypoint
                    .0
                    .push(end.duration_since(s.started_at).unsigned_abs());
            }
        }
    }
    let per_step =
        |wall: Duration| (wall.saturating_sub(direct.p50() * STEPS as u32)) / STEPS as u32;
    println!("\n100-step Task of `true` ({} runs):", walls.0.len());
    println!("| figure | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    println!(
        "| whole `tkt run` (start, 100 steps, JSON out) | {} | {} |",
        ms(walls.p50()),
        ms(walls.p99())
    );
    println!(
        "| **overhead per step** ((wall − 100 × direct `true`) / 100) | **{}** | **{}** |",
        ms(per_step(walls.p50())),
        ms(per_step(walls.p99()))
    );
    println!(
        "| handoff: step i ends → step i+1's command starts | {} | {} |",
        ms(handoffs.p50()),
        ms(handoffs.p99())
    );
    println!(
        "| a step's own start → end as recorded (command + supervision) | {} | {} |",
        ms(in_entrypoint.p50()),
        ms(in_entrypoint.p99())
    );

    // Generated pipelines.
    println!("\nGenerated pipelines (each task: one step, `sh` writing a result):");
    println!("| shape | tasks | wall s | ms per task |");
    println!("|---|---:|---:|---:|");
    let n = if quick { 100 } else { 1_000 };
    for shape in [Shape::FanOutFanIn, Shape::ResultsChain] {
        let file = dir.path().join(format!("pipeline-{n}.yaml"));
        std::fs::write(&file, pipeline_yaml(shape, n)).expect("write the pipeline");
        let state = dir
            .path()
            .join(format!("state-{}", shape.name().replace([' ', '/'], "-")));
        let wall = run(&file, &state, false);
        println!(
            "| {} | {n} | {:.2} | {:.2} |",
            shape.name(),
            wall.as_secs_f64(),
            wall.as_secs_f64() * 1e3 / n as f64
        );
    }
}
