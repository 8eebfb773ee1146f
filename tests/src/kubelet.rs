//! A kubelet stand-in: it runs the Pods an API server schedules onto its node through
//! `tkt`'s local kubelet ([`tektite_cli::kubelet`], the one `tkt run` executes its Pods
//! with), so that the real controller, node agent and entrypoint meet what they meet on a
//! cluster with no cluster at hand. What the local kubelet does and does not do is written
//! there; this adds what a kubelet does with an API server:
//! - binds every unscheduled Pod of the default scheduler to its node (it is the scheduler
//!   too: one stand-in per API server);
//! - reads ConfigMaps and Secrets from the API server, keeps claims under
//!   `<root>/pvc/<namespace>/<claim>`;
//! - writes status with a merge patch of `pods/<name>/status`, and appends logs under
//!   `<root>/logs/<namespace>_<pod>_<uid>/<container>.log`;
//! - a deleted Pod's processes get SIGTERM, then SIGKILL after a second.
//!
//! Every process it starts is a process group it ends by PID: at deletion, at
//! [`Kubelet::stop`], and when the [`Kubelet`] is dropped.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tektite_cli::kubelet::{self as local, Host, Isolation, PodHandle};
use tokio::runtime::Handle;

pub use tektite_cli::kubelet::{Bind, Image, Record, What};

#[derive(Clone, Debug)]
pub struct Config {
    pub node: String,
    /// The kubelet root (`/var/lib/kubelet` on a node).
    pub root: PathBuf,
    /// How often starts and exits are observed (a kubelet's PLEG relists every second).
    pub relist: Duration,
    pub images: Vec<Image>,
    /// The `tkt` binary, which starts the containers.
    pub tkt: PathBuf,
}

/// A running kubelet stand-in.
#[derive(Debug)]
pub struct Kubelet {
    task: tokio::task::JoinHandle<()>,
    local: local::Kubelet,
}

/// The API server, as the local kubelet's host.
struct ApiHost {
    client: kube::Client,
    runtime: Handle,
    root: PathBuf,
}

impl Host for ApiHost {
    fn data(
        &self,
        secret: bool,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        let client = self.client.clone();
        self.runtime.block_on(async move {
            if secret {
                let api: Api<Secret> = Api::namespaced(client, namespace);
                let s = api.get_opt(name).await.map_err(|e| e.to_string())?;
                Ok(s.map(|s| {
                    let data = s
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0));
                    let text = s.string_data.unwrap_or_default();
                    data.chain(text.into_iter().map(|(k, v)| (k, v.into_bytes())))
                        .collect()
                }))
            } else {
                let api: Api<ConfigMap> = Api::namespaced(client, namespace);
                let m = api.get_opt(name).await.map_err(|e| e.to_string())?;
                Ok(m.map(|m| {
                    let text = m.data.unwrap_or_default();
                    let bytes = m.binary_data.unwrap_or_default();
                    text.into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .chain(bytes.into_iter().map(|(k, v)| (k, v.0)))
                        .collect()
                }))
            }
        })
    }

    fn claim(&self, namespace: &str, claim: &str) -> PathBuf {
        self.root.join("pvc").join(namespace).join(claim)
    }

    fn status(&self, pod: &Pod, status: &PodStatus) -> Result<(), String> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let patch = Patch::Merge(json!({ "status": status }));
        self.runtime
            .block_on(api.patch_status(&name, &PatchParams::default(), &patch))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn log(&self, pod: &Pod, container: &str, line: &[u8]) {
        let meta = &pod.metadata;
        let dir = self.root.join("logs").join(format!(
            "{}_{}_{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
            meta.uid.as_deref().unwrap_or_default()
        ));
        let appended = std::fs::create_dir_all(&dir).and_then(|_| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{container}.log")))?;
            f.write_all(line)?;
            f.write_all(b"\n")
        });
        if let Err(error) = appended {
            tracing::warn!(%error, container, "appending to a container's log");
        }
    }
}

impl Kubelet {
    /// Starts watching the API server's Pods (from within a multi-thread Tokio runtime:
    /// the Pods' threads block on it).
    pub fn start(client: kube::Client, config: Config) -> Kubelet {
        let host = ApiHost {
            client: client.clone(),
            runtime: Handle::current(),
            root: config.root.clone(),
        };
        let local = local::Kubelet::new(
            local::Config {
                root: config.root.clone(),
                relist: config.relist,
                images: config.images.clone(),
                userland_env: vec![
                    (
                        "PATH".into(),
                        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                    ),
                    ("HOME".into(), "/root".into()),
                ],
                isolation: Isolation::Namespaces {
                    tkt: config.tkt.clone(),
                },
                keep_pod_dirs: false,
            },
            Arc::new(host),
        );
        let task = tokio::spawn(run(client, config.node, local.clone()));
        Kubelet { task, local }
    }

    /// Every container start, exit, observation and status write so far.
    pub fn timeline(&self) -> Vec<Record> {
        self.local.timeline()
    }

    /// Ends every container and waits until their processes are gone.
    pub async fn stop(self) {
        self.task.abort();
        self.local.kill_all();
        for _ in 0..200 {
            if !self.local.any_alive() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
        self.local.kill_all();
    }
}

async fn run(client: kube::Client, node: String, kubelet: local::Kubelet) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut running: HashMap<String, PodHandle> = HashMap::new();
    while let Some(event) = events.next().await {
        let (pod, deleted) = match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => (p, false),
            Ok(watcher::Event::Delete(p)) => (p, true),
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%error, "the kubelet stand-in's Pod watch failed");
                continue;
            }
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let bound_to = spec.node_name.clone().unwrap_or_default();
        if deleted || pod.metadata.deletion_timestamp.is_some() {
            if let Some(h) = running.remove(&uid) {
                // Its processes end on a thread of their own.
                tokio::task::spawn_blocking(move || h.delete());
            }
            continue;
        }
        if bound_to.is_empty() {
            if spec
                .scheduler_name
                .as_deref()
                .is_none_or(|s| s == "default-scheduler")
            {
                tokio::spawn(bind(client.clone(), pod, node.clone()));
            }
            continue;
        }
        if bound_to != node {
            continue;
        }
        match running.get(&uid) {
            Some(h) => h.update(pod),
            None => {
                running.insert(uid, kubelet.run(pod));
            }
        }
    }
}

async fn bind(client: kube::Client, pod: Pod, node: String) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    if let Err(error) = api
        .create_subresource::<Value, Value>("binding", &name, &PostParams::default(), &binding)
        .await
    {
        tracing::debug!(%error, pod = %name, "binding");
    }
}
