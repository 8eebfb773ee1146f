//! The committed help text matches what the agent prints. Regenerate after changing a
//! flag: `UPDATE_SNAPSHOTS=1 cargo test -p tektite-node-agent --test help`.

use std::path::Path;
use std::process::Command;

#[test]
fn help_matches_the_snapshot() {
    // No environment: clap would print the values of the flags' env fallbacks.
    let out = Command::new(env!("CARGO_BIN_EXE_tektite-node-agent"))
        .arg("--help")
        .env_clear()
        .output()
        .expect("run the agent");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help.txt");
    tektite_tests::snapshot(&path, &text, "cargo test -p tektite-node-agent --test help");
}

#[test]
fn a_missing_controller_address_is_a_clear_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_tektite-node-agent"))
        .args(["--node-name", "n"])
        .env_clear()
        .output()
        .expect("run the agent");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--controller"), "{err}");
}
