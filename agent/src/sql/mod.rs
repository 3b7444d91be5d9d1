//! Database targets: the service behind the `sql` capability.
//!
//! A target is a named PostgreSQL server from the config. Probes name
//! targets; the DSN (and any password in it) never leaves this module.
//! Each target has a small connection pool reused across runs; sessions
//! are read-only unless the target says otherwise, and every statement runs
//! under a `statement_timeout` no longer than what is left of the run.

mod errors;
mod values;

use crate::runtime::bindings::sql::{Error, QueryError, Rows, Value};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::{StreamExt, pin_mut};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;
use values::{Cell, Param};

/// Connections kept per target.
const POOL_SIZE: usize = 4;
/// Rows a statement may return to a probe.
pub const MAX_ROWS: usize = 100_000;
/// Bytes of cell data a statement may return to a probe.
pub const MAX_RESULT_BYTES: usize = 32 << 20;
/// Upper bound on connecting, whatever the run's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a target is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSpec {
    /// A libpq-style connection string (`host=... port=... user=...`) or URL.
    pub dsn: String,
    /// Sessions start with `default_transaction_read_only = on`.
    pub read_only: bool,
}

/// Why a DSN is not usable.
pub fn validate_dsn(dsn: &str) -> Result<(), String> {
    tokio_postgres::Config::from_str(dsn)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

struct Target {
    spec: TargetSpec,
    config: tokio_postgres::Config,
    /// The same, without the read-only session option: for the agent's own
    /// actions (failover), never for probes.
    admin: tokio_postgres::Config,
    pool: Pool,
}

/// All configured targets, by name. Cheap to clone; immutable (a config
/// reload builds a new set with [`SqlTargets::rebuild`]).
#[derive(Clone, Default)]
pub struct SqlTargets {
    targets: Arc<BTreeMap<String, Arc<Target>>>,
}

impl SqlTargets {
    /// Targets from specs. Errors name the target whose DSN is invalid.
    pub fn new(specs: &BTreeMap<String, TargetSpec>) -> Result<Self, String> {
        SqlTargets::default().rebuild(specs)
    }

    /// A new set for `specs` that keeps the pools (and open sessions) of
    /// targets whose spec did not change.
    pub fn rebuild(&self, specs: &BTreeMap<String, TargetSpec>) -> Result<Self, String> {
        let mut targets = BTreeMap::new();
        for (name, spec) in specs {
            let target = match self.targets.get(name) {
                Some(existing) if existing.spec == *spec => existing.clone(),
                _ => Arc::new(Target::new(name, spec)?),
            };
            targets.insert(name.clone(), target);
        }
        Ok(SqlTargets {
            targets: Arc::new(targets),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    fn get(&self, name: &str) -> Result<&Arc<Target>, Error> {
        self.targets
            .get(name)
            .ok_or_else(|| Error::NotGranted(format!("no target named `{name}` is configured")))
    }

    /// Run one statement on a pooled session of `target` before `deadline`.
    pub async fn query(
        &self,
        target: &str,
        statement: &str,
        params: &[Value],
        deadline: Instant,
    ) -> Result<Rows, Error> {
        self.get(target)?
            .query(target, statement, params, deadline)
            .await
    }

    /// A new read-write session to `target` for the agent's own actions
    /// (never handed to a probe). The connection task ends with the client.
    pub async fn admin_session(
        &self,
        target: &str,
        within: Duration,
    ) -> Result<tokio_postgres::Client, Error> {
        let target_spec = self.get(target)?;
        let connect = target_spec.admin.connect(NoTls);
        let (client, connection) = tokio::time::timeout(within, connect)
            .await
            .map_err(|_| timed_out(target, "connecting"))?
            .map_err(|e| errors::connect_error(target, &e))?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// libpq keyword/value connection info of `target` for
    /// `primary_conninfo` (host, port, user, password; no database).
    pub fn replication_conninfo(
        &self,
        target: &str,
        application_name: &str,
    ) -> Result<String, Error> {
        let config = &self.get(target)?.admin;
        let mut parts = Vec::new();
        if let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first() {
            parts.push(format!("host={}", quote(host)));
        }
        #[cfg(unix)]
        if let Some(tokio_postgres::config::Host::Unix(path)) = config.get_hosts().first() {
            parts.push(format!("host={}", quote(&path.display().to_string())));
        }
        if let Some(port) = config.get_ports().first() {
            parts.push(format!("port={port}"));
        }
        if let Some(user) = config.get_user() {
            parts.push(format!("user={}", quote(user)));
        }
        if let Some(password) = config.get_password() {
            parts.push(format!(
                "password={}",
                quote(&String::from_utf8_lossy(password))
            ));
        }
        parts.push(format!("application_name={}", quote(application_name)));
        Ok(parts.join(" "))
    }

    /// Open, test and close a new session to `target`; the time it took.
    pub async fn ping(&self, target: &str, deadline: Instant) -> Result<Duration, Error> {
        self.get(target)?.ping(target, deadline).await
    }
}

/// A libpq keyword/value string value, quoted.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn remaining(target: &str, deadline: Instant) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(Error::Timeout(format!(
            "target `{target}`: the run's deadline has passed"
        )));
    }
    Ok(left)
}

fn timed_out(target: &str, what: &str) -> Error {
    Error::Timeout(format!(
        "target `{target}`: {what} did not finish before the run's deadline"
    ))
}

impl Target {
    fn new(name: &str, spec: &TargetSpec) -> Result<Self, String> {
        let mut config = tokio_postgres::Config::from_str(&spec.dsn)
            .map_err(|e| format!("target `{name}`: invalid dsn: {e}"))?;
        if config.get_application_name().is_none() {
            config.application_name("watchpost");
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives(true);
        let admin = config.clone();
        if spec.read_only {
            let options = config.get_options().unwrap_or_default().to_string();
            config.options(format!("{options} -c default_transaction_read_only=on").trim());
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| format!("target `{name}`: cannot build a connection pool: {e}"))?;
        Ok(Target {
            spec: spec.clone(),
            config,
            admin,
            pool,
        })
    }

    async fn query(
        &self,
        name: &str,
        statement: &str,
        params: &[Value],
        deadline: Instant,
    ) -> Result<Rows, Error> {
        let client = tokio::time::timeout(remaining(name, deadline)?, self.pool.get())
            .await
            .map_err(|_| timed_out(name, "connecting"))?
            .map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e) => errors::connect_error(name, &e),
                other => Error::Unreachable(format!("target `{name}`: {other}")),
            })?;
        let work = async {
            let budget_ms = remaining(name, deadline)?.as_millis().max(1);
            client
                .batch_execute(&format!("SET statement_timeout = {budget_ms}"))
                .await
                .map_err(|e| errors::query_error(name, &e))?;
            let prepared = client
                .prepare(statement)
                .await
                .map_err(|e| errors::query_error(name, &e))?;
            let columns = prepared
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect();
            let stream = client
                .query_raw(&prepared, params.iter().map(Param))
                .await
                .map_err(|e| errors::query_error(name, &e))?;
            collect(name, columns, stream).await
        };
        match tokio::time::timeout(remaining(name, deadline)?, work).await {
            Ok(result) => result,
            Err(_) => {
                // The session may still be busy with the statement: keep it
                // out of the pool.
                let _ = deadpool_postgres::Object::take(client);
                Err(timed_out(name, "the statement"))
            }
        }
    }

    async fn ping(&self, name: &str, deadline: Instant) -> Result<Duration, Error> {
        let started = Instant::now();
        let work = async {
            let (client, connection) = self
                .config
                .connect(NoTls)
                .await
                .map_err(|e| errors::connect_error(name, &e))?;
            let connection = tokio::spawn(connection);
            client
                .simple_query("")
                .await
                .map_err(|e| errors::query_error(name, &e))?;
            let took = started.elapsed();
            drop(client);
            let _ = connection.await;
            Ok(took)
        };
        tokio::time::timeout(remaining(name, deadline)?, work)
            .await
            .map_err(|_| timed_out(name, "connecting"))?
    }
}

async fn collect(
    name: &str,
    columns: Vec<String>,
    stream: tokio_postgres::RowStream,
) -> Result<Rows, Error> {
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    pin_mut!(stream);
    while let Some(row) = stream.next().await {
        let row = row.map_err(|e| errors::query_error(name, &e))?;
        if rows.len() == MAX_ROWS || bytes > MAX_RESULT_BYTES {
            return Err(too_large(rows.len(), bytes));
        }
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let Cell(value) = row.try_get::<_, Cell>(i).map_err(|e| {
                Error::Query(QueryError {
                    code: errors::DATA_EXCEPTION.to_string(),
                    message: format!(
                        "column `{}`: {}",
                        row.columns()[i].name(),
                        source_message(&e)
                    ),
                })
            })?;
            bytes += value_size(&value);
            values.push(value);
        }
        rows.push(values);
    }
    let affected = stream.rows_affected().unwrap_or(0);
    Ok(Rows {
        columns,
        rows,
        affected,
    })
}

fn source_message(error: &tokio_postgres::Error) -> String {
    std::error::Error::source(error)
        .map(|s| s.to_string())
        .unwrap_or_else(|| error.to_string())
}

fn too_large(rows: usize, bytes: usize) -> Error {
    Error::Query(QueryError {
        code: errors::PROGRAM_LIMIT_EXCEEDED.to_string(),
        message: format!(
            "the result is too large for a probe (over {rows} rows or {bytes} bytes; the limits \
             are {MAX_ROWS} rows and {MAX_RESULT_BYTES} bytes): add a LIMIT or aggregate in SQL"
        ),
    })
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::Text(s) => s.len(),
        Value::Bytes(b) => b.len(),
        _ => 8,
    }
}
