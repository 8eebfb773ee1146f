//! The pipeline DAG: which tasks wait for which, what may start now, and cycles.
//!
//! Edges come from `runAfter` and from every `$(tasks.<t>.results.<r>)` (or
//! `$(tasks.<t>.status)`) a task uses anywhere in its definition.

use std::collections::{HashMap, VecDeque};

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::problem::{FieldPath, Problem};
use crate::v1::PipelineTask;
use crate::vars::{self, Reference};

/// Why a set of tasks does not form a DAG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    #[error("task {task:?} depends on {on:?}, which is not a task of this pipeline")]
    UnknownTask {
        task: String,
        on: String,
        path: FieldPath,
    },
    #[error("task {task:?} depends on itself")]
    SelfDependency { task: String, path: FieldPath },
    #[error("the tasks form a cycle: {}", .cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
}

impl DagError {
    /// The problem to report, at `list_path` (e.g. `spec.tasks`).
    pub fn to_problem(&self, list_path: &FieldPath) -> Problem {
        let path = match self {
            DagError::UnknownTask { path, .. } | DagError::SelfDependency { path, .. } => {
                path.clone()
            }
            DagError::Cycle { .. } => list_path.clone(),
        };
        let hint = match self {
            DagError::UnknownTask { .. } => {
                "; check the name, or move the reference to a finally task if it names one"
            }
            DagError::SelfDependency { .. } => {
                "; remove it from runAfter or from the result reference"
            }
            DagError::Cycle { .. } => "; break it by removing one runAfter or result reference",
        };
        Problem::new(path, format!("{self}{hint}"))
    }
}

/// The dependency graph of a list of pipeline tasks; node `i` is task `i`.
#[derive(Debug, Clone)]
pub struct Dag {
    graph: DiGraph<(), ()>,
    names: Vec<String>,
}

/// Where task `i`'s dependencies come from: (name it depends on, path of the mention).
pub fn dependencies(task: &PipelineTask, path: &FieldPath) -> Vec<(String, FieldPath)> {
    let mut out: Vec<(String, FieldPath)> = task
        .run_after
        .iter()
        .enumerate()
        .map(|(i, a)| (a.clone(), path.field("runAfter").index(i)))
        .collect();
    // Result references can appear anywhere in the task (params, when, matrix, an
    // embedded spec); walking its serialized form finds every string with its path.
    if let Ok(tree) = serde_json::to_value(task) {
        walk_strings(&tree, path, &mut |s, p| {
            if !s.contains("$(tasks.") {
                return;
            }
            for o in vars::references(s) {
                match o.reference {
                    Reference::TaskResult { task, .. }
                    | Reference::TaskStatus { task }
                    | Reference::TaskReason { task } => out.push((task, p.clone())),
                    _ => {}
                }
            }
        });
    }
    out
}

/// Calls `f` on every string in `tree` with its field path.
pub fn walk_strings(
    tree: &serde_json::Value,
    path: &FieldPath,
    f: &mut dyn FnMut(&str, &FieldPath),
) {
    match tree {
        serde_json::Value::String(s) => f(s, path),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_strings(item, &path.index(i), f);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                walk_strings(v, &path.field(k), f);
            }
        }
        _ => {}
    }
}

impl Dag {
    /// Builds the DAG of `tasks` (found at `list_path`, e.g. `spec.tasks`). Reports every
    /// unknown dependency, then the first cycle, if any.
    pub fn build(tasks: &[PipelineTask], list_path: &FieldPath) -> Result<Dag, Vec<DagError>> {
        let deps: Vec<_> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| dependencies(t, &list_path.index(i)))
            .collect();
        Self::from_dependencies(tasks.iter().map(|t| t.name.clone()).collect(), &deps)
    }

    /// Builds the DAG from task names and, per task, the names it depends on.
    pub fn from_dependencies(
        names: Vec<String>,
        deps: &[Vec<(String, FieldPath)>],
    ) -> Result<Dag, Vec<DagError>> {
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut graph = DiGraph::<(), ()>::with_capacity(names.len(), names.len());
        for _ in &names {
            graph.add_node(());
        }
        let mut errors = Vec::new();
        for (i, task_deps) in deps.iter().enumerate() {
            for (on, path) in task_deps {
                match index.get(on.as_str()) {
                    None => errors.push(DagError::UnknownTask {
                        task: names[i].clone(),
                        on: on.clone(),
                        path: path.clone(),
                    }),
                    Some(&j) if j == i => errors.push(DagError::SelfDependency {
                        task: names[i].clone(),
                        path: path.clone(),
                    }),
                    Some(&j) => {
                        let (from, to) = (NodeIndex::new(j), NodeIndex::new(i));
                        if graph.find_edge(from, to).is_none() {
                            graph.add_edge(from, to, ());
                        }
                    }
                }
            }
        }
        let dag = Dag { graph, names };
        if let Some(cycle) = dag.find_cycle() {
            errors.push(DagError::Cycle { cycle });
        }
        if errors.is_empty() {
            Ok(dag)
        } else {
            Err(errors)
        }
    }

    /// The first cycle, as names from a task back to itself, starting at the task that
    /// comes first in the pipeline.
    fn find_cycle(&self) -> Option<Vec<String>> {
        let scc = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .min_by_key(|c| c.iter().min().copied())?;
        let start = *scc.iter().min()?;
        let in_scc: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
        // Shortest way round from `start` back to itself, inside the component.
        let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            let mut next: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(n, Direction::Outgoing)
                .filter(|m| in_scc.contains(m))
                .collect();
            next.sort();
            for m in next {
                if m == start {
                    let mut path = vec![n];
                    let mut cur = n;
                    while cur != start {
                        cur = prev[&cur];
                        path.push(cur);
                    }
                    path.reverse();
                    path.push(start);
                    return Some(
                        path.into_iter()
                            .map(|i| self.names[i.index()].clone())
                            .collect(),
                    );
                }
                if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(m) {
                    e.insert(n);
                    queue.push_back(m);
                }
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The tasks task `i` waits for.
    pub fn parents(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
            .map(|n| n.index())
    }

    /// The tasks that wait for task `i`.
    pub fn children(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(i), Direction::Outgoing)
            .map(|n| n.index())
    }

    /// Tasks that have not started and whose parents have all finished, in pipeline
    /// order. `finished[i]` and `started[i]` describe task `i`.
    pub fn ready(&self, finished: &[bool], started: &[bool]) -> Vec<usize> {
        (0..self.names.len())
            .filter(|&i| !started[i] && !finished[i] && self.parents(i).all(|p| finished[p]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, after: &[&str], params: &[&str]) -> PipelineTask {
        PipelineTask {
            name: name.into(),
            run_after: after.iter().map(|s| s.to_string()).collect(),
            params: params
                .iter()
                .enumerate()
                .map(|(i, v)| crate::v1::Param {
                    name: format!("p{i}"),
                    value: (*v).into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn build(tasks: &[PipelineTask]) -> Result<Dag, Vec<DagError>> {
        Dag::build(tasks, &FieldPath::from("spec.tasks"))
    }

    #[test]
    fn run_after_and_result_references_are_edges() {
        let dag = build(&[
            task("a", &[], &[]),
            task("b", &["a"], &[]),
            task("c", &[], &["$(tasks.b.results.out)"]),
        ])
        .unwrap();
        assert_eq!(dag.parents(1).collect::<Vec<_>>(), [0]);
        assert_eq!(dag.parents(2).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn the_ready_set_holds_tasks_whose_parents_all_finished() {
        let dag = build(&[
            task("a", &[], &[]),
            task("b", &[], &[]),
            task("c", &["a", "b"], &[]),
        ])
        .unwrap();
        assert_eq!(dag.ready(&[false; 3], &[false; 3]), [0, 1]);
        assert_eq!(
            dag.ready(&[true, false, false], &[true, true, false]),
            Vec::<usize>::new()
        );
        assert_eq!(dag.ready(&[true, true, false], &[true, true, false]), [2]);
    }

    #[test]
    fn a_cycle_is_named_in_full() {
        let err = build(&[
            task("a", &["c"], &[]),
            task("b", &[], &["$(tasks.a.results.x)"]),
            task("c", &["b"], &[]),
            task("d", &[], &[]),
        ])
        .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(
            err[0].to_string(),
            "the tasks form a cycle: a -> b -> c -> a"
        );
    }

    #[test]
    fn unknown_and_self_dependencies_are_reported_with_paths() {
        let err = build(&[
            task("a", &["nope"], &[]),
            task("b", &[], &["$(tasks.b.results.x)"]),
        ])
        .unwrap_err();
        let problems: Vec<_> = err
            .iter()
            .map(|e| {
                e.to_problem(&FieldPath::from("spec.tasks"))
                    .path
                    .to_string()
            })
            .collect();
        assert_eq!(
            problems,
            ["spec.tasks[0].runAfter[0]", "spec.tasks[1].params[0].value"]
        );
    }
}
