//! The CRDs' conversion webhook: Task, TaskRun, Pipeline and PipelineRun are stored at
//! tekton.dev/v1 and served at v1beta1 too. The API server POSTs an
//! `apiextensions.k8s.io/v1` `ConversionReview` to [`PATH`] whenever an object must be
//! read or written at the other version; the answer carries every object converted
//! (`tektite_api::convert::served`), or `Failed` with what stopped the first one that
//! could not be (the request then fails with that message: `kubectl apply` prints it).

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tektite_api::convert::served::to_version;

/// Where the API server sends ConversionReviews (the CRDs' `spec.conversion.webhook`).
pub const PATH: &str = tektite_api::crd::CONVERSION_PATH;
/// The CRDs converted here, whose `caBundle` the leader writes.
pub const CRDS: [&str; 4] = [
    "tasks.tekton.dev",
    "taskruns.tekton.dev",
    "pipelines.tekton.dev",
    "pipelineruns.tekton.dev",
];

#[derive(Debug, Deserialize)]
struct Review {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    request: Option<Request>,
}

#[derive(Debug, Deserialize)]
struct Request {
    uid: String,
    #[serde(rename = "desiredAPIVersion")]
    desired: String,
    #[serde(default)]
    objects: Vec<Value>,
}

/// The answer to one ConversionReview body: status and JSON.
pub fn review(body: &[u8]) -> (StatusCode, Vec<u8>) {
    let bad = crate::admission::bad_request;
    let review: Review = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return bad(format!("the request is not a ConversionReview: {e}")),
    };
    if review.kind != "ConversionReview" || review.api_version != "apiextensions.k8s.io/v1" {
        return bad(format!(
            "the request is a {} {}, not an apiextensions.k8s.io/v1 ConversionReview",
            review.api_version, review.kind
        ));
    }
    let Some(request) = review.request else {
        return bad("the ConversionReview has no request".into());
    };
    let converted: Result<Vec<Value>, String> = request
        .objects
        .into_iter()
        .map(|object| {
            let what = format!(
                "{} {}/{}",
                object["kind"].as_str().unwrap_or("object"),
                object["metadata"]["namespace"].as_str().unwrap_or_default(),
                object["metadata"]["name"].as_str().unwrap_or_default()
            );
            to_version(object, &request.desired).map_err(|e| {
                tracing::info!(object = %what, to = %request.desired, error = %e, "conversion refused");
                format!("{what} cannot be served as {}: {e}", request.desired)
            })
        })
        .collect();
    let response = match converted {
        Ok(objects) => json!({
            "uid": request.uid,
            "result": {"status": "Success"},
            "convertedObjects": objects,
        }),
        Err(message) => json!({
            "uid": request.uid,
            "result": {"status": "Failed", "message": message},
        }),
    };
    let answer = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "response": response,
    });
    (StatusCode::OK, answer.to_string().into_bytes())
}
