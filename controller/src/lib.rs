//! The Kubernetes shell of tektite: reconcilers for TaskRun and PipelineRun around the
//! engine's decisions, the pod builder, and the gRPC ingest of step events from the node
//! agents.

pub mod pod_cache;

pub mod admission;
pub mod agents;
pub mod auth;
mod conditions;
pub mod context;
pub mod conversion;
pub mod events;
pub mod extender;
pub mod git;
pub mod http;
pub mod images;
pub mod ingest;
pub mod lenient;
pub mod metrics;
pub mod owned;
mod patch;
pub mod pipelinerun;
pub mod pod_index;
pub mod resolve;
pub mod serving;
pub mod steps;
pub mod taskrun;
