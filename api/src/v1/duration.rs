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

    /// The duration as a run's timeout; `None` when it cannot be read.
    pub fn signed(&self) -> Option<jiff::SignedDuration> {
        jiff::SignedDuration::try_from(self.parse().ok()?).ok()
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
    // Exact integer arithmetic, as Go does: "8.011s" is 8,011,000,000 ns, not a float near it.
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("a number has no unit"))?;
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let (whole, frac) = rest[..num_len]
            .split_once('.')
            .unwrap_or((&rest[..num_len], ""));
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(err("a number is malformed"));
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(err("unknown unit (use h, m, s, ms, us or ns)")),
        };
        let too_large = || err("it is too large");
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_large())?
        };
        // Fraction digits beyond nanosecond precision of an hour cannot matter.
        let mut frac_nanos: u128 = 0;
        let mut scale: u128 = 1;
        for d in frac.bytes().take(30) {
            frac_nanos = frac_nanos * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        let part = whole
            .checked_mul(nanos_per_unit)
            .and_then(|n| n.checked_add(frac_nanos * nanos_per_unit / scale))
            .ok_or_else(too_large)?;
        total = total.checked_add(part).ok_or_else(too_large)?;
        rest = &rest[unit_len..];
    }
    let nanos = u64::try_from(total).map_err(|_| err("it is too large"))?;
    Ok(std::time::Duration::from_nanos(nanos))
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
        assert_eq!(parse_go_duration("8.011s").unwrap(), Std::from_millis(8011));
        assert_eq!(parse_go_duration(".5s").unwrap(), Std::from_millis(500));
        assert_eq!(parse_go_duration("1.000000001s").unwrap(), Std::new(1, 1));
        assert!(parse_go_duration("99999999999999999999999h").is_err());
        assert!(parse_go_duration(".s").is_err());
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
