//! What the role that probes use may do to the server beyond reading.
//!
//! A probe's statements run in a read-only transaction, but a read-only
//! transaction can still call `pg_promote()` (a split brain), signal other
//! backends, or read and write server files through a superuser or a
//! member of the `pg_*_server_*` roles. The role of a target's `dsn` (the
//! one probes use; the agent's own actions use `admin_dsn`) should have
//! none of that: [`dangers`] lists what it has, new pooled sessions log it
//! once ([`hook`]), or refuse it with `strict_privileges`, and `validate`
//! reports it ([`SqlTargets::privileges`]).

use super::SqlTargets;
use super::errors;
use super::types::Error;
use deadpool_postgres::HookError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One row per danger, as text, for the session's role and every role it
/// may become (`SET ROLE`, e.g. inside a `DO` block, works for any role it
/// is a member of, inheriting or not): a superuser, `REPLICATION`, a
/// member of a role that reaches the server's files, programs, other
/// sessions or checkpoints, and any `pg_catalog` function revoked from
/// `PUBLIC` that it may execute and `pg_monitor` may not (`pg_promote`,
/// `pg_read_file`, `lo_export`, `pg_stat_reset`, ...). A superuser's
/// functions are not listed one by one; the functions that change the
/// server's state most are named for it too.
const CHECK: &str = "\
WITH mine AS ( \
  SELECT oid, rolname, rolsuper, rolreplication FROM pg_catalog.pg_roles \
   WHERE pg_catalog.pg_has_role(current_user, oid, 'MEMBER')), \
found (rank, danger) AS ( \
SELECT 0, 'is a superuser' FROM mine WHERE rolname = current_user AND rolsuper \
UNION \
SELECT 1, 'may SET ROLE to the superuser ' || rolname FROM mine \
 WHERE rolsuper AND rolname <> current_user \
UNION \
SELECT 2, 'has REPLICATION (may stream or copy every table)' FROM mine \
 WHERE rolname = current_user AND rolreplication AND NOT rolsuper \
UNION \
SELECT 3, 'may SET ROLE to ' || rolname || ', which has REPLICATION' FROM mine \
 WHERE rolname <> current_user AND rolreplication AND NOT rolsuper \
UNION \
SELECT 4, 'is a member of ' || rolname FROM mine \
 WHERE rolname IN ('pg_execute_server_program', 'pg_write_server_files', \
                   'pg_read_server_files', 'pg_signal_backend', 'pg_checkpoint') \
UNION \
SELECT 5, 'may execute ' || f FROM unnest(ARRAY['pg_promote(boolean,integer)', \
  'pg_wal_replay_pause()', 'pg_wal_replay_resume()', 'pg_reload_conf()', \
  'pg_switch_wal()']) AS f \
 WHERE pg_catalog.to_regprocedure(f) IS NOT NULL \
   AND pg_catalog.has_function_privilege(pg_catalog.to_regprocedure(f), 'EXECUTE') \
UNION \
SELECT 5, 'may execute ' || p.oid::pg_catalog.regprocedure::text \
  FROM pg_catalog.pg_proc p, mine m \
 WHERE p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace AND NOT m.rolsuper \
   AND NOT pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE') \
   AND NOT pg_catalog.has_function_privilege('pg_monitor', p.oid, 'EXECUTE') \
   AND pg_catalog.has_function_privilege(m.oid, p.oid, 'EXECUTE')) \
SELECT danger FROM found ORDER BY rank, danger";

/// What the session's role may do beyond monitoring (empty: nothing).
pub async fn dangers(
    client: &tokio_postgres::Client,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let mut found = Vec::new();
    for message in client.simple_query(CHECK).await? {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message
            && let Some(text) = row.get(0)
        {
            found.push(text.to_string());
        }
    }
    Ok(found)
}

/// What a dangerous account means for probes, by `strict_privileges`: the
/// second half of every engine's privilege warning.
pub(crate) fn consequence(strict: bool) -> &'static str {
    if strict {
        "`strict_privileges` refuses to give it to probes"
    } else {
        "any probe granted the target can use that; set `strict_privileges = true` to refuse it"
    }
}

/// The sentence for a role with `dangers`.
pub fn describe(target: &str, user: &str, dangers: &[String], strict: bool) -> String {
    let consequence = consequence(strict);
    format!(
        "target `{target}`: the role `{user}` that probes use {}: {consequence}. Give probes a \
         monitoring role (member of pg_monitor only) and put the failover role in `admin_dsn` \
         (see the manual's PostgreSQL chapter, \"Least-privilege database roles\": docs/src/engines/postgresql.md)",
        dangers.join(", ")
    )
}

/// The pool's check of each new probe session: log a role with dangers
/// once per target, or refuse the session when `strict`.
pub fn hook(target: &str, strict: bool) -> deadpool_postgres::Hook {
    let target: Arc<str> = target.into();
    let warned = Arc::new(AtomicBool::new(false));
    deadpool_postgres::Hook::async_fn(move |client, _| {
        let target = target.clone();
        let warned = warned.clone();
        Box::pin(async move {
            let found = dangers(client).await.map_err(HookError::Backend)?;
            if found.is_empty() {
                return Ok(());
            }
            let user = current_user(client).await;
            let message = describe(&target, &user, &found, strict);
            if strict {
                return Err(HookError::Message(message.into()));
            }
            if !warned.swap(true, Ordering::Relaxed) {
                tracing::warn!("{message}");
            }
            Ok(())
        })
    })
}

async fn current_user(client: &tokio_postgres::Client) -> String {
    match client.simple_query("SELECT current_user").await {
        Ok(messages) => messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(String::from),
                _ => None,
            })
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// What checking a target's probe role found.
pub enum Checked {
    /// The role may do nothing beyond monitoring.
    Fine,
    /// The role's dangers, as a sentence; `strict`: the target refuses it.
    Dangerous { message: String, strict: bool },
}

impl SqlTargets {
    /// Open a session to `target` as probes would and check its role's
    /// privileges, within `within`.
    pub async fn privileges(&self, target: &str, within: Duration) -> Result<Checked, Error> {
        if let Some(mysql) = self.get_mysql(target) {
            let strict = mysql.spec.strict_privileges;
            let found = tokio::time::timeout(within, mysql.privileges())
                .await
                .map_err(|_| {
                    Error::Timeout(format!(
                        "target `{target}`: checking privileges took longer than {within:?}"
                    ))
                })??;
            return Ok(match found.into_iter().next() {
                None => Checked::Fine,
                Some(message) => Checked::Dangerous { message, strict },
            });
        }
        let found = self.get(target)?;
        let work = async {
            let (client, _connection) = found
                .connector
                .connect(found.probe_config())
                .await
                .map_err(|e| errors::connect_error(target, &e))?;
            let dangers = dangers(&client)
                .await
                .map_err(|e| errors::query_error(target, &e))?;
            if dangers.is_empty() {
                return Ok(Checked::Fine);
            }
            let user = current_user(&client).await;
            let strict = found.spec.strict_privileges;
            Ok(Checked::Dangerous {
                message: describe(target, &user, &dangers, strict),
                strict,
            })
        };
        tokio::time::timeout(within, work).await.map_err(|_| {
            Error::Timeout(format!(
                "target `{target}`: checking privileges took longer than {within:?}"
            ))
        })?
    }
}
