//! Objects decoded one at a time. A list or watch of TaskRuns decoded as a whole fails
//! on one object tektite cannot read (a field of a newer Tekton, a value its CRD allows
//! and tektite's types do not), and the watch then retries forever: no run anywhere is
//! reconciled. Here each object is read on its own; one that cannot be read is set
//! aside with the field that failed, its run is marked failed where tektite owns it, and
//! everything else goes on.

use std::fmt;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::{ListableResource, Metadata, Resource};
use kube::api::{Api, Patch};
use kube_runtime::watcher::Event;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::{Value, json};
use tektite_api::v1::SUCCEEDED;
use tokio::sync::mpsc;

use crate::context::Context;
use crate::metrics::KindLabel;
use crate::patch::write_params;

/// An object of kind `K` as read from the API server: decoded, or not.
#[derive(Clone, Debug)]
pub enum Lenient<K> {
    Decoded(K),
    Undecodable(Box<Undecodable>),
}

/// What is known of an object that could not be decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Undecodable {
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    /// `spec.managedBy`, if it is a string.
    pub managed_by: Option<String>,
    /// The `Succeeded` condition's status and message, as written.
    pub succeeded: Option<(String, Option<String>)>,
    /// The field that could not be read and why, as `spec.x[0].y: why`.
    pub error: String,
}

impl Undecodable {
    fn from_value(kind: &'static str, value: &Value, error: String) -> Self {
        let metadata = value
            .get("metadata")
            .cloned()
            .and_then(|m| serde_json::from_value(m).ok())
            .unwrap_or_default();
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let succeeded = value
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(SUCCEEDED))
            })
            .map(|c| {
                (
                    text(c.get("status")).unwrap_or_default(),
                    text(c.get("message")),
                )
            });
        Self {
            kind,
            managed_by: text(value.pointer("/spec/managedBy")),
            metadata,
            succeeded,
            error,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind,
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// The message its failed condition carries.
    pub fn message(&self) -> String {
        format!(
            "tektite cannot read this {}: {}; fix the field and create the run again",
            self.kind, self.error
        )
    }
}

impl<'de, K: DeserializeOwned + Resource> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(match serde_path_to_error::deserialize::<_, K>(&value) {
            Ok(k) => Lenient::Decoded(k),
            Err(e) => {
                let error = format!("{}: {}", e.path(), e.inner());
                Lenient::Undecodable(Box::new(Undecodable::from_value(K::KIND, &value, error)))
            }
        })
    }
}

impl<K: Resource> Resource for Lenient<K> {
    const API_VERSION: &'static str = K::API_VERSION;
    const GROUP: &'static str = K::GROUP;
    const KIND: &'static str = K::KIND;
    const VERSION: &'static str = K::VERSION;
    const URL_PATH_SEGMENT: &'static str = K::URL_PATH_SEGMENT;
    type Scope = K::Scope;
}

impl<K: ListableResource> ListableResource for Lenient<K> {
    const LIST_KIND: &'static str = K::LIST_KIND;
}

impl<K: Metadata<Ty = ObjectMeta>> Metadata for Lenient<K> {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        match self {
            Lenient::Decoded(k) => k.metadata(),
            Lenient::Undecodable(u) => &u.metadata,
        }
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Lenient::Decoded(k) => k.metadata_mut(),
            Lenient::Undecodable(u) => &mut u.metadata,
        }
    }
}

/// Turns a watch of `Lenient<K>` into a watch of `K`: objects that could not be read go
/// to `aside`, and one that was readable before and is not any more is forgotten (a
/// delete for the caches), so nothing acts on a spec that is no longer there.
pub fn sort_out<K>(event: Event<Lenient<K>>, aside: &mpsc::Sender<Undecodable>) -> Option<Event<K>>
where
    K: Default + Metadata<Ty = ObjectMeta>,
{
    let with_meta = |meta: &ObjectMeta| {
        let mut k = K::default();
        *k.metadata_mut() = meta.clone();
        k
    };
    let set_aside = |u: Box<Undecodable>| {
        if aside.try_send((*u).clone()).is_err() {
            tracing::warn!(object = %u.describe(), error = %u.error, "an undecodable object was not reported: the queue is full");
        }
        u
    };
    Some(match event {
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
        Event::InitApply(Lenient::Decoded(k)) => Event::InitApply(k),
        Event::InitApply(Lenient::Undecodable(u)) => {
            set_aside(u);
            return None;
        }
        Event::Apply(Lenient::Decoded(k)) => Event::Apply(k),
        Event::Apply(Lenient::Undecodable(u)) => Event::Delete(with_meta(&set_aside(u).metadata)),
        Event::Delete(Lenient::Decoded(k)) => Event::Delete(k),
        Event::Delete(Lenient::Undecodable(u)) => Event::Delete(with_meta(&u.metadata)),
    })
}

/// What becomes of an undecodable object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its run is marked failed, naming the field.
    MarkFailed,
    /// Another controller's run: left alone.
    NotOurs,
    /// Already finished, or already marked: nothing to write.
    AlreadyDone,
    /// Not a run (a CustomRun belongs to its custom task's controller): only logged.
    OnlyLogged,
}

/// Decides what to do with `u`; pure, so it can be tested.
pub fn verdict(u: &Undecodable, ctx: &Context) -> Verdict {
    if !matches!(u.kind, "TaskRun" | "PipelineRun") {
        return Verdict::OnlyLogged;
    }
    if !ctx.settings.claim.claims(u.managed_by.as_deref()) {
        return Verdict::NotOurs;
    }
    match &u.succeeded {
        Some((status, _)) if status != "Unknown" => Verdict::AlreadyDone,
        _ => Verdict::MarkFailed,
    }
}

/// The status patch that marks `u`'s run failed at `now`.
pub fn failed_status(u: &Undecodable, now: Timestamp) -> Value {
    let reason = match u.kind {
        "TaskRun" => tektite_api::v1::taskrun_reason::VALIDATION_FAILED,
        _ => tektite_api::v1::pipelinerun_reason::VALIDATION_FAILED,
    };
    let now = serde_json::to_value(Time(now)).unwrap_or_default();
    json!({"status": {
        "conditions": [{
            "type": SUCCEEDED, "status": "False", "reason": reason,
            "message": u.message(), "lastTransitionTime": now,
        }],
        "completionTime": now,
    }})
}

/// Takes undecodable objects as they are set aside: logs and counts each, and marks the
/// runs tektite owns failed.
pub async fn mark_undecodable<K>(
    ctx: std::sync::Arc<Context>,
    mut aside: mpsc::Receiver<Undecodable>,
) where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Metadata<Ty = ObjectMeta>
        + DeserializeOwned
        + Clone
        + fmt::Debug,
{
    while let Some(u) = aside.recv().await {
        let verdict = verdict(&u, &ctx);
        tracing::warn!(object = %u.describe(), error = %u.error, ?verdict, "an object tektite cannot read");
        ctx.metrics
            .undecodable_objects
            .get_or_create(&KindLabel {
                kind: u.kind.to_owned(),
            })
            .inc();
        if verdict != Verdict::MarkFailed {
            continue;
        }
        let (Some(ns), Some(name)) = (&u.metadata.namespace, &u.metadata.name) else {
            continue;
        };
        let api: Api<Lenient<K>> = Api::namespaced(ctx.client.clone(), ns);
        let patch = Patch::Merge(failed_status(&u, ctx.now()));
        if let Err(error) = api.patch_status(name, &write_params(), &patch).await {
            tracing::warn!(object = %u.describe(), %error, "could not mark an unreadable run failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectList;
    use tektite_api::v1::PipelineRun;

    fn list() -> ObjectList<Lenient<PipelineRun>> {
        serde_json::from_value(json!({
            "apiVersion": "tekton.dev/v1", "kind": "PipelineRunList", "metadata": {},
            "items": [
                {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                 "metadata": {"name": "good", "namespace": "ci", "uid": "u1"},
                 "spec": {"pipelineRef": {"name": "p"}}},
                {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                 "metadata": {"name": "bad", "namespace": "ci", "uid": "u2"},
                 "spec": {"pipelineSpec": {"tasks": [{"name": "t", "retries": "many", "taskSpec": {"steps": [
                     {"name": "s", "image": "alpine"}]}}]}},
                 "status": {"conditions": [{"type": "Succeeded", "status": "Unknown"}]}},
            ]
        }))
        .expect("one bad item does not fail the list")
    }

    #[test]
    fn one_unreadable_object_does_not_fail_its_list() {
        let items = list().items;
        assert!(
            matches!(&items[0], Lenient::Decoded(pr) if pr.metadata.name.as_deref() == Some("good"))
        );
        let Lenient::Undecodable(u) = &items[1] else {
            panic!("the bad one decoded")
        };
        assert_eq!(u.metadata.name.as_deref(), Some("bad"));
        assert_eq!(u.succeeded, Some(("Unknown".into(), None)));
        assert!(
            u.error
                .starts_with("spec.pipelineSpec.tasks[0].retries: invalid type: string \"many\""),
            "{}",
            u.error
        );
    }

    #[test]
    fn an_object_that_became_unreadable_is_forgotten_and_set_aside() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut items = list().items.into_iter();
        let good = items.next().unwrap();
        let bad = items.next().unwrap();
        assert!(
            matches!(sort_out(Event::Apply(good), &tx), Some(Event::Apply(pr)) if pr.metadata.name.as_deref() == Some("good"))
        );
        assert!(sort_out(Event::InitApply(bad.clone()), &tx).is_none());
        let forgotten = sort_out(Event::Apply(bad), &tx);
        assert!(
            matches!(forgotten, Some(Event::Delete(pr)) if pr.metadata.uid.as_deref() == Some("u2"))
        );
        assert_eq!(rx.try_recv().unwrap().metadata.name.as_deref(), Some("bad"));
        assert_eq!(rx.try_recv().unwrap().metadata.name.as_deref(), Some("bad"));
    }

    #[test]
    fn the_failed_condition_names_the_field() {
        let Lenient::Undecodable(u) = list().items.remove(1) else {
            panic!()
        };
        let patch = failed_status(&u, "2026-11-22T10:00:00Z".parse().unwrap());
        let c = &patch["status"]["conditions"][0];
        assert_eq!(c["reason"], "PipelineValidationFailed");
        assert_eq!(c["status"], "False");
        assert!(
            c["message"].as_str().unwrap().starts_with(
                "tektite cannot read this PipelineRun: spec.pipelineSpec.tasks[0].retries: invalid type"
            ),
            "{c}"
        );
        assert_eq!(patch["status"]["completionTime"], "2026-11-22T10:00:00Z");
    }
}
