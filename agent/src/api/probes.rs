//! `GET /v1/probes` and `GET /v1/probes/{name}`: every probe's latest
//! report, state (soft/hard, flapping), history and next run.

use crate::daemon::Shared;
use crate::daemon::slot::ProbeSlot;
use crate::telemetry::counters::ERROR_KINDS;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::SystemTime;

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// The JSON view of one probe.
pub fn view(slot: &ProbeSlot) -> Value {
    let setup = slot.setup();
    let state = slot.state();
    let errors: serde_json::Map<String, Value> = ERROR_KINDS
        .iter()
        .map(|k| (k.as_str().to_string(), json!(slot.counters.errors(*k))))
        .collect();
    json!({
        "name": slot.name,
        "wasm": setup.spec.wasm.to_string(),
        "probe": {
            "name": setup.probe.info.name,
            "version": setup.probe.info.version,
            "kind": setup.probe.info.kind,
            "description": setup.probe.info.description,
            "sha256": setup.probe.sha256,
        },
        "every_ms": setup.spec.every.as_millis() as u64,
        "timeout_ms": setup.spec.timeout.as_millis() as u64,
        "status": state.current(),
        "hard_status": state.hard(),
        "state_type": state.state_type(),
        "flapping": state.flap.flapping,
        "flap_percent": state.flap.percent,
        "thresholds": state.rules.iter().map(|(m, t)| (m.clone(), json!({"status": t.current, "hard_status": t.hard}))).collect::<serde_json::Map<_, _>>(),
        "last_run": state.last_run.map(rfc3339),
        "next_run": slot.next_run().map(rfc3339),
        "last_report": state.last_report.as_ref().map(|r| json!({
            "status": r.status,
            "message": r.message,
            "measurements": r.measurements.iter().map(|m| json!({
                "name": m.name,
                "value": m.value,
                "unit": m.unit,
                "attributes": m.attributes.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "duration_ms": r.duration.as_secs_f64() * 1000.0,
            "error": r.error,
        })),
        "history": state.history.iter().map(|h| json!({
            "at": rfc3339(h.at),
            "status": h.status,
            "state_type": h.state_type,
        })).collect::<Vec<_>>(),
        "counters": {
            "runs": slot.counters.runs(),
            "skipped_ticks": slot.counters.skipped_ticks(),
            "errors": errors,
        },
    })
}

pub async fn list(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let probes: Vec<Value> = shared.slots().values().map(|slot| view(slot)).collect();
    Json(json!({"node": shared.node(), "probes": probes}))
}

pub async fn one(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> (StatusCode, Json<Value>) {
    match shared.slot(&name) {
        Some(slot) => (StatusCode::OK, Json(view(&slot))),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no probe named {name:?}")})),
        ),
    }
}
