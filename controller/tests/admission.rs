//! The validating admission webhook over real HTTPS on loopback (a certificate minted
//! for `localhost` by the controller's own CA), with `admission.k8s.io/v1`
//! AdmissionReview bodies as the API server sends them: valid, invalid and unreadable
//! documents, updates of runs, and requests that are not reviews.

use std::path::Path;
use std::sync::Arc;

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
mod common;

use common::{Expect, at, harness};
use tektite_controller::{admission, http as serve, serving};
use tokio_rustls::rustls;

struct Webhook {
    addr: std::net::SocketAddr,
    connector: tokio_rustls::TlsConnector,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn webhook() -> Webhook {
    let identity = serving::mint(&["localhost".to_owned()], jiff::Timestamp::now()).unwrap();
    let tls = serving::tls_acceptor(&identity.cert, &identity.key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let defaults = Arc::new(std::sync::RwLock::new(Default::default()));
    let task = tokio::spawn(serve::serve_https1(listener, tls, "webhook", move |r| {
        admission::respond(r, defaults.clone())
    }));
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pki_types::CertificateDer::pem_slice_iter(identity.ca.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Webhook {
        addr,
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        task,
    }
}

impl Webhook {
    async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .expect("TLS with the CA");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).expect("JSON"))
    }

    /// The response of a review of `object` (`old` for an UPDATE).
    async fn review(&self, operation: &str, object: Value, old: Option<Value>) -> Value {
        self.review_at(admission::PATH, operation, object, old)
            .await
    }

    /// The same, sent to `path`.
    async fn review_at(
        &self,
        path: &str,
        operation: &str,
        object: Value,
        old: Option<Value>,
    ) -> Value {
        let mut request = json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "tekton.dev", "version": "v1", "kind": object["kind"]},
            "resource": {"group": "tekton.dev", "version": "v1", "resource": "things"},
            "requestKind": {"group": "tekton.dev", "version": "v1", "kind": object["kind"]},
            "name": object["metadata"]["name"],
            "namespace": "ci",
            "operation": operation,
            "userInfo": {"username": "admin", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        });
        if operation == "DELETE" {
            request["object"] = Value::Null;
        }
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        let (status, answer) = self
            .send(Method::POST, path, body.to_string().into_bytes())
            .await;
        assert_eq!(status, StatusCode::OK, "{answer:#}");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        let response = answer["response"].clone();
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        response
    }
}

/// The one document of a YAML file, as JSON (as kubectl sends it).
fn object(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = text
        .split("\n---")
        .filter(|d| d.contains("kind:"))
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 1, "{}", path.display());
    docs.into_iter().next().unwrap()
}

fn fixture(dir: &str, name: &str) -> Value {
    object(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../api/tests/fixtures")
            .join(dir)
            .join(name),
    )
}

#[tokio::test]
async fn valid_documents_are_admitted_and_notes_come_back_as_warnings() {
    let w = webhook().await;
    let task = fixture("seeds", "004-v1beta1-build-and-push-task.yaml");
    let response = w.review("CREATE", task, None).await;
    assert_eq!(response["allowed"], true, "{response:#}");

    // A pipeline task naming a Task that is not given: admitted, with a note.
    let pipeline = json!({
        "apiVersion": "tekton.dev/v1", "kind": "Pipeline",
        "metadata": {"name": "p", "namespace": "ci"},
        "spec": {"tasks": [{"name": "build", "taskRef": {"name": "go-build"}}]},
    });
    let response = w.review("CREATE", pipeline, None).await;
    assert_eq!(response["allowed"], true, "{response:#}");
    let warning = response["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with(
            "spec.tasks[0].taskRef.name: Task \"go-build\" is not among the documents given"
        ),
        "{warning}"
    );
}

#[tokio::test]
async fn an_invalid_document_is_refused_with_the_validators_field_paths() {
    let w = webhook().await;
    let cycle = fixture("invalid", "cycle.yaml");
    let response = w.review("CREATE", cycle, None).await;
    assert_eq!(response["allowed"], false, "{response:#}");
    let status = &response["status"];
    assert_eq!(status["code"], 422);
    assert_eq!(status["reason"], "Invalid");
    let message = status["message"].as_str().unwrap();
    assert!(message.starts_with("spec.tasks: "), "{message}");
    assert!(message.contains("a -> b -> c -> a"), "{message}");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.tasks");

    // An object that is not a Tekton document at all is refused, not admitted unread.
    let nonsense = json!({"apiVersion": "tekton.dev/v1", "kind": "Pipeline",
        "metadata": {"name": "x"}, "spec": {"tasks": "many"}});
    let response = w.review("CREATE", nonsense, None).await;
    assert_eq!(response["allowed"], false, "{response:#}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.tasks"),
        "{response:#}"
    );
}

#[tokio::test]
async fn an_update_of_a_started_run_takes_only_a_cancel() {
    let w = webhook().await;
    let run = |params: Value, status: Option<&str>| {
        json!({
            "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "t", "namespace": "ci"},
            "spec": {"taskRef": {"name": "build"}, "params": params, "status": status},
            "status": {"startTime": "2026-11-22T10:00:00Z",
                "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}]},
        })
    };
    let old = run(json!([{"name": "a", "value": "1"}]), None);
    let cancel = run(
        json!([{"name": "a", "value": "1"}]),
        Some("TaskRunCancelled"),
    );
    let response = w.review("UPDATE", cancel, Some(old.clone())).await;
    assert_eq!(response["allowed"], true, "{response:#}");
    let changed = run(json!([{"name": "a", "value": "2"}]), None);
    let response = w.review("UPDATE", changed, Some(old)).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "spec: the TaskRun has started: only spec.status and spec.statusMessage may change (to cancel it)"
    );
    // Deleting is not ours to refuse.
    let response = w
        .review(
            "DELETE",
            json!({"kind": "TaskRun", "metadata": {"name": "t"}}),
            None,
        )
        .await;
    assert_eq!(response["allowed"], true);
}

#[tokio::test]
async fn requests_that_are_not_reviews_get_a_status_that_says_why() {
    let w = webhook().await;
    let cases: [(&[u8], &str); 3] = [
        (b"{\"kind\": ", "not an AdmissionReview"),
        (
            br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}"#,
            "not an admission.k8s.io/v1 AdmissionReview",
        ),
        (
            br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#,
            "has no request",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = w.send(Method::POST, admission::PATH, body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
    }
    let (status, _) = w.send(Method::GET, admission::PATH, Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, answer) = w.send(Method::POST, "/mutate", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("/validate, /defaults or /convert")
    );
}

const VALIDATING: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/tektite";
const MUTATING: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/tektite";

fn config(kind: &str, path: &str, bundle: Option<&str>) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "tektite", "resourceVersion": "7"},
        "webhooks": [{
            "name": "hook.webhook.tektite.dev",
            "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"caBundle": bundle, "service": {"namespace": "tektite-system",
                "name": "tektite-controller", "path": path, "port": 443}},
        }],
    })
}

#[tokio::test]
async fn the_leader_writes_its_ca_into_the_webhooks_ca_bundle_once() {
    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    // base64 of the PEM, as the API server keeps a caBundle.
    let encoded = serde_json::to_value(k8s_openapi::ByteString(ca.as_bytes().to_vec())).unwrap();
    let written = |path: &'static str| {
        let expected = encoded.clone();
        move |b: &Value| {
            assert_eq!(b["webhooks"][0]["clientConfig"]["caBundle"], expected);
            assert_eq!(b["metadata"]["resourceVersion"], "7");
            assert_eq!(b["webhooks"][0]["clientConfig"]["service"]["path"], path);
        }
    };
    let h = harness(
        vec![
            Expect::get(VALIDATING).reply(
                200,
                config("ValidatingWebhookConfiguration", admission::PATH, None),
            ),
            Expect::put(VALIDATING).body(written(admission::PATH)),
            Expect::get(MUTATING).reply(
                200,
                config(
                    "MutatingWebhookConfiguration",
                    admission::DEFAULTS_PATH,
                    None,
                ),
            ),
            Expect::put(MUTATING).body(written(admission::DEFAULTS_PATH)),
        ],
        vec![],
        vec![],
        at("2026-11-22T10:00:00Z"),
    );
    assert_eq!(
        serving::publish_ca(&h.ctx.client, "tektite", ca)
            .await
            .unwrap(),
        2
    );
    h.finish().await;

    // Already there: nothing written. Not installed: said so.
    let bundle = encoded.as_str();
    let h = harness(
        vec![
            Expect::get(VALIDATING).reply(
                200,
                config("ValidatingWebhookConfiguration", admission::PATH, bundle),
            ),
            Expect::get(MUTATING).fail(404, "NotFound"),
            Expect::get(VALIDATING).fail(404, "NotFound"),
            Expect::get(MUTATING).fail(404, "NotFound"),
        ],
        vec![],
        vec![],
        at("2026-11-22T10:00:00Z"),
    );
    assert_eq!(
        serving::publish_ca(&h.ctx.client, "tektite", ca)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        serving::publish_ca(&h.ctx.client, "tektite", ca)
            .await
            .unwrap(),
        0
    );
    h.finish().await;
}

/// The defaulting hook: a JSON patch that, applied to what was sent, gives Tekton's
/// defaults and keeps the rest; nothing for a document with nothing to default.
#[tokio::test]
async fn new_documents_get_tektons_defaults_as_a_json_patch() {
    let w = webhook().await;
    let run = json!({
        "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
        "metadata": {"name": "t", "namespace": "ci", "uid": "u", "managedFields": [{"manager": "kubectl"}]},
        "spec": {"taskRef": {"name": "build"}, "params": [{"name": "a", "value": "1"}]},
    });
    let response = w
        .review_at(admission::DEFAULTS_PATH, "CREATE", run.clone(), None)
        .await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch: Vec<u8> =
        serde_json::from_value::<k8s_openapi::ByteString>(response["patch"].clone())
            .unwrap()
            .0;
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut defaulted = run.clone();
    json_patch::patch(&mut defaulted, &patch).unwrap();
    assert_eq!(defaulted["spec"]["timeout"], "1h0m0s");
    assert_eq!(defaulted["spec"]["serviceAccountName"], "default");
    assert_eq!(defaulted["spec"]["taskRef"]["kind"], "Task");
    assert_eq!(
        defaulted["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "tektite"
    );
    // What the types do not hold is not touched.
    assert_eq!(
        defaulted["metadata"]["managedFields"],
        run["metadata"]["managedFields"]
    );

    // Nothing to add: no patch; an update: none either (a started run may not change).
    let mut full = defaulted.clone();
    full["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    let response = w
        .review_at(admission::DEFAULTS_PATH, "CREATE", full.clone(), None)
        .await;
    assert!(response.get("patch").is_none(), "{response:#}");
    let response = w
        .review_at(admission::DEFAULTS_PATH, "UPDATE", run.clone(), Some(run))
        .await;
    assert!(response.get("patch").is_none(), "{response:#}");
}

/// Every document of a YAML file, as JSON.
fn all_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---")
        .filter(|d| d.contains("kind:"))
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect()
}

/// The response of a ConversionReview of `objects` to `desired`.
async fn convert(w: &Webhook, desired: &str, objects: Vec<Value>) -> Value {
    let body = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {
            "uid": "0000000000-0000-0000-0000-000000000000",
            "desiredAPIVersion": desired,
            "objects": objects,
        },
    });
    let (status, answer) = w
        .send(
            Method::POST,
            tektite_controller::conversion::PATH,
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer:#}");
    assert_eq!(answer["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(answer["kind"], "ConversionReview");
    let response = answer["response"].clone();
    assert_eq!(response["uid"], "0000000000-0000-0000-0000-000000000000");
    response
}

/// The CRDs' conversion webhook over HTTPS, with ConversionReview bodies as the API
/// server sends them: seed 003's v1beta1 Task, TaskRun, Pipeline and PipelineRun and the
/// build-id example are stored at v1 and served back unchanged; a document v1 cannot
/// hold is refused with its name, field and why; a body that is not a review gets 400.
#[tokio::test]
async fn conversion_reviews_store_v1beta1_documents_at_v1_and_serve_them_back() {
    let w = webhook().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut beta = all_documents(
        &root
            .join("../api/tests/fixtures/seeds/003-v1beta1-task-taskrun-pipeline-pipelinerun.yaml"),
    );
    beta.extend(all_documents(&root.join("../examples/build-id.yaml")));
    assert_eq!(beta.len(), 6);
    let stored = convert(&w, "tekton.dev/v1", beta.clone()).await;
    assert_eq!(stored["result"]["status"], "Success", "{stored:#}");
    let v1 = stored["convertedObjects"].as_array().unwrap().clone();
    assert_eq!(v1.len(), beta.len());
    for (b, v) in beta.iter().zip(&v1) {
        assert_eq!(v["apiVersion"], "tekton.dev/v1");
        assert_eq!((&v["kind"], &v["metadata"]), (&b["kind"], &b["metadata"]));
    }
    let served = convert(&w, "tekton.dev/v1beta1", v1).await;
    assert_eq!(served["result"]["status"], "Success", "{served:#}");
    assert_eq!(served["convertedObjects"], Value::Array(beta));

    let mut resources = fixture("seeds", "004-v1beta1-build-and-push-task.yaml");
    resources["metadata"]["namespace"] = json!("ci");
    let refused = convert(&w, "tekton.dev/v1", vec![resources]).await;
    assert_eq!(refused["result"]["status"], "Failed");
    let message = refused["result"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Task ci/build-and-push cannot be served as tekton.dev/v1: spec.resources: PipelineResources"),
        "{message}"
    );
    assert!(message.contains("tkt convert"), "{message}");
    assert!(refused.get("convertedObjects").is_none());

    let (status, answer) = w
        .send(
            Method::POST,
            tektite_controller::conversion::PATH,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("not an apiextensions.k8s.io/v1 ConversionReview"),
        "{answer}"
    );
}

const CRD: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// The leader writes its CA into the conversion webhook of each CRD it converts, once;
/// a CRD installed without the conversion webhook is left as it is.
#[tokio::test]
async fn the_leader_writes_its_ca_into_the_crds_conversion_webhook() {
    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let encoded = serde_json::to_value(k8s_openapi::ByteString(ca.as_bytes().to_vec())).unwrap();
    let crd = |name: &str, webhook: bool, bundle: Option<&Value>| {
        let mut c = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": name, "resourceVersion": "3"},
            "spec": {"group": "tekton.dev", "conversion": {"strategy": "None"}},
        });
        if webhook {
            c["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {"service": {"namespace": "tektite-system", "name": "tektite-controller",
                    "path": "/convert", "port": 443}}}});
            if let Some(b) = bundle {
                c["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = b.clone();
            }
        }
        c
    };
    let [tasks, taskruns, pipelines, pipelineruns] = tektite_controller::conversion::CRDS;
    let path = |n: &str| format!("{CRD}/{n}");
    let expected = encoded.clone();
    let h = harness(
        vec![
            Expect::get(&path(tasks)).reply(200, crd(tasks, true, None)),
            Expect::put(&path(tasks)).body(move |b: &Value| {
                let config = &b["spec"]["conversion"]["webhook"]["clientConfig"];
                assert_eq!(config["caBundle"], expected);
                assert_eq!(config["service"]["path"], "/convert");
                assert_eq!(b["metadata"]["resourceVersion"], "3");
            }),
            Expect::get(&path(taskruns)).reply(200, crd(taskruns, true, Some(&encoded))),
            Expect::get(&path(pipelines)).reply(200, crd(pipelines, false, None)),
            Expect::get(&path(pipelineruns)).fail(404, "NotFound"),
        ],
        vec![],
        vec![],
        at("2026-12-03T10:00:00Z"),
    );
    assert_eq!(
        serving::publish_conversion_ca(&h.ctx.client, ca)
            .await
            .unwrap(),
        2
    );
    h.finish().await;
}
