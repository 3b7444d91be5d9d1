//! What the MariaDB/MySQL account that probes use may do beyond
//! monitoring, read from `SHOW GRANTS`: the same check as PostgreSQL's
//! ([`crate::sql::privileges`]), logged once per target or refused with
//! `strict_privileges`. A read-only transaction stops a probe's writes,
//! but not `SHUTDOWN`, `KILL` of other sessions through `SUPER`, or a
//! write in a second transaction that a compound statement opens after a
//! `COMMIT`; only the account's grants stop those.
//!
//! Monitoring needs `SELECT`, `PROCESS`, `REPLICATION CLIENT` (MariaDB:
//! `SLAVE MONITOR`, `BINLOG MONITOR`), `SHOW VIEW`, `SHOW DATABASES`,
//! `USAGE`; every other privilege is named. Roles granted to the account
//! are named too (their grants are not expanded).

/// Privileges a probes' account may hold.
const MONITORING: &[&str] = &[
    "USAGE",
    "SELECT",
    "PROCESS",
    "REPLICATION CLIENT",
    "SLAVE MONITOR",
    "REPLICA MONITOR",
    "BINLOG MONITOR",
    "SHOW VIEW",
    "SHOW DATABASES",
    "REPLICATION_SLAVE_ADMIN_READ",
];

/// What one `SHOW GRANTS` line allows beyond [`MONITORING`]: each
/// privilege named with where it applies (`INSERT on app.*`); a granted
/// role as `role NAME`.
fn line_dangers(line: &str) -> Vec<String> {
    let Some(rest) = strip_prefix_ignore_case(line.trim(), "GRANT ") else {
        return Vec::new();
    };
    let upper = rest.to_ascii_uppercase();
    let Some(on) = upper.find(" ON ") else {
        // `GRANT role TO user`: the account may SET ROLE to it.
        let role = rest.split(" TO ").next().unwrap_or(rest).trim();
        return vec![format!(
            "may SET ROLE to {role} (its grants were not checked)"
        )];
    };
    if upper.starts_with("PROXY ON ") {
        return vec!["has PROXY".to_string()];
    }
    let target = rest[on + 4..]
        .split(" TO ")
        .next()
        .unwrap_or_default()
        .trim()
        .replace('`', "");
    // Column lists (`SELECT (a, b)`) hold commas of their own.
    let mut privileges = String::new();
    let mut depth = 0;
    for c in upper[..on].chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => privileges.push(c),
            _ => {}
        }
    }
    let mut found: Vec<String> = privileges
        .split(',')
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty() && !MONITORING.contains(&p.as_str()))
        .map(|p| format!("has {p} on {target}"))
        .collect();
    if upper.contains(" WITH GRANT OPTION") {
        found.push(format!("has GRANT OPTION on {target}"));
    }
    found
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    (text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &text[prefix.len()..])
}

/// What the account whose `SHOW GRANTS` lines are `grants` may do beyond
/// monitoring (empty: nothing).
pub fn dangers(grants: &[String]) -> Vec<String> {
    grants.iter().flat_map(|l| line_dangers(l)).collect()
}

/// The sentence for an account with `dangers`.
pub fn describe(target: &str, user: &str, dangers: &[String], strict: bool) -> String {
    let consequence = crate::sql::privileges::consequence(strict);
    format!(
        "target `{target}`: the account `{user}` that probes use {}: {consequence}. Give probes \
         an account with monitoring grants only (SELECT, PROCESS, REPLICATION CLIENT or \
         MariaDB's SLAVE MONITOR and BINLOG MONITOR)",
        dangers.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(lines: &[&str]) -> Vec<String> {
        dangers(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn monitoring_grants_are_fine() {
        assert!(
            of(&[
                "GRANT PROCESS, SLAVE MONITOR, BINLOG MONITOR, SELECT ON *.* TO `watchpost`@`%`",
                "GRANT SELECT (id, name) ON `app`.`t` TO `watchpost`@`%`",
                "GRANT USAGE ON *.* TO `w`@`%` IDENTIFIED BY PASSWORD '*ABC'",
            ])
            .is_empty()
        );
    }

    #[test]
    fn all_super_shutdown_writes_and_roles_are_named() {
        assert_eq!(
            of(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]),
            ["has ALL PRIVILEGES on *.*", "has GRANT OPTION on *.*"]
        );
        assert_eq!(
            of(&["GRANT SELECT, SUPER, SHUTDOWN ON *.* TO `w`@`%`"]),
            ["has SUPER on *.*", "has SHUTDOWN on *.*"]
        );
        assert_eq!(
            of(&["GRANT INSERT, UPDATE (a) ON `app`.* TO `w`@`%`"]),
            ["has INSERT on app.*", "has UPDATE on app.*"]
        );
        assert_eq!(
            of(&["GRANT `dba` TO `w`@`%`"]),
            ["may SET ROLE to `dba` (its grants were not checked)"]
        );
    }
}
