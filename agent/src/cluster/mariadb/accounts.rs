//! The accounts that write through `read_only`: on MariaDB 10.11 those
//! holding `READ_ONLY ADMIN` (`ALL PRIVILEGES` includes it); before 10.11,
//! and on MySQL, `SUPER` as well. A member whose server has such an
//! account (besides the agent's own admin account and the two that
//! `mariadb-install-db` makes, `root@localhost` and `mysql@localhost`,
//! which log in by the local socket as the OS users `root` and `mysql`:
//! both can write the data files anyway, so `read_only` never fenced them)
//! is not fenced by `read_only` alone: an application connected with it
//! keeps writing on a demoted server until its session is killed (the
//! fence kills every client session, these included). The cluster mode
//! warns of them, and never refuses to promote for them (a DBA account
//! with every privilege is common; the fence kills its sessions).
//!
//! Read from `mysql.global_priv` (each account's privilege bits), which
//! the admin account may read with `GRANT SELECT ON mysql.global_priv`.

use crate::remediate::mysql_failover::server::Server as Session;

/// `READ_ONLY ADMIN`'s bit in `mysql.global_priv`'s `access`.
pub const READ_ONLY_ADMIN_BIT: u64 = 1 << 33;
/// `SUPER`'s bit.
pub const SUPER_BIT: u64 = 1 << 15;

/// The privileges that write through `read_only` on a server of
/// `version` (`@@version`): their bits and names.
pub fn bypassing(version: &str) -> Vec<(u64, &'static str)> {
    let mut bits = vec![(READ_ONLY_ADMIN_BIT, "READ_ONLY ADMIN")];
    if !mariadb_at_least(version, (10, 11)) {
        bits.push((SUPER_BIT, "SUPER"));
    }
    bits
}

/// Whether `version` is MariaDB's, at least `at`.
fn mariadb_at_least(version: &str, at: (u32, u32)) -> bool {
    if !version.to_ascii_lowercase().contains("mariadb") {
        return false;
    }
    let mut parts = version.split(['.', '-']);
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    matches!((major, minor), (Some(a), Some(b)) if (a, b) >= at)
}

/// The accounts (`'user'@'host'`, and the privilege) among `accounts`
/// (user, host, access bits) that write through `read_only`, but for
/// `me` (the agent's admin account, `user@host` as `CURRENT_USER()` says
/// it) and the install's own `root@localhost` and `mysql@localhost`
/// (every Debian install has both, with every privilege).
pub fn writers(accounts: &[(String, String, u64)], me: &str, version: &str) -> Vec<String> {
    let bits = bypassing(version);
    accounts
        .iter()
        .filter(|(user, host, _)| {
            format!("{user}@{host}") != me
                && !(host == "localhost" && (user == "root" || user == "mysql"))
        })
        .filter_map(|(user, host, access)| {
            let held: Vec<&str> = bits
                .iter()
                .filter(|(bit, _)| access & bit != 0)
                .map(|(_, name)| *name)
                .collect();
            (!held.is_empty()).then(|| format!("'{user}'@'{host}' ({})", held.join(", ")))
        })
        .collect()
}

/// The accounts of the server that write through `read_only`
/// ([`writers`]); an error names the grant the check needs.
pub async fn read(session: &mut Session) -> Result<Vec<String>, String> {
    let version = session
        .value("SELECT @@version")
        .await
        .map_err(|e| format!("{e:?}"))?;
    let me = session
        .value("SELECT CURRENT_USER()")
        .await
        .map_err(|e| format!("{e:?}"))?;
    use mysql_async::prelude::Queryable;
    let rows: Result<Vec<(String, String, Option<String>)>, _> = session
        .session
        .conn
        .query(
            "SELECT CAST(user AS CHAR), CAST(host AS CHAR), \
             CAST(JSON_VALUE(priv, '$.access') AS CHAR) FROM mysql.global_priv",
        )
        .await;
    let rows = rows.map_err(|e| {
        format!(
            "cannot read mysql.global_priv ({e}); grant it to the admin account: GRANT SELECT ON mysql.global_priv TO {me}"
        )
    })?;
    let accounts: Vec<(String, String, u64)> = rows
        .into_iter()
        .map(|(user, host, access)| {
            let access = access.and_then(|a| a.trim().parse().ok()).unwrap_or(0);
            (user, host, access)
        })
        .collect();
    Ok(writers(&accounts, &me, &version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_that_write_through_read_only_are_named() {
        let accounts = [
            ("root".to_string(), "localhost".to_string(), u64::MAX),
            // What every Debian install has beside root: socket login as
            // the OS user mysql, who owns the data files anyway.
            ("mysql".into(), "localhost".into(), u64::MAX),
            ("mysql".into(), "%".into(), READ_ONLY_ADMIN_BIT),
            (
                "watchpost_admin".into(),
                "127.0.0.1".into(),
                READ_ONLY_ADMIN_BIT | 1,
            ),
            ("app".into(), "%".into(), 0),
            ("dba".into(), "%".into(), READ_ONLY_ADMIN_BIT),
            ("old_super".into(), "%".into(), SUPER_BIT),
            ("root".into(), "127.0.0.1".into(), u64::MAX),
        ];
        let me = "watchpost_admin@127.0.0.1";
        // MariaDB 10.11: SUPER no longer writes through read_only.
        assert_eq!(
            writers(&accounts, me, "10.11.6-MariaDB-0+deb12u1-log"),
            [
                "'mysql'@'%' (READ_ONLY ADMIN)",
                "'dba'@'%' (READ_ONLY ADMIN)",
                "'root'@'127.0.0.1' (READ_ONLY ADMIN)"
            ]
        );
        // Before 10.11, and on MySQL, SUPER does.
        for version in ["10.6.16-MariaDB", "8.0.36"] {
            assert_eq!(
                writers(&accounts, me, version),
                [
                    "'mysql'@'%' (READ_ONLY ADMIN)",
                    "'dba'@'%' (READ_ONLY ADMIN)",
                    "'old_super'@'%' (SUPER)",
                    "'root'@'127.0.0.1' (READ_ONLY ADMIN, SUPER)"
                ],
                "{version}"
            );
        }
        assert!(mariadb_at_least("11.4.2-MariaDB", (10, 11)));
        assert!(!mariadb_at_least("10.5.2-MariaDB", (10, 11)));
    }
}
