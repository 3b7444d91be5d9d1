//! The status API, bound to 127.0.0.1 unless configured: health, probe
//! states, Prometheus metrics, the remediation audit log, control
//! (reload, pause/resume/reset of remediations), and the status page for
//! people ([`page`]: `/`, `/probes/{name}`, `/remediations`).
//!
//! Who may do what is [`auth`]'s: POSTs always need the token (configured
//! with `api_token_env`, else generated into `state_dir/api-token`), reads
//! need it when it is configured (except `/healthz` and `/v1/role/*`), and
//! a browser cannot be made to POST. The accept loop ([`listener`]) bounds
//! connections, header and request time, and request size.

pub mod auth;
mod cluster;
mod control;
pub mod listener;
mod metrics;
mod page;
mod probes;
mod remediation;
mod role;

use crate::daemon::Shared;
use auth::ApiAuth;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;

/// The routes, every one behind [`auth::ApiAuth::check`].
pub fn router(shared: Arc<Shared>, auth: Arc<ApiAuth>) -> Router {
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
        .route("/v1/reload", post(control::reload))
        .route("/v1/pause", post(remediation::pause_all))
        .route("/v1/resume", post(remediation::resume_all))
        .route("/v1/remediations/{name}/pause", post(remediation::pause))
        .route("/v1/remediations/{name}/resume", post(remediation::resume))
        .route("/v1/remediations/{name}/reset", post(remediation::reset))
        .route(
            "/v1/remediations/{name}/switchover",
            post(remediation::switchover),
        )
        .route("/v1/cluster/switchover", post(cluster::switchover))
        .route("/v1/cluster/switchover/cancel", post(cluster::cancel))
        .with_state(shared)
        .layer(middleware::from_fn_with_state(auth, authorize))
}

async fn healthz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let uptime = shared.uptime().as_secs_f64();
    axum::Json(serde_json::json!({"status": "ok", "uptime_seconds": uptime}))
}

async fn authorize(State(auth): State<Arc<ApiAuth>>, request: Request, next: Next) -> Response {
    match auth.check(request.method(), request.uri().path(), request.headers()) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

/// Bind the API; the error names the address and what to change.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {listen}: {e}; set `listen` in [agent] to a free address")
    })
}

/// Serve until the agent shuts down.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    auth: Arc<ApiAuth>,
) -> anyhow::Result<()> {
    let shutdown = shared.shutdown_token();
    listener::serve(listener, router(shared, auth), shutdown).await;
    Ok(())
}
