//! The engine's PipelineRun decision (`tektite_engine::pipeline::decide`) for generated
//! pipelines of 10 to 5,000 tasks in three shapes, at three moments of a run: nothing
//! started, half the tasks done, all but the last done. A decision recomputes everything
//! from its inputs (ready set, substitution, skips, condition), so this is the cost of one
//! reconcile. Target (DESIGN.md): ≤ 10 ms at 1,000 tasks, linear in tasks. Tekton's issue
//! 3521: a 60-task results chain took 41 minutes to start.
//!
//! Run: `cargo run --release -p tektite-bench --bin engine [-- --quick]`

use std::collections::BTreeMap;
use std::time::Instant;

use jiff::Timestamp;
use tektite_api::v1::{ParamValue, PipelineSpec};
use tektite_api::{Object, Source, load};
use tektite_bench::pipelines::{Shape, pipeline_yaml};
use tektite_bench::{Samples, build_kind, ms};
use tektite_engine::pipeline::{Child, Outcome, PipelineRunFacts, Timeouts, decide};

fn spec(shape: Shape, n: usize) -> PipelineSpec {
    let yaml = pipeline_yaml(shape, n);
    let docs = load(&[Source {
        name: "bench",
        text: &yaml,
    }]);
    docs.into_iter()
        .find_map(|d| match d.object {
            Some(Object::Pipeline(p)) => Some(p.spec),
            _ => None,
        })
        .expect("the generated pipeline loads")
}

/// The first `done` tasks succeeded, each with its result (tasks only depend on earlier
/// ones, so any prefix is a possible state).
fn children(spec: &PipelineSpec, done: usize) -> BTreeMap<String, Child> {
    spec.tasks
        .iter()
        .take(done)
        .map(|t| {
            (
                t.name.clone(),
                Child::of(
                    Outcome::Succeeded,
                    BTreeMap::from([("out".to_owned(), ParamValue::String("x+".into()))]),
                ),
            )
        })
        .collect()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!("engine: one PipelineRun decision (pipeline::decide) per reconcile");
    println!(
        "build: {}; machine: {} CPUs; one thread",
        build_kind(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| shape | tasks | moment | starts | p50 ms | p99 ms | µs/task (p50) |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    let now: Timestamp = "2026-11-22T10:00:01Z".parse().expect("a timestamp");
    let started: Timestamp = "2026-11-22T10:00:00Z".parse().expect("a timestamp");
    for shape in Shape::ALL {
        for n in [10, 100, 1_000, 5_000] {
            let spec = spec(shape, n);
            for (moment, done) in [("start", 0), ("half done", n / 2), ("last left", n - 1)] {
                let kids = children(&spec, done);
                let facts = PipelineRunFacts {
                    name: "bench-run",
                    namespace: "default",
                    uid: "uid",
                    pipeline_name: "big",
                    spec: &spec,
                    params: &[],
                    cancel: None,
                    pending: false,
                    timeouts: Timeouts::default(),
                    started_at: started,
                    finally_started_at: None,
                    children: &kids,
                    now,
                };
                let iterations = match (quick, n) {
                    (true, _) => 5,
                    (false, 5_000) => 40,
                    (false, 1_000) => 200,
                    _ => 500,
                };
                let mut samples = Samples::default();
                let mut starts = 0;
                for _ in 0..iterations {
                    let t = Instant::now();
                    let d = decide(&facts);
                    samples.0.push(t.elapsed());
                    starts = d.start.len();
                }
                println!(
                    "| {} | {n} | {moment} | {starts} | {} | {} | {:.1} |",
                    shape.name(),
                    ms(samples.p50()),
                    ms(samples.p99()),
                    samples.p50().as_secs_f64() * 1e6 / n as f64
                );
            }
        }
    }
}
