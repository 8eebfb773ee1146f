//! The tektite node agent. The node-agent issue fills this binary.

fn main() {
    eprintln!("tektite-node-agent is not built yet: see the node-agent issue");
    std::process::exit(1);
}
