//! `tkt pipelinerun|taskrun|pipeline|task VERB`: the cluster's Tekton objects, as tkn
//! shows them (its nouns and short names: `pr`, `tr`, `p`, `t`), read through the
//! kubeconfig as kubectl reads it (`--context`, `-n`, `-A`). Each command makes one or two
//! API requests, but `logs -f` and `start --showlog`, which follow the run.

mod act;
mod logs;
mod show;
mod text;

use std::process::ExitCode;

use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::Value;

/// Which cluster and namespace.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// The namespace (default: the context's, else `default`).
    #[arg(short, long, global = true, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Every namespace (list only).
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
}

/// `tkt pipelinerun|taskrun ...`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    verb: RunVerb,
}

/// `tkt pipeline|task ...`.
#[derive(Debug, clap::Args)]
pub struct DefArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    verb: DefVerb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Json,
    Yaml,
    Name,
}

#[derive(Debug, clap::Subcommand)]
enum RunVerb {
    /// NAME, STARTED, DURATION and STATUS of each run, newest first.
    #[command(visible_alias = "ls")]
    List {
        /// json or yaml: the List as the API server gives it; name: kind/name lines.
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        /// At most this many runs.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// What the run is, how it went, and its TaskRuns (a PipelineRun's) or steps.
    #[command(visible_alias = "desc")]
    Describe {
        /// The run (or --last).
        name: Option<String>,
        /// The newest run.
        #[arg(short = 'L', long)]
        last: bool,
    },
    /// Every step's log, in order, as `[task : step] line` (a TaskRun's: `[step] line`).
    Logs {
        /// The run (or --last).
        name: Option<String>,
        /// The newest run.
        #[arg(short = 'L', long)]
        last: bool,
        /// Follow the run: steps as they start, until it ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Cancel a running run (its spec.status).
    Cancel {
        /// The run.
        name: String,
    },
    /// Delete runs.
    #[command(visible_alias = "rm")]
    Delete {
        /// The runs.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Start the same run again: a new run with its spec (and labels, annotations).
    Rerun {
        /// The run to start again (or --last).
        name: Option<String>,
        /// The newest run.
        #[arg(short = 'L', long)]
        last: bool,
        /// Follow the new run's logs.
        #[arg(long)]
        showlog: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
enum DefVerb {
    /// NAME and AGE of each.
    #[command(visible_alias = "ls")]
    List {
        /// json or yaml: the List as the API server gives it; name: kind/name lines.
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Start a run of it, and print the run's name.
    Start(act::StartArgs),
    /// Delete them.
    #[command(visible_alias = "rm")]
    Delete {
        /// Their names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// A kind of tekton.dev object these commands handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PipelineRun,
    TaskRun,
    Pipeline,
    Task,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PipelineRun => "PipelineRun",
            Kind::TaskRun => "TaskRun",
            Kind::Pipeline => "Pipeline",
            Kind::Task => "Task",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::PipelineRun => "pipelineruns",
            Kind::TaskRun => "taskruns",
            Kind::Pipeline => "pipelines",
            Kind::Task => "tasks",
        }
    }

    fn resource(self) -> ApiResource {
        ApiResource {
            group: "tekton.dev".into(),
            version: "v1".into(),
            api_version: "tekton.dev/v1".into(),
            kind: self.name().into(),
            plural: self.plural().into(),
        }
    }
}

/// Why a command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no cluster: {0} (tkt reads KUBECONFIG or ~/.kube/config as kubectl does; `tkt run` and `tkt validate` need no cluster)"
    )]
    NoCluster(String),
    #[error("no {kind} {name:?} in namespace {namespace:?}")]
    NotFound {
        kind: &'static str,
        name: String,
        namespace: String,
    },
    #[error("no {kind}s in namespace {namespace:?}")]
    NoneYet {
        kind: &'static str,
        namespace: String,
    },
    #[error("forbidden: {0} (ask for the RBAC it takes: kubectl auth can-i --list)")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the API server answered: {0}")]
    Api(String),
}

/// The cluster the commands talk to, and the namespace they work in.
pub struct Cluster {
    client: kube::Client,
    /// The API server's URL, for messages.
    server: String,
    namespace: String,
    all: bool,
    /// What "now" is for ages ("3 minutes ago"); `TKT_NOW` (RFC 3339) fixes it.
    now: jiff::Timestamp,
}

impl Cluster {
    async fn connect(t: &Target) -> Result<Cluster, Error> {
        let config = match &t.context {
            Some(context) => {
                let options = kube::config::KubeConfigOptions {
                    context: Some(context.clone()),
                    ..Default::default()
                };
                kube::Config::from_kubeconfig(&options).await.map_err(|e| {
                    Error::NoCluster(format!("the kubeconfig's context {context:?}: {e}"))
                })?
            }
            None => kube::Config::infer()
                .await
                .map_err(|e| Error::NoCluster(e.to_string()))?,
        };
        let namespace = t
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| Error::NoCluster(e.to_string()))?;
        let now = std::env::var("TKT_NOW")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(jiff::Timestamp::now);
        Ok(Cluster {
            client,
            server,
            namespace,
            all: t.all_namespaces,
            now,
        })
    }

    /// What a failed request means, for `kind` `name` (empty: a list or create).
    fn error(&self, e: kube::Error, kind: Kind, name: &str) -> Error {
        match e {
            kube::Error::Api(s) if s.code == 404 && !name.is_empty() => Error::NotFound {
                kind: kind.name(),
                name: name.to_owned(),
                namespace: self.namespace.clone(),
            },
            kube::Error::Api(s) if s.code == 403 => Error::Forbidden(s.message),
            kube::Error::Api(s) => Error::Api(format!("{} ({})", s.message, s.code)),
            other => {
                let mut why = other.to_string();
                let mut source = std::error::Error::source(&other);
                while let Some(s) = source {
                    why = s.to_string();
                    source = s.source();
                }
                Error::NoCluster(format!(
                    "cannot reach the API server at {}: {why}",
                    self.server
                ))
            }
        }
    }

    fn api(&self, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &kind.resource())
    }

    /// The object, as JSON.
    async fn get(&self, kind: Kind, name: &str) -> Result<Value, Error> {
        let o = self
            .api(kind)
            .get(name)
            .await
            .map_err(|e| self.error(e, kind, name))?;
        Ok(serde_json::to_value(o).unwrap_or_default())
    }

    /// Every object of `kind` (in every namespace with `-A`), selected by `labels`.
    async fn list(&self, kind: Kind, labels: Option<&str>) -> Result<Vec<Value>, Error> {
        let api = if self.all {
            Api::all_with(self.client.clone(), &kind.resource())
        } else {
            self.api(kind)
        };
        let mut params = kube::api::ListParams::default();
        if let Some(l) = labels {
            params = params.labels(l);
        }
        let list = api
            .list(&params)
            .await
            .map_err(|e| self.error(e, kind, ""))?;
        Ok(list
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .collect())
    }

    /// The run named, or with `last` the newest one.
    async fn run_named(&self, kind: Kind, name: Option<&str>, last: bool) -> Result<Value, Error> {
        match (name, last) {
            (Some(n), false) => self.get(kind, n).await,
            (None, true) => {
                let mut runs = self.list(kind, None).await?;
                show::newest_first(&mut runs);
                runs.into_iter().next().ok_or(Error::NoneYet {
                    kind: kind.name(),
                    namespace: self.namespace.clone(),
                })
            }
            _ => Err(Error::Invalid(format!(
                "name one {} or give --last",
                kind.name()
            ))),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn finish(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tkt: {e}");
            ExitCode::from(1)
        }
    }
}

/// `tkt pipelinerun|taskrun VERB`.
pub fn runs(kind: Kind, args: &RunArgs) -> ExitCode {
    finish(runtime().block_on(async {
        let c = Cluster::connect(&args.target).await?;
        match &args.verb {
            RunVerb::List { output, limit } => show::list(&c, kind, *output, *limit).await,
            RunVerb::Describe { name, last } => {
                let run = c.run_named(kind, name.as_deref(), *last).await?;
                show::describe(&c, kind, &run).await
            }
            RunVerb::Logs { name, last, follow } => {
                let run = c.run_named(kind, name.as_deref(), *last).await?;
                logs::print(&c, kind, &run, *follow).await
            }
            RunVerb::Cancel { name } => act::cancel(&c, kind, name).await,
            RunVerb::Delete { names } => act::delete(&c, kind, names).await,
            RunVerb::Rerun {
                name,
                last,
                showlog,
            } => {
                let run = c.run_named(kind, name.as_deref(), *last).await?;
                act::rerun(&c, kind, &run, *showlog).await
            }
        }
    }))
}

/// `tkt pipeline|task VERB`.
pub fn definitions(kind: Kind, args: &DefArgs) -> ExitCode {
    finish(runtime().block_on(async {
        let c = Cluster::connect(&args.target).await?;
        match &args.verb {
            DefVerb::List { output } => show::list(&c, kind, *output, None).await,
            DefVerb::Start(start) => act::start(&c, kind, start).await,
            DefVerb::Delete { names } => act::delete(&c, kind, names).await,
        }
    }))
}
