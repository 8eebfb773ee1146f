//! PipelineResources (removed from Tekton in v0.44) carried into v1.
//!
//! * A resource a Task declares becomes params named `resource-<name>-<field>` (git:
//!   `url`, `revision`; image: `url`, `digest`), and `$(resources.inputs.<r>.<field>)`
//!   becomes `$(params.resource-<r>-<field>)`.
//! * A git input also becomes a first step that clones the repository into
//!   `/workspace/<targetPath or name>`, the path `$(resources.inputs.<r>.path)` names.
//! * A Pipeline's resources become Pipeline params of the same names, each pipeline
//!   task binding passes them on, and `from` becomes `runAfter`.
//! * A run's resource bindings (`resourceRef` to a PipelineResource document given
//!   alongside, or an inline `resourceSpec`) become param values.
//! * storage, cluster, pullRequest and cloudEvent resources are refused with what to
//!   use instead.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Findings, each_object, ensure_array, rewrite_strings};
use crate::problem::FieldPath;

/// The image the git clone step runs in on a cluster (the local runner uses the host's git).
pub const GIT_IMAGE: &str = "docker.io/alpine/git:2.47.2";

/// The kinds of PipelineResource that carry over to v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    Git,
    Image,
}

impl ResourceType {
    fn fields(self) -> &'static [(&'static str, Option<&'static str>)] {
        // (field, default): a field without a default is required.
        match self {
            ResourceType::Git => &[("url", None), ("revision", Some(""))],
            ResourceType::Image => &[("url", None), ("digest", Some(""))],
        }
    }

    fn name(self) -> &'static str {
        match self {
            ResourceType::Git => "git",
            ResourceType::Image => "image",
        }
    }
}

/// A PipelineResource document (or an inline `resourceSpec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineResource {
    pub name: String,
    pub type_: ResourceType,
    pub params: BTreeMap<String, String>,
}

/// The param a resource field becomes.
pub fn param_name(resource: &str, field: &str) -> String {
    format!("resource-{resource}-{field}")
}

fn resource_type(
    value: Option<&Value>,
    path: &FieldPath,
    f: &mut Findings,
) -> Option<ResourceType> {
    let Some(text) = value.and_then(Value::as_str) else {
        f.problem(path, "a PipelineResource needs a type (git or image)");
        return None;
    };
    match text {
        "git" => Some(ResourceType::Git),
        "image" => Some(ResourceType::Image),
        "storage" | "gcs" | "build-gcs" => {
            f.problem(path, format!("PipelineResource type {text:?} was removed upstream; bind a workspace and upload or download with a catalog Task (e.g. gcs-upload) instead"));
            None
        }
        "cluster" => {
            f.problem(path, "PipelineResource type \"cluster\" was removed upstream; bind a Secret holding a kubeconfig as a workspace instead");
            None
        }
        "pullRequest" | "pullrequest" => {
            f.problem(path, "PipelineResource type \"pullRequest\" was removed upstream; use a catalog Task (e.g. github-add-comment) with a token Secret instead");
            None
        }
        "cloudEvent" | "cloudevent" => {
            f.problem(path, "PipelineResource type \"cloudEvent\" was removed upstream; configure the controller's cloud events sink instead");
            None
        }
        other => {
            f.problem(
                path,
                format!("unknown PipelineResource type {other:?} (git or image)"),
            );
            None
        }
    }
}

/// Reads a PipelineResource spec (`type`, `params`).
pub(crate) fn resource_spec(
    name: &str,
    spec: &Map<String, Value>,
    path: &FieldPath,
    f: &mut Findings,
) -> Option<PipelineResource> {
    let type_ = resource_type(spec.get("type"), &path.field("type"), f)?;
    let mut params = BTreeMap::new();
    if let Some(Value::Array(items)) = spec.get("params") {
        for (i, p) in items.iter().enumerate() {
            let p_path = path.field("params").index(i);
            let (Some(n), Some(v)) = (p.get("name").and_then(Value::as_str), p.get("value")) else {
                f.problem(&p_path, "a resource param needs a name and a value");
                continue;
            };
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    f.problem(
                        &p_path.field("value"),
                        "a resource param value must be a string",
                    );
                    continue;
                }
            };
            if type_.fields().iter().any(|(field, _)| *field == n) {
                params.insert(n.to_owned(), v);
            } else {
                f.note(
                    &p_path,
                    format!(
                        "param {n:?} of a {} resource is not supported and was ignored",
                        type_.name()
                    ),
                );
            }
        }
    }
    if spec.contains_key("secrets") {
        f.note(&path.field("secrets"), "resource secrets were ignored; give credentials through the ServiceAccount or a workspace");
    }
    for field in spec
        .keys()
        .filter(|k| !["type", "params", "secrets", "description"].contains(&k.as_str()))
    {
        f.problem(&path.field(field), format!("unknown field {field:?}"));
    }
    Some(PipelineResource {
        name: name.to_owned(),
        type_,
        params,
    })
}

/// The clone step a git input resource becomes.
fn clone_step(resource: &str, dest: &str) -> Value {
    let url = param_name(resource, "url");
    let rev = param_name(resource, "revision");
    json!({
        "name": format!("git-source-{resource}"),
        "image": GIT_IMAGE,
        "script": format!(
            "#!/bin/sh\nset -eu\nmkdir -p \"{dest}\"\ncd \"{dest}\"\ngit init -q\n\
             git remote add origin \"$(params.{url})\" 2>/dev/null || git remote set-url origin \"$(params.{url})\"\n\
             rev=\"$(params.{rev})\"\ngit fetch -q --depth=1 origin \"${{rev:-HEAD}}\"\ngit checkout -q FETCH_HEAD\n\
             echo \"cloned $(params.{url}) at $(git rev-parse HEAD) into {dest}\"\n"
        ),
    })
}

fn param_specs(resource: &str, type_: ResourceType) -> Vec<Value> {
    type_
        .fields()
        .iter()
        .map(|(field, default)| {
            let mut p = json!({"name": param_name(resource, field), "type": "string",
                "description": format!("{field} of the {} resource {resource:?}", type_.name())});
            if let Some(d) = default {
                p["default"] = json!(d);
            }
            p
        })
        .collect()
}

/// A Task spec's `resources` declarations become params, a clone step per git input,
/// and literal paths.
pub(crate) fn task_spec(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    let Some(resources) = spec.remove("resources") else {
        return;
    };
    let res_path = path.field("resources");
    let Value::Object(resources) = resources else {
        f.problem(&res_path, "resources must have inputs and outputs lists");
        return;
    };
    let mut new_params = Vec::new();
    let mut clone_steps = Vec::new();
    let mut replacements: Vec<(String, String)> = Vec::new();
    for (side, decls) in &resources {
        let side_path = res_path.field(side);
        if side != "inputs" && side != "outputs" {
            f.problem(
                &side_path,
                format!("unknown field {side:?} (inputs or outputs)"),
            );
            continue;
        }
        let Value::Array(decls) = decls else {
            f.problem(&side_path, "must be a list of resources");
            continue;
        };
        for (i, decl) in decls.iter().enumerate() {
            let d_path = side_path.index(i);
            let Some(name) = decl.get("name").and_then(Value::as_str) else {
                f.problem(&d_path.field("name"), "a resource needs a name");
                continue;
            };
            let Some(type_) = resource_type(decl.get("type"), &d_path.field("type"), f) else {
                continue;
            };
            let target = decl
                .get("targetPath")
                .and_then(Value::as_str)
                .unwrap_or(name);
            let dir = if side == "inputs" {
                format!("/workspace/{}", target.trim_start_matches('/'))
            } else {
                format!("/workspace/output/{name}")
            };
            if side == "inputs" && type_ == ResourceType::Git {
                clone_steps.push(clone_step(name, &dir));
            }
            if !new_params
                .iter()
                .any(|p: &Value| p["name"] == json!(param_name(name, "url")))
            {
                new_params.extend(param_specs(name, type_));
            }
            replacements.push((format!("$(resources.{side}.{name}.path)"), dir));
            replacements.push((format!("$(resources.{side}.{name}.name)"), name.to_owned()));
            for (field, _) in type_.fields() {
                replacements.push((
                    format!("$(resources.{side}.{name}.{field})"),
                    format!("$(params.{})", param_name(name, field)),
                ));
            }
        }
    }
    ensure_array(spec, "params").extend(new_params);
    if !clone_steps.is_empty() {
        let steps = ensure_array(spec, "steps");
        clone_steps.append(steps);
        *steps = clone_steps;
    }
    if !replacements.is_empty() {
        let mut tree = Value::Object(std::mem::take(spec));
        rewrite_strings(&mut tree, &|s: &str| {
            if !s.contains("$(resources.") {
                return None;
            }
            let mut out = s.to_owned();
            for (from, to) in &replacements {
                out = out.replace(from, to);
            }
            Some(out)
        });
        if let Value::Object(m) = tree {
            *spec = m;
        }
    }
}

/// A Pipeline spec's `resources` become params; each task's bindings pass them on.
pub(crate) fn pipeline_spec(spec: &mut Map<String, Value>, path: &FieldPath, f: &mut Findings) {
    let mut declared: BTreeMap<String, ResourceType> = BTreeMap::new();
    if let Some(resources) = spec.remove("resources") {
        let res_path = path.field("resources");
        match resources {
            Value::Array(decls) => {
                for (i, decl) in decls.iter().enumerate() {
                    let d_path = res_path.index(i);
                    let Some(name) = decl.get("name").and_then(Value::as_str) else {
                        f.problem(&d_path.field("name"), "a resource needs a name");
                        continue;
                    };
                    if let Some(t) = resource_type(decl.get("type"), &d_path.field("type"), f) {
                        declared.insert(name.to_owned(), t);
                    }
                }
            }
            _ => f.problem(&res_path, "must be a list of resources"),
        }
        let params: Vec<Value> = declared
            .iter()
            .flat_map(|(n, t)| param_specs(n, *t))
            .collect();
        ensure_array(spec, "params").extend(params);
    }
    for list in ["tasks", "finally"] {
        each_object(spec, list, path, |task, t_path| {
            let Some(bindings) = task.remove("resources") else {
                return;
            };
            let b_path = t_path.field("resources");
            let Value::Object(bindings) = bindings else {
                f.problem(&b_path, "resources must have inputs and outputs lists");
                return;
            };
            let mut params = Vec::new();
            let mut after = Vec::new();
            for (side, list) in &bindings {
                let Value::Array(list) = list else {
                    f.problem(&b_path.field(side), "must be a list of resource bindings");
                    continue;
                };
                for (i, b) in list.iter().enumerate() {
                    let p = b_path.field(side).index(i);
                    let (Some(name), Some(resource)) = (
                        b.get("name").and_then(Value::as_str),
                        b.get("resource").and_then(Value::as_str),
                    ) else {
                        f.problem(&p, "a resource binding needs a name and a resource");
                        continue;
                    };
                    let Some(type_) = declared.get(resource) else {
                        f.problem(
                            &p.field("resource"),
                            format!(
                                "resource {resource:?} is not declared in the Pipeline's resources"
                            ),
                        );
                        continue;
                    };
                    for (field, _) in type_.fields() {
                        params.push(json!({"name": param_name(name, field),
                            "value": format!("$(params.{})", param_name(resource, field))}));
                    }
                    if let Some(Value::Array(from)) = b.get("from") {
                        after.extend(from.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                }
            }
            params.dedup();
            ensure_array(task, "params").extend(params);
            if !after.is_empty() {
                let run_after = ensure_array(task, "runAfter");
                for a in after {
                    if !run_after.contains(&json!(a)) {
                        run_after.push(json!(a));
                    }
                }
            }
        });
    }
}

/// Reads one binding (`resourceRef` or `resourceSpec`) to a PipelineResource.
fn bound_resource(
    binding: &Map<String, Value>,
    path: &FieldPath,
    known: &BTreeMap<String, PipelineResource>,
    f: &mut Findings,
) -> Option<PipelineResource> {
    let name = binding
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(r) = binding.get("resourceRef") {
        let Some(ref_name) = r.get("name").and_then(Value::as_str) else {
            f.problem(
                &path.field("resourceRef").field("name"),
                "a resourceRef needs a name",
            );
            return None;
        };
        match known.get(ref_name) {
            Some(res) => Some(res.clone()),
            None => {
                f.problem(&path.field("resourceRef").field("name"), format!("PipelineResource {ref_name:?} is not among the documents given; add it, or write the resource inline as resourceSpec"));
                None
            }
        }
    } else if let Some(Value::Object(spec)) = binding.get("resourceSpec") {
        resource_spec(name, spec, &path.field("resourceSpec"), f)
    } else {
        f.problem(
            path,
            "a resource binding needs a resourceRef or a resourceSpec",
        );
        None
    }
}

fn binding_params(
    name: &str,
    res: &PipelineResource,
    path: &FieldPath,
    f: &mut Findings,
) -> Vec<Value> {
    res.type_
        .fields()
        .iter()
        .filter_map(|(field, default)| match (res.params.get(*field), default) {
            (Some(v), _) => Some(json!({"name": param_name(name, field), "value": v})),
            (None, Some(_)) => None,
            (None, None) => {
                f.problem(
                    path,
                    format!(
                        "the {} resource bound to {name:?} has no {field:?} param",
                        res.type_.name()
                    ),
                );
                None
            }
        })
        .collect()
}

/// Each binding of a list (a run's resources) becomes the params of its resource.
fn bindings_to_params(
    list: &[Value],
    list_path: &FieldPath,
    known: &BTreeMap<String, PipelineResource>,
    f: &mut Findings,
    params: &mut Vec<Value>,
) {
    for (i, b) in list.iter().enumerate() {
        let p = list_path.index(i);
        let Some(b) = b.as_object() else { continue };
        let Some(name) = b.get("name").and_then(Value::as_str) else {
            f.problem(&p.field("name"), "a resource binding needs a name");
            continue;
        };
        if b.contains_key("paths") {
            f.note(&p.field("paths"), "resource paths were ignored");
        }
        if let Some(res) = bound_resource(b, &p, known, f) {
            params.extend(binding_params(name, &res, &p, f));
        }
    }
}

/// How a run writes its resource bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BindingShape {
    /// A PipelineRun: `resources: [...]`.
    List,
    /// A TaskRun: `resources: {inputs: [...], outputs: [...]}`.
    InputsOutputs,
}

/// A run's `resources` bindings become param values.
pub(crate) fn run_spec(
    spec: &mut Map<String, Value>,
    path: &FieldPath,
    shape: BindingShape,
    known: &BTreeMap<String, PipelineResource>,
    f: &mut Findings,
) {
    let Some(resources) = spec.remove("resources") else {
        return;
    };
    let r_path = path.field("resources");
    let mut params = Vec::new();
    match (shape, &resources) {
        (BindingShape::List, Value::Array(list)) => {
            bindings_to_params(list, &r_path, known, f, &mut params)
        }
        (BindingShape::InputsOutputs, Value::Object(sides)) => {
            for (side, list) in sides {
                match list {
                    Value::Array(list) => {
                        bindings_to_params(list, &r_path.field(side), known, f, &mut params)
                    }
                    _ => f.problem(&r_path.field(side), "must be a list of resource bindings"),
                }
            }
        }
        (BindingShape::List, _) => f.problem(&r_path, "must be a list of resource bindings"),
        (BindingShape::InputsOutputs, _) => {
            f.problem(&r_path, "resources must have inputs and outputs lists")
        }
    }
    params.dedup();
    ensure_array(spec, "params").extend(params);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(
        spec: Value,
        c: fn(&mut Map<String, Value>, &FieldPath, &mut Findings),
    ) -> (Value, Findings) {
        let mut spec = spec;
        let mut f = Findings::default();
        c(
            spec.as_object_mut().unwrap(),
            &FieldPath::from("spec"),
            &mut f,
        );
        (spec, f)
    }

    #[test]
    fn a_git_input_becomes_a_clone_step_and_params() {
        let (spec, f) = conv(
            json!({"resources": {"inputs": [{"name": "repo", "type": "git"}]},
                   "steps": [{"name": "build", "script": "cd $(resources.inputs.repo.path) && make"}]}),
            task_spec,
        );
        assert!(f.problems.is_empty());
        assert_eq!(spec["steps"][0]["name"], "git-source-repo");
        assert_eq!(spec["steps"][1]["script"], "cd /workspace/repo && make");
        let names: Vec<_> = spec["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["resource-repo-url", "resource-repo-revision"]);
        assert!(
            spec["steps"][0]["script"]
                .as_str()
                .unwrap()
                .contains("$(params.resource-repo-url)")
        );
    }

    #[test]
    fn an_image_output_url_becomes_a_param_reference() {
        let (spec, _) = conv(
            json!({"resources": {"outputs": [{"name": "img", "type": "image"}]},
                   "steps": [{"name": "push", "args": ["--destination=$(resources.outputs.img.url)"]}]}),
            task_spec,
        );
        assert_eq!(
            spec["steps"][0]["args"][0],
            "--destination=$(params.resource-img-url)"
        );
    }

    #[test]
    fn storage_resources_are_refused_with_an_alternative() {
        let (_, f) = conv(
            json!({"resources": {"inputs": [{"name": "b", "type": "storage"}]}}),
            task_spec,
        );
        assert_eq!(f.problems[0].path.as_str(), "spec.resources.inputs[0].type");
        assert!(f.problems[0].message.contains("removed upstream"));
    }

    #[test]
    fn pipeline_bindings_pass_params_on_and_from_orders_tasks() {
        let (spec, f) = conv(
            json!({"resources": [{"name": "src", "type": "git"}, {"name": "img", "type": "image"}],
                   "tasks": [{"name": "build", "resources": {"outputs": [{"name": "out", "resource": "img"}]}},
                             {"name": "deploy", "resources": {"inputs": [{"name": "image", "resource": "img", "from": ["build"]}]}}]}),
            pipeline_spec,
        );
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(spec["tasks"][1]["runAfter"], json!(["build"]));
        assert_eq!(
            spec["tasks"][1]["params"][0],
            json!({"name": "resource-image-url", "value": "$(params.resource-img-url)"})
        );
        assert_eq!(spec["params"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn a_resource_ref_that_is_not_given_is_a_problem_naming_it() {
        let mut spec = json!({"resources": [{"name": "src", "resourceRef": {"name": "missing"}}]});
        let mut f = Findings::default();
        run_spec(
            spec.as_object_mut().unwrap(),
            &FieldPath::from("spec"),
            BindingShape::List,
            &BTreeMap::new(),
            &mut f,
        );
        assert_eq!(
            f.problems[0].path.as_str(),
            "spec.resources[0].resourceRef.name"
        );
    }

    #[test]
    fn taskrun_inputs_and_outputs_become_params_and_a_list_there_is_refused() {
        let known = BTreeMap::from([(
            "img".to_owned(),
            PipelineResource {
                name: "img".into(),
                type_: ResourceType::Image,
                params: BTreeMap::from([("url".to_owned(), "reg/app:1".to_owned())]),
            },
        )]);
        let mut spec =
            json!({"resources": {"outputs": [{"name": "out", "resourceRef": {"name": "img"}}]}});
        let mut f = Findings::default();
        let path = FieldPath::from("spec");
        run_spec(
            spec.as_object_mut().unwrap(),
            &path,
            BindingShape::InputsOutputs,
            &known,
            &mut f,
        );
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(
            spec["params"],
            json!([{"name": "resource-out-url", "value": "reg/app:1"}])
        );

        let mut spec = json!({"resources": [{"name": "out", "resourceRef": {"name": "img"}}]});
        run_spec(
            spec.as_object_mut().unwrap(),
            &path,
            BindingShape::InputsOutputs,
            &known,
            &mut f,
        );
        assert_eq!(f.problems[0].path.as_str(), "spec.resources");
        assert!(f.problems[0].message.contains("inputs and outputs"));
    }
}
