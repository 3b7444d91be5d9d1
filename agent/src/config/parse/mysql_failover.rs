//! The keys a failover of MariaDB/MySQL targets (`kind = "mysql"`) or of
//! Redis targets (`kind = "redis"`) takes beyond PostgreSQL's
//! (`replicas`, `apply_within`, `rejoin_within`), and the PostgreSQL-only
//! keys it refuses, so that the failover action's parser keeps one shape
//! for every engine. A Redis failover also needs every server's
//! `admin_dsn` (its read-write login, at a host and port the other
//! servers can replicate from).

use super::super::model::*;
use super::super::reader::Section;
use super::super::units;
use super::Parser;
use std::collections::BTreeMap;
use std::time::Duration;

/// The keys of a MariaDB/MySQL or Redis failover only.
const MYSQL_KEYS: [&str; 3] = ["replicas", "apply_within", "rejoin_within"];

impl Parser<'_, '_> {
    /// The MariaDB/MySQL part for a failover between `kind = "mysql"`
    /// targets, the Redis part for `kind = "redis"` ones (with their own
    /// keys read), neither for PostgreSQL (where those keys are refused).
    /// Both targets must be of one kind.
    pub(super) fn mysql_failover(
        &mut self,
        path: &str,
        a: &mut Section,
        targets: &BTreeMap<String, Target>,
        standby: Option<&String>,
        primary: Option<&String>,
        fence: &Fence,
    ) -> (Option<MysqlFailover>, Option<RedisFailover>) {
        let kind = |name: Option<&String>| name.and_then(|n| targets.get(n)).map(|t| t.kind);
        let engine = kind(standby).filter(|k| *k != TargetKind::Postgres);
        if let (Some(s), Some(p)) = (kind(standby), kind(primary))
            && s != p
        {
            self.d.error(
                a.span.clone(),
                format!("{path}: `failover` and `primary` must be targets of one kind (both PostgreSQL, both `kind = \"mysql\"` or both `kind = \"redis\"`)"),
            );
        }
        let Some(engine) = engine else {
            for key in MYSQL_KEYS {
                if let Some(v) = a.raw(key) {
                    self.d.error(
                        v.span(),
                        format!("{path}: `{key}` is only used by a failover of MariaDB/MySQL targets (kind = \"mysql\") or Redis targets (kind = \"redis\")"),
                    );
                }
            }
            return (None, None);
        };
        let (engine_name, kind_name) = match engine {
            TargetKind::Redis => ("Redis", "redis"),
            _ => ("MariaDB/MySQL", "mysql"),
        };
        if matches!(fence, Fence::PgCtl { .. }) {
            let own = match engine {
                TargetKind::Redis => {
                    "the agent itself pauses its writes (CLIENT PAUSE WRITE) and makes it a replica when it answers"
                }
                _ => "the agent itself sets read_only = 1 and kills its sessions when it answers",
            };
            self.d.error(
                a.span.clone(),
                format!("{path}: fence = \"pg_ctl\" is PostgreSQL's; for {engine_name} write a command that stops or isolates the old primary ({own}), or \"none\""),
            );
        }
        let d = &mut self.d;
        let apply_within = a
            .duration(d, "apply_within", units::SCHEDULE)
            .map_or(Duration::from_secs(30), |v| v.value);
        let rejoin_within = a
            .duration(d, "rejoin_within", units::HOLD)
            .map_or(Duration::from_secs(3600), |v| v.value);
        let list = a.string_list(d, "replicas").unwrap_or_default();
        let mut replicas = Vec::new();
        for name in list {
            let text = name.value.clone();
            if let Some(name) = self.target_ref(path, "replicas", name, targets) {
                if kind(Some(&name)) != Some(engine) {
                    self.d.error(
                        a.span.clone(),
                        format!(
                            "{path}: `replicas` names `{name}`, which is not a {engine_name} target (kind = \"{kind_name}\")"
                        ),
                    );
                } else if Some(&name) == standby || Some(&name) == primary {
                    self.d.error(
                        a.span.clone(),
                        format!("{path}: `replicas` lists the other replicas to repoint; `{text}` is the failover's own `failover` or `primary`"),
                    );
                } else if !replicas.contains(&name) {
                    replicas.push(name);
                }
            }
        }
        if engine == TargetKind::Redis {
            let servers = primary.into_iter().chain(standby).chain(&replicas);
            for name in servers {
                let admin = targets.get(name).and_then(|t| t.admin_dsn.as_deref());
                match admin {
                    None => self.d.error(
                        a.span.clone(),
                        format!("{path}: the Redis failover logs in to `{name}` with its `admin_dsn` (a read-write ACL user of the agent's own, never the probes'); add admin_dsn = \"redis://watchpost_admin@HOST:PORT/0\" to [targets.{name}]"),
                    ),
                    Some(url) if url.starts_with("unix:") => self.d.error(
                        a.span.clone(),
                        format!("{path}: the `admin_dsn` of `{name}` is a Unix socket; the failover tells the other servers to replicate from its host and port: write redis://USER@HOST:PORT/0"),
                    ),
                    Some(_) => {}
                }
            }
            return (
                None,
                Some(RedisFailover {
                    replicas,
                    apply_within,
                    rejoin_within,
                }),
            );
        }
        (
            Some(MysqlFailover {
                replicas,
                apply_within,
                rejoin_within,
            }),
            None,
        )
    }
}
