//! The node agent's library: the watcher that turns every step's marker files on a node
//! into events, and the reading of step state records. The agent binary adds gRPC,
//! metrics and flags (feature `agent`, with [`wire`]); the local executor (`tkt run`)
//! uses this library without them, and so without kube, tonic or hyper.

mod event;
mod state_file;
mod watcher;
#[cfg(feature = "agent")]
pub mod wire;

pub use event::{Event, EventKind};
pub use state_file::{StateFileError, read as read_state_file};
pub use watcher::{Config, Stats, WatchError, Watcher};
