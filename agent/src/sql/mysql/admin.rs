//! Sessions for the agent's own actions on MariaDB/MySQL targets, never
//! handed to a probe: a failover stops replication, promotes a replica
//! and checks that it takes writes, so it needs a fresh read-write
//! session with the target's `admin_dsn` (else its `dsn`); repointing a
//! replica needs the login it replicates with ([`ReplicaLogin`]: the
//! target's `replication_dsn`, else the admin login).

use super::super::SqlTargets;
use super::super::types::Error;
use super::{Engine, dsn, errors};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// An open admin session and the engine it talks to.
pub struct AdminSession {
    pub conn: Conn,
    pub engine: Engine,
}

/// How a replica logs in to replicate from a target: host, TCP port,
/// user and password (printed redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicaLogin {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for ReplicaLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaLogin")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SqlTargets {
    /// Whether `target` is a MariaDB/MySQL target.
    pub fn is_mysql(&self, target: &str) -> bool {
        self.get_mysql(target).is_some()
    }

    /// Whether the MariaDB/MySQL `target` sets `strict_privileges`.
    pub fn mysql_strict_privileges(&self, target: &str) -> bool {
        self.get_mysql(target)
            .is_some_and(|t| t.spec.strict_privileges)
    }

    /// A new read-write session to the MariaDB/MySQL `target` with its
    /// admin login, connected within `within`. Errors: `NotGranted` (no
    /// such MySQL target), `Unreachable` (no answer), `Refused` (the server
    /// answered and refused: full, bad login, shutting down), `Timeout`,
    /// `Agent` (the agent's own resources).
    pub async fn mysql_admin_session(
        &self,
        target: &str,
        within: Duration,
    ) -> Result<AdminSession, Error> {
        let found = self.get_mysql(target).ok_or_else(|| {
            Error::NotGranted(format!(
                "no MariaDB/MySQL target named `{target}` is configured"
            ))
        })?;
        let spec = &found.spec;
        let parsed = match &spec.admin_dsn {
            Some(admin) => dsn::parse(admin, spec.admin_password.as_deref()),
            None => dsn::parse(&spec.dsn, spec.password.as_deref()),
        }
        .map_err(|e| Error::NotGranted(format!("target `{target}`: invalid admin dsn: {e}")))?;
        let connect = async {
            let mut conn = Conn::new(parsed.opts.clone()).await.map_err(|e| match e {
                mysql_async::Error::Server(_) => errors::admin_session_error(target, &e),
                _ => errors::session_error(target, &e, &parsed.opts),
            })?;
            let version: Option<String> = conn
                .query_first("SELECT @@version")
                .await
                .map_err(|e| errors::admin_session_error(target, &e))?;
            Ok::<_, Error>(AdminSession {
                engine: Engine::of_version(&version.unwrap_or_default()),
                conn,
            })
        };
        tokio::time::timeout(within, connect).await.map_err(|_| {
            Error::Timeout(format!(
                "target `{target}`: connecting took longer than {within:?}"
            ))
        })?
    }

    /// How another server replicates from the MariaDB/MySQL `target`: the
    /// login of its `replication_dsn`, else of its admin login (`admin_dsn`,
    /// else `dsn`).
    pub fn mysql_replica_login(&self, target: &str) -> Result<ReplicaLogin, Error> {
        let found = self.get_mysql(target).ok_or_else(|| {
            Error::NotGranted(format!(
                "no MariaDB/MySQL target named `{target}` is configured"
            ))
        })?;
        let spec = &found.spec;
        let parsed = if let Some(replication) = &spec.replication_dsn {
            dsn::parse(replication, spec.replication_password.as_deref())
        } else if let Some(admin) = &spec.admin_dsn {
            dsn::parse(admin, spec.admin_password.as_deref())
        } else {
            dsn::parse(&spec.dsn, spec.password.as_deref())
        }
        .map_err(|e| Error::NotGranted(format!("target `{target}`: invalid dsn: {e}")))?;
        let opts = parsed.opts;
        Ok(ReplicaLogin {
            host: opts.ip_or_hostname().to_string(),
            port: opts.tcp_port(),
            user: opts.user().unwrap_or_default().to_string(),
            password: opts.pass().map(str::to_string),
        })
    }
}

/// An admin statement's error, sorted like a probe's (the server's
/// number kept).
pub fn statement_error(target: &str, error: &mysql_async::Error) -> Error {
    errors::query_error(target, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::TargetSpec;
    use std::collections::BTreeMap;

    #[test]
    fn the_replication_login_comes_from_the_replication_dsn_then_the_admin_one() {
        let spec = TargetSpec {
            admin_dsn: Some("mysql://failover:adm@10.0.0.2:3307/".into()),
            replication_dsn: Some("mysql://repl@10.0.0.2:3307/".into()),
            replication_password: Some("r3pl".into()),
            ..TargetSpec::new("mysql://watchpost@10.0.0.2:3307/")
        };
        let targets = SqlTargets::new(&BTreeMap::from([("db".to_string(), spec)])).unwrap();
        assert!(targets.is_mysql("db"));
        let login = targets.mysql_replica_login("db").unwrap();
        assert_eq!(
            (login.host.as_str(), login.port, login.user.as_str()),
            ("10.0.0.2", 3307, "repl")
        );
        assert_eq!(login.password.as_deref(), Some("r3pl"));
        assert!(!format!("{login:?}").contains("r3pl"));
        let spec = TargetSpec {
            admin_dsn: Some("mysql://failover:adm@10.0.0.2:3307/".into()),
            ..TargetSpec::new("mysql://watchpost@10.0.0.2:3307/")
        };
        let targets = SqlTargets::new(&BTreeMap::from([("db".to_string(), spec)])).unwrap();
        let login = targets.mysql_replica_login("db").unwrap();
        assert_eq!(login.user, "failover");
        assert_eq!(login.password.as_deref(), Some("adm"));
        assert!(matches!(
            targets.mysql_replica_login("nope"),
            Err(Error::NotGranted(_))
        ));
    }
}
