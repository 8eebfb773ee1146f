//! The tektite node agent: watches every step's markers on this node with one inotify
//! instance and streams step events to the controller; serves Prometheus metrics.

mod http;
mod link;
mod metrics;
mod outbox;
mod pods;
mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tektite_api::step::DEFAULT_RESULTS_LIMIT;
use tektite_node_agent::{Config, Event, Watcher};
use tektite_proto::agent as pb;
use tokio::sync::mpsc;

use crate::http::Health;
use crate::link::LinkConfig;
use crate::metrics::Metrics;
use crate::outbox::{Limits, Outbox};
use crate::pods::PodBook;
use crate::session::Session;

#[derive(Debug, Parser)]
#[command(name = "tektite-node-agent", version, about)]
struct Args {
    /// The controller's agent endpoint, `http://host:port` or `https://host:port`.
    #[arg(long, env = "TEKTITE_CONTROLLER")]
    controller: String,
    /// This node's name (from the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The kubelet's root directory; Pods live under `<root>/pods`.
    #[arg(long, env = "TEKTITE_KUBELET_ROOT", default_value = "/var/lib/kubelet")]
    kubelet_root: PathBuf,
    /// The projected ServiceAccount token sent as `authorization: Bearer`; read again on
    /// every connect. Without it the agent sends no credentials.
    #[arg(long, env = "TEKTITE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// PEM CA bundle to check an `https` controller with (default: the system's roots).
    #[arg(long, env = "TEKTITE_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "TEKTITE_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// Largest total of one step's results read from its state record, in bytes.
    #[arg(long, default_value_t = DEFAULT_RESULTS_LIMIT)]
    results_limit: u64,
    /// Unacknowledged events kept before the agent pauses reading markers.
    #[arg(long, default_value_t = 10_000)]
    buffer_events: usize,
    /// Unacknowledged bytes kept before the agent pauses reading markers.
    #[arg(long, default_value_t = 64 << 20)]
    buffer_bytes: usize,
    /// Seconds between heartbeats on the controller stream.
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
    /// Do not watch this node's Pods (no step names, no Pod lifecycle metrics).
    #[arg(long)]
    no_pod_watch: bool,
    /// Log filter, as RUST_LOG takes it.
    #[arg(long, env = "TEKTITE_LOG", default_value = "info")]
    log_level: String,
    /// Log lines as text, or as one JSON object per line.
    #[arg(long, value_enum, env = "TEKTITE_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level {:?} is not a valid filter", args.log_level))?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let book = Arc::new(Mutex::new(PodBook::default()));

    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {} for metrics", args.metrics_addr))?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    tokio::spawn(http::serve(listener, metrics.clone(), health.clone()));

    let watcher = Watcher::new(Config {
        root: args.kubelet_root.clone(),
        results_limit: args.results_limit,
    })
    .with_context(|| {
        format!(
            "cannot watch the Pods under {}",
            args.kubelet_root.display()
        )
    })?;
    let (events_tx, events) = mpsc::channel(1024);
    health.set_watching(true);
    {
        let (metrics, health) = (metrics.clone(), health.clone());
        std::thread::Builder::new()
            .name("watcher".into())
            .spawn(move || watch(watcher, events_tx, &metrics, &health))
            .context("cannot start the watcher thread")?;
    }

    if args.no_pod_watch {
        tracing::info!("not watching Pods: steps are reported by index only");
    } else {
        match kube::Client::try_default().await {
            Ok(client) => {
                tokio::spawn(pods::watch(
                    client,
                    args.node_name.clone(),
                    book.clone(),
                    metrics.clone(),
                ));
            }
            Err(error) => tracing::warn!(
                %error,
                "no Kubernetes client: steps are reported by index only and Pod lifecycle metrics are off"
            ),
        }
    }

    let session = Session {
        link: LinkConfig {
            address: args.controller.clone(),
            token_file: args.token_file.clone(),
            ca_file: args.ca_file.clone(),
            hello: hello(&args.node_name),
            queue: args.buffer_events + 64,
        },
        outbox: Outbox::new(Limits {
            events: args.buffer_events.max(1),
            bytes: args.buffer_bytes,
        }),
        heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
        book,
        metrics,
        health: health.clone(),
    };
    session.run(events, shutdown()).await;
    if health.is_watching() {
        tracing::info!("stopped");
        Ok(())
    } else {
        anyhow::bail!("the marker watcher stopped; see the error above")
    }
}

/// The watcher's thread: blocks on inotify (no timer: an idle node costs no CPU), hands
/// events to the session (waiting when it is full) and keeps the watcher gauges current.
fn watch(mut watcher: Watcher, events: mpsc::Sender<Event>, metrics: &Metrics, health: &Health) {
    let mut seen = tektite_node_agent::Stats::default();
    loop {
        let batch = match watcher.next_events(None) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "the marker watcher failed");
                health.set_watching(false);
                return;
            }
        };
        let stats = watcher.stats();
        metrics
            .inotify_overflows
            .inc_by(stats.overflows - seen.overflows);
        metrics
            .watch_failures
            .inc_by(stats.watch_failures - seen.watch_failures);
        seen = stats;
        metrics.pods.set(watcher.pod_count() as i64);
        metrics.watches.set(watcher.watch_count() as i64);
        for event in batch {
            if events.blocking_send(event).is_err() {
                return;
            }
        }
    }
}

fn hello(node_name: &str) -> pb::Hello {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let started = jiff::Timestamp::now();
    pb::Hello {
        node_name: node_name.to_owned(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        agent_run_id: format!("{}-{}", std::process::id(), started.as_nanosecond()),
        boot_id,
    }
}

/// SIGTERM (the kubelet stopping the agent) or Ctrl-C.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping");
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::rbac::v1::ClusterRole;

    /// The documents of deploy/daemonset.yaml, by kind.
    fn manifest(kind: &str) -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/daemonset.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        docs.into_iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {path}"))
    }

    #[test]
    fn the_daemonset_passes_flags_the_agent_takes_and_mounts_what_they_name() {
        let ds: DaemonSet = serde_json::from_value(manifest("DaemonSet")).unwrap();
        let pod = ds.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        let mut argv = vec![
            "tektite-node-agent".to_owned(),
            "--node-name=from-env".to_owned(),
        ];
        argv.extend(c.args.clone().unwrap());
        let args = Args::try_parse_from(&argv).unwrap_or_else(|e| panic!("{e}"));

        let env = c.env.as_ref().unwrap();
        let node = env.iter().find(|e| e.name == "NODE_NAME").unwrap();
        let field = node
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap();
        assert_eq!(field.field_path, "spec.nodeName");

        let mounts = c.volume_mounts.as_ref().unwrap();
        let mount_of = |path: &std::path::Path| {
            mounts
                .iter()
                .find(|m| path.starts_with(&m.mount_path))
                .unwrap_or_else(|| panic!("nothing mounted at {}", path.display()))
        };
        let pods = mount_of(&args.kubelet_root.join("pods"));
        assert_eq!(
            pods.mount_path,
            args.kubelet_root.join("pods").to_str().unwrap()
        );
        assert_eq!(pods.read_only, Some(true));
        assert_eq!(pods.mount_propagation.as_deref(), Some("HostToContainer"));
        let volumes = pod.volumes.as_ref().unwrap();
        let volume = |name: &str| volumes.iter().find(|v| v.name == name).unwrap();
        assert_eq!(
            volume(&pods.name).host_path.as_ref().unwrap().path,
            pods.mount_path
        );
        let token = mount_of(args.token_file.as_ref().unwrap());
        let projected = volume(&token.name).projected.as_ref().unwrap();
        let sa = projected.sources.as_ref().unwrap()[0]
            .service_account_token
            .as_ref()
            .unwrap();
        assert_eq!(
            std::path::Path::new(&token.mount_path).join(&sa.path),
            *args.token_file.as_ref().unwrap()
        );
        mount_of(args.ca_file.as_ref().unwrap());

        let port = c.ports.as_ref().unwrap()[0].container_port;
        assert_eq!(port, i32::from(args.metrics_addr.port()));
        let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .clone()
                .unwrap()
        };
        assert_eq!(probe_path(&c.liveness_probe), "/healthz");
        assert_eq!(probe_path(&c.readiness_probe), "/readyz");

        let security = c.security_context.as_ref().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        let caps = security.capabilities.as_ref().unwrap();
        assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
        assert_eq!(
            caps.add.as_deref(),
            Some(&["DAC_READ_SEARCH".to_owned()][..])
        );
        let resources = c.resources.as_ref().unwrap();
        assert!(resources.requests.is_some() && resources.limits.is_some());
        assert_eq!(
            pod.tolerations.as_ref().unwrap()[0].operator.as_deref(),
            Some("Exists")
        );
    }

    #[test]
    fn the_agent_may_only_read_pods() {
        let role: ClusterRole = serde_json::from_value(manifest("ClusterRole")).unwrap();
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["pods".to_owned()][..])
        );
        assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
    }
}
