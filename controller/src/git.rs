//! The git resolver's clone mode, in-process (gix, as Tekton's uses go-git): the
//! repository at `url` cloned bare into a scratch directory, `revision` (a branch, a tag
//! or a commit) resolved to its commit, and the file at `pathInRepo` read from that
//! commit's tree, never checked out. A file at a commit never changes: what was read at a
//! full commit id is kept and read again without the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a file could not be had from a repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the git resolver reads http, https and git URLs, not {0:?}")]
    Scheme(String),
    #[error("pathInRepo {0:?} is outside the repository: give a path relative to its root")]
    Path(String),
    #[error("cloning {url}: {why}")]
    Clone { url: String, why: String },
    #[error("{url} has no revision {revision:?}")]
    Revision { url: String, revision: String },
    #[error("{url} at {revision} ({commit}) has no file {path:?}")]
    NoFile {
        url: String,
        revision: String,
        commit: String,
        path: String,
    },
    #[error("{url} at {revision}: {path:?} is larger than {max} bytes")]
    TooLarge {
        url: String,
        revision: String,
        path: String,
        max: usize,
    },
    #[error("cloning {url}: no answer within {0:?} (fetch-timeout)", .timeout)]
    Timeout { url: String, timeout: Duration },
}

/// The largest file read.
const MAX_FILE: usize = 4 * 1024 * 1024;

/// What was read, at full commit ids.
#[derive(Debug, Default)]
pub struct Git {
    files: Mutex<HashMap<(String, String, String), String>>,
}

fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

impl Git {
    /// The text of `path` in `url` at `revision`, and the commit it was read at.
    pub async fn file(
        &self,
        url: &str,
        revision: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(String, String), Error> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
        if !matches!(scheme, "http" | "https" | "git") {
            return Err(Error::Scheme(url.to_owned()));
        }
        let clean = path.trim_start_matches("./");
        if clean.starts_with('/')
            || clean.is_empty()
            || clean.split('/').any(|c| c == ".." || c.is_empty())
        {
            return Err(Error::Path(path.to_owned()));
        }
        let key = (url.to_owned(), revision.to_lowercase(), clean.to_owned());
        if is_commit(revision)
            && let Some(text) = self
                .files
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
        {
            return Ok((text.clone(), key.1.clone()));
        }
        let interrupt = Arc::new(AtomicBool::new(false));
        let (u, r, p, stop) = (
            url.to_owned(),
            revision.to_owned(),
            clean.to_owned(),
            interrupt.clone(),
        );
        let read = tokio::task::spawn_blocking(move || read(&u, &r, &p, &stop));
        let read = match tokio::time::timeout(timeout, read).await {
            Ok(joined) => joined.map_err(|e| Error::Clone {
                url: url.to_owned(),
                why: e.to_string(),
            })??,
            Err(_) => {
                // The clone stops at its next check of the flag; its directory goes with it.
                interrupt.store(true, Ordering::Relaxed);
                return Err(Error::Timeout {
                    url: url.to_owned(),
                    timeout,
                });
            }
        };
        if is_commit(revision) {
            self.files
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, read.0.clone());
        }
        Ok(read)
    }
}

/// Clones `url` bare into a scratch directory (removed after) and reads `path` at
/// `revision`.
fn read(
    url: &str,
    revision: &str,
    path: &str,
    interrupt: &AtomicBool,
) -> Result<(String, String), Error> {
    let clone = |why: String| Error::Clone {
        url: url.to_owned(),
        why,
    };
    let scratch = tempfile::Builder::new()
        .prefix("tektite-git-")
        .tempdir()
        .map_err(|e| clone(format!("a scratch directory: {e}")))?;
    let result = (|| {
        let mut prepare =
            gix::prepare_clone_bare(url, scratch.path()).map_err(|e| clone(e.to_string()))?;
        let (repo, _) = prepare
            .fetch_only(gix::progress::Discard, interrupt)
            .map_err(|e| clone(e.to_string()))?;
        // A branch is the remote's (the clone keeps branches as origin/<name>); a tag or
        // a commit id as it is.
        let commit = [
            revision.to_owned(),
            format!("refs/remotes/origin/{revision}"),
            format!("refs/tags/{revision}"),
        ]
        .iter()
        .find_map(|r| {
            repo.rev_parse_single(r.as_str())
                .ok()
                .and_then(|id| id.object().ok())
                .and_then(|o| o.peel_to_commit().ok())
        })
        .ok_or_else(|| Error::Revision {
            url: url.to_owned(),
            revision: revision.to_owned(),
        })?;
        let id = commit.id.to_string();
        let no_file = || Error::NoFile {
            url: url.to_owned(),
            revision: revision.to_owned(),
            commit: id.clone(),
            path: path.to_owned(),
        };
        let tree = commit.tree().map_err(|e| clone(e.to_string()))?;
        let entry = tree
            .lookup_entry_by_path(path)
            .map_err(|e| clone(e.to_string()))?
            .ok_or_else(no_file)?;
        if !entry.mode().is_blob() {
            return Err(no_file());
        }
        let blob = entry.object().map_err(|e| clone(e.to_string()))?;
        if blob.data.len() > MAX_FILE {
            return Err(Error::TooLarge {
                url: url.to_owned(),
                revision: revision.to_owned(),
                path: path.to_owned(),
                max: MAX_FILE,
            });
        }
        let text = String::from_utf8(blob.data.clone()).map_err(|_| Error::NoFile {
            url: url.to_owned(),
            revision: revision.to_owned(),
            commit: id.clone(),
            path: format!("{path} (as UTF-8 text)"),
        })?;
        Ok((text, id))
    })();
    drop(scratch);
    result
}
