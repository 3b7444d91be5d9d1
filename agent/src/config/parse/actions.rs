//! Remediation actions (`exec`, `restart`, `failover`, `webhook`; the
//! recovery ones are in [`super::recovery`]) and the `alert` and failover
//! `post` steps, which are actions too.

use super::super::model::*;
use super::super::reader::{At, Section, type_name};
use super::super::units;
use super::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use toml::de::DeValue;

use super::super::keys::{Kind, Table, key};

/// `action = { ... }` (also `alert` and a failover's `post` steps): the
/// keys of every action kind, each naming the kinds it applies to.
pub(super) static ACTION: Table = Table {
    heading: "[[remediation]] action",
    doc: "Exactly one action kind: `exec`, `restart`, `failover`, `webhook`, or the recovery actions `terminate`, `cancel`, `resume_replay` and `reinit`; the other keys refine it (each says which kinds it applies to).",
    keys: &[
        key("exec", Kind::Strings, "none", "exec: run a program with arguments, e.g. [\"systemctl\", \"restart\", \"postgresql\"] (no shell)."),
        key("env", Kind::Map, "{}", "exec: extra environment variables for the program."),
        key("timeout", Kind::Duration(units::SCHEDULE), "60s (exec, restart), 5s (webhook), 30s (terminate, cancel, resume_replay), 1h (reinit)", "All kinds but failover: deadline of the action."),
        key("restart", Kind::String, "none", "restart: the method, \"pg_ctl\", \"pg_ctlcluster\", \"systemctl\" or \"command\"."),
        key("target", Kind::String, "none", "restart: the target whose `data_dir` pg_ctl uses."),
        key("pg_ctl", Kind::String, "\"pg_ctl\"", "restart = \"pg_ctl\" and fence = \"pg_ctl\": the pg_ctl program."),
        key("data_dir", Kind::String, "the target's `data_dir`", "restart = \"pg_ctl\": the data directory; reinit: the standby's data directory (absolute)."),
        key("version", Kind::String, "required for pg_ctlcluster", "restart = \"pg_ctlcluster\": the PostgreSQL major version, e.g. \"15\"."),
        key("cluster", Kind::String, "\"main\"", "restart = \"pg_ctlcluster\": the cluster name."),
        key("unit", Kind::String, "required for systemctl", "restart = \"systemctl\": the unit, e.g. \"postgresql@15-main\"."),
        key("command", Kind::Strings, "required for command", "restart = \"command\": the program and arguments that restart the server."),
        key("failover", Kind::String, "none", "failover: the target of the standby to promote."),
        key("primary", Kind::String, "\"primary\"", "failover and reinit: the target of the current primary."),
        key("max_lag_bytes", Kind::Integer { min: 0, max: u64::MAX >> 1 }, "1048576", "failover: refuse to promote a standby further behind than this.").unit("bytes"),
        key("write_within", Kind::Duration(units::SCHEDULE), "\"10s\"", "failover: deadline for the promoted standby to accept a write."),
        key("block_for", Kind::Duration(units::HOLD), "\"1h\"", "failover: refuse further failovers for this long."),
        key("fence_required", Kind::Bool, "true", "failover: abort if the fence fails."),
        key("fence", Kind::Shapes("\"pg_ctl\", \"none\" or an array of strings"), "required for failover", "failover: how the old primary is stopped: \"pg_ctl\" (on this node), a command such as [\"ssh\", \"db-1\", \"pg_ctl\", \"stop\"], or \"none\" (accept the risk of two primaries)."),
        key("primary_data_dir", Kind::String, "the primary target's `data_dir`", "failover with fence = \"pg_ctl\": the old primary's data directory."),
        key("post", Kind::Tables, "[]", "failover: actions after a successful promotion (repoint a proxy, notify), each an action table; not nested.").of(&ACTION),
        key("webhook", Kind::String, "none", "webhook: an http:// or https:// URL to POST the event to."),
        key("retries", Kind::Integer { min: 0, max: 100 }, "3", "webhook: retries after a failed delivery.").unit("retries"),
        key("bearer_env", Kind::String, "none", "webhook: an environment variable holding a bearer token."),
        key("bearer_file", Kind::String, "none", "webhook: a private file whose first line is a bearer token."),
        key("terminate", Kind::String, "none", "terminate: the target whose matching sessions are terminated (needs `idle_in_transaction` or `transaction_older_than`)."),
        key("cancel", Kind::String, "none", "cancel: the target whose matching statements are cancelled (needs `running_longer_than`)."),
        key("idle_in_transaction", Kind::Duration(units::HOLD), "none", "terminate: sessions idle in a transaction for longer than this."),
        key("transaction_older_than", Kind::Duration(units::HOLD), "none", "terminate: transactions open longer than this."),
        key("running_longer_than", Kind::Duration(units::HOLD), "none", "cancel: statements running longer than this."),
        key("blocking", Kind::Bool, "false", "terminate: only transactions that block another session (with `transaction_older_than`)."),
        key("databases", Kind::Strings, "[] (any)", "terminate, cancel: only sessions in these databases."),
        key("users", Kind::Strings, "[] (any)", "terminate, cancel: only sessions of these users."),
        key("applications", Kind::Strings, "[] (any)", "terminate, cancel: only sessions with these application names."),
        key("max_sessions", Kind::Integer { min: 1, max: 10_000 }, "100", "terminate, cancel: at most this many sessions per run.").unit("sessions"),
        key("resume_replay", Kind::String, "none", "resume_replay: the standby target whose paused replay is resumed."),
        key("reinit", Kind::String, "none", "reinit: the standby target to re-clone from `primary`."),
        key("stream_within", Kind::Duration(units::SCHEDULE), "\"1m\"", "reinit: deadline for the re-cloned standby to stream."),
        key("bin_dir", Kind::String, "\"/usr/lib/postgresql/15/bin\"", "reinit: directory of the PostgreSQL programs."),
        key("replicas", Kind::Strings, "[]", "failover of MariaDB/MySQL targets: the other replicas repointed at the promoted one."),
        key("apply_within", Kind::Duration(units::SCHEDULE), "\"30s\"", "failover of MariaDB/MySQL targets: deadline for the promoted replica to apply what it received."),
        key("rejoin_within", Kind::Duration(units::HOLD), "\"1h\"", "failover of MariaDB/MySQL targets: how long the old primary may take to rejoin as a replica."),
    ],
    entries: None,
};

impl Parser<'_, '_> {
    pub(super) fn argv(
        &mut self,
        path: &str,
        key: &'static str,
        s: &mut Section,
    ) -> Option<Vec<String>> {
        let list = s.string_list(&mut self.d, key)?;
        if list.is_empty() || list[0].value.is_empty() {
            self.d.error(s.span.clone(), format!("{path}: `{key}` needs a program and its arguments, e.g. [\"systemctl\", \"restart\", \"postgresql\"]"));
            return None;
        }
        Some(list.into_iter().map(|a| a.value).collect())
    }

    pub(super) fn action(
        &mut self,
        mut a: Section,
        targets: &BTreeMap<String, Target>,
        allow_post: bool,
    ) -> Option<Action> {
        let path = a.path.clone();
        let kinds = ["exec", "restart", "failover", "webhook"];
        let present: Vec<&str> = kinds
            .iter()
            .chain(super::recovery::KINDS.iter())
            .copied()
            .filter(|k| a.has(k))
            .collect();
        if present.len() != 1 {
            self.d.error(
                a.span.clone(),
                format!("{path}: give exactly one of `exec`, `restart`, `failover`, `webhook`, `terminate`, `cancel`, `resume_replay` or `reinit` (found {})", if present.is_empty() { "none".to_string() } else { present.join(", ") }),
            );
            a.finish(&mut self.d);
            return None;
        }
        let action = match present[0] {
            "exec" => {
                let argv = self.argv(&path, "exec", &mut a);
                let d = &mut self.d;
                let timeout = a
                    .duration(d, "timeout", units::SCHEDULE)
                    .map_or(Duration::from_secs(60), |t| t.value);
                let env = a
                    .string_map(d, "env")
                    .map(|m| m.into_iter().map(|(k, v)| (k, v.value)).collect())
                    .unwrap_or_default();
                argv.map(|argv| Action::Exec(ExecAction { argv, timeout, env }))
            }
            "restart" => self.restart(&path, &mut a, targets),
            "failover" => self.failover(&path, &mut a, targets, allow_post),
            kind if super::recovery::KINDS.contains(&kind) => {
                self.recovery_action(kind, &path, &mut a, targets)
            }
            _ => {
                let d = &mut self.d;
                let url = a.string(d, "webhook");
                if let Some(u) = &url
                    && !(u.value.starts_with("http://") || u.value.starts_with("https://"))
                {
                    d.error(
                        u.span.clone(),
                        format!("{path}: `webhook` must be an http:// or https:// URL"),
                    );
                }
                let timeout = a
                    .duration(d, "timeout", units::SCHEDULE)
                    .map_or(Duration::from_secs(5), |t| t.value);
                let retries = a
                    .integer(d, "retries", 0, 100)
                    .map_or(3, |r| r.value as u32);
                let bearer_env = a.string(d, "bearer_env").map(|b| b.value);
                let bearer = self.secret_file(&mut a, "bearer_file");
                if let (Some(b), Some(_)) = (&bearer, &bearer_env) {
                    self.d.error(
                        b.span.clone(),
                        format!("{path}: give `bearer_file` or `bearer_env`, not both"),
                    );
                }
                url.map(|u| {
                    Action::Webhook(WebhookAction {
                        url: u.value,
                        timeout,
                        retries,
                        bearer_env,
                        bearer: bearer.map(|b| b.value),
                    })
                })
            }
        };
        a.finish(&mut self.d);
        action
    }

    pub(super) fn pg_ctl_paths(
        &mut self,
        path: &str,
        a: &mut Section,
        data_dir_key: &'static str,
        fallback: Option<PathBuf>,
    ) -> Option<(PathBuf, PathBuf)> {
        let d = &mut self.d;
        let pg_ctl = a
            .string(d, "pg_ctl")
            .map_or_else(|| PathBuf::from("pg_ctl"), |p| PathBuf::from(p.value));
        let data_dir = a
            .string(d, data_dir_key)
            .map(|p| PathBuf::from(p.value))
            .or(fallback);
        match data_dir {
            Some(dir) => Some((pg_ctl, dir)),
            None => {
                d.error(a.span.clone(), format!("{path}: `{data_dir_key}` is needed (the PostgreSQL data directory), or set `data_dir` on the target"));
                None
            }
        }
    }

    pub(super) fn restart(
        &mut self,
        path: &str,
        a: &mut Section,
        targets: &BTreeMap<String, Target>,
    ) -> Option<Action> {
        let d = &mut self.d;
        let method_text = a.string(d, "restart")?;
        let timeout = a
            .duration(d, "timeout", units::SCHEDULE)
            .map_or(Duration::from_secs(60), |t| t.value);
        let target = a.string(d, "target");
        let target_dir = target
            .and_then(|t| self.target_ref(path, "target", t, targets))
            .and_then(|t| targets.get(&t).and_then(|t| t.data_dir.clone()));
        let d = &mut self.d;
        let method = match method_text.value.as_str() {
            "pg_ctl" => {
                let (pg_ctl, data_dir) = self.pg_ctl_paths(path, a, "data_dir", target_dir)?;
                RestartMethod::PgCtl {
                    program: pg_ctl,
                    data_dir,
                }
            }
            "pg_ctlcluster" => {
                let version = a.string(d, "version");
                let cluster = a
                    .string(d, "cluster")
                    .map_or_else(|| "main".to_string(), |c| c.value);
                match version {
                    Some(v) => RestartMethod::PgCtlCluster {
                        version: v.value,
                        cluster,
                    },
                    None => {
                        d.error(a.span.clone(), format!("{path}: `version` is needed for pg_ctlcluster, e.g. version = \"15\""));
                        return None;
                    }
                }
            }
            "systemctl" => match a.string(d, "unit") {
                Some(u) => RestartMethod::Systemctl { unit: u.value },
                None => {
                    d.error(a.span.clone(), format!("{path}: `unit` is needed for systemctl, e.g. unit = \"postgresql@15-main\""));
                    return None;
                }
            },
            "command" => RestartMethod::Command(self.argv(path, "command", a)?),
            other => {
                d.error(method_text.span, format!("{path}: `restart` = {other:?} is not a method; write \"pg_ctl\", \"pg_ctlcluster\", \"systemctl\" or \"command\""));
                return None;
            }
        };
        Some(Action::Restart(RestartAction { method, timeout }))
    }

    pub(super) fn failover(
        &mut self,
        path: &str,
        a: &mut Section,
        targets: &BTreeMap<String, Target>,
        allow_post: bool,
    ) -> Option<Action> {
        let d = &mut self.d;
        let standby = a.string(d, "failover");
        let primary = a
            .string(d, "primary")
            .unwrap_or_else(|| At::new("primary".into(), a.span.clone()));
        let max_lag_bytes = a
            .integer(d, "max_lag_bytes", 0, u64::MAX >> 1)
            .map_or(1 << 20, |v| v.value);
        let write_within = a
            .duration(d, "write_within", units::SCHEDULE)
            .map_or(Duration::from_secs(10), |v| v.value);
        let block_for = a
            .duration(d, "block_for", units::HOLD)
            .map_or(Duration::from_secs(3600), |v| v.value);
        let fence_required = a.bool(d, "fence_required").unwrap_or(true);
        let standby = standby.and_then(|s| self.target_ref(path, "failover", s, targets));
        let primary = self.target_ref(path, "primary", primary, targets);
        let fence = match a.raw("fence").map(|v| (v.get_ref(), v.span())) {
            None => {
                // Promoting without stopping the old primary risks two
                // primaries: the choice must be written down.
                self.d.error(a.span.clone(), format!("{path}: a failover needs `fence`: \"pg_ctl\" (stop the old primary, on this node), a command such as [\"ssh\", \"db-1\", \"pg_ctl\", \"stop\"], or \"none\" to accept the risk of two primaries"));
                return None;
            }
            Some((DeValue::String(s), _)) if s == "none" => Fence::None,
            Some((DeValue::String(s), _)) if s == Fence::BUILT_IN => {
                let fallback = primary
                    .as_ref()
                    .and_then(|p| targets.get(p))
                    .and_then(|t| t.data_dir.clone());
                let (pg_ctl, data_dir) =
                    self.pg_ctl_paths(path, a, "primary_data_dir", fallback)?;
                Fence::PgCtl {
                    program: pg_ctl,
                    data_dir,
                }
            }
            Some((DeValue::Array(_), _)) => Fence::Command(self.argv(path, "fence", a)?),
            Some((_, span)) => {
                self.d.error(span, format!("{path}: `fence` must be \"pg_ctl\" (built in), \"none\" or a command such as [\"ssh\", \"db-1\", \"pg_ctl\", \"stop\"]"));
                return None;
            }
        };
        if !matches!(fence, Fence::PgCtl { .. }) {
            for key in ["pg_ctl", "primary_data_dir"] {
                if let Some(v) = a.raw(key) {
                    self.d.error(
                        v.span(),
                        format!("{path}: `{key}` is only used with fence = \"pg_ctl\""),
                    );
                }
            }
        }
        let mut post = Vec::new();
        if let Some(raw) = a.raw("post") {
            if !allow_post {
                self.d
                    .error(raw.span(), format!("{path}: `post` steps cannot be nested"));
            } else if let DeValue::Array(items) = raw.get_ref() {
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::Table(t) => {
                            let section =
                                Section::new(&ACTION, format!("{path} post"), t, item.span());
                            if let Some(step) = self.action(section, targets, false) {
                                post.push(step);
                            }
                        }
                        other => self.d.error(
                            item.span(),
                            format!(
                                "{path}: each `post` step must be an action table, found {}",
                                type_name(other)
                            ),
                        ),
                    }
                }
            } else {
                self.d.error(raw.span(), format!("{path}: `post` must be an array of actions, e.g. [{{ webhook = \"http://...\" }}]"));
            }
        }
        let (mysql, redis) =
            self.mysql_failover(path, a, targets, standby.as_ref(), primary.as_ref(), &fence);
        if standby.is_some() && standby == primary {
            self.d.error(
                a.span.clone(),
                format!("{path}: `failover` and `primary` must be different targets"),
            );
        }
        Some(Action::Failover(FailoverAction {
            primary: primary?,
            standby: standby?,
            max_lag_bytes,
            fence,
            fence_required,
            write_within,
            block_for,
            post,
            mysql,
            redis,
        }))
    }
}
