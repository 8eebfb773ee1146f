//! Strict decoding: every field of a document must be one the schema knows.
//!
//! Tekton's webhook decodes with unknown fields disallowed; tektite checks a document
//! against the same JSON schema it publishes in its CRDs, so the two cannot disagree,
//! and it reports every unknown field at once with its path.

use serde_json::Value;

use crate::problem::{FieldPath, Problem};

/// Reports every field of `value` that `schema` (a fully inlined OpenAPI v3 schema)
/// does not declare.
pub fn unknown_fields(value: &Value, schema: &Value, path: &FieldPath, out: &mut Vec<Problem>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(map) => {
            let alternatives = alternatives(schema);
            let property = |key: &str| {
                alternatives
                    .iter()
                    .find_map(|s| s.get("properties").and_then(|p| p.get(key)))
            };
            let additional =
                alternatives
                    .iter()
                    .find_map(|s| match s.get("additionalProperties") {
                        Some(Value::Bool(false)) | None => None,
                        Some(other) => Some(other),
                    });
            let declares_properties = alternatives.iter().any(|s| s.contains_key("properties"));
            for (key, child) in map {
                let child_path = if additional.is_some() && !declares_properties {
                    path.key(key)
                } else {
                    path.field(key)
                };
                if let Some(child_schema) = property(key) {
                    unknown_fields(child, child_schema, &child_path, out);
                } else if let Some(child_schema) = additional {
                    unknown_fields(child, child_schema, &child_path, out);
                } else if declares_properties {
                    out.push(Problem::new(
                        child_path,
                        format!("unknown field {key:?}{}", suggestion(key, &alternatives)),
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = alternatives(schema).iter().find_map(|s| s.get("items")) {
                for (i, item) in items.iter().enumerate() {
                    unknown_fields(item, item_schema, &path.index(i), out);
                }
            }
        }
        _ => {}
    }
}

/// Renames each field of `value` that `schema` declares in another case (`mountpath` for
/// `mountPath`) to the declared name, as Tekton's decoding (Go's JSON) matches field names
/// case-insensitively; each rename is noted. A field whose declared spelling is also
/// present is left for [`unknown_fields`] to report.
pub fn fold_case(value: &mut Value, schema: &Value, path: &FieldPath, notes: &mut Vec<Problem>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    let alternatives = alternatives(schema);
    match value {
        Value::Object(map) => {
            let declared: Vec<(&String, &Value)> = alternatives
                .iter()
                .filter_map(|s| s.get("properties").and_then(Value::as_object))
                .flat_map(|p| p.iter())
                .collect();
            let renames: Vec<(String, String)> = map
                .keys()
                .filter(|k| !declared.iter().any(|(d, _)| d == k))
                .filter_map(|k| {
                    let (d, _) = declared.iter().find(|(d, _)| d.eq_ignore_ascii_case(k))?;
                    (!map.contains_key(d.as_str())).then(|| (k.clone(), (*d).clone()))
                })
                .collect();
            for (from, to) in renames {
                if let Some(v) = map.remove(&from) {
                    notes.push(Problem::new(
                        path.field(&from),
                        format!("read as {to:?}, as Tekton reads field names whatever their case; write {to:?} (a cluster's API server drops {from:?})"),
                    ));
                    map.insert(to, v);
                }
            }
            for (key, child) in map.iter_mut() {
                if let Some((_, child_schema)) = declared.iter().find(|(d, _)| *d == key) {
                    fold_case(child, child_schema, &path.field(key), notes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = alternatives.iter().find_map(|s| s.get("items")) {
                for (i, item) in items.iter_mut().enumerate() {
                    fold_case(item, item_schema, &path.index(i), notes);
                }
            }
        }
        _ => {}
    }
}

/// The schema itself plus the branches of any `allOf`/`anyOf`/`oneOf` in it.
fn alternatives(schema: &serde_json::Map<String, Value>) -> Vec<&serde_json::Map<String, Value>> {
    let mut out = vec![schema];
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = schema.get(key) {
            out.extend(branches.iter().filter_map(Value::as_object));
        }
    }
    out
}

/// `; did you mean "taskRef"?` when a known field is one small typo away.
fn suggestion(key: &str, alternatives: &[&serde_json::Map<String, Value>]) -> String {
    let known = alternatives
        .iter()
        .filter_map(|s| s.get("properties").and_then(Value::as_object))
        .flat_map(|p| p.keys());
    let best = known
        .map(|k| (edit_distance(&key.to_lowercase(), &k.to_lowercase()), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, k)) => format!("; did you mean {k:?}?"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(value: Value, schema: Value) -> Vec<String> {
        let mut out = Vec::new();
        unknown_fields(&value, &schema, &FieldPath::root(), &mut out);
        out.into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn unknown_fields_are_reported_with_their_path() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "steps": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
            }}
        }});
        let value = json!({"spec": {"steps": [{"name": "a"}, {"nmae": "b"}], "stepz": []}});
        assert_eq!(
            check(value, schema),
            vec![
                "spec.steps[1].nmae: unknown field \"nmae\"; did you mean \"name\"?",
                "spec.stepz: unknown field \"stepz\"; did you mean \"steps\"?",
            ]
        );
    }

    #[test]
    fn a_field_in_another_case_is_read_as_declared_and_noted() {
        let schema = json!({"type": "object", "properties": {
            "workspaces": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "mountPath": {"type": "string"}}}}
        }});
        let mut value = json!({"workspaces": [{"name": "a", "mountpath": "/x"}, {"mountPath": "/y", "MOUNTPATH": "/z"}]});
        let mut notes = Vec::new();
        fold_case(&mut value, &schema, &FieldPath::root(), &mut notes);
        assert_eq!(
            value["workspaces"][0],
            json!({"name": "a", "mountPath": "/x"})
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0]
                .to_string()
                .starts_with("workspaces[0].mountpath: read as \"mountPath\"")
        );
        // Both spellings: the other one stays, and is unknown.
        assert_eq!(
            check(value, schema),
            vec![
                "workspaces[1].MOUNTPATH: unknown field \"MOUNTPATH\"; did you mean \"mountPath\"?"
            ]
        );
    }

    #[test]
    fn maps_and_preserved_fields_accept_any_key() {
        let schema = json!({"type": "object", "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "value": {"x-kubernetes-preserve-unknown-fields": true}
        }});
        assert!(
            check(
                json!({"labels": {"a": "b"}, "value": {"x": {"y": 1}}}),
                schema
            )
            .is_empty()
        );
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("taskref", "taskref"), 0);
        assert_eq!(edit_distance("tasref", "taskref"), 1);
        assert_eq!(edit_distance("abc", "xyz"), 3);
    }
}
