//! Go-style durations (`1h30m`, `90s`, `500ms`), as Kubernetes' `metav1.Duration` writes them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A duration written the way Go prints one: a sequence of `<number><unit>` with units
/// `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`, e.g. `1h0m0s`, `90s`, `1.5h`, `0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Duration(pub String);

/// Why a duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why} (write it like 1h30m, 90s or 500ms)")]
pub struct DurationError {
    text: String,
    why: &'static str,
}

impl Duration {
    pub fn parse(&self) -> Result<std::time::Duration, DurationError> {
        parse_go_duration(&self.0)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        let nanos = d.subsec_nanos();
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        if nanos == 0 {
            out.push_str(&format!("{s}s"));
        } else {
            let frac = format!("{nanos:09}");
            out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
        }
        Duration(out)
    }
}

/// Parses a Go duration. Negative durations are refused: no Tekton timeout may be negative.
pub fn parse_go_duration(text: &str) -> Result<std::time::Duration, DurationError> {
    let err = |why| DurationError {
        text: text.to_owned(),
        why,
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.starts_with('-') {
        return Err(err("it is negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("a number has no unit"))?;
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| err("a number is malformed"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err("unknown unit (use h, m, s, ms, us or ns)")),
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(err("it is too large"));
    }
    Ok(std::time::Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn go_durations_parse_to_their_length() {
        assert_eq!(parse_go_duration("1h30m").unwrap(), Std::from_secs(5400));
        assert_eq!(parse_go_duration("90s").unwrap(), Std::from_secs(90));
        assert_eq!(parse_go_duration("500ms").unwrap(), Std::from_millis(500));
        assert_eq!(parse_go_duration("1.5h").unwrap(), Std::from_secs(5400));
        assert_eq!(parse_go_duration("0").unwrap(), Std::ZERO);
        assert_eq!(parse_go_duration("0s").unwrap(), Std::ZERO);
        assert_eq!(parse_go_duration("1h0m0s").unwrap(), Std::from_secs(3600));
    }

    #[test]
    fn malformed_durations_say_how_to_write_one() {
        for bad in ["", "10", "1x", "-1s", "h", "1..5s", "s1"] {
            let e = parse_go_duration(bad).unwrap_err().to_string();
            assert!(e.contains("write it like"), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_print_the_way_go_does() {
        assert_eq!(Duration::from(Std::from_secs(3600)).0, "1h0m0s");
        assert_eq!(Duration::from(Std::from_secs(90)).0, "1m30s");
        assert_eq!(Duration::from(Std::from_millis(1500)).0, "1.5s");
    }
}
