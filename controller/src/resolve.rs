//! Remote resolution, in process: a `taskRef` or `pipelineRef` with a `resolver` is
//! fetched here and what was fetched is recorded as Tekton records it
//! (`status.provenance.refSource`: uri, digest, entryPoint).
//!
//! Built in: `cluster` (Tekton's docs/cluster-resolver.md): a Task, Pipeline or StepAction
//! of another namespace, by the params `kind`, `name` and `namespace`, within the
//! `allowed-namespaces` and outside the `blocked-namespaces` of its configuration.
//! Another resolver's reference fails the run with the reason and what is supported.

use std::collections::BTreeMap;

use kube::Api;
use kube::api::ApiResource;
use kube::core::DynamicObject;
use tektite_api::v1::{Param, ParamValue, RefSource};

/// What a reference asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Task,
    Pipeline,
    StepAction,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Task => "task",
            Kind::Pipeline => "pipeline",
            Kind::StepAction => "stepaction",
        }
    }

    fn resource(self) -> ApiResource {
        let (kind, version, plural) = match self {
            Kind::Task => ("Task", "v1", "tasks"),
            Kind::Pipeline => ("Pipeline", "v1", "pipelines"),
            Kind::StepAction => ("StepAction", "v1beta1", "stepactions"),
        };
        ApiResource {
            group: "tekton.dev".into(),
            version: version.into(),
            api_version: format!("tekton.dev/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        }
    }
}

/// The cluster resolver's settings (Tekton's `cluster-resolver-config` keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterConfig {
    pub default_namespace: Option<String>,
    /// Empty: every namespace not blocked.
    pub allowed: Vec<String>,
    /// `*` blocks every namespace not allowed.
    pub blocked: Vec<String>,
}

impl ClusterConfig {
    pub fn from_config(data: &BTreeMap<String, String>) -> ClusterConfig {
        let list = |key: &str| {
            data.get(key)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        ClusterConfig {
            default_namespace: data
                .get("default-namespace")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
            allowed: list("allowed-namespaces"),
            blocked: list("blocked-namespaces"),
        }
    }

    /// Whether a reference may read namespace `ns`.
    fn permits(&self, ns: &str) -> Result<(), String> {
        let allowed = self.allowed.iter().any(|a| a == ns);
        let blocked = self.blocked.iter().any(|b| b == ns || b == "*");
        if !self.allowed.is_empty() && !allowed {
            return Err(format!(
                "the cluster resolver may read only namespaces {} (allowed-namespaces), not {ns:?}",
                self.allowed.join(", ")
            ));
        }
        if blocked && !allowed {
            return Err(format!(
                "the cluster resolver may not read namespace {ns:?} (blocked-namespaces)"
            ));
        }
        Ok(())
    }
}

/// Where a `cluster` reference points: kind, namespace, name; or why it cannot be had.
pub fn cluster_target(
    params: &[Param],
    wanted: Kind,
    run_namespace: &str,
    config: &ClusterConfig,
) -> Result<(String, String), String> {
    let get = |name: &str| {
        params
            .iter()
            .find(|p| p.name == name)
            .map(|p| match &p.value {
                ParamValue::String(s) => Ok(s.clone()),
                _ => Err(format!(
                    "the cluster resolver's param {name:?} must be a string"
                )),
            })
    };
    if let Some(p) = params
        .iter()
        .find(|p| !["kind", "name", "namespace", "cache"].contains(&p.name.as_str()))
    {
        return Err(format!(
            "the cluster resolver takes the params kind, name, namespace and cache, not {:?}",
            p.name
        ));
    }
    let kind = get("kind")
        .transpose()?
        .unwrap_or_else(|| wanted.name().into());
    if kind != wanted.name() {
        return Err(format!(
            "the reference asks the cluster resolver for a {kind}; it needs a {}",
            wanted.name()
        ));
    }
    let name = get("name")
        .transpose()?
        .filter(|n| !n.is_empty())
        .ok_or("the cluster resolver needs the param \"name\"")?;
    let ns = get("namespace")
        .transpose()?
        .filter(|n| !n.is_empty())
        .or_else(|| config.default_namespace.clone())
        .unwrap_or_else(|| run_namespace.to_owned());
    config.permits(&ns)?;
    Ok((ns, name))
}

/// What the cluster resolver fetched: the object's `spec`, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetched {
    pub spec: serde_json::Value,
    pub source: RefSource,
}

/// Fetches `wanted` `name` from namespace `ns`: `Ok(None)` when there is none.
pub async fn fetch_cluster(
    client: &kube::Client,
    wanted: Kind,
    ns: &str,
    name: &str,
) -> Result<Option<Fetched>, kube::Error> {
    let resource = wanted.resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let Some(object) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let spec = object.data.get("spec").cloned().unwrap_or_default();
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        &serde_json::to_vec(&spec).unwrap_or_default(),
    );
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(Fetched {
        spec,
        source: RefSource {
            uri: Some(format!(
                "/apis/{}/namespaces/{ns}/{}/{name}@{uid}",
                resource.api_version, resource.plural
            )),
            digest: BTreeMap::from([("sha256".to_owned(), hex)]),
            entry_point: Some(name.to_owned()),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<Param> {
        pairs
            .iter()
            .map(|(n, v)| Param {
                name: (*n).into(),
                value: ParamValue::String((*v).into()),
            })
            .collect()
    }

    #[test]
    fn a_cluster_reference_names_its_namespace_or_takes_the_runs() {
        let c = ClusterConfig::default();
        assert_eq!(
            cluster_target(
                &params(&[("kind", "task"), ("name", "lint"), ("namespace", "shared")]),
                Kind::Task,
                "ci",
                &c
            ),
            Ok(("shared".into(), "lint".into()))
        );
        assert_eq!(
            cluster_target(&params(&[("name", "lint")]), Kind::Task, "ci", &c),
            Ok(("ci".into(), "lint".into()))
        );
        let c = ClusterConfig::from_config(&BTreeMap::from([(
            "default-namespace".into(),
            "catalog".into(),
        )]));
        assert_eq!(
            cluster_target(&params(&[("name", "lint")]), Kind::Task, "ci", &c),
            Ok(("catalog".into(), "lint".into()))
        );
    }

    #[test]
    fn bad_params_and_namespaces_outside_the_lists_are_refused_with_why() {
        let c = ClusterConfig::default();
        let err =
            |p: &[(&str, &str)], kind| cluster_target(&params(p), kind, "ci", &c).unwrap_err();
        assert!(
            err(&[("kind", "pipeline"), ("name", "x")], Kind::Task)
                .contains("asks the cluster resolver for a pipeline; it needs a task")
        );
        assert!(err(&[("kind", "task")], Kind::Task).contains("needs the param \"name\""));
        assert!(err(&[("name", "x"), ("url", "y")], Kind::Task).contains("not \"url\""));

        let c = ClusterConfig::from_config(&BTreeMap::from([(
            "allowed-namespaces".into(),
            "catalog, shared".into(),
        )]));
        assert!(
            cluster_target(
                &params(&[("name", "x"), ("namespace", "shared")]),
                Kind::Task,
                "ci",
                &c
            )
            .is_ok()
        );
        let why = cluster_target(
            &params(&[("name", "x"), ("namespace", "secret")]),
            Kind::Task,
            "ci",
            &c,
        )
        .unwrap_err();
        assert_eq!(
            why,
            "the cluster resolver may read only namespaces catalog, shared (allowed-namespaces), not \"secret\""
        );

        let c = ClusterConfig::from_config(&BTreeMap::from([
            ("blocked-namespaces".into(), "*".into()),
            ("allowed-namespaces".into(), "catalog".into()),
        ]));
        assert!(
            cluster_target(
                &params(&[("name", "x"), ("namespace", "catalog")]),
                Kind::Task,
                "ci",
                &c
            )
            .is_ok()
        );
        assert!(cluster_target(&params(&[("name", "x")]), Kind::Task, "ci", &c).is_err());
        let c = ClusterConfig::from_config(&BTreeMap::from([(
            "blocked-namespaces".into(),
            "kube-system".into(),
        )]));
        let why = cluster_target(
            &params(&[("name", "x"), ("namespace", "kube-system")]),
            Kind::Task,
            "ci",
            &c,
        )
        .unwrap_err();
        assert!(why.contains("(blocked-namespaces)"), "{why}");
    }
}
