//! Watcher events as the gRPC contract carries them.

use jiff::Timestamp;
use tektite_api::step::{ResultKind, StepState};
use tektite_proto::agent as pb;

use crate::event::Event;

/// `event` as wire event number `seq`; `step_name` when the agent knows it.
pub fn to_wire(seq: u64, event: &Event, step_name: Option<&str>) -> pb::Event {
    let name = step_name.unwrap_or_default().to_owned();
    let index = |step: usize| u32::try_from(step).unwrap_or(u32::MAX);
    let kind = match event {
        Event::StepStarted {
            pod_uid,
            step,
            started_at,
        } => pb::event::Kind::StepStarted(pb::StepStarted {
            pod_uid: pod_uid.clone(),
            step_index: index(*step),
            step_name: name,
            started_at: Some(timestamp(*started_at)),
        }),
        Event::StepFinished {
            pod_uid,
            step,
            state,
        } => pb::event::Kind::StepFinished(finished(pod_uid, index(*step), name, state)),
        Event::StepUnreadable {
            pod_uid,
            step,
            error,
        } => pb::event::Kind::StepUnreadable(pb::StepUnreadable {
            pod_uid: pod_uid.clone(),
            step_index: index(*step),
            step_name: name,
            error: error.clone(),
        }),
        Event::PodGone { pod_uid } => pb::event::Kind::PodGone(pb::PodGone {
            pod_uid: pod_uid.clone(),
        }),
    };
    pb::Event {
        seq,
        kind: Some(kind),
    }
}

fn finished(
    pod_uid: &str,
    step_index: u32,
    step_name: String,
    state: &StepState,
) -> pb::StepFinished {
    pb::StepFinished {
        pod_uid: pod_uid.to_owned(),
        step_index,
        step_name,
        started_at: Some(timestamp(state.started_at)),
        finished_at: state.finished_at.map(timestamp),
        exit_code: state.exit_code,
        reason: state.reason.map(|r| r.key().to_owned()).unwrap_or_default(),
        message: state.message.clone().unwrap_or_default(),
        results: state
            .results
            .iter()
            .map(|r| pb::Result {
                name: r.name.clone(),
                kind: match r.kind {
                    ResultKind::Task => pb::ResultKind::Task,
                    ResultKind::Step => pb::ResultKind::Step,
                    ResultKind::StepArtifacts => pb::ResultKind::StepArtifacts,
                    ResultKind::TaskArtifacts => pb::ResultKind::TaskArtifacts,
                } as i32,
                value: r.value.clone(),
            })
            .collect(),
    }
}

pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tektite_api::step::{RecordedResult, StepReason};

    #[test]
    fn a_finished_step_keeps_its_nanoseconds_results_and_reason() {
        let mut state = StepState::started("2026-11-22T10:00:00.000000123Z".parse().unwrap());
        state.finished_at = Some("2026-11-22T10:00:01.5Z".parse().unwrap());
        state.exit_code = Some(3);
        state.reason = Some(StepReason::Continued);
        state.results = vec![RecordedResult {
            name: "digest".into(),
            kind: ResultKind::Step,
            value: "x".repeat(100_000),
        }];
        let event = Event::StepFinished {
            pod_uid: "uid".into(),
            step: 2,
            state,
        };
        let wire = to_wire(7, &event, Some("build"));
        assert_eq!(wire.seq, 7);
        let Some(pb::event::Kind::StepFinished(f)) = wire.kind else {
            panic!("not a StepFinished: {wire:?}")
        };
        assert_eq!((f.step_index, f.step_name.as_str()), (2, "build"));
        assert_eq!(f.started_at.unwrap().nanos, 123);
        assert_eq!(f.finished_at.unwrap().nanos, 500_000_000);
        assert_eq!((f.exit_code, f.reason.as_str()), (Some(3), "Continued"));
        assert_eq!(f.results[0].kind, pb::ResultKind::Step as i32);
        assert_eq!(f.results[0].value.len(), 100_000);
    }

    #[test]
    fn pod_removal_has_no_step() {
        let wire = to_wire(
            1,
            &Event::PodGone {
                pod_uid: "u".into(),
            },
            None,
        );
        assert_eq!(
            wire.kind,
            Some(pb::event::Kind::PodGone(pb::PodGone {
                pod_uid: "u".into()
            }))
        );
    }
}
