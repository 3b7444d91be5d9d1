//! `[targets.NAME]` with `kind = "redis"`: a Redis or Valkey server. Its
//! `dsn` is a URL (`redis://[user@]host[:port][/db]`, `rediss://` for
//! TLS, `unix:///path`), read as the agent will use it
//! ([`crate::redis::conn`]), so that `validate` reports a bad URL or an
//! unreadable TLS file at the key. The ACL user's password comes from
//! `password_file` or `password_env`; `heartbeat_key` names the one key
//! probes may write; `strict_privileges` refuses a probe user that may do
//! more than monitor. `admin_dsn` (with `admin_password_file` or
//! `admin_password_env`) is the read-write login of the agent's own
//! actions (the Redis failover, cluster mode): a user of its own, never
//! given to a probe and never passed through the probes' allowlist.
//! `data_dir` is the server's own directory on this node (its `dir`,
//! holding `redis.conf` and `redis.pid`), which cluster mode drives.

use super::super::model::*;
use super::super::reader::Section;
use super::Parser;

impl Parser<'_, '_> {
    /// The rest of a `kind = "redis"` target. `admin_dsn` is the agent's
    /// own actions' login; the replication login and a data directory are
    /// PostgreSQL's only: their keys are refused.
    pub(super) fn redis_target(
        &mut self,
        mut s: Section,
        name: String,
    ) -> Option<(String, Target)> {
        let d = &mut self.d;
        let dsn = s.required_string(d, "dsn", "\"redis://watchpost@127.0.0.1:6379/0\"");
        let strict_privileges = s.bool(d, "strict_privileges").unwrap_or(false);
        let heartbeat_key = s.string(d, "heartbeat_key");
        if let Some(key) = &heartbeat_key
            && (key.value.is_empty() || key.value.len() > 256)
        {
            d.error(
                key.span.clone(),
                format!("{}: `heartbeat_key` must be 1 to 256 bytes", s.path),
            );
        }
        let admin_dsn = s.string(d, "admin_dsn");
        let data_dir = s
            .string(d, "data_dir")
            .map(|p| std::path::PathBuf::from(p.value));
        if let Some(dir) = &data_dir
            && !dir.is_absolute()
        {
            d.error(
                s.span.clone(),
                format!(
                    "{}: `data_dir` = {:?}: write an absolute path (the server's `dir`)",
                    s.path,
                    dir.display()
                ),
            );
        }
        for key in ["replication_dsn", "read_only"] {
            if let Some(value) = s.raw(key) {
                let span = value.span();
                d.error(
                    span,
                    format!(
                        "{}: `{key}` is not supported for kind = \"redis\" (probes are \
                         read-only by the agent's allowlist; `heartbeat_key` allows writes to \
                         one key; the agent's actions log in with `admin_dsn`); remove it",
                        s.path
                    ),
                );
            }
        }
        let tls_ca_file = self.path_key(&mut s, "tls_ca_file");
        let tls_cert_file = self.path_key(&mut s, "tls_cert_file");
        let tls_key_file = self.path_key(&mut s, "tls_key_file");
        let password = self.secret(&mut s, "password_file", "password_env");
        let admin_password = self.secret(&mut s, "admin_password_file", "admin_password_env");
        let d = &mut self.d;
        let path = s.path.clone();
        if let Some(admin) = &admin_dsn {
            match crate::redis::conn::check_url(&admin.value) {
                Err(e) => d.error(
                    admin.span.clone(),
                    format!("{path}: `admin_dsn` is not usable: {e}"),
                ),
                Ok((_, true)) if admin_password.is_some() => d.error(
                    admin.span.clone(),
                    format!(
                        "{path}: the `admin_dsn` already has a password; remove it from the \
                         admin_dsn to keep it out of the config"
                    ),
                ),
                Ok(_) => {}
            }
        } else if let Some(password) = &admin_password {
            d.error(
                password.span.clone(),
                format!(
                    "{path}: an admin password needs `admin_dsn`; add it, or remove the admin \
                     password"
                ),
            );
        }
        s.finish(d);
        let dsn = dsn?;
        let options = RedisOptions {
            tls_ca_file: tls_ca_file.map(|p| p.value),
            tls_cert_file: tls_cert_file.map(|p| p.value),
            tls_key_file: tls_key_file.map(|p| p.value),
            heartbeat_key: heartbeat_key.map(|k| k.value),
        };
        match crate::redis::conn::check_url(&dsn.value) {
            Err(e) => d.error(
                dsn.span.clone(),
                format!("{path}: `dsn` is not usable: {e}"),
            ),
            Ok((_, true)) if password.is_some() => d.error(
                dsn.span.clone(),
                format!(
                    "{path}: the `dsn` already has a password; remove it from the dsn to keep \
                     it out of the config"
                ),
            ),
            Ok(_) => {
                // The TLS files as the agent will read them.
                let mut spec = crate::redis::RedisSpec::new(dsn.value.clone());
                spec.tls_ca_file = options.tls_ca_file.clone();
                spec.tls_cert_file = options.tls_cert_file.clone();
                spec.tls_key_file = options.tls_key_file.clone();
                if let Err(e) =
                    crate::redis::RedisTargets::new(&[(name.clone(), spec)].into_iter().collect())
                {
                    d.error(dsn.span.clone(), format!("{path}: {e}"));
                }
            }
        }
        Some((
            name,
            Target {
                kind: TargetKind::Redis,
                dsn: dsn.value,
                read_only: true,
                password: password.map(|p| p.value),
                data_dir,
                admin_dsn: admin_dsn.map(|a| a.value),
                admin_password: admin_password.map(|p| p.value),
                strict_privileges,
                replication_dsn: None,
                replication_password: None,
                redis: Some(options),
            },
        ))
    }
}
