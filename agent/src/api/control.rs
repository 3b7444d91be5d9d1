//! `POST /v1/reload`: the same as SIGHUP, with the outcome in the response.

use crate::daemon::{Shared, reload};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use std::sync::Arc;

pub async fn reload(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<serde_json::Value>) {
    match reload::reload(&shared).await {
        Ok(summary) => (
            StatusCode::OK,
            Json(json!({"reloaded": true, "summary": summary})),
        ),
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(
                json!({"reloaded": false, "error": error.to_string(), "note": "the previous config keeps running"}),
            ),
        ),
    }
}
