//! The admission webhooks. Validating: `kubectl apply` of a Task, Pipeline, TaskRun,
//! PipelineRun or StepAction is checked by the same validator as `tkt validate` (one
//! validator, two callers), with the same field paths and messages, and an update of a run
//! by Tekton's update rules (`tektite_api::validate::update`); its notes come back as
//! warnings, which kubectl prints. Defaulting: Tekton's defaults
//! (`tektite_api::defaults`, from the defaults ConfigMap) are written into the document
//! as a JSON patch, so that what is read back is what will run.
//!
//! The API server POSTs an `admission.k8s.io/v1` `AdmissionReview` to [`PATH`] or
//! [`DEFAULTS_PATH`]; the answer is the same review with its `response`. A body that is not a review
//! is answered 400 with what is wrong; a review whose object cannot be read is refused with
//! the reason (never admitted unread).

use std::sync::{Arc, RwLock};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tektite_api::defaults::{self, Defaults};
use tektite_api::document::{Document, Object, Source, load};
use tektite_api::validate;

/// Where the API server sends reviews (the ValidatingWebhookConfiguration's path).
pub const PATH: &str = "/validate";
/// Where the MutatingWebhookConfiguration sends them.
pub const DEFAULTS_PATH: &str = "/defaults";
/// Larger requests are refused: etcd keeps objects under 1.5 MiB.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// The most warnings one answer carries, and the most characters of each (the API server
/// truncates longer ones anyway).
const MAX_WARNINGS: usize = 20;
const MAX_WARNING_CHARS: usize = 240;

#[derive(Debug, Deserialize)]
struct Review {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    /// Read once the review is known to be v1.
    request: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ReviewRequest {
    uid: String,
    operation: String,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default, rename = "oldObject")]
    old_object: Option<Value>,
}

#[derive(Debug, Serialize)]
struct Cause {
    reason: &'static str,
    message: String,
    field: String,
}

/// What a review is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook<'d> {
    Validate,
    Default(&'d Defaults),
}

/// A body that is not the review it should be: 400 with what is wrong, as a Status.
pub(crate) fn bad_request(message: String) -> (StatusCode, Vec<u8>) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "reason": "BadRequest", "code": 400});
    (StatusCode::BAD_REQUEST, body.to_string().into_bytes())
}

/// The answer to one review body: status and JSON.
pub fn review(hook: Hook<'_>, body: &[u8]) -> (StatusCode, Vec<u8>) {
    let bad = bad_request;
    let review: Review = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return bad(format!("the request is not an AdmissionReview: {e}")),
    };
    if review.kind != "AdmissionReview" || review.api_version != "admission.k8s.io/v1" {
        return bad(format!(
            "the request is a {} {}, not an admission.k8s.io/v1 AdmissionReview",
            review.api_version, review.kind
        ));
    }
    let Some(request) = review.request else {
        return bad("the AdmissionReview has no request".into());
    };
    let request: ReviewRequest = match serde_json::from_value(request) {
        Ok(r) => r,
        Err(e) => return bad(format!("the AdmissionReview's request cannot be read: {e}")),
    };
    let response = match hook {
        Hook::Validate => decide(&request),
        Hook::Default(d) => default(&request, d),
    };
    let answer = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    });
    (StatusCode::OK, answer.to_string().into_bytes())
}

/// The one document of `object`, decoded and (for `validate`) checked.
fn document(object: &Value, check: bool) -> Result<Document, String> {
    let text = object.to_string();
    let mut docs = load(&[Source {
        name: "the request",
        text: &text,
    }]);
    if check {
        validate::validate(&mut docs);
    }
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(format!(
            "the request's object read as {n} documents, not one"
        )),
    }
}

fn decide(request: &ReviewRequest) -> Value {
    let uid = &request.uid;
    let allowed = |warnings: Vec<String>| {
        let mut answer = json!({"uid": uid, "allowed": true});
        if !warnings.is_empty() {
            answer["warnings"] = json!(warnings);
        }
        answer
    };
    if !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
        return allowed(Vec::new());
    }
    let Some(object) = &request.object else {
        return refused(uid, "the request has no object to check".into(), Vec::new());
    };
    let doc = match document(object, true) {
        Ok(d) => d,
        Err(why) => return refused(uid, why, Vec::new()),
    };
    let mut problems: Vec<(String, String)> = doc
        .problems
        .iter()
        .map(|p| (p.path.to_string(), p.message.clone()))
        .collect();
    if request.operation == "UPDATE"
        && let (Some(old), Some(new)) = (&request.old_object, &doc.object)
        && let Ok(Document {
            object: Some(old), ..
        }) = document(old, false)
    {
        problems.extend(
            validate::update(&old, new)
                .into_iter()
                .map(|p| (p.path.to_string(), p.message)),
        );
    }
    let warnings: Vec<String> = doc
        .notes
        .iter()
        .take(MAX_WARNINGS)
        .map(|n| {
            let text = format!("{}: {}", n.path, n.message);
            match text.char_indices().nth(MAX_WARNING_CHARS) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text,
            }
        })
        .collect();
    if problems.is_empty() {
        return allowed(warnings);
    }
    let message = problems
        .iter()
        .map(|(path, m)| format!("{path}: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let causes = problems
        .into_iter()
        .map(|(field, message)| Cause {
            reason: "FieldValueInvalid",
            message,
            field,
        })
        .collect();
    let mut answer = refused(uid, message, causes);
    if !warnings.is_empty() {
        answer["warnings"] = json!(warnings);
    }
    answer
}

/// Tekton's defaults as a JSON patch of the object. Only tekton.dev/v1 objects are
/// patched (a patch must speak the version it was sent); an object that cannot be read is
/// left for the validating webhook to refuse.
fn default(request: &ReviewRequest, d: &Defaults) -> Value {
    let mut answer = json!({"uid": request.uid, "allowed": true});
    let v1 = |o: &Value| o["apiVersion"] == "tekton.dev/v1";
    let Some(object) = request.object.as_ref().filter(|o| v1(o)) else {
        return answer;
    };
    if request.operation != "CREATE" {
        // A run's spec may not change once started: defaults are written once, at create.
        return answer;
    }
    let Ok(Document {
        object: Some(mut decoded),
        ..
    }) = document(object, false)
    else {
        return answer;
    };
    let before = written(&decoded);
    defaults::apply(&mut decoded, d);
    let after = written(&decoded);
    let (Some(before), Some(after)) = (before, after) else {
        return answer;
    };
    let patch = json_patch::diff(&before, &after);
    if patch.0.is_empty() {
        return answer;
    }
    let bytes = serde_json::to_vec(&patch).unwrap_or_default();
    answer["patchType"] = json!("JSONPatch");
    answer["patch"] = serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap_or_default();
    answer
}

/// The object as its type writes it (both sides of the patch drop the same unknown
/// fields, so the patch holds only what the defaults added).
fn written(object: &Object) -> Option<Value> {
    match object {
        Object::Task(t) => serde_json::to_value(t),
        Object::TaskRun(t) => serde_json::to_value(t),
        Object::Pipeline(p) => serde_json::to_value(p),
        Object::PipelineRun(p) => serde_json::to_value(p),
        _ => return None,
    }
    .ok()
}

fn refused(uid: &str, message: String, causes: Vec<Cause>) -> Value {
    json!({
        "uid": uid,
        "allowed": false,
        "status": {
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "Invalid",
            "code": 422,
            "details": {"causes": causes},
        },
    })
}

/// Answers one HTTP request: POST [`PATH`] or [`DEFAULTS_PATH`] with an AdmissionReview
/// (the defaults as `defaults` holds them now), or [`crate::conversion::PATH`] with a
/// ConversionReview.
pub async fn respond(
    request: Request<Incoming>,
    defaults: Arc<RwLock<Defaults>>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a JSON response is valid")
    };
    let text = |status: StatusCode, message: String| {
        let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "code": status.as_u16()});
        reply(status, body.to_string().into_bytes())
    };
    #[derive(Clone, Copy)]
    enum To {
        Validate,
        Default,
        Convert,
    }
    let to = match request.uri().path() {
        PATH => To::Validate,
        DEFAULTS_PATH => To::Default,
        crate::conversion::PATH => To::Convert,
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                format!(
                    "not found: reviews go to {PATH}, {DEFAULTS_PATH} or {}",
                    crate::conversion::PATH
                ),
            );
        }
    };
    if request.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "reviews are POSTed".into());
    }
    match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => {
            let body = body.to_bytes();
            let (status, json) = match to {
                To::Validate => review(Hook::Validate, &body),
                To::Default => {
                    let d = defaults.read().unwrap_or_else(|e| e.into_inner()).clone();
                    review(Hook::Default(&d), &body)
                }
                To::Convert => crate::conversion::review(&body),
            };
            reply(status, json)
        }
        Err(e) => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the review could not be read whole (at most {MAX_BODY} bytes): {e}"),
        ),
    }
}
