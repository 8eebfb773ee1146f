//! Generated pipelines of any size in the shapes the benchmarks share.

use std::fmt::Write as _;

/// The Task every pipeline task runs: one param in, one result out.
pub const TASK: &str = "apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: step
spec:
  params:
    - name: in
      default: seed
  results:
    - name: out
  steps:
    - name: run
      image: docker.io/library/alpine:3.20
      script: printf '%s+' \"$(params.in)\" > $(results.out.path)
";

#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// One task, n-2 tasks after it, one task after all of them.
    FanOutFanIn,
    /// Each task consumes the previous task's result.
    ResultsChain,
    /// Each task depends on up to three random earlier tasks (seeded).
    RandomDag,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::FanOutFanIn => "fan-out/fan-in",
            Shape::ResultsChain => "results chain",
            Shape::RandomDag => "random DAG",
        }
    }
}

pub fn pipeline_yaml(shape: Shape, n: usize) -> String {
    let mut y = String::from(TASK);
    y.push_str(
        "---\napiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata:\n  name: big\nspec:\n  tasks:\n",
    );
    let mut rng = fastrand::Rng::with_seed(3521);
    for i in 0..n {
        let _ = write!(y, "    - name: t{i}\n      taskRef:\n        name: step\n");
        let mut after: Vec<usize> = Vec::new();
        let mut input: Option<usize> = None;
        match shape {
            Shape::FanOutFanIn if i == 0 => {}
            Shape::FanOutFanIn if i == n - 1 => after = (1..n - 1).collect(),
            Shape::FanOutFanIn => after = vec![0],
            Shape::ResultsChain => input = i.checked_sub(1),
            Shape::RandomDag if i == 0 => {}
            Shape::RandomDag => {
                for _ in 0..rng.usize(0..=3) {
                    let d = rng.usize(0..i);
                    if !after.contains(&d) {
                        after.push(d);
                    }
                }
                if rng.bool() {
                    input = Some(rng.usize(0..i));
                }
            }
        }
        if !after.is_empty() {
            y.push_str("      runAfter:\n");
            for a in after {
                let _ = writeln!(y, "        - t{a}");
            }
        }
        if let Some(j) = input {
            let _ = write!(
                y,
                "      params:\n        - name: in\n          value: $(tasks.t{j}.results.out)\n"
            );
        }
    }
    y
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::FanOutFanIn, Shape::ResultsChain, Shape::RandomDag];
}
