//! Database targets: the service behind the `sql` capability.
//!
//! A target is a named database server from the config: PostgreSQL (the
//! default kind) or MariaDB/MySQL (`kind = "mysql"`, [`mysql`]). Probes name
//! targets; the DSN (and any password in it) never leaves this module.
//! Each target has a small connection pool reused across runs; every probe
//! statement runs in a transaction of its own (read-only unless the target
//! says otherwise) under a `statement_timeout` no longer than what is left
//! of the run, and its result is bounded by the probe's memory cap
//! ([`guard`] bounds each message on the wire). The agent's own actions
//! connect with the target's separate admin DSN ([`admin`]); the role
//! probes use is checked for privileges beyond monitoring ([`privileges`]).
//!
//! Files: [`target`] opens sessions and runs statements on one target,
//! [`admin`] opens read-write sessions for the agent's own actions,
//! `rows` turns a result stream into [`Rows`] within size limits,
//! `values` converts values, `errors` sorts failures into the kinds of
//! [`Error`], and `types` defines those (the runtime converts them to and
//! from the probe world's WIT types). [`conninfo`] reads a DSN as libpq
//! does, [`tls`] connects with its `sslmode` ([`tls_alert`] reads a TLS
//! failure for every engine's client), [`passfile`] finds a
//! password in a libpq password file, and [`secrets`] reads secret files
//! that only the agent may read (the config reads its secrets with it too).

mod admin;
pub use admin::ReplicationLogin;
pub mod conninfo;
mod errors;
mod guard;
pub mod mysql;
pub mod passfile;
pub mod privileges;
mod reach;
pub use reach::Accept;
mod rows;
pub mod secrets;
mod target;
pub mod tls;
pub mod tls_alert;
mod types;
mod values;

use mysql::MysqlTarget;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use target::Target;

pub use types::{Error, Kind, MAX_RESULT_BYTES, MAX_ROWS, QueryError, Rows, Value};

/// How a target is configured.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Which driver opens its sessions.
    pub kind: Kind,
    /// A libpq-style connection string (`host=... port=... user=...`) or URL.
    pub dsn: String,
    /// Sessions start with `default_transaction_read_only = on`.
    pub read_only: bool,
    /// The password when the DSN has none (from the config's
    /// `password_file` or `password_env`); else the passfile's.
    pub password: Option<String>,
    /// The connection string of the agent's own actions (failover, fence,
    /// terminate, ...), never given to probes; None: they use `dsn`.
    pub admin_dsn: Option<String>,
    /// The password of `admin_dsn` when it has none.
    pub admin_password: Option<String>,
    /// Refuse probe sessions whose role may do more than monitor (see
    /// [`privileges`]); false: log it once.
    pub strict_privileges: bool,
    /// The login another server streams from this one with (see
    /// [`SqlTargets::replication_login`]); None: the admin DSN's.
    pub replication_dsn: Option<String>,
    /// The password of `replication_dsn` when it has none.
    pub replication_password: Option<String>,
}

impl TargetSpec {
    /// A read-only target at `dsn` with nothing else set: no secrets, no
    /// admin or replication DSN, privileges only warned about; a MySQL
    /// target for a `mysql://` or `mariadb://` URL ([`Kind::of_dsn`]),
    /// else PostgreSQL.
    pub fn new(dsn: impl Into<String>) -> Self {
        let dsn = dsn.into();
        TargetSpec {
            kind: Kind::of_dsn(&dsn),
            dsn,
            read_only: true,
            password: None,
            admin_dsn: None,
            admin_password: None,
            strict_privileges: false,
            replication_dsn: None,
            replication_password: None,
        }
    }
}

/// The password is never printed.
impl std::fmt::Debug for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetSpec")
            .field("kind", &self.kind)
            .field("dsn", &"<redacted>")
            .field("read_only", &self.read_only)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("admin_dsn", &self.admin_dsn.as_ref().map(|_| "<redacted>"))
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .field("strict_privileges", &self.strict_privileges)
            .field(
                "replication_dsn",
                &self.replication_dsn.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "replication_password",
                &self.replication_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// All configured targets, by name. Cheap to clone; immutable (a config
/// reload builds a new set with [`SqlTargets::rebuild`]).
#[derive(Clone, Default)]
pub struct SqlTargets {
    /// PostgreSQL targets.
    targets: Arc<BTreeMap<String, Arc<Target>>>,
    /// MariaDB and MySQL targets ([`mysql`]).
    mysql: Arc<BTreeMap<String, Arc<MysqlTarget>>>,
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
        let mut mysql = BTreeMap::new();
        for (name, spec) in specs {
            match spec.kind {
                Kind::Postgres => {
                    let target = match self.targets.get(name) {
                        Some(existing) if existing.spec == *spec => existing.clone(),
                        _ => Arc::new(Target::new(name, spec)?),
                    };
                    targets.insert(name.clone(), target);
                }
                Kind::Mysql => {
                    let target = match self.mysql.get(name) {
                        Some(existing) if existing.spec == *spec => existing.clone(),
                        _ => Arc::new(MysqlTarget::new(name, spec)?),
                    };
                    mysql.insert(name.clone(), target);
                }
            }
        }
        Ok(SqlTargets {
            targets: Arc::new(targets),
            mysql: Arc::new(mysql),
        })
    }

    /// Every target's name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self
            .targets
            .keys()
            .chain(self.mysql.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.into_iter()
    }

    /// The PostgreSQL target `name` (the agent's own actions are written
    /// for PostgreSQL only so far).
    fn get(&self, name: &str) -> Result<&Arc<Target>, Error> {
        if self.mysql.contains_key(name) {
            return Err(Error::NotGranted(format!(
                "target `{name}` is a MariaDB/MySQL target (kind = \"mysql\"); this action \
                 needs a PostgreSQL one"
            )));
        }
        self.targets
            .get(name)
            .ok_or_else(|| Error::NotGranted(format!("no target named `{name}` is configured")))
    }

    fn get_mysql(&self, name: &str) -> Option<&Arc<MysqlTarget>> {
        self.mysql.get(name)
    }

    /// The engine behind `target`: `postgresql`, `mariadb` or `mysql`
    /// (MariaDB and MySQL are told apart by the server's version, which
    /// opens a session when none was yet).
    pub async fn engine(&self, target: &str, deadline: Instant) -> Result<&'static str, Error> {
        if let Some(mysql) = self.get_mysql(target) {
            return Ok(mysql.engine(deadline).await?.name());
        }
        self.get(target)?;
        Ok("postgresql")
    }

    /// Run one statement on a pooled session of `target` before `deadline`,
    /// in a transaction of its own, holding at most `budget` bytes of
    /// result (see [`rows`]; [`Error::TooLarge`] past it).
    pub async fn query(
        &self,
        target: &str,
        statement: &str,
        params: &[Value],
        deadline: Instant,
        budget: usize,
    ) -> Result<Rows, Error> {
        if let Some(mysql) = self.get_mysql(target) {
            return mysql.query(statement, params, deadline, budget).await;
        }
        self.get(target)?
            .query(statement, params, deadline, budget)
            .await
    }

    /// Open, test and close a new session to `target`; the time it took.
    pub async fn ping(&self, target: &str, deadline: Instant) -> Result<Duration, Error> {
        if let Some(mysql) = self.get_mysql(target) {
            return mysql.ping(deadline).await;
        }
        self.get(target)?.ping(deadline).await
    }
}
