//! The tekton.dev API in Rust: types for tekton.dev/v1, conversion from v1beta1 and
//! v1alpha1 (with PipelineResources), validation that reports every problem with its
//! field path, `$(...)` variables, and the pipeline DAG.
//!
//! This crate does no I/O beyond parsing text it is given, and never depends on a
//! Kubernetes client, tokio or tonic.

pub mod convert;
pub mod crd;
pub mod dag;
pub mod defaults;
pub mod document;
pub mod labels;
pub mod problem;
pub mod schema;
pub mod step;
mod strict;
pub mod v1;
pub mod v1beta1;
pub mod validate;
pub mod vars;

pub use convert::resources::{PipelineResource, ResourceType};
pub use document::{Document, Kind, Object, Source, load};
pub use problem::{FieldPath, Problem};
