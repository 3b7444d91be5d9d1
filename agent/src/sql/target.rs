//! One database target: its connection pool, and running a statement or a
//! ping against it within a run's deadline.
//!
//! A statement costs one round trip once its session has prepared it: the
//! `SET statement_timeout` that bounds it is pipelined with it, and
//! prepared statements are cached per session. A pooled session found dead
//! (the server restarted since it was opened) is dropped and the statement
//! retried once on a new session, for read-only targets, so that the first
//! run after a restart does not report the server down.
//!
//! Every probe statement runs in a transaction of its own, opened in the
//! same round trip: `BEGIN READ ONLY` (on a read-only target) with
//! `SET LOCAL` statement, lock and idle-in-transaction timeouts, then the
//! statement, then [`END`]: `COMMIT` and a reset of the session. Nothing a
//! single statement does outlives it: a `SET default_transaction_read_only
//! = off` or `SET SESSION CHARACTERISTICS` is reset, a `BEGIN` or an error
//! leaves no open or aborted transaction behind, a session advisory lock
//! is released, and none of it depends on a startup option a pooler may
//! drop. A session goes back to the pool only when that end answered (it
//! is then idle, whatever the statement did); otherwise it is closed.
//!
//! A new pooled session first checks its role's privileges
//! ([`super::privileges`]): a role that could turn a probe against the
//! server is logged once, or refused with `strict_privileges`.
//!
//! Every session, pooled or not, is opened by the target's
//! [`Connector`] with the DSN's `sslmode` (see [`super::tls`]); a password
//! not in the DSN comes from the config's secret or the passfile. The
//! agent's own actions use the separate admin DSN when the target has one.

use super::TargetSpec;
use super::conninfo::ConnInfo;
use super::errors;
use super::passfile;
use super::privileges;
use super::rows::collect;
use super::tls::Connector;
use super::types::{Error, Rows, Value};
use super::values::Param;
use deadpool_postgres::{HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::time::{Duration, Instant};

/// Connections kept per target.
const POOL_SIZE: usize = 4;
/// Upper bound on connecting, whatever the run's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per session before the cache is emptied (probes
/// that build statements with literals would otherwise grow it forever).
const MAX_CACHED_STATEMENTS: usize = 256;
/// Longest a probe statement waits for a lock: a probe queued behind an
/// `ACCESS EXCLUSIVE` lock would block every session queued behind it.
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long past its statement timeout the server keeps a probe session
/// idle in a transaction (the agent vanished mid-run) before ending it.
const IDLE_IN_TRANSACTION_GRACE: Duration = Duration::from_secs(5);
/// Longest wait for the [`END`] of a probe statement's transaction; a
/// session that does not answer in time is closed.
const END_TIMEOUT: Duration = Duration::from_secs(2);

/// What ends every probe statement's transaction, in one round trip: the
/// `COMMIT` (of a read-only transaction on a read-only target: it changes
/// no data, but unlike `ROLLBACK` it hands the WAL that reading wrote,
/// HOT pruning and hint-bit images, to the WAL writer; after a `ROLLBACK`
/// of a transaction without an xid that WAL stays unflushed on an idle
/// primary and a standby never reaches `pg_current_wal_insert_lsn()`),
/// then a reset of everything a statement may leave in the session that a
/// commit keeps: settings (`SET`, `set_config`, `SET SESSION
/// CHARACTERISTICS` all go back to the session's startup values), the
/// role, session-level advisory locks, held cursors and `LISTEN`s. This is
/// `DISCARD ALL` without `DEALLOCATE ALL` (which would drop the session's
/// cached statements). A statement prepared with SQL `PREPARE` (even from
/// a `DO` block) could stand in for a statement the driver cached under
/// the same name and forge another probe's result: its presence makes the
/// last statement fail (a division by zero), and a session whose end
/// failed is closed. A read-write target also drops temporary objects
/// (a temporary view named like a catalog view would shadow it) and
/// sequence state ([`END_READ_WRITE`]).
const END: &str = "COMMIT; RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL; \
                   SELECT pg_catalog.pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; \
                   SELECT 1 / (NOT EXISTS (SELECT FROM pg_catalog.pg_prepared_statements \
                   WHERE from_sql))::int";

/// [`END`] for a target with `read_only = false`.
const END_READ_WRITE: &str = "COMMIT; RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL; \
                   SELECT pg_catalog.pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; \
                   DISCARD TEMP; DISCARD SEQUENCES; \
                   SELECT 1 / (NOT EXISTS (SELECT FROM pg_catalog.pg_prepared_statements \
                   WHERE from_sql))::int";

/// A session whose result held a row this large (bytes in the agent) is
/// closed rather than pooled: the driver's read buffer grew to hold it and
/// would keep that memory for the session's life.
const POOLED_ROW_MAX: usize = 1 << 20;

/// A pooled session checked out for one statement: dropped before the
/// statement's end answered (the caller gave up, the agent is stopping),
/// it is closed, never returned to the pool mid-transaction.
struct Checkout(Option<Object>);

impl Checkout {
    fn client(&self) -> &Object {
        self.0
            .as_ref()
            .expect("a checkout holds its session until it is released")
    }

    /// The statement ended cleanly: the session may go back to the pool.
    fn release(mut self) -> Object {
        self.0.take().expect("a checkout is released once")
    }

    /// Close the session now.
    fn close(mut self) {
        if let Some(client) = self.0.take() {
            let _ = Object::take(client);
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            let _ = Object::take(client);
        }
    }
}

pub struct Target {
    name: String,
    pub spec: TargetSpec,
    config: tokio_postgres::Config,
    /// For the agent's own actions (a failover's promotion and write
    /// check, fencing, terminating sessions), never for probes: the admin
    /// DSN when the target has one, else the DSN, without the read-only
    /// session option.
    pub admin: tokio_postgres::Config,
    /// Opens admin sessions with the admin DSN's TLS settings.
    pub admin_connector: Connector,
    /// Opens sessions with the DSN's TLS settings.
    pub connector: Connector,
    /// How another server logs in to stream from this one: the
    /// replication DSN when the target has one, else the admin login.
    pub replication: tokio_postgres::Config,
    pool: Pool,
}

/// What to do after a failed attempt.
enum Retry {
    /// The pooled session was dead: try once more on a new one.
    NewSession,
    /// The session's cached statement went stale (schema change, or a
    /// pooler discarded it): empty the cache and try once more.
    Reprepare,
}

/// `statement_timeout` of the agent's own admin sessions (a statement
/// that needs longer sets its own).
pub const ADMIN_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound an admin session on the server and on the wire: a statement
/// timeout, and TCP keepalives plus a user timeout so that a peer that
/// stops answering (dropped packets, a frozen host) fails the session in
/// about ten seconds instead of the kernel's two hours.
fn bound_admin_session(admin: &mut tokio_postgres::Config) {
    let options = admin.get_options().unwrap_or_default().to_string();
    admin.options(
        format!(
            "{options} -c statement_timeout={}",
            ADMIN_STATEMENT_TIMEOUT.as_millis()
        )
        .trim(),
    );
    admin
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(10));
}

/// The connection settings and connector of one DSN of target `name`
/// (`key` names it in errors), with `password` when the DSN has none, else
/// the passfile's.
fn open_dsn(
    name: &str,
    key: &str,
    dsn: &str,
    password: Option<&str>,
) -> Result<(tokio_postgres::Config, Connector), String> {
    let info = ConnInfo::parse(dsn).map_err(|e| format!("target `{name}`: invalid {key}: {e}"))?;
    let connector =
        Connector::new(info.ssl_mode, &info.files).map_err(|e| format!("target `{name}`: {e}"))?;
    let mut config = info.config;
    if config.get_password().is_none() {
        if let Some(password) = password {
            config.password(password.as_bytes());
        } else if let Some(file) =
            passfile::locate(info.passfile.as_deref(), |v| std::env::var(v).ok())
            && let Some(password) =
                passfile::lookup(&file, &config).map_err(|e| format!("target `{name}`: {e}"))?
        {
            config.password(password.as_bytes());
        }
    }
    if config.get_application_name().is_none() {
        config.application_name("watchpost");
    }
    Ok((config, connector))
}

impl Target {
    pub fn new(name: &str, spec: &TargetSpec) -> Result<Self, String> {
        let (mut config, connector) = open_dsn(name, "dsn", &spec.dsn, spec.password.as_deref())?;
        let (mut admin, admin_connector) = match &spec.admin_dsn {
            Some(dsn) => open_dsn(name, "admin_dsn", dsn, spec.admin_password.as_deref())?,
            None => (config.clone(), connector.clone()),
        };
        let replication = match &spec.replication_dsn {
            Some(dsn) => {
                open_dsn(
                    name,
                    "replication_dsn",
                    dsn,
                    spec.replication_password.as_deref(),
                )?
                .0
            }
            None => admin.clone(),
        };
        admin.connect_timeout(CONNECT_TIMEOUT);
        bound_admin_session(&mut admin);
        if spec.read_only {
            let options = config.get_options().unwrap_or_default().to_string();
            config.options(format!("{options} -c default_transaction_read_only=on").trim());
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives(true);
        let manager = Manager::from_connect(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .post_create(privileges::hook(name, spec.strict_privileges))
            .build()
            .map_err(|e| format!("target `{name}`: cannot build a connection pool: {e}"))?;
        Ok(Target {
            name: name.to_string(),
            spec: spec.clone(),
            config,
            admin,
            admin_connector,
            connector,
            replication,
            pool,
        })
    }

    /// Run one statement on a pooled session before `deadline`.
    pub async fn query(
        &self,
        statement: &str,
        params: &[Value],
        deadline: Instant,
        budget: usize,
    ) -> Result<Rows, Error> {
        let mut retried = false;
        loop {
            let checkout = Checkout(Some(self.session(deadline).await?));
            let reused = Object::metrics(checkout.client()).recycle_count > 0;
            let attempt = self.run(checkout.client(), statement, params, deadline, budget);
            let outcome = match tokio::time::timeout(self.remaining(deadline)?, attempt).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // The session may still be busy with the statement:
                    // keep it out of the pool.
                    checkout.close();
                    return Err(self.timed_out("the statement"));
                }
            };
            if checkout.client().statement_cache.size() > MAX_CACHED_STATEMENTS {
                checkout.client().statement_cache.clear();
            }
            let (outcome, ended) = outcome;
            // A session whose transaction did not end cleanly (or whose
            // server may still be sending an oversized result) is closed.
            let client = if ended {
                Some(checkout.release())
            } else {
                checkout.close();
                None
            };
            let error = match outcome {
                Ok(rows) => return Ok(rows),
                Err(error) => error,
            };
            match (self.retry(&error, reused), client) {
                (Some(_), _) if retried => return Err(error),
                (Some(Retry::NewSession), Some(client)) => {
                    let _ = Object::take(client);
                }
                (Some(Retry::NewSession), None) => {}
                (Some(Retry::Reprepare), Some(client)) => client.statement_cache.clear(),
                (Some(Retry::Reprepare), None) | (None, _) => return Err(error),
            }
            retried = true;
        }
    }

    fn retry(&self, error: &Error, reused: bool) -> Option<Retry> {
        match error {
            Error::Unreachable(_) if reused && self.spec.read_only => Some(Retry::NewSession),
            Error::Query(q) if errors::is_stale_statement(&q.code) => Some(Retry::Reprepare),
            _ => None,
        }
    }

    /// A pooled session, opened if none is idle.
    async fn session(&self, deadline: Instant) -> Result<Object, Error> {
        tokio::time::timeout(self.remaining(deadline)?, self.pool.get())
            .await
            .map_err(|_| self.timed_out("connecting"))?
            .map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e)
                | deadpool_postgres::PoolError::PostCreateHook(HookError::Backend(e)) => {
                    errors::connect_error(&self.name, &e)
                }
                deadpool_postgres::PoolError::PostCreateHook(HookError::Message(m)) => {
                    Error::Refused(m.to_string())
                }
                other => Error::Unreachable(format!("target `{}`: {other}", self.name)),
            })
    }

    /// Run the statement in a transaction of its own (see the module
    /// docs): the `BEGIN` and its timeouts travel in the same round trip
    /// as the statement, then [`END`]. Returns the outcome and
    /// whether the session ended idle, fit for the pool.
    async fn run(
        &self,
        client: &Object,
        statement: &str,
        params: &[Value],
        deadline: Instant,
        budget: usize,
    ) -> (Result<Rows, Error>, bool) {
        // PostgreSQL's timeouts are `int` milliseconds (at most ~24.8
        // days); a probe's timeout may be longer.
        let budget_ms = match self.remaining(deadline) {
            Ok(left) => left.as_millis().clamp(1, (i32::MAX / 2) as u128),
            Err(e) => return (Err(e), true),
        };
        let mode = if self.spec.read_only {
            "READ ONLY"
        } else {
            "READ WRITE"
        };
        let begin = format!(
            "BEGIN {mode}; SET LOCAL statement_timeout = {budget_ms}; \
             SET LOCAL lock_timeout = {}; SET LOCAL idle_in_transaction_session_timeout = {}",
            budget_ms.min(LOCK_TIMEOUT.as_millis()),
            budget_ms + IDLE_IN_TRANSACTION_GRACE.as_millis()
        );
        let statement = async {
            let prepared = client
                .prepare_cached(statement)
                .await
                .map_err(|e| errors::query_error(&self.name, &e))?;
            let columns = prepared
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect();
            let stream = client
                .query_raw(&prepared, params.iter().map(Param))
                .await
                .map_err(|e| errors::query_error(&self.name, &e))?;
            collect(&self.name, columns, stream, budget).await
        };
        // `biased`: the BEGIN is polled first, so it is queued on the
        // connection before the statement (each queues its request before
        // its first await): the server runs them in that order.
        let (begun, rows) = tokio::join!(biased; client.batch_execute(&begin), statement);
        let cut_short = matches!(&rows, Err(Error::TooLarge { .. }))
            || matches!(&rows, Err(Error::Query(q))
                if q.code == errors::PROGRAM_LIMIT_EXCEEDED || q.code == errors::DATA_EXCEPTION);
        if cut_short {
            // Oversized, or a value the agent could not decode: the server
            // may still be sending rows, so close the session at once
            // rather than read (and drop) the rest of the result.
            return (rows, false);
        }
        let end = if self.spec.read_only {
            END
        } else {
            END_READ_WRITE
        };
        let ended = matches!(
            tokio::time::timeout(END_TIMEOUT, client.batch_execute(end)).await,
            Ok(Ok(()))
        );
        // A large row grew the session's read buffer for good: close it.
        let large = rows
            .as_ref()
            .is_ok_and(|rows| rows.largest_row > POOLED_ROW_MAX);
        let ended = ended && !large;
        let outcome = match begun {
            Err(e) => Err(errors::query_error(&self.name, &e)),
            Ok(()) => rows,
        };
        (outcome, ended)
    }

    /// Open, test and close a new session (not from the pool); the time it
    /// took to be ready for statements.
    pub async fn ping(&self, deadline: Instant) -> Result<Duration, Error> {
        let started = Instant::now();
        let work = async {
            let (client, connection) = self
                .connector
                .connect(&self.config)
                .await
                .map_err(|e| errors::connect_error(&self.name, &e))?;
            client
                .simple_query("")
                .await
                .map_err(|e| errors::query_error(&self.name, &e))?;
            let took = started.elapsed();
            drop(client);
            let _ = connection.await;
            Ok(took)
        };
        tokio::time::timeout(self.remaining(deadline)?, work)
            .await
            .map_err(|_| self.timed_out("connecting"))?
    }

    /// The connection settings of probe sessions.
    pub fn probe_config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration, Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(Error::Timeout(format!(
                "target `{}`: the run's deadline has passed",
                self.name
            )));
        }
        Ok(left)
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::Timeout(format!(
            "target `{}`: {what} did not finish before the run's deadline",
            self.name
        ))
    }
}
