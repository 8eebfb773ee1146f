//! End-to-end tests across crates live in `tests/tests/`. This library holds what the
//! crates' own tests share.

use std::path::Path;

pub mod api_server;
pub mod kubelet;
pub mod node;
pub mod prometheus;
pub mod registry;
pub mod structural;

/// Makes `dir` a git repository (branch `main`) with one commit of `files` (name,
/// content), for tests that clone from a real repository.
pub fn git_repo(dir: &Path, files: &[(&str, &str)]) {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("writing a file in the repository");
    }
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "one"]);
}

/// Checks `actual` against the committed snapshot at `path`, or rewrites the snapshot
/// when `UPDATE_SNAPSHOTS` is set. `regenerate` is the command that does that, for the
/// failure message.
pub fn snapshot(path: &Path, actual: &str, regenerate: &str) {
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        committed,
        actual,
        "{} is stale: run `UPDATE_SNAPSHOTS=1 {regenerate}` and commit it",
        path.display()
    );
}
