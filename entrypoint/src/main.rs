//! The tektite entrypoint. The entrypoint issue fills this binary. It must depend on
//! neither kube nor tonic.

fn main() {
    eprintln!("tektite-entrypoint is not built yet: see the entrypoint issue");
    std::process::exit(1);
}
