//! The extender's decisions, pure: the agent registry and the Pod cache in, nodes out.
//!
//! A Pod's [`Placement`] says where it must go (the node of its PipelineRun's earlier
//! Pods, per the coschedule mode) and where it must not (nodes busy with another
//! PipelineRun, in `isolate-pipelinerun`). The filter adds the agents: without a
//! connected agent a node is dropped, unless no node has one at all or the Pod is
//! pinned (its workspace lives there). Pods that are not tektite's pass unfiltered.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::Pod;
use tektite_api::labels;

use super::wire::MAX_EXTENDER_PRIORITY;
use crate::agents::View;
use crate::pod_index::{Indexed, Placed, RunKey};

/// Which Pods of a PipelineRun share a node, as Tekton's `coschedule` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Coschedule {
    /// Pods that bind the same single-node claim go where the first of them ran.
    #[default]
    #[value(name = "workspaces")]
    Workspaces,
    /// All Pods of a PipelineRun go to one node.
    #[value(name = "pipelineruns")]
    PipelineRuns,
    /// As `pipelineruns`, and a node runs one PipelineRun at a time.
    #[value(name = "isolate-pipelinerun")]
    IsolatePipelineRun,
    /// No co-location.
    #[value(name = "disabled")]
    Disabled,
}

impl Coschedule {
    fn name(self) -> &'static str {
        match self {
            Coschedule::Workspaces => "workspaces",
            Coschedule::PipelineRuns => "pipelineruns",
            Coschedule::IsolatePipelineRun => "isolate-pipelinerun",
            Coschedule::Disabled => "disabled",
        }
    }
}

/// Where one Pod may go, from the Pod index and the extender's holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Whether the Pod is tektite's; others pass unfiltered.
    pub ours: bool,
    /// The one node it must go to, and why.
    pub pin: Option<(String, String)>,
    /// In `isolate-pipelinerun`, the Pod's run: nodes busy with another run are out.
    pub isolate: Option<RunKey>,
    /// Nothing of its group (its run, or the single-node claims it binds; else the Pod
    /// alone) is placed or held yet: the filter chooses the one node, the least busy, and
    /// holds it, so that the next Pods see it before the watch does. The reason the other
    /// nodes are given (one text for all of them). None in `disabled`: the scheduler
    /// decides.
    pub first_of: Option<String>,
    /// The node this Pod already holds (the scheduler filters it again).
    pub held: Option<String>,
}

fn is_ours(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::TEKTITE_POD))
        .is_some_and(|v| v == labels::TEKTITE_POD_VALUE)
}

/// Where `pod` may go. `held` are the Pods the extender placed that the index does not
/// show bound yet, each with its chosen node. `node_bound(namespace, claim)` says whether
/// a claim can be used from one node only (ReadWriteOnce, or not known).
pub fn place(
    mode: Coschedule,
    pod: &Pod,
    index: &Indexed,
    held: &[Placed],
    node_bound: impl Fn(&str, &str) -> bool,
) -> Placement {
    let own = Placed::of(pod);
    let mut placement = Placement {
        ours: is_ours(pod),
        held: held
            .iter()
            .find(|h| h.uid == own.uid)
            .and_then(|h| h.node.clone()),
        ..Placement::default()
    };
    if !placement.ours || mode == Coschedule::Disabled {
        return placement;
    }
    let ns = own.namespace.as_str();
    let chosen_for = |group: String| {
        format!(
            "tektite places {group} on one node, the least busy that passed (coschedule: {})",
            mode.name()
        )
    };
    let alone = || chosen_for(format!("Pod {ns}/{}", own.name));
    let Some(run) = &own.run else {
        placement.first_of = Some(alone());
        return placement;
    };
    // The run's other Pods that have a node (bound, or held: then `true`), first first.
    let is_held = |uid: &str| held.iter().any(|h| h.uid == uid);
    let mut siblings: Vec<(&Placed, &str, bool)> = index
        .run(ns, run)
        .filter(|p| p.uid != own.uid && !is_held(&p.uid))
        .filter_map(|p| Some((p, p.node.as_deref()?, false)))
        .chain(
            held.iter()
                .filter(|h| h.uid != own.uid && h.namespace == ns && h.run.as_ref() == Some(run))
                .filter_map(|h| Some((h, h.node.as_deref()?, true))),
        )
        .collect();
    siblings.sort_by(|(a, ..), (b, ..)| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
    let how = |node: &str, p: &Placed, held: bool| {
        if held {
            format!(
                "on node {node}, which tektite chose for its Pod {} (not yet seen bound)",
                p.name
            )
        } else {
            format!("on node {node}")
        }
    };
    let claims: Vec<&String> = own.claims.iter().filter(|c| node_bound(ns, c)).collect();
    placement.pin = match mode {
        Coschedule::Workspaces => siblings.iter().find_map(|(p, node, held)| {
            let claim = p.claims.iter().find(|c| claims.contains(c))?;
            Some((
                node.to_string(),
                format!(
                    "the workspace claim {claim} of PipelineRun {ns}/{run} is in use {} \
                     (coschedule: workspaces)",
                    how(node, p, *held)
                ),
            ))
        }),
        _ => siblings.first().map(|(p, node, held)| {
            (
                node.to_string(),
                format!(
                    "PipelineRun {ns}/{run} runs {} (coschedule: {})",
                    how(node, p, *held),
                    mode.name()
                ),
            )
        }),
    };
    if placement.pin.is_none() {
        placement.first_of = Some(match (mode, claims.first()) {
            (Coschedule::Workspaces, Some(c)) => {
                chosen_for(format!("the workspace claim {c} of PipelineRun {ns}/{run}"))
            }
            (Coschedule::Workspaces, None) => alone(),
            _ => chosen_for(format!("PipelineRun {ns}/{run}")),
        });
    }
    if mode == Coschedule::IsolatePipelineRun && placement.pin.is_none() {
        placement.isolate = Some((ns.to_owned(), run.clone()));
    }
    placement
}

/// The filter's decision over the candidate nodes (borrowed from them and from the
/// placement: a pinned Pod fails thousands of nodes for one reason).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filtered<'n, 'p> {
    /// For each candidate, in order: whether it passed.
    pub keep: Vec<bool>,
    /// The dropped nodes and why; no preemption changes these.
    pub failed: Vec<(&'n str, Cow<'p, str>)>,
    /// No node has an agent, so agents did not filter.
    pub no_agents: bool,
    /// The one node the Pod can go to (chosen for its group's first Pod, or the pinned
    /// one, when it passed): to be held for it until the watch shows it bound.
    pub chosen: Option<&'n str>,
}

#[cfg(test)]
impl Filtered<'_, '_> {
    /// Why `node` was dropped.
    pub fn reason(&self, node: &str) -> Option<&str> {
        self.failed
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, why)| why.as_ref())
    }
}

pub const NO_AGENT: &str = "no tektite node agent is connected on this node";

/// How busy `node` is: its unfinished Pods, bound or held by the extender, or the steps
/// its agent reports running, whichever is more (the watch and the agents each lag in
/// their own way; a Pod runs at least one step).
fn busy(index: &Indexed, held: &[Placed], agents: &View<'_>, node: &str) -> u32 {
    let held_here = held
        .iter()
        .filter(|h| h.node.as_deref() == Some(node))
        .count();
    (index.load(node) + held_here as u32).max(agents.running(node))
}

pub fn filter<'n, 'p>(
    placement: &'p Placement,
    index: &Indexed,
    held: &[Placed],
    agents: &View<'_>,
    nodes: &[&'n str],
) -> Filtered<'n, 'p> {
    if !placement.ours {
        return Filtered {
            keep: vec![true; nodes.len()],
            ..Filtered::default()
        };
    }
    let by_agent = placement.pin.is_none() && agents.any();
    let held_by_other = |node: &str, own: &RunKey| {
        held.iter().find_map(|h| {
            let run = h.run.as_ref()?;
            let other = h.namespace != own.0 || *run != own.1;
            (other && h.node.as_deref() == Some(node)).then(|| (h.namespace.clone(), run.clone()))
        })
    };
    let mut failed = Vec::with_capacity(nodes.len());
    let mut keep: Vec<bool> = nodes
        .iter()
        .map(|&node| {
            let why = match &placement.pin {
                Some((pinned, why)) if pinned != node => Some(Cow::Borrowed(why.as_str())),
                Some(_) => None,
                None => placement
                    .isolate
                    .as_ref()
                    .and_then(|own| {
                        index
                            .busy_with_other(node, own)
                            .cloned()
                            .or_else(|| held_by_other(node, own))
                    })
                    .map(|(ns, other)| {
                        Cow::Owned(format!(
                            "node {node} runs PipelineRun {ns}/{other} (coschedule: \
                             isolate-pipelinerun)"
                        ))
                    })
                    .or_else(|| {
                        (by_agent && !agents.listening(node)).then_some(Cow::Borrowed(NO_AGENT))
                    }),
            };
            let keep = why.is_none();
            if let Some(why) = why {
                failed.push((node, why));
            }
            keep
        })
        .collect();
    // A group's first Pod: one node for the whole group, the one it already holds, else
    // the least busy (then the first).
    let mut chosen = placement.pin.as_ref().and_then(|(pinned, _)| {
        nodes
            .iter()
            .zip(&keep)
            .find(|(n, k)| **k && *n == pinned)
            .map(|(n, _)| *n)
    });
    if let (Some(why), None) = (&placement.first_of, &placement.pin) {
        let kept = || {
            nodes
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(n, _)| *n)
        };
        chosen = kept()
            .find(|n| placement.held.as_deref() == Some(*n))
            .or_else(|| {
                kept()
                    .enumerate()
                    .min_by_key(|(i, n)| (busy(index, held, agents, n), *i))
                    .map(|(_, n)| n)
            });
        if let Some(node) = chosen {
            for (i, n) in nodes.iter().enumerate() {
                if keep[i] && *n != node {
                    keep[i] = false;
                    failed.push((*n, Cow::Borrowed(why.as_str())));
                }
            }
        }
    }
    Filtered {
        keep,
        failed,
        no_agents: placement.pin.is_none() && !agents.any(),
        chosen,
    }
}

/// A score per candidate node, in order: the pinned node highest, then the less busy
/// (fewer unfinished Pods bound or held, or steps running). Pods that are not tektite's
/// get 0 everywhere.
pub fn prioritize(
    placement: &Placement,
    index: &Indexed,
    held: &[Placed],
    agents: &View<'_>,
    nodes: &[&str],
) -> Vec<i64> {
    if !placement.ours {
        return vec![0; nodes.len()];
    }
    // Pinned, or holding a node chosen for it: that node.
    let target = placement
        .pin
        .as_ref()
        .map(|(n, _)| n)
        .or(placement.held.as_ref());
    if let Some(pinned) = target {
        return nodes
            .iter()
            .map(|n| {
                if n == pinned {
                    MAX_EXTENDER_PRIORITY
                } else {
                    0
                }
            })
            .collect();
    }
    let loads: Vec<i64> = nodes
        .iter()
        .map(|n| busy(index, held, agents, n).into())
        .collect();
    let busiest = loads.iter().copied().max().unwrap_or(0);
    let any = agents.any();
    nodes
        .iter()
        .zip(loads)
        .map(|(node, load)| {
            if any && !agents.listening(node) {
                0
            } else if busiest == 0 {
                MAX_EXTENDER_PRIORITY
            } else {
                MAX_EXTENDER_PRIORITY * (busiest - load) / busiest
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::json;

    use kube::runtime::watcher;

    use super::*;
    use crate::agents::Agents;
    use crate::pod_index::PodIndex;

    const NODES: [&str; 3] = ["n1", "n2", "n3"];

    /// A tektite Pod of PipelineRun `run` (none: a lone TaskRun), binding `claims`, on
    /// `node` once scheduled.
    fn pod(name: &str, run: Option<&str>, claims: &[&str], node: Option<&str>) -> Pod {
        let mut labels = json!({"tektite.dev/managed-by": "tektite"});
        if let Some(run) = run {
            labels["tekton.dev/pipelineRun"] = json!(run);
        }
        let volumes: Vec<_> = claims
            .iter()
            .map(|c| json!({"name": format!("ws-{c}"), "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "namespace": "ci", "uid": format!("uid-{name}"), "labels": labels,
                "creationTimestamp": format!("2026-11-22T10:00:0{}Z", name.len() % 10),
            },
            "spec": {"containers": [], "volumes": volumes, "nodeName": node},
        }))
        .unwrap()
    }

    fn at() -> Timestamp {
        "2026-11-22T10:00:00Z".parse().unwrap()
    }

    /// Agents on every node.
    fn everywhere() -> Agents {
        let agents = Agents::default();
        NODES.iter().for_each(|n| agents.connect(n));
        agents
    }

    fn kept(placement: &Placement, index: &PodIndex, agents: &Agents) -> Vec<&'static str> {
        let filtered = filter(placement, &index.read(), &[], &agents.view(at()), &NODES);
        NODES
            .iter()
            .zip(filtered.keep)
            .filter_map(|(n, keep)| keep.then_some(*n))
            .collect()
    }

    /// A 3-task pipeline: `fetch` ran on n2 with the shared claim `src`; `build` binds
    /// `src` too; `notify` binds nothing.
    fn pipeline() -> (PodIndex, Pod, Pod) {
        let cache = PodIndex::from_pods([&pod("fetch", Some("pr"), &["src"], Some("n2"))]);
        let build = pod("build", Some("pr"), &["src"], None);
        let notify = pod("notify", Some("pr"), &[], None);
        (cache, build, notify)
    }

    fn single_node(_: &str, _: &str) -> bool {
        true
    }

    #[test]
    fn workspaces_put_pods_sharing_a_claim_where_the_first_ran() {
        let (cache, build, notify) = pipeline();
        let agents = everywhere();
        let placement = place(
            Coschedule::Workspaces,
            &build,
            &cache.read(),
            &[],
            single_node,
        );
        assert_eq!(kept(&placement, &cache, &agents), ["n2"]);
        let filtered = filter(&placement, &cache.read(), &[], &agents.view(at()), &NODES);
        assert_eq!(
            filtered.reason("n1").unwrap(),
            "the workspace claim src of PipelineRun ci/pr is in use on node n2 (coschedule: workspaces)"
        );
        assert_eq!(
            prioritize(
                &placement,
                &PodIndex::default().read(),
                &[],
                &agents.view(at()),
                &NODES
            ),
            [0, MAX_EXTENDER_PRIORITY, 0]
        );
        // A Pod without the claim goes anywhere.
        let placement = place(
            Coschedule::Workspaces,
            &notify,
            &cache.read(),
            &[],
            single_node,
        );
        assert_eq!(placement.pin, None);
        assert_eq!(
            placement.first_of,
            Some(
                "tektite places Pod ci/notify on one node, the least busy that passed (coschedule: workspaces)"
                    .to_owned()
            )
        );
        // n2 runs fetch: the least busy of the others.
        assert_eq!(kept(&placement, &cache, &agents), ["n1"]);
        // A claim many nodes can mount binds no Pod to a node.
        let placement = place(
            Coschedule::Workspaces,
            &build,
            &cache.read(),
            &[],
            |_, _| false,
        );
        assert_eq!(placement.pin, None);
        assert_eq!(
            placement.first_of,
            Some(
                "tektite places Pod ci/build on one node, the least busy that passed (coschedule: workspaces)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn pipelineruns_put_every_pod_of_a_run_on_one_node() {
        let (cache, build, notify) = pipeline();
        let agents = everywhere();
        for pod in [&build, &notify] {
            let placement = place(
                Coschedule::PipelineRuns,
                pod,
                &cache.read(),
                &[],
                single_node,
            );
            assert_eq!(kept(&placement, &cache, &agents), ["n2"]);
        }
        // The first Pod of a run: the one node chosen for the run, the least busy (all
        // are idle: the first), and the others say why.
        let empty = PodIndex::default();
        let placement = place(
            Coschedule::PipelineRuns,
            &build,
            &empty.read(),
            &[],
            single_node,
        );
        let filtered = filter(&placement, &empty.read(), &[], &agents.view(at()), &NODES);
        assert_eq!(filtered.keep, [true, false, false]);
        assert_eq!(filtered.chosen, Some("n1"));
        assert_eq!(
            filtered.reason("n3").unwrap(),
            "tektite places PipelineRun ci/pr on one node, the least busy that passed \
             (coschedule: pipelineruns)"
        );
        // Held for it: its sibling follows before the watch shows it bound, and says why.
        let mut held = Placed::of(&build);
        held.node = Some("n1".into());
        let placement = place(
            Coschedule::PipelineRuns,
            &notify,
            &empty.read(),
            std::slice::from_ref(&held),
            single_node,
        );
        let filtered = filter(
            &placement,
            &empty.read(),
            &[held.clone()],
            &agents.view(at()),
            &NODES,
        );
        assert_eq!(filtered.keep, [true, false, false]);
        assert_eq!(
            filtered.chosen,
            Some("n1"),
            "held too, as it is sure to go there"
        );
        assert_eq!(
            filtered.reason("n2").unwrap(),
            "PipelineRun ci/pr runs on node n1, which tektite chose for its Pod build (not yet \
             seen bound) (coschedule: pipelineruns)"
        );
        // The held Pod filtered again keeps its node while it passes.
        let placement = place(
            Coschedule::PipelineRuns,
            &build,
            &empty.read(),
            &[held.clone()],
            single_node,
        );
        assert_eq!(placement.held.as_deref(), Some("n1"));
        let filtered = filter(
            &placement,
            &empty.read(),
            &[held],
            &agents.view(at()),
            &["n3", "n1"],
        );
        assert_eq!(filtered.chosen, Some("n1"));
    }

    #[test]
    fn isolate_keeps_other_runs_off_a_busy_node() {
        let (cache, build, _) = pipeline();
        let agents = everywhere();
        let placement = place(
            Coschedule::IsolatePipelineRun,
            &build,
            &cache.read(),
            &[],
            single_node,
        );
        assert_eq!(kept(&placement, &cache, &agents), ["n2"]);
        // Another run's first Pod avoids n2 while fetch runs there.
        let other = pod("other", Some("pr2"), &[], None);
        let placement = place(
            Coschedule::IsolatePipelineRun,
            &other,
            &cache.read(),
            &[],
            single_node,
        );
        assert_eq!(kept(&placement, &cache, &agents), ["n1"]);
        assert_eq!(
            filter(&placement, &cache.read(), &[], &agents.view(at()), &NODES)
                .reason("n2")
                .unwrap(),
            "node n2 runs PipelineRun ci/pr (coschedule: isolate-pipelinerun)"
        );
        // A run held on a node keeps other runs off it as one bound there does.
        let mut held = Placed::of(&pod("third", Some("pr3"), &[], None));
        held.node = Some("n1".into());
        let filtered = filter(
            &placement,
            &cache.read(),
            &[held],
            &agents.view(at()),
            &NODES,
        );
        assert_eq!(filtered.chosen, Some("n3"));
        assert_eq!(
            filtered.reason("n1").unwrap(),
            "node n1 runs PipelineRun ci/pr3 (coschedule: isolate-pipelinerun)"
        );
        // Once fetch has finished, n2 is free again.
        let mut done = pod("fetch", Some("pr"), &["src"], Some("n2"));
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        cache.apply(&watcher::Event::Apply(done));
        let placement = place(
            Coschedule::IsolatePipelineRun,
            &other,
            &cache.read(),
            &[],
            single_node,
        );
        let filtered = filter(&placement, &cache.read(), &[], &agents.view(at()), &NODES);
        assert!(filtered.reason("n2").unwrap().starts_with("tektite places"));
    }

    #[test]
    fn disabled_and_lone_taskruns_are_not_colocated() {
        let (cache, build, _) = pipeline();
        let agents = everywhere();
        let placement = place(
            Coschedule::Disabled,
            &build,
            &cache.read(),
            &[],
            single_node,
        );
        assert_eq!(kept(&placement, &cache, &agents), NODES);
        let lone = pod("lone", None, &["src"], None);
        for mode in [Coschedule::Workspaces, Coschedule::IsolatePipelineRun] {
            let placement = place(mode, &lone, &cache.read(), &[], single_node);
            assert_eq!(placement.pin, None);
            assert_eq!(placement.isolate, None);
        }
    }

    #[test]
    fn nodes_without_an_agent_are_dropped_unless_no_node_has_one() {
        let (_, _, notify) = pipeline();
        let cache = PodIndex::default();
        let placement = place(
            Coschedule::Disabled,
            &notify,
            &cache.read(),
            &[],
            single_node,
        );
        let agents = Agents::default();
        let filtered = filter(&placement, &cache.read(), &[], &agents.view(at()), &NODES);
        assert!(filtered.no_agents);
        assert_eq!(filtered.keep, [true, true, true]);
        agents.connect("n3");
        let filtered = filter(&placement, &cache.read(), &[], &agents.view(at()), &NODES);
        assert!(!filtered.no_agents);
        assert_eq!(filtered.keep, [false, false, true]);
        assert_eq!(filtered.reason("n1"), Some(NO_AGENT));
        assert_eq!(
            prioritize(
                &placement,
                &PodIndex::default().read(),
                &[],
                &agents.view(at()),
                &NODES
            ),
            [0, 0, MAX_EXTENDER_PRIORITY]
        );
    }

    #[test]
    fn a_pinned_pod_goes_to_its_workspace_even_without_an_agent_there() {
        let (cache, build, _) = pipeline();
        let agents = Agents::default();
        agents.connect("n1");
        let placement = place(
            Coschedule::Workspaces,
            &build,
            &cache.read(),
            &[],
            single_node,
        );
        assert_eq!(kept(&placement, &cache, &agents), ["n2"]);
    }

    #[test]
    fn idle_nodes_score_higher_than_busy_ones() {
        let (_, build, _) = pipeline();
        let agents = everywhere();
        for step in 0..4 {
            agents.step_started("n1", "a", step);
        }
        agents.step_started("n2", "b", 0);
        let placement = place(
            Coschedule::Workspaces,
            &build,
            &PodIndex::default().read(),
            &[],
            single_node,
        );
        assert_eq!(
            prioritize(
                &placement,
                &PodIndex::default().read(),
                &[],
                &agents.view(at()),
                &NODES
            ),
            [0, 7, MAX_EXTENDER_PRIORITY]
        );
    }

    #[test]
    fn pods_that_are_not_tektites_pass_unfiltered() {
        let agents = Agents::default();
        agents.connect("n1");
        let mut foreign = pod("web", Some("pr"), &["src"], None);
        foreign.metadata.labels = None;
        let (cache, _, _) = pipeline();
        let placement = place(
            Coschedule::PipelineRuns,
            &foreign,
            &cache.read(),
            &[],
            single_node,
        );
        assert!(!placement.ours);
        assert_eq!(kept(&placement, &cache, &agents), NODES);
        assert_eq!(
            prioritize(
                &placement,
                &PodIndex::default().read(),
                &[],
                &agents.view(at()),
                &NODES
            ),
            [0, 0, 0]
        );
    }
}
