//! The agent ⇄ controller gRPC contract (`proto/agent.proto`), generated at build time.
//! Free of kube: both the agent and the controller depend on it.

#[allow(clippy::all, missing_debug_implementations)]
pub mod agent {
    tonic::include_proto!("tektite.agent.v1");
}
