//! An in-memory Kubernetes API server, for tests and the controller benchmarks. It serves
//! create, get, patch, replace, delete, list and watch of any resource as HTTP/1.1 on
//! loopback, so the real `tektite-controller` and `tektite-node-agent` binaries can be
//! pointed at it with a kubeconfig. It answers at once and keeps every object in memory.
//!
//! What it does as a real API server does:
//! - names (`generateName`), uid, creationTimestamp, resourceVersion on every write;
//!   AlreadyExists and NotFound;
//! - the `status` subresource of Pods, PVCs and tekton.dev runs: a create drops the status,
//!   a write to the object keeps the stored status, a write to `/status` changes nothing
//!   else;
//! - JSON merge patches; strategic merge patches merge lists of objects by their `name`
//!   (`type` for conditions) instead of replacing them; apply patches are merged as JSON
//!   merge patches;
//! - label selectors (equality terms) and field selectors (`a.b=c`, `a.b!=c`) on lists and
//!   watches; paged lists; a watch from a resourceVersion older than the kept history gets
//!   410 Gone, and the client lists again;
//! - `pods/<name>/binding` sets the node and the PodScheduled condition;
//! - TokenReviews, answered from the tokens given to [`FakeApi::accept_token`];
//! - `pods/<name>/log?container=c` from the text given to [`FakeApi::set_log`] or the
//!   kubelet's log files ([`FakeApi::serve_logs_from`]); with `follow=true`, streamed
//!   until the container has terminated (404 for a Pod that is gone, 400 for a container
//!   with no log yet);
//! - 403 Forbidden for every request on a resource given to [`FakeApi::forbid`];
//! - every request kept as `METHOD path?query` ([`FakeApi::requests`]);
//! - `/version`, as Kubernetes 1.33.
//!
//! What it does not: schemas, admission, defaulting, resourceVersion conflicts, graceful
//! deletion (a delete removes the object at once), garbage collection.
//!
//! With a [`Kubelet`] it can also play the nodes itself: every Pod it is given is
//! scheduled and its containers started at once, in the same write (`Kubelet::Off` leaves
//! Pods to a real kubelet stand-in such as [`crate::kubelet`]).

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
    /// TokenReviews' answers: token → (username, node).
    tokens: HashMap<String, (String, Option<String>)>,
    /// Every request taken, as `METHOD path?query`.
    requests: Vec<String>,
    /// What `pods/<name>/log` answers: (namespace, pod, container) → text.
    logs: HashMap<(String, String, String), String>,
    /// Resources every request for is refused 403, as RBAC would.
    forbidden: Vec<String>,
    /// Where a kubelet keeps containers' logs (`<ns>_<pod>_<uid>/<container>.log`), for
    /// `pods/<name>/log` of Pods [`FakeApi::set_log`] was not given.
    logs_dir: Option<std::path::PathBuf>,
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
    object: Value,
    line: Bytes,
}

#[derive(Debug)]
struct Watcher {
    namespace: Option<String>,
    selector: Selector,
    tx: mpsc::UnboundedSender<Bytes>,
}

impl Watcher {
    fn wants(&self, change: &Change) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|n| *n == change.namespace)
            && self.selector.matches(&change.object)
    }
}

/// A list's or watch's label and field selectors.
#[derive(Debug, Default)]
struct Selector {
    /// Equality terms of `labelSelector` (`a=b`, `c==d`); a set-based term matches nothing.
    labels: Vec<(String, String)>,
    /// Terms of `fieldSelector`: (dotted path, value, equal).
    fields: Vec<(String, String, bool)>,
}

impl Selector {
    fn from_query(query: &[(String, String)]) -> Self {
        let terms = |key: &str| -> Vec<String> {
            query
                .iter()
                .filter(|(k, _)| k == key)
                .flat_map(|(_, v)| v.split(','))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        };
        let labels = terms("labelSelector")
            .iter()
            .map(|t| {
                let (k, v) = t
                    .split_once("==")
                    .or(t.split_once('='))
                    .unwrap_or((t, "\0"));
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let fields = terms("fieldSelector")
            .iter()
            .map(|t| match t.split_once("!=") {
                Some((k, v)) => (k.trim().to_string(), v.trim().to_string(), false),
                None => {
                    let (k, v) = t
                        .split_once("==")
                        .or(t.split_once('='))
                        .unwrap_or((t, "\0"));
                    (k.trim().to_string(), v.trim().to_string(), true)
                }
            })
            .collect();
        Selector { labels, fields }
    }

    fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.labels
            .iter()
            .all(|(k, v)| labels[k].as_str() == Some(v.as_str()))
            && self.fields.iter().all(|(path, v, equal)| {
                let found = path
                    .split('.')
                    .fold(object, |o, key| &o[key])
                    .as_str()
                    .unwrap_or_default();
                (found == v) == *equal
            })
    }
}

/// Where a request points.
#[derive(Debug, PartialEq)]
struct Target {
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    /// `status`, `binding`...
    subresource: Option<String>,
}

/// Resources whose status is a subresource: written only through `/status`.
const WITH_STATUS: &[&str] = &[
    "api/v1/pods",
    "api/v1/persistentvolumeclaims",
    "apis/tekton.dev/v1/taskruns",
    "apis/tekton.dev/v1/pipelineruns",
    "apis/tekton.dev/v1beta1/customruns",
];

const TOKEN_REVIEWS: &str = "apis/authentication.k8s.io/v1/tokenreviews";

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
        subresource: rest.get(2).map(|s| s.to_string()),
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

    /// A TokenReview of `token` answers authenticated as `username`, with the node its Pod
    /// runs on where given (as a bound ServiceAccount token says).
    pub fn accept_token(&self, token: &str, username: &str, node: Option<&str>) {
        self.lock().tokens.insert(
            token.to_string(),
            (username.to_string(), node.map(str::to_string)),
        );
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

    /// As [`FakeApi::insert`], each object's status kept as given (as if its controller
    /// had written it), and its creationTimestamp where it has one (as if created then).
    pub fn insert_with_status(&self, resource: &str, objects: Vec<Value>) {
        let mut state = self.lock();
        for object in objects {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let written = object.get("status").cloned();
            let created_at = object["metadata"]["creationTimestamp"].clone();
            let Ok((_, created)) = state.create(resource, &namespace, object, self.kubelet) else {
                continue;
            };
            if created_at.is_string() {
                let name = created["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if let Some(o) = state
                    .resources
                    .get_mut(resource)
                    .and_then(|r| r.objects.get_mut(&(namespace.clone(), name)))
                {
                    o["metadata"]["creationTimestamp"] = created_at;
                }
            }
            if let Some(st) = written {
                let name = created["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let _ = state.patch(
                    resource,
                    &namespace,
                    &name,
                    Some("status"),
                    &json!({ "status": st }),
                    PatchKind::Merge,
                );
            }
        }
    }

    /// Every request taken so far, as `METHOD path?query` (the query as sent).
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// What `pods/<pod>/log?container=<container>` answers from now on.
    pub fn set_log(&self, namespace: &str, pod: &str, container: &str, text: &str) {
        self.lock().logs.insert(
            (namespace.into(), pod.into(), container.into()),
            text.into(),
        );
    }

    /// Serves the logs a kubelet writes under `dir` (`<ns>_<pod>_<uid>/<container>.log`).
    pub fn serve_logs_from(&self, dir: &std::path::Path) {
        self.lock().logs_dir = Some(dir.to_owned());
    }

    /// A log file's text from `offset`, and whether the container has terminated (or its
    /// Pod is gone).
    fn log_tail(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        offset: usize,
    ) -> (Vec<u8>, bool) {
        let state = self.lock();
        let Ok((_, p)) = state.get(PODS, namespace, pod) else {
            return (Vec::new(), true);
        };
        let ended = p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .chain(p["status"]["initContainerStatuses"].as_array())
            .flatten()
            .any(|s| s["name"] == container && s["state"]["terminated"].is_object());
        let uid = p["metadata"]["uid"].as_str().unwrap_or_default();
        let text = state
            .logs_dir
            .as_ref()
            .and_then(|d| {
                std::fs::read(
                    d.join(format!("{namespace}_{pod}_{uid}"))
                        .join(format!("{container}.log")),
                )
                .ok()
            })
            .unwrap_or_default();
        (text.get(offset..).unwrap_or_default().to_vec(), ended)
    }

    /// Refuses every request on `resource` (`apis/tekton.dev/v1/pipelineruns`) with 403.
    pub fn forbid(&self, resource: &str) {
        self.lock().forbidden.push(resource.into());
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

    /// Every object of `resource`, as stored, in namespace and name order.
    pub fn objects(&self, resource: &str) -> Vec<Value> {
        self.lock()
            .resources
            .get(resource)
            .map(|r| r.objects.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The object `namespace/name` of `resource`, as stored.
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .get(resource, namespace, name)
            .ok()
            .map(|(_, o)| o)
    }

    /// The size of `resource`'s objects as compact JSON, in bytes.
    pub fn json_bytes(&self, resource: &str) -> usize {
        self.lock()
            .resources
            .get(resource)
            .map(|r| r.objects.values().map(|o| o.to_string().len()).sum())
            .unwrap_or(0)
    }

    async fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        if req.uri().path() == "/version" {
            return respond(
                StatusCode::OK,
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-tektite-test",
                        "platform": "linux/amd64"}),
            );
        }
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
        {
            let mut state = self.lock();
            let line = match req.uri().query() {
                Some(q) => format!("{} {}?{q}", req.method(), req.uri().path()),
                None => format!("{} {}", req.method(), req.uri().path()),
            };
            state.requests.push(line);
            if state.forbidden.contains(&target.resource) {
                let message = format!(
                    "{} is forbidden: User \"test\" cannot {} resource {:?} in the namespace {:?}",
                    target.resource,
                    req.method().as_str().to_lowercase(),
                    target.resource.rsplit('/').next().unwrap_or_default(),
                    target.namespace.clone().unwrap_or_default()
                );
                return respond(
                    StatusCode::FORBIDDEN,
                    &status(StatusCode::FORBIDDEN, "Forbidden", message),
                );
            }
            if req.method() == Method::GET
                && target.resource == PODS
                && target.subresource.as_deref() == Some("log")
            {
                let namespace = target.namespace.clone().unwrap_or_default();
                let pod = target.name.clone().unwrap_or_default();
                if state.get(PODS, &namespace, &pod).is_err() {
                    return respond(
                        StatusCode::NOT_FOUND,
                        &status(
                            StatusCode::NOT_FOUND,
                            "NotFound",
                            format!("pods \"{pod}\" not found"),
                        ),
                    );
                }
                let container = query
                    .iter()
                    .find(|(k, _)| k == "container")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let follow = query.iter().any(|(k, v)| k == "follow" && v == "true");
                let key = (namespace.clone(), pod.clone(), container.clone());
                if !state.logs.contains_key(&key) && state.logs_dir.is_some() {
                    drop(state);
                    let (text, ended) = self.log_tail(&namespace, &pod, &container, 0);
                    if !follow {
                        return Response::builder()
                            .status(StatusCode::OK)
                            .header("content-type", "text/plain")
                            .body(Full::new(Bytes::from(text)).boxed())
                            .expect("a valid response");
                    }
                    // Followed: what is there, then what comes, until the container ends.
                    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
                    let api = self.clone();
                    tokio::spawn(async move {
                        let mut offset = text.len();
                        let _ = tx.send(Bytes::from(text));
                        let mut ended = ended;
                        loop {
                            let (more, now_ended) =
                                api.log_tail(&namespace, &pod, &container, offset);
                            offset += more.len();
                            if !more.is_empty() && tx.send(Bytes::from(more)).is_err() {
                                return;
                            }
                            if ended {
                                return;
                            }
                            ended = now_ended;
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    });
                    let frames = UnboundedReceiverStream::new(rx)
                        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
                    return Response::builder()
                        .header("content-type", "text/plain")
                        .body(BodyExt::boxed(StreamBody::new(frames)))
                        .expect("a valid response");
                }
                return match state.logs.get(&key) {
                    Some(text) => Response::builder()
                        .status(StatusCode::OK)
                        .header("content-type", "text/plain")
                        .body(Full::new(Bytes::from(text.clone())).boxed())
                        .expect("a valid response"),
                    None => respond(
                        StatusCode::BAD_REQUEST,
                        &status(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            format!("container {container} is not valid for pod {pod}"),
                        ),
                    ),
                };
            }
        }
        let method = req.method().clone();
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    &status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
                );
            }
        };
        let parsed = || serde_json::from_slice::<Value>(&body).map_err(bad_request);
        let namespace = target.namespace.clone().unwrap_or_default();
        let mut state = self.lock();
        let sub = target.subresource.as_deref();
        let result = match (&method, &target.name, sub) {
            (&Method::GET, None, _) if query.iter().any(|(k, v)| k == "watch" && v != "false") => {
                let from = query
                    .iter()
                    .find(|(k, _)| k == "resourceVersion")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                return state.watch(&target, from, Selector::from_query(&query));
            }
            (&Method::GET, None, _) => Ok(state.list(&target, &query)),
            (&Method::GET, Some(name), _) => state.get(&target.resource, &namespace, name),
            (&Method::POST, None, _) if target.resource == TOKEN_REVIEWS => {
                parsed().map(|review| state.review(review))
            }
            (&Method::POST, None, _) => parsed().and_then(|object| {
                state.create(&target.resource, &namespace, object, self.kubelet)
            }),
            (&Method::POST, Some(name), Some("binding")) if target.resource == PODS => {
                parsed().and_then(|binding| state.bind(&namespace, name, &binding))
            }
            (&Method::PATCH, Some(name), None | Some("status")) => {
                let kind = if content_type.starts_with("application/strategic-merge-patch") {
                    PatchKind::Strategic
                } else if content_type.starts_with("application/apply-patch") {
                    PatchKind::Apply
                } else if content_type.starts_with("application/merge-patch") {
                    PatchKind::Merge
                } else {
                    return respond(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        &status(
                            StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            "UnsupportedMediaType",
                            format!("the body of a patch is not {content_type:?}"),
                        ),
                    );
                };
                parsed().and_then(|patch| {
                    state.patch(&target.resource, &namespace, name, sub, &patch, kind)
                })
            }
            (&Method::PUT, Some(name), None | Some("status")) => parsed()
                .and_then(|object| state.replace(&target.resource, &namespace, name, sub, object)),
            (&Method::DELETE, Some(name), None) => state.delete(&target.resource, &namespace, name),
            _ => Err(status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} {} {}", target.resource, sub.unwrap_or_default()),
            )),
        };
        if method != Method::GET && result.is_ok() && target.resource != TOKEN_REVIEWS {
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

const PODS: &str = "api/v1/pods";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchKind {
    Merge,
    Strategic,
    Apply,
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

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A strategic merge patch as the API server applies it to the lists tektite patches:
/// a list of objects that all carry `name` (or, for conditions, `type`) is merged item by
/// item on that key; any other value is merged as in a JSON merge patch.
fn strategic_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (Value::Array(t), Value::Array(p)) if merge_key(p).is_some() => {
            let key = merge_key(p).expect("checked");
            for item in p {
                match t.iter_mut().find(|have| have[key] == item[key]) {
                    Some(have) => strategic_merge(have, item),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn merge_key(items: &[Value]) -> Option<&'static str> {
    ["name", "type"]
        .into_iter()
        .find(|key| !items.is_empty() && items.iter().all(|i| i[*key].is_string()))
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
            namespace: namespace.clone(),
            object: object.clone(),
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
        if WITH_STATUS.contains(&resource)
            && let Some(o) = object.as_object_mut()
        {
            o.remove("status");
        }
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
        meta["creationTimestamp"] = now_rfc3339().into();
        meta["generation"] = 1.into();
        if resource == PODS {
            object["status"] = json!({"phase": "Pending"});
        }
        let mut created = self.put(resource, "ADDED", object);
        if let (Kubelet::Run { nodes }, PODS) = (kubelet, resource) {
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

    /// Stores `object`, the new version of `current`, as a write to `subresource` takes it:
    /// the status alone through `/status`, everything but the status otherwise.
    fn update(
        &mut self,
        resource: &str,
        current: &Value,
        subresource: Option<&str>,
        mut object: Value,
    ) -> Value {
        for keep in ["uid", "creationTimestamp", "namespace", "name"] {
            object["metadata"][keep] = current["metadata"][keep].clone();
        }
        if WITH_STATUS.contains(&resource) {
            if subresource == Some("status") {
                let status = object["status"].take();
                object = current.clone();
                object["status"] = status;
            } else {
                object["status"] = current["status"].clone();
            }
        }
        object["metadata"]["generation"] = current["metadata"]["generation"].clone();
        if object["spec"] != current["spec"] {
            let generation = current["metadata"]["generation"].as_u64().unwrap_or(1);
            object["metadata"]["generation"] = (generation + 1).into();
        }
        if object.get("status").is_some_and(Value::is_null) {
            object.as_object_mut().map(|o| o.remove("status"));
        }
        if object == *current {
            return object;
        }
        self.put(resource, "MODIFIED", object)
    }

    fn patch(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        subresource: Option<&str>,
        patch: &Value,
        kind: PatchKind,
    ) -> Answer {
        let current = match self.get(resource, namespace, name) {
            Ok((_, o)) => o,
            Err(_) if kind == PatchKind::Apply && subresource.is_none() => {
                let mut object = patch.clone();
                object["metadata"]["name"] = name.into();
                return self.create(resource, namespace, object, Kubelet::Off);
            }
            Err(e) => return Err(e),
        };
        let mut object = current.clone();
        match kind {
            PatchKind::Strategic => strategic_merge(&mut object, patch),
            PatchKind::Merge | PatchKind::Apply => json_patch::merge(&mut object, patch),
        }
        Ok((
            StatusCode::OK,
            self.update(resource, &current, subresource, object),
        ))
    }

    fn replace(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        subresource: Option<&str>,
        object: Value,
    ) -> Answer {
        let (_, current) = self.get(resource, namespace, name)?;
        Ok((
            StatusCode::OK,
            self.update(resource, &current, subresource, object),
        ))
    }

    /// `pods/<name>/binding`: the Pod is on the node the binding names.
    fn bind(&mut self, namespace: &str, name: &str, binding: &Value) -> Answer {
        let (_, current) = self.get(PODS, namespace, name)?;
        let Some(node) = binding["target"]["name"].as_str().filter(|n| !n.is_empty()) else {
            return Err(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "a binding needs target.name".into(),
            ));
        };
        if current["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        {
            return Err(status(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "pod {name} is already assigned to node {}",
                    current["spec"]["nodeName"]
                ),
            ));
        }
        let mut object = current;
        object["spec"]["nodeName"] = node.into();
        let scheduled = json!({"type": "PodScheduled", "status": "True",
                               "lastTransitionTime": now_rfc3339()});
        strategic_merge(&mut object["status"], &json!({"conditions": [scheduled]}));
        self.put(PODS, "MODIFIED", object);
        Ok((
            StatusCode::CREATED,
            status(
                StatusCode::CREATED,
                "",
                format!("pod {name} bound to {node}"),
            ),
        ))
    }

    fn review(&self, mut review: Value) -> (StatusCode, Value) {
        let token = review["spec"]["token"].as_str().unwrap_or_default();
        review["status"] = match self.tokens.get(token) {
            Some((username, node)) => {
                let mut user = json!({"username": username});
                if let Some(node) = node {
                    user["extra"] = json!({"authentication.kubernetes.io/node-name": [node]});
                }
                json!({"authenticated": true, "user": user,
                       "audiences": review["spec"]["audiences"].clone()})
            }
            None => json!({"authenticated": false, "error": "invalid bearer token"}),
        };
        (StatusCode::CREATED, review)
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
        let selector = Selector::from_query(query);
        let start = token.map_or(Bound::Unbounded, |(_, key)| Bound::Excluded(key));
        let mut page: Vec<(&(String, String), &Value)> = self
            .resources
            .get(&target.resource)
            .into_iter()
            .flat_map(|r| r.objects.range((start.clone(), Bound::Unbounded)))
            .filter(|((ns, _), _)| target.namespace.as_ref().is_none_or(|n| n == ns))
            .filter(|(_, o)| selector.matches(o))
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

    fn watch(&mut self, target: &Target, from: u64, selector: Selector) -> Response<Body> {
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
    let now = now_rfc3339();
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
    use kube::ResourceExt;
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

    #[tokio::test]
    async fn status_is_a_subresource_and_strategic_patches_merge_lists_by_name() {
        let api = FakeApi::new(Kubelet::Off);
        let pods: Api<Pod> = Api::namespaced(client(&api).await, "ci");
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "step-a", "image": "a", "command": ["true"]},
                                    {"name": "sidecar-b", "image": "b", "command": ["sleep"]}]},
            "status": {"phase": "Succeeded"}}))
        .unwrap();
        let created = pods.create(&PostParams::default(), &pod).await.unwrap();
        assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));

        // A write to the object leaves the status; one to /status leaves the rest.
        let pp = PatchParams::default();
        pods.patch(
            "p",
            &pp,
            &Patch::Merge(
                json!({"metadata": {"labels": {"a": "1"}}, "status": {"phase": "Failed"}}),
            ),
        )
        .await
        .unwrap();
        pods.patch_status(
            "p",
            &pp,
            &Patch::Merge(
                json!({"metadata": {"labels": {"a": "2"}}, "status": {"phase": "Running"}}),
            ),
        )
        .await
        .unwrap();
        let now = pods.get("p").await.unwrap();
        assert_eq!(now.labels()["a"], "1");
        assert_eq!(now.status.unwrap().phase.as_deref(), Some("Running"));

        // A strategic patch of one container's image keeps the other and the command.
        pods.patch(
            "p",
            &pp,
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "sidecar-b", "image": "nop"}]}}),
            ),
        )
        .await
        .unwrap();
        let spec = pods.get("p").await.unwrap().spec.unwrap();
        let images: Vec<_> = spec
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.image.as_deref(), c.command.clone()))
            .collect();
        assert_eq!(
            images,
            [
                ("step-a", Some("a"), Some(vec!["true".into()])),
                ("sidecar-b", Some("nop"), Some(vec!["sleep".into()]))
            ]
        );

        // A binding places the Pod; a field selector then finds it, and a second binding is refused.
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-a"}});
        let request = http::Request::post("/api/v1/namespaces/ci/pods/p/binding")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&binding).unwrap())
            .unwrap();
        let bound: Value = client(&api).await.request(request.clone()).await.unwrap();
        assert_eq!(bound["status"], "Success");
        assert!(client(&api).await.request::<Value>(request).await.is_err());
        let on_a = pods
            .list(&ListParams::default().fields("spec.nodeName=node-a"))
            .await
            .unwrap();
        assert_eq!(on_a.items.len(), 1);
        let on_b = pods
            .list(&ListParams::default().fields("spec.nodeName=node-b"))
            .await
            .unwrap();
        assert!(on_b.items.is_empty());
        let pod = pods.get("p").await.unwrap();
        let conditions = pod.status.unwrap().conditions.unwrap();
        assert_eq!(conditions[0].type_, "PodScheduled");

        // A patch of a type it does not take is refused, as a real server does.
        let raw = http::Request::patch("/api/v1/namespaces/ci/pods/p")
            .header("content-type", "application/json")
            .body(b"{}".to_vec())
            .unwrap();
        let refused = client(&api).await.request::<Value>(raw).await;
        assert!(
            matches!(&refused, Err(kube::Error::Api(s)) if s.code == 415),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn token_reviews_answer_from_the_accepted_tokens() {
        use k8s_openapi::api::authentication::v1::TokenReview;
        let api = FakeApi::new(Kubelet::Off);
        api.accept_token(
            "t0k",
            "system:serviceaccount:tektite-system:agent",
            Some("node-a"),
        );
        let reviews: Api<TokenReview> = Api::all(client(&api).await);
        let ask = |token: &str| -> TokenReview {
            serde_json::from_value(json!({"spec": {"token": token, "audiences": ["tektite"]}}))
                .unwrap()
        };
        let yes = reviews
            .create(&PostParams::default(), &ask("t0k"))
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(yes.authenticated, Some(true));
        let user = yes.user.unwrap();
        assert_eq!(
            user.username.as_deref(),
            Some("system:serviceaccount:tektite-system:agent")
        );
        assert_eq!(
            user.extra.unwrap()["authentication.kubernetes.io/node-name"],
            ["node-a"]
        );
        let no = reviews
            .create(&PostParams::default(), &ask("other"))
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(no.authenticated, Some(false));
        assert_eq!(api.writes().len(), 0);
    }

    #[test]
    fn paths_name_a_resource() {
        assert_eq!(
            target("/apis/tekton.dev/v1/namespaces/ci/taskruns/tr/status"),
            Some(Target {
                resource: "apis/tekton.dev/v1/taskruns".into(),
                namespace: Some("ci".into()),
                name: Some("tr".into()),
                subresource: Some("status".into()),
            })
        );
        assert_eq!(
            target("/api/v1/pods"),
            Some(Target {
                resource: "api/v1/pods".into(),
                namespace: None,
                name: None,
                subresource: None,
            })
        );
        assert_eq!(target("/version"), None);
        assert_eq!(target("/apis/tekton.dev"), None);
    }
}
