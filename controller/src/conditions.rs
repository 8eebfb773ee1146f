//! The `Succeeded` condition of runs.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tektite_api::v1::{self, Condition};

/// Whether the run has ended (its `Succeeded` condition is True or False).
pub fn is_done(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == v1::SUCCEEDED && c.status != "Unknown")
}

/// `new`, keeping the transition time of the old condition when it did not change.
pub fn transition(old: &[Condition], mut new: Condition, now: Timestamp) -> Vec<Condition> {
    let before = old.iter().find(|c| c.type_ == v1::SUCCEEDED);
    new.last_transition_time = match before {
        Some(b) if b.status == new.status && b.reason == new.reason => {
            b.last_transition_time.clone()
        }
        _ => Some(Time(now)),
    };
    vec![new]
}
