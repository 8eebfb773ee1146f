//! Steps that run a StepAction (`ref:`): the StepAction's container written into the
//! step, with the params the step passes, before the Task is resolved.
//!
//! Tekton's order: the Task's params are substituted into the values the step passes;
//! those values (else the StepAction's defaults) are substituted into the StepAction's
//! fields; a value that names a step result (`$(steps.<s>.results.<r>)`) stays a
//! reference, with the selector the StepAction uses, for the entrypoint to read when the
//! step starts.

use std::collections::{BTreeMap, BTreeSet};

use tektite_api::v1::{Param, ParamValue, Step, TaskSpec};
use tektite_api::v1beta1::StepActionSpec;
use tektite_api::vars::{self, Reference, Resolved, Selector, SubstituteError};

use crate::params::{ParamError, effective_params, select};

/// Why a step's StepAction cannot be written into it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepActionError {
    #[error("{field}: StepAction {name:?} was not found{where_}")]
    NotFound {
        field: String,
        name: String,
        /// Where it was looked for (`in namespace "ci"`), with a leading space.
        where_: String,
    },
    #[error(
        "{field}: a StepAction from resolver {resolver:?} cannot be had here; write the StepAction's name, with the StepAction beside the Task"
    )]
    Resolver { field: String, resolver: String },
    #[error("{field}: ref needs the StepAction's name")]
    Unnamed { field: String },
    #[error("{field}: StepAction {name:?}: {source}")]
    Params {
        field: String,
        name: String,
        #[source]
        source: ParamError,
    },
    #[error("{field}: {source}")]
    Substitute {
        field: String,
        #[source]
        source: SubstituteError,
    },
}

/// The names of the StepActions `spec`'s steps refer to by name (the ones a shell must
/// fetch before [`inline`]).
pub fn names(spec: &TaskSpec) -> BTreeSet<String> {
    spec.steps
        .iter()
        .filter_map(|s| s.ref_.as_ref())
        .filter(|r| r.resolver.is_none())
        .filter_map(|r| r.name.clone())
        .collect()
}

/// `spec` with each step that refers to a StepAction running it instead, `given` being
/// the run's params. `actions` holds the StepActions by name; `where_` says where they
/// were looked for, for the error when one is missing.
pub fn inline(
    spec: &TaskSpec,
    given: &[Param],
    actions: &BTreeMap<String, StepActionSpec>,
    where_: &str,
) -> Result<TaskSpec, StepActionError> {
    if spec.steps.iter().all(|s| s.ref_.is_none()) {
        return Ok(spec.clone());
    }
    // Missing params are reported when the Task is resolved; here only what is known.
    let task_params = effective_params(&spec.params, given).unwrap_or_else(|_| {
        given
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect()
    });
    let mut out = spec.clone();
    for (i, step) in out.steps.iter_mut().enumerate() {
        let Some(reference) = step.ref_.take() else {
            continue;
        };
        let field = format!("spec.steps[{i}]");
        if let Some(resolver) = reference.resolver {
            return Err(StepActionError::Resolver {
                field: format!("{field}.ref"),
                resolver,
            });
        }
        let Some(name) = reference.name.filter(|n| !n.is_empty()) else {
            return Err(StepActionError::Unnamed {
                field: format!("{field}.ref.name"),
            });
        };
        let Some(action) = actions.get(&name) else {
            return Err(StepActionError::NotFound {
                field: format!("{field}.ref.name"),
                name,
                where_: where_.to_owned(),
            });
        };
        // 1. The Task's params in the values the step passes.
        let mut task_lookup = |r: &Reference| match r {
            Reference::Param { name, selector } => select(task_params.get(name)?, selector),
            _ => None,
        };
        let mut passed = Vec::with_capacity(step.params.len());
        for (j, p) in step.params.iter().enumerate() {
            let value =
                vars::substitute_param_value(&p.value, &mut task_lookup).map_err(|source| {
                    StepActionError::Substitute {
                        field: format!("{field}.params[{j}].value"),
                        source,
                    }
                })?;
            passed.push(Param {
                name: p.name.clone(),
                value,
            });
        }
        // 2-4. Those values, else the StepAction's defaults (an object's keys merged).
        let values = action_params(action, &passed).map_err(|source| StepActionError::Params {
            field: field.clone(),
            name: name.clone(),
            source,
        })?;
        let mut lookup = |r: &Reference| match r {
            Reference::Param { name, selector } => {
                let value = values.get(name)?;
                deferred(value, selector).or_else(|| select(value, selector))
            }
            _ => None,
        };
        let mut container = action.clone();
        container.params.clear();
        let mut tree = serde_json::to_value(&container).expect("a StepAction serializes to JSON");
        vars::substitute_tree(&mut tree, &mut lookup).map_err(|(path, source)| {
            StepActionError::Substitute {
                field: format!("{field}.ref({name}){path}"),
                source,
            }
        })?;
        let container: StepActionSpec =
            serde_json::from_value(tree).map_err(|e| StepActionError::Substitute {
                field: format!("{field}.ref({name})"),
                source: SubstituteError::Misfit {
                    field: format!("StepAction {name:?}"),
                    message: e.to_string(),
                },
            })?;
        write_into(step, container);
        step.params.clear();
    }
    Ok(out)
}

/// The step gets the StepAction's container; what the step itself may set (resources,
/// timeout, onError, workspaces, securityContext, ...) stays its own.
fn write_into(step: &mut Step, a: StepActionSpec) {
    step.image = a.image;
    step.command = a.command;
    step.args = a.args;
    step.env = a.env;
    step.script = a.script;
    step.working_dir = a.working_dir;
    step.volume_mounts = a.volume_mounts;
    step.results = a.results;
    if step.security_context.is_none() {
        step.security_context = a.security_context;
    }
}

/// Each StepAction param's value: passed, else its default. A value Tekton left as
/// written (a reference it could not substitute) where an object is declared gives no
/// keys: the default's are used.
fn action_params(
    action: &StepActionSpec,
    passed: &[Param],
) -> Result<BTreeMap<String, ParamValue>, ParamError> {
    let mut values = effective_params(&action.params, passed)?;
    for d in &action.params {
        if let (Some(default @ ParamValue::Object(_)), Some(value)) =
            (&d.default, values.get_mut(&d.name))
            && matches!(value, ParamValue::String(s) if s.contains("$(") && step_result(s).is_none())
        {
            *value = default.clone();
        }
    }
    Ok(values)
}

/// `text` when it is exactly one step result reference, whole: (step, result, selector).
fn step_result(text: &str) -> Option<(String, String, Selector)> {
    match vars::alone(text)? {
        Reference::StepResult {
            step,
            result,
            selector: selector @ (Selector::Whole | Selector::Star),
        } => Some((step, result, selector)),
        _ => None,
    }
}

/// A param whose value is a step result, as the StepAction's use of it selects it: the
/// reference the entrypoint reads when the step starts.
fn deferred(value: &ParamValue, selector: &Selector) -> Option<Resolved> {
    let ParamValue::String(text) = value else {
        return None;
    };
    let (step, result, passed) = step_result(text)?;
    let at = format!("steps.{step}.results.{result}");
    Some(Resolved::Text(match selector {
        Selector::Whole if passed == Selector::Star => format!("$({at}[*])"),
        Selector::Whole => format!("$({at})"),
        Selector::Star => format!("$({at}[*])"),
        Selector::Index(i) => format!("$({at}[{i}])"),
        Selector::Key(k) => format!("$({at}.{k})"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(v: serde_json::Value) -> TaskSpec {
        serde_json::from_value(v).unwrap()
    }

    fn actions(v: serde_json::Value) -> BTreeMap<String, StepActionSpec> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_step_runs_its_step_action_with_the_params_it_passes_and_the_defaults() {
        let spec = task(json!({
            "params": [
                {"name": "who"},
                {"name": "obj", "properties": {"key1": {}, "key2": {}},
                 "default": {"key1": "task key1", "key2": "task key2"}},
            ],
            "steps": [{
                "name": "greet",
                "ref": {"name": "hello"},
                "params": [
                    {"name": "name", "value": "$(params.who)"},
                    {"name": "list", "value": "$(params.list[*])"},
                    {"name": "o", "value": "$(params.obj[*])"},
                ],
                "timeout": "1m",
                "onError": "continue",
            }],
        }));
        let given = [
            Param {
                name: "who".into(),
                value: ParamValue::String("tekton".into()),
            },
            Param {
                name: "list".into(),
                value: ParamValue::Array(vec!["a".into(), "b".into()]),
            },
            Param {
                name: "obj".into(),
                value: ParamValue::Object([("key2".into(), "run key2".into())].into()),
            },
        ];
        let hello = actions(json!({"hello": {
            "image": "alpine",
            "params": [
                {"name": "name"},
                {"name": "greeting", "default": "hi"},
                {"name": "list", "type": "array"},
                {"name": "o", "properties": {"key1": {}, "key2": {}, "key3": {}},
                 "default": {"key1": "a", "key2": "b", "key3": "action key3"}},
            ],
            "command": ["echo"],
            "args": ["$(params.greeting)", "$(params.list[*])", "$(params.o.key1)", "$(params.o.key2)", "$(params.o.key3)"],
            "env": [{"name": "NAME", "value": "$(params.name)"}],
            "results": [{"name": "out"}],
        }}));
        let out = inline(&spec, &given, &hello, "").unwrap();
        let s = &out.steps[0];
        assert_eq!(s.ref_, None);
        assert!(s.params.is_empty());
        assert_eq!(s.image.as_deref(), Some("alpine"));
        assert_eq!(s.command, ["echo"]);
        assert_eq!(
            s.args,
            ["hi", "a", "b", "task key1", "run key2", "action key3"]
        );
        assert_eq!(s.env[0].value.as_deref(), Some("tekton"));
        assert_eq!(s.results[0].name, "out");
        assert_eq!(
            s.on_error.as_ref().and_then(|o| o.known()),
            Some(tektite_api::v1::OnError::Continue)
        );
        assert!(s.timeout.is_some(), "the step's own fields stay");
    }

    #[test]
    fn a_step_result_passed_as_a_param_stays_a_reference_for_the_entrypoint() {
        let spec = task(json!({"steps": [
            {"name": "make", "image": "alpine", "script": "true",
             "results": [{"name": "list", "type": "array"}, {"name": "one"}, {"name": "obj", "type": "object", "properties": {"url": {}}}]},
            {"name": "use", "ref": {"name": "act"}, "params": [
                {"name": "l", "value": "$(steps.make.results.list[*])"},
                {"name": "s", "value": "$(steps.make.results.one)"},
                {"name": "o", "value": "$(steps.make.results.obj[*])"},
            ]},
        ]}));
        let act = actions(json!({"act": {
            "image": "alpine",
            "params": [{"name": "l", "type": "array"}, {"name": "s"}, {"name": "o", "type": "object", "properties": {"url": {}}}],
            "command": ["run"],
            "args": ["$(params.l[*])", "$(params.l[0])", "$(params.o.url)"],
            "env": [{"name": "S", "value": "$(params.s)"}],
        }}));
        let out = inline(&spec, &[], &act, "").unwrap();
        let s = &out.steps[1];
        assert_eq!(
            s.args,
            [
                "$(steps.make.results.list[*])",
                "$(steps.make.results.list[0])",
                "$(steps.make.results.obj.url)"
            ]
        );
        assert_eq!(s.env[0].value.as_deref(), Some("$(steps.make.results.one)"));
    }

    #[test]
    fn a_missing_step_action_a_resolver_and_a_missing_param_are_errors_with_their_field() {
        let spec = task(json!({"steps": [{"ref": {"name": "nope"}}]}));
        let err = inline(&spec, &[], &BTreeMap::new(), " in namespace \"ci\"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.steps[0].ref.name: StepAction \"nope\" was not found in namespace \"ci\""
        );
        let spec = task(json!({"steps": [{"ref": {"resolver": "git"}}]}));
        let err = inline(&spec, &[], &BTreeMap::new(), "").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.steps[0].ref: a StepAction from resolver \"git\""),
            "{err}"
        );
        let spec = task(json!({"steps": [{"ref": {"name": "act"}}]}));
        let act =
            actions(json!({"act": {"image": "a", "params": [{"name": "x"}], "script": "true"}}));
        let err = inline(&spec, &[], &act, "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.steps[0]: StepAction \"act\": missing required params (no value and no default): x"
        );
        assert_eq!(names(&spec), BTreeSet::from(["act".to_owned()]));
    }

    #[test]
    fn a_reference_tekton_leaves_as_written_gives_an_object_param_no_keys() {
        // Tekton's stepaction-params example passes $(params.s[*]) of a string param.
        let spec = task(
            json!({"steps": [{"ref": {"name": "act"}, "params": [{"name": "o", "value": "$(params.s[*])"}]}]}),
        );
        let given = [Param {
            name: "s".into(),
            value: ParamValue::String("x".into()),
        }];
        let act = actions(
            json!({"act": {"image": "a", "command": ["echo"], "args": ["$(params.o.k)"],
            "params": [{"name": "o", "properties": {"k": {}}, "default": {"k": "default k"}}]}}),
        );
        let out = inline(&spec, &given, &act, "").unwrap();
        assert_eq!(out.steps[0].args, ["default k"]);
    }
}
