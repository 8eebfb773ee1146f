//! What a kubelet writes and reads besides processes: the atomic writer of ConfigMap,
//! Secret, projected and downward-API volumes, the Pod fields the downward API names, and
//! `$(VAR)` expansion in a container's env, command and args.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{self as core, Pod};

/// `value` with `$(VAR)` replaced by the variables defined before; `$$(` stays a literal
/// `$(`, unknown variables stay as written.
pub fn expand(value: &str, env: &[(String, String)]) -> String {
    // $(VAR) from the variables defined before; $$( stays a literal $(.
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A `metadata.labels['k']`-style field of the Pod.
pub fn field(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let keyed = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        let key = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(map.as_ref()?.get(key).cloned().unwrap_or_default())
    };
    let all = |map: &Option<BTreeMap<String, String>>| {
        map.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => all(&meta.labels),
        "metadata.annotations" => all(&meta.annotations),
        "spec.nodeName" => spec?.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" => spec?.service_account_name.clone().unwrap_or_default(),
        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
        _ => {
            return keyed("metadata.labels", &meta.labels)
                .or_else(|| keyed("metadata.annotations", &meta.annotations));
        }
    })
}

/// Writes `files` into `dir` as the kubelet's atomic writer does: a new timestamped
/// directory, `..data` swapped to it by a rename, a symlink per top-level entry.
pub fn write_atomic(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let now = Timestamp::now();
    let stamp = format!(
        "..{}.{:09}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        now.subsec_nanosecond()
    );
    let fresh = dir.join(&stamp);
    for (path, bytes) in files {
        let file = fresh.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, bytes)?;
    }
    std::fs::create_dir_all(&fresh)?;
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    let top: HashSet<String> = files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("..") && !top.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old.filter(|o| o != Path::new(&stamp)) {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(())
}

/// The files of ConfigMap or Secret `data`: every key, or only the `items` asked for.
pub fn key_to_path(
    items: &Option<Vec<core::KeyToPath>>,
    data: BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    match items {
        Some(items) if !items.is_empty() => items
            .iter()
            .filter_map(|i| Some((i.path.clone(), data.get(&i.key)?.clone())))
            .collect(),
        _ => data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn variables_expand_from_those_defined_before() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
    }

    #[test]
    fn the_atomic_writer_swaps_data_and_keeps_only_current_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        write_atomic(dir.path(), &files(&[("ready", ""), ("cancel", "")])).unwrap();
        let first = std::fs::read_link(dir.path().join("..data")).unwrap();
        write_atomic(dir.path(), &files(&[("ready", "READY")])).unwrap();
        let second = std::fs::read_link(dir.path().join("..data")).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ready")).unwrap(),
            "READY"
        );
        assert!(std::fs::symlink_metadata(dir.path().join("cancel")).is_err());
        assert!(!dir.path().join(first).exists());
        assert_eq!(
            std::fs::read_link(dir.path().join("ready")).unwrap(),
            Path::new("..data/ready")
        );
    }

    #[test]
    fn pod_fields_are_read_as_the_downward_api_names_them() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ci", "uid": "u",
                         "annotations": {"tekton.dev/ready": "READY"}},
            "spec": {"nodeName": "n", "containers": []}
        }))
        .unwrap();
        assert_eq!(
            field(&pod, "metadata.annotations['tekton.dev/ready']").as_deref(),
            Some("READY")
        );
        assert_eq!(
            field(&pod, "metadata.annotations['tekton.dev/cancel']").as_deref(),
            Some("")
        );
        assert_eq!(field(&pod, "spec.nodeName").as_deref(), Some("n"));
        assert_eq!(field(&pod, "metadata.generation"), None);
    }
}
