//! Sharing a Task-level resource request out among its steps, as Tekton does: memory and
//! ephemeral storage in whole bytes, everything else (CPU) in thousandths.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity in thousandths of its unit; `None` when it is not a Kubernetes quantity.
fn milli(q: &str) -> Option<i128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (multiplier, divisor): (i128, i128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.len() > 9 || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac_scale = 10i128.pow(fraction.len() as u32);
    let fraction: i128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let scaled = whole.checked_mul(frac_scale)?.checked_add(fraction)?;
    Some(scaled.checked_mul(multiplier)?.checked_mul(1000)? / divisor / frac_scale)
}

/// Each of `n` steps' share of `total`. Quantities that cannot be read are kept whole.
pub fn share(total: &BTreeMap<String, Quantity>, n: usize) -> BTreeMap<String, Quantity> {
    let n = n.max(1) as i128;
    total
        .iter()
        .map(|(name, q)| {
            let shared = match milli(&q.0) {
                Some(m) if name == "memory" || name == "ephemeral-storage" => {
                    Quantity(format!("{}", m / 1000 / n))
                }
                Some(m) => Quantity(format!("{}m", m / n)),
                None => q.clone(),
            };
            (name.clone(), shared)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_read_in_thousandths() {
        assert_eq!(milli("1"), Some(1000));
        assert_eq!(milli("250m"), Some(250));
        assert_eq!(milli("1.5"), Some(1500));
        assert_eq!(milli("1Gi"), Some((1 << 30) * 1000));
        assert_eq!(milli("2k"), Some(2_000_000));
        assert_eq!(milli("lots"), None);
        assert_eq!(milli("1Zi"), None);
    }

    #[test]
    fn requests_are_shared_out_like_tektons() {
        let total = BTreeMap::from([
            ("cpu".to_owned(), Quantity("1".into())),
            ("memory".to_owned(), Quantity("1Gi".into())),
            ("nvidia.com/gpu".to_owned(), Quantity("many".into())),
        ]);
        let each = share(&total, 4);
        assert_eq!(each["cpu"].0, "250m");
        assert_eq!(each["memory"].0, "268435456");
        assert_eq!(each["nvidia.com/gpu"].0, "many");
    }
}
