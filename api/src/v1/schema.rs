//! Schema helpers for fields whose shape the API server cannot describe structurally.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// A field that holds any JSON value (param values, raw extensions): the API server keeps
/// it as it is and validation checks it.
pub fn preserve_unknown(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// An object that holds arbitrary keys and values.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// A list of objects that hold arbitrary keys and values.
pub fn preserve_unknown_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
    })
}

/// A PersistentVolumeClaim template: Kubernetes' own schema, but with `metadata`
/// optional, as in Tekton (the claim is named after the run and workspace).
pub fn claim_template(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = k8s_openapi::api::core::v1::PersistentVolumeClaim::json_schema(generator);
    if let Some(serde_json::Value::Array(required)) = schema.get_mut("required") {
        required.retain(|r| r != "metadata");
    }
    if schema
        .get("required")
        .and_then(serde_json::Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        schema.remove("required");
    }
    schema
}
