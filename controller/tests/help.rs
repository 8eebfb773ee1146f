//! The committed help text matches what the controller prints. Regenerate after changing
//! a flag: `UPDATE_SNAPSHOTS=1 cargo test -p tektite-controller --test help`.

use std::path::Path;
use std::process::Command;

fn controller(args: &[&str]) -> std::process::Output {
    // No environment: clap would print the values of the flags' env fallbacks.
    Command::new(env!("CARGO_BIN_EXE_tektite-controller"))
        .args(args)
        .env_clear()
        .output()
        .expect("run the controller")
}

#[test]
fn help_matches_the_snapshot() {
    let out = controller(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help.txt");
    tektite_tests::snapshot(&path, &text, "cargo test -p tektite-controller --test help");
}

#[test]
fn bad_flags_are_clear_usage_errors() {
    for (args, names) in [
        (&[][..], "--entrypoint-image"),
        (
            &["--entrypoint-image", "e", "--coschedule", "nodes"],
            "isolate-pipelinerun",
        ),
        (
            &["--entrypoint-image", "e", "--agent-grace", "soon"],
            "--agent-grace",
        ),
    ] {
        let out = controller(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(names), "{args:?}: {err}");
    }
}
