//! What the agent knows of the tektite Pods on its node, from a watch of the Pods
//! scheduled to it: each step's name (containers `step-<name>` in order), the labels the
//! metrics use, and the Pod and sidecar lifecycle. The markers stay the source of truth
//! for step events; this only names and measures them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tektite_api::labels::{self, Container};
use tektite_node_agent::Event;

use crate::metrics::Metrics;

/// A moment of a Pod's life, measured from its creation.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Phase {
    Scheduled,
    Initialized,
    FirstStepStarted,
    LastStepFinished,
    Completed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Scheduled => "scheduled",
            Phase::Initialized => "initialized",
            Phase::FirstStepStarted => "first_step_started",
            Phase::LastStepFinished => "last_step_finished",
            Phase::Completed => "completed",
        }
    }
}

/// One measurement for the metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    Phase {
        namespace: String,
        task: String,
        phase: Phase,
        seconds: f64,
    },
    SidecarReady {
        namespace: String,
        task: String,
        sidecar: String,
        seconds: f64,
    },
    SidecarStopped {
        namespace: String,
        task: String,
        sidecar: String,
        seconds: f64,
    },
    Step {
        namespace: String,
        task: String,
        step: String,
        seconds: f64,
    },
}

impl Observation {
    pub fn record(&self, m: &Metrics) {
        match self {
            Observation::Phase {
                namespace,
                task,
                phase,
                seconds,
            } => m.observe_phase(namespace, task, phase.as_str(), *seconds),
            Observation::SidecarReady {
                namespace,
                task,
                sidecar,
                seconds,
            } => m.observe_sidecar(false, namespace, task, sidecar, *seconds),
            Observation::SidecarStopped {
                namespace,
                task,
                sidecar,
                seconds,
            } => m.observe_sidecar(true, namespace, task, sidecar, *seconds),
            Observation::Step {
                namespace,
                task,
                step,
                seconds,
            } => m.observe_step(namespace, task, step, *seconds),
        }
    }
}

/// A sidecar's state as the Pod status tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sidecar {
    pub name: String,
    pub started: Option<Timestamp>,
    pub ready: bool,
    pub finished: Option<Timestamp>,
}

/// The parts of a Pod the agent uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub task: String,
    pub created: Timestamp,
    pub scheduled: Option<Timestamp>,
    pub initialized: Option<Timestamp>,
    /// When the Pod reached Succeeded or Failed.
    pub completed: Option<Timestamp>,
    /// Step names in order (step index = position).
    pub steps: Vec<String>,
    pub sidecars: Vec<Sidecar>,
}

impl PodInfo {
    /// None for a Pod without a UID or creation time (not one the API server returned).
    /// `now` stands in for the completion time when no container says when it ended.
    pub fn from_pod(pod: &Pod, now: Timestamp) -> Option<Self> {
        let meta = &pod.metadata;
        let uid = meta.uid.clone()?;
        let created = meta.creation_timestamp.as_ref()?.0;
        let labels = meta.labels.clone().unwrap_or_default();
        let task = labels
            .get(labels::TASK)
            .or_else(|| labels.get(labels::PIPELINE_TASK))
            .cloned()
            .unwrap_or_default();
        let spec_containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let steps = spec_containers
            .iter()
            .filter_map(|c| match Container::parse(&c.name) {
                Some(Container::Step(name)) => Some(name.to_owned()),
                _ => None,
            })
            .collect();
        let status = pod.status.as_ref();
        let condition = |kind: &str| {
            status?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == kind && c.status == "True")?
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
        };
        let statuses: &[ContainerStatus] = status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default();
        // Native sidecars are init containers with restartPolicy: Always.
        let init_containers = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default();
        let init_statuses: &[ContainerStatus] = status
            .and_then(|s| s.init_container_statuses.as_deref())
            .unwrap_or_default();
        let sidecars = spec_containers
            .iter()
            .chain(init_containers)
            .filter_map(|c| match Container::parse(&c.name) {
                Some(Container::Sidecar(name)) => Some((name, &c.name)),
                _ => None,
            })
            .map(|(name, container)| {
                let s = statuses
                    .iter()
                    .chain(init_statuses)
                    .find(|s| &s.name == container);
                let state = s.and_then(|s| s.state.as_ref());
                Sidecar {
                    name: name.to_owned(),
                    started: state
                        .and_then(|st| st.running.as_ref()?.started_at.as_ref())
                        .or_else(|| {
                            state.and_then(|st| st.terminated.as_ref()?.started_at.as_ref())
                        })
                        .map(|t| t.0),
                    ready: s.is_some_and(|s| s.ready),
                    finished: state
                        .and_then(|st| st.terminated.as_ref()?.finished_at.as_ref())
                        .map(|t| t.0),
                }
            })
            .collect();
        let done = matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let completed = done.then(|| {
            statuses
                .iter()
                .filter_map(|s| s.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
                .map(|t| t.0)
                .max()
                .unwrap_or(now)
        });
        Some(Self {
            uid,
            namespace: meta.namespace.clone().unwrap_or_default(),
            task,
            created,
            scheduled: condition("PodScheduled"),
            initialized: condition("Initialized"),
            completed,
            steps,
            sidecars,
        })
    }
}

#[derive(Debug, Default)]
struct Tracked {
    info: Option<PodInfo>,
    first_started: Option<Timestamp>,
    finished: HashMap<usize, Timestamp>,
    reported: HashSet<Phase>,
    sidecars_ready: HashSet<String>,
    sidecars_stopped: HashSet<String>,
}

impl Tracked {
    fn labels(&self) -> (String, String) {
        self.info
            .as_ref()
            .map(|i| (i.namespace.clone(), i.task.clone()))
            .unwrap_or_default()
    }

    fn last_finished(&self) -> Option<Timestamp> {
        let steps = self.info.as_ref()?.steps.len();
        (steps > 0 && (0..steps).all(|i| self.finished.contains_key(&i)))
            .then(|| self.finished.values().max().copied())
            .flatten()
    }

    /// Every measurement that became possible and was not made yet.
    fn observe(&mut self, now: Timestamp) -> Vec<Observation> {
        let Some(info) = self.info.clone() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let since = |from: Timestamp, to: Timestamp| to.duration_since(from).as_secs_f64().max(0.0);
        let last_finished = self.last_finished();
        for (phase, at) in [
            (Phase::Scheduled, info.scheduled),
            (Phase::Initialized, info.initialized),
            (Phase::FirstStepStarted, self.first_started),
            (Phase::LastStepFinished, last_finished),
            (Phase::Completed, info.completed),
        ] {
            if let Some(at) = at
                && self.reported.insert(phase)
            {
                out.push(Observation::Phase {
                    namespace: info.namespace.clone(),
                    task: info.task.clone(),
                    phase,
                    seconds: since(info.created, at),
                });
            }
        }
        for s in &info.sidecars {
            if let Some(started) = s.started
                && s.ready
                && self.sidecars_ready.insert(s.name.clone())
            {
                out.push(Observation::SidecarReady {
                    namespace: info.namespace.clone(),
                    task: info.task.clone(),
                    sidecar: s.name.clone(),
                    seconds: since(started, now),
                });
            }
            if let (Some(stopped), Some(steps_done)) = (s.finished, last_finished)
                && self.sidecars_stopped.insert(s.name.clone())
            {
                out.push(Observation::SidecarStopped {
                    namespace: info.namespace.clone(),
                    task: info.task.clone(),
                    sidecar: s.name.clone(),
                    seconds: since(steps_done, stopped),
                });
            }
        }
        out
    }
}

/// Every tektite Pod the agent has heard of, by UID.
#[derive(Debug, Default)]
pub struct PodBook {
    pods: HashMap<String, Tracked>,
}

impl PodBook {
    /// A Pod was added or changed.
    pub fn apply(&mut self, info: PodInfo, now: Timestamp) -> Vec<Observation> {
        let tracked = self.pods.entry(info.uid.clone()).or_default();
        tracked.info = Some(info);
        tracked.observe(now)
    }

    /// The Pod was deleted from the API.
    pub fn deleted(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    #[cfg(test)]
    pub fn step_name(&self, uid: &str, step: usize) -> Option<&str> {
        self.pods
            .get(uid)?
            .info
            .as_ref()?
            .steps
            .get(step)
            .map(String::as_str)
    }

    /// A step event from the markers: the step's name when known, and what it measures.
    pub fn step_event(
        &mut self,
        event: &Event,
        now: Timestamp,
    ) -> (Option<String>, Vec<Observation>) {
        if let Event::PodGone { pod_uid } = event {
            self.pods.remove(pod_uid);
            return (None, Vec::new());
        }
        let uid = event.pod_uid();
        let step = event.step().unwrap_or_default();
        let tracked = self.pods.entry(uid.to_owned()).or_default();
        let name = tracked
            .info
            .as_ref()
            .and_then(|i| i.steps.get(step).cloned());
        let mut out = Vec::new();
        match event {
            Event::StepStarted { started_at, .. } => {
                tracked.first_started = Some(
                    tracked
                        .first_started
                        .map_or(*started_at, |t| t.min(*started_at)),
                );
            }
            Event::StepFinished { state, .. } => {
                let finished = state.finished_at.unwrap_or(now);
                tracked.finished.insert(step, finished);
                let (namespace, task) = tracked.labels();
                out.push(Observation::Step {
                    namespace,
                    task,
                    step: name.clone().unwrap_or_default(),
                    seconds: finished
                        .duration_since(state.started_at)
                        .as_secs_f64()
                        .max(0.0),
                });
            }
            Event::StepUnreadable { .. } => {
                tracked.finished.insert(step, now);
            }
            Event::PodGone { .. } => {}
        }
        out.extend(tracked.observe(now));
        (name, out)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pods.len()
    }
}

/// Watches the tektite Pods scheduled to `node` until the process ends, keeping `book`
/// current and recording lifecycle metrics. Errors are logged and retried with backoff.
pub async fn watch(client: Client, node: String, book: Arc<Mutex<PodBook>>, metrics: Arc<Metrics>) {
    let config = watcher::Config::default()
        .fields(&format!("spec.nodeName={node}"))
        .labels(labels::TEKTITE_POD_SELECTOR);
    let mut events = watcher(Api::<Pod>::all(client), config)
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(uid) = &pod.metadata.uid {
                    lock(&book).deleted(uid);
                }
                continue;
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
            Err(error) => {
                tracing::warn!(%error, node, "watching this node's Pods failed; retrying");
                continue;
            }
        };
        let now = Timestamp::now();
        if let Some(info) = PodInfo::from_pod(&pod, now) {
            for obs in lock(&book).apply(info, now) {
                obs.record(&metrics);
            }
        }
    }
}

pub fn lock(book: &Mutex<PodBook>) -> std::sync::MutexGuard<'_, PodBook> {
    book.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tektite_api::step::{StepReason, StepState};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A two-step Pod with a sidecar, as the API server would return it.
    pub(crate) fn pod_json(uid: &str, phase: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "build-pod", "namespace": "ci", "uid": uid,
                "creationTimestamp": "2026-11-22T10:00:00Z",
                "labels": {"tektite.dev/managed-by": "tektite", "tekton.dev/task": "build"}
            },
            "spec": {"nodeName": "node-a", "containers": [
                {"name": "step-fetch", "image": "alpine"},
                {"name": "sidecar-db", "image": "postgres"},
                {"name": "step-compile", "image": "alpine"}
            ]},
            "status": {
                "phase": phase,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-22T10:00:01Z"},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-11-22T10:00:03Z"}
                ],
                "containerStatuses": [
                    {"name": "sidecar-db", "ready": true, "restartCount": 0, "image": "postgres", "imageID": "",
                     "state": if phase == "Succeeded" {
                        serde_json::json!({"terminated": {"exitCode": 0, "startedAt": "2026-11-22T10:00:04Z", "finishedAt": "2026-11-22T10:00:20Z"}})
                     } else {
                        serde_json::json!({"running": {"startedAt": "2026-11-22T10:00:04Z"}})
                     }}
                ]
            }
        })
    }

    fn info(uid: &str, phase: &str, now: Timestamp) -> PodInfo {
        let pod: Pod = serde_json::from_value(pod_json(uid, phase)).unwrap();
        PodInfo::from_pod(&pod, now).unwrap()
    }

    fn finished(uid: &str, step: usize, start: &str, end: &str) -> Event {
        let mut state = StepState::started(t(start));
        state.finished_at = Some(t(end));
        state.exit_code = Some(0);
        state.reason = Some(StepReason::Completed);
        Event::StepFinished {
            pod_uid: uid.into(),
            step,
            state,
        }
    }

    #[test]
    fn a_pod_gives_its_steps_in_order_and_its_sidecars() {
        let i = info("u1", "Running", t("2026-11-22T10:00:05Z"));
        assert_eq!(i.steps, ["fetch", "compile"]);
        assert_eq!((i.namespace.as_str(), i.task.as_str()), ("ci", "build"));
        assert_eq!(i.sidecars[0].name, "db");
        assert_eq!(i.sidecars[0].started, Some(t("2026-11-22T10:00:04Z")));
        assert_eq!(i.completed, None);
    }

    #[test]
    fn a_native_sidecar_is_read_from_the_init_containers() {
        let mut json = pod_json("u1", "Running");
        let spec = json["spec"].as_object_mut().unwrap();
        spec["containers"].as_array_mut().unwrap().remove(1);
        spec.insert(
            "initContainers".into(),
            serde_json::json!([{"name": "prepare", "image": "e"},
                               {"name": "sidecar-db", "image": "postgres", "restartPolicy": "Always"}]),
        );
        let status = json["status"].as_object_mut().unwrap();
        let side = status.remove("containerStatuses").unwrap();
        status.insert("initContainerStatuses".into(), side);
        let pod: Pod = serde_json::from_value(json).unwrap();
        let i = PodInfo::from_pod(&pod, t("2026-11-22T10:00:05Z")).unwrap();
        assert_eq!(i.steps, ["fetch", "compile"]);
        assert_eq!(i.sidecars.len(), 1);
        assert_eq!(i.sidecars[0].name, "db");
        assert!(i.sidecars[0].ready);
        assert_eq!(i.sidecars[0].started, Some(t("2026-11-22T10:00:04Z")));
    }

    #[test]
    fn a_pod_without_a_uid_is_not_tracked() {
        let mut json = pod_json("u", "Running");
        json["metadata"].as_object_mut().unwrap().remove("uid");
        let pod: Pod = serde_json::from_value(json).unwrap();
        assert_eq!(PodInfo::from_pod(&pod, Timestamp::UNIX_EPOCH), None);
    }

    #[test]
    fn steps_are_named_once_the_pod_is_known() {
        let mut book = PodBook::default();
        let now = t("2026-11-22T10:00:05Z");
        let started = Event::StepStarted {
            pod_uid: "u1".into(),
            step: 1,
            started_at: now,
        };
        assert_eq!(book.step_event(&started, now).0, None);
        book.apply(info("u1", "Running", now), now);
        assert_eq!(book.step_event(&started, now).0.as_deref(), Some("compile"));
        assert_eq!(book.step_name("u1", 0), Some("fetch"));
        assert_eq!(book.step_name("u1", 9), None);
    }

    #[test]
    fn the_lifecycle_is_measured_from_creation_and_each_phase_once() {
        let mut book = PodBook::default();
        let now = t("2026-11-22T10:00:05Z");
        let first = book.apply(info("u1", "Running", now), now);
        let phases: Vec<(Phase, f64)> = first
            .iter()
            .filter_map(|o| match o {
                Observation::Phase { phase, seconds, .. } => Some((*phase, *seconds)),
                _ => None,
            })
            .collect();
        assert_eq!(phases, [(Phase::Scheduled, 1.0), (Phase::Initialized, 3.0)]);
        assert!(first.contains(&Observation::SidecarReady {
            namespace: "ci".into(),
            task: "build".into(),
            sidecar: "db".into(),
            seconds: 1.0,
        }));
        assert!(
            book.apply(info("u1", "Running", now), now).is_empty(),
            "nothing twice"
        );

        let (_, obs) = book.step_event(
            &Event::StepStarted {
                pod_uid: "u1".into(),
                step: 0,
                started_at: t("2026-11-22T10:00:06Z"),
            },
            now,
        );
        assert!(
            matches!(obs[..], [Observation::Phase { phase: Phase::FirstStepStarted, seconds, .. }] if seconds == 6.0)
        );
        let (name, obs) = book.step_event(
            &finished("u1", 0, "2026-11-22T10:00:06Z", "2026-11-22T10:00:08Z"),
            now,
        );
        assert_eq!(name.as_deref(), Some("fetch"));
        assert_eq!(
            obs,
            [Observation::Step {
                namespace: "ci".into(),
                task: "build".into(),
                step: "fetch".into(),
                seconds: 2.0
            }]
        );
        let (_, obs) = book.step_event(
            &finished("u1", 1, "2026-11-22T10:00:08Z", "2026-11-22T10:00:18Z"),
            now,
        );
        assert!(obs.contains(&Observation::Phase {
            namespace: "ci".into(),
            task: "build".into(),
            phase: Phase::LastStepFinished,
            seconds: 18.0
        }));

        let later = t("2026-11-22T10:00:30Z");
        let done = book.apply(info("u1", "Succeeded", later), later);
        assert!(done.contains(&Observation::Phase {
            namespace: "ci".into(),
            task: "build".into(),
            phase: Phase::Completed,
            seconds: 20.0
        }));
        assert!(done.contains(&Observation::SidecarStopped {
            namespace: "ci".into(),
            task: "build".into(),
            sidecar: "db".into(),
            seconds: 2.0
        }));
    }

    fn pod_list(items: Vec<serde_json::Value>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "PodList",
            "metadata": {"resourceVersion": "100"},
            "items": items,
        }))
        .unwrap()
    }

    /// The query of `uri` as decoded pairs.
    fn query(uri: &http::Uri) -> HashMap<String, String> {
        uri.query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.replace("%3D", "=").replace("%2F", "/"))
            })
            .collect()
    }

    #[tokio::test]
    async fn the_pod_watch_asks_only_for_tektite_pods_on_this_node() {
        use kube::client::Body;
        let (service, mut api) =
            tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
        let client = Client::new(service, "default");
        let book = Arc::new(Mutex::new(PodBook::default()));
        let metrics = Arc::new(Metrics::new());
        let task = tokio::spawn(watch(
            client,
            "node-a".into(),
            book.clone(),
            metrics.clone(),
        ));

        let (request, respond) = api.next_request().await.expect("a list request");
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(request.uri().path(), "/api/v1/pods");
        let q = query(request.uri());
        assert_eq!(q["fieldSelector"], "spec.nodeName=node-a");
        assert_eq!(q["labelSelector"], labels::TEKTITE_POD_SELECTOR);
        assert!(!q.contains_key("watch"));
        respond.send_response(
            http::Response::builder()
                .body(Body::from(pod_list(vec![pod_json("u1", "Running")])))
                .unwrap(),
        );

        let (request, respond) = api.next_request().await.expect("a watch request");
        assert_eq!(request.uri().path(), "/api/v1/pods");
        let q = query(request.uri());
        assert_eq!(q["watch"], "true");
        assert_eq!(q["resourceVersion"], "100");
        assert_eq!(q["fieldSelector"], "spec.nodeName=node-a");
        assert_eq!(q["labelSelector"], labels::TEKTITE_POD_SELECTOR);
        let mut done = pod_json("u1", "Succeeded");
        done["metadata"]["resourceVersion"] = "101".into();
        let line =
            serde_json::to_vec(&serde_json::json!({"type": "MODIFIED", "object": done})).unwrap();
        respond.send_response(http::Response::builder().body(Body::from(line)).unwrap());

        for _ in 0..200 {
            if metrics.encode().contains("phase=\"completed\"") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        task.abort();
        assert_eq!(lock(&book).step_name("u1", 1), Some("compile"));
        let text = metrics.encode();
        for phase in ["scheduled", "initialized", "completed"] {
            assert!(
                text.contains(&format!(
                    "tektite_agent_pod_lifecycle_seconds_count{{namespace=\"ci\",task=\"build\",phase=\"{phase}\"}} 1"
                )),
                "{phase} missing from:\n{text}"
            );
        }
        assert!(!text.contains("u1"), "no pod UID in any label");
    }

    #[test]
    fn a_removed_pod_is_forgotten() {
        let mut book = PodBook::default();
        let now = t("2026-11-22T10:00:05Z");
        book.apply(info("u1", "Running", now), now);
        book.apply(info("u2", "Running", now), now);
        book.deleted("u1");
        book.step_event(
            &Event::PodGone {
                pod_uid: "u2".into(),
            },
            now,
        );
        assert_eq!(book.len(), 0);
    }
}
