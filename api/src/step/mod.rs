//! The contract between whoever lays out a step Pod (the controller's pod builder, the
//! local executor), the entrypoint that wraps every step, and the node agent that watches
//! what the entrypoint leaves behind. One copy, shared by all of them.

mod args;
pub mod creds;
pub mod layout;
mod state;
pub mod termination;

pub use args::{
    ArgsError, DEFAULT_RESULTS_LIMIT, EntrypointArgs, INIT_SUBCOMMAND, InitArgs, WaitMode,
};
pub use state::{RecordedResult, ResultKind, STATE_VERSION, StateError, StepReason, StepState};
