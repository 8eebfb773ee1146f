//! The `init` subcommand, run once per Pod before any step: copies this binary into the
//! tools volume, places scripts, and creates the step directories and the wake-up FIFOs.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use tektite_api::step::InitArgs;
use tektite_api::step::layout::{Marker, POST_FILE, STEP_RESULTS_DIR, step_dir_name};
use tektite_api::validate::dns_label;

use crate::markers::{self, write_atomic};

/// What a script without a `#!` line runs under: `sh`, stopping at the first failing
/// command, as in Tekton.
pub const DEFAULT_SCRIPT_PREAMBLE: &str = "#!/bin/sh\nset -e\n";

/// Why init failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid {what} {name:?}: {why}")]
    Name {
        what: &'static str,
        name: String,
        why: String,
    },
    #[error(transparent)]
    Marker(#[from] markers::MarkerError),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> InitError + 'a {
    move |source| InitError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

pub fn run(args: &InitArgs) -> Result<(), InitError> {
    if let Some(dest) = &args.copy_self_to {
        copy_self(dest)?;
    }
    if let Some(dir) = &args.scripts_dir {
        create_dir(dir, 0o755)?;
        for (name, body) in &args.scripts {
            place_script(dir, name, body)?;
        }
    }
    if let Some(dir) = &args.steps_dir {
        create_dir(dir, 0o777)?;
        for (index, name) in args.step_names.iter().enumerate() {
            dns_label(name).map_err(|why| InitError::Name {
                what: "step name",
                name: name.clone(),
                why,
            })?;
            let step_dir = dir.join(step_dir_name(name));
            create_dir(&step_dir, 0o777)?;
            create_dir(&step_dir.join(STEP_RESULTS_DIR), 0o777)?;
            // `/tekton/steps/<index>` → `step-<name>`, as Tekton lays it out.
            let link = dir.join(index.to_string());
            let _ = fs::remove_file(&link);
            symlink(step_dir_name(name), &link).map_err(io_err("cannot link", &link))?;
        }
    }
    for dir in &args.run_dirs {
        create_dir(dir, 0o777)?;
        markers::make_fifo(&Marker::Wake.path(&dir.join(POST_FILE)));
    }
    for dir in &args.dirs {
        fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    }
    Ok(())
}

fn create_dir(dir: &Path, mode: u32) -> Result<(), InitError> {
    fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    // Steps may run as other users: the mode must not depend on the umask.
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(io_err("cannot set the mode of", dir))
}

/// Set in the entrypoint's image where every step container sees this path: the copy
/// becomes a symbolic link to it (`tkt run`'s local kubelet: `tkt` is the entrypoint, and
/// 19 MB is too much to copy for every TaskRun).
pub const LINK_ENV: &str = "TEKTITE_ENTRYPOINT_LINK";

fn copy_self(dest: &Path) -> Result<(), InitError> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    }
    let _ = fs::remove_file(dest);
    if let Some(target) = crate::env::var_os(LINK_ENV).filter(|t| !t.is_empty()) {
        return symlink(&target, dest).map_err(io_err("cannot link", dest));
    }
    let me = std::env::current_exe().map_err(io_err("cannot find", Path::new("/proc/self/exe")))?;
    let bytes = fs::read(&me).map_err(io_err("cannot read", &me))?;
    write_atomic(dest, &bytes)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755))
        .map_err(io_err("cannot set the mode of", dest))
}

fn place_script(dir: &Path, name: &str, body: &str) -> Result<(), InitError> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if !plain {
        return Err(InitError::Name {
            what: "script name",
            name: name.into(),
            why: "it must be a plain file name".into(),
        });
    }
    let path = dir.join(name);
    write_atomic(&path, with_interpreter(body).as_bytes())?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .map_err(io_err("cannot set the mode of", &path))
}

/// The script as it is written to disk: with `#!/bin/sh` and `set -e` unless it names its
/// own interpreter.
pub fn with_interpreter(body: &str) -> String {
    if body.starts_with("#!") {
        body.to_owned()
    } else {
        format!("{DEFAULT_SCRIPT_PREAMBLE}{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn init_lays_out_scripts_steps_and_fifos() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let args = InitArgs {
            copy_self_to: Some(r.join("bin/entrypoint")),
            scripts_dir: Some(r.join("scripts")),
            scripts: vec![
                ("script-0".into(), "echo hi\n".into()),
                (
                    "script-1".into(),
                    "#!/usr/bin/env python3\nprint(1)\n".into(),
                ),
            ],
            steps_dir: Some(r.join("steps")),
            step_names: vec!["build".into(), "push".into()],
            run_dirs: vec![r.join("run/0"), r.join("run/1")],
            dirs: vec![r.join("workspace/src")],
        };
        run(&args).unwrap();

        let copied = fs::metadata(r.join("bin/entrypoint")).unwrap();
        assert_eq!(copied.permissions().mode() & 0o777, 0o755);
        assert_eq!(
            copied.len(),
            fs::metadata(std::env::current_exe().unwrap())
                .unwrap()
                .len()
        );

        assert_eq!(
            fs::read_to_string(r.join("scripts/script-0")).unwrap(),
            "#!/bin/sh\nset -e\necho hi\n"
        );
        assert_eq!(
            fs::read_to_string(r.join("scripts/script-1")).unwrap(),
            "#!/usr/bin/env python3\nprint(1)\n"
        );
        let mode = fs::metadata(r.join("scripts/script-0"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);

        assert!(r.join("steps/step-push/results").is_dir());
        assert_eq!(
            fs::read_link(r.join("steps/1")).unwrap(),
            Path::new("step-push")
        );
        assert!(
            fs::metadata(r.join("run/1/out.wake"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert!(r.join("workspace/src").is_dir());
        // Running it twice (a restarted init container) is fine.
        run(&args).unwrap();
    }

    #[test]
    fn names_that_escape_their_directory_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut args = InitArgs {
            scripts_dir: Some(root.path().join("scripts")),
            scripts: vec![("../evil".into(), "x".into())],
            ..InitArgs::default()
        };
        assert!(
            run(&args)
                .unwrap_err()
                .to_string()
                .contains("plain file name")
        );
        args.scripts.clear();
        args.steps_dir = Some(root.path().join("steps"));
        args.step_names = vec!["../up".into()];
        assert!(run(&args).unwrap_err().to_string().contains("step name"));
    }
}
