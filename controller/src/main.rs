//! The tektite controller. The controller issue fills this binary: kube-runtime
//! reconcilers for TaskRun and PipelineRun, the pod builder and gRPC ingest from agents.

fn main() {
    eprintln!("tektite-controller is not built yet: see the controller issue");
    std::process::exit(1);
}
