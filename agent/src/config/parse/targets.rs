//! `[targets.NAME]`: the database servers probes and actions may use, and
//! the check that a name given elsewhere refers to one of them. A DSN is
//! read as the agent will use it ([`crate::sql::conninfo`]): its TLS
//! files and passfile are opened here, so that `validate` reports an
//! unreadable certificate or an exposed key at the DSN. The password may
//! come from `password_file` or `password_env` instead of the DSN.
//!
//! `dsn` is what probes use; `admin_dsn` (with `admin_password_file` or
//! `admin_password_env`) is what the agent's own actions use, so that the
//! role that may promote or fence never reaches a probe.
//! `strict_privileges` refuses a probe role that may do more than monitor.
//! `replication_dsn` (with `replication_password_file` or
//! `replication_password_env`) is the login a fenced old primary streams
//! with, so that the password the fence leaves in its data directory is a
//! `REPLICATION`-only role's, not the admin role's.

use super::super::model::*;
use super::super::reader::{At, Section, type_name};
use super::{Parser, valid_name};
use crate::sql::conninfo::ConnInfo;
use crate::sql::{passfile, tls};
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::de::DeValue;

use super::super::keys::{Kind, Table, key};

/// `[targets]`: a table of targets by name.
pub(super) static TARGETS: Table = Table {
    heading: "[targets]",
    doc: "The database servers probes and actions may use, each `[targets.NAME]` (NAME: 1 to 64 letters, digits, `-`, `_` or `.`). A probe reaches only the targets its `targets` list grants.",
    keys: &[],
    entries: Some(&TARGET),
};

static TARGET: Table = Table {
    heading: "[targets.NAME]",
    doc: "One database server. `dsn` is what probes use; `admin_dsn` what the agent's own actions use, so that the role that may promote or fence never reaches a probe. Passwords come from a private file or the environment rather than the config.",
    keys: &[
        key(
            "kind",
            Kind::String,
            "\"postgres\"",
            "The engine: \"postgres\" (or \"postgresql\"), \"mysql\" (or \"mariadb\") or \"redis\".",
        ),
        key(
            "dsn",
            Kind::String,
            "required",
            "How probes connect: a libpq conninfo or URL for PostgreSQL, a `mysql://` URL for MariaDB/MySQL; its TLS files and passfile are checked at load.",
        ),
        key(
            "read_only",
            Kind::Bool,
            "true",
            "Refuse statements that write, from probes (the agent checks each statement and opens read-only transactions).",
        ),
        key(
            "strict_privileges",
            Kind::Bool,
            "false (true for `[cluster]`'s target)",
            "Refuse to run probes if the probe role may do more than monitor (superuser, replication, writes).",
        ),
        key(
            "admin_dsn",
            Kind::String,
            "none",
            "How the agent's own actions (promote, fence, checkpoint) connect: a PostgreSQL conninfo, a `mysql://` URL, or for Redis a `redis://` URL of a read-write ACL user of its own (the failover's REPLICAOF, CLIENT PAUSE, FAILOVER, its check write).",
        ),
        key(
            "replication_dsn",
            Kind::String,
            "none",
            "The login a fenced old primary streams with (a REPLICATION-only role); PostgreSQL only.",
        ),
        key(
            "data_dir",
            Kind::String,
            "none",
            "The server's data directory on this host: PostgreSQL's for pg_ctl actions, reinit and cluster mode; MariaDB's for cluster mode only (its `mariadbd.pid`); a Redis server's `dir` for cluster mode.",
        ),
        key(
            "password_file",
            Kind::String,
            "none",
            "A private file (mode 0600, the agent's user) whose first line is the `dsn`'s password.",
        ),
        key(
            "password_env",
            Kind::String,
            "none",
            "An environment variable holding the `dsn`'s password (instead of `password_file`).",
        ),
        key(
            "admin_password_file",
            Kind::String,
            "none",
            "A private file whose first line is the `admin_dsn`'s password.",
        ),
        key(
            "admin_password_env",
            Kind::String,
            "none",
            "An environment variable holding the `admin_dsn`'s password.",
        ),
        key(
            "replication_password_file",
            Kind::String,
            "none",
            "A private file whose first line is the `replication_dsn`'s password.",
        ),
        key(
            "replication_password_env",
            Kind::String,
            "none",
            "An environment variable holding the `replication_dsn`'s password.",
        ),
        key(
            "heartbeat_key",
            Kind::String,
            "none",
            "Redis: the one key probes may write (a heartbeat); every other write is refused.",
        ),
        key(
            "tls_ca_file",
            Kind::String,
            "the system's roots",
            "Redis (rediss://): PEM file of the CA that signs the server's certificate.",
        ),
        key(
            "tls_cert_file",
            Kind::String,
            "none",
            "Redis (rediss://): PEM client certificate (with `tls_key_file`).",
        ),
        key(
            "tls_key_file",
            Kind::String,
            "none",
            "Redis (rediss://): PEM private key of `tls_cert_file` (a private file).",
        ),
    ],
    entries: None,
};

/// Why a DSN is not usable: its syntax, its TLS settings and files (each
/// certificate must parse, a key must be private), its passfile.
pub fn validate_dsn(dsn: &str) -> Result<(), String> {
    let info = ConnInfo::parse(dsn)?;
    tls::check_files(info.ssl_mode, &info.files)?;
    if let Some(file) = &info.passfile {
        passfile::lookup(file, &info.config)?;
    }
    Ok(())
}

impl Parser<'_, '_> {
    pub(super) fn targets(&mut self, top: &mut Section) -> BTreeMap<String, Target> {
        let mut targets = BTreeMap::new();
        let Some(section) = top.table(&mut self.d, "targets") else {
            return targets;
        };
        for (name, value) in section.entries() {
            let name_text = name.get_ref().to_string();
            let DeValue::Table(table) = value.get_ref() else {
                self.d.error(
                    value.span(),
                    format!("[targets]: `{name_text}` is {}, expected a table such as [targets.{name_text}]", type_name(value.get_ref())),
                );
                continue;
            };
            if !valid_name(&name_text) {
                self.d.error(name.span(), format!("[targets]: target name {name_text:?} must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit"));
            }
            let mut s = Section::new(
                section.entry_doc(),
                format!("[targets.{name_text}]"),
                table,
                value.span(),
            );
            let d = &mut self.d;
            let kind = match s.string(d, "kind") {
                None => TargetKind::Postgres,
                Some(k) if k.value == "postgres" || k.value == "postgresql" => TargetKind::Postgres,
                Some(k) if k.value == "mysql" || k.value == "mariadb" => TargetKind::Mysql,
                Some(k) if k.value == "redis" || k.value == "valkey" => TargetKind::Redis,
                Some(k) => {
                    d.error(
                        k.span,
                        format!(
                            "{}: `kind` = {:?} is not supported; write \"postgres\" (or \"postgresql\"), \"mysql\" (or \"mariadb\"), or \"redis\" (or \"valkey\")",
                            s.path, k.value
                        ),
                    );
                    TargetKind::Postgres
                }
            };
            if kind == TargetKind::Redis {
                if let Some(target) = self.redis_target(s, name_text) {
                    targets.insert(target.0, target.1);
                }
                continue;
            }
            if kind == TargetKind::Mysql {
                let mysql = self.mysql_target(s, name_text);
                if let Some(target) = mysql {
                    targets.insert(target.0, target.1);
                }
                continue;
            }
            let d = &mut self.d;
            let dsn = s.required_string(
                d,
                "dsn",
                "\"host=127.0.0.1 port=5432 user=watchpost dbname=postgres\"",
            );
            let dsn_has_password = dsn.as_ref().is_some_and(|dsn| {
                ConnInfo::parse(&dsn.value).is_ok_and(|i| i.config.get_password().is_some())
            });
            if let Some(dsn) = &dsn
                && let Err(e) = validate_dsn(&dsn.value)
            {
                d.error(
                    dsn.span.clone(),
                    format!("{}: `dsn` is not usable: {e}", s.path),
                );
            }
            let read_only = s.bool(d, "read_only").unwrap_or(true);
            let strict_privileges = s.bool(d, "strict_privileges").unwrap_or(false);
            if s.has("strict_privileges") {
                self.strict_written.insert(name_text.clone());
            }
            let admin_dsn = s.string(d, "admin_dsn");
            if let Some(admin) = &admin_dsn
                && let Err(e) = validate_dsn(&admin.value)
            {
                d.error(
                    admin.span.clone(),
                    format!("{}: `admin_dsn` is not usable: {e}", s.path),
                );
            }
            let admin_has_password = admin_dsn.as_ref().is_some_and(|dsn| {
                ConnInfo::parse(&dsn.value).is_ok_and(|i| i.config.get_password().is_some())
            });
            let replication_dsn = s.string(d, "replication_dsn");
            if let Some(replication) = &replication_dsn
                && let Err(e) = validate_dsn(&replication.value)
            {
                d.error(
                    replication.span.clone(),
                    format!("{}: `replication_dsn` is not usable: {e}", s.path),
                );
            }
            let replication_has_password = replication_dsn.as_ref().is_some_and(|dsn| {
                ConnInfo::parse(&dsn.value).is_ok_and(|i| i.config.get_password().is_some())
            });
            let data_dir = s.string(d, "data_dir").map(|p| PathBuf::from(p.value));
            let password = self.secret(&mut s, "password_file", "password_env");
            let admin_password = self.secret(&mut s, "admin_password_file", "admin_password_env");
            let replication_password = self.secret(
                &mut s,
                "replication_password_file",
                "replication_password_env",
            );
            let d = &mut self.d;
            if let Some(password) = &replication_password {
                if replication_dsn.is_none() {
                    d.error(
                        password.span.clone(),
                        format!("{}: a replication password needs `replication_dsn`; add it, or remove the replication password", s.path),
                    );
                } else if replication_has_password {
                    d.error(
                        password.span.clone(),
                        format!("{}: the `replication_dsn` already has a password; remove it from the replication_dsn to keep it out of the config", s.path),
                    );
                }
            }
            if let Some(password) = &admin_password {
                if admin_dsn.is_none() {
                    d.error(
                        password.span.clone(),
                        format!("{}: an admin password needs `admin_dsn`; add it, or remove the admin password", s.path),
                    );
                } else if admin_has_password {
                    d.error(
                        password.span.clone(),
                        format!("{}: the `admin_dsn` already has a password; remove it from the admin_dsn to keep it out of the config", s.path),
                    );
                }
            }
            if let Some(password) = &password
                && dsn_has_password
            {
                d.error(
                    password.span.clone(),
                    format!("{}: the `dsn` already has a password; remove it from the dsn to keep it out of the config", s.path),
                );
            }
            s.finish(d);
            if let Some(dsn) = dsn {
                targets.insert(
                    name_text,
                    Target {
                        kind,
                        dsn: dsn.value,
                        read_only,
                        password: password.map(|p| p.value),
                        data_dir,
                        admin_dsn: admin_dsn.map(|a| a.value),
                        admin_password: admin_password.map(|p| p.value),
                        strict_privileges,
                        replication_dsn: replication_dsn.map(|r| r.value),
                        replication_password: replication_password.map(|p| p.value),
                        redis: None,
                    },
                );
            }
        }
        targets
    }

    /// The rest of a `kind = "mysql"` target: a `mysql://` URL
    /// ([`crate::sql::mysql::dsn`]), its password from a file or the
    /// environment, `read_only` and `strict_privileges`; for the agent's
    /// own actions (the MariaDB/MySQL failover) `admin_dsn` and
    /// `replication_dsn` (the login replicas use to replicate from it),
    /// each with its password from a file or the environment.
    fn mysql_target(&mut self, mut s: Section, name: String) -> Option<(String, Target)> {
        let d = &mut self.d;
        let dsn = s.required_string(d, "dsn", "\"mysql://watchpost@127.0.0.1:3306/\"");
        let read_only = s.bool(d, "read_only").unwrap_or(true);
        let strict_privileges = s.bool(d, "strict_privileges").unwrap_or(false);
        // Only cluster mode uses it (the server's pid file, `mariadbd.pid`).
        let data_dir = s.string(d, "data_dir").map(|p| PathBuf::from(p.value));
        let admin_dsn = s.string(d, "admin_dsn");
        let replication_dsn = s.string(d, "replication_dsn");
        let password = self.secret(&mut s, "password_file", "password_env");
        let admin_password = self.secret(&mut s, "admin_password_file", "admin_password_env");
        let replication_password = self.secret(
            &mut s,
            "replication_password_file",
            "replication_password_env",
        );
        let d = &mut self.d;
        let path = s.path.clone();
        s.finish(d);
        let logins = [
            ("dsn", dsn.as_ref(), &password, "password"),
            (
                "admin_dsn",
                admin_dsn.as_ref(),
                &admin_password,
                "admin password",
            ),
            (
                "replication_dsn",
                replication_dsn.as_ref(),
                &replication_password,
                "replication password",
            ),
        ];
        for (key, url, secret, what) in logins {
            let Some(url) = url else {
                if let Some(secret) = secret {
                    d.error(
                        secret.span.clone(),
                        format!("{path}: the {what} needs `{key}`; add it, or remove the {what}"),
                    );
                }
                continue;
            };
            match crate::sql::mysql::dsn::parse(&url.value, None) {
                Err(e) => d.error(
                    url.span.clone(),
                    format!("{path}: `{key}` is not usable: {e}"),
                ),
                Ok(parsed) if parsed.opts.pass().is_some() && secret.is_some() => d.error(
                    url.span.clone(),
                    format!(
                        "{path}: the `{key}` already has a password; remove it from the {key} \
                         to keep it out of the config"
                    ),
                ),
                Ok(_) => {}
            }
        }
        let dsn = dsn?;
        Some((
            name,
            Target {
                kind: TargetKind::Mysql,
                dsn: dsn.value,
                read_only,
                password: password.map(|p| p.value),
                data_dir,
                admin_dsn: admin_dsn.map(|a| a.value),
                admin_password: admin_password.map(|p| p.value),
                strict_privileges,
                replication_dsn: replication_dsn.map(|r| r.value),
                replication_password: replication_password.map(|p| p.value),
                redis: None,
            },
        ))
    }

    pub(super) fn target_ref(
        &mut self,
        path: &str,
        key: &str,
        name: At<String>,
        targets: &BTreeMap<String, Target>,
    ) -> Option<String> {
        if targets.contains_key(&name.value) {
            return Some(name.value);
        }
        self.d.error(
            name.span,
            format!(
                "{path}: `{key}` names target {:?}, which is not defined in [targets]",
                name.value
            ),
        );
        None
    }
}
