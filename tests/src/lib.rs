//! End-to-end tests across crates live in `tests/tests/`. This library holds what the
//! crates' own tests share.

use std::path::Path;

pub mod api_server;
pub mod kubelet;
pub mod node;
pub mod prometheus;
pub mod registry;
pub mod structural;

/// Ends a process a test started, by its PID: SIGTERM, then SIGKILL after 5 s.
pub fn stop(child: &mut std::process::Child) {
    if let Ok(None) = child.try_wait() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        for _ in 0..250 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One HTTP/1.0 GET of `path` from 127.0.0.1:`port`: the whole response, or `None` when
/// nothing answers.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    Some(body)
}

/// A kubeconfig whose current context reaches the API server at `addr` over plain HTTP,
/// in namespace `default`.
pub fn kubeconfig(addr: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: test, cluster: {{server: \"http://{addr}\"}}}}]\n\
         users: [{{name: test, user: {{}}}}]\ncontexts: [{{name: test, context: {{cluster: test, user: test, namespace: default}}}}]\n\
         current-context: test\n"
    )
}

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

/// A real git server (`git daemon`, from Debian's git) on 127.0.0.1 exporting every
/// repository under its base directory as `git://127.0.0.1:<port>/<name>`. Ended by its
/// PID when dropped.
#[derive(Debug)]
pub struct GitDaemon {
    child: std::process::Child,
    pub port: u16,
}

impl GitDaemon {
    /// Serves the repositories under `base`; returns once it accepts connections.
    pub fn start(base: &Path) -> GitDaemon {
        let port = node::free_port();
        let child = std::process::Command::new("git")
            .arg("daemon")
            .arg(format!("--base-path={}", base.display()))
            .args([
                "--export-all",
                "--reuseaddr",
                "--informative-errors",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting git daemon");
        let began = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                began.elapsed() < std::time::Duration::from_secs(10),
                "git daemon did not listen within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        GitDaemon { child, port }
    }

    /// The URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
