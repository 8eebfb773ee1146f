//! tektite-controller: the TaskRun and PipelineRun reconcilers, the agents' gRPC ingest,
//! the kube-scheduler extender, and metrics. Only the Lease's holder runs: it alone writes, and it alone is ready, so
//! the Service sends the agents to it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use tektite_api::defaults::Defaults;
use tektite_api::labels::TEKTITE_POD_SELECTOR;
use tektite_api::v1::{PipelineRun, TaskRun};
use tektite_api::v1beta1::CustomRun;
use tektite_controller::agents::Agents;
use tektite_controller::auth::Reviewer;
use tektite_controller::context::{Claim, Clock, Context, Settings};
use tektite_controller::extender::{self, Coschedule, Extender};
use tektite_controller::http::{self, Cache, Health};
use tektite_controller::ingest::Ingest;
use tektite_controller::lenient::{Lenient, mark_undecodable, sort_out};
use tektite_controller::metrics::Metrics;
use tektite_controller::owned::Owned;
use tektite_controller::pod_index::PodIndex;
use tektite_controller::resolve;
use tektite_controller::serving;
use tektite_controller::steps::StepStore;
use tektite_controller::{pipelinerun, taskrun};
use tektite_engine::pod::PodSettings;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tracing::{Instrument, info_span};

/// How a Task's sidecars run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Sidecars {
    /// Native where the API server is Kubernetes 1.29 or later, else containers.
    Auto,
    /// Init containers with restartPolicy: Always, stopped by the kubelet.
    Native,
    /// Containers beside the steps, stopped by swapping their image.
    Containers,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

/// The tektite controller: runs tekton.dev/v1 TaskRuns and PipelineRuns as Pods and
/// learns what their steps did from the node agents.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The image whose /tektite/entrypoint the init container copies into every step Pod.
    #[arg(long, env = "TEKTITE_ENTRYPOINT_IMAGE")]
    entrypoint_image: String,
    /// Claim only runs whose spec.managedBy is tektite.dev/controller (by default also
    /// runs with no managedBy).
    #[arg(long)]
    claim_only_own: bool,
    /// Upper bound in bytes on all results of one TaskRun together.
    #[arg(long, default_value_t = tektite_api::step::DEFAULT_RESULTS_LIMIT)]
    results_limit: u64,
    /// schedulerName of the Pods it creates (a podTemplate's own wins): the scheduler that
    /// consults this controller's extender, e.g. tektite-scheduler.
    #[arg(long)]
    scheduler_name: Option<String>,
    /// An extended resource every Pod's init container asks one of, for a default
    /// scheduler whose extender lists it in managedResources (ignoredByScheduler: true).
    #[arg(long)]
    extender_resource: Option<String>,
    /// How sidecars run: native sidecars (init containers with restartPolicy: Always,
    /// which the kubelet stops once the steps end) or containers beside the steps.
    #[arg(long, value_enum, default_value_t = Sidecars::Auto)]
    sidecars: Sidecars,
    /// A registry (host:port) reached over plain HTTP when a step's image entrypoint is
    /// looked up (a step with neither command nor script); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,
    /// The platform (os/arch) whose command a step runs where an image index's platforms
    /// run different ones; its Pod is then placed on such nodes.
    #[arg(long, default_value = tektite_controller::images::DEFAULT_PLATFORM)]
    image_platform: String,
    /// Where the kube-scheduler extender is served (POST /scheduler/filter and
    /// /scheduler/prioritize).
    #[arg(long, default_value = "0.0.0.0:9444")]
    extender_addr: SocketAddr,
    /// Which Pods of a PipelineRun the extender puts on one node, as Tekton's coschedule.
    #[arg(long, value_enum, default_value_t = Coschedule::Workspaces)]
    coschedule: Coschedule,
    /// How long a node still counts as having an agent after its stream ended.
    #[arg(long, default_value = "15s", value_parser = humantime)]
    agent_grace: Duration,
    /// Where the agents' gRPC stream is served.
    #[arg(long, default_value = "0.0.0.0:9443")]
    grpc_addr: SocketAddr,
    /// Where the validating admission webhook is served (HTTPS, with the gRPC port's
    /// serving certificate).
    #[arg(long, default_value = "0.0.0.0:8443")]
    webhook_addr: SocketAddr,
    /// The Validating and Mutating WebhookConfigurations whose caBundle the leader writes
    /// with its minted CA.
    #[arg(long, default_value = "tektite")]
    webhook_config: String,
    /// The ConfigMap (in --lease-namespace) with Tekton's `config-defaults` keys
    /// (default-timeout-minutes, default-service-account, default-managed-by-label-value)
    /// that the defaulting webhook writes into new documents.
    #[arg(long, default_value = "tektite-defaults")]
    defaults_config: String,
    /// The ConfigMap (in --lease-namespace) with the cluster resolver's settings
    /// (Tekton's keys: default-namespace, allowed-namespaces, blocked-namespaces).
    #[arg(long, default_value = "cluster-resolver-config")]
    cluster_resolver_config: String,
    /// The ConfigMap (in --lease-namespace) with the http resolver's settings (Tekton's
    /// key: fetch-timeout, at most 1m).
    #[arg(long, default_value = "http-resolver-config")]
    http_resolver_config: String,
    /// The ConfigMap (in --lease-namespace) with the git resolver's settings (Tekton's
    /// keys: fetch-timeout, at most 1m; default-revision; default-url).
    #[arg(long, default_value = "git-resolver-config")]
    git_resolver_config: String,
    /// The ConfigMap (in --lease-namespace) with the hub resolver's settings (Tekton's
    /// keys: default-type, default catalogs, artifact-hub-urls, tekton-hub-urls).
    #[arg(long, default_value = "hubresolver-config")]
    hub_resolver_config: String,
    /// The serving certificate and key (PEM) of the gRPC port, e.g. from cert-manager.
    /// Without them the controller serves the one kept in --tls-secret, minting it (and
    /// its CA, published in --ca-secret for the agents) on first start.
    #[arg(long, requires = "tls_key_file", conflicts_with = "no_tls")]
    tls_cert_file: Option<PathBuf>,
    /// The key of --tls-cert-file (PEM).
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// The Secret (in --lease-namespace) holding the minted serving certificate, key and CA.
    #[arg(long, default_value = "tektite-controller-tls")]
    tls_secret: String,
    /// The Secret (in --lease-namespace) holding only the CA, which the agents mount.
    #[arg(long, default_value = "tektite-controller-ca")]
    ca_secret: String,
    /// The Service the agents dial: the minted certificate names it in its namespace.
    #[arg(long, default_value = "tektite-controller")]
    service_name: String,
    /// Serve the agents' stream as plain HTTP/2, for tests only.
    #[arg(long)]
    no_tls: bool,
    /// `/metrics`, `/healthz`, `/readyz`.
    #[arg(long, default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// The audience the agents' tokens are issued for.
    #[arg(long, default_value = "tektite-controller")]
    agent_audience: String,
    /// The agents' ServiceAccount, as namespace/name; no other caller is accepted.
    #[arg(long, default_value = "tektite-system/tektite-node-agent")]
    agent_service_account: String,
    /// The Lease that elects the one replica that writes.
    #[arg(long, default_value = "tektite-controller")]
    lease_name: String,
    /// The Lease's namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "tektite-system")]
    lease_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Reconciles of one kind running at once.
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
    /// Events for one TaskRun closer together than this become one status write.
    #[arg(long, default_value = "5ms", value_parser = humantime)]
    coalesce: Duration,
    /// Which logs to keep, as a tracing filter (e.g. `info,tektite_controller=debug`).
    #[arg(long, default_value = "info", env = "RUST_LOG")]
    log_level: String,
    /// Logs as plain text lines or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
}

fn humantime(s: &str) -> Result<Duration, String> {
    tektite_api::v1::parse_go_duration(s).map_err(|e| e.to_string())
}

fn logging(args: &Args) {
    let filter = tracing_subscriber::EnvFilter::new(&args.log_level);
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// How long stopping may wait for reconciles under way and the agents' streams.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// Whether Task sidecars are native sidecars: as `--sidecars` says, or (auto) as the API
/// server's version allows.
async fn native_sidecars(choice: Sidecars, client: &Client) -> bool {
    match choice {
        Sidecars::Native => true,
        Sidecars::Containers => false,
        Sidecars::Auto => match client.apiserver_version().await {
            Ok(info) => tektite_engine::pod::has_native_sidecars(&info),
            Err(error) => {
                tracing::warn!(%error, "cannot read the API server's version: sidecars run as containers (--sidecars native to choose)");
                false
            }
        },
    }
}

/// Waits until this replica holds the leader Lease: the Lease's state and its watcher's
/// task; `None` when asked to stop first.
async fn lead(
    args: &Args,
    client: &Client,
) -> anyhow::Result<
    Option<(
        watch::Receiver<bool>,
        tokio::task::JoinHandle<
            Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>,
        >,
    )>,
> {
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("tektite-controller-{}", std::process::id()));
    let lease = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .build()
        .await
        .context("setting up the leader Lease")?;
    let (mut leading, lease_task) = lease.watch().await;
    tracing::info!(%identity, lease = %args.lease_name, "waiting to lead");
    tokio::select! {
        _ = shutdown_signal() => return Ok(None),
        r = leading.wait_for(|l| *l) => { r.context("the Lease watcher stopped")?; }
    }
    tracing::info!(%identity, "leading");
    Ok(Some((leading, lease_task)))
}

/// The gRPC server's certificate: the files given, else the one minted from tektite's CA
/// (kept in Secrets); none with `--no-tls`.
/// The serving certificate and key (PEM) of the gRPC and webhook ports, and the CA that
/// signed them when the controller minted them; none under `--no-tls`.
async fn serving_pems(
    args: &Args,
    client: &Client,
) -> anyhow::Result<Option<(String, String, Option<String>)>> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    Ok(match (&args.tls_cert_file, &args.tls_key_file) {
        _ if args.no_tls => None,
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?, None)),
        _ => {
            let secrets = serving::Secrets {
                namespace: args.lease_namespace.clone(),
                serving: args.tls_secret.clone(),
                ca: args.ca_secret.clone(),
            };
            let names = serving::dns_names(&args.service_name, &args.lease_namespace);
            let minted = serving::load_or_mint(client, &secrets, &names, jiff::Timestamp::now())
                .await
                .context("the serving certificate")?;
            Some((minted.cert, minted.key, Some(minted.ca)))
        }
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    logging(&args);
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration: run in a cluster or set KUBECONFIG")?;
    let native_sidecars = native_sidecars(args.sidecars, &client).await;
    tracing::info!(native_sidecars, "sidecars");
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    // Every task spawned here, each in a span of its own; those not drained at shutdown
    // are aborted and awaited there.
    let mut background = JoinSet::new();
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    background.spawn(
        http::serve(listener, metrics.clone(), health.clone()).instrument(info_span!("metrics")),
    );

    // Lead before doing anything: only the leader writes.
    let Some((mut leading, lease_task)) = lead(&args, &client).await? else {
        return Ok(());
    };
    health.set_leading(true);

    let (agent_ns, agent_sa) = args
        .agent_service_account
        .split_once('/')
        .context("--agent-service-account must be namespace/name")?;
    let (wake, woken) = mpsc::channel::<ObjectRef<TaskRun>>(1024);

    // tektite's Pods, indexed by UID, PipelineRun and node, and cached with only what the
    // reconcilers read back.
    let (pods, pod_writer) = reflector::store::<Pod>();
    let pod_index = Arc::new(PodIndex::default());
    let indexer = pod_index.clone();
    let synced = health.clone();
    let pod_events = watcher(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().labels(TEKTITE_POD_SELECTOR),
    )
    .default_backoff()
    .inspect_ok(move |event| {
        indexer.apply(event);
        if matches!(event, watcher::Event::InitDone) {
            synced.cache_synced(Cache::Pods);
        }
    })
    .modify(tektite_controller::pod_cache::slim)
    .reflect(pod_writer)
    .touched_objects();
    // One TaskRun cache, shared by both controllers, and its index by PipelineRun.
    let (task_runs, tr_writer) = reflector::store_shared::<TaskRun>(1024);
    let tr_for_taskruns = tr_writer.subscribe().context("a shared store subscribes")?;
    let tr_for_pipelineruns = tr_writer.subscribe().context("a shared store subscribes")?;
    let task_run_owners = Arc::new(Owned::default());
    let owners = task_run_owners.clone();
    let synced = health.clone();
    // Runs tektite cannot decode are set aside one by one (see `lenient`), never failing
    // the watch of every other run.
    let (tr_aside, tr_unreadable) = mpsc::channel(256);
    let (pr_aside, pr_unreadable) = mpsc::channel(256);
    let (cr_aside, cr_unreadable) = mpsc::channel(256);
    let tr_events = watcher(
        Api::<Lenient<TaskRun>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .try_filter_map(move |e| futures::future::ok(sort_out(e, &tr_aside)))
    .modify(|t| t.managed_fields_mut().clear())
    .inspect_ok(move |event| {
        owners.apply(event);
        if matches!(event, watcher::Event::InitDone) {
            synced.cache_synced(Cache::TaskRuns);
        }
    })
    .reflect_shared(tr_writer)
    .for_each(|_| futures::future::ready(()));
    background.spawn(tr_events.instrument(info_span!("taskrun_watch")));
    // CustomRuns (custom tasks' children), their index by PipelineRun, and the events
    // that wake their PipelineRun when a custom task's controller reports.
    let (custom_runs, cr_writer) = reflector::store::<CustomRun>();
    let custom_run_owners = Arc::new(Owned::default());
    let owners = custom_run_owners.clone();
    let synced = health.clone();
    let cr_events = watcher(
        Api::<Lenient<CustomRun>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .try_filter_map(move |e| futures::future::ok(sort_out(e, &cr_aside)))
    .modify(|c| c.managed_fields_mut().clear())
    .inspect_ok(move |event| {
        owners.apply(event);
        if matches!(event, watcher::Event::InitDone) {
            synced.cache_synced(Cache::CustomRuns);
        }
    })
    .reflect(cr_writer)
    .touched_objects();

    // One PipelineRun cache, shared by its controller and by the parents of child
    // PipelineRuns (Pipelines in Pipelines), and its index by parent.
    let (pipeline_runs, pr_writer) = reflector::store_shared::<PipelineRun>(1024);
    let pr_for_pipelineruns = pr_writer.subscribe().context("a shared store subscribes")?;
    let pr_for_parents = pr_writer.subscribe().context("a shared store subscribes")?;
    let pipeline_run_owners = Arc::new(Owned::default());
    let owners = pipeline_run_owners.clone();
    let pr_events = watcher(
        Api::<Lenient<PipelineRun>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .try_filter_map(move |e| futures::future::ok(sort_out(e, &pr_aside)))
    .modify(|p| p.managed_fields_mut().clear())
    .inspect_ok(move |event| owners.apply(event))
    .reflect_shared(pr_writer)
    .for_each(|_| futures::future::ready(()));
    background.spawn(pr_events.instrument(info_span!("pipelinerun_watch")));

    // Events are queued by the reconcilers and published by one paced task.
    let (events, queued) = tektite_controller::events::Events::new(metrics.events_dropped.clone());
    let events = Arc::new(events);
    let reporter = kube::runtime::events::Reporter {
        controller: "tektite-controller".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    background.spawn(
        tektite_controller::events::publish(
            queued,
            kube::runtime::events::Recorder::new(client.clone(), reporter),
        )
        .instrument(info_span!("events")),
    );
    let resolvers = Arc::new(std::sync::RwLock::new(resolve::Settings::default()));
    let into = resolvers.clone();
    background.spawn(
        watch_config(
            client.clone(),
            args.lease_namespace.clone(),
            args.cluster_resolver_config.clone(),
            |data| Ok(resolve::ClusterConfig::from_config(data)),
            move |c| into.write().unwrap_or_else(|e| e.into_inner()).cluster = c,
        )
        .instrument(info_span!("cluster_resolver_watch")),
    );
    let into = resolvers.clone();
    background.spawn(
        watch_config(
            client.clone(),
            args.lease_namespace.clone(),
            args.http_resolver_config.clone(),
            resolve::HttpConfig::from_config,
            move |c| into.write().unwrap_or_else(|e| e.into_inner()).http = c,
        )
        .instrument(info_span!("http_resolver_watch")),
    );
    let into = resolvers.clone();
    background.spawn(
        watch_config(
            client.clone(),
            args.lease_namespace.clone(),
            args.git_resolver_config.clone(),
            resolve::GitConfig::from_config,
            move |c| into.write().unwrap_or_else(|e| e.into_inner()).git = c,
        )
        .instrument(info_span!("git_resolver_watch")),
    );
    let into = resolvers.clone();
    background.spawn(
        watch_config(
            client.clone(),
            args.lease_namespace.clone(),
            args.hub_resolver_config.clone(),
            resolve::HubConfig::from_config,
            move |c| into.write().unwrap_or_else(|e| e.into_inner()).hub = c,
        )
        .instrument(info_span!("hub_resolver_watch")),
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: Settings {
            claim: if args.claim_only_own {
                Claim::OwnOnly
            } else {
                Claim::UnsetOrOwn
            },
            pod: PodSettings {
                entrypoint_image: args.entrypoint_image.clone(),
                results_limit: args.results_limit,
                scheduler_name: args.scheduler_name.clone(),
                extender_resource: args.extender_resource.clone(),
                native_sidecars,
            },
            sources: resolve::Sources {
                images: Arc::new(tektite_controller::images::Images::new(
                    args.insecure_registries.clone(),
                    &args.image_platform,
                )),
                git: Arc::default(),
            },
        },
        pods: pods.clone(),
        pod_index: pod_index.clone(),
        task_runs: task_runs.clone(),
        task_run_owners,
        custom_runs: custom_runs.clone(),
        custom_run_owners,
        pipeline_runs: pipeline_runs.clone(),
        pipeline_run_owners,
        steps: Arc::new(StepStore::default()),
        agents: Arc::new(Agents::new(args.agent_grace)),
        metrics: metrics.clone(),
        events: events.clone(),
        resolvers,
        clock: Clock::system(),
        wake,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let config = ControllerConfig::default()
        .concurrency(args.concurrency)
        .debounce(args.coalesce);
    let taskruns = Controller::for_shared_stream(tr_for_taskruns, task_runs.clone())
        .with_config(config.clone())
        .owns_stream(pod_events)
        .reconcile_on(ReceiverStream::new(woken))
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(taskrun::reconcile, taskrun::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let pipelineruns = Controller::for_shared_stream(pr_for_pipelineruns, pipeline_runs)
        .with_config(config)
        .owns_shared_stream(tr_for_pipelineruns)
        .owns_shared_stream(pr_for_parents)
        .owns_stream(cr_events)
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(
            pipelinerun::reconcile,
            pipelinerun::error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));

    start_extender(
        &args,
        &client,
        pod_index,
        &ctx,
        metrics.clone(),
        &mut background,
    )
    .await?;

    let reviewer = Reviewer::new(client.clone(), &args.agent_audience, agent_ns, agent_sa);
    let pems = serving_pems(&args, &client).await?;
    let pair = pems.as_ref().map(|(c, k, _)| (c.clone(), k.clone()));
    let grpc = serve_grpc(&args, pair.as_ref(), reviewer, &ctx, stop_rx.clone()).await?;
    serve_webhook(&args, &client, pair.as_ref(), &mut background).await?;
    match pems.as_ref().and_then(|(_, _, ca)| ca.as_deref()) {
        Some(ca) => {
            publish_ca(&client, &args.webhook_config, ca).await;
        }
        None if pems.is_some() => {
            tracing::info!(config = %args.webhook_config, "--tls-cert-file: the webhook's caBundle is left to whoever issued the certificate (e.g. cert-manager's CA injector)")
        }
        None => {}
    }

    let unreadable = futures::future::join3(
        mark_undecodable::<TaskRun>(ctx.clone(), tr_unreadable),
        mark_undecodable::<PipelineRun>(ctx.clone(), pr_unreadable),
        mark_undecodable::<CustomRun>(ctx.clone(), cr_unreadable),
    );
    let controllers = tokio::spawn(
        async move {
            // The markers end with the watches that feed them.
            futures::join!(taskruns, pipelineruns, unreadable);
        }
        .instrument(info_span!("controllers")),
    );
    let lost = async move {
        let _ = leading.wait_for(|l| !*l).await;
    };
    let lost_lead = tokio::select! {
        _ = shutdown_signal() => false,
        _ = lost => true,
    };
    if lost_lead {
        tracing::error!("lost the leader Lease: stopping so another replica leads");
    } else {
        tracing::info!("stopping: finishing the reconciles under way (again to abort)");
    }
    health.set_leading(false);
    let _ = stop_tx.send(true);
    // Well inside a Pod's 30 s termination grace period, whatever is still open.
    let drained = tokio::time::timeout(DRAIN_LIMIT, async {
        let _ = controllers.await;
        let _ = grpc.await;
    });
    tokio::select! {
        r = drained => if r.is_err() {
            tracing::warn!(limit = ?DRAIN_LIMIT, "the drain did not finish in time: stopping anyway");
        },
        _ = shutdown_signal() => tracing::warn!("aborting"),
    }
    background.shutdown().await;
    // The Lease watcher releases the Lease once its receivers are gone.
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    if lost_lead {
        anyhow::bail!("lost the leader Lease");
    }
    tracing::info!(task_runs_cached = ctx.task_runs.state().len(), "stopped");
    Ok(())
}

/// Serves the scheduler extender. It reads the same caches and the agents' registry;
/// claims are watched only where their access modes matter.
async fn start_extender(
    args: &Args,
    client: &Client,
    pod_index: Arc<PodIndex>,
    ctx: &Context,
    metrics: Arc<Metrics>,
    background: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    let claims = (args.coschedule == Coschedule::Workspaces).then(|| {
        let (claims, writer) = reflector::store::<PersistentVolumeClaim>();
        let events = watcher(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(|c| c.managed_fields_mut().clear())
        .reflect(writer)
        .for_each(|_| futures::future::ready(()));
        background.spawn(events.instrument(info_span!("claim_watch")));
        claims
    });
    let extender = Arc::new(Extender::new(
        args.coschedule,
        pod_index,
        claims,
        ctx.agents.clone(),
        metrics,
        Clock::system(),
    ));
    let listener = tokio::net::TcpListener::bind(args.extender_addr)
        .await
        .with_context(|| format!("binding {}", args.extender_addr))?;
    background.spawn(extender::serve(listener, extender).instrument(info_span!("extender")));
    Ok(())
}

/// Serves the agents' gRPC stream until `stop` turns true.
async fn serve_grpc(
    args: &Args,
    pems: Option<&(String, String)>,
    reviewer: Reviewer,
    ctx: &Arc<Context>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>> {
    let mut server = tonic::transport::Server::builder();
    match pems {
        Some((cert, key)) => {
            let identity = tonic::transport::Identity::from_pem(cert, key);
            server = server
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .context("the gRPC serving certificate")?;
        }
        None => tracing::warn!("--no-tls: the agents' stream is served without TLS"),
    }
    let listener = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("binding {}", args.grpc_addr))?;
    let grpc = server
        .add_service(Ingest::new(ctx.clone(), reviewer, stop.clone()).service())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped(stop));
    Ok(tokio::spawn(grpc.instrument(info_span!("grpc"))))
}

/// The validating admission webhook on `--webhook-addr`, over TLS with the serving
/// certificate (the API server calls webhooks over HTTPS only).
async fn serve_webhook(
    args: &Args,
    client: &Client,
    pems: Option<&(String, String)>,
    background: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    let Some((cert, key)) = pems else {
        tracing::warn!(
            "--no-tls: the admission webhook is not served (the API server calls webhooks over HTTPS only)"
        );
        return Ok(());
    };
    let tls = tektite_controller::serving::tls_acceptor(cert, key)
        .context("the webhook's serving certificate")?;
    let listener = tokio::net::TcpListener::bind(args.webhook_addr)
        .await
        .with_context(|| format!("binding {}", args.webhook_addr))?;
    let defaults = Arc::new(std::sync::RwLock::new(Defaults::default()));
    background.spawn(
        watch_config(
            client.clone(),
            args.lease_namespace.clone(),
            args.defaults_config.clone(),
            Defaults::from_config,
            {
                let defaults = defaults.clone();
                move |d| *defaults.write().unwrap_or_else(|e| e.into_inner()) = d
            },
        )
        .instrument(info_span!("defaults_watch")),
    );
    background.spawn(
        tektite_controller::http::serve_https1(listener, tls, "webhook", move |request| {
            tektite_controller::admission::respond(request, defaults.clone())
        })
        .instrument(info_span!("webhook")),
    );
    Ok(())
}

/// Hands `set` what ConfigMap `name` (in `namespace`) says, read by `parse` (Tekton's
/// config keys): a value that cannot be used is named in a warning and the settings
/// before it stay; without the ConfigMap, the built-in ones.
async fn watch_config<T, P, S>(client: Client, namespace: String, name: String, parse: P, set: S)
where
    T: Default + std::fmt::Debug,
    P: Fn(&std::collections::BTreeMap<String, String>) -> Result<T, Vec<String>>,
    S: Fn(T),
{
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let events = watcher(api, config).default_backoff();
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                match parse(&cm.data.unwrap_or_default()) {
                    Ok(t) => {
                        tracing::info!(config = %name, settings = ?t, "settings");
                        set(t);
                    }
                    Err(errors) => {
                        tracing::warn!(config = %name, errors = %errors.join("; "), "the ConfigMap has values that cannot be used: the settings before it stay")
                    }
                }
            }
            Ok(watcher::Event::Delete(_)) => set(T::default()),
            Ok(_) => {}
            Err(error) => tracing::warn!(config = %name, %error, "watching a settings ConfigMap"),
        }
    }
}

/// Resolves once `rx` turns true.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The leader's CA into the webhook configurations' and the CRDs' conversion webhook's
/// `caBundle`, each outcome logged with what it means for admission and conversion.
async fn publish_ca(client: &Client, config: &str, ca: &str) {
    match serving::publish_ca(client, config, ca).await {
        Ok(0) => {
            tracing::warn!(%config, "no such webhook configuration: documents are neither validated nor defaulted at admission (install deploy/webhooks.yaml)")
        }
        Ok(n) => {
            tracing::info!(%config, configurations = n, "the webhooks' caBundle names this controller's CA")
        }
        Err(error) => {
            tracing::warn!(%config, %error, "the webhook's caBundle could not be written: the API server cannot call the webhook until it is")
        }
    }
    match serving::publish_conversion_ca(client, ca).await {
        Ok(0) => {
            tracing::warn!(
                "no CRD names the conversion webhook: tekton.dev/v1beta1 is not served (install deploy/crds/)"
            )
        }
        Ok(n) => {
            tracing::info!(
                crds = n,
                "the CRDs' conversion webhook caBundle names this controller's CA: tekton.dev/v1beta1 is served"
            )
        }
        Err(error) => {
            tracing::warn!(%error, "the CRDs' conversion caBundle could not be written: reading or writing tekton.dev/v1beta1 fails until it is")
        }
    }
}
