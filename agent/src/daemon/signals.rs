//! Unix signals: SIGHUP reloads the config; SIGTERM and SIGINT shut the
//! agent down gracefully.

use super::Shared;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

/// Listen for signals until shutdown; returns when SIGTERM or SIGINT came.
pub async fn handle(shared: Arc<Shared>) -> anyhow::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                // The outcome is logged by reload itself.
                let _ = super::reload::reload(&shared).await;
            }
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: shutting down");
                break;
            }
            _ = shared.shutdown.cancelled() => break,
        }
    }
    shared.shutdown.cancel();
    Ok(())
}
