//! The agent ⇄ controller gRPC contract. The node-agent issue adds `agent.proto` and its
//! generated code here; this crate stays free of kube.
