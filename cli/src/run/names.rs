//! Names and UIDs the API server would choose for the objects of a local run (the names
//! Tekton's controller chooses are the engine's: `tektite_engine::names`).

use tektite_engine::names::MAX_NAME;

/// A fresh UID (the pod directory's name, as the kubelet's are).
pub fn uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `generateName` plus five random characters, as the API server completes it (the
/// prefix cut to 58 characters first).
pub fn generated(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut end = prefix.len().min(MAX_NAME - 5);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    let suffix: String = (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("{}{suffix}", &prefix[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_keep_the_prefix() {
        fastrand::seed(7);
        let n = generated("hello-run-");
        assert!(n.starts_with("hello-run-") && n.len() == "hello-run-".len() + 5);
    }

    #[test]
    fn generated_names_of_long_prefixes_fit() {
        assert_eq!(generated(&"p".repeat(70)).len(), MAX_NAME);
    }
}
