//! What a kube-apiserver does to a custom resource before it stores it, against the CRD's
//! structural schema: unknown fields are pruned (unless the schema preserves them), null
//! values of fields that are not `nullable` are dropped, and what is left is validated
//! (types, `required`, `enum`, int-or-string, the `int32`/`int64`/`date-time` formats).
//!
//! The rules are the ones the Kubernetes documentation gives for CRDs ("Specifying a
//! structural schema", "Field pruning", "Defaulting and Nullable"); a real API server is
//! the reference, and this is what tests run where there is none.

use serde_json::{Map, Value};

/// What the API server would make of an object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Admission {
    /// The object as it would be stored.
    pub stored: Value,
    /// The paths of every field the server would drop, with why.
    pub pruned: Vec<String>,
    /// What it would refuse the object for; empty means accepted.
    pub refused: Vec<String>,
}

impl Admission {
    /// Accepted and kept whole.
    pub fn is_clean(&self) -> bool {
        self.pruned.is_empty() && self.refused.is_empty()
    }
}

/// Admits `object` under `schema` (a CRD version's `openAPIV3Schema`). `metadata` is the
/// API server's own (ObjectMeta) and is kept as given.
pub fn admit(schema: &Value, object: &Value) -> Admission {
    let mut out = Admission {
        stored: object.clone(),
        ..Admission::default()
    };
    let mut metadata = None;
    if let Value::Object(map) = &mut out.stored {
        metadata = map.remove("metadata");
    }
    prune(schema, &mut out.stored, "", &mut out.pruned);
    validate(schema, &out.stored, "", &mut out.refused);
    out.pruned.sort();
    out.refused.sort();
    if let (Value::Object(map), Some(m)) = (&mut out.stored, metadata) {
        map.insert("metadata".into(), m);
    }
    out
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name) == Some(&Value::Bool(true))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn prune(schema: &Value, value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => prune_object(schema, map, path, pruned),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    pruned: &mut Vec<String>,
) {
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let field_path = join(path, &key);
        let field_schema = properties.and_then(|p| p.get(&key)).or(additional);
        match field_schema {
            Some(s) => {
                if map[&key].is_null() && !flag(s, "nullable") {
                    map.remove(&key);
                    pruned.push(format!("{field_path}: null dropped (not nullable)"));
                } else if let Some(v) = map.get_mut(&key) {
                    prune(s, v, &field_path, pruned);
                }
            }
            None if preserve || schema.get("additionalProperties") == Some(&Value::Bool(true)) => {}
            None => {
                map.remove(&key);
                pruned.push(format!("{field_path}: unknown field pruned"));
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn validate(schema: &Value, value: &Value, path: &str, refused: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    if value.is_null() {
        if !flag(schema, "nullable") {
            refused.push(format!("{at}: Invalid value: \"null\": must not be null"));
        }
        return;
    }
    let actual = type_name(value);
    if flag(schema, "x-kubernetes-int-or-string") {
        if !matches!(actual, "integer" | "string") {
            refused.push(format!(
                "{at}: Invalid value: must be an integer or a string, not {actual}"
            ));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let fits = expected == actual || (expected == "number" && actual == "integer");
        if !fits {
            refused.push(format!(
                "{at}: Invalid value: \"{actual}\": must be of type {expected}"
            ));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        refused.push(format!(
            "{at}: Unsupported value: {value}: supported values: {}",
            allowed.join(", ")
        ));
    }
    match (schema.get("format").and_then(Value::as_str), value) {
        (Some("int32"), Value::Number(n))
            if n.as_i64().is_none_or(|i| i32::try_from(i).is_err()) =>
        {
            refused.push(format!("{at}: Invalid value: {n}: must fit in an int32"));
        }
        (Some("date-time"), Value::String(s)) if s.parse::<jiff::Timestamp>().is_err() => {
            refused.push(format!(
                "{at}: Invalid value: {s:?}: must be a date-time (RFC 3339)"
            ));
        }
        _ => {}
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(required)) = schema.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        refused.push(format!("{}: Required value", join(path, name)));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, v) in map {
                if let Some(s) = properties.and_then(|p| p.get(key)).or(additional) {
                    validate(s, v, &join(path, key), refused);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item_schema, item, &format!("{path}[{i}]"), refused);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "default": {"x-kubernetes-preserve-unknown-fields": true},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "count": {"type": "integer", "format": "int32"},
                        "note": {"type": "string", "nullable": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                "properties": {"kept": {"type": "string"}}},
                    }
                }
            }
        })
    }

    #[test]
    fn a_document_that_fits_is_kept_whole() {
        let doc = json!({"metadata": {"name": "x", "anything": 1}, "spec": {
            "name": "n", "default": {"deep": [1, "two"]}, "mode": "a", "port": "http",
            "count": 3, "note": null, "labels": {"k": "v"}, "raw": {"kept": "k", "free": true}}});
        let a = admit(&schema(), &doc);
        assert!(a.is_clean(), "{a:?}");
        assert_eq!(a.stored, doc);
    }

    #[test]
    fn unknown_fields_and_nulls_are_pruned_with_their_paths() {
        let doc = json!({"spec": {"name": "n", "extra": 1, "mode": null}, "status2": {}});
        let a = admit(&schema(), &doc);
        assert_eq!(a.stored, json!({"spec": {"name": "n"}}));
        assert_eq!(
            a.pruned,
            [
                "spec.extra: unknown field pruned",
                "spec.mode: null dropped (not nullable)",
                "status2: unknown field pruned"
            ]
        );
        assert!(a.refused.is_empty());
    }

    #[test]
    fn wrong_types_missing_fields_and_values_outside_an_enum_are_refused() {
        let doc = json!({"spec": {"mode": "c", "port": true, "count": 1e10, "labels": {"k": 1}}});
        let a = admit(&schema(), &doc);
        assert_eq!(
            a.refused,
            [
                "spec.count: Invalid value: \"number\": must be of type integer",
                "spec.labels.k: Invalid value: \"integer\": must be of type string",
                "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"",
                "spec.name: Required value",
                "spec.port: Invalid value: must be an integer or a string, not boolean",
            ]
        );
    }
}
