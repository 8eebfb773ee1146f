//! Reading the results a step left: task results from the results directory, step results
//! from `<step-metadata-dir>/results`. Names must be plain result names, files must be
//! regular files (a symlink could point anywhere on the node) holding UTF-8, and all
//! results together must stay under the configured limit.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tektite_api::step::layout::{
    ARTIFACTS_FILE, PodPaths, STEP_ARTIFACTS_DIR, STEP_RESULTS_DIR, Volume,
};
use tektite_api::step::{EntrypointArgs, RecordedResult, ResultKind, StepReason};
use tektite_api::validate::result_name;

/// Why the results were refused.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error(
        "result {name:?} is {size} bytes, which brings this TaskRun's results to {total} bytes; \
         they may total at most {limit} bytes ({limit_human}). Write less, or raise the limit \
         (--results-limit)"
    )]
    TooLarge {
        name: String,
        size: u64,
        total: u64,
        limit: u64,
        limit_human: String,
    },
    #[error("result {name:?} {why}")]
    Invalid { name: String, why: String },
    #[error("cannot read result {name:?} at {path}: {source}")]
    Read {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ResultsError {
    pub fn reason(&self) -> StepReason {
        match self {
            ResultsError::TooLarge { .. } => StepReason::ResultLargerThanAllowedLimit,
            ResultsError::Invalid { .. } | ResultsError::Read { .. } => StepReason::InvalidResult,
        }
    }
}

/// The step's task and step results, in the order they were declared.
pub fn collect(args: &EntrypointArgs) -> Result<Vec<RecordedResult>, ResultsError> {
    let task_dir = args
        .results_dir
        .clone()
        .unwrap_or_else(|| PodPaths::in_pod().mount_path(&Volume::Results));
    let step_dir = args
        .step_metadata_dir
        .as_ref()
        .map(|d| d.join(STEP_RESULTS_DIR));
    let wanted = args
        .results
        .iter()
        .map(|n| (n, ResultKind::Task, Some(task_dir.as_path())))
        .chain(
            args.step_results
                .iter()
                .map(|n| (n, ResultKind::Step, step_dir.as_deref())),
        );

    let mut total = 0u64;
    let mut out = Vec::new();
    for (name, kind, dir) in wanted {
        result_name(name).map_err(|why| ResultsError::Invalid {
            name: name.clone(),
            why: format!("has an invalid name: it {why}"),
        })?;
        let Some(dir) = dir else {
            return Err(ResultsError::Invalid {
                name: name.clone(),
                why: "is a step result, but the step has no metadata directory".into(),
            });
        };
        let Some(value) = read_one(name, &dir.join(name), &mut total, args.results_limit)? else {
            continue;
        };
        out.push(RecordedResult {
            name: name.clone(),
            kind,
            value,
        });
    }
    // Alpha artifacts: the step's file, then the Task's, each an artifacts document.
    if let Some(task_artifacts) = &args.artifacts_dir {
        let step_file = args
            .step_metadata_dir
            .as_ref()
            .map(|d| d.join(STEP_ARTIFACTS_DIR).join(ARTIFACTS_FILE));
        let files = step_file
            .map(|f| (f, ResultKind::StepArtifacts))
            .into_iter()
            .chain([(
                task_artifacts.join(ARTIFACTS_FILE),
                ResultKind::TaskArtifacts,
            )]);
        for (file, kind) in files {
            let name = ARTIFACTS_FILE.to_owned();
            let Some(value) = read_one(&name, &file, &mut total, args.results_limit)? else {
                continue;
            };
            if let Err(e) = serde_json::from_str::<tektite_api::v1::Artifacts>(&value) {
                return Err(ResultsError::Invalid {
                    name: file.display().to_string(),
                    why: format!(
                        "is not an artifacts document ({{\"inputs\": [...], \"outputs\": [...]}}): {e}"
                    ),
                });
            }
            out.push(RecordedResult { name, kind, value });
        }
    }
    Ok(out)
}

/// One result file; `None` when the step did not write it.
fn read_one(
    name: &str,
    path: &Path,
    total: &mut u64,
    limit: u64,
) -> Result<Option<String>, ResultsError> {
    let invalid = |why: &str| ResultsError::Invalid {
        name: name.into(),
        why: why.into(),
    };
    let read_err = |source| ResultsError::Read {
        name: name.into(),
        path: path.to_owned(),
        source,
    };
    // No following symlinks; no blocking on a FIFO planted under the result's name.
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(invalid(
                "is a symbolic link; write the value into the file itself",
            ));
        }
        Err(e) => return Err(read_err(e)),
    };
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(invalid("is not a regular file"));
    }
    let too_large = |size: u64| ResultsError::TooLarge {
        name: name.into(),
        size,
        total: *total + size,
        limit,
        limit_human: human_bytes(limit),
    };
    if total.saturating_add(meta.len()) > limit {
        return Err(too_large(meta.len()));
    }
    // The file may still grow (a background process): read no more than the limit allows.
    let allowed = limit - *total;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    take(file, allowed.saturating_add(1), &mut bytes).map_err(read_err)?;
    let size = bytes.len() as u64;
    if size > allowed {
        return Err(too_large(size));
    }
    *total += size;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| invalid("is not UTF-8 text"))
}

fn take(file: File, limit: u64, into: &mut Vec<u8>) -> io::Result<()> {
    file.take(limit).read_to_end(into).map(|_| ())
}

/// `1048576` → `1 MiB`, `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, results: &[&str], limit: u64) -> EntrypointArgs {
        let mut a = EntrypointArgs::new(dir.join("out"), vec!["true".into()]);
        a.results_dir = Some(dir.join("results"));
        a.step_metadata_dir = Some(dir.join("steps/step-a"));
        a.results = results.iter().map(|s| s.to_string()).collect();
        a.results_limit = limit;
        fs::create_dir_all(dir.join("results")).unwrap();
        fs::create_dir_all(dir.join("steps/step-a/results")).unwrap();
        a
    }

    #[test]
    fn declared_results_are_read_and_missing_ones_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path(), &["digest", "absent"], 1024);
        a.step_results = vec!["sha".into()];
        fs::write(dir.path().join("results/digest"), "sha256:abc\n").unwrap();
        fs::write(dir.path().join("results/undeclared"), "ignored").unwrap();
        fs::write(dir.path().join("steps/step-a/results/sha"), "123").unwrap();
        let got = collect(&a).unwrap();
        assert_eq!(
            got,
            [
                RecordedResult {
                    name: "digest".into(),
                    kind: ResultKind::Task,
                    value: "sha256:abc\n".into()
                },
                RecordedResult {
                    name: "sha".into(),
                    kind: ResultKind::Step,
                    value: "123".into()
                },
            ]
        );
    }

    #[test]
    fn the_total_limit_names_the_result_and_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path(), &["a", "b"], 1024);
        fs::write(dir.path().join("results/a"), "x".repeat(600)).unwrap();
        fs::write(dir.path().join("results/b"), "x".repeat(600)).unwrap();
        let err = collect(&a).unwrap_err();
        assert_eq!(err.reason(), StepReason::ResultLargerThanAllowedLimit);
        let msg = err.to_string();
        assert!(
            msg.contains("\"b\" is 600 bytes") && msg.contains("1 KiB"),
            "{msg}"
        );
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["../../etc/passwd", "a/b", "..", "", "-x"] {
            let a = args(dir.path(), &[name], 1024);
            let err = collect(&a).unwrap_err();
            assert_eq!(err.reason(), StepReason::InvalidResult, "{name}");
            assert!(err.to_string().contains("invalid name"), "{name}: {err}");
        }
    }

    #[test]
    fn symlinks_directories_fifos_and_binary_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path(), &["link"], 1024);
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("results/link")).unwrap();
        assert!(
            collect(&a)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );

        let a = args(dir.path(), &["dir"], 1024);
        fs::create_dir(dir.path().join("results/dir")).unwrap();
        assert!(
            collect(&a)
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );

        let a = args(dir.path(), &["pipe"], 1024);
        nix::unistd::mkfifo(
            &dir.path().join("results/pipe"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert!(
            collect(&a)
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );

        let a = args(dir.path(), &["bin"], 1024);
        fs::write(dir.path().join("results/bin"), [0xff, 0xfe]).unwrap();
        assert!(collect(&a).unwrap_err().to_string().contains("UTF-8"));
    }

    #[test]
    fn sizes_read_for_people() {
        assert_eq!(human_bytes(1024 * 1024), "1 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 bytes");
    }
}
