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
        obj.remove("title");
    }
    schema
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
        Kind::PipelineResource => &Value::Bool(true),
    }
}
