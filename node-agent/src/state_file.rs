//! Reading a step's state record as the agent must: the pod wrote it, so it is untrusted.
//! Size-limited, decoded strictly, results checked (names, total size).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tektite_api::step::{StateError, StepState};
use tektite_api::validate::result_name;

/// Why a state record cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read the step state record: {0}")]
    Read(#[source] io::Error),
    #[error("the step state record is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(transparent)]
    Decode(#[from] StateError),
    #[error("the step state record has no end, yet the step's post file is there")]
    Unfinished,
    #[error("result {name:?} in the step state record has an invalid name: it {why}")]
    ResultName { name: String, why: String },
    #[error(
        "the results in the step state record total {total} bytes, more than the {limit}-byte limit"
    )]
    ResultsTooLarge { total: u64, limit: u64 },
}

impl StateFileError {
    /// The file is gone (its pod was deleted while we read): not worth an event.
    pub fn is_gone(&self) -> bool {
        matches!(self, StateFileError::Read(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// Reads and checks the state record at `path`. `results_limit` bounds the results' total
/// size; the file itself may be a few times larger (JSON escapes) plus the record's fields.
pub fn read(path: &Path, results_limit: u64) -> Result<StepState, StateFileError> {
    let file_limit = results_limit.saturating_mul(6).saturating_add(64 * 1024);
    let file = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(StateFileError::Read)?;
    let meta = file.metadata().map_err(StateFileError::Read)?;
    if !meta.is_file() {
        return Err(StateFileError::Read(io::Error::other("not a regular file")));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(file_limit) as usize);
    file.take(file_limit + 1)
        .read_to_end(&mut bytes)
        .map_err(StateFileError::Read)?;
    if bytes.len() as u64 > file_limit {
        return Err(StateFileError::TooLarge { limit: file_limit });
    }
    let state = StepState::decode(&bytes)?;
    let mut total = 0u64;
    for r in &state.results {
        result_name(&r.name).map_err(|why| StateFileError::ResultName {
            name: r.name.clone(),
            why,
        })?;
        total += r.value.len() as u64;
    }
    if total > results_limit {
        return Err(StateFileError::ResultsTooLarge {
            total,
            limit: results_limit,
        });
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tektite_api::step::{RecordedResult, ResultKind};

    fn state_with(results: &[(&str, usize)]) -> StepState {
        let mut s = StepState::started("2026-11-22T10:00:00Z".parse().unwrap());
        s.finished_at = Some(s.started_at);
        s.results = results
            .iter()
            .map(|(n, len)| RecordedResult {
                name: (*n).into(),
                kind: ResultKind::Task,
                value: "v".repeat(*len),
            })
            .collect();
        s
    }

    #[test]
    fn a_good_record_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.state");
        let s = state_with(&[("digest", 10)]);
        fs::write(&path, s.encode()).unwrap();
        assert_eq!(read(&path, 1024).unwrap(), s);
    }

    #[test]
    fn untrusted_records_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.state");
        fs::write(&path, &state_with(&[("digest", 10)]).encode()[..20]).unwrap();
        assert!(matches!(read(&path, 1024), Err(StateFileError::Decode(_))));

        fs::write(&path, state_with(&[("../x", 1)]).encode()).unwrap();
        assert!(matches!(
            read(&path, 1024),
            Err(StateFileError::ResultName { .. })
        ));

        fs::write(&path, state_with(&[("a", 600), ("b", 600)]).encode()).unwrap();
        let err = read(&path, 1024).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the results in the step state record total 1200 bytes, more than the 1024-byte limit"
        );

        fs::write(&path, vec![b' '; 200 * 1024]).unwrap();
        assert!(matches!(
            read(&path, 1024),
            Err(StateFileError::TooLarge { .. })
        ));

        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        assert!(matches!(read(&path, 1024), Err(StateFileError::Read(_))));

        assert!(
            read(&dir.path().join("missing"), 1024)
                .unwrap_err()
                .is_gone()
        );
    }
}
