//! The files a step leaves behind, each written so that a reader never sees half of one:
//! the state record and `exitCode` (temp file + rename), the termination message (in
//! place: a kubelet bind-mounts its own file there, and a rename onto a mount point is
//! `EBUSY`), and last the post file or its `.err` twin, followed by a wake-up on the FIFO
//! beside it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;
use tektite_api::step::layout::{EXIT_CODE_FILE, Marker};
use tektite_api::step::{StepState, termination};

/// Why a marker could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct MarkerError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> MarkerError + '_ {
    move |source| MarkerError {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), MarkerError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(at(&tmp))?;
    fs::rename(&tmp, path).map_err(at(path))
}

/// Before anything else: clear what an earlier, crashed run of this step left (its post
/// and error markers would release or skip the next step early; a half-written temp file
/// must not be mistaken for a record) and make sure the wake-up FIFO exists.
pub fn prepare(post_file: &Path) -> Result<(), MarkerError> {
    if let Some(dir) = post_file.parent() {
        fs::create_dir_all(dir).map_err(at(dir))?;
    }
    let mut state_tmp = Marker::State.path(post_file).into_os_string();
    state_tmp.push(".tmp");
    for stale in [
        post_file.to_owned(),
        Marker::Error.path(post_file),
        PathBuf::from(state_tmp),
    ] {
        match fs::remove_file(&stale) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&stale)(e)),
            _ => {}
        }
    }
    make_fifo(&Marker::Wake.path(post_file));
    Ok(())
}

/// Creates a FIFO readable and writable by every step's user, if it is not there yet.
/// Failure is fine: waiters fall back to polling.
pub fn make_fifo(path: &Path) {
    if nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o666)).is_ok() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o666));
    }
}

/// The state record this step left so far, if one can be read.
pub fn read_state(post_file: &Path) -> Option<StepState> {
    let bytes = fs::read(Marker::State.path(post_file)).ok()?;
    StepState::decode(&bytes).ok()
}

pub fn write_state(post_file: &Path, state: &StepState) -> Result<(), MarkerError> {
    write_atomic(&Marker::State.path(post_file), &state.encode())
}

pub fn write_exit_code(step_metadata_dir: &Path, code: i32) -> Result<(), MarkerError> {
    fs::create_dir_all(step_metadata_dir).map_err(at(step_metadata_dir))?;
    write_atomic(
        &step_metadata_dir.join(EXIT_CODE_FILE),
        code.to_string().as_bytes(),
    )
}

/// Writes the termination message into the file at `path`, truncating it in place. The
/// kubelet reads that file only once the container has exited, so nobody sees half of it;
/// and on a node the file is a bind mount of the kubelet's own, which can be written but
/// not replaced.
pub fn write_termination(path: &Path, state: &StepState) -> Result<(), MarkerError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(at(dir))?;
    }
    let message = termination::encode(state, termination::TERMINATION_MESSAGE_LIMIT);
    fs::write(path, message.as_bytes()).map_err(at(path))
}

/// Writes the post file (`ok`) or its `.err` twin, then wakes whoever waits on the FIFO.
pub fn post(post_file: &Path, ok: bool) -> Result<(), MarkerError> {
    let path = if ok {
        post_file.to_owned()
    } else {
        Marker::Error.path(post_file)
    };
    fs::File::create(&path).map_err(at(&path))?;
    wake(post_file);
    Ok(())
}

pub fn is_fifo(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_fifo()
}

/// One byte on the FIFO. Nobody reading (ENXIO) or no FIFO: nobody to wake.
fn wake(post_file: &Path) {
    if let Ok(mut fifo) = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(Marker::Wake.path(post_file))
        && fifo.metadata().is_ok_and(|m| is_fifo(&m))
    {
        let _ = fifo.write(b"x");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_clears_what_a_crashed_run_left() {
        let dir = tempfile::tempdir().unwrap();
        let post = dir.path().join("run/0/out");
        fs::create_dir_all(post.parent().unwrap()).unwrap();
        fs::write(&post, "").unwrap();
        fs::write(Marker::Error.path(&post), "").unwrap();
        fs::write(dir.path().join("run/0/out.state.tmp"), "{\"vers").unwrap();
        prepare(&post).unwrap();
        assert!(!post.exists());
        assert!(!Marker::Error.path(&post).exists());
        assert!(!dir.path().join("run/0/out.state.tmp").exists());
        assert!(Marker::Wake.path(&post).exists());
    }

    #[test]
    fn atomic_writes_replace_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.state");
        fs::write(&file, "\0\0garbage").unwrap();
        write_atomic(&file, b"{}").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"{}");
        assert!(!dir.path().join("out.state.tmp").exists());
    }

    #[test]
    fn posting_wakes_a_fifo_reader_and_needs_none() {
        let dir = tempfile::tempdir().unwrap();
        let post_file = dir.path().join("out");
        post_ok_without_fifo(&post_file);
        let fifo = Marker::Wake.path(&post_file);
        make_fifo(&fifo);
        let mut reader = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        post(&post_file, false).unwrap();
        assert!(Marker::Error.path(&post_file).exists());
        let mut buf = [0u8; 8];
        assert_eq!(io::Read::read(&mut reader, &mut buf).unwrap(), 1);
    }

    fn post_ok_without_fifo(post_file: &Path) {
        post(post_file, true).unwrap();
        assert!(post_file.exists());
    }
}
