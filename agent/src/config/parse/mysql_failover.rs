//! The keys a failover of MariaDB/MySQL targets (`kind = "mysql"`) takes
//! beyond PostgreSQL's (`replicas`, `apply_within`, `rejoin_within`), and
//! the PostgreSQL-only keys it refuses, so that the failover action's
//! parser keeps one shape for both engines.

use super::super::model::*;
use super::super::reader::Section;
use super::super::units;
use super::Parser;
use std::collections::BTreeMap;
use std::time::Duration;

/// The MariaDB/MySQL-only keys of a failover.
const MYSQL_KEYS: [&str; 3] = ["replicas", "apply_within", "rejoin_within"];

impl Parser<'_, '_> {
    /// `Some` for a failover between MariaDB/MySQL targets (with its own
    /// keys read), `None` for PostgreSQL (where those keys are refused).
    /// Both targets must be of one kind.
    pub(super) fn mysql_failover(
        &mut self,
        path: &str,
        a: &mut Section,
        targets: &BTreeMap<String, Target>,
        standby: Option<&String>,
        primary: Option<&String>,
        fence: &Fence,
    ) -> Option<MysqlFailover> {
        let kind = |name: Option<&String>| name.and_then(|n| targets.get(n)).map(|t| t.kind);
        let is_mysql = kind(standby) == Some(TargetKind::Mysql);
        if let (Some(s), Some(p)) = (kind(standby), kind(primary))
            && s != p
        {
            self.d.error(
                a.span.clone(),
                format!("{path}: `failover` and `primary` must be targets of one kind (both PostgreSQL or both `kind = \"mysql\"`)"),
            );
        }
        if !is_mysql {
            for key in MYSQL_KEYS {
                if let Some(v) = a.raw(key) {
                    self.d.error(
                        v.span(),
                        format!("{path}: `{key}` is only used by a failover of MariaDB/MySQL targets (kind = \"mysql\")"),
                    );
                }
            }
            return None;
        }
        if matches!(fence, Fence::PgCtl { .. }) {
            self.d.error(
                a.span.clone(),
                format!("{path}: fence = \"pg_ctl\" is PostgreSQL's; for MariaDB/MySQL write a command that stops or isolates the old primary (the agent itself sets read_only = 1 and kills its sessions when it answers), or \"none\""),
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
                if kind(Some(&name)) != Some(TargetKind::Mysql) {
                    self.d.error(
                        a.span.clone(),
                        format!(
                            "{path}: `replicas` names `{name}`, which is not a MariaDB/MySQL target"
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
        Some(MysqlFailover {
            replicas,
            apply_within,
            rejoin_within,
        })
    }
}
