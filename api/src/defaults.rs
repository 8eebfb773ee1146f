//! Tekton's defaults, written into a document at admission so that what a user reads back
//! with `kubectl get -o yaml` is what will run: a run's timeout and service account, the
//! managed-by label, a reference's kind, and the type of every param and result that
//! does not name one. The values come from a `config-defaults`-style ConfigMap.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::document::Object;
use crate::labels;
use crate::v1::{
    self, ParamSpec, ParamType, PipelineResult, PipelineSpec, PipelineTask, TaskRef, TaskResult,
    TaskSpec, TimeoutFields,
};

/// The ConfigMap keys, as Tekton's `config-defaults` names them.
pub const TIMEOUT_MINUTES: &str = "default-timeout-minutes";
pub const SERVICE_ACCOUNT: &str = "default-service-account";
pub const MANAGED_BY_VALUE: &str = "default-managed-by-label-value";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// A run's timeout when it gives none (Tekton: 60 minutes; zero is no timeout).
    pub timeout: Duration,
    pub service_account: String,
    /// The `app.kubernetes.io/managed-by` label of a run that has none.
    pub managed_by: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout: Duration::from_secs(60 * 60),
            service_account: "default".into(),
            managed_by: labels::MANAGED_BY_TEKTITE.into(),
        }
    }
}

impl Defaults {
    /// The defaults a ConfigMap's data gives, the built-in ones where it says nothing; an
    /// error names each key whose value cannot be used.
    pub fn from_config(data: &BTreeMap<String, String>) -> Result<Defaults, Vec<String>> {
        let mut d = Defaults::default();
        let mut errors = Vec::new();
        if let Some(v) = data.get(TIMEOUT_MINUTES) {
            match v.trim().parse::<u64>() {
                Ok(m) => d.timeout = Duration::from_secs(m * 60),
                Err(_) => errors.push(format!(
                    "{TIMEOUT_MINUTES}: {v:?} is not a whole number of minutes"
                )),
            }
        }
        if let Some(v) = data.get(SERVICE_ACCOUNT) {
            match crate::validate::dns_subdomain(v.trim()) {
                Ok(()) => d.service_account = v.trim().to_owned(),
                Err(why) => errors.push(format!("{SERVICE_ACCOUNT}: {v:?} {why}")),
            }
        }
        if let Some(v) = data.get(MANAGED_BY_VALUE) {
            if v.trim().is_empty() {
                errors.push(format!("{MANAGED_BY_VALUE}: the label value is empty"));
            } else {
                d.managed_by = v.trim().to_owned();
            }
        }
        if errors.is_empty() {
            Ok(d)
        } else {
            Err(errors)
        }
    }
}

/// Writes the defaults into `object`.
pub fn apply(object: &mut Object, d: &Defaults) {
    let managed = |labels_map: &mut Option<BTreeMap<String, String>>| {
        labels_map
            .get_or_insert_with(BTreeMap::new)
            .entry(labels::MANAGED_BY.into())
            .or_insert_with(|| d.managed_by.clone());
    };
    match object {
        Object::Task(t) => task_spec(&mut t.spec),
        Object::Pipeline(p) => pipeline_spec(&mut p.spec),
        Object::TaskRun(tr) => {
            managed(&mut tr.metadata.labels);
            let s = &mut tr.spec;
            s.timeout
                .get_or_insert_with(|| v1::Duration::from(d.timeout));
            if s.service_account_name.as_deref().is_none_or(str::is_empty) {
                s.service_account_name = Some(d.service_account.clone());
            }
            if let Some(r) = &mut s.task_ref {
                task_ref(r);
            }
            if let Some(spec) = &mut s.task_spec {
                task_spec(spec);
            }
        }
        Object::PipelineRun(pr) => {
            managed(&mut pr.metadata.labels);
            let s = &mut pr.spec;
            let timeouts = s.timeouts.get_or_insert_with(TimeoutFields::default);
            timeouts
                .pipeline
                .get_or_insert_with(|| v1::Duration::from(d.timeout));
            let template = s.task_run_template.get_or_insert_with(Default::default);
            if template
                .service_account_name
                .as_deref()
                .is_none_or(str::is_empty)
            {
                template.service_account_name = Some(d.service_account.clone());
            }
            if let Some(spec) = &mut s.pipeline_spec {
                pipeline_spec(spec);
            }
        }
        _ => {}
    }
}

fn params(list: &mut [ParamSpec]) {
    for p in list {
        if p.type_.is_none() {
            p.type_ = Some(p.effective_type());
        }
    }
}

fn task_ref(r: &mut TaskRef) {
    if r.name.is_some() && r.kind.is_none() && r.resolver.is_none() && !r.is_custom() {
        r.kind = Some("Task".into());
    }
}

fn task_spec(spec: &mut TaskSpec) {
    params(&mut spec.params);
    for r in &mut spec.results {
        result(r);
    }
}

fn result(r: &mut TaskResult) {
    if r.type_.is_none() {
        r.type_ = Some(if r.properties.is_some() {
            ParamType::Object
        } else {
            ParamType::String
        });
    }
}

fn pipeline_result(r: &mut PipelineResult) {
    if r.type_.is_none() {
        r.type_ = Some(r.value.param_type());
    }
}

fn pipeline_spec(spec: &mut PipelineSpec) {
    params(&mut spec.params);
    for r in &mut spec.results {
        pipeline_result(r);
    }
    for t in spec.tasks.iter_mut().chain(spec.finally.iter_mut()) {
        pipeline_task(t);
    }
}

fn pipeline_task(t: &mut PipelineTask) {
    if let Some(r) = &mut t.task_ref {
        task_ref(r);
    }
    if let Some(e) = &mut t.task_spec
        && !e.is_custom()
    {
        task_spec(&mut e.task);
    }
    if let Some(p) = &mut t.pipeline_spec {
        pipeline_spec(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Source, load};

    fn one(yaml: &str) -> Object {
        let mut docs = load(&[Source {
            name: "t",
            text: yaml,
        }]);
        docs.remove(0).object.unwrap()
    }

    fn json(o: &Object) -> serde_json::Value {
        match o {
            Object::TaskRun(t) => serde_json::to_value(t).unwrap(),
            Object::PipelineRun(p) => serde_json::to_value(p).unwrap(),
            Object::Pipeline(p) => serde_json::to_value(p).unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_task_run_gets_its_timeout_account_label_kind_and_types() {
        let mut o = one(
            "apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: t}\nspec:\n  taskSpec:\n    params: [{name: count}, {name: list, default: [a]}]\n    results: [{name: r}, {name: o, properties: {k: {type: string}}}]\n    steps: [{name: s, image: alpine, script: 'true'}]\n",
        );
        apply(&mut o, &Defaults::default());
        let v = json(&o);
        assert_eq!(v["spec"]["timeout"], "1h0m0s");
        assert_eq!(v["spec"]["serviceAccountName"], "default");
        assert_eq!(
            v["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "tektite"
        );
        let spec = &v["spec"]["taskSpec"];
        assert_eq!(spec["params"][0]["type"], "string");
        assert_eq!(spec["params"][1]["type"], "array");
        assert_eq!(spec["results"][0]["type"], "string");
        assert_eq!(spec["results"][1]["type"], "object");

        // What is given stays; applying twice changes nothing more.
        let mut given = one(
            "apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: t, labels: {app.kubernetes.io/managed-by: me}}\nspec:\n  timeout: 0s\n  serviceAccountName: builder\n  taskRef: {name: build}\n",
        );
        apply(&mut given, &Defaults::default());
        let once = json(&given);
        apply(&mut given, &Defaults::default());
        assert_eq!(json(&given), once);
        assert_eq!(once["spec"]["timeout"], "0s");
        assert_eq!(once["spec"]["serviceAccountName"], "builder");
        assert_eq!(
            once["spec"]["taskRef"],
            serde_json::json!({"name": "build", "kind": "Task"})
        );
        assert_eq!(
            once["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "me"
        );
    }

    #[test]
    fn a_pipeline_run_gets_its_pipeline_timeout_and_the_template_account() {
        let mut o = one(
            "apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: p}\nspec:\n  timeouts: {tasks: 10m}\n  pipelineSpec:\n    params: [{name: x}]\n    tasks: [{name: a, taskRef: {name: t}}]\n",
        );
        let d = Defaults::from_config(&BTreeMap::from([
            (TIMEOUT_MINUTES.into(), "90".into()),
            (SERVICE_ACCOUNT.into(), "ci-bot".into()),
        ]))
        .unwrap();
        apply(&mut o, &d);
        let v = json(&o);
        assert_eq!(
            v["spec"]["timeouts"],
            serde_json::json!({"pipeline": "1h30m0s", "tasks": "10m"})
        );
        assert_eq!(v["spec"]["taskRunTemplate"]["serviceAccountName"], "ci-bot");
        assert_eq!(v["spec"]["pipelineSpec"]["params"][0]["type"], "string");
        assert_eq!(
            v["spec"]["pipelineSpec"]["tasks"][0]["taskRef"]["kind"],
            "Task"
        );
    }

    #[test]
    fn a_config_that_cannot_be_used_names_its_keys() {
        let errors = Defaults::from_config(&BTreeMap::from([
            (TIMEOUT_MINUTES.into(), "an hour".into()),
            (SERVICE_ACCOUNT.into(), "Not_Valid".into()),
            (MANAGED_BY_VALUE.into(), " ".into()),
        ]))
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("default-timeout-minutes: \"an hour\""));
        assert!(errors[1].starts_with("default-service-account: \"Not_Valid\""));
    }
}
