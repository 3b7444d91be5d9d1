//! `GET /metrics`: every probe's latest measurements and status, and the
//! agent's own counters, in the Prometheus text format.

use crate::daemon::Shared;
use crate::telemetry::prometheus::{self, ProbeSample};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::Arc;

pub async fn exposition(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let slots = shared.slots();
    // Copy what is needed under each lock, then render without locks.
    let views: Vec<_> = slots
        .values()
        .map(|slot| {
            let state = slot.state();
            (
                slot.clone(),
                state.current(),
                state.hard(),
                state.flap.flapping,
                state.last_report.clone(),
                slot.setup().probe.info.measurements.clone(),
            )
        })
        .collect();
    let samples: Vec<ProbeSample> = views
        .iter()
        .map(
            |(slot, current, hard, flapping, report, described)| ProbeSample {
                name: &slot.name,
                current: *current,
                hard: *hard,
                flapping: *flapping,
                report: report.as_ref(),
                counters: &slot.counters,
                described,
            },
        )
        .collect();
    let agent = shared.snapshot();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus::render(&agent, prometheus::own_usage(), &samples),
    )
}
