//! Name rules: Kubernetes DNS-1123 names, and Tekton's rules for params and results.

/// A DNS-1123 label (`a-z0-9-`, starts and ends alphanumeric, ≤ 63), or why not.
pub fn dns_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "must be at most 63 characters (it has {})",
            name.len()
        ));
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok_chars || !ends_ok(name.bytes().next()) || !ends_ok(name.bytes().last()) {
        return Err("must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit".into());
    }
    Ok(())
}

/// A DNS-1123 subdomain (labels joined by '.', ≤ 253), or why not.
pub fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 253 {
        return Err(format!(
            "must be at most 253 characters (it has {})",
            name.len()
        ));
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok_chars || !ends_ok(name.bytes().next()) || !ends_ok(name.bytes().last()) {
        return Err("must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit".into());
    }
    Ok(())
}

/// Tekton's param names: a letter or '_' first, then letters, digits, '_', '-', '.'.
pub fn param_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
        Ok(())
    } else {
        Err(
            "must start with a letter or '_' and contain only letters, digits, '_', '-' and '.'"
                .into(),
        )
    }
}

/// Tekton's result names: letters, digits, '-', '_', '.', starting and ending alphanumeric.
pub fn result_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !name.is_empty() && ok_chars && ends_ok(name.bytes().next()) && ends_ok(name.bytes().last())
    {
        Ok(())
    } else {
        Err("must contain only letters, digits, '-', '_' and '.', and start and end with a letter or digit".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_lowercase_alphanumerics_and_dashes() {
        assert!(dns_label("build-and-push").is_ok());
        assert!(dns_label("Build").is_err());
        assert!(dns_label("-a").is_err());
        assert!(dns_label("a_b").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn param_names_allow_camel_case_underscores_and_dots() {
        assert!(param_name("pathToDockerfile").is_ok());
        assert!(param_name("builder_image").is_ok());
        assert!(param_name("org.repo").is_ok());
        assert!(param_name("1st").is_err());
        assert!(param_name("a b").is_err());
    }

    #[test]
    fn result_names_cannot_hold_path_separators() {
        assert!(result_name("build-id").is_ok());
        assert!(result_name("../etc/passwd").is_err());
        assert!(result_name("a/b").is_err());
    }
}
