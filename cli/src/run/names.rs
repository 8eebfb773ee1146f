//! Names and UIDs of the objects a local run makes, as the API server and Tekton's
//! controller would choose them.

use std::hash::{DefaultHasher, Hash, Hasher};

/// Kubernetes object names (and labels) stay within this length.
const MAX: usize = 63;

/// A fresh UID (the pod directory's name, as the kubelet's are).
pub fn uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `generateName` plus five random characters, as the API server completes it.
pub fn generated(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    fit(&format!("{prefix}{suffix}"))
}

/// A child's name: `<parent>-<child>`, shortened with a hash when too long.
pub fn child(parent: &str, child: &str) -> String {
    fit(&format!("{parent}-{child}"))
}

/// `name` if short enough; else its start and a hash of all of it.
pub fn fit(name: &str) -> String {
    if name.len() <= MAX {
        return name.to_owned();
    }
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    let hash = format!("{:016x}", h.finish());
    let keep = MAX - hash.len() - 1;
    let mut end = keep;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", name[..end].trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_child_names_are_joined() {
        assert_eq!(child("build-run-x2k4b", "test"), "build-run-x2k4b-test");
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let long = "a".repeat(50);
        let one = child(&long, "compile-everything");
        assert!(one.len() <= MAX, "{one}");
        assert_eq!(one, child(&long, "compile-everything"));
        assert_ne!(one, child(&long, "compile-everything-else"));
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        fastrand::seed(7);
        let n = generated("hello-run-");
        assert!(n.starts_with("hello-run-") && n.len() == "hello-run-".len() + 5);
    }
}
