//! A mocked API server that checks every request a reconcile sends, in order, answers it,
//! and fails the test when an expected request never comes or an unexpected one does.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::client::Body;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tektite_api::v1::{PipelineRun, TaskRun};
use tektite_api::v1beta1::CustomRun;
use tektite_controller::context::{Clock, Context, Settings};
use tektite_controller::metrics::Metrics;
use tektite_controller::owned::Owned;
use tektite_controller::pod_index::PodIndex;
use tektite_controller::steps::StepStore;
use tokio::sync::mpsc;
use tower_test::mock::Handle;

type Check = Box<dyn Fn(&Value) + Send>;

/// One request the reconcile must send, and the answer. Every write is checked as an
/// API server reads it too: a patch is a JSON merge patch (the only kind the reconcilers
/// send these paths) whose query names the controller's field manager; a create sends
/// JSON.
pub struct Expect {
    method: http::Method,
    path: String,
    check: Check,
    status: u16,
    reply: Value,
    /// The Content-Type the request must carry (none for reads).
    content_type: &'static str,
}

impl Expect {
    fn new(method: http::Method, path: &str) -> Self {
        Self {
            method: method.clone(),
            path: path.into(),
            check: Box::new(|_| {}),
            status: 200,
            reply: json!({}),
            content_type: match method {
                http::Method::PATCH => "application/merge-patch+json",
                http::Method::POST | http::Method::PUT => "application/json",
                _ => "",
            },
        }
    }
    pub fn get(path: &str) -> Self {
        Self::new(http::Method::GET, path)
    }
    pub fn post(path: &str) -> Self {
        Self::new(http::Method::POST, path)
    }
    pub fn patch(path: &str) -> Self {
        Self::new(http::Method::PATCH, path)
    }
    pub fn put(path: &str) -> Self {
        Self::new(http::Method::PUT, path)
    }
    pub fn delete(path: &str) -> Self {
        Self::new(http::Method::DELETE, path)
    }
    /// Checks the request's JSON body.
    pub fn body(mut self, check: impl Fn(&Value) + Send + 'static) -> Self {
        self.check = Box::new(check);
        self
    }
    pub fn reply(mut self, status: u16, body: Value) -> Self {
        self.status = status;
        self.reply = body;
        self
    }
    /// Answers the request with a Kubernetes `Status` error.
    pub fn fail(self, code: u16, reason: &str) -> Self {
        let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "message": reason, "reason": reason, "code": code});
        self.reply(code, body)
    }
}

/// Serves `expects` in order; then requires that no other request comes before every
/// client is dropped.
pub async fn serve(mut handle: Handle<Request<Body>, Response<Body>>, expects: Vec<Expect>) {
    for (i, e) in expects.into_iter().enumerate() {
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        let Ok(Some((request, send))) = next else {
            panic!("request {i} ({} {}) never came", e.method, e.path);
        };
        assert_eq!(
            (request.method(), request.uri().path()),
            (&e.method, e.path.as_str()),
            "request {i}: {} {}",
            request.method(),
            request.uri()
        );
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !e.content_type.is_empty() {
            assert_eq!(
                content_type,
                e.content_type,
                "request {i}: {} {}: Content-Type",
                request.method(),
                request.uri()
            );
        }
        if e.method == http::Method::PATCH {
            let query = request.uri().query().unwrap_or_default();
            assert!(
                query
                    .split('&')
                    .any(|kv| kv == "fieldManager=tektite-controller"),
                "request {i}: {}: a write without the controller's field manager",
                request.uri()
            );
        }
        let bytes = http_body_util::BodyExt::collect(request.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (e.check)(&body);
        let reply = if e.reply == json!({}) && e.status == 200 && body.is_object() {
            // Echo what was sent, as the API server returns the object written.
            body
        } else {
            e.reply
        };
        send.send_response(
            Response::builder()
                .status(e.status)
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap(),
        );
    }
    let more = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
    if let Ok(Some((request, _))) = more {
        panic!("unexpected request: {} {}", request.method(), request.uri());
    }
}

pub fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_saphyr::from_str(text).expect("the test's YAML is valid")
}

pub fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A context over a mocked API server, with `pods` in the Pod cache and time fixed at `now`.
pub struct Harness {
    pub ctx: Arc<Context>,
    pub server: tokio::task::JoinHandle<()>,
    pub woken: mpsc::Receiver<kube::runtime::reflector::ObjectRef<TaskRun>>,
    /// The Kubernetes Events the reconciles queued.
    pub events: mpsc::Receiver<tektite_controller::events::Queued>,
}

impl Harness {
    /// The events queued so far: (type, reason, note).
    pub fn events(&mut self) -> Vec<(String, String, Option<String>)> {
        let mut out = Vec::new();
        while let Ok(q) = self.events.try_recv() {
            out.push((format!("{:?}", q.type_), q.reason, q.note));
        }
        out
    }
}

pub fn harness(
    expects: Vec<Expect>,
    pods: Vec<Pod>,
    task_runs: Vec<TaskRun>,
    now: Timestamp,
) -> Harness {
    harness_with(expects, pods, task_runs, now, Settings::default())
}

pub fn harness_with(
    expects: Vec<Expect>,
    pods: Vec<Pod>,
    task_runs: Vec<TaskRun>,
    now: Timestamp,
    settings: Settings,
) -> Harness {
    build(
        expects,
        pods,
        task_runs,
        Vec::new(),
        Vec::new(),
        now,
        settings,
    )
}

/// A context whose caches also hold `custom_runs`.
pub fn harness_custom(
    expects: Vec<Expect>,
    task_runs: Vec<TaskRun>,
    custom_runs: Vec<CustomRun>,
    now: Timestamp,
) -> Harness {
    build(
        expects,
        Vec::new(),
        task_runs,
        custom_runs,
        Vec::new(),
        now,
        Settings::default(),
    )
}

/// A context whose PipelineRun cache holds `pipeline_runs` (parents and children of
/// Pipelines in Pipelines).
pub fn harness_pipelines(
    expects: Vec<Expect>,
    task_runs: Vec<TaskRun>,
    pipeline_runs: Vec<PipelineRun>,
    now: Timestamp,
) -> Harness {
    build(
        expects,
        Vec::new(),
        task_runs,
        Vec::new(),
        pipeline_runs,
        now,
        Settings::default(),
    )
}

fn build(
    expects: Vec<Expect>,
    pods: Vec<Pod>,
    task_runs: Vec<TaskRun>,
    custom_runs: Vec<CustomRun>,
    pipeline_runs: Vec<PipelineRun>,
    now: Timestamp,
    settings: Settings,
) -> Harness {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(svc, "default");
    let pod_index = Arc::new(PodIndex::from_pods(&pods));
    let mut pod_writer: Writer<Pod> = Writer::default();
    // Cached as the controller caches them: slimmed after the index has read them.
    for mut p in pods {
        tektite_controller::pod_cache::slim(&mut p);
        pod_writer.apply_watcher_event(&watcher::Event::Apply(p));
    }
    let mut tr_writer: Writer<TaskRun> = Writer::default();
    let task_run_owners = Arc::new(Owned::from_objects(&task_runs));
    for t in task_runs {
        tr_writer.apply_watcher_event(&watcher::Event::Apply(t));
    }
    let mut cr_writer: Writer<CustomRun> = Writer::default();
    let custom_run_owners = Arc::new(Owned::from_objects(&custom_runs));
    for c in custom_runs {
        cr_writer.apply_watcher_event(&watcher::Event::Apply(c));
    }
    let mut pr_writer: Writer<PipelineRun> = Writer::default();
    let pipeline_run_owners = Arc::new(Owned::from_objects(&pipeline_runs));
    for p in pipeline_runs {
        pr_writer.apply_watcher_event(&watcher::Event::Apply(p));
    }
    let (wake, woken) = mpsc::channel(16);
    let (events, queued) = tektite_controller::events::Events::new(Default::default());
    let ctx = Arc::new(Context {
        client,
        settings,
        pods: pod_writer.as_reader(),
        pod_index,
        task_runs: tr_writer.as_reader(),
        task_run_owners,
        custom_runs: cr_writer.as_reader(),
        custom_run_owners,
        pipeline_runs: pr_writer.as_reader(),
        pipeline_run_owners,
        steps: Arc::new(StepStore::default()),
        agents: Arc::default(),
        metrics: Arc::new(Metrics::new()),
        events: Arc::new(events),
        resolvers: Arc::default(),
        clock: Clock::fixed(now),
        wake,
    });
    Harness {
        ctx,
        server: tokio::spawn(serve(handle, expects)),
        woken,
        events: queued,
    }
}

impl Harness {
    /// Drops the context (and so the client) and waits for the server's verdict.
    pub async fn finish(self) {
        drop(self.ctx);
        self.server
            .await
            .expect("the mocked API server's checks passed");
    }
}

/// The agents' ingest, served on a free loopback port over `h`'s context, with TLS when
/// `tls` is given; stopped with [`IngestServer::stop`].
pub struct IngestServer {
    pub port: u16,
    stop: tokio::sync::watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

pub async fn serve_ingest(
    h: &Harness,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> IngestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reviewer = tektite_controller::auth::Reviewer::new(
        h.ctx.client.clone(),
        "tektite-controller",
        "tektite-system",
        "tektite-node-agent",
    );
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let service =
        tektite_controller::ingest::Ingest::new(h.ctx.clone(), reviewer, stopping.clone())
            .service();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).unwrap();
    }
    let done = tokio::spawn(async move {
        builder
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let mut stopping = stopping;
                    let _ = stopping.wait_for(|s| *s).await;
                },
            )
            .await
            .unwrap();
    });
    IngestServer { port, stop, done }
}

impl IngestServer {
    /// Stops serving, as the controller does on SIGTERM: the agents' open streams are
    /// ended, and the server is done within a few seconds or the test fails.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(std::time::Duration::from_secs(5), self.done)
            .await
            .expect("the ingest server stopped within 5 s")
            .unwrap();
    }
}
