//! The pipeline DAG: which tasks wait for which, what may start now, and cycles.
//!
//! Edges come from `runAfter` and from every `$(tasks.<t>.results.<r>)` (or
//! `$(tasks.<t>.status)`) a task uses anywhere in its definition.

use std::borrow::Cow;
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

/// One element of a param value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Whole,
    Index(usize),
    Key(&'a str),
}

/// Where a string sits among a pipeline task's own fields (not its embedded specs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot<'a> {
    DisplayName,
    Param {
        param: usize,
        elem: Elem<'a>,
    },
    WhenInput(usize),
    WhenValue(usize, usize),
    WhenCel(usize),
    MatrixParam {
        param: usize,
        elem: Elem<'a>,
    },
    IncludeParam {
        include: usize,
        param: usize,
        elem: Elem<'a>,
    },
    TaskRefParam {
        param: usize,
        elem: Elem<'a>,
    },
    PipelineRefParam {
        param: usize,
        elem: Elem<'a>,
    },
    WorkspaceSubPath(usize),
}

fn elem_path(p: FieldPath, elem: Elem<'_>) -> FieldPath {
    match elem {
        Elem::Whole => p,
        Elem::Index(i) => p.index(i),
        Elem::Key(k) => p.field(k),
    }
}

impl Slot<'_> {
    /// The field path of the string, under the task's own path.
    pub fn path(&self, task: &FieldPath) -> FieldPath {
        let param = |list: FieldPath, i: usize, elem| elem_path(list.index(i).field("value"), elem);
        match *self {
            Slot::DisplayName => task.field("displayName"),
            Slot::Param { param: i, elem } => param(task.field("params"), i, elem),
            Slot::WhenInput(i) => task.field("when").index(i).field("input"),
            Slot::WhenValue(i, j) => task.field("when").index(i).field("values").index(j),
            Slot::WhenCel(i) => task.field("when").index(i).field("cel"),
            Slot::MatrixParam { param: i, elem } => {
                param(task.field("matrix").field("params"), i, elem)
            }
            Slot::IncludeParam {
                include,
                param: i,
                elem,
            } => param(
                task.field("matrix")
                    .field("include")
                    .index(include)
                    .field("params"),
                i,
                elem,
            ),
            Slot::TaskRefParam { param: i, elem } => {
                param(task.field("taskRef").field("params"), i, elem)
            }
            Slot::PipelineRefParam { param: i, elem } => {
                param(task.field("pipelineRef").field("params"), i, elem)
            }
            Slot::WorkspaceSubPath(i) => task.field("workspaces").index(i).field("subPath"),
        }
    }

    /// Whether the string stands alone where a whole array or object may be substituted.
    pub fn whole_element(&self) -> bool {
        match *self {
            Slot::Param { elem, .. }
            | Slot::MatrixParam { elem, .. }
            | Slot::IncludeParam { elem, .. }
            | Slot::TaskRefParam { elem, .. }
            | Slot::PipelineRefParam { elem, .. } => !matches!(elem, Elem::Key(_)),
            Slot::WhenValue(..) => true,
            Slot::DisplayName
            | Slot::WhenInput(_)
            | Slot::WhenCel(_)
            | Slot::WorkspaceSubPath(_) => false,
        }
    }
}

fn value_strings<'a>(v: &'a crate::v1::ParamValue, mut f: impl FnMut(&'a str, Elem<'a>)) {
    use crate::v1::ParamValue;
    match v {
        ParamValue::String(s) => f(s, Elem::Whole),
        ParamValue::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, s)| f(s, Elem::Index(i))),
        ParamValue::Object(map) => map.iter().for_each(|(k, s)| f(s, Elem::Key(k))),
    }
}

/// Calls `f` on every string of a pipeline task's own fields (params, when, matrix,
/// reference params, workspace sub-paths, display name), without allocating.
pub fn own_strings<'a>(task: &'a PipelineTask, f: &mut dyn FnMut(&'a str, Slot<'a>)) {
    if let Some(d) = &task.display_name {
        f(d, Slot::DisplayName);
    }
    for (i, p) in task.params.iter().enumerate() {
        value_strings(&p.value, |s, elem| f(s, Slot::Param { param: i, elem }));
    }
    for (i, w) in task.when.iter().enumerate() {
        if let Some(input) = &w.input {
            f(input, Slot::WhenInput(i));
        }
        for (j, v) in w.values.iter().enumerate() {
            f(v, Slot::WhenValue(i, j));
        }
        if let Some(cel) = &w.cel {
            f(cel, Slot::WhenCel(i));
        }
    }
    if let Some(m) = &task.matrix {
        for (i, p) in m.params.iter().enumerate() {
            value_strings(&p.value, |s, elem| {
                f(s, Slot::MatrixParam { param: i, elem })
            });
        }
        for (include, inc) in m.include.iter().enumerate() {
            for (i, p) in inc.params.iter().enumerate() {
                value_strings(&p.value, |s, elem| {
                    f(
                        s,
                        Slot::IncludeParam {
                            include,
                            param: i,
                            elem,
                        },
                    )
                });
            }
        }
    }
    if let Some(r) = &task.task_ref {
        for (i, p) in r.params.iter().enumerate() {
            value_strings(&p.value, |s, elem| {
                f(s, Slot::TaskRefParam { param: i, elem })
            });
        }
    }
    if let Some(r) = &task.pipeline_ref {
        for (i, p) in r.params.iter().enumerate() {
            value_strings(&p.value, |s, elem| {
                f(s, Slot::PipelineRefParam { param: i, elem })
            });
        }
    }
    for (i, w) in task.workspaces.iter().enumerate() {
        if let Some(sub) = &w.sub_path {
            f(sub, Slot::WorkspaceSubPath(i));
        }
    }
}

/// Where a dependency is written; its field path is built only when it is reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mention<'a> {
    RunAfter(usize),
    Own(Slot<'a>),
    /// Inside an embedded taskSpec or pipelineSpec, relative to the task.
    Embedded(FieldPath),
}

impl Mention<'_> {
    pub fn path(&self, task: &FieldPath) -> FieldPath {
        match self {
            Mention::RunAfter(i) => task.field("runAfter").index(*i),
            Mention::Own(slot) => slot.path(task),
            Mention::Embedded(rel) => {
                FieldPath::from(format!("{}.{}", task.as_str(), rel.as_str()).as_str())
            }
        }
    }
}

/// One task another depends on, and where that is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency<'a> {
    pub on: Cow<'a, str>,
    pub at: Mention<'a>,
}

fn task_mentions<'a>(s: &str, at: impl Fn() -> Mention<'a>, out: &mut Vec<Dependency<'a>>) {
    if !s.contains("$(tasks.") {
        return;
    }
    for o in vars::references(s) {
        if let Reference::TaskResult { task, .. }
        | Reference::TaskStatus { task }
        | Reference::TaskReason { task }
        | Reference::MatrixLength { task, .. } = o.reference
        {
            out.push(Dependency {
                on: Cow::Owned(task),
                at: at(),
            });
        }
    }
}

/// The tasks a pipeline task depends on: its runAfter and every task whose results or
/// status it uses.
pub fn dependencies(task: &PipelineTask) -> Vec<Dependency<'_>> {
    let mut out: Vec<Dependency<'_>> = task
        .run_after
        .iter()
        .enumerate()
        .map(|(i, a)| Dependency {
            on: Cow::Borrowed(a.as_str()),
            at: Mention::RunAfter(i),
        })
        .collect();
    own_strings(task, &mut |s, slot| {
        task_mentions(s, || Mention::Own(slot), &mut out)
    });
    // Embedded specs may use results too (Tekton propagates them); walk their trees.
    let embedded = [
        (
            "taskSpec",
            task.task_spec
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
        ),
        (
            "pipelineSpec",
            task.pipeline_spec
                .as_ref()
                .and_then(|p| serde_json::to_value(p).ok()),
        ),
    ];
    for (field, tree) in embedded {
        if let Some(tree) = tree {
            walk_strings(&tree, &FieldPath::from(field), &mut |s, p| {
                task_mentions(s, || Mention::Embedded(p.clone()), &mut out)
            });
        }
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
        let deps: Vec<_> = tasks.iter().map(dependencies).collect();
        Self::from_dependencies(
            tasks.iter().map(|t| t.name.clone()).collect(),
            &deps,
            list_path,
        )
    }

    /// Builds the DAG from task names and, per task, what it depends on; `list_path`
    /// (e.g. `spec.tasks`) locates the tasks in error messages.
    pub fn from_dependencies(
        names: Vec<String>,
        deps: &[Vec<Dependency<'_>>],
        list_path: &FieldPath,
    ) -> Result<Dag, Vec<DagError>> {
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let edges: usize = deps.iter().map(Vec::len).sum();
        let mut graph = DiGraph::<(), ()>::with_capacity(names.len(), edges);
        for _ in &names {
            graph.add_node(());
        }
        let mut errors = Vec::new();
        let mut parents: Vec<usize> = Vec::new();
        for (i, task_deps) in deps.iter().enumerate() {
            parents.clear();
            for d in task_deps {
                match index.get(d.on.as_ref()) {
                    None => errors.push(DagError::UnknownTask {
                        task: names[i].clone(),
                        on: d.on.to_string(),
                        path: d.at.path(&list_path.index(i)),
                    }),
                    Some(&j) if j == i => errors.push(DagError::SelfDependency {
                        task: names[i].clone(),
                        path: d.at.path(&list_path.index(i)),
                    }),
                    Some(&j) => parents.push(j),
                }
            }
            // Sorting then deduplicating keeps a fan-in task with n parents O(n log n).
            parents.sort_unstable();
            parents.dedup();
            for &j in &parents {
                graph.add_edge(NodeIndex::new(j), NodeIndex::new(i), ());
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
