//! The values a run's params take: the run's own, else the declared defaults.

use std::collections::BTreeMap;

use tektite_api::v1::{Param, ParamSpec, ParamValue};
use tektite_api::vars::{Resolved, Selector};

/// Params a run must be given and was not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("missing required params (no value and no default): {}", .missing.join(", "))]
pub struct ParamError {
    pub missing: Vec<String>,
}

/// Every declared param's value: the one given, else its default (an object given only
/// some keys takes the others from the default). Params given but not declared are kept
/// (Tekton passes them on).
pub fn effective_params(
    declared: &[ParamSpec],
    given: &[Param],
) -> Result<BTreeMap<String, ParamValue>, ParamError> {
    let mut values: BTreeMap<String, ParamValue> = given
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    let mut missing = Vec::new();
    for spec in declared {
        if let Some(value) = values.get_mut(&spec.name) {
            // An object given some keys takes the others from its default (Tekton's).
            if let (ParamValue::Object(given), Some(ParamValue::Object(default))) =
                (value, &spec.default)
            {
                for (k, v) in default {
                    given.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            continue;
        }
        match &spec.default {
            Some(default) => {
                values.insert(spec.name.clone(), default.clone());
            }
            None => missing.push(spec.name.clone()),
        }
    }
    if missing.is_empty() {
        Ok(values)
    } else {
        Err(ParamError { missing })
    }
}

/// `value` as a reference with `selector` sees it; None when the selection does not
/// exist (an index past the end, a missing key).
pub fn select(value: &ParamValue, selector: &Selector) -> Option<Resolved> {
    match (value, selector) {
        (ParamValue::String(s), Selector::Whole) => Some(Resolved::Text(s.clone())),
        (ParamValue::Array(a), Selector::Whole | Selector::Star) => {
            Some(Resolved::Array(a.clone()))
        }
        (ParamValue::Array(a), Selector::Index(i)) => a.get(*i).cloned().map(Resolved::Text),
        (ParamValue::Object(o), Selector::Key(k)) => o.get(k).cloned().map(Resolved::Text),
        (ParamValue::Object(o), Selector::Whole | Selector::Star) => {
            Some(Resolved::Object(o.clone()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, default: Option<&str>) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            default: default.map(|d| ParamValue::String(d.into())),
            ..ParamSpec::default()
        }
    }

    #[test]
    fn given_values_win_over_defaults() {
        let values = effective_params(
            &[spec("a", Some("x")), spec("b", Some("y"))],
            &[Param {
                name: "a".into(),
                value: ParamValue::String("given".into()),
            }],
        )
        .unwrap();
        assert_eq!(values["a"], ParamValue::String("given".into()));
        assert_eq!(values["b"], ParamValue::String("y".into()));
    }

    #[test]
    fn every_missing_param_is_named() {
        let err = effective_params(
            &[spec("a", None), spec("b", None), spec("c", Some(""))],
            &[],
        )
        .unwrap_err();
        assert_eq!(err.missing, ["a", "b"]);
        assert_eq!(
            err.to_string(),
            "missing required params (no value and no default): a, b"
        );
    }

    #[test]
    fn selectors_pick_elements_and_keys() {
        let array = ParamValue::Array(vec!["x".into(), "y".into()]);
        assert_eq!(
            select(&array, &Selector::Index(1)),
            Some(Resolved::Text("y".into()))
        );
        assert_eq!(select(&array, &Selector::Index(2)), None);
        let object = ParamValue::Object([("k".to_owned(), "v".to_owned())].into());
        assert_eq!(
            select(&object, &Selector::Key("k".into())),
            Some(Resolved::Text("v".into()))
        );
        assert_eq!(
            select(&ParamValue::String("s".into()), &Selector::Index(0)),
            None
        );
    }
}
