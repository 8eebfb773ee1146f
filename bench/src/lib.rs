//! What the benchmarks share: percentiles and how figures are printed.

use std::time::Duration;

pub mod pipelines;

/// Measured durations.
#[derive(Debug, Default, Clone)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    /// The `p` quantile (0.0..=1.0), nearest rank.
    pub fn pct(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v[((v.len() - 1) as f64 * p).round() as usize]
    }

    pub fn p50(&self) -> Duration {
        self.pct(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.pct(0.99)
    }
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Whether this is a release build; debug figures are printed but marked meaningless.
pub fn build_kind() -> &'static str {
    if cfg!(debug_assertions) {
        "DEBUG (figures not meaningful)"
    } else {
        "release"
    }
}

/// A process's resident set now and at its peak (VmRSS, VmHWM), in KiB; 0 where unknown.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
