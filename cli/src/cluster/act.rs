//! `start`, `cancel`, `delete`, `rerun`: what changes the cluster.

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};
use tektite_api::v1::ParamType;

use super::{Cluster, Error, Kind, logs};

/// `tkt pipeline|task start NAME`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The Pipeline or Task to run.
    name: String,
    /// A param: NAME=VALUE (arrays as a,b,c; objects as key:value,key2:value2).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A workspace, as tkn writes it: name=NAME,emptyDir= | name=NAME,claimName=PVC |
    /// name=NAME,config=CONFIGMAP | name=NAME,secret=SECRET, each with an optional
    /// subPath=PATH.
    #[arg(short = 'w', long = "workspace", value_name = "name=NAME,...")]
    workspaces: Vec<String>,
    /// The ServiceAccount its TaskRuns run as.
    #[arg(short = 's', long = "serviceaccount", value_name = "NAME")]
    service_account: Option<String>,
    /// Its timeout (e.g. 1h0m0s, 30m).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Follow the run's logs once it is created.
    #[arg(long)]
    showlog: bool,
}

fn run_kind(kind: Kind) -> Kind {
    match kind {
        Kind::Pipeline => Kind::PipelineRun,
        _ => Kind::TaskRun,
    }
}

fn name(o: &Value) -> String {
    o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A workspace binding from tkn's `-w name=NAME,emptyDir=` form.
fn workspace(text: &str) -> Result<Value, Error> {
    let bad = |why: &str| Error::Invalid(format!("-w {text}: {why}"));
    let mut binding = Map::new();
    for part in text.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad("expected key=value pairs"))?;
        match k {
            "name" => binding.insert("name".into(), json!(v)),
            "subPath" => binding.insert("subPath".into(), json!(v)),
            "emptyDir" => binding.insert("emptyDir".into(), json!({})),
            "claimName" => binding.insert("persistentVolumeClaim".into(), json!({"claimName": v})),
            "config" => binding.insert("configMap".into(), json!({"name": v})),
            "secret" => binding.insert("secret".into(), json!({"secretName": v})),
            other => {
                return Err(bad(&format!(
                    "{other:?} is none of name, subPath, emptyDir, claimName, config, secret"
                )));
            }
        };
    }
    if !binding.contains_key("name") {
        return Err(bad("name=NAME is missing"));
    }
    if binding.len() < 2 || (binding.len() == 2 && binding.contains_key("subPath")) {
        return Err(bad(
            "say what it is bound to: emptyDir=, claimName=, config= or secret=",
        ));
    }
    Ok(Value::Object(binding))
}

/// `start`: reads the Pipeline or Task (its params' types; that it exists), creates the run.
pub async fn start(c: &Cluster, kind: Kind, args: &StartArgs) -> Result<(), Error> {
    let def = c.get(kind, &args.name).await?;
    let declared = def["spec"]["params"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut params = Vec::new();
    for p in &args.params {
        let (pname, text) = crate::params::split(p).map_err(Error::Invalid)?;
        let Some(spec) = declared.iter().find(|d| d["name"] == pname.as_str()) else {
            return Err(Error::Invalid(format!(
                "-p {p}: {} {:?} declares no param {pname:?}",
                kind.name(),
                args.name
            )));
        };
        let t = match spec["type"].as_str() {
            Some("array") => ParamType::Array,
            Some("object") => ParamType::Object,
            _ => ParamType::String,
        };
        let v = crate::params::value(&pname, &text, t).map_err(Error::Invalid)?;
        params.push(json!({"name": pname, "value": v}));
    }
    for d in &declared {
        let given = params.iter().any(|p| p["name"] == d["name"]);
        if !given && d.get("default").is_none() {
            return Err(Error::Invalid(format!(
                "param {} has no default: give it with -p {}=VALUE",
                d["name"],
                d["name"].as_str().unwrap_or_default()
            )));
        }
    }
    let workspaces = args
        .workspaces
        .iter()
        .map(|w| workspace(w))
        .collect::<Result<Vec<_>, _>>()?;
    let run_kind = run_kind(kind);
    let mut spec = json!({});
    match kind {
        Kind::Pipeline => {
            spec["pipelineRef"] = json!({"name": args.name});
            if let Some(sa) = &args.service_account {
                spec["taskRunTemplate"] = json!({"serviceAccountName": sa});
            }
            if let Some(t) = &args.timeout {
                spec["timeouts"] = json!({"pipeline": t});
            }
        }
        _ => {
            spec["taskRef"] = json!({"name": args.name});
            if let Some(sa) = &args.service_account {
                spec["serviceAccountName"] = json!(sa);
            }
            if let Some(t) = &args.timeout {
                spec["timeout"] = json!(t);
            }
        }
    }
    if !params.is_empty() {
        spec["params"] = json!(params);
    }
    if !workspaces.is_empty() {
        spec["workspaces"] = json!(workspaces);
    }
    let run = json!({
        "apiVersion": "tekton.dev/v1",
        "kind": run_kind.name(),
        "metadata": {"generateName": format!("{}-run-", args.name), "namespace": c.namespace},
        "spec": spec,
    });
    create(c, run_kind, run, args.showlog).await
}

async fn create(c: &Cluster, kind: Kind, run: Value, showlog: bool) -> Result<(), Error> {
    let object: DynamicObject = serde_json::from_value(run)
        .map_err(|e| Error::Invalid(format!("the run is not an object: {e}")))?;
    let created = c
        .api(kind)
        .create(&PostParams::default(), &object)
        .await
        .map_err(|e| c.error(e, kind, ""))?;
    let created = serde_json::to_value(created).unwrap_or_default();
    let n = name(&created);
    println!("{} started: {n}", kind.name());
    if showlog {
        println!();
        return logs::print(c, kind, &created, true).await;
    }
    let noun = kind.name().to_lowercase();
    println!(
        "\nIn order to track the {} progress run:\ntkt {noun} logs {n} -f -n {}",
        kind.name(),
        c.namespace
    );
    Ok(())
}

/// `cancel`: one read (is it still running?) and one merge patch of `spec.status`.
pub async fn cancel(c: &Cluster, kind: Kind, run_name: &str) -> Result<(), Error> {
    let run = c.get(kind, run_name).await?;
    if run["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Succeeded" && c["status"] != "Unknown")
    {
        return Err(Error::Invalid(format!(
            "{} {run_name:?} has already finished: {}",
            kind.name(),
            super::text::status(&run)
        )));
    }
    let value = match kind {
        Kind::PipelineRun => "Cancelled",
        _ => "TaskRunCancelled",
    };
    c.api(kind)
        .patch(
            run_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"status": value}})),
        )
        .await
        .map_err(|e| c.error(e, kind, run_name))?;
    println!("{} cancelled: {run_name}", kind.name());
    Ok(())
}

/// `delete`: one request per name.
pub async fn delete(c: &Cluster, kind: Kind, names: &[String]) -> Result<(), Error> {
    let api = c.api(kind);
    for n in names {
        api.delete(n, &DeleteParams::default())
            .await
            .map_err(|e| c.error(e, kind, n))?;
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    println!("{}s deleted: {}", kind.name(), quoted.join(", "));
    Ok(())
}

/// `rerun`: a new run with the run's spec (not its cancel), labels and annotations but
/// those the controller and kubectl write.
pub async fn rerun(c: &Cluster, kind: Kind, run: &Value, showlog: bool) -> Result<(), Error> {
    let mut spec = run["spec"].clone();
    if let Some(s) = spec.as_object_mut() {
        s.remove("status");
        s.remove("statusMessage");
    }
    let keep = |map: &Value| -> Map<String, Value> {
        map.as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| {
                !k.starts_with("tekton.dev/")
                    && !k.starts_with("tektite.dev/")
                    && k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let base = run["metadata"]["generateName"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}-", name(run)));
    let again = json!({
        "apiVersion": "tekton.dev/v1",
        "kind": kind.name(),
        "metadata": {
            "generateName": base,
            "namespace": c.namespace,
            "labels": keep(&run["metadata"]["labels"]),
            "annotations": keep(&run["metadata"]["annotations"]),
        },
        "spec": spec,
    });
    create(c, kind, again, showlog).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspaces_read_as_tkn_writes_them() {
        assert_eq!(
            workspace("name=src,claimName=cache,subPath=a").unwrap(),
            json!({"name": "src", "persistentVolumeClaim": {"claimName": "cache"}, "subPath": "a"})
        );
        assert_eq!(
            workspace("name=tmp,emptyDir=").unwrap(),
            json!({"name": "tmp", "emptyDir": {}})
        );
        for bad in [
            "emptyDir=",
            "name=x",
            "name=x,subPath=a",
            "name=x,volume=y",
            "name",
        ] {
            assert!(workspace(bad).is_err(), "{bad}");
        }
    }
}
