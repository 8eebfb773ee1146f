//! Run semantics: given a run's spec, what is known of its children and `now`, decide
//! what happens next, and the Pod a TaskRun attempt runs as. Pure functions only: no
//! I/O, no clock, no runtime.
//!
//! This crate depends on `tektite-api` and must never depend on kube-client, tokio or
//! tonic: a rule that needs a runtime to test is in the wrong crate.

pub mod child;
pub mod names;
mod params;
pub mod pipeline;
pub mod pod;
pub mod step_action;
pub mod task;
pub mod taskrun;

pub use params::ParamError;
