//! Least privilege in cluster mode, as `validate` warnings: the local
//! server's target is promoted, reconfigured (`ALTER SYSTEM`) and rewound
//! by the agent, so the role that may do that must not be the probes'
//! role; and the streaming and `pg_rewind` connections carry the
//! replication role's password to whatever answers at the leader's
//! address, so they should check the leader's certificate. Both are
//! PostgreSQL's (`ALTER SYSTEM`, libpq's `sslmode`); a MariaDB or Redis
//! member's admin login and replication TLS are checked by its engine's
//! own start checks.

use crate::config::{Config, TargetKind};

/// The warnings for `config`'s `[cluster]` (none without one).
pub fn warnings(config: &Config) -> Vec<String> {
    let Some(cluster) = &config.cluster else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    let name = &cluster.target;
    let target = config.targets.get(name);
    if target.is_some_and(|t| t.kind != TargetKind::Postgres) {
        return warnings;
    }
    if let Some(target) = target {
        if target.admin_dsn.is_none() {
            warnings.push(format!(
                "[targets.{name}] has no `admin_dsn`: cluster mode promotes, reconfigures (ALTER SYSTEM) and rewinds this server through it, so the agent uses the probes' `dsn` role for that, and with `strict_privileges` (on for [cluster]'s target) probes on it are refused; add an `admin_dsn` with the agent's role and give the `dsn` a role with pg_monitor only"
            ));
        }
        if !target.strict_privileges {
            warnings.push(format!(
                "[targets.{name}] sets `strict_privileges = false`: probes on [cluster]'s target may run with a role that can promote the server or change its settings (a split brain from a probe); remove the line to refuse such a role"
            ));
        }
    }
    let mode = cluster.sslmode();
    if matches!(mode, "disable" | "allow" | "prefer") && !is_loopback(&cluster.host) {
        warnings.push(format!(
            "[cluster]: the streaming and pg_rewind connections to other members ({} is this one) use sslmode={mode}: the replication role's password and every row go to whatever answers there, in plain text or to any certificate; set `replication_sslrootcert` to the CA of the servers' certificates (sslmode then defaults to verify-full)",
            cluster.host
        ));
    }
    warnings
}

/// Whether `host` (a name or an address) is this machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_matches(['[', ']']);
    host == "localhost"
        || host.starts_with('/')
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(target: &str, cluster: &str) -> Config {
        let text = format!(
            "[targets.local]\ndsn = \"host=127.0.0.1 user=watchpost\"\ndata_dir = \"/d\"\n{target}\n\n[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\n{cluster}\n"
        );
        crate::config::parse_str("w.toml", &text, std::path::Path::new("/")).unwrap()
    }

    fn found(target: &str, cluster: &str) -> Vec<String> {
        warnings(&config(target, cluster))
    }

    #[test]
    fn strict_privileges_is_on_for_the_cluster_target_and_turning_it_off_is_a_warning() {
        let quiet = config(
            "admin_dsn = \"host=127.0.0.1 user=postgres\"",
            "connect = \"127.0.0.1:5432\"",
        );
        assert!(quiet.targets["local"].strict_privileges);
        assert_eq!(warnings(&quiet), Vec::<String>::new());
        let off = found(
            "admin_dsn = \"host=127.0.0.1 user=postgres\"\nstrict_privileges = false",
            "connect = \"127.0.0.1:5432\"",
        );
        assert_eq!(off.len(), 1, "{off:?}");
        assert!(off[0].contains("strict_privileges = false"), "{off:?}");
        // Written true stays true; without [cluster] the default is off.
        let on = config("strict_privileges = true", "connect = \"127.0.0.1:5432\"");
        assert!(on.targets["local"].strict_privileges);
        let plain = crate::config::parse_str(
            "w.toml",
            "[targets.local]\ndsn = \"host=127.0.0.1 user=w\"\n",
            std::path::Path::new("/"),
        )
        .unwrap();
        assert!(!plain.targets["local"].strict_privileges);
    }

    #[test]
    fn no_admin_dsn_is_a_warning_naming_the_fix() {
        let w = found("", "connect = \"127.0.0.1:5432\"");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("[targets.local]") && w[0].contains("add an `admin_dsn`"),
            "{w:?}"
        );
    }

    #[test]
    fn weak_sslmode_to_a_remote_member_is_a_warning_and_a_ca_defaults_to_verify_full() {
        let admin = "admin_dsn = \"host=127.0.0.1 user=postgres\"";
        for mode in [
            "",
            "replication_sslmode = \"prefer\"",
            "replication_sslmode = \"disable\"",
        ] {
            let w = found(admin, &format!("connect = \"10.0.0.1:5432\"\n{mode}"));
            assert_eq!(w.len(), 1, "{mode}: {w:?}");
            assert!(w[0].contains("replication_sslrootcert"), "{w:?}");
        }
        // Loopback: nothing to intercept.
        assert!(found(admin, "connect = \"127.0.0.1:5432\"").is_empty());
        // A CA: verify-full by default, and no warning.
        let with_ca = config(
            admin,
            "connect = \"10.0.0.1:5432\"\nreplication_sslrootcert = \"/etc/pg/ca.pem\"",
        );
        let spec = with_ca.cluster.as_ref().unwrap();
        assert_eq!(spec.sslmode(), "verify-full");
        assert!(warnings(&with_ca).is_empty());
        // `require` is the operator's choice: no warning.
        assert!(
            found(
                admin,
                "connect = \"10.0.0.1:5432\"\nreplication_sslmode = \"require\""
            )
            .is_empty()
        );
    }

    /// A new user's finding: a Redis member at a remote address was
    /// warned about libpq's `sslmode` and `pg_rewind`, which it never uses.
    #[test]
    fn a_redis_member_gets_no_postgresql_warnings() {
        let text = format!(
            "[targets.local]\nkind = \"redis\"\ndsn = \"redis://127.0.0.1:6379/0\"\ndata_dir = \"{}\"\n\n[cluster]\nscope = \"cache\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.0.0.1:6379\"\n",
            std::env::temp_dir().display()
        );
        let config = crate::config::parse_str("w.toml", &text, std::path::Path::new("/")).unwrap();
        assert_eq!(warnings(&config), Vec::<String>::new());
    }

    #[test]
    fn an_unknown_sslmode_is_refused_naming_the_values() {
        let text = "[targets.local]\ndsn = \"host=127.0.0.1 user=w\"\ndata_dir = \"/d\"\n\n[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.0.0.1:5432\"\nreplication_sslmode = \"verify_full\"\n";
        let err = crate::config::parse_str("w.toml", text, std::path::Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("w.toml:10:") && err.contains("verify-full") && err.contains("sslmode"),
            "{err}"
        );
    }
}
