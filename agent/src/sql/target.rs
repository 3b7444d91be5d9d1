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
//! Every session, pooled or not, is opened by the target's
//! [`Connector`] with the DSN's `sslmode` (see [`super::tls`]); a password
//! not in the DSN comes from the config's secret or the passfile.

use super::TargetSpec;
use super::conninfo::ConnInfo;
use super::errors;
use super::passfile;
use super::rows::collect;
use super::tls::Connector;
use super::types::{Error, Rows, Value};
use super::values::Param;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::time::{Duration, Instant};

/// Connections kept per target.
const POOL_SIZE: usize = 4;
/// Upper bound on connecting, whatever the run's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per session before the cache is emptied (probes
/// that build statements with literals would otherwise grow it forever).
const MAX_CACHED_STATEMENTS: usize = 256;

pub struct Target {
    name: String,
    pub spec: TargetSpec,
    config: tokio_postgres::Config,
    /// The same without the read-only session option: for the agent's own
    /// actions (a failover's promotion and write check), never for probes.
    pub admin: tokio_postgres::Config,
    /// Opens sessions with the DSN's TLS settings.
    pub connector: Connector,
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

impl Target {
    pub fn new(name: &str, spec: &TargetSpec) -> Result<Self, String> {
        let info =
            ConnInfo::parse(&spec.dsn).map_err(|e| format!("target `{name}`: invalid dsn: {e}"))?;
        let connector = Connector::new(info.ssl_mode, &info.files)
            .map_err(|e| format!("target `{name}`: {e}"))?;
        let mut config = info.config;
        if config.get_password().is_none() {
            if let Some(password) = &spec.password {
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
        let mut admin = config.clone();
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
            .build()
            .map_err(|e| format!("target `{name}`: cannot build a connection pool: {e}"))?;
        Ok(Target {
            name: name.to_string(),
            spec: spec.clone(),
            config,
            admin,
            connector,
            pool,
        })
    }

    /// Run one statement on a pooled session before `deadline`.
    pub async fn query(
        &self,
        statement: &str,
        params: &[Value],
        deadline: Instant,
    ) -> Result<Rows, Error> {
        let mut retried = false;
        loop {
            let client = self.session(deadline).await?;
            let reused = Object::metrics(&client).recycle_count > 0;
            let attempt = self.run(&client, statement, params, deadline);
            let outcome = match tokio::time::timeout(self.remaining(deadline)?, attempt).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // The session may still be busy with the statement:
                    // keep it out of the pool.
                    let _ = Object::take(client);
                    return Err(self.timed_out("the statement"));
                }
            };
            if client.statement_cache.size() > MAX_CACHED_STATEMENTS {
                client.statement_cache.clear();
            }
            let error = match outcome {
                Ok(rows) => return Ok(rows),
                Err(error) => error,
            };
            match self.retry(&error, reused) {
                Some(_) if retried => return Err(error),
                Some(Retry::NewSession) => {
                    let _ = Object::take(client);
                }
                Some(Retry::Reprepare) => client.statement_cache.clear(),
                None => return Err(error),
            }
            retried = true;
        }
    }

    fn retry(&self, error: &Error, reused: bool) -> Option<Retry> {
        match error {
            Error::Unreachable(_) if reused && self.spec.read_only => Some(Retry::NewSession),
            Error::Query(q) if errors::is_stale_statement(&q.code, &q.message) => {
                Some(Retry::Reprepare)
            }
            _ => None,
        }
    }

    /// A pooled session, opened if none is idle.
    async fn session(&self, deadline: Instant) -> Result<Object, Error> {
        tokio::time::timeout(self.remaining(deadline)?, self.pool.get())
            .await
            .map_err(|_| self.timed_out("connecting"))?
            .map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e) => errors::connect_error(&self.name, &e),
                other => Error::Unreachable(format!("target `{}`: {other}", self.name)),
            })
    }

    /// Bound the session's statements by what is left of the run, then
    /// prepare (or reuse) the statement and run it; the `SET` travels in
    /// the same round trip as the statement.
    async fn run(
        &self,
        client: &Object,
        statement: &str,
        params: &[Value],
        deadline: Instant,
    ) -> Result<Rows, Error> {
        let budget_ms = self.remaining(deadline)?.as_millis().max(1);
        let set_timeout = format!("SET statement_timeout = {budget_ms}");
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
            collect(&self.name, columns, stream).await
        };
        // `join!` polls the SET first, so it is queued on the connection
        // before the statement: the server runs them in that order.
        let (set, rows) = tokio::join!(client.batch_execute(&set_timeout), statement);
        set.map_err(|e| errors::query_error(&self.name, &e))?;
        rows
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
