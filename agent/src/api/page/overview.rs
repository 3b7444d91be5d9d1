//! `GET /`: every probe with its status colour, hard/soft, flapping, last
//! message, last and next run, and a strip of its recent results; counts by
//! status; the remediation guards in short; and the cluster section when
//! the cluster mode is configured.

use super::{Nav, badge, chart, layout, segment, when};
use crate::daemon::Shared;
use crate::policy::confirm::StateType;
use crate::policy::state::HistoryEntry;
use crate::report::Status;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use std::sync::Arc;
use std::time::SystemTime;

/// Runs shown in each probe's strip on the overview.
const STRIP: usize = 30;

/// What the overview shows of one probe, copied out of its lock.
struct Row {
    name: String,
    current: Status,
    hard: Status,
    state_type: StateType,
    flapping: bool,
    message: String,
    error: Option<String>,
    last_run: Option<SystemTime>,
    next_run: Option<SystemTime>,
    history: Vec<HistoryEntry>,
}

fn rows(shared: &Shared) -> Vec<Row> {
    shared
        .slots()
        .values()
        .map(|slot| {
            let state = slot.state();
            let skip = state.history.len().saturating_sub(STRIP);
            Row {
                name: slot.name.clone(),
                current: state.current(),
                hard: state.hard(),
                state_type: state.state_type(),
                flapping: state.flap.flapping,
                message: state
                    .last_report
                    .as_ref()
                    .map(|r| r.message.clone())
                    .unwrap_or_default(),
                error: state
                    .last_report
                    .as_ref()
                    .and_then(|r| r.error.as_ref())
                    .map(|e| e.kind.as_str().to_string()),
                last_run: state.last_run,
                next_run: slot.next_run(),
                history: state.history.iter().skip(skip).cloned().collect(),
            }
        })
        .collect()
}

pub async fn overview(State(shared): State<Arc<Shared>>) -> Response {
    let rows = rows(&shared);
    let count = |s: Status| rows.iter().filter(|r| r.hard == s).count();
    let remediations = shared.remediator().view();
    let list = remediations["remediations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let main = html! {
        h1 { "Probes" }
        p class="counts" id="counts" {
            @for s in [Status::Critical, Status::Warning, Status::Unknown, Status::Ok] {
                span { (badge(s)) " " b { (count(s)) } }
            }
            span class="dim" { "(confirmed states)" }
        }
        table id="probes" {
            thead { tr {
                th { "Probe" } th { "Status" } th { "State" } th { "Message" }
                th { "Last run" } th { "Next run" } th { "Recent runs" }
            } }
            tbody {
                @for r in &rows {
                    tr data-probe=(r.name) data-status=(r.current.as_str()) data-hard=(r.hard.as_str()) {
                        td { a href={ "/probes/" (segment(&r.name)) } { (r.name) } }
                        td class="status" { (badge(r.current)) }
                        td {
                            @match r.state_type { StateType::Hard => "hard", StateType::Soft => "soft" }
                            @if r.state_type == StateType::Soft {
                                " (confirmed " (r.hard.as_str()) ")"
                            }
                            @if r.flapping { " " span class="flag" { "flapping" } }
                        }
                        td class="msg" {
                            @if let Some(kind) = &r.error { span class="flag" { (kind) } " " }
                            (r.message)
                        }
                        td { (when(r.last_run)) }
                        td { (when(r.next_run)) }
                        td { (chart::history(&r.history, STRIP, (150, 16), None)) }
                    }
                }
            }
        }
        @if rows.is_empty() { p class="dim" { "No probes are configured." } }
        (super::cluster::section(&shared))
        h2 { a href="/remediations" { "Remediations" } }
        @if list.is_empty() {
            p class="dim" { "No remediations are configured." }
        } @else {
            table id="remediations-short" {
                thead { tr { th { "Remediation" } th { "On" } th { "Action" } th { "Guards" } } }
                tbody {
                    @for r in &list {
                        tr {
                            td { (r["name"].as_str().unwrap_or_default()) }
                            td { (r["on"]["probe"].as_str().unwrap_or_default()) }
                            td { (r["action"].as_str().unwrap_or_default()) }
                            td { (super::remediations::guards(r)) }
                        }
                    }
                }
            }
        }
    };
    layout(&shared, "Overview", Nav::Overview, main)
}
