//! An in-memory Kubernetes API server for the controller benchmarks. It serves create, get,
//! merge patch (strategic and apply patches are applied as JSON merge patches), replace,
//! delete, list and watch of any resource as HTTP/1.1 on loopback, so the real
//! `tektite-controller` binary can be pointed at it with a kubeconfig. It answers at once,
//! keeps every object in memory, and checks names and existence only: no schema, no
//! admission, no resourceVersion conflicts. A watch from a resourceVersion older than the
//! kept history gets 410 Gone, as from a real API server, and the client lists again.
//!
//! With a [`Kubelet`] it also plays the nodes: every Pod it is given is scheduled and its
//! containers started at once, in the same write.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// Watch events kept per resource for watches that resume from an older resourceVersion.
const HISTORY: usize = 50_000;

/// What the fake kubelet does with a new Pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kubelet {
    /// Nothing: Pods stay Pending with no status.
    Off,
    /// Pods are bound to one of `nodes` nodes and every container is running.
    Run { nodes: u32 },
}

/// One write the fake took.
#[derive(Clone, Debug)]
pub struct Write {
    pub at: Instant,
    pub method: Method,
    /// `api/v1/pods`, `apis/tekton.dev/v1/taskruns`...
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

type Body = BoxBody<Bytes, Infallible>;

#[derive(Debug)]
pub struct FakeApi {
    state: Mutex<State>,
    kubelet: Kubelet,
}

#[derive(Debug, Default)]
struct State {
    version: u64,
    resources: HashMap<String, Resource>,
    writes: Vec<Write>,
}

#[derive(Debug, Default)]
struct Resource {
    objects: BTreeMap<(String, String), Value>,
    history: VecDeque<Arc<Change>>,
    watchers: Vec<Watcher>,
}

#[derive(Debug)]
struct Change {
    version: u64,
    namespace: String,
    labels: BTreeMap<String, String>,
    line: Bytes,
}

#[derive(Debug)]
struct Watcher {
    namespace: Option<String>,
    selector: Vec<(String, String)>,
    tx: mpsc::UnboundedSender<Bytes>,
}

impl Watcher {
    fn wants(&self, change: &Change) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|n| *n == change.namespace)
            && self
                .selector
                .iter()
                .all(|(k, v)| change.labels.get(k) == Some(v))
    }
}

/// Where a request points (a subresource such as `/status` is the object itself).
#[derive(Debug, PartialEq)]
struct Target {
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
}

fn target(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let prefix = match *segments.first()? {
        "api" => 2,
        "apis" => 3,
        _ => return None,
    };
    if segments.len() <= prefix {
        return None;
    }
    let base = segments[..prefix].join("/");
    let rest = &segments[prefix..];
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    Some(Target {
        resource: format!("{base}/{}", rest[0]),
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
    })
}

fn status(code: StatusCode, reason: &str, message: String) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": if code.is_success() { "Success" } else { "Failure" },
        "reason": reason, "message": message, "code": code.as_u16(),
    })
}

fn respond(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .expect("a valid response")
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Equality terms of a label selector (`a=b,c==d`); set-based terms match nothing.
fn selector(query: &[(String, String)]) -> Vec<(String, String)> {
    query
        .iter()
        .filter(|(k, _)| k == "labelSelector")
        .flat_map(|(_, v)| v.split(','))
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (k, v) = t
                .split_once("==")
                .or(t.split_once('='))
                .unwrap_or((t, "\0"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

impl FakeApi {
    pub fn new(kubelet: Kubelet) -> Arc<Self> {
        Arc::new(FakeApi {
            state: Mutex::default(),
            kubelet,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves on 127.0.0.1 on a free port until the runtime ends.
    pub async fn serve(self: &Arc<Self>) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let api = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let api = api.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(addr)
    }

    /// Adds objects as if they had been created, all in one step; returns when.
    pub fn insert(&self, resource: &str, objects: Vec<Value>) -> Instant {
        let mut state = self.lock();
        let now = Instant::now();
        for object in objects {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let _ = state.create(resource, &namespace, object, self.kubelet);
        }
        now
    }

    /// The writes taken so far.
    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    /// How many objects of `resource` satisfy `test`.
    pub fn count(&self, resource: &str, test: impl Fn(&Value) -> bool) -> usize {
        self.lock()
            .resources
            .get(resource)
            .map(|r| r.objects.values().filter(|o| test(o)).count())
            .unwrap_or(0)
    }

    /// The size of `resource`'s objects as compact JSON, in bytes.
    pub fn json_bytes(&self, resource: &str) -> usize {
        self.lock()
            .resources
            .get(resource)
            .map(|r| r.objects.values().map(|o| o.to_string().len()).sum())
            .unwrap_or(0)
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let Some(target) = target(req.uri().path()) else {
            return respond(
                StatusCode::NOT_FOUND,
                &status(StatusCode::NOT_FOUND, "NotFound", req.uri().path().into()),
            );
        };
        let query: Vec<(String, String)> =
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let method = req.method().clone();
        let apply = req
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    &status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
                );
            }
        };
        let parsed = || serde_json::from_slice::<Value>(&body);
        let namespace = target.namespace.clone().unwrap_or_default();
        let mut state = self.lock();
        let result = match (&method, &target.name) {
            (&Method::GET, None) if query.iter().any(|(k, v)| k == "watch" && v != "false") => {
                let from = query
                    .iter()
                    .find(|(k, _)| k == "resourceVersion")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                return state.watch(&target, from, selector(&query));
            }
            (&Method::GET, None) => Ok(state.list(&target, &query)),
            (&Method::GET, Some(name)) => state.get(&target.resource, &namespace, name),
            (&Method::POST, None) => match parsed() {
                Ok(object) => state.create(&target.resource, &namespace, object, self.kubelet),
                Err(e) => Err(bad_request(e)),
            },
            (&Method::PATCH, Some(name)) => match parsed() {
                Ok(patch) => state.patch(&target.resource, &namespace, name, &patch, apply),
                Err(e) => Err(bad_request(e)),
            },
            (&Method::PUT, Some(name)) => match parsed() {
                Ok(object) => state.replace(&target.resource, &namespace, name, object),
                Err(e) => Err(bad_request(e)),
            },
            (&Method::DELETE, Some(name)) => state.delete(&target.resource, &namespace, name),
            _ => Err(status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} {}", target.resource),
            )),
        };
        if method != Method::GET && result.is_ok() {
            let name = target
                .name
                .clone()
                .or_else(|| {
                    let o = &result.as_ref().ok()?.1;
                    Some(o["metadata"]["name"].as_str()?.to_string())
                })
                .unwrap_or_default();
            state.writes.push(Write {
                at: Instant::now(),
                method,
                resource: target.resource.clone(),
                namespace,
                name,
            });
        }
        drop(state);
        match result {
            Ok((code, body)) => respond(code, &body),
            Err(s) => respond(
                StatusCode::from_u16(s["code"].as_u64().unwrap_or(500) as u16)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &s,
            ),
        }
    }
}

fn bad_request(e: serde_json::Error) -> Value {
    status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string())
}

fn not_found(resource: &str, name: &str) -> Value {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{resource} \"{name}\" not found"),
    )
}

type Answer = Result<(StatusCode, Value), Value>;

impl State {
    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Stores `object` under a new resourceVersion and tells the watchers.
    fn put(&mut self, resource: &str, kind: &str, mut object: Value) -> Value {
        let version = self.next_version();
        object["metadata"]["resourceVersion"] = version.to_string().into();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": &object}))
            .expect("JSON values serialize");
        line.push(b'\n');
        let change = Arc::new(Change {
            version,
            labels: labels_of(&object),
            namespace: namespace.clone(),
            line: Bytes::from(line),
        });
        let r = self.resources.entry(resource.to_string()).or_default();
        if kind == "DELETED" {
            r.objects.remove(&(namespace, name));
        } else {
            r.objects.insert((namespace, name), object.clone());
        }
        r.watchers
            .retain(|w| !w.wants(&change) || w.tx.send(change.line.clone()).is_ok());
        r.history.push_back(change);
        if r.history.len() > HISTORY {
            r.history.pop_front();
        }
        object
    }

    fn create(
        &mut self,
        resource: &str,
        namespace: &str,
        mut object: Value,
        kubelet: Kubelet,
    ) -> Answer {
        let meta = &mut object["metadata"];
        if meta["name"].as_str().unwrap_or_default().is_empty() {
            let prefix = meta["generateName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            meta["name"] = format!("{prefix}{:05}", self.version + 1).into();
        }
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        if !namespace.is_empty() {
            meta["namespace"] = namespace.into();
        }
        let exists = self.resources.get(resource).is_some_and(|r| {
            r.objects
                .contains_key(&(namespace.to_string(), name.clone()))
        });
        if exists {
            return Err(status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{resource} \"{name}\" already exists"),
            ));
        }
        meta["uid"] = format!("uid-{:08}", self.version + 1).into();
        meta["creationTimestamp"] = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
            .into();
        meta["generation"] = 1.into();
        let mut created = self.put(resource, "ADDED", object);
        if let (Kubelet::Run { nodes }, "api/v1/pods") = (kubelet, resource) {
            created = self.put(resource, "MODIFIED", started(created, nodes, self.version));
        }
        Ok((StatusCode::CREATED, created))
    }

    fn get(&self, resource: &str, namespace: &str, name: &str) -> Answer {
        self.resources
            .get(resource)
            .and_then(|r| r.objects.get(&(namespace.to_string(), name.to_string())))
            .map(|o| (StatusCode::OK, o.clone()))
            .ok_or_else(|| not_found(resource, name))
    }

    fn patch(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
        apply: bool,
    ) -> Answer {
        let current = match self.get(resource, namespace, name) {
            Ok((_, o)) => o,
            Err(_) if apply => {
                let mut object = patch.clone();
                object["metadata"]["name"] = name.into();
                return self.create(resource, namespace, object, Kubelet::Off);
            }
            Err(e) => return Err(e),
        };
        let mut object = current.clone();
        json_patch::merge(&mut object, patch);
        if object == current {
            return Ok((StatusCode::OK, current));
        }
        Ok((StatusCode::OK, self.put(resource, "MODIFIED", object)))
    }

    fn replace(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        mut object: Value,
    ) -> Answer {
        let (_, current) = self.get(resource, namespace, name)?;
        for keep in ["uid", "creationTimestamp", "generation", "namespace"] {
            object["metadata"][keep] = current["metadata"][keep].clone();
        }
        Ok((StatusCode::OK, self.put(resource, "MODIFIED", object)))
    }

    fn delete(&mut self, resource: &str, namespace: &str, name: &str) -> Answer {
        let (_, current) = self.get(resource, namespace, name)?;
        self.put(resource, "DELETED", current);
        Ok((
            StatusCode::OK,
            status(StatusCode::OK, "", format!("{resource} \"{name}\" deleted")),
        ))
    }

    /// A page of at most `limit` objects, continuing after the `continue` token's key; every
    /// page reports the first page's resourceVersion, as a real API server's snapshot does.
    fn list(&self, target: &Target, query: &[(String, String)]) -> (StatusCode, Value) {
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let limit = param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let token = param("continue").filter(|c| !c.is_empty()).and_then(|c| {
            let (version, key) = c.split_once('|')?;
            let (ns, name) = key.split_once('/')?;
            Some((version.to_string(), (ns.to_string(), name.to_string())))
        });
        let version = token
            .as_ref()
            .map_or(self.version.to_string(), |(v, _)| v.clone());
        let selector = selector(query);
        let start = token.map_or(Bound::Unbounded, |(_, key)| Bound::Excluded(key));
        let mut page: Vec<(&(String, String), &Value)> = self
            .resources
            .get(&target.resource)
            .into_iter()
            .flat_map(|r| r.objects.range((start.clone(), Bound::Unbounded)))
            .filter(|((ns, _), _)| target.namespace.as_ref().is_none_or(|n| n == ns))
            .filter(|(_, o)| {
                let labels = labels_of(o);
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .take(limit.saturating_add(1))
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let next = match (more, page.last()) {
            (true, Some(((ns, name), _))) => format!("{version}|{ns}/{name}"),
            _ => String::new(),
        };
        let items: Vec<&Value> = page.into_iter().map(|(_, o)| o).collect();
        (
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "List",
                   "metadata": {"resourceVersion": version, "continue": next}, "items": items}),
        )
    }

    fn watch(
        &mut self,
        target: &Target,
        from: u64,
        selector: Vec<(String, String)>,
    ) -> Response<Body> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = Watcher {
            namespace: target.namespace.clone(),
            selector,
            tx,
        };
        let r = self.resources.entry(target.resource.clone()).or_default();
        let oldest = r.history.front().map(|c| c.version);
        if oldest.is_some_and(|o| from + 1 < o) {
            let gone = status(
                StatusCode::GONE,
                "Expired",
                format!("too old resource version: {from}"),
            );
            let line = format!("{}\n", json!({"type": "ERROR", "object": gone}));
            let _ = watcher.tx.send(Bytes::from(line));
        } else {
            for change in r.history.iter().filter(|c| c.version > from) {
                if watcher.wants(change) {
                    let _ = watcher.tx.send(change.line.clone());
                }
            }
            r.watchers.push(watcher);
        }
        let frames = UnboundedReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
        Response::builder()
            .header("content-type", "application/json")
            .body(BodyExt::boxed(StreamBody::new(frames)))
            .expect("a valid response")
    }
}

/// A Pod as a kubelet leaves it once every container has started.
fn started(mut pod: Value, nodes: u32, seed: u64) -> Value {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    pod["spec"]["nodeName"] = format!("node-{}", seed % u64::from(nodes.max(1))).into();
    let image = |c: &Value| c["image"].clone();
    let inits: Vec<Value> = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!({"name": c["name"], "image": image(c), "imageID": "", "ready": true, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}}))
        .collect();
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!({"name": c["name"], "image": image(c), "imageID": "", "ready": true, "restartCount": 0,
            "started": true, "state": {"running": {"startedAt": now}}}))
        .collect();
    pod["status"] = json!({
        "phase": "Running", "podIP": "10.0.0.1", "hostIP": "10.1.0.1", "startTime": now,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        "initContainerStatuses": inits, "containerStatuses": containers,
    });
    pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
    use kube::runtime::{WatchStreamExt, watcher};

    async fn client(api: &Arc<FakeApi>) -> kube::Client {
        let addr = api.serve().await.unwrap();
        let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn config_map(name: &str) -> ConfigMap {
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"app": "x"}}, "data": {"k": "v"}}),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_kube_client_creates_patches_lists_and_watches() {
        let api = FakeApi::new(Kubelet::Off);
        let maps: Api<ConfigMap> = Api::namespaced(client(&api).await, "ci");
        for i in 0..5 {
            maps.create(&PostParams::default(), &config_map(&format!("m{i}")))
                .await
                .unwrap();
        }
        let again = maps.create(&PostParams::default(), &config_map("m0")).await;
        assert!(
            matches!(again, Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists")
        );
        let missing = maps.get("nope").await;
        assert!(matches!(missing, Err(kube::Error::Api(s)) if s.code == 404));

        let patched = maps
            .patch(
                "m1",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"k": null, "n": "1"}})),
            )
            .await
            .unwrap();
        assert_eq!(
            patched.data.unwrap(),
            [("n".to_string(), "1".to_string())].into()
        );

        // Pages of two, in name order, until all five.
        let mut names = vec![];
        let mut params = ListParams::default().limit(2).labels("app=x");
        loop {
            let page = maps.list(&params).await.unwrap();
            assert!(page.items.len() <= 2);
            names.extend(page.items.iter().map(|m| m.metadata.name.clone().unwrap()));
            match page.metadata.continue_ {
                Some(c) if !c.is_empty() => params = params.continue_token(&c),
                _ => break,
            }
        }
        assert_eq!(names, ["m0", "m1", "m2", "m3", "m4"]);

        // A watcher lists, then sees a write made after it started.
        let mut seen =
            std::pin::pin!(watcher(maps.clone(), watcher::Config::default()).applied_objects());
        for _ in 0..5 {
            seen.try_next().await.unwrap().unwrap();
        }
        maps.delete("m4", &Default::default()).await.unwrap();
        maps.create(&PostParams::default(), &config_map("m5"))
            .await
            .unwrap();
        let next = seen.try_next().await.unwrap().unwrap();
        assert_eq!(next.metadata.name.as_deref(), Some("m5"));
        assert_eq!(api.count("api/v1/configmaps", |_| true), 5);
        assert_eq!(api.writes().len(), 8);
    }

    #[tokio::test]
    async fn the_kubelet_starts_every_container() {
        let api = FakeApi::new(Kubelet::Run { nodes: 3 });
        let pods: Api<Pod> = Api::namespaced(client(&api).await, "ci");
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "prepare", "image": "e"}],
                     "containers": [{"name": "step-a", "image": "a"}, {"name": "step-b", "image": "b"}]}}))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let pod = pods.get("p").await.unwrap();
        let status = pod.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(pod.spec.unwrap().node_name.unwrap().starts_with("node-"));
        let running: Vec<_> = status
            .container_statuses
            .unwrap()
            .iter()
            .filter(|c| c.state.as_ref().unwrap().running.is_some())
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(running, ["step-a", "step-b"]);
        assert!(
            status.init_container_statuses.unwrap()[0]
                .state
                .as_ref()
                .unwrap()
                .terminated
                .is_some()
        );
    }

    #[test]
    fn paths_name_a_resource() {
        assert_eq!(
            target("/apis/tekton.dev/v1/namespaces/ci/taskruns/tr/status"),
            Some(Target {
                resource: "apis/tekton.dev/v1/taskruns".into(),
                namespace: Some("ci".into()),
                name: Some("tr".into()),
            })
        );
        assert_eq!(
            target("/api/v1/pods"),
            Some(Target {
                resource: "api/v1/pods".into(),
                namespace: None,
                name: None,
            })
        );
        assert_eq!(target("/version"), None);
        assert_eq!(target("/apis/tekton.dev"), None);
    }
}
