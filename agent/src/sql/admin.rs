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
                .map_err(|e| errors::connect_error(target, &e))?;
        Ok(client)
    }

    /// libpq keyword/value connection info of `target` for a standby's
    /// `primary_conninfo`: host, port, user, password (no database).
    pub fn replication_conninfo(
        &self,
        target: &str,
        application_name: &str,
    ) -> Result<String, Error> {
        let config = &self.get(target)?.admin;
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
            TargetSpec {
                dsn: "host=127.0.0.1 port=5433 user=rep password=it's dbname=app".into(),
                read_only: true,
                password: None,
                admin_dsn: None,
                admin_password: None,
                strict_privileges: false,
            },
        )]);
        let targets = SqlTargets::new(&specs).unwrap();
        let info = targets.replication_conninfo("standby", "db-1").unwrap();
        assert_eq!(
            info,
            r"host='127.0.0.1' port=5433 user='rep' password='it\'s' application_name='db-1'"
        );
    }
}
