//! The OpenAPI v3 schemas of the kinds, as published in the CRDs and used for strict
//! decoding.

use std::sync::OnceLock;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::document::Kind;
use crate::v1;

/// The fully inlined OpenAPI v3 schema of `T`, with no `$schema`, `$defs` or `$ref`.
pub fn inline_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$defs");
        obj.remove("definitions");
        obj.remove("components");
    }
    structural(&mut schema);
    schema
}

/// Rewrites what schemars emits into what a Kubernetes structural schema allows:
/// `type: [T, "null"]` and `anyOf: [S, null]` become `nullable: true`; a `oneOf` of
/// string constants becomes one `enum`; a `$ref` (only left by recursive types: nested
/// pipelines, retriesStatus) becomes an object whose fields are preserved as given.
fn structural(schema: &mut Value) {
    let Value::Object(map) = schema else {
        if let Value::Array(items) = schema {
            items.iter_mut().for_each(structural);
        }
        return;
    };
    if map.contains_key("$ref") {
        let description = map.get("description").cloned();
        map.clear();
        map.insert("type".into(), "object".into());
        map.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
        if let Some(d) = description {
            map.insert("description".into(), d);
        }
        return;
    }
    if let Some(Value::Array(types)) = map.get("type").cloned() {
        let non_null: Vec<&Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .collect();
        if non_null.len() == 1 {
            map.insert("type".into(), non_null[0].clone());
            if non_null.len() < types.len() {
                map.insert("nullable".into(), true.into());
            }
        }
    }
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(branches)) = map.get(key).cloned() else {
            continue;
        };
        let is_null = |b: &Value| {
            b.get("type").and_then(Value::as_str) == Some("null")
                || b.get("enum") == Some(&serde_json::json!([null]))
                || (b.get("nullable") == Some(&Value::Bool(true))
                    && b.as_object().is_some_and(|o| o.len() == 1))
        };
        let rest: Vec<Value> = branches.iter().filter(|b| !is_null(b)).cloned().collect();
        let constants: Option<Vec<Value>> = rest
            .iter()
            .map(
                |b| match (b.get("type").and_then(Value::as_str), b.get("enum")) {
                    (Some("string"), Some(Value::Array(values))) => Some(values.clone()),
                    _ => None,
                },
            )
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat());
        if let Some(values) = constants {
            map.remove(key);
            map.insert("type".into(), "string".into());
            map.insert("enum".into(), Value::Array(values));
        } else if rest.len() == 1 {
            map.remove(key);
            if let Value::Object(inner) = &rest[0] {
                for (k, v) in inner {
                    if k != "description" || !map.contains_key("description") {
                        map.insert(k.clone(), v.clone());
                    }
                }
            }
            structural(schema);
            return;
        } else {
            continue;
        }
        if rest.len() < branches.len() {
            map.insert("nullable".into(), true.into());
        }
    }
    for (_, v) in map.iter_mut() {
        structural(v);
    }
}

/// The schema of a kind, generated once per process.
pub fn for_kind(kind: Kind) -> &'static Value {
    macro_rules! cached {
        ($ty:ty) => {{
            static CELL: OnceLock<Value> = OnceLock::new();
            CELL.get_or_init(inline_schema::<$ty>)
        }};
    }
    match kind {
        Kind::Task => cached!(v1::Task),
        Kind::TaskRun => cached!(v1::TaskRun),
        Kind::Pipeline => cached!(v1::Pipeline),
        Kind::PipelineRun => cached!(v1::PipelineRun),
        Kind::ConfigMap => cached!(k8s_openapi::api::core::v1::ConfigMap),
        Kind::Secret => cached!(k8s_openapi::api::core::v1::Secret),
        Kind::ServiceAccount => cached!(k8s_openapi::api::core::v1::ServiceAccount),
        Kind::PipelineResource => &Value::Bool(true),
        Kind::StepAction => cached!(crate::v1beta1::StepAction),
    }
}
