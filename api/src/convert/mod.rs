//! Conversion of older API versions to tekton.dev/v1, on the document tree; and, for the
//! API server's conversion webhook, between v1beta1 and v1 both ways ([`served`]).
//!
//! Conversions run before strict decoding, so whatever they do not know stays in the
//! tree and is reported as an unknown v1 field with its path. What they drop on purpose
//! (fields v1 no longer has) is reported as a note, never lost silently.

pub(crate) mod resources;
pub mod served;
pub(crate) mod v1alpha1;
pub(crate) mod v1beta1;

use serde_json::{Map, Value};

use crate::problem::{FieldPath, Problem};

/// What a conversion found: fatal problems and notes about what it changed or dropped.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub problems: Vec<Problem>,
    pub notes: Vec<Problem>,
}

impl Findings {
    pub fn problem(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }
    pub fn note(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.notes.push(Problem::new(path, message));
    }
}

/// Moves `obj[from]` to `obj[to]`; if both are set, keeps `to` and reports the conflict.
pub(crate) fn rename(
    obj: &mut Map<String, Value>,
    from: &str,
    to: &str,
    path: &FieldPath,
    f: &mut Findings,
) {
    if let Some(v) = obj.remove(from) {
        if obj.contains_key(to) {
            f.problem(
                &path.field(from),
                format!("{from:?} and {to:?} are both set; keep only {to:?}"),
            );
        } else {
            obj.insert(to.to_owned(), v);
        }
    }
}

/// Removes fields that v1 no longer has, noting each.
pub(crate) fn drop_fields(
    obj: &mut Map<String, Value>,
    fields: &[&str],
    why: &str,
    path: &FieldPath,
    f: &mut Findings,
) {
    for field in fields {
        if obj.remove(*field).is_some() {
            f.note(&path.field(field), format!("dropped: {why}"));
        }
    }
}

/// Calls `each` on every object of the array `obj[key]`, with its path.
pub(crate) fn each_object(
    obj: &mut Map<String, Value>,
    key: &str,
    path: &FieldPath,
    mut each: impl FnMut(&mut Map<String, Value>, &FieldPath),
) {
    if let Some(Value::Array(items)) = obj.get_mut(key) {
        for (i, item) in items.iter_mut().enumerate() {
            if let Value::Object(o) = item {
                each(o, &path.field(key).index(i));
            }
        }
    }
}

/// The object at `obj[key]`, if it is one.
pub(crate) fn object_mut<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    obj.get_mut(key).and_then(Value::as_object_mut)
}

/// The object at `obj[key]`, created if absent.
pub(crate) fn ensure_object<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> &'a mut Map<String, Value> {
    let entry = obj
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("just made an object")
}

/// The array at `obj[key]`, created if absent.
pub(crate) fn ensure_array<'a>(obj: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let entry = obj
        .entry(key.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    entry.as_array_mut().expect("just made an array")
}

/// Applies `rewrite` to every string in the tree.
pub(crate) fn rewrite_strings(value: &mut Value, rewrite: &impl Fn(&str) -> Option<String>) {
    match value {
        Value::String(s) => {
            if let Some(new) = rewrite(s) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_strings(v, rewrite)),
        Value::Object(map) => map.values_mut().for_each(|v| rewrite_strings(v, rewrite)),
        _ => {}
    }
}
