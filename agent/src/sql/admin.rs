//! Sessions for the agent's own actions, never handed to a probe: a
//! failover promotes a standby and checks that it takes writes, so it needs
//! a fresh read-write session; fencing writes the new primary's address
//! into the old primary's `primary_conninfo`.

use super::SqlTargets;
use super::errors;
use super::types::Error;
use std::time::Duration;

impl SqlTargets {
    /// A new read-write session to `target`, connected within `within`.
    /// The connection task ends with the client.
    pub async fn admin_session(
        &self,
        target: &str,
        within: Duration,
    ) -> Result<tokio_postgres::Client, Error> {
        let found = self.get(target)?;
        let (client, _connection) =
            tokio::time::timeout(within, found.admin_connector.connect(&found.admin))
                .await
                .map_err(|_| {
                    Error::Timeout(format!(
                        "target `{target}`: connecting took longer than {within:?}"
                    ))
                })?
                .map_err(|e| errors::admin_connect_error(target, &e))?;
        Ok(client)
    }

    /// How a standby logs in to stream from `target`: libpq keyword/value
    /// connection info (host, port, user, application name; never the
    /// password, which the caller puts in a passfile or the environment),
    /// the user, and the password, of `target`'s `replication_dsn` (else
    /// of its admin login: `admin_dsn`, else `dsn`).
    pub fn replication_login(
        &self,
        target: &str,
        application_name: &str,
    ) -> Result<ReplicationLogin, Error> {
        let config = &self.get(target)?.replication;
        let mut parts = Vec::new();
        match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => {
                parts.push(format!("host={}", quote(host)))
            }
            Some(tokio_postgres::config::Host::Unix(path)) => {
                parts.push(format!("host={}", quote(&path.display().to_string())))
            }
            None => {}
        }
        if let Some(port) = config.get_ports().first() {
            parts.push(format!("port={port}"));
        }
        let user = config.get_user().unwrap_or_default().to_string();
        if !user.is_empty() {
            parts.push(format!("user={}", quote(&user)));
        }
        parts.push(format!("application_name={}", quote(application_name)));
        Ok(ReplicationLogin {
            conninfo: parts.join(" "),
            user,
            password: config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        })
    }
}

/// See [`SqlTargets::replication_login`].
#[derive(Clone)]
pub struct ReplicationLogin {
    /// `host=... port=... user=... application_name=...`, no password.
    pub conninfo: String,
    pub user: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for ReplicationLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationLogin")
            .field("conninfo", &self.conninfo)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A libpq keyword/value string value, quoted.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::TargetSpec;
    use std::collections::BTreeMap;

    #[test]
    fn conninfo_keeps_the_address_and_credentials() {
        let specs = BTreeMap::from([(
            "standby".to_string(),
            TargetSpec::new("host=127.0.0.1 port=5433 user=rep password=it's dbname=app"),
        )]);
        let targets = SqlTargets::new(&specs).unwrap();
        let login = targets.replication_login("standby", "db-1").unwrap();
        assert_eq!(
            login.conninfo,
            r"host='127.0.0.1' port=5433 user='rep' application_name='db-1'"
        );
        assert_eq!(login.password.as_deref(), Some("it's"));
        assert!(!format!("{login:?}").contains("it's"));
    }

    #[test]
    fn the_replication_dsn_is_preferred_to_the_admin_login() {
        let spec = TargetSpec {
            admin_dsn: Some("host=127.0.0.1 port=5433 user=failover password=admin".into()),
            replication_dsn: Some("host=127.0.0.1 port=5433 user=streamer".into()),
            replication_password: Some("rep".into()),
            ..TargetSpec::new("host=127.0.0.1 port=5433 user=monitor")
        };
        let targets = SqlTargets::new(&BTreeMap::from([("standby".to_string(), spec)])).unwrap();
        let login = targets.replication_login("standby", "db-1").unwrap();
        assert_eq!(login.user, "streamer");
        assert_eq!(login.password.as_deref(), Some("rep"));
        // Without it, the admin login (as before).
        let spec = TargetSpec {
            admin_dsn: Some("host=127.0.0.1 port=5433 user=failover password=admin".into()),
            ..TargetSpec::new("host=127.0.0.1 port=5433 user=monitor")
        };
        let targets = SqlTargets::new(&BTreeMap::from([("standby".to_string(), spec)])).unwrap();
        let login = targets.replication_login("standby", "db-1").unwrap();
        assert_eq!(login.user, "failover");
    }
}
