//! `[cluster]` over a MariaDB target (`kind = "mysql"`): what the MariaDB
//! server backend of the cluster mode needs besides the common keys — the
//! member's own `mariadbd` option file (`defaults_file`), the target's
//! data directory (its `mariadbd.pid`) and admin login — and PostgreSQL's
//! keys refused by name, each error saying what to write instead.

use super::super::diagnostics::Diagnostics;
use super::super::model::Target;
use super::super::reader::At;
use std::ops::Range;

/// `[cluster]` keys that only the PostgreSQL backend reads.
pub(super) const PG_ONLY: [&str; 6] = [
    "replication_user",
    "passfile",
    "replication_sslmode",
    "replication_sslrootcert",
    "synchronous",
    "synchronous_node_count",
];

/// Check `[cluster]` (at `span`) for a MariaDB `target` (its name and
/// spec): `defaults_file` given, PostgreSQL's keys (`given`) absent, and
/// the target's admin login present.
pub(super) fn check(
    d: &mut Diagnostics,
    span: Range<usize>,
    target: Option<(&str, &Target)>,
    defaults_file: Option<&At<String>>,
    given: &[&str],
) {
    if defaults_file.is_none() {
        d.error(
            span.clone(),
            "[cluster]: `defaults_file` is missing: the cluster mode starts mariadbd with this member's own option file, which must set `read_only = ON` (a restart not done by the agent then comes back read-only); add e.g. `defaults_file = \"/etc/mysql/mariadb.conf.d/60-watchpost-node1.cnf\"`",
        );
    }
    for key in given {
        let instead = match *key {
            "replication_user" | "passfile" => {
                "the replication login comes from the target's `replication_dsn` and `replication_password_file`"
            }
            "replication_sslmode" | "replication_sslrootcert" => {
                "TLS of replication between members is not driven by the agent yet: its CHANGE MASTER sets no MASTER_SSL options and a promotion's RESET SLAVE ALL clears any set by hand, so members replicate in plain text (keep replication on a private network)"
            }
            _ => {
                "synchronous mode is PostgreSQL's only (MariaDB's semi-sync is not driven by the cluster mode)"
            }
        };
        d.error(
            span.clone(),
            format!("[cluster]: `{key}` is PostgreSQL's, and the cluster target is MariaDB: {instead}; remove it"),
        );
    }
    if let Some((name, target)) = target
        && target.admin_dsn.is_none()
    {
        d.error(
            span,
            format!(
                "[cluster]: [targets.{name}] has no `admin_dsn`: the cluster mode promotes, fences and repoints the local MariaDB with an account that may STOP SLAVE, CHANGE MASTER, SET GLOBAL read_only and KILL (e.g. `admin_dsn = \"mysql://watchpost_admin@127.0.0.1:3306/\"` with `admin_password_file`)"
            ),
        );
    }
}
