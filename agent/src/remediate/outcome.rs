//! What an action did ([`ActionOutcome`]), and what the recovery actions
//! ([`super::recovery`], [`super::reinit`]) share: the connect deadline
//! and how a server's error reads. A leaf of `remediate`, so that the
//! actions and the task that runs them ([`super::act`]) import it and not
//! each other.

use serde_json::Value;
use std::time::Duration;

/// What the action did.
#[derive(Clone, Debug)]
pub struct ActionOutcome {
    pub ok: bool,
    pub message: String,
    pub detail: Value,
}

/// How long a recovery action waits for its admin session.
pub(super) const CONNECT: Duration = Duration::from_secs(5);

/// A failed outcome with `message` and no detail.
pub(super) fn fail(message: String) -> ActionOutcome {
    ActionOutcome {
        ok: false,
        message,
        detail: Value::Null,
    }
}

/// The server's own message, when it sent one.
pub(super) fn pg_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}
