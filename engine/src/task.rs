//! A Task made ready to run: the step template merged into every step, and every
//! variable a step may use substituted: params (with the Task's defaults), result and
//! exit-code paths, workspaces, and the TaskRun's context. Step results
//! (`$(steps.<s>.results.<r>)`) are left for the entrypoint, which reads them at run time.

use std::collections::BTreeMap;

use tektite_api::step::layout::{
    ARTIFACTS_FILE, EXIT_CODE_FILE, STEP_ARTIFACTS_DIR, STEP_RESULTS_DIR, step_dir_name,
};
use tektite_api::v1::{Param, Step, StepTemplate, TaskSpec};
use tektite_api::vars::{self, Reference, Resolved, SubstituteError, WorkspaceAttr};

use crate::params::{ParamError, effective_params, select};

/// Who is running the Task, for `$(context...)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskContext {
    pub task_run_name: String,
    pub namespace: String,
    pub uid: String,
    pub task_name: String,
    pub retry_count: u32,
}

/// A workspace as bound for this run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundWorkspace {
    /// Where the steps see it.
    pub path: String,
    /// The PersistentVolumeClaim's name, when it is one.
    pub claim: Option<String>,
    /// The volume's name in the Pod.
    pub volume: String,
}

/// Where the steps find things (`/tekton/...` in a Pod, elsewhere on a laptop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskPaths {
    pub results: String,
    pub steps: String,
    /// The Task's artifacts directory (alpha artifacts).
    pub artifacts: String,
    /// Bound workspaces by name; a declared one missing here is unbound (optional).
    pub workspaces: BTreeMap<String, BoundWorkspace>,
}

impl Default for TaskPaths {
    fn default() -> Self {
        Self {
            results: "/tekton/results".into(),
            steps: "/tekton/steps".into(),
            artifacts: "/tekton/artifacts".into(),
            workspaces: BTreeMap::new(),
        }
    }
}

/// Why a Task cannot be made ready.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error("{field}: {source}")]
    Substitute {
        field: String,
        #[source]
        source: SubstituteError,
    },
    #[error("workspace {0:?} is not optional and was not bound")]
    UnboundWorkspace(String),
}

/// `spec` with its step template merged into its steps and every variable substituted.
pub fn resolve(
    spec: &TaskSpec,
    given: &[Param],
    context: &TaskContext,
    paths: &TaskPaths,
) -> Result<TaskSpec, ResolveError> {
    let params = effective_params(&spec.params, given)?;
    for w in &spec.workspaces {
        if !w.optional && !paths.workspaces.contains_key(&w.name) {
            return Err(ResolveError::UnboundWorkspace(w.name.clone()));
        }
    }
    let lookup = |r: &Reference| -> Option<Resolved> {
        let text = |s: &str| Some(Resolved::Text(s.to_owned()));
        match r {
            Reference::Param { name, selector } => select(params.get(name)?, selector),
            Reference::ResultPath { name } => text(&format!("{}/{name}", paths.results)),
            Reference::ArtifactsPath => text(&format!("{}/{ARTIFACTS_FILE}", paths.artifacts)),
            Reference::CredentialsPath => text(tektite_api::step::creds::CREDS_DIR),
            Reference::StepExitCodePath { step } => {
                let dir = step.strip_prefix("step-").unwrap_or(step);
                text(&format!(
                    "{}/{}/{EXIT_CODE_FILE}",
                    paths.steps,
                    step_dir_name(dir)
                ))
            }
            Reference::Workspace { name, attr } => {
                let bound = paths.workspaces.get(name);
                match attr {
                    WorkspaceAttr::Path => text(bound.map(|b| b.path.as_str()).unwrap_or("")),
                    WorkspaceAttr::Bound => text(if bound.is_some() { "true" } else { "false" }),
                    WorkspaceAttr::Claim => {
                        text(bound.and_then(|b| b.claim.as_deref()).unwrap_or(""))
                    }
                    WorkspaceAttr::Volume => text(bound.map(|b| b.volume.as_str()).unwrap_or("")),
                }
            }
            Reference::Context { object, field } => match (object.as_str(), field.as_str()) {
                ("taskRun", "name") => text(&context.task_run_name),
                ("taskRun", "namespace") => text(&context.namespace),
                ("taskRun", "uid") => text(&context.uid),
                ("task", "name") => text(&context.task_name),
                ("task", "retry-count") => text(&context.retry_count.to_string()),
                _ => None,
            },
            _ => None,
        }
    };
    let mut out = spec.clone();
    out.name_unnamed();
    // As Tekton's passes: params first, then the rest, so that a param's value may
    // itself name a workspace path or the context (a Pipeline passing
    // `$(workspaces.source.path)/Dockerfile` to its Task).
    let in_stages = |item: &mut dyn FnMut(&mut Lookup<'_>) -> Result<(), ResolveError>,
                     own: &dyn Fn(&Reference) -> Option<Resolved>| {
        let params_first = |r: &Reference| matches!(r, Reference::Param { .. });
        item(&mut |r: &Reference| params_first(r).then(|| lookup(r)).flatten())?;
        item(&mut |r: &Reference| {
            if params_first(r) {
                None
            } else {
                own(r).or_else(|| lookup(r))
            }
        })
    };
    let none = |_: &Reference| None;
    for (i, step) in out.steps.iter_mut().enumerate() {
        if let Some(template) = &spec.step_template {
            merge_template(step, template);
        }
        let own_results = format!(
            "{}/{}/{STEP_RESULTS_DIR}",
            paths.steps,
            step_dir_name(&step.name)
        );
        let own_artifacts = format!(
            "{}/{}/{STEP_ARTIFACTS_DIR}/{ARTIFACTS_FILE}",
            paths.steps,
            step_dir_name(&step.name)
        );
        let own = |r: &Reference| match r {
            Reference::OwnStepResultPath { name } => {
                Some(Resolved::Text(format!("{own_results}/{name}")))
            }
            Reference::OwnStepArtifactsPath => Some(Resolved::Text(own_artifacts.clone())),
            _ => None,
        };
        let at = format!("spec.steps[{i}]");
        in_stages(&mut |l| substitute_fields(step, &at, true, l), &own)?;
    }
    for (i, s) in out.sidecars.iter_mut().enumerate() {
        let at = format!("spec.sidecars[{i}]");
        in_stages(&mut |l| substitute_fields(s, &at, true, l), &none)?;
    }
    for (i, v) in out.volumes.iter_mut().enumerate() {
        let at = format!("spec.volumes[{i}]");
        in_stages(&mut |l| substitute_fields(v, &at, false, l), &none)?;
    }
    Ok(out)
}

type Lookup<'l> = dyn FnMut(&Reference) -> Option<Resolved> + 'l;

/// Substitutes every field of `item` (a step, a sidecar, a volume) that Tekton substitutes:
/// every string in it (image, command, args, script, workingDir, env values and their
/// sources' names, volumeMounts, a volume's name and sources, ...), but a container's own
/// `name` when `keep_name`. `at` is its field path, for errors.
fn substitute_fields<T>(
    item: &mut T,
    at: &str,
    keep_name: bool,
    lookup: &mut Lookup<'_>,
) -> Result<(), ResolveError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let misfit = |field: String, message: String| ResolveError::Substitute {
        field,
        source: SubstituteError::Misfit {
            field: at.to_owned(),
            message,
        },
    };
    let mut tree = serde_json::to_value(&*item).map_err(|e| misfit(at.into(), e.to_string()))?;
    let name = if keep_name {
        tree.as_object_mut().and_then(|m| m.remove("name"))
    } else {
        None
    };
    vars::substitute_tree(&mut tree, lookup).map_err(|(path, source)| {
        ResolveError::Substitute {
            field: format!("{at}{path}"),
            source,
        }
    })?;
    if let (Some(name), Some(map)) = (name, tree.as_object_mut()) {
        map.insert("name".into(), name);
    }
    *item = serde_path_to_error::deserialize(tree)
        .map_err(|e| misfit(format!("{at}.{}", e.path()), e.inner().to_string()))?;
    Ok(())
}

/// Tekton's merge: the step's own fields win; env and volume mounts are merged by name
/// and mount path, the step's entries replacing the template's.
fn merge_template(step: &mut Step, t: &StepTemplate) {
    step.image = step.image.take().or_else(|| t.image.clone());
    if step.command.is_empty() {
        step.command = t.command.clone();
        if step.args.is_empty() {
            step.args = t.args.clone();
        }
    }
    step.working_dir = step.working_dir.take().or_else(|| t.working_dir.clone());
    let mut env = t.env.clone();
    for e in std::mem::take(&mut step.env) {
        env.retain(|x| x.name != e.name);
        env.push(e);
    }
    step.env = env;
    let mut env_from = t.env_from.clone();
    env_from.append(&mut step.env_from);
    step.env_from = env_from;
    let mut mounts = t.volume_mounts.clone();
    for m in std::mem::take(&mut step.volume_mounts) {
        mounts.retain(|x| x.mount_path != m.mount_path);
        mounts.push(m);
    }
    step.volume_mounts = mounts;
    step.compute_resources = step
        .compute_resources
        .take()
        .or_else(|| t.compute_resources.clone());
    step.image_pull_policy = step
        .image_pull_policy
        .take()
        .or_else(|| t.image_pull_policy.clone());
    step.security_context = step
        .security_context
        .take()
        .or_else(|| t.security_context.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tektite_api::v1::ParamValue;

    fn spec(v: serde_json::Value) -> TaskSpec {
        serde_json::from_value(v).unwrap()
    }

    fn context() -> TaskContext {
        TaskContext {
            task_run_name: "build-run".into(),
            namespace: "ci".into(),
            uid: "u-1".into(),
            task_name: "build".into(),
            retry_count: 2,
        }
    }

    fn paths() -> TaskPaths {
        TaskPaths {
            workspaces: [(
                "src".to_owned(),
                BoundWorkspace {
                    path: "/workspace/src".into(),
                    claim: Some("cache-pvc".into()),
                    volume: "ws-abc".into(),
                },
            )]
            .into(),
            ..TaskPaths::default()
        }
    }

    #[test]
    fn every_variable_a_step_uses_is_substituted() {
        let task = spec(json!({
            "params": [{"name": "flags", "type": "array", "default": ["-a", "-b"]}, {"name": "who", "default": "world"}],
            "workspaces": [{"name": "src"}, {"name": "cache", "optional": true}],
            "results": [{"name": "digest"}],
            "steps": [{
                "name": "build",
                "image": "alpine:$(params.who)",
                "command": ["make"],
                "args": ["$(params.flags[*])", "--out=$(results.digest.path)"],
                "workingDir": "$(workspaces.src.path)",
                "env": [{"name": "RUN", "value": "$(context.taskRun.name)/$(context.task.retry-count)"}, {"name": "CREDS", "value": "$(credentials.path)"}],
                "script": "echo $(workspaces.cache.bound) $(workspaces.src.claim) > $(step.results.n.path); cat $(steps.step-build.exitCode.path) $(steps.build.results.x)",
            }]
        }));
        let r = resolve(&task, &[], &context(), &paths()).unwrap();
        let s = &r.steps[0];
        assert_eq!(s.image.as_deref(), Some("alpine:world"));
        assert_eq!(s.env[1].value.as_deref(), Some("/tekton/creds"));
        assert_eq!(s.args, ["-a", "-b", "--out=/tekton/results/digest"]);
        assert_eq!(s.working_dir.as_deref(), Some("/workspace/src"));
        assert_eq!(s.env[0].value.as_deref(), Some("build-run/2"));
        assert_eq!(
            s.script.as_deref(),
            Some(
                "echo false cache-pvc > /tekton/steps/step-build/results/n; cat /tekton/steps/step-build/exitCode $(steps.build.results.x)"
            )
        );
    }

    #[test]
    fn volumes_mounts_and_env_sources_are_substituted_as_tekton_substitutes_them() {
        let task = spec(json!({
            "params": [{"name": "cm"}, {"name": "dir", "default": "/etc/conf"}],
            "workspaces": [{"name": "src"}],
            "volumes": [{"name": "$(params.cm)-vol", "configMap": {"name": "$(params.cm)"}}],
            "steps": [{
                "name": "s", "image": "alpine", "command": ["cat"],
                "volumeMounts": [{"name": "$(params.cm)-vol", "mountPath": "$(params.dir)"}],
                "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "$(params.cm)", "key": "k"}}}],
            }],
            "sidecars": [{
                "image": "alpine",
                "volumeMounts": [{"name": "$(workspaces.src.volume)", "mountPath": "$(workspaces.src.path)"}],
            }],
        }));
        let given = [Param {
            name: "cm".into(),
            value: ParamValue::String("settings".into()),
        }];
        let r = resolve(&task, &given, &context(), &paths()).unwrap();
        assert_eq!(r.volumes[0].name, "settings-vol");
        assert_eq!(r.volumes[0].config_map.as_ref().unwrap().name, "settings");
        let m = &r.steps[0].volume_mounts[0];
        assert_eq!(
            (m.name.as_str(), m.mount_path.as_str()),
            ("settings-vol", "/etc/conf")
        );
        let from = r.steps[0].env[0].value_from.as_ref().unwrap();
        assert_eq!(from.config_map_key_ref.as_ref().unwrap().name, "settings");
        let m = &r.sidecars[0].volume_mounts[0];
        assert_eq!(
            (m.name.as_str(), m.mount_path.as_str()),
            ("ws-abc", "/workspace/src")
        );
        // A container's own name is not a place for variables.
        assert_eq!(r.sidecars[0].name, "unnamed-0");
    }

    #[test]
    fn a_variable_that_does_not_fit_its_field_names_the_field() {
        let task = spec(json!({
            "params": [{"name": "list", "type": "array", "default": ["a"]}],
            "steps": [{"name": "s", "image": "alpine", "command": ["true"],
                       "volumeMounts": [{"name": "v", "mountPath": "/x/$(params.list[*])"}]}],
        }));
        let err = resolve(&task, &[], &context(), &paths()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.steps[0].volumeMounts[0].mountPath: "),
            "{err}"
        );
    }

    #[test]
    fn unnamed_steps_and_sidecars_are_named_by_their_index_as_tekton_names_them() {
        let task = spec(json!({
            "steps": [{"script": "a"}, {"name": "b", "script": "b"}, {"script": "$(step.results.r.path)"}],
            "sidecars": [{"image": "redis"}],
        }));
        let r = resolve(&task, &[], &context(), &paths()).unwrap();
        let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["unnamed-0", "b", "unnamed-2"]);
        assert_eq!(r.sidecars[0].name, "unnamed-0");
        assert_eq!(
            r.steps[2].script.as_deref(),
            Some("/tekton/steps/step-unnamed-2/results/r")
        );
    }

    #[test]
    fn given_params_win_and_missing_ones_are_named() {
        let task = spec(
            json!({"params": [{"name": "a"}, {"name": "b"}], "steps": [{"name": "s", "script": "$(params.a)"}]}),
        );
        let given = [Param {
            name: "a".into(),
            value: ParamValue::String("x".into()),
        }];
        let err = resolve(&task, &given, &context(), &paths()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required params (no value and no default): b"
        );
    }

    #[test]
    fn an_unbound_required_workspace_is_an_error() {
        let task = spec(
            json!({"workspaces": [{"name": "out"}], "steps": [{"name": "s", "script": "true"}]}),
        );
        assert_eq!(
            resolve(&task, &[], &context(), &paths()).unwrap_err(),
            ResolveError::UnboundWorkspace("out".into())
        );
    }

    #[test]
    fn an_array_inside_a_string_names_its_field() {
        let task = spec(
            json!({"params": [{"name": "f", "type": "array", "default": ["x"]}], "steps": [{"name": "s", "script": "echo $(params.f)"}]}),
        );
        let err = resolve(&task, &[], &context(), &paths()).unwrap_err();
        assert!(
            err.to_string().starts_with("spec.steps[0].script: "),
            "{err}"
        );
    }

    #[test]
    fn a_param_whose_value_names_a_workspace_path_gets_the_path_but_params_are_read_once() {
        let task = spec(json!({
            "params": [{"name": "file"}, {"name": "literal"}],
            "workspaces": [{"name": "src"}],
            "steps": [{"name": "s", "image": "alpine", "command": ["cat", "$(params.file)", "$(params.literal)"]}],
        }));
        let given = [
            Param {
                name: "file".into(),
                value: ParamValue::String("$(workspaces.src.path)/Dockerfile".into()),
            },
            Param {
                name: "literal".into(),
                value: ParamValue::String("$(params.file)".into()),
            },
        ];
        let r = resolve(&task, &given, &context(), &paths()).unwrap();
        assert_eq!(
            r.steps[0].command,
            ["cat", "/workspace/src/Dockerfile", "$(params.file)"]
        );
    }

    #[test]
    fn the_step_template_fills_in_and_the_step_wins() {
        let task = spec(json!({
            "stepTemplate": {"image": "base", "env": [{"name": "A", "value": "t"}, {"name": "B", "value": "t"}], "workingDir": "/w"},
            "steps": [
                {"name": "one", "env": [{"name": "B", "value": "s"}]},
                {"name": "two", "image": "own", "workingDir": "/own"},
            ]
        }));
        let r = resolve(&task, &[], &context(), &paths()).unwrap();
        assert_eq!(r.steps[0].image.as_deref(), Some("base"));
        let env: Vec<(&str, &str)> = r.steps[0]
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(env, [("A", "t"), ("B", "s")]);
        assert_eq!(r.steps[1].image.as_deref(), Some("own"));
        assert_eq!(r.steps[1].working_dir.as_deref(), Some("/own"));
    }
}
