//! One recorded step of a failover, a switchover or a rejoin (PostgreSQL's
//! [`super::failover`] and MariaDB's [`super::mysql_failover`] alike), and
//! the time limit every step runs within, so that both failovers build and
//! bound their steps the same way.

use serde_json::{Value, json};
use std::time::Duration;

/// The detail key a failed promote step carries when it counts as
/// promoted all the same (its reply lost: `remediate::promoted`).
pub const PROMOTED: &str = "promoted";

/// One finished step: its name (`pre-check`, `fence`, `promote`, ...),
/// whether it succeeded, a message for people and a JSON detail for the
/// audit record.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: &'static str,
    pub ok: bool,
    pub message: String,
    pub detail: Value,
}

impl Step {
    /// A step that succeeded.
    pub fn ok(name: &'static str, message: impl Into<String>, detail: Value) -> Step {
        Step {
            name,
            ok: true,
            message: message.into(),
            detail,
        }
    }

    /// Whether this step promoted a server: a promote step that
    /// succeeded, or one that failed but whose target may take writes (its
    /// reply lost, `"promoted": true`): a second failover must not
    /// promote another, and the old primary's rejoin is still needed.
    pub fn counts_as_promoted(&self) -> bool {
        self.name == "promote" && (self.ok || self.detail[PROMOTED] == Value::Bool(true))
    }

    /// A failed promote step whose `target` may take writes all the same
    /// (the command's reply was lost or timed out, and a second read says
    /// it is a primary or cannot be read): `detail` names the target and
    /// sets `"promoted": true` ([`PROMOTED`]), which [`Step::counts_as_promoted`]
    /// reads (the failover block and the rejoin watch apply).
    pub fn may_be_promoted(target: &str, message: String) -> Step {
        Step::failed(
            "promote",
            format!("{message}; counted as promoted: further failovers are blocked"),
            json!({"target": target, (PROMOTED): true}),
        )
    }

    /// A step that failed: the failover stops at it.
    pub fn failed(name: &'static str, message: impl Into<String>, detail: Value) -> Step {
        Step {
            name,
            ok: false,
            message: message.into(),
            detail,
        }
    }
}

/// Run step `name` within `limit`; past it, the step failed (a server
/// that accepted the connection and then stopped answering never hangs a
/// failover), with `limit_ms` in its detail.
pub async fn within(
    name: &'static str,
    limit: Duration,
    step: impl std::future::Future<Output = Step>,
) -> Step {
    match tokio::time::timeout(limit, step).await {
        Ok(step) => step,
        Err(_) => Step::failed(
            name,
            format!(
                "did not finish within {} (a server accepted the connection but stopped answering?)",
                crate::config::units::format_duration(limit)
            ),
            json!({"limit_ms": limit.as_millis() as u64}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_past_its_limit_failed_with_the_limit_named() {
        let stalled = within("fence", Duration::from_millis(10), async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Step::ok("fence", "never", Value::Null)
        })
        .await;
        assert!(!stalled.ok);
        assert_eq!(stalled.name, "fence");
        assert_eq!(stalled.detail["limit_ms"], 10);
        let done = within("fence", Duration::from_secs(5), async {
            Step::ok("fence", "fenced", Value::Null)
        })
        .await;
        assert!(done.ok && done.message == "fenced");
    }
}
