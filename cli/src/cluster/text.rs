//! How the commands write times, durations, statuses and tables, as tkn does.

use std::io::Write as _;

use serde_json::Value;

/// `t` (RFC 3339) as tkn shows it: "3 minutes ago"; `---` when absent.
pub fn ago(t: &Value, now: jiff::Timestamp) -> String {
    let Some(at) = t.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
        return "---".into();
    };
    let secs = now.duration_since(at).as_secs().max(0);
    timeago::Formatter::new().convert(std::time::Duration::from_secs(secs as u64))
}

/// From `start` to `end` as Go writes a duration rounded to the second ("1m30s"); `---`
/// unless both are there.
pub fn duration(start: &Value, end: &Value) -> String {
    let parse = |v: &Value| v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok());
    let (Some(a), Some(b)) = (parse(start), parse(end)) else {
        return "---".into();
    };
    go_duration(b.duration_since(a).as_secs().max(0))
}

/// Seconds as Go writes a duration: "45s", "1m30s", "2h0m5s".
pub fn go_duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// A `Go` duration string as the API holds it ("1h0m0s"); `---` when absent.
pub fn or_dashes(v: &Value) -> String {
    match v.as_str() {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "---".into(),
    }
}

/// A run's state, as tkn shows its Succeeded condition: `Succeeded`, `Running`,
/// `Failed`, or the reason beside it (`Failed(PipelineRunTimeout)`,
/// `Cancelled(PipelineRunCancelled)`); `---` before the controller wrote one.
pub fn status(run: &Value) -> String {
    let Some(c) = run["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Succeeded"))
    else {
        return "---".into();
    };
    let reason = c["reason"].as_str().unwrap_or_default();
    match c["status"].as_str() {
        Some("True") if reason.is_empty() || reason == "Succeeded" => "Succeeded".into(),
        Some("True") => format!("Succeeded({reason})"),
        Some("False") if reason.is_empty() || reason == "Failed" => "Failed".into(),
        Some("False") if reason.contains("Cancelled") => format!("Cancelled({reason})"),
        Some("False") => format!("Failed({reason})"),
        _ if reason.is_empty() => "Running".into(),
        _ => reason.to_owned(),
    }
}

/// Rows aligned in columns (tab-separated cells), as tkn's tables.
pub fn table(rows: &[Vec<String>]) -> String {
    let mut w = tabwriter::TabWriter::new(Vec::new()).padding(3);
    for row in rows {
        let _ = writeln!(w, "{}", row.join("\t"));
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A param's or result's value as one line: a string as it is, an array or object as
/// JSON.
pub fn value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "---".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(90), "1m30s");
        assert_eq!(go_duration(7205), "2h0m5s");
        assert_eq!(
            duration(
                &json!("2026-12-03T10:00:00Z"),
                &json!("2026-12-03T10:00:12Z")
            ),
            "12s"
        );
        assert_eq!(
            duration(&json!("2026-12-03T10:00:00Z"), &Value::Null),
            "---"
        );
    }

    #[test]
    fn statuses_read_as_tkn_shows_them() {
        let with = |status: &str, reason: &str| json!({"status": {"conditions": [{"type": "Succeeded", "status": status, "reason": reason}]}});
        assert_eq!(status(&with("True", "Succeeded")), "Succeeded");
        assert_eq!(status(&with("True", "Completed")), "Succeeded(Completed)");
        assert_eq!(
            status(&with("False", "PipelineRunTimeout")),
            "Failed(PipelineRunTimeout)"
        );
        assert_eq!(status(&with("False", "Cancelled")), "Cancelled(Cancelled)");
        assert_eq!(status(&with("Unknown", "Running")), "Running");
        assert_eq!(status(&json!({})), "---");
    }

    #[test]
    fn ages_are_relative_to_now() {
        let now: jiff::Timestamp = "2026-12-03T10:03:00Z".parse().unwrap();
        assert_eq!(ago(&json!("2026-12-03T10:00:00Z"), now), "3 minutes ago");
        assert_eq!(ago(&Value::Null, now), "---");
    }
}
