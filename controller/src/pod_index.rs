//! An index of tektite's Pods by UID, by PipelineRun and by node, fed by the same watch
//! events as the Pod cache. The ingest finds a reported pod's TaskRun by UID, and the
//! scheduler extender finds a PipelineRun's Pods and the nodes busy with a run, without
//! scanning every Pod on each call.

use std::collections::{HashMap, HashSet};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::watcher;
use tektite_api::labels;

/// A PipelineRun: namespace and name.
pub type RunKey = (String, String);

/// What the index keeps of one Pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placed {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub created: Option<Time>,
    /// Where it was scheduled, once it was.
    pub node: Option<String>,
    /// The TaskRun that controls it.
    pub task_run: Option<String>,
    /// Its PipelineRun (the `tekton.dev/pipelineRun` label).
    pub run: Option<String>,
    /// The claims its volumes bind.
    pub claims: Vec<String>,
    /// Succeeded or Failed.
    pub finished: bool,
}

impl Placed {
    pub fn of(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        Self {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            created: pod.metadata.creation_timestamp.clone(),
            node: spec.and_then(|s| s.node_name.clone()),
            task_run: pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.kind == "TaskRun" && o.controller == Some(true))
                .map(|o| o.name.clone()),
            run: pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::PIPELINE_RUN).cloned()),
            claims: spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .filter_map(|v| Some(v.persistent_volume_claim.as_ref()?.claim_name.clone()))
                .collect(),
            finished: matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            ),
        }
    }

    fn key(&self) -> Option<RunKey> {
        Some((self.namespace.clone(), self.run.clone()?))
    }

    /// The node it occupies for its run, while it is not finished.
    fn busy(&self) -> Option<(&str, RunKey)> {
        Some((
            self.node.as_deref().filter(|_| !self.finished)?,
            self.key()?,
        ))
    }
}

#[derive(Debug, Default)]
pub struct Indexed {
    by_uid: HashMap<String, Placed>,
    by_run: HashMap<RunKey, HashSet<String>>,
    /// Node → the runs with unfinished Pods there, and how many.
    busy: HashMap<String, HashMap<RunKey, u32>>,
    /// Node → how many unfinished Pods are bound there (a run's or a lone TaskRun's).
    load: HashMap<String, u32>,
    /// The UIDs of the Pods deleted most recently (at most [`GONE_KEPT`]), oldest first.
    gone: std::collections::VecDeque<String>,
}

/// How many deleted Pods' UIDs the index remembers.
const GONE_KEPT: usize = 4096;

impl Indexed {
    fn insert(&mut self, placed: Placed) {
        self.remove(&placed.uid.clone());
        if let Some(key) = placed.key() {
            self.by_run
                .entry(key)
                .or_default()
                .insert(placed.uid.clone());
        }
        if let Some(node) = placed.node.as_deref().filter(|_| !placed.finished) {
            *self.load.entry(node.to_owned()).or_default() += 1;
        }
        if let Some((node, key)) = placed.busy() {
            *self
                .busy
                .entry(node.to_owned())
                .or_default()
                .entry(key)
                .or_default() += 1;
        }
        self.by_uid.insert(placed.uid.clone(), placed);
    }

    fn remove(&mut self, uid: &str) {
        let Some(old) = self.by_uid.remove(uid) else {
            return;
        };
        if let Some(node) = old.node.as_deref().filter(|_| !old.finished)
            && let Some(n) = self.load.get_mut(node)
        {
            *n -= 1;
            if *n == 0 {
                self.load.remove(node);
            }
        }
        if let Some(key) = old.key()
            && let Some(members) = self.by_run.get_mut(&key)
        {
            members.remove(uid);
            if members.is_empty() {
                self.by_run.remove(&key);
            }
        }
        if let Some((node, key)) = old.busy()
            && let Some(runs) = self.busy.get_mut(node)
        {
            if let Some(n) = runs.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    runs.remove(&key);
                }
            }
            if runs.is_empty() {
                self.busy.remove(node);
            }
        }
    }

    pub fn get(&self, uid: &str) -> Option<&Placed> {
        self.by_uid.get(uid)
    }

    /// The Pods of PipelineRun `run` in `namespace`.
    pub fn run(&self, namespace: &str, run: &str) -> impl Iterator<Item = &Placed> {
        self.by_run
            .get(&(namespace.to_owned(), run.to_owned()))
            .into_iter()
            .flatten()
            .filter_map(|uid| self.by_uid.get(uid))
    }

    /// A run other than `own` with unfinished Pods on `node`.
    pub fn busy_with_other(&self, node: &str, own: &RunKey) -> Option<&RunKey> {
        self.busy.get(node)?.keys().find(|k| *k != own)
    }

    /// Whether the watch reported Pod `uid` deleted (lately).
    pub fn was_deleted(&self, uid: &str) -> bool {
        self.gone.iter().any(|g| g == uid)
    }

    /// How many unfinished Pods are bound to `node`.
    pub fn load(&self, node: &str) -> u32 {
        self.load.get(node).copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct PodIndex {
    indexed: RwLock<Indexed>,
    /// A relist under way: the Pods listed so far.
    relist: RwLock<Option<Vec<Placed>>>,
}

impl PodIndex {
    pub fn from_pods<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Self {
        let index = Self::default();
        for pod in pods {
            index.write().insert(Placed::of(pod));
        }
        index
    }

    fn write(&self) -> RwLockWriteGuard<'_, Indexed> {
        self.indexed.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The index as one call reads it.
    pub fn read(&self) -> RwLockReadGuard<'_, Indexed> {
        self.indexed.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one watch event, as the Pod cache does (a relist replaces everything once
    /// it is done).
    pub fn apply(&self, event: &watcher::Event<Pod>) {
        let mut relist = self.relist.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(pod) => self.write().insert(Placed::of(pod)),
            watcher::Event::Delete(pod) => {
                let uid = pod.metadata.uid.as_deref().unwrap_or_default();
                let mut index = self.write();
                index.remove(uid);
                if index.gone.len() == GONE_KEPT {
                    index.gone.pop_front();
                }
                index.gone.push_back(uid.to_owned());
            }
            watcher::Event::Init => *relist = Some(Vec::new()),
            watcher::Event::InitApply(pod) => {
                relist.get_or_insert_with(Vec::new).push(Placed::of(pod));
            }
            watcher::Event::InitDone => {
                let mut fresh = Indexed::default();
                for placed in relist.take().unwrap_or_default() {
                    fresh.insert(placed);
                }
                let mut index = self.write();
                fresh.gone = std::mem::take(&mut index.gone);
                *index = fresh;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(uid: &str, run: &str, node: Option<&str>, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p-{uid}"), "namespace": "ci", "uid": uid,
                "labels": {"tekton.dev/pipelineRun": run},
                "ownerReferences": [{"apiVersion": "tekton.dev/v1", "kind": "TaskRun",
                    "name": format!("tr-{uid}"), "uid": "x", "controller": true}]},
            "spec": {"containers": [], "nodeName": node,
                "volumes": [{"name": "ws", "persistentVolumeClaim": {"claimName": "src"}}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn key(run: &str) -> RunKey {
        ("ci".into(), run.into())
    }

    #[test]
    fn updates_and_deletes_keep_every_view_consistent() {
        let index = PodIndex::default();
        index.apply(&watcher::Event::Apply(pod("a", "pr", None, "Pending")));
        index.apply(&watcher::Event::Apply(pod(
            "b",
            "pr",
            Some("n1"),
            "Running",
        )));
        let r = index.read();
        assert_eq!(r.get("a").unwrap().task_run.as_deref(), Some("tr-a"));
        assert_eq!(r.get("b").unwrap().claims, ["src"]);
        assert_eq!(r.run("ci", "pr").count(), 2);
        assert_eq!(r.busy_with_other("n1", &key("pr2")), Some(&key("pr")));
        assert_eq!(r.busy_with_other("n1", &key("pr")), None);
        assert_eq!((r.load("n1"), r.load("n2")), (1, 0));
        drop(r);
        // Scheduled, then finished: the node is free again.
        index.apply(&watcher::Event::Apply(pod(
            "a",
            "pr",
            Some("n2"),
            "Running",
        )));
        index.apply(&watcher::Event::Apply(pod(
            "b",
            "pr",
            Some("n1"),
            "Succeeded",
        )));
        let r = index.read();
        assert_eq!(r.busy_with_other("n1", &key("pr2")), None);
        assert_eq!(r.busy_with_other("n2", &key("pr2")), Some(&key("pr")));
        assert_eq!((r.load("n1"), r.load("n2")), (0, 1));
        drop(r);
        index.apply(&watcher::Event::Delete(pod(
            "a",
            "pr",
            Some("n2"),
            "Running",
        )));
        let r = index.read();
        assert_eq!(r.busy_with_other("n2", &key("pr2")), None);
        assert_eq!(r.load("n2"), 0);
        assert_eq!(
            r.run("ci", "pr")
                .map(|p| p.uid.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_is_done() {
        let index = PodIndex::default();
        index.apply(&watcher::Event::Apply(pod(
            "gone",
            "pr",
            Some("n1"),
            "Running",
        )));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(pod(
            "new",
            "pr",
            Some("n2"),
            "Running",
        )));
        // Until the relist is done, the old state answers.
        assert!(index.read().get("gone").is_some());
        index.apply(&watcher::Event::InitDone);
        let r = index.read();
        assert!(r.get("gone").is_none());
        assert!(r.get("new").is_some());
        assert_eq!(r.busy_with_other("n1", &key("x")), None);
        assert!(r.busy_with_other("n2", &key("x")).is_some());
    }
}
