//! Remediation endpoints: the audit log tail, the guard state of every
//! remediation, and the operator controls (pause, resume, reset).

use crate::daemon::Shared;
use crate::remediate::ledger::ALL;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Deserialize)]
pub struct EventsQuery {
    limit: Option<usize>,
}

/// Most records one `GET /v1/events` returns.
pub const MAX_EVENTS: usize = 1000;

/// `GET /v1/events?limit=N`: the last N audit records (default 100, at
/// most [`MAX_EVENTS`]), read from the end of the log on a blocking
/// thread (not on the async workers).
pub async fn events(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<EventsQuery>,
) -> (StatusCode, Json<Value>) {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_EVENTS);
    let remediator = shared.remediator().clone();
    let read = tokio::task::spawn_blocking(move || remediator.audit.tail(limit)).await;
    match read.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()))) {
        Ok(records) => (StatusCode::OK, Json(json!({"events": records}))),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": format!("cannot read the audit log: {e}")})),
        ),
    }
}

/// `GET /v1/remediations`.
pub async fn list(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(shared.remediator().view())
}

#[derive(Deserialize)]
pub struct PauseQuery {
    /// How long, e.g. `10m` (default: until resumed).
    #[serde(rename = "for")]
    duration: Option<String>,
}

fn known(shared: &Shared, name: &str) -> Result<(), (StatusCode, Json<Value>)> {
    if shared.config().remediations.iter().any(|r| r.name == name) {
        Ok(())
    } else {
        Err((
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no remediation named {name:?}")})),
        ))
    }
}

fn done(result: std::io::Result<()>, what: String) -> (StatusCode, Json<Value>) {
    match result {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true, "message": what}))),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": format!("cannot save the remediation state: {e}")})),
        ),
    }
}

fn pause_target(shared: &Arc<Shared>, name: &str, q: PauseQuery) -> (StatusCode, Json<Value>) {
    let duration = match q
        .duration
        .as_deref()
        .map(|text| crate::config::units::HOLD.parse(text))
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("`for`: {e}")})),
            );
        }
    };
    let what = if name == ALL {
        "all remediations".to_string()
    } else {
        format!("remediation {name:?}")
    };
    done(
        shared.remediator().pause(name, duration),
        format!("paused {what}"),
    )
}

/// `POST /v1/remediations/{name}/pause?for=10m`.
pub async fn pause(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(q): Query<PauseQuery>,
) -> (StatusCode, Json<Value>) {
    if let Err(e) = known(&shared, &name) {
        return e;
    }
    pause_target(&shared, &name, q)
}

/// `POST /v1/pause?for=10m`: every remediation.
pub async fn pause_all(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<PauseQuery>,
) -> (StatusCode, Json<Value>) {
    pause_target(&shared, ALL, q)
}

/// `POST /v1/remediations/{name}/resume`.
pub async fn resume(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> (StatusCode, Json<Value>) {
    if let Err(e) = known(&shared, &name) {
        return e;
    }
    done(
        shared.remediator().resume(&name),
        format!("resumed remediation {name:?}"),
    )
}

/// `POST /v1/resume`: lift the pause of every remediation.
pub async fn resume_all(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    done(
        shared.remediator().resume(ALL),
        "resumed all remediations".into(),
    )
}

/// `POST /v1/remediations/{name}/reset`.
pub async fn reset(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> (StatusCode, Json<Value>) {
    if let Err(e) = known(&shared, &name) {
        return e;
    }
    done(
        shared.remediator().reset(&name),
        format!("reset remediation {name:?}"),
    )
}

/// `POST /v1/remediations/{name}/switchover`: start the planned
/// switchover of a MariaDB or Redis failover remediation; 202 with its `id` (its
/// steps and outcome are audit records with that id), 409 with why it
/// cannot start.
pub async fn switchover(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> (StatusCode, Json<Value>) {
    if let Err(e) = known(&shared, &name) {
        return e;
    }
    match shared.remediator().switchover(&name) {
        Ok(id) => (
            StatusCode::ACCEPTED,
            Json(
                json!({"ok": true, "id": id, "message": format!("switchover of {name:?} started (audit id {id})")}),
            ),
        ),
        Err(why) => (StatusCode::CONFLICT, Json(json!({"error": why}))),
    }
}
