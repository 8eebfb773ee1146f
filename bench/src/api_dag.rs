//! Parse + validate + build the DAG + compute the ready set, for generated pipelines of
//! 10 to 5,000 tasks in three shapes. Tekton's issue 3521: a 60-task results chain took
//! 41 minutes to start. Target (DESIGN.md): well under 10 ms at 1,000 tasks, linear.
//!
//! Run: `cargo run --release -p tektite-bench --bin api-dag [-- --quick]`

use std::time::Instant;

use tektite_api::dag::Dag;
use tektite_api::validate::validate;
use tektite_api::{FieldPath, Object, Source, load};
use tektite_bench::pipelines::{Shape, pipeline_yaml};
use tektite_bench::{Samples, build_kind, ms};

/// The same documents as JSON, as the API server (and `kubectl get -o json`) gives them.
fn as_json(yaml: &str) -> String {
    yaml.split("---\n")
        .map(|doc| {
            let v: serde_json::Value = serde_saphyr::from_str(doc).expect("generated YAML parses");
            serde_json::to_string(&v).expect("serializes")
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!("api-dag: parse + validate + DAG + ready set for generated pipelines");
    println!(
        "setup: {} build, one thread, {} CPUs on the machine; each figure is p50/p99 in ms over the iterations shown",
        build_kind(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "stages: parse = YAML → v1 objects (strict schema check, typed decode); validate = all rules incl. variables;"
    );
    println!(
        "        dag = petgraph DAG from runAfter + result refs; ready = ready set with half the tasks finished"
    );
    println!();
    println!(
        "{:<15} {:>6} {:>5} {:>5} {:>17} {:>17} {:>15} {:>15} {:>17} {:>12}",
        "shape",
        "tasks",
        "input",
        "iters",
        "parse",
        "validate",
        "dag",
        "ready",
        "total",
        "µs/task p50"
    );
    let sizes: &[usize] = if quick {
        &[10, 100, 1000]
    } else {
        &[10, 100, 1000, 5000]
    };
    for shape in [Shape::FanOutFanIn, Shape::ResultsChain, Shape::RandomDag] {
        for &n in sizes {
            let yaml_text = pipeline_yaml(shape, n);
            let json_text = as_json(&yaml_text);
            for (input, yaml) in [("yaml", &yaml_text), ("json", &json_text)] {
                let iters = match (quick, n) {
                    (true, _) => 10,
                    (_, 0..=100) => 500,
                    (_, 101..=1000) => 100,
                    _ => 20,
                };
                let (mut parse, mut valid, mut dag_t, mut ready_t, mut total) = (
                    Samples(vec![]),
                    Samples(vec![]),
                    Samples(vec![]),
                    Samples(vec![]),
                    Samples(vec![]),
                );
                for _ in 0..iters {
                    let t0 = Instant::now();
                    let mut docs = load(&[Source {
                        name: "bench.yaml",
                        text: yaml,
                    }]);
                    let t1 = Instant::now();
                    validate(&mut docs);
                    let t2 = Instant::now();
                    let problems: usize = docs.iter().map(|d| d.problems.len()).sum();
                    assert_eq!(
                        problems,
                        0,
                        "generated pipeline is invalid: {:?}",
                        docs.iter()
                            .flat_map(|d| &d.problems)
                            .take(3)
                            .collect::<Vec<_>>()
                    );
                    let Some(Object::Pipeline(p)) = &docs[1].object else {
                        panic!("no pipeline")
                    };
                    let dag =
                        Dag::build(&p.spec.tasks, &FieldPath::from("spec.tasks")).expect("a DAG");
                    let t3 = Instant::now();
                    let finished: Vec<bool> = (0..n).map(|i| i < n / 2).collect();
                    let ready = dag.ready(&finished, &finished);
                    let t4 = Instant::now();
                    std::hint::black_box(ready);
                    parse.0.push(t1 - t0);
                    valid.0.push(t2 - t1);
                    dag_t.0.push(t3 - t2);
                    ready_t.0.push(t4 - t3);
                    total.0.push(t4 - t0);
                }
                let pair = |s: &Samples| format!("{}/{}", ms(s.pct(0.5)), ms(s.pct(0.99)));
                println!(
                    "{:<15} {:>6} {:>5} {:>5} {:>17} {:>17} {:>15} {:>15} {:>17} {:>12.1}",
                    shape.name(),
                    n,
                    input,
                    iters,
                    pair(&parse),
                    pair(&valid),
                    pair(&dag_t),
                    pair(&ready_t),
                    pair(&total),
                    total.pct(0.5).as_secs_f64() * 1e6 / n as f64
                );
            }
        }
    }
}
