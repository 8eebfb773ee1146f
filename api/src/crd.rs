//! CustomResourceDefinitions for the four kinds, CustomRun and StepAction, generated from
//! the Rust types.
//!
//! The `crdgen` binary writes them to `deploy/crds/`; a test fails when the committed
//! files drift from what the types generate.

use serde_json::{Value, json};

use crate::document::Kind;
use crate::schema;

/// One CRD: its file name under `deploy/crds/` and its YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdFile {
    pub file_name: String,
    pub yaml: String,
}

struct Names {
    kind: &'static str,
    version: &'static str,
    schema: fn() -> Value,
    plural: &'static str,
    singular: &'static str,
    short: &'static [&'static str],
    run: bool,
    /// Older versions also served, with the same schema (no conversion).
    also: &'static [&'static str],
    /// Also served at tekton.dev/v1beta1, converted by the controller's conversion webhook.
    converted: bool,
}

/// Where the API server reaches the controller's conversion webhook (deploy/controller.yaml's
/// Service; the controller serves [`CONVERSION_PATH`] beside its admission webhooks).
const CONVERSION_SERVICE: (&str, &str, u16) = ("tektite-system", "tektite-controller", 443);
/// The conversion webhook's path.
pub const CONVERSION_PATH: &str = "/convert";

const KINDS: [Names; 6] = [
    Names {
        kind: "Task",
        version: "v1",
        schema: || schema::for_kind(Kind::Task).clone(),
        plural: "tasks",
        singular: "task",
        short: &[],
        run: false,
        also: &[],
        converted: true,
    },
    Names {
        kind: "TaskRun",
        version: "v1",
        schema: || schema::for_kind(Kind::TaskRun).clone(),
        plural: "taskruns",
        singular: "taskrun",
        short: &["tr", "trs"],
        run: true,
        also: &[],
        converted: true,
    },
    Names {
        kind: "Pipeline",
        version: "v1",
        schema: || schema::for_kind(Kind::Pipeline).clone(),
        plural: "pipelines",
        singular: "pipeline",
        short: &[],
        run: false,
        also: &[],
        converted: true,
    },
    Names {
        kind: "PipelineRun",
        version: "v1",
        schema: || schema::for_kind(Kind::PipelineRun).clone(),
        plural: "pipelineruns",
        singular: "pipelinerun",
        short: &["pr", "prs"],
        run: true,
        also: &[],
        converted: true,
    },
    // What a PipelineRun creates for a custom task; the custom task's controller watches
    // it. Tekton serves it at v1beta1 only.
    Names {
        kind: "CustomRun",
        version: crate::v1beta1::VERSION,
        schema: schema::inline_schema::<crate::v1beta1::CustomRun>,
        plural: "customruns",
        singular: "customrun",
        short: &[],
        run: true,
        also: &[],
        converted: false,
    },
    // What a step runs when it names one with `ref`; Tekton serves it at v1beta1 and,
    // where it started, v1alpha1: the same spec at both.
    Names {
        kind: "StepAction",
        version: crate::v1beta1::VERSION,
        schema: || schema::for_kind(Kind::StepAction).clone(),
        plural: "stepactions",
        singular: "stepaction",
        short: &[],
        run: false,
        also: &["v1alpha1"],
        converted: false,
    },
];

/// Descriptions longer than this are dropped from the CRDs: they are the Kubernetes core
/// types' long documentation, which would take a PipelineRun CRD past etcd's object
/// size limit; tektite's own one-line descriptions stay for `kubectl explain`.
const MAX_DESCRIPTION: usize = 200;

/// Fits a generated schema to a CRD: the API server allows only `type: object` for
/// `metadata`, and tektite does its own defaulting.
fn for_crd(schema: &mut Value, top: bool) {
    match schema {
        Value::Object(map) => {
            map.remove("default");
            map.remove("$schema");
            map.remove("title");
            if map
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| d.len() > MAX_DESCRIPTION)
            {
                map.remove("description");
            }
            if top && let Some(Value::Object(props)) = map.get_mut("properties") {
                props.insert("metadata".into(), json!({"type": "object"}));
            }
            for (key, v) in map.iter_mut() {
                match (key.as_str(), v) {
                    // Field names, not keywords: a field may be called `default` (a
                    // param's) or `title`; each value is a schema.
                    ("properties", Value::Object(fields)) => {
                        fields.values_mut().for_each(|f| for_crd(f, false))
                    }
                    (_, v) => for_crd(v, false),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| for_crd(v, false)),
        _ => {}
    }
}

fn crd(n: &Names) -> Value {
    let mut schema = (n.schema)();
    for_crd(&mut schema, true);
    let condition = |field: &str| format!(".status.conditions[?(@.type==\"Succeeded\")].{field}");
    let mut version = json!({
        "name": n.version,
        "served": true,
        "storage": true,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
    });
    if n.run {
        version["additionalPrinterColumns"] = json!([
            {"name": "Succeeded", "type": "string", "jsonPath": condition("status")},
            {"name": "Reason", "type": "string", "jsonPath": condition("reason")},
            {"name": "StartTime", "type": "date", "jsonPath": ".status.startTime"},
            {"name": "CompletionTime", "type": "date", "jsonPath": ".status.completionTime"},
        ]);
    }
    let mut names = json!({
        "kind": n.kind,
        "plural": n.plural,
        "singular": n.singular,
        "categories": ["tekton", "tekton-pipelines"],
    });
    if !n.short.is_empty() {
        names["shortNames"] = json!(n.short);
    }
    let mut versions = vec![version.clone()];
    for v in n.also {
        let mut old = version.clone();
        old["name"] = json!(v);
        old["storage"] = json!(false);
        versions.push(old);
    }
    let mut spec = json!({
        "group": "tekton.dev",
        "names": names,
        "scope": "Namespaced",
        "versions": versions,
    });
    if n.converted {
        // v1beta1's own schema is open: the conversion webhook reads every field, and
        // refuses what the v1 types do not know, with its path.
        let mut beta = version.clone();
        beta["name"] = json!("v1beta1");
        beta["storage"] = json!(false);
        beta["schema"] = json!({"openAPIV3Schema": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        }});
        if let Some(v) = spec["versions"].as_array_mut() {
            v.push(beta);
        }
        let (namespace, name, port) = CONVERSION_SERVICE;
        spec["conversion"] = json!({
            "strategy": "Webhook",
            "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {
                    "service": {"namespace": namespace, "name": name, "path": CONVERSION_PATH, "port": port},
                },
            },
        });
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{}.tekton.dev", n.plural),
            "labels": {"app.kubernetes.io/part-of": "tektite"},
        },
        "spec": spec,
    })
}

/// Every CRD, as the files `deploy/crds/` must hold.
pub fn all() -> Vec<CrdFile> {
    KINDS
        .iter()
        .map(|n| {
            let body = serde_saphyr::to_string(&crd(n)).unwrap_or_else(|e| format!("# could not serialize: {e}\n"));
            CrdFile {
                file_name: format!("{}.tekton.dev.yaml", n.plural),
                yaml: format!("# Generated by `cargo run -p tektite-api --bin crdgen` from the types in api/src. Do not edit.\n{body}"),
            }
        })
        .collect()
}
