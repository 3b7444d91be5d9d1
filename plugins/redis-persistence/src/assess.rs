//! The decision: what a server's `INFO` and persistence parameters mean,
//! as findings (problems with their statuses, notes, measurements). Pure,
//! so that every outcome is tested here without a server.

use std::collections::BTreeMap;
use watchpost_probe::redis::Info;
use watchpost_probe::{Findings, Status, Threshold, measurement};

/// The limits from the probe's config.
pub struct Limits {
    /// Seconds since the last good save, with changes pending.
    pub age: Threshold,
    /// Seconds the latest fork took.
    pub fork: Threshold,
    /// No persistence at all is a warning.
    pub required: bool,
}

/// What was read from one server.
pub struct Server<'a> {
    pub target: &'a str,
    /// `INFO all`.
    pub info: &'a Info,
    /// `CONFIG GET` of the persistence parameters, or why it failed.
    pub parameters: Result<BTreeMap<String, String>, String>,
    /// The server's clock, seconds since the epoch.
    pub now: f64,
}

fn flag(ok: bool) -> f64 {
    if ok { 1.0 } else { 0.0 }
}

impl Server<'_> {
    fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.as_ref().ok()?.get(name).map(String::as_str)
    }

    /// Where RDB snapshots go, for messages: `DIR/FILE`.
    fn rdb_path(&self) -> String {
        match (self.parameter("dir"), self.parameter("dbfilename")) {
            (Some(dir), Some(file)) => format!("{}/{file}", dir.trim_end_matches('/')),
            _ => "its `dir` (CONFIG GET not allowed, so not named here)".to_string(),
        }
    }
}

/// Judge one server's persistence.
pub fn assess(server: &Server, limits: &Limits) -> Findings {
    let mut f = Findings::new();
    let info = server.info;
    let target = server.target;
    // Some(true/false) when CONFIG GET answered; None when it did not.
    let schedule = server.parameter("save").map(|s| !s.trim().is_empty());
    let aof = info.get("aof_enabled") == Some("1");
    if let Some(schedule) = schedule {
        f.push(measurement("redis.rdb.enabled", flag(schedule), "1"));
    }
    f.push(measurement("redis.aof.enabled", flag(aof), "1"));
    if let Err(why) = &server.parameters {
        f.note(format!(
            "{target}: the save schedule is unknown (CONFIG GET: {why}); judged from INFO"
        ));
    }

    rdb(server, schedule, limits, &mut f);
    if aof {
        append_only(server, &mut f);
    }
    if let Some(usec) = info.number("latest_fork_usec") {
        f.push(measurement("redis.latest_fork", usec, "us"));
        let seconds = usec / 1e6;
        let status = limits.fork.status(seconds);
        if status != Status::Ok {
            f.problem(
                status,
                format!(
                    "{target}: the latest fork took {seconds:.3} s, stalling every client \
                     (limits {} / {} s)",
                    limits.fork.warning, limits.fork.critical
                ),
            );
        }
    }
    if schedule == Some(false) && !aof {
        let text = format!(
            "{target}: no persistence configured (no save schedule, `save \"\"`, and \
             `appendonly no`): a restart loses the data"
        );
        if limits.required {
            f.problem(
                Status::Warning,
                format!("{text}, and the config says `required`"),
            );
        } else {
            f.note(text);
        }
    } else {
        let mut kinds = Vec::new();
        match schedule {
            Some(true) => kinds.push(format!(
                "RDB snapshots (save {})",
                server.parameter("save").unwrap_or_default()
            )),
            None => kinds.push("RDB schedule unknown".to_string()),
            Some(false) => {}
        }
        if aof {
            kinds.push("AOF".to_string());
        }
        f.note(format!("{target} persists with {}", kinds.join(" and ")));
    }
    if info.get("loading") == Some("1") || info.get("async_loading") == Some("1") {
        f.note(format!("{target} is loading its dataset"));
    }
    f
}

/// The RDB side: last BGSAVE, its age, changes pending.
fn rdb(server: &Server, schedule: Option<bool>, limits: &Limits, f: &mut Findings) {
    let info = server.info;
    let target = server.target;
    let changes = info.number("rdb_changes_since_last_save");
    if let Some(changes) = changes {
        f.push(measurement(
            "redis.rdb.changes_since_last_save",
            changes,
            "{change}",
        ));
    }
    let age = info
        .number("rdb_last_save_time")
        .map(|at| (server.now - at).max(0.0));
    if let Some(age) = age {
        f.push(measurement("redis.rdb.last_save.age", age, "s"));
    }
    let ok = info.get("rdb_last_bgsave_status") != Some("err");
    f.push(measurement("redis.rdb.last_bgsave.ok", flag(ok), "1"));
    if !ok {
        let stops = match server.parameter("stop-writes-on-bgsave-error") {
            Some("yes") if schedule == Some(true) => {
                "; with stop-writes-on-bgsave-error the server refuses writes (MISCONF) until a \
                 save succeeds"
            }
            _ => "",
        };
        let since = age
            .map(|a| format!(", the last good save was {a:.0} s ago"))
            .unwrap_or_default();
        f.problem(
            Status::Critical,
            format!(
                "{target}: the last BGSAVE failed (rdb_last_bgsave_status:err): the snapshot \
                 could not be written to {}; check that the directory is writable by the \
                 server and has space (the server's log says why){since}{stops}",
                server.rdb_path()
            ),
        );
    }
    if info.get("rdb_bgsave_in_progress") == Some("1") {
        f.note(format!("{target}: a BGSAVE is in progress"));
    }
    // A stale snapshot matters only when one is scheduled and there is
    // something to save.
    if let (Some(true), Some(age), Some(changes)) = (schedule, age, changes)
        && changes > 0.0
        && ok
    {
        let status = limits.age.status(age);
        if status != Status::Ok {
            f.problem(
                status,
                format!(
                    "{target}: {changes:.0} changes not saved for {age:.0} s (limits {} / {} s)",
                    limits.age.warning, limits.age.critical
                ),
            );
        }
    }
}

/// The AOF side: the last write and the last rewrite.
fn append_only(server: &Server, f: &mut Findings) {
    let info = server.info;
    let target = server.target;
    let write_ok = info.get("aof_last_write_status") != Some("err");
    let rewrite_ok = info.get("aof_last_bgrewrite_status") != Some("err");
    f.push(measurement("redis.aof.last_write.ok", flag(write_ok), "1"));
    f.push(measurement(
        "redis.aof.last_rewrite.ok",
        flag(rewrite_ok),
        "1",
    ));
    let place = match (server.parameter("dir"), server.parameter("appenddirname")) {
        (Some(dir), Some(sub)) => format!(" in {}/{sub}", dir.trim_end_matches('/')),
        (Some(dir), None) => format!(" in {dir}"),
        _ => String::new(),
    };
    if !write_ok {
        f.problem(
            Status::Critical,
            format!(
                "{target}: the last AOF write failed (aof_last_write_status:err){place}: the \
                 server refuses writes until it can write again (space, permissions: see its log)"
            ),
        );
    }
    if !rewrite_ok {
        let failures = info
            .number("aof_rewrites_consecutive_failures")
            .filter(|n| *n > 0.0)
            .map(|n| format!(", {n:.0} in a row"))
            .unwrap_or_default();
        f.problem(
            Status::Warning,
            format!(
                "{target}: the last AOF rewrite failed (aof_last_bgrewrite_status:err{failures}){place}: \
                 the AOF keeps growing until one succeeds"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pairs: &[(&str, &str)]) -> Info {
        Info(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn parameters(pairs: &[(&str, &str)]) -> Result<BTreeMap<String, String>, String> {
        Ok(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    fn limits() -> Limits {
        Limits {
            age: Threshold::above(7200.0, 86400.0),
            fork: Threshold::above(0.5, 2.0),
            required: false,
        }
    }

    const HEALTHY: &[(&str, &str)] = &[
        ("rdb_changes_since_last_save", "0"),
        ("rdb_last_save_time", "1000"),
        ("rdb_last_bgsave_status", "ok"),
        ("aof_enabled", "0"),
        ("latest_fork_usec", "250"),
    ];

    fn judge(
        info_pairs: &[(&str, &str)],
        params: Result<BTreeMap<String, String>, String>,
        limits: &Limits,
    ) -> watchpost_probe::Report {
        let info = info(info_pairs);
        let server = Server {
            target: "cache",
            info: &info,
            parameters: params,
            now: 1100.0,
        };
        assess(&server, limits).into_report()
    }

    fn value(report: &watchpost_probe::Report, name: &str) -> Option<f64> {
        report
            .measurements
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    #[test]
    fn no_persistence_is_stated_and_ok_unless_required() {
        let none = parameters(&[("save", ""), ("appendonly", "no")]);
        let report = judge(HEALTHY, none.clone(), &limits());
        assert_eq!(report.status, Status::Ok);
        assert!(
            report.message.contains("no persistence configured"),
            "{}",
            report.message
        );
        assert_eq!(value(&report, "redis.rdb.enabled"), Some(0.0));
        let required = Limits {
            required: true,
            ..limits()
        };
        let report = judge(HEALTHY, none, &required);
        assert_eq!(report.status, Status::Warning);
        assert!(report.message.contains("required"), "{}", report.message);
    }

    #[test]
    fn a_failed_bgsave_is_critical_and_names_the_file() {
        let mut pairs = HEALTHY.to_vec();
        pairs.retain(|(k, _)| *k != "rdb_last_bgsave_status");
        pairs.push(("rdb_last_bgsave_status", "err"));
        let params = parameters(&[
            ("save", "3600 1"),
            ("dir", "/var/lib/redis/"),
            ("dbfilename", "dump.rdb"),
            ("stop-writes-on-bgsave-error", "yes"),
        ]);
        let report = judge(&pairs, params, &limits());
        assert_eq!(report.status, Status::Critical);
        assert!(
            report.message.contains("/var/lib/redis/dump.rdb"),
            "{}",
            report.message
        );
        assert!(report.message.contains("MISCONF"), "{}", report.message);
        assert_eq!(value(&report, "redis.rdb.last_bgsave.ok"), Some(0.0));
        assert_eq!(value(&report, "redis.rdb.last_save.age"), Some(100.0));
    }

    #[test]
    fn stale_snapshots_count_only_with_a_schedule_and_changes() {
        let mut pairs = HEALTHY.to_vec();
        pairs.retain(|(k, _)| *k != "rdb_changes_since_last_save");
        pairs.push(("rdb_changes_since_last_save", "5"));
        let tight = Limits {
            age: Threshold::above(10.0, 50.0),
            ..limits()
        };
        let scheduled = parameters(&[("save", "60 1")]);
        let report = judge(&pairs, scheduled.clone(), &tight);
        assert_eq!(report.status, Status::Critical, "{}", report.message);
        assert!(report.message.contains("5 changes not saved"));
        // No schedule: nothing is expected to be saved.
        let report = judge(&pairs, parameters(&[("save", "")]), &tight);
        assert_eq!(report.status, Status::Ok, "{}", report.message);
        // Nothing pending: an old save is fine.
        let report = judge(HEALTHY, scheduled, &tight);
        assert_eq!(report.status, Status::Ok, "{}", report.message);
    }

    #[test]
    fn aof_failures_are_judged_when_aof_is_on() {
        let mut pairs = HEALTHY.to_vec();
        pairs.retain(|(k, _)| *k != "aof_enabled");
        pairs.extend([
            ("aof_enabled", "1"),
            ("aof_last_write_status", "ok"),
            ("aof_last_bgrewrite_status", "err"),
            ("aof_rewrites_consecutive_failures", "3"),
        ]);
        let params = parameters(&[("save", ""), ("dir", "/data"), ("appenddirname", "aof")]);
        let report = judge(&pairs, params.clone(), &limits());
        assert_eq!(report.status, Status::Warning, "{}", report.message);
        assert!(report.message.contains("3 in a row"), "{}", report.message);
        assert!(report.message.contains("/data/aof"), "{}", report.message);
        pairs.retain(|(k, _)| *k != "aof_last_write_status");
        pairs.push(("aof_last_write_status", "err"));
        let report = judge(&pairs, params, &limits());
        assert_eq!(report.status, Status::Critical);
        assert_eq!(value(&report, "redis.aof.last_write.ok"), Some(0.0));
    }

    #[test]
    fn long_forks_and_unknown_schedules() {
        let mut pairs = HEALTHY.to_vec();
        pairs.retain(|(k, _)| *k != "latest_fork_usec");
        pairs.push(("latest_fork_usec", "750000"));
        let report = judge(&pairs, Err("not allowed: NOPERM".into()), &limits());
        assert_eq!(report.status, Status::Warning, "{}", report.message);
        assert_eq!(value(&report, "redis.latest_fork"), Some(750000.0));
        // CONFIG GET refused: no `redis.rdb.enabled`, never "none configured".
        assert_eq!(value(&report, "redis.rdb.enabled"), None);
        let report = judge(HEALTHY, Err("not allowed: NOPERM".into()), &limits());
        assert_eq!(report.status, Status::Ok);
        assert!(report.message.contains("unknown"), "{}", report.message);
        assert!(!report.message.contains("no persistence"));
    }
}
