//! The environment the entrypoint sees and gives its step: its process's, or the one it
//! was handed when it runs in a process started for something else (`tkt container`
//! running the entrypoint itself rather than exec'ing it again).

use std::ffi::OsString;
use std::process::Command;
use std::sync::OnceLock;

static GIVEN: OnceLock<Vec<(OsString, OsString)>> = OnceLock::new();

/// Makes `env` the entrypoint's environment, in place of the process's; only the first
/// call counts.
pub fn set(env: Vec<(OsString, OsString)>) {
    let _ = GIVEN.set(env);
}

/// Variable `name`.
pub fn var_os(name: &str) -> Option<OsString> {
    match GIVEN.get() {
        Some(env) => env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone()),
        None => std::env::var_os(name),
    }
}

/// Every variable.
pub fn vars_os() -> Vec<(OsString, OsString)> {
    match GIVEN.get() {
        Some(env) => env.clone(),
        None => std::env::vars_os().collect(),
    }
}

/// Gives `cmd` the entrypoint's environment.
pub fn apply(cmd: &mut Command) {
    if let Some(env) = GIVEN.get() {
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    }
}
