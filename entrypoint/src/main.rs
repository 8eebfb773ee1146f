//! The `tektite-entrypoint` binary: see the library.

fn main() {
    std::process::exit(tektite_entrypoint::run(
        std::env::args_os().skip(1).collect(),
    ));
}
