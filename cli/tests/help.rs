//! The committed help texts match what `tkt` prints. Regenerate after changing a
//! command: `UPDATE_SNAPSHOTS=1 cargo test -p tektite-cli --test help`.

use std::path::Path;
use std::process::Command;

fn check(args: &[&str], snapshot: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_tkt"))
        .args(args)
        .env_remove("TKT_LOG")
        .env_remove("TKT_LOG_FORMAT")
        .output()
        .expect("run tkt");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(snapshot);
    tektite_tests::snapshot(&path, &text, "cargo test -p tektite-cli --test help");
}

#[test]
fn top_level_help_matches_the_snapshot() {
    check(&["--help"], "tkt.txt");
}

#[test]
fn validate_help_matches_the_snapshot() {
    check(&["validate", "--help"], "tkt-validate.txt");
}

#[test]
fn run_help_matches_the_snapshot() {
    check(&["run", "--help"], "tkt-run.txt");
}

#[test]
fn convert_help_matches_the_snapshot() {
    check(&["convert", "--help"], "tkt-convert.txt");
}

#[test]
fn cluster_commands_help_matches_the_snapshots() {
    for (args, snapshot) in [
        (&["pipelinerun", "--help"][..], "tkt-pipelinerun.txt"),
        (
            &["pipelinerun", "logs", "--help"],
            "tkt-pipelinerun-logs.txt",
        ),
        (&["taskrun", "--help"], "tkt-taskrun.txt"),
        (&["pipeline", "--help"], "tkt-pipeline.txt"),
        (&["pipeline", "start", "--help"], "tkt-pipeline-start.txt"),
        (&["task", "--help"], "tkt-task.txt"),
    ] {
        check(args, snapshot);
    }
}
