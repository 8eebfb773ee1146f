//! The names Tekton gives the objects a run creates, so that a restarted controller finds
//! the children it made before (creating one again is answered AlreadyExists) and so that
//! `kubectl get pods -l tekton.dev/taskRun=...` habits carry over.
//!
//! Names that would pass Kubernetes' 63 characters keep their start and gain the MD5 of
//! the parent's name, as knative's `kmeta.ChildName` (which Tekton uses) does.

use jiff::SignedDuration;
use md5::{Digest, Md5};

/// Kubernetes object names that are also label values stay within this length.
pub const MAX_NAME: usize = 63;
const MD5_HEX: usize = 32;

/// Tekton's default timeout of a TaskRun and of a PipelineRun, when the run sets none.
pub const DEFAULT_TIMEOUT: SignedDuration = SignedDuration::from_hours(1);

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `parent` + `suffix`, with the parent shortened and hashed when the whole is too long.
pub fn child_name(parent: &str, suffix: &str) -> String {
    if parent.len() + suffix.len() <= MAX_NAME {
        return format!("{parent}{suffix}");
    }
    let Some(head) = (MAX_NAME - MD5_HEX)
        .checked_sub(suffix.len())
        .filter(|h| *h > 0)
    else {
        // The suffix alone leaves no room: the hash of everything stands for it.
        let mut all = md5_hex(&format!("{parent}{suffix}"));
        all.truncate(MAX_NAME);
        return all;
    };
    let mut end = head.min(parent.len());
    while !parent.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}{suffix}", &parent[..end], md5_hex(parent))
}

/// The TaskRun of pipeline task `task` in PipelineRun `pipeline_run`; with `index`, the
/// one for that matrix combination.
pub fn task_run_name(pipeline_run: &str, task: &str, index: Option<usize>) -> String {
    match index {
        None => child_name(pipeline_run, &format!("-{task}")),
        Some(i) => child_name(pipeline_run, &format!("-{task}-{i}")),
    }
}

/// The Pod of attempt `retry` (0 for the first) of TaskRun `task_run`.
pub fn pod_name(task_run: &str, retry: u32) -> String {
    if retry == 0 {
        child_name(task_run, "-pod")
    } else {
        child_name(task_run, &format!("-pod-retry{retry}"))
    }
}

/// The PersistentVolumeClaim a `volumeClaimTemplate` binding of `workspace` becomes, in
/// the run with UID `owner_uid`: the template's name (or `pvc`) and a hash of both.
pub fn claim_name(template_name: Option<&str>, workspace: &str, owner_uid: &str) -> String {
    let hash = md5_hex(&format!("{workspace}/{owner_uid}"));
    child_name(
        template_name.filter(|n| !n.is_empty()).unwrap_or("pvc"),
        &format!("-{}", &hash[..10]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_joined() {
        assert_eq!(
            task_run_name("build-run-x2k4b", "test", None),
            "build-run-x2k4b-test"
        );
        assert_eq!(task_run_name("r", "build", Some(2)), "r-build-2");
        assert_eq!(pod_name("r-build", 0), "r-build-pod");
        assert_eq!(pod_name("r-build", 2), "r-build-pod-retry2");
    }

    #[test]
    fn long_names_keep_their_start_and_the_parents_md5() {
        let parent = "a".repeat(60);
        let name = task_run_name(&parent, "compile", None);
        assert_eq!(name.len(), MAX_NAME);
        assert_eq!(
            name,
            format!("{}{}-compile", "a".repeat(23), md5_hex(&parent))
        );
        // As `printf abc | md5sum` prints it.
        assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_ne!(name, task_run_name(&"a".repeat(61), "compile", None));
    }

    #[test]
    fn a_suffix_too_long_for_any_parent_is_hashed_whole() {
        let name = child_name("run", &format!("-{}", "t".repeat(70)));
        assert_eq!(name.len(), MD5_HEX);
        assert!(name.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn claims_are_named_per_workspace_and_run() {
        let one = claim_name(None, "source", "uid-1");
        assert!(one.starts_with("pvc-") && one.len() == 14, "{one}");
        assert_eq!(one, claim_name(Some(""), "source", "uid-1"));
        assert_ne!(one, claim_name(None, "source", "uid-2"));
        assert!(claim_name(Some("cache"), "source", "uid-1").starts_with("cache-"));
    }

    #[test]
    fn multibyte_parents_are_cut_on_a_character_boundary() {
        let name = child_name(&"é".repeat(40), "-x");
        assert!(name.len() <= MAX_NAME, "{name}");
    }
}
