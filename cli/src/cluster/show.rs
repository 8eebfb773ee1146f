//! `list` and `describe`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::text::{ago, duration, or_dashes, status, table, value};
use super::{Cluster, Error, Kind, Output};

/// Runs newest first: by start time, else creation.
pub fn newest_first(runs: &mut [Value]) {
    let when = |r: &Value| {
        r["status"]["startTime"]
            .as_str()
            .or(r["metadata"]["creationTimestamp"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    runs.sort_by_key(|r| std::cmp::Reverse(when(r)));
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// `list`: one request.
pub async fn list(
    c: &Cluster,
    kind: Kind,
    output: Option<Output>,
    limit: Option<usize>,
) -> Result<(), Error> {
    let mut items = c.list(kind, None).await?;
    let run = matches!(kind, Kind::PipelineRun | Kind::TaskRun);
    if run {
        newest_first(&mut items);
    } else {
        items.sort_by(|a, b| name(a).cmp(name(b)));
    }
    if let Some(n) = limit {
        items.truncate(n);
    }
    for item in &mut items {
        item["apiVersion"] = json!("tekton.dev/v1");
        item["kind"] = json!(kind.name());
    }
    let list = || json!({"apiVersion": "tekton.dev/v1", "kind": format!("{}List", kind.name()), "items": items});
    match output {
        Some(Output::Json) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&list()).unwrap_or_default()
            );
            return Ok(());
        }
        Some(Output::Yaml) => {
            print!("{}", serde_saphyr::to_string(&list()).unwrap_or_default());
            return Ok(());
        }
        Some(Output::Name) => {
            for item in &items {
                println!("{}.tekton.dev/{}", kind.name().to_lowercase(), name(item));
            }
            return Ok(());
        }
        None => {}
    }
    if items.is_empty() {
        let place = if c.all {
            "in any namespace".to_owned()
        } else {
            format!("in namespace {:?}", c.namespace)
        };
        println!("No {}s found {place}", kind.name());
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut header: Vec<String> = Vec::new();
    if c.all {
        header.push("NAMESPACE".into());
    }
    if run {
        header.extend(["NAME", "STARTED", "DURATION", "STATUS"].map(String::from));
    } else {
        header.extend(["NAME", "AGE"].map(String::from));
    }
    rows.push(header);
    for item in &items {
        let mut row = Vec::new();
        if c.all {
            row.push(
                item["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        row.push(name(item).to_owned());
        if run {
            let s = &item["status"];
            row.push(ago(&s["startTime"], c.now));
            row.push(duration(&s["startTime"], &s["completionTime"]));
            row.push(status(item));
        } else {
            row.push(ago(&item["metadata"]["creationTimestamp"], c.now));
        }
        rows.push(row);
    }
    print!("{}", table(&rows));
    Ok(())
}

/// `describe`: the run, and (a PipelineRun's) its TaskRuns in one more request.
pub async fn describe(c: &Cluster, kind: Kind, run: &Value) -> Result<(), Error> {
    let children = match kind {
        Kind::PipelineRun => {
            let selector = format!("{}={}", tektite_api::labels::PIPELINE_RUN, name(run));
            c.list(Kind::TaskRun, Some(&selector)).await?
        }
        _ => Vec::new(),
    };
    print!("{}", describe_text(kind, run, &children, c.now));
    Ok(())
}

fn section(out: &mut String, title: &str, empty: &str, rows: Vec<Vec<String>>) {
    let _ = writeln!(out, "\n{title}\n");
    if rows.len() <= 1 {
        let _ = writeln!(out, " {empty}");
        return;
    }
    for line in table(&rows).lines() {
        let _ = writeln!(out, " {line}");
    }
}

/// What `describe` prints for `run`, with a PipelineRun's TaskRuns.
fn describe_text(kind: Kind, run: &Value, children: &[Value], now: jiff::Timestamp) -> String {
    let spec = &run["spec"];
    let st = &run["status"];
    let mut out = String::new();
    let (reference, account, timeout) = match kind {
        Kind::PipelineRun => (
            ("Pipeline Ref:", &spec["pipelineRef"]["name"]),
            &spec["taskRunTemplate"]["serviceAccountName"],
            &spec["timeouts"]["pipeline"],
        ),
        _ => (
            ("Task Ref:", &spec["taskRef"]["name"]),
            &spec["serviceAccountName"],
            &spec["timeout"],
        ),
    };
    let mut head = vec![
        vec!["Name:".into(), name(run).to_owned()],
        vec![
            "Namespace:".into(),
            or_dashes(&run["metadata"]["namespace"]),
        ],
    ];
    let referenced = if reference.1.is_string() {
        or_dashes(reference.1)
    } else if spec.get("pipelineSpec").is_some() || spec.get("taskSpec").is_some() {
        "(embedded)".into()
    } else {
        match (
            &spec["pipelineRef"]["resolver"],
            &spec["taskRef"]["resolver"],
        ) {
            (Value::String(r), _) | (_, Value::String(r)) => format!("(resolver {r})"),
            _ => "---".into(),
        }
    };
    head.push(vec![reference.0.into(), referenced]);
    head.push(vec!["Service Account:".into(), or_dashes(account)]);
    head.push(vec!["Timeout:".into(), or_dashes(timeout)]);
    out.push_str(&table(&head));
    let labels = run["metadata"]["labels"].as_object();
    let _ = writeln!(out, "Labels:");
    match labels.filter(|l| !l.is_empty()) {
        Some(l) => {
            for (k, v) in l {
                let _ = writeln!(out, " {k}={}", v.as_str().unwrap_or_default());
            }
        }
        None => {
            let _ = writeln!(out, " No labels");
        }
    }
    let _ = writeln!(out, "\nStatus\n");
    out.push_str(&table(&[
        vec!["STARTED".into(), "DURATION".into(), "STATUS".into()],
        vec![
            ago(&st["startTime"], now),
            duration(&st["startTime"], &st["completionTime"]),
            status(run),
        ],
    ]));
    if let Some(message) = st["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Succeeded"))
        .and_then(|c| c["message"].as_str())
        .filter(|m| !m.is_empty())
    {
        let _ = writeln!(out, "\nMessage\n\n {message}");
    }
    let rows = |list: &Value, cells: &dyn Fn(&Value) -> Vec<String>, header: &[&str]| {
        let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
        for item in list.as_array().into_iter().flatten() {
            let mut row = cells(item);
            row[0] = format!("∙ {}", row[0]);
            rows.push(row);
        }
        rows
    };
    let param = |p: &Value| vec![or_dashes(&p["name"]), value(&p["value"])];
    section(
        &mut out,
        "Params",
        "No params",
        rows(&spec["params"], &param, &["NAME", "VALUE"]),
    );
    section(
        &mut out,
        "Results",
        "No results",
        rows(&st["results"], &param, &["NAME", "VALUE"]),
    );
    let workspace = |w: &Value| {
        let binding = [
            "emptyDir",
            "persistentVolumeClaim",
            "volumeClaimTemplate",
            "configMap",
            "secret",
            "projected",
            "csi",
        ]
        .iter()
        .find(|k| w.get(**k).is_some())
        .map(|k| match *k {
            "persistentVolumeClaim" => {
                format!("PVC ({})", w[*k]["claimName"].as_str().unwrap_or_default())
            }
            "configMap" => format!("ConfigMap ({})", w[*k]["name"].as_str().unwrap_or_default()),
            "secret" => format!(
                "Secret ({})",
                w[*k]["secretName"].as_str().unwrap_or_default()
            ),
            "emptyDir" => "EmptyDir".into(),
            "volumeClaimTemplate" => "VolumeClaimTemplate".into(),
            other => other.to_owned(),
        })
        .unwrap_or_else(|| "---".into());
        vec![or_dashes(&w["name"]), or_dashes(&w["subPath"]), binding]
    };
    section(
        &mut out,
        "Workspaces",
        "No workspaces",
        rows(
            &spec["workspaces"],
            &workspace,
            &["NAME", "SUB PATH", "WORKSPACE BINDING"],
        ),
    );
    match kind {
        Kind::PipelineRun => {
            let skipped = |s: &Value| vec![or_dashes(&s["name"]), or_dashes(&s["reason"])];
            section(
                &mut out,
                "Skipped Tasks",
                "No skipped tasks",
                rows(&st["skippedTasks"], &skipped, &["NAME", "REASON"]),
            );
            let child = |r: &Value| {
                let tr = children
                    .iter()
                    .find(|t| name(t) == r["name"].as_str().unwrap_or_default());
                let (started, took, state) = match tr {
                    Some(t) => (
                        ago(&t["status"]["startTime"], now),
                        duration(&t["status"]["startTime"], &t["status"]["completionTime"]),
                        status(t),
                    ),
                    None => ("---".into(), "---".into(), "---".into()),
                };
                vec![
                    or_dashes(&r["name"]),
                    or_dashes(&r["pipelineTaskName"]),
                    started,
                    took,
                    state,
                ]
            };
            section(
                &mut out,
                "TaskRuns",
                "No taskruns",
                rows(
                    &st["childReferences"],
                    &child,
                    &["NAME", "TASK NAME", "STARTED", "DURATION", "STATUS"],
                ),
            );
        }
        _ => {
            let container = |s: &Value| {
                let state = if let Some(t) = s.get("terminated") {
                    let reason = t["reason"].as_str().unwrap_or_default();
                    (
                        if reason.is_empty() {
                            "Terminated".into()
                        } else {
                            reason.to_owned()
                        },
                        duration(&t["startedAt"], &t["finishedAt"]),
                    )
                } else if s.get("running").is_some() {
                    ("Running".into(), "---".into())
                } else {
                    ("Waiting".into(), "---".into())
                };
                vec![or_dashes(&s["name"]), state.0, state.1]
            };
            section(
                &mut out,
                "Steps",
                "No steps",
                rows(&st["steps"], &container, &["NAME", "STATUS", "DURATION"]),
            );
            section(
                &mut out,
                "Sidecars",
                "No sidecars",
                rows(&st["sidecars"], &container, &["NAME", "STATUS", "DURATION"]),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipelinerun_reads_as_tkn_describes_it() {
        let now: jiff::Timestamp = "2026-12-03T10:10:00Z".parse().unwrap();
        let run = json!({
            "metadata": {"name": "ship-run", "namespace": "ci", "labels": {"tekton.dev/pipeline": "ship"}},
            "spec": {"pipelineRef": {"name": "ship"}, "params": [{"name": "tags", "value": ["a", "b"]}],
                     "workspaces": [{"name": "src", "persistentVolumeClaim": {"claimName": "cache"}}],
                     "taskRunTemplate": {"serviceAccountName": "builder"}, "timeouts": {"pipeline": "1h0m0s"}},
            "status": {"startTime": "2026-12-03T10:00:00Z", "completionTime": "2026-12-03T10:01:30Z",
                "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 1"}],
                "skippedTasks": [{"name": "notify", "reason": "When Expressions evaluated to false"}],
                "childReferences": [{"kind": "TaskRun", "name": "ship-run-build", "pipelineTaskName": "build"}]}
        });
        let tr = json!({"metadata": {"name": "ship-run-build"},
            "status": {"startTime": "2026-12-03T10:00:01Z", "completionTime": "2026-12-03T10:01:29Z",
                "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}});
        let text = describe_text(Kind::PipelineRun, &run, &[tr], now);
        let expected = "\
Name:              ship-run
Namespace:         ci
Pipeline Ref:      ship
Service Account:   builder
Timeout:           1h0m0s
Labels:
 tekton.dev/pipeline=ship

Status

STARTED          DURATION   STATUS
10 minutes ago   1m30s      Succeeded

Message

 Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 1

Params

 NAME     VALUE
 ∙ tags   [\"a\",\"b\"]

Results

 No results

Workspaces

 NAME    SUB PATH   WORKSPACE BINDING
 ∙ src   ---        PVC (cache)

Skipped Tasks

 NAME       REASON
 ∙ notify   When Expressions evaluated to false

TaskRuns

 NAME               TASK NAME   STARTED         DURATION   STATUS
 ∙ ship-run-build   build       9 minutes ago   1m28s      Succeeded
";
        assert_eq!(text, expected);
    }
}
