//! The step state record: what the entrypoint leaves beside its post file (`out.state`),
//! replaced atomically, once when the step starts and once when it ends. The agent turns
//! it into StepStarted/StepFinished events; after a restart it rebuilds every live step's
//! state from these records alone.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// This record's format version; a reader refuses versions it does not know.
pub const STATE_VERSION: u32 = 1;

/// One step's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepState {
    pub version: u32,
    /// When the command was started (for a skipped step: when it was skipped).
    pub started_at: Timestamp,
    /// Absent while the step runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// The command's own exit code (absent when it never ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<StepReason>,
    /// What went wrong, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The task and step results the step left, read when it ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<RecordedResult>,
}

/// Why a step ended the way it did. The names are Tekton's where Tekton has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StepReason {
    /// Exit code 0.
    Completed,
    /// A non-zero exit code, or the command could not be started.
    Error,
    /// A non-zero exit code ignored by `onError: continue`.
    Continued,
    /// Not run, because a step before it failed.
    Skipped,
    /// Not run, because its `when` expressions are false: the next step runs.
    WhenSkipped,
    /// Killed at its `timeout`.
    TimeoutExceeded,
    /// Killed because the run was cancelled (or the entrypoint was told to stop).
    Cancelled,
    /// Its results exceed the configured limit.
    ResultLargerThanAllowedLimit,
    /// A result file is not a plain, regular UTF-8 file with a valid name.
    InvalidResult,
}

impl StepReason {
    /// Whether the step counts as successful (the next step may run).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            StepReason::Completed | StepReason::Continued | StepReason::WhenSkipped
        )
    }

    /// The name the state record, the termination message and the agent's wire carry
    /// (its serde name), read back by [`StepReason`]'s `Deserialize`: [`Self::as_str`]
    /// but for a when-skipped step, which Tekton reports as `Skipped` too.
    pub fn key(self) -> &'static str {
        match self {
            StepReason::WhenSkipped => "WhenSkipped",
            other => other.as_str(),
        }
    }

    /// Tekton's `terminationReason`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepReason::Completed => "Completed",
            StepReason::Error => "Error",
            StepReason::Continued => "Continued",
            // Tekton's terminationReason for both.
            StepReason::Skipped | StepReason::WhenSkipped => "Skipped",
            StepReason::TimeoutExceeded => "TimeoutExceeded",
            StepReason::Cancelled => "Cancelled",
            StepReason::ResultLargerThanAllowedLimit => "ResultLargerThanAllowedLimit",
            StepReason::InvalidResult => "InvalidResult",
        }
    }
}

/// Whether a result is the Task's or the step's own; or, for the alpha artifacts, the
/// step's artifacts file or the Task's (the value is the file's JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResultKind {
    Task,
    Step,
    StepArtifacts,
    TaskArtifacts,
}

/// One result value, as read from its file (an artifacts document is named
/// [`super::layout::ARTIFACTS_FILE`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedResult {
    pub name: String,
    pub kind: ResultKind,
    pub value: String,
}

/// Why a state record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the step state record is not valid (truncated or garbage?): {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the step state record has version {0}; this build reads version {STATE_VERSION}")]
    Version(u32),
}

impl StepState {
    /// The record written just before the command starts.
    pub fn started(at: Timestamp) -> Self {
        Self {
            version: STATE_VERSION,
            started_at: at,
            finished_at: None,
            exit_code: None,
            reason: None,
            message: None,
            results: Vec::new(),
        }
    }

    /// A step end no entrypoint recorded (it was stopped, or its record is unusable):
    /// started at `started`, ended at `at` for `reason`.
    pub fn ended(started: Timestamp, at: Timestamp, reason: StepReason, message: String) -> Self {
        Self {
            finished_at: Some(at),
            reason: Some(reason),
            message: Some(message),
            ..Self::started(started)
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished_at.is_some()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a step state always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let state: StepState = serde_json::from_slice(bytes)?;
        if state.version != STATE_VERSION {
            return Err(StateError::Version(state.version));
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished() -> StepState {
        StepState {
            finished_at: Some("2026-11-22T10:00:01.000000123Z".parse().unwrap()),
            exit_code: Some(3),
            reason: Some(StepReason::Continued),
            message: Some("exited 3".into()),
            results: vec![RecordedResult {
                name: "digest".into(),
                kind: ResultKind::Task,
                value: "sha256:0".into(),
            }],
            ..StepState::started("2026-11-22T10:00:00.5Z".parse().unwrap())
        }
    }

    #[test]
    fn records_round_trip_with_nanoseconds() {
        let s = finished();
        let text = String::from_utf8(s.encode()).unwrap();
        assert!(
            text.contains(r#""finishedAt":"2026-11-22T10:00:01.000000123Z""#),
            "{text}"
        );
        assert!(text.contains(r#""reason":"Continued""#), "{text}");
        assert_eq!(StepState::decode(text.as_bytes()).unwrap(), s);
    }

    #[test]
    fn every_reason_reads_back_from_its_key_and_when_skipped_is_tektons_skipped() {
        use StepReason::*;
        for r in [
            Completed,
            Error,
            Continued,
            Skipped,
            WhenSkipped,
            TimeoutExceeded,
            Cancelled,
            ResultLargerThanAllowedLimit,
            InvalidResult,
        ] {
            let back: StepReason =
                serde_json::from_value(serde_json::Value::String(r.key().into())).unwrap();
            assert_eq!(back, r);
        }
        assert_eq!(WhenSkipped.as_str(), "Skipped");
        assert!(WhenSkipped.is_success() && !Skipped.is_success());
    }

    #[test]
    fn a_start_record_has_no_end() {
        let s = StepState::started(Timestamp::UNIX_EPOCH);
        assert!(!s.is_finished());
        assert_eq!(
            String::from_utf8(s.encode()).unwrap(),
            r#"{"version":1,"startedAt":"1970-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn truncated_or_foreign_records_are_errors() {
        let full = finished().encode();
        for cut in [0, 1, full.len() / 2, full.len() - 1] {
            assert!(StepState::decode(&full[..cut]).is_err(), "cut at {cut}");
        }
        assert!(StepState::decode(b"\0\0garbage").is_err());
        let err = StepState::decode(br#"{"version":9,"startedAt":"1970-01-01T00:00:00Z"}"#);
        assert!(matches!(err, Err(StateError::Version(9))));
    }
}
