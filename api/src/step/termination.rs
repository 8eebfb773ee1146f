//! The Tekton-style termination message: a JSON list of `{key, value, type}` that the
//! kubelet copies into the container's status. It is the fallback for clusters (or nodes)
//! without the agent, so it is capped at the kubelet's 4096 bytes per container; results
//! that do not fit are named in a `ResultsOmitted` entry, never cut silently.

use serde::{Deserialize, Serialize};

use super::state::{ResultKind, StepReason, StepState};

/// The kubelet keeps at most this many bytes of a container's termination message.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// Tekton's `type` numbers.
pub const TYPE_TASK_RESULT: u8 = 1;
pub const TYPE_INTERNAL: u8 = 3;
pub const TYPE_STEP_RESULT: u8 = 4;
pub const TYPE_STEP_ARTIFACTS: u8 = 5;
pub const TYPE_TASK_ARTIFACTS: u8 = 6;

/// Internal keys (type 3).
pub const KEY_STARTED_AT: &str = "StartedAt";
pub const KEY_EXIT_CODE: &str = "ExitCode";
pub const KEY_REASON: &str = "Reason";
pub const KEY_MESSAGE: &str = "Message";
pub const KEY_RESULTS_OMITTED: &str = "ResultsOmitted";

/// One entry of the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminationEntry {
    pub key: String,
    pub value: String,
    #[serde(rename = "type")]
    pub kind: u8,
}

impl TerminationEntry {
    fn internal(key: &str, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            kind: TYPE_INTERNAL,
        }
    }
}

/// The message for a finished step, at most `limit` bytes.
pub fn encode(state: &StepState, limit: usize) -> String {
    // Tekton's time layout: milliseconds, UTC.
    let started = state
        .started_at
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let mut base = vec![TerminationEntry::internal(KEY_STARTED_AT, started)];
    if let Some(reason) = state.reason {
        if !matches!(reason, StepReason::Completed | StepReason::Error) {
            base.push(TerminationEntry::internal(KEY_REASON, reason.key()));
        }
        if reason == StepReason::Continued
            && let Some(code) = state.exit_code
        {
            base.push(TerminationEntry::internal(KEY_EXIT_CODE, code.to_string()));
        }
    }
    if let Some(message) = &state.message {
        let message: String = message.chars().take(512).collect();
        base.push(TerminationEntry::internal(KEY_MESSAGE, message));
    }
    let results: Vec<TerminationEntry> = state
        .results
        .iter()
        .map(|r| TerminationEntry {
            key: r.name.clone(),
            value: r.value.clone(),
            kind: match r.kind {
                ResultKind::Task => TYPE_TASK_RESULT,
                ResultKind::Step => TYPE_STEP_RESULT,
                ResultKind::StepArtifacts => TYPE_STEP_ARTIFACTS,
                ResultKind::TaskArtifacts => TYPE_TASK_ARTIFACTS,
            },
        })
        .collect();

    // The message with `base`, the kept results and an optional note.
    let message = |kept: &[&TerminationEntry], note: Option<TerminationEntry>| {
        let entries: Vec<TerminationEntry> = base
            .iter()
            .chain(kept.iter().copied())
            .cloned()
            .chain(note)
            .collect();
        to_json(&entries)
    };
    let mut kept: Vec<&TerminationEntry> = Vec::new();
    let mut omitted: Vec<&TerminationEntry> = Vec::new();
    for r in &results {
        kept.push(r);
        if message(&kept, None).len() > limit {
            kept.pop();
            omitted.push(r);
        }
    }
    if omitted.is_empty() {
        return message(&kept, None);
    }
    // Name what is missing; make room for that note by dropping kept results from the end.
    loop {
        let with_note = message(&kept, Some(omitted_note(&omitted, limit)));
        match kept.pop() {
            Some(dropped) if with_note.len() > limit => omitted.push(dropped),
            _ => return with_note,
        }
    }
}

fn omitted_note(omitted: &[&TerminationEntry], limit: usize) -> TerminationEntry {
    let bytes: usize = omitted.iter().map(|r| r.value.len()).sum();
    let names: Vec<&str> = omitted.iter().map(|r| r.key.as_str()).collect();
    let mut value = format!(
        "{} result(s) totalling {bytes} bytes do not fit the {limit}-byte termination message: {}; \
         the node agent reports them in full",
        names.len(),
        names.join(", ")
    );
    if value.len() > limit / 4 {
        value = format!(
            "{} result(s) totalling {bytes} bytes do not fit the {limit}-byte termination message; \
             the node agent reports them in full",
            names.len()
        );
    }
    TerminationEntry::internal(KEY_RESULTS_OMITTED, value)
}

fn to_json(entries: &[TerminationEntry]) -> String {
    serde_json::to_string(entries).expect("entries always serialize")
}

/// Reads a termination message (Tekton's or ours).
pub fn decode(message: &str) -> Result<Vec<TerminationEntry>, serde_json::Error> {
    serde_json::from_str(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::state::RecordedResult;

    fn state(reason: StepReason, results: &[(&str, usize)]) -> StepState {
        StepState {
            finished_at: Some("2026-11-22T10:00:02Z".parse().unwrap()),
            exit_code: Some(0),
            reason: Some(reason),
            results: results
                .iter()
                .map(|(name, len)| RecordedResult {
                    name: (*name).into(),
                    kind: ResultKind::Task,
                    value: "x".repeat(*len),
                })
                .collect(),
            ..StepState::started("2026-11-22T10:00:01.123456789Z".parse().unwrap())
        }
    }

    #[test]
    fn a_completed_step_reports_its_start_and_results_as_tekton_does() {
        let msg = encode(&state(StepReason::Completed, &[("digest", 3)]), 4096);
        assert_eq!(
            msg,
            r#"[{"key":"StartedAt","value":"2026-11-22T10:00:01.123Z","type":3},{"key":"digest","value":"xxx","type":1}]"#
        );
    }

    #[test]
    fn skipped_and_continued_steps_carry_reason_and_exit_code() {
        let skipped = decode(&encode(&state(StepReason::Skipped, &[]), 4096)).unwrap();
        assert!(skipped.contains(&TerminationEntry::internal(KEY_REASON, "Skipped")));
        let mut cont = state(StepReason::Continued, &[]);
        cont.exit_code = Some(7);
        let cont = decode(&encode(&cont, 4096)).unwrap();
        assert!(cont.contains(&TerminationEntry::internal(KEY_EXIT_CODE, "7")));
    }

    #[test]
    fn results_that_do_not_fit_are_named_not_cut() {
        let s = state(
            StepReason::Completed,
            &[("small", 10), ("huge", 5000), ("tiny", 1)],
        );
        let msg = encode(&s, 4096);
        assert!(msg.len() <= 4096);
        let entries = decode(&msg).unwrap();
        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["StartedAt", "small", "tiny", "ResultsOmitted"]);
        let note = &entries[3].value;
        assert!(
            note.contains("huge") && note.contains("5000 bytes"),
            "{note}"
        );
    }

    #[test]
    fn the_limit_holds_whatever_the_results() {
        for n in [1, 10, 100, 1000] {
            let names: Vec<(String, usize)> =
                (0..n).map(|i| (format!("result-{i:04}"), 40)).collect();
            let refs: Vec<(&str, usize)> = names.iter().map(|(n, l)| (n.as_str(), *l)).collect();
            let msg = encode(&state(StepReason::Completed, &refs), 4096);
            assert!(msg.len() <= 4096, "{n} results: {} bytes", msg.len());
            let entries = decode(&msg).unwrap();
            if n == 1000 {
                assert_eq!(entries.last().unwrap().key, KEY_RESULTS_OMITTED);
            }
        }
    }
}
