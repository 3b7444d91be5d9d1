//! Small statistics over repeated measurements: medians and ranges.

/// The median and range of `values`, formatted with `unit` and `digits`.
pub fn median_range(values: &[f64], unit: &str, digits: usize) -> String {
    let (median, min, max) = summary(values);
    if values.len() == 1 {
        return format!("{median:.digits$} {unit}");
    }
    format!("{median:.digits$} {unit} (range {min:.digits$}-{max:.digits$})")
}

/// (median, min, max) of `values`.
pub fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    (
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
    )
}

/// The `p` quantile (0 to 1) of `values` by the nearest rank.
pub fn quantile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
