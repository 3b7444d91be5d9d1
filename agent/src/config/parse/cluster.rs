//! `[cluster]`: the cluster mode, in which the agent on every PostgreSQL
//! node of a replication cluster shares one view through etcd and holds
//! (or follows) the leader key. Checked at load: the etcd endpoints, the
//! lease timing (renewals well within the lease, as Patroni requires
//! `loop_wait + 2 × retry_timeout <= ttl`), the local server's target
//! (MariaDB's own checks: `cluster_mariadb`).

use super::super::model::*;
use super::super::reader::Section;
use super::super::units::{self, DurationRange};
use super::Parser;
use std::collections::BTreeMap;
use std::time::Duration;

/// The leader lease: at least etcd's minimum lease (2 s with its default
/// heartbeat), at most a minute.
/// `etcd_quota`: etcd's `--quota-backend-bytes`, 1 MiB to 64 GiB.
const ETCD_QUOTA: units::SizeRange = units::SizeRange::new(1 << 20, 64 * units::GIB);

const TTL: DurationRange = DurationRange::new(Duration::from_secs(2), Duration::from_secs(60));

use super::super::keys::{Kind, Table, key};

/// `[cluster]`'s keys.
pub(super) static CLUSTER: Table = Table {
    heading: "[cluster]",
    doc: "Cluster mode: the members of a scope share a leader lease in etcd; the leader runs the primary, the others stream from it, and a failover is an election. A single-agent `failover` remediation cannot be used beside it.",
    keys: &[
        key(
            "scope",
            Kind::String,
            "required",
            "The cluster's name, shared by its members: 1 to 64 letters, digits, `-`, `_` or `.`.",
        ),
        key(
            "etcd",
            Kind::Strings,
            "required",
            "The etcd client URLs, e.g. [\"http://10.0.0.1:2379\"].",
        ),
        key(
            "name",
            Kind::String,
            "[agent] node",
            "This member's name (at most 63 bytes: it is the standby's application_name).",
        ),
        key(
            "ttl",
            Kind::Duration(TTL),
            "\"3s\"",
            "The leader lease's time to live: how long a leader that stopped renewing keeps the key.",
        ),
        key(
            "loop_wait",
            Kind::Duration(units::SCHEDULE),
            "ttl / 6",
            "How often a member runs its loop (the leader renews its lease); at most a quarter of `ttl`.",
        ),
        key(
            "target",
            Kind::String,
            "[agent] local_target",
            "The [targets.NAME] of this node's server (it needs `data_dir`).",
        ),
        key(
            "bin_dir",
            Kind::String,
            "\"/usr/lib/postgresql/15/bin\" (MariaDB: \"/usr/sbin\", Redis: \"/usr/bin\")",
            "Directory of the server's programs (PostgreSQL's, `mariadbd` or `redis-server`).",
        ),
        key(
            "defaults_file",
            Kind::String,
            "required for MariaDB",
            "MariaDB only: this member's mariadbd option file (`--defaults-file`); it must set `read_only = ON`, `log_bin`, `log_slave_updates` and a unique `server_id`.",
        ),
        key(
            "connect",
            Kind::String,
            "required",
            "HOST:PORT other members reach this server at.",
        ),
        key(
            "replication_user",
            Kind::String,
            "\"postgres\"",
            "The role standbys stream as.",
        ),
        key(
            "passfile",
            Kind::String,
            "none",
            "A libpq passfile with the replication role's password, for the standbys' primary_conninfo.",
        ),
        key(
            "replication_sslmode",
            Kind::String,
            "\"verify-full\" with `replication_sslrootcert`, else \"prefer\"",
            "libpq's `sslmode` of the streaming and `pg_rewind` connections to the leader: disable, allow, prefer, require, verify-ca or verify-full.",
        ),
        key(
            "replication_sslrootcert",
            Kind::String,
            "none",
            "PEM file of the CA that signs the servers' certificates, for the streaming and `pg_rewind` connections (readable by the postgres OS user).",
        ),
        key(
            "max_lag_bytes",
            Kind::Integer {
                min: 0,
                max: 1 << 40,
            },
            "1048576",
            "A standby further behind than this may not take the lead.",
        )
        .unit("bytes"),
        key(
            "restart_timeout",
            Kind::Duration(units::HOLD),
            "\"30s\"",
            "Deadline of starting or restarting the local server.",
        ),
        key(
            "nofailover",
            Kind::Bool,
            "false",
            "Never take the lead (a member that only follows).",
        ),
        key(
            "failover_priority",
            Kind::Integer {
                min: 0,
                max: 1_000_000,
            },
            "1",
            "Among standbys that received the same WAL, the higher priority takes the lead.",
        ),
        key(
            "synchronous",
            Kind::Bool,
            "false",
            "Synchronous mode: a commit waits for a standby, and only a synchronous standby may take the lead.",
        ),
        key(
            "synchronous_node_count",
            Kind::Integer { min: 1, max: 16 },
            "1",
            "How many synchronous standbys a commit waits for.",
        )
        .unit("standbys"),
        key(
            "etcd_quota",
            Kind::Size(ETCD_QUOTA),
            "\"2GiB\"",
            "The etcd backend quota (`--quota-backend-bytes`) the agent's etcd probe measures usage against.",
        ),
        key(
            "etcd_ca",
            Kind::String,
            "the system's roots",
            "PEM file of the CA that signs the etcd servers' certificates (for https:// endpoints).",
        ),
        key(
            "etcd_cert",
            Kind::String,
            "none",
            "PEM client certificate for etcd's `--client-cert-auth` (with `etcd_key`).",
        ),
        key(
            "etcd_key",
            Kind::String,
            "none",
            "PEM private key of `etcd_cert` (a private file).",
        ),
        key(
            "etcd_user",
            Kind::String,
            "none",
            "The etcd user, when etcd has `auth enable` (with a password).",
        ),
        key(
            "etcd_password_file",
            Kind::String,
            "none",
            "A private file whose first line is `etcd_user`'s password.",
        ),
        key(
            "etcd_password_env",
            Kind::String,
            "none",
            "An environment variable holding `etcd_user`'s password.",
        ),
    ],
    entries: None,
};

impl Parser<'_, '_> {
    pub(super) fn cluster(
        &mut self,
        mut s: Section,
        agent: &Agent,
        targets: &BTreeMap<String, Target>,
    ) -> Option<ClusterSpec> {
        let d = &mut self.d;
        let scope = s.required_string(d, "scope", "\"main\"");
        if let Some(scope) = &scope
            && !super::valid_name(&scope.value)
        {
            d.error(
                scope.span.clone(),
                format!(
                    "[cluster]: `scope` = {:?}: write 1 to 64 letters, digits, - _ or .",
                    scope.value
                ),
            );
        }
        let etcd: Vec<String> = match s.string_list(d, "etcd") {
            Some(list) if list.is_empty() => {
                d.error(s.span.clone(), "[cluster]: `etcd` is empty; list the etcd client URLs, e.g. [\"http://10.0.0.1:2379\"]".to_string());
                vec![]
            }
            Some(list) => list
                .into_iter()
                .filter_map(|url| match check_endpoint(&url.value) {
                    Ok(()) => Some(url.value.trim_end_matches('/').to_string()),
                    Err(problem) => {
                        d.error(
                            url.span,
                            format!("[cluster]: etcd endpoint {:?} {problem}", url.value),
                        );
                        None
                    }
                })
                .collect(),
            None => {
                if !s.has("etcd") {
                    d.error(s.span.clone(), "[cluster]: `etcd` is missing; add e.g. `etcd = [\"http://127.0.0.1:2379\"]`".to_string());
                }
                vec![]
            }
        };
        let etcd_access = self.etcd_access(&mut s);
        let d = &mut self.d;
        let name = match s.string(d, "name") {
            Some(n) => {
                if !super::valid_name(&n.value) {
                    d.error(
                        n.span.clone(),
                        format!(
                            "[cluster]: `name` = {:?}: write 1 to {APPLICATION_NAME_MAX} letters, digits, - _ or .",
                            n.value
                        ),
                    );
                } else if let Some(problem) = too_long_for_application_name(&n.value) {
                    d.error(n.span.clone(), format!("[cluster]: `name` {problem}"));
                }
                n.value
            }
            None => {
                if let Some(problem) = too_long_for_application_name(&agent.node) {
                    d.error(
                        s.span.clone(),
                        format!("[cluster]: the member name (the node name by default) {problem}; set a shorter `name` here"),
                    );
                }
                agent.node.clone()
            }
        };
        let ttl_at = s.duration(d, "ttl", TTL);
        let ttl = ttl_at
            .as_ref()
            .map_or(ClusterSpec::DEFAULT_TTL, |t| t.value);
        let loop_wait = match s.duration(d, "loop_wait", units::SCHEDULE) {
            Some(w) if w.value.saturating_mul(4) > ttl => {
                d.error(w.span, format!(
                    "[cluster]: `loop_wait` = {} leaves too little of the {} lease: the leader renews every loop and must be able to miss a few; write at most a quarter of `ttl`",
                    units::format_duration(w.value), units::format_duration(ttl)
                ));
                ttl / 6
            }
            Some(w) => w.value,
            None => ttl / 6,
        };
        let target = s.string(d, "target");
        let (target_name, data_dir) = match &target {
            Some(t) => match targets.get(&t.value) {
                Some(found) if found.data_dir.is_some() => {
                    (t.value.clone(), found.data_dir.clone())
                }
                Some(_) => {
                    d.error(t.span.clone(), format!("[cluster]: target `{}` has no `data_dir`: the cluster mode manages the local server and needs its data directory", t.value));
                    (t.value.clone(), None)
                }
                None => {
                    d.error(
                        t.span.clone(),
                        format!(
                            "[cluster]: no [targets.{}]: name the target of this node's server",
                            t.value
                        ),
                    );
                    (t.value.clone(), None)
                }
            },
            None => match agent.local_target.as_ref() {
                Some(local) => (
                    local.clone(),
                    targets.get(local).and_then(|t| t.data_dir.clone()),
                ),
                None => {
                    d.error(s.span.clone(), "[cluster]: `target` is missing: name the [targets.NAME] of this node's server (with its `data_dir`)".to_string());
                    (String::new(), None)
                }
            },
        };
        let engine = targets
            .get(&target_name)
            .map_or(crate::config::TargetKind::Postgres, |t| t.kind);
        let mariadb = engine == crate::config::TargetKind::Mysql;
        let server_target = targets.get(&target_name).cloned().map(Box::new);
        let bin_dir = s.string(d, "bin_dir").map_or_else(
            || match engine {
                crate::config::TargetKind::Redis => "/usr/bin".into(),
                crate::config::TargetKind::Mysql => "/usr/sbin".into(),
                crate::config::TargetKind::Postgres => "/usr/lib/postgresql/15/bin".into(),
            },
            |b| b.value.into(),
        );
        let defaults_file = s.string(d, "defaults_file");
        if !mariadb && let Some(file) = &defaults_file {
            d.error(file.span.clone(), "[cluster]: `defaults_file` is MariaDB's (mariadbd's option file); the cluster target is not MariaDB: remove it".to_string());
        }
        // PostgreSQL's keys, named when given for a MariaDB target.
        let given: Vec<&'static str> = super::cluster_mariadb::PG_ONLY
            .iter()
            .copied()
            .filter(|key| s.has(key))
            .collect();
        let connect = s.required_string(d, "connect", "\"10.0.0.1:5432\"").and_then(|c| {
            match c.value.rsplit_once(':').and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?))) {
                Some((host, port)) if !host.is_empty() => Some((host, port)),
                _ => {
                    d.error(c.span, format!("[cluster]: `connect` = {:?}: write the HOST:PORT other members reach this server at", c.value));
                    None
                }
            }
        });
        let replication_user = s
            .string(d, "replication_user")
            .map_or_else(|| "postgres".into(), |u| u.value);
        let passfile = s.string(d, "passfile").map(|p| p.value.into());
        let replication_sslmode = s.string(d, "replication_sslmode").and_then(|m| {
            if SSLMODES.contains(&m.value.as_str()) {
                Some(m.value)
            } else {
                d.error(
                    m.span,
                    format!(
                        "[cluster]: `replication_sslmode` = {:?} is not a libpq sslmode; write one of {}",
                        m.value,
                        SSLMODES.join(", ")
                    ),
                );
                None
            }
        });
        let replication_sslrootcert: Option<std::path::PathBuf> = s
            .string(d, "replication_sslrootcert")
            .map(|p| p.value.into());
        let max_lag_bytes = s
            .integer(d, "max_lag_bytes", 0, 1 << 40)
            .map_or(1 << 20, |v| v.value);
        let restart_timeout = s
            .duration(d, "restart_timeout", units::HOLD)
            .map_or(Duration::from_secs(30), |v| v.value);
        let nofailover = s.bool(d, "nofailover").unwrap_or(false);
        let failover_priority = s
            .integer(d, "failover_priority", 0, 1_000_000)
            .map_or(1, |v| v.value);
        let etcd_quota = s
            .size(d, "etcd_quota", ETCD_QUOTA)
            .map_or(2 * units::GIB, |v| v.value);
        let synchronous = s.bool(d, "synchronous").unwrap_or(false);
        if synchronous && engine == crate::config::TargetKind::Redis {
            d.error(s.span.clone(), format!("[cluster]: `synchronous = true` is not supported for the Redis target `{target_name}` (Redis has no synchronous replication the leader could keep); remove it"));
        }
        let synchronous_node_count = s
            .integer(d, "synchronous_node_count", 1, 16)
            .map_or(1, |v| v.value as u32);
        if mariadb {
            let target = targets.get(&target_name).map(|t| (target_name.as_str(), t));
            super::cluster_mariadb::check(
                d,
                s.span.clone(),
                target,
                defaults_file.as_ref(),
                &given,
            );
        }
        let defaults_file = defaults_file.map(|f| f.value.into());
        s.finish(d);
        let (scope, (host, port), data_dir) = (scope?, connect?, data_dir?);
        if etcd.is_empty() {
            return None;
        }
        Some(ClusterSpec {
            scope: scope.value,
            etcd,
            etcd_access,
            etcd_quota,
            name,
            ttl,
            loop_wait,
            engine,
            server_target,
            target: target_name,
            data_dir,
            bin_dir,
            defaults_file,
            host,
            port,
            replication_user,
            passfile,
            replication_sslmode,
            replication_sslrootcert,
            max_lag_bytes,
            restart_timeout,
            nofailover,
            failover_priority,
            synchronous,
            synchronous_node_count,
        })
    }
}

/// PostgreSQL keeps `application_name` in `NAMEDATALEN - 1` = 63 bytes
/// and truncates a longer one: a member name longer than that never
/// matches `synchronous_standby_names`, so every write would wait.
pub const APPLICATION_NAME_MAX: usize = 63;

/// Why `name` cannot be a member name (it becomes the standby's
/// `application_name`), if it cannot.
fn too_long_for_application_name(name: &str) -> Option<String> {
    (name.len() > APPLICATION_NAME_MAX).then(|| {
        format!(
            "{name:?} is {} bytes: PostgreSQL truncates application_name to {APPLICATION_NAME_MAX} bytes, so a synchronous standby of that name would never match; write at most {APPLICATION_NAME_MAX}",
            name.len()
        )
    })
}

/// Why an etcd endpoint cannot be used, if it cannot.
fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|_| "is not a URL; write e.g. \"http://10.0.0.1:2379\"")?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.host().is_some() => Ok(()),
        _ => Err("must be an http:// or https:// URL with a host, e.g. \"http://10.0.0.1:2379\""),
    }
}
