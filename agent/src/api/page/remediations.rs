//! `GET /remediations`: every remediation with its guards (cooldown left,
//! rate-limit window and breaker, pause, failover block, running), the
//! operator buttons (they send the token typed into the page), and the audit timeline
//! (the tail of `/v1/events`), each record with its detail.

use super::{Nav, badge, layout, number, segment, when};
use crate::daemon::Shared;
use crate::remediate::audit::AuditRecord;
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use std::sync::Arc;

/// Audit records shown.
const TIMELINE: usize = 100;

/// The guards of one remediation (an entry of `GET /v1/remediations`), in words.
pub fn guards(r: &Value) -> Markup {
    let cooldown = r["cooldown_remaining_seconds"].as_f64();
    html! {
        span class="guards" {
            @if r["paused"].as_bool() == Some(true) { span class="flag" { "paused" } " " }
            @if r["breaker_open"].as_bool() == Some(true) { span class="flag" { "breaker open" } " " }
            @if r["running"].as_bool() == Some(true) { span class="flag" { "running" } " " }
            @if r["dry_run"].as_bool() == Some(true) { span class="flag" { "dry run" } " " }
            @if let Some(until) = r["failover_blocked_until"].as_str() { span class="flag" { "failover blocked until " (until) } " " }
            @if let Some(left) = cooldown { "cooldown " (number(left)) " s left · " }
            (r["fires_in_window"].as_u64().unwrap_or(0)) " fired in the limit window"
        }
    }
}

pub async fn remediations(State(shared): State<Arc<Shared>>) -> Response {
    let view = shared.remediator().view();
    let list = view["remediations"].as_array().cloned().unwrap_or_default();
    let timeline = shared.remediator().audit.tail(TIMELINE);
    let main = html! {
        h1 { "Remediations" }
        @if view["paused_all"].as_bool() == Some(true) {
            p { span class="flag" { "all remediations are paused" } }
        }
        p { button type="button" data-post="/v1/pause" { "Pause all" }
            button type="button" data-post="/v1/resume" { "Resume all" } }
        @if list.is_empty() {
            p class="dim" { "No remediations are configured." }
        } @else {
            table id="remediations" {
                thead { tr {
                    th { "Remediation" } th { "On" } th { "Action" } th { "Last fired" } th { "Guards" }
                    th { "Operator" }
                } }
                tbody { @for r in &list {
                    @let name = r["name"].as_str().unwrap_or_default();
                    tr data-remediation=(name) {
                        td { (name) }
                        td {
                            a href={ "/probes/" (segment(r["on"]["probe"].as_str().unwrap_or_default())) } { (r["on"]["probe"].as_str().unwrap_or_default()) }
                            @if let Some(m) = r["on"]["measurement"].as_str() { " · " (m) }
                            @if let Some(s) = r["on"]["status"].as_str() { " · " (s) }
                        }
                        td { (r["action"].as_str().unwrap_or_default()) }
                        td { (when(r["last_fired"].as_str().and_then(|t| humantime::parse_rfc3339(t).ok()))) }
                        td { (guards(r)) }
                        td {
                            @let base = format!("/v1/remediations/{}", segment(name));
                            button type="button" data-post={ (base) "/pause" } { "Pause" }
                            button type="button" data-post={ (base) "/resume" } { "Resume" }
                            button type="button" data-post={ (base) "/reset" } { "Reset" }
                        }
                    }
                } }
            }
        }
        h2 { "Audit timeline" }
        @match &timeline {
            Err(e) => { p { "Cannot read the audit log: " (e) } }
            Ok(records) if records.is_empty() => { p class="dim" { "No decisions yet." } }
            Ok(records) => { (audit(records)) }
        }
    };
    layout(&shared, "Remediations", Nav::Remediations, main)
}

/// The records, newest first.
fn audit(records: &[AuditRecord]) -> Markup {
    html! {
        table id="timeline" {
            thead { tr { th { "When" } th { "Remediation" } th { "Probe" } th { "Decision" } th { "Status" } th { "What happened" } } }
            tbody { @for r in records.iter().rev() {
                tr data-decision=(r.decision.as_str()) {
                    td { (when(Some(r.at))) }
                    td { (r.remediation) }
                    td { (r.probe) }
                    td { span class={ "d-" (r.decision.as_str()) } { (r.decision.as_str()) }
                        @if let Some(reason) = &r.reason { " (" (reason) ")" } }
                    td { (badge(r.status)) }
                    td class="msg" {
                        (r.message)
                        " " span class="dim" { (r.action) " · " (r.id) }
                        @if !r.detail.is_null() {
                            details data-id=(r.id) data-decision=(r.decision.as_str()) { summary { "detail" }
                                pre { (serde_json::to_string_pretty(&r.detail).unwrap_or_default()) } }
                        }
                    }
                }
            } }
        }
    }
}
