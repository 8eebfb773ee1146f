//! Run semantics: given a run's spec, what is known of its children and `now`, decide
//! what happens next. Pure functions only; the engine issue fills this crate.
//!
//! This crate depends on `tektite-api` and must never depend on kube-client, tokio or
//! tonic: a rule that needs a runtime to test is in the wrong crate.
