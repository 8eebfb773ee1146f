//! A real Prometheus (Debian's `prometheus` package; `.ci/run` installs it) on 127.0.0.1,
//! scraping the targets a test gives it every second, with its TSDB in the test's temp
//! dir, queried through its HTTP API. Ended by its PID when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How often every target is scraped.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    port: u16,
}

/// Whether this machine has Prometheus.
pub fn installed() -> bool {
    Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Prometheus {
    /// Starts Prometheus under `dir` scraping each `(job, host:port)`; returns once it is
    /// ready.
    pub async fn start(dir: &Path, targets: &[(&str, String)]) -> Prometheus {
        assert!(
            installed(),
            "prometheus is not on PATH: install Debian's prometheus package (.ci/run does)"
        );
        let mut config = format!(
            "global:\n  scrape_interval: {s}s\n  scrape_timeout: {s}s\nscrape_configs:\n",
            s = SCRAPE_INTERVAL.as_secs()
        );
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ));
        }
        std::fs::create_dir_all(dir).expect("the Prometheus dir");
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).expect("writing prometheus.yml");
        let port = crate::node::free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("the log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let mut p = Prometheus { child, port };
        let began = Instant::now();
        while !p
            .get("/-/ready")
            .await
            .is_some_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"))
        {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
                panic!("prometheus exited ({status}):\n{log}");
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "prometheus was not ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p
    }

    /// One HTTP GET of `path`, the whole response.
    async fn get(&self, path: &str) -> Option<String> {
        crate::http_get(self.port, path).await
    }

    /// The JSON an API path answers.
    async fn api(&self, path: &str) -> Value {
        let response = self.get(path).await.expect("prometheus answers");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {response}"))
    }

    /// `expr` evaluated now (`/api/v1/query`): the API's whole answer.
    pub async fn query(&self, expr: &str) -> Value {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", expr)
            .finish();
        self.api(&format!("/api/v1/query?{q}")).await
    }

    /// Waits until every target has been scraped, successfully, after `since`.
    pub async fn scraped_after(&self, since: jiff::Timestamp) {
        let began = Instant::now();
        loop {
            let targets = self.api("/api/v1/targets").await;
            let active = targets["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let fresh = active.iter().all(|t| {
                t["health"] == "up"
                    && t["lastScrape"]
                        .as_str()
                        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                        .is_some_and(|at| at > since)
            });
            if !active.is_empty() && fresh {
                return;
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "the targets were not scraped within 30 s: {active:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        crate::stop(&mut self.child);
    }
}
