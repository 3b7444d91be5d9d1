//! Small inline SVG charts: a probe's status history as a strip of
//! coloured bars (one per stretch of equal runs, soft states paler), and a measurement's
//! recent values as a sparkline (gaps where a run lacked the value).

use crate::policy::confirm::StateType;
use crate::policy::state::HistoryEntry;
use maud::{Markup, html};

/// The history as bars, oldest on the left, with room for `slots` runs
/// (the newest at the right edge). Consecutive runs with the same status
/// and state type make one bar (a steady probe costs one element, not
/// one per run); each bar's title says since when, what, whether it was
/// confirmed, and for how many runs.
pub fn history(
    entries: &[HistoryEntry],
    slots: usize,
    (width, height): (u32, u32),
    id: Option<&str>,
) -> Markup {
    let slots = slots.max(entries.len()).max(1);
    let run = f64::from(width) / slots as f64;
    // (first index, length) of each stretch of equal runs.
    let mut stretches: Vec<(usize, usize)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match stretches.last_mut() {
            Some((start, len))
                if entries[*start].status == e.status
                    && entries[*start].state_type == e.state_type =>
            {
                *len += 1
            }
            _ => stretches.push((i, 1)),
        }
    }
    let offset = slots - entries.len();
    html! {
        svg id=[id] class="history" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img"
            aria-label={ "status of the last " (entries.len()) " runs" } {
            @for &(start, len) in &stretches {
                @let e = &entries[start];
                rect x=(format!("{:.1}", (offset + start) as f64 * run)) y="0"
                    width=(format!("{:.1}", (len as f64 * run - 1.0).max(1.0))) height=(height)
                    class={ "s-" (e.status.as_str()) @if e.state_type == StateType::Soft { " soft" } } {
                    title {
                        (e.status.as_str()) " (" (match e.state_type { StateType::Hard => "hard", StateType::Soft => "soft" }) ") since "
                        (humantime::format_rfc3339_seconds(e.at)) ", " (len) " run" @if len > 1 { "s" }
                    }
                }
            }
        }
    }
}

/// The values as a line scaled between their minimum and maximum.
pub fn sparkline(values: &[f64], width: u32, height: u32) -> Markup {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let step = f64::from(width) / (values.len().max(2) - 1) as f64;
    let pad = 2.0;
    let usable = f64::from(height) - 2.0 * pad;
    // One polyline per run of values without a gap.
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, v) in values.iter().enumerate() {
        if !v.is_finite() {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            continue;
        }
        let y = if hi > lo {
            pad + usable * (1.0 - (v - lo) / span)
        } else {
            f64::from(height) / 2.0
        };
        current.push_str(&format!("{:.1},{:.1} ", i as f64 * step, y));
    }
    if !current.is_empty() {
        lines.push(current);
    }
    html! {
        svg class="spark" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img"
            aria-label={ (values.len()) " recent values" } {
            @for points in &lines {
                @if points.matches(' ').count() == 1 {
                    // A single point between gaps: a dot.
                    @let (x, y) = points.trim().split_once(',').unwrap_or(("0", "0"));
                    circle cx=(x) cy=(y) r="1.5" fill="#3355cc" {}
                } @else {
                    polyline points=(points.trim()) {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_runs_make_one_bar() {
        use crate::report::Status;
        let entry = |status| HistoryEntry {
            at: std::time::UNIX_EPOCH,
            status,
            state_type: StateType::Hard,
        };
        let entries: Vec<_> = [Status::Ok, Status::Ok, Status::Critical, Status::Ok]
            .into_iter()
            .map(entry)
            .collect();
        let svg = history(&entries, 50, (100, 10), None).into_string();
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains("2 runs"), "{svg}");
    }

    #[test]
    fn a_gap_splits_the_line() {
        let svg = sparkline(&[1.0, 2.0, f64::NAN, 3.0, 4.0], 100, 20).into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        let dot = sparkline(&[f64::NAN, 1.0, f64::NAN], 100, 20).into_string();
        assert!(dot.contains("<circle"), "{dot}");
    }
}
