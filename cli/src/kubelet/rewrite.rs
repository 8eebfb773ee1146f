//! Path rewriting: without a private mount namespace, a step cannot see `/tekton/results`
//! or `/workspace/source` at those paths, so every such path a step's command, args,
//! script, workingDir or env names is rewritten to where the directory is on this machine.
//!
//! A path is rewritten only where it starts (at the start of the text, or after a
//! character that cannot be part of a path) and ends (at the end, a `/`, or a character
//! that cannot be part of a path): `/workspace/src` becomes `<dir>/src`, `/workspaces` and
//! `x/workspace` stay as they are.

/// Pod paths and where they are on this machine; the longest pod path wins.
#[derive(Clone, Debug, Default)]
pub struct Rewrites {
    pairs: Vec<(String, String)>,
}

impl Rewrites {
    pub fn add(&mut self, pod_path: &str, host: &std::path::Path) {
        let pod = pod_path.trim_end_matches('/');
        if pod.is_empty() || !pod.starts_with('/') {
            return;
        }
        self.pairs.retain(|(p, _)| p != pod);
        self.pairs
            .push((pod.to_owned(), host.display().to_string()));
        self.pairs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    /// Every (host directory, Pod path), parents before children: the binds of a
    /// mount namespace that shows the Pod paths themselves.
    pub fn binds(&self) -> Vec<(std::path::PathBuf, String)> {
        let mut out: Vec<_> = self
            .pairs
            .iter()
            .map(|(pod, host)| (std::path::PathBuf::from(host), pod.clone()))
            .collect();
        out.sort_by_key(|(_, pod)| pod.len());
        out
    }

    /// `text` with every known pod path replaced.
    pub fn apply(&self, text: &str) -> String {
        if self.pairs.is_empty() || !text.contains('/') {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        let bytes = text.as_bytes();
        'outer: while i < text.len() {
            let starts_here = bytes[i] == b'/' && (i == 0 || !is_path_byte(bytes[i - 1]));
            if starts_here {
                for (pod, host) in &self.pairs {
                    if text[i..].starts_with(pod.as_str()) {
                        let end = i + pod.len();
                        if end == text.len() || !is_path_byte(bytes[end]) || bytes[end] == b'/' {
                            out.push_str(host);
                            i = end;
                            continue 'outer;
                        }
                    }
                }
            }
            let c = text[i..].chars().next().unwrap_or('\0');
            out.push(c);
            i += c.len_utf8().max(1);
        }
        out
    }

    pub fn apply_all(&self, list: &mut [String]) {
        for s in list {
            *s = self.apply(s);
        }
    }
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'~' | b'+' | b'@')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn rewrites() -> Rewrites {
        let mut r = Rewrites::default();
        r.add("/workspace", Path::new("/state/pod/ws"));
        r.add("/workspace/source", Path::new("/state/claims/src"));
        r.add("/tekton/results", Path::new("/state/pod/results"));
        r
    }

    #[test]
    fn whole_paths_are_rewritten_and_the_longest_wins() {
        let r = rewrites();
        assert_eq!(
            r.apply("cd /workspace/source/app && ls /workspace/other"),
            "cd /state/claims/src/app && ls /state/pod/ws/other"
        );
        assert_eq!(
            r.apply("echo hi > \"/tekton/results/out\""),
            "echo hi > \"/state/pod/results/out\""
        );
        assert_eq!(r.apply("DIR=/workspace"), "DIR=/state/pod/ws");
    }

    #[test]
    fn paths_that_only_look_alike_stay() {
        let r = rewrites();
        for text in [
            "/workspaces/x",
            "x/workspace/y",
            "/tekton/resultsets",
            "https://h/workspace",
        ] {
            assert_eq!(r.apply(text), text);
        }
    }

    #[test]
    fn non_ascii_text_survives() {
        let r = rewrites();
        assert_eq!(r.apply("é /workspace ü"), "é /state/pod/ws ü");
    }
}
