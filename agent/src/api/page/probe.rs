//! `GET /probes/{name}`: one probe — what it is, its state and history
//! (status over time), its recent measurements as small charts, its
//! thresholds and their states, its last report and error, its counters,
//! and the remediations that watch it.

use super::{Nav, attributes, badge, chart, layout, not_found, number, short, when};
use crate::daemon::Shared;
use crate::policy::confirm::StateType;
use crate::telemetry::counters::ERROR_KINDS;
use crate::telemetry::recent;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use std::sync::Arc;

/// One charted series, copied out of the ring buffer.
struct Chart {
    name: String,
    unit: String,
    attributes: String,
    values: Vec<f64>,
    last: Option<f64>,
}

fn charts(slot: &crate::daemon::slot::ProbeSlot) -> (Vec<Chart>, usize, u64) {
    let recent = slot.recent();
    let charts = recent
        .series()
        .iter()
        .map(|s| Chart {
            name: s.name.clone(),
            unit: s.unit.clone(),
            attributes: attributes(&s.attributes),
            values: s.values().collect(),
            last: s.last(),
        })
        .collect();
    (charts, recent.times().len(), recent.untracked())
}

pub async fn probe(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let Some(slot) = shared.slot(&name) else {
        return not_found(&shared, format!("No probe is named {name:?}."));
    };
    let setup = slot.setup();
    let state = slot.state().clone();
    let (charts, runs_kept, untracked) = charts(&slot);
    let info = &setup.probe.info;
    let report = state.last_report.as_ref();
    let remediations = shared.remediator().view();
    let watching: Vec<_> = remediations["remediations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["on"]["probe"] == name.as_str())
        .cloned()
        .collect();
    let main = html! {
        h1 { "Probe " (slot.name) " " (badge(state.current())) }
        dl id="about" {
            dt { "Confirmed status" } dd { (badge(state.hard())) " "
                (match state.state_type() { StateType::Hard => "hard", StateType::Soft => "soft: not yet confirmed" }) }
            dt { "Flapping" } dd {
                @if state.flap.flapping { span class="flag" { "flapping" } " " }
                (number(state.flap.percent)) " % state change" }
            dt { "Component" } dd { (info.name) " " (info.version) " (" (info.kind) "): " (info.description) }
            dt { "Source" } dd { code { (setup.spec.wasm.to_string()) } " " span class="dim" { "sha256 " (setup.probe.sha256.get(..12).unwrap_or_default()) } }
            dt { "Schedule" } dd { "every " (short(setup.spec.every)) ", timeout " (short(setup.spec.timeout)) }
            dt { "Last run" } dd { (when(state.last_run))
                @if let Some(r) = report { " · took " (short(r.duration)) } }
            dt { "Next run" } dd { (when(slot.next_run())) }
        }
        h2 { "Last report" }
        @if let Some(r) = report {
            p id="message" class="msg" { "The probe said " (badge(r.status)) " " (r.message) }
            @if let Some(e) = &r.error {
                p id="error" { span class="flag" { (e.kind.as_str()) } " " (e.message) }
            }
        } @else {
            p class="dim" { "The probe has not run yet." }
        }
        h2 { "History" }
        @if state.history.is_empty() {
            p class="dim" { "No runs yet." }
        } @else {
            @let entries: Vec<_> = state.history.iter().cloned().collect();
            p { (chart::history(&entries, crate::policy::state::HISTORY, (600, 28), Some("history"))) }
            p class="dim" { "The last " (entries.len()) " runs, oldest on the left; pale bars are soft (unconfirmed) states; hover a bar for its time." }
            (changes(&entries))
        }
        h2 { "Thresholds" }
        @if setup.spec.thresholds.is_empty() {
            p class="dim" { "No thresholds: the probe's own status counts." }
        } @else {
            table id="thresholds" {
                thead { tr { th { "Measurement" } th { "Warning" } th { "Critical" } th { "Confirm" } th { "Now" } th { "Confirmed" } } }
                tbody { @for rule in &setup.spec.thresholds {
                    @let tracker = state.rules.get(&rule.measurement);
                    tr {
                        td { (rule.measurement) }
                        td { @if let Some(r) = &rule.warning { code { (r.to_string()) } } @else { "–" } }
                        td { @if let Some(r) = &rule.critical { code { (r.to_string()) } } @else { "–" } }
                        td { (rule.confirm.failures) " to fail, " (rule.confirm.recoveries) " to recover" }
                        td { @if let Some(t) = tracker { (badge(t.current)) } @else { span class="dim" { "not seen" } } }
                        td { @if let Some(t) = tracker { (badge(t.hard)) } }
                    }
                } }
            }
        }
        h2 { "Recent measurements" }
        @if charts.is_empty() {
            p class="dim" { "No measurements yet." }
        } @else {
            table id="measurements" {
                thead { tr { th { "Measurement" } th { "Attributes" } th class="num" { "Latest" } th { "Unit" } th { "Last " (runs_kept) " runs" } } }
                tbody { @for c in &charts {
                    tr {
                        td { (c.name) } td { (c.attributes) }
                        td class="num" { (c.last.map(|v| super::quantity(v, &c.unit)).unwrap_or_else(|| "–".into())) }
                        td { (c.unit) }
                        td { (chart::sparkline(&c.values, 240, 32)) }
                    }
                } }
            }
            p class="dim" {
                "Kept in memory only: the last " (recent::POINTS) " runs of at most "
                (recent::SERIES) " series per probe."
                @if untracked > 0 { " " (untracked) " values of further series were not charted." }
            }
        }
        h2 { "Counters" }
        p id="counters" {
            "runs " b { (slot.counters.runs()) } " · skipped ticks " b { (slot.counters.skipped_ticks()) }
            @for kind in ERROR_KINDS {
                @let n = slot.counters.errors(kind);
                @if n > 0 { " · " (kind.as_str()) " " b { (n) } }
            }
        }
        h2 { "Remediations watching it" }
        @if watching.is_empty() {
            p class="dim" { "None." }
        } @else {
            ul { @for r in &watching {
                li { a href="/remediations" { (r["name"].as_str().unwrap_or_default()) } " (" (r["action"].as_str().unwrap_or_default()) "): " (super::remediations::guards(r)) }
            } }
        }
    };
    layout(&shared, &format!("Probe {name}"), Nav::Probe, main)
}

/// The runs where the status changed, newest first.
fn changes(entries: &[crate::policy::state::HistoryEntry]) -> Markup {
    let mut list = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let before = i.checked_sub(1).map(|j| &entries[j]);
        if before.is_none_or(|b| b.status != e.status || b.state_type != e.state_type) {
            list.push(e);
        }
    }
    html! {
        table id="changes" {
            thead { tr { th { "Since" } th { "Status" } th { "State" } } }
            tbody { @for e in list.iter().rev().take(10) {
                tr {
                    td { (when(Some(e.at))) }
                    td { (badge(e.status)) }
                    td { (match e.state_type { StateType::Hard => "hard", StateType::Soft => "soft" }) }
                }
            } }
        }
    }
}
