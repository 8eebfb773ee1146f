//! What the watcher reports: one event per step start, step end and pod removal, keyed by
//! pod UID + step index + kind, so that a report sent twice is harmless.

use jiff::Timestamp;
use tektite_api::step::StepState;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The step's command was started (its start record landed).
    StepStarted {
        pod_uid: String,
        step: usize,
        started_at: Timestamp,
    },
    /// The step ended: its post file (or `.err`) landed after its final state record.
    StepFinished {
        pod_uid: String,
        step: usize,
        state: StepState,
    },
    /// The step's post file landed but its state record cannot be used.
    StepUnreadable {
        pod_uid: String,
        step: usize,
        error: String,
    },
    /// The pod's directory is gone: the kubelet removed the pod.
    PodGone { pod_uid: String },
}

/// Which of a step's events an [`Event`] is, for deduplication and acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Started,
    Finished,
    Unreadable,
    PodGone,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::StepStarted { .. } => EventKind::Started,
            Event::StepFinished { .. } => EventKind::Finished,
            Event::StepUnreadable { .. } => EventKind::Unreadable,
            Event::PodGone { .. } => EventKind::PodGone,
        }
    }

    pub fn pod_uid(&self) -> &str {
        match self {
            Event::StepStarted { pod_uid, .. }
            | Event::StepFinished { pod_uid, .. }
            | Event::StepUnreadable { pod_uid, .. }
            | Event::PodGone { pod_uid } => pod_uid,
        }
    }

    /// The step index, for step events.
    pub fn step(&self) -> Option<usize> {
        match self {
            Event::StepStarted { step, .. }
            | Event::StepFinished { step, .. }
            | Event::StepUnreadable { step, .. } => Some(*step),
            Event::PodGone { .. } => None,
        }
    }
}
