//! Status writes as JSON merge patches (RFC 7386) holding only what changed: fields that
//! went away become `null`, unchanged ones are left out, so a step event costs a few
//! hundred bytes on the wire, not the whole status.

use serde_json::{Map, Value};

/// The merge patch that turns `old` into `new`; `None` when they are equal.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, v) in n {
                let diff = match o.get(k) {
                    Some(before) => merge_diff(before, v),
                    None => Some(v.clone()),
                };
                if let Some(d) = diff {
                    out.insert(k.clone(), d);
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        // A JSON null in a merge patch deletes, so an object replacing a scalar (or the
        // other way round) is written whole.
        _ => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changes_are_written_and_removed_fields_become_null() {
        let old = json!({"podName": "p", "completionTime": "t", "steps": [{"name": "a"}],
                         "taskSpec": {"steps": [1]}});
        let new = json!({"podName": "p", "steps": [{"name": "a"}, {"name": "b"}],
                         "taskSpec": {"steps": [1]}});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"completionTime": null, "steps": [{"name": "a"}, {"name": "b"}]}))
        );
        assert_eq!(merge_diff(&new, &new), None);
    }

    #[test]
    fn nested_objects_are_diffed_key_by_key() {
        let old = json!({"a": {"x": 1, "y": 2}});
        let new = json!({"a": {"x": 1, "y": 3, "z": 4}});
        assert_eq!(merge_diff(&old, &new), Some(json!({"a": {"y": 3, "z": 4}})));
    }
}
