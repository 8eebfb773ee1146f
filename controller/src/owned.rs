//! Which objects each owner controls, by the owner's UID: the PipelineRun reconciler finds
//! its TaskRuns here instead of scanning every cached TaskRun (which made a burst of
//! PipelineRuns cost the square of the TaskRuns cached). Fed by the same watch events as
//! the cache, before the cache sees them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{RwLock, RwLockWriteGuard};

use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

/// The controlling owner's UID of an object, and the object's name.
type Edge = (String, String);

#[derive(Debug, Default)]
struct Inner {
    children: HashMap<String, BTreeSet<String>>,
    /// (namespace, name) → the edge it was filed under.
    filed: HashMap<(String, String), Edge>,
}

impl Inner {
    fn insert<K: Resource>(&mut self, object: &K) {
        let key = (object.namespace().unwrap_or_default(), object.name_any());
        self.remove(&key);
        let Some(owner) = object
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
        else {
            return;
        };
        self.children
            .entry(owner.uid.clone())
            .or_default()
            .insert(key.1.clone());
        self.filed.insert(key.clone(), (owner.uid.clone(), key.1));
    }

    fn remove(&mut self, key: &(String, String)) {
        let Some((owner, name)) = self.filed.remove(key) else {
            return;
        };
        if let Some(names) = self.children.get_mut(&owner) {
            names.remove(&name);
            if names.is_empty() {
                self.children.remove(&owner);
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Owned {
    inner: RwLock<Inner>,
    /// A relist under way: what it listed so far.
    relist: RwLock<Option<Inner>>,
}

impl Owned {
    pub fn from_objects<'a, K: Resource + 'a>(objects: impl IntoIterator<Item = &'a K>) -> Self {
        let owned = Self::default();
        for o in objects {
            owned.write().insert(o);
        }
        owned
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The names of what `owner` (a UID) controls, in name order; they share its
    /// namespace.
    pub fn names(&self, owner: &str) -> Vec<String> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .children
            .get(owner)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Takes one watch event, as the cache does (a relist replaces everything once done).
    pub fn apply<K: Resource>(&self, event: &watcher::Event<K>) {
        let mut relist = self.relist.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(o) => self.write().insert(o),
            watcher::Event::Delete(o) => self
                .write()
                .remove(&(o.namespace().unwrap_or_default(), o.name_any())),
            watcher::Event::Init => *relist = Some(Inner::default()),
            watcher::Event::InitApply(o) => relist.get_or_insert_with(Inner::default).insert(o),
            watcher::Event::InitDone => *self.write() = relist.take().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tektite_api::v1::TaskRun;

    fn task_run(name: &str, owner: Option<&str>) -> TaskRun {
        let owners: Vec<_> = owner
            .iter()
            .map(|uid| {
                serde_json::json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                "name": "pr", "uid": uid, "controller": true})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ci", "ownerReferences": owners},
            "spec": {}
        }))
        .unwrap()
    }

    #[test]
    fn follows_creates_changes_deletes_and_relists() {
        let owned = Owned::default();
        for (name, owner) in [("b", "pr1"), ("a", "pr1"), ("c", "pr2")] {
            owned.apply(&watcher::Event::Apply(task_run(name, Some(owner))));
        }
        owned.apply(&watcher::Event::Apply(task_run("lone", None)));
        assert_eq!(owned.names("pr1"), ["a", "b"]);
        assert_eq!(owned.names("pr2"), ["c"]);

        // Re-owned, then deleted.
        owned.apply(&watcher::Event::Apply(task_run("c", Some("pr1"))));
        assert_eq!(owned.names("pr1"), ["a", "b", "c"]);
        assert!(owned.names("pr2").is_empty());
        owned.apply(&watcher::Event::Delete(task_run("b", Some("pr1"))));
        assert_eq!(owned.names("pr1"), ["a", "c"]);

        // A relist keeps the old answers until it is done, then replaces them.
        owned.apply(&watcher::Event::<TaskRun>::Init);
        owned.apply(&watcher::Event::InitApply(task_run("d", Some("pr3"))));
        assert_eq!(owned.names("pr1"), ["a", "c"]);
        owned.apply(&watcher::Event::<TaskRun>::InitDone);
        assert!(owned.names("pr1").is_empty());
        assert_eq!(owned.names("pr3"), ["d"]);
    }
}
