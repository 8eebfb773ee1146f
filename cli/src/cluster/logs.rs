//! `logs [-f]`: every step of every task, in order, from the pods/log API.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde_json::Value;

use super::{Cluster, Error, Kind};

/// How often a followed run is looked at again for new TaskRuns and started steps.
const POLL: Duration = Duration::from_millis(500);

/// One TaskRun's steps: (step, container) in order.
fn steps(tr: &Value) -> Vec<(String, String)> {
    let reported: Vec<(String, String)> = tr["status"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let name = s["name"].as_str()?.to_owned();
            let container = s["container"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("step-{name}"));
            Some((name, container))
        })
        .collect();
    if !reported.is_empty() {
        return reported;
    }
    let spec = if tr["status"]["taskSpec"].is_object() {
        &tr["status"]["taskSpec"]
    } else {
        &tr["spec"]["taskSpec"]
    };
    spec["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, s)| {
            let name = s["name"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("unnamed-{i}"));
            (name.clone(), format!("step-{name}"))
        })
        .collect()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn done(run: &Value) -> bool {
    run["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Succeeded" && c["status"] != "Unknown")
}

/// The prefix of a step's lines: `[task : step]` in a PipelineRun, `[step]` alone.
fn prefix(tr: &Value, step: &str, in_pipeline: bool) -> String {
    if in_pipeline {
        let task = tr["metadata"]["labels"][tektite_api::labels::PIPELINE_TASK]
            .as_str()
            .unwrap_or_else(|| name(tr));
        format!("[{task} : {step}]")
    } else {
        format!("[{step}]")
    }
}

/// `logs`: a TaskRun's steps, or a PipelineRun's TaskRuns' in the order they started.
pub async fn print(c: &Cluster, kind: Kind, run: &Value, follow: bool) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &c.namespace);
    match kind {
        Kind::TaskRun => task_run(c, &pods, run.clone(), false, follow).await,
        _ => {
            let selector = format!("{}={}", tektite_api::labels::PIPELINE_RUN, name(run));
            let mut shown = BTreeSet::new();
            let mut run = run.clone();
            loop {
                let mut trs = c.list(Kind::TaskRun, Some(&selector)).await?;
                trs.sort_by_key(|t| {
                    t["status"]["startTime"]
                        .as_str()
                        .or(t["metadata"]["creationTimestamp"].as_str())
                        .unwrap_or_default()
                        .to_owned()
                });
                let new: Vec<Value> = trs
                    .into_iter()
                    .filter(|t| !shown.contains(name(t)))
                    .collect();
                if new.is_empty() && !follow {
                    if shown.is_empty() {
                        eprintln!("tkt: PipelineRun {:?} has no TaskRuns yet", name(&run));
                    }
                    return Ok(());
                }
                for tr in new {
                    shown.insert(name(&tr).to_owned());
                    task_run(c, &pods, tr, true, follow).await?;
                }
                if !follow {
                    return Ok(());
                }
                if done(&run) {
                    // Its last TaskRuns may have been created after the list above.
                    let last = c.list(Kind::TaskRun, Some(&selector)).await?;
                    if last.iter().all(|t| shown.contains(name(t))) {
                        return Ok(());
                    }
                    continue;
                }
                tokio::time::sleep(POLL).await;
                run = c.get(Kind::PipelineRun, name(&run)).await?;
            }
        }
    }
}

/// One TaskRun's steps' logs; `follow`: waits for its Pod and each step, and streams.
async fn task_run(
    c: &Cluster,
    pods: &Api<Pod>,
    mut tr: Value,
    in_pipeline: bool,
    follow: bool,
) -> Result<(), Error> {
    let tr_name = name(&tr).to_owned();
    loop {
        if tr["status"]["podName"]
            .as_str()
            .is_some_and(|p| !p.is_empty())
        {
            break;
        }
        if !follow || done(&tr) {
            eprintln!(
                "tkt: TaskRun {tr_name:?} has no Pod{}",
                if done(&tr) { "" } else { " yet" }
            );
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
        tr = c.get(Kind::TaskRun, &tr_name).await?;
    }
    let pod = tr["status"]["podName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for (step, container) in steps(&tr) {
        let prefix = prefix(&tr, &step, in_pipeline);
        if follow {
            match started(pods, &pod, &container).await {
                Start::Started => {}
                Start::Never => continue,
                Start::Gone => {
                    eprintln!(
                        "tkt: the Pod {pod:?} of TaskRun {tr_name:?} is gone, and its logs with it"
                    );
                    return Ok(());
                }
            }
        }
        let params = LogParams {
            container: Some(container.clone()),
            follow,
            ..LogParams::default()
        };
        let gone = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
        if follow {
            let stream = match pods.log_stream(&pod, &params).await {
                Ok(s) => s,
                Err(e) if gone(&e) => {
                    eprintln!(
                        "tkt: the Pod {pod:?} of TaskRun {tr_name:?} is gone, and its logs with it"
                    );
                    return Ok(());
                }
                Err(e) => return Err(c.error(e, Kind::TaskRun, &tr_name)),
            };
            let mut lines = stream.lines();
            while let Some(line) = lines
                .try_next()
                .await
                .map_err(|e| Error::Api(format!("reading the log of {pod}/{container}: {e}")))?
            {
                println!("{prefix} {line}");
            }
        } else {
            match pods.logs(&pod, &params).await {
                Ok(text) => {
                    for line in text.lines() {
                        println!("{prefix} {line}");
                    }
                }
                Err(e) if gone(&e) => {
                    eprintln!(
                        "tkt: the Pod {pod:?} of TaskRun {tr_name:?} is gone, and its logs with it"
                    );
                    return Ok(());
                }
                // A step that has not started has no log yet.
                Err(kube::Error::Api(s)) if s.code == 400 => {}
                Err(e) => return Err(c.error(e, Kind::TaskRun, &tr_name)),
            }
        }
    }
    Ok(())
}

/// Whether a step's container has a log to follow.
enum Start {
    /// It has started (or ended).
    Started,
    /// The Pod ended without starting it.
    Never,
    /// The Pod is gone.
    Gone,
}

/// Waits until `container` of `pod` has started (or ended), or never will.
async fn started(pods: &Api<Pod>, pod: &str, container: &str) -> Start {
    loop {
        let p = match pods.get(pod).await {
            Ok(p) => p,
            Err(kube::Error::Api(s)) if s.code == 404 => return Start::Gone,
            Err(_) => return Start::Never,
        };
        let status = p.status.unwrap_or_default();
        let state = status
            .container_statuses
            .iter()
            .flatten()
            .find(|s| s.name == container)
            .and_then(|s| s.state.clone());
        if state.is_some_and(|s| s.running.is_some() || s.terminated.is_some()) {
            return Start::Started;
        }
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return Start::Never;
        }
        tokio::time::sleep(POLL).await;
    }
}
