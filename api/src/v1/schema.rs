//! Schema helpers for fields whose shape the API server cannot describe structurally.

use schemars::{Schema, SchemaGenerator, json_schema};

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
