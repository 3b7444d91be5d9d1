//! The status API, bound to 127.0.0.1 unless configured: health, probe
//! states, Prometheus metrics, the remediation audit log, control
//! (reload, pause/resume/reset of remediations), and the status page for
//! people ([`page`]: `/`, `/probes/{name}`, `/remediations`). Control
//! endpoints need `Authorization: Bearer TOKEN` when `api_token_env` is
//! set (required when the API listens beyond loopback), and refuse a
//! request that a browser sent from another origin (its `Origin` header
//! names another host), so a web page elsewhere cannot drive them.

mod cluster;
mod control;
mod metrics;
mod page;
mod probes;
mod remediation;
mod role;

use crate::daemon::Shared;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    let control = Router::new()
        .route("/v1/reload", post(control::reload))
        .route("/v1/pause", post(remediation::pause_all))
        .route("/v1/resume", post(remediation::resume_all))
        .route("/v1/remediations/{name}/pause", post(remediation::pause))
        .route("/v1/remediations/{name}/resume", post(remediation::resume))
        .route("/v1/remediations/{name}/reset", post(remediation::reset))
        .route("/v1/cluster/switchover", post(cluster::switchover))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ));
    Router::new()
        .route("/", get(page::overview))
        .route("/probes/{name}", get(page::probe))
        .route("/remediations", get(page::remediations))
        .route("/healthz", get(healthz))
        .route("/v1/probes", get(probes::list))
        .route("/v1/probes/{name}", get(probes::one))
        .route("/metrics", get(metrics::exposition))
        .route("/v1/events", get(remediation::events))
        .route("/v1/remediations", get(remediation::list))
        .route("/v1/role/primary", get(role::primary))
        .route("/v1/role/replica", get(role::replica))
        .route("/v1/cluster", get(cluster::view))
        .merge(control)
        .with_state(shared)
}

async fn healthz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let uptime = shared
        .started
        .elapsed()
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    axum::Json(serde_json::json!({"status": "ok", "uptime_seconds": uptime}))
}

/// The token control endpoints require, if one is configured.
fn token(shared: &Shared) -> Option<String> {
    let name = shared.config().agent.api_token_env.clone()?;
    std::env::var(name).ok().filter(|t| !t.is_empty())
}

async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if cross_origin(&request) {
        return (
            StatusCode::FORBIDDEN,
            "a control request from another origin is refused\n",
        )
            .into_response();
    }
    let configured = shared.config().agent.api_token_env.is_some();
    match token(&shared) {
        None if !configured => next.run(request).await,
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the API token variable named by `api_token_env` is not set in the agent's environment\n",
        )
            .into_response(),
        Some(expected) => {
            let given = request
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if given == Some(expected.as_str()) {
                next.run(request).await
            } else {
                (StatusCode::UNAUTHORIZED, "send `Authorization: Bearer TOKEN`\n").into_response()
            }
        }
    }
}

/// A browser request whose `Origin` is not this listener's own (`Host`).
/// Command-line clients send no `Origin`.
fn cross_origin(request: &Request) -> bool {
    let headers = request.headers();
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return false;
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    host.is_none() || origin_host != host
}

/// Bind the API; the error names the address and what to change.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {listen}: {e}; set `listen` in [agent] to a free address")
    })
}

/// Serve until the agent shuts down.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> anyhow::Result<()> {
    let shutdown = shared.shutdown.clone();
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
