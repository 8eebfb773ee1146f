//! What `tkt` shares with the rest of tektite: the local kubelet, which `tkt run` runs
//! Pods through and the CI level's kubelet stand-in runs an API server's Pods through.

pub mod kubelet;
