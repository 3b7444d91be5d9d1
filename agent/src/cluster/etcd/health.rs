//! etcd's health as measurements, from the agent's own etcd client: the
//! database size against the quota, the active alarms (NOSPACE, CORRUPT),
//! the Raft leader and term, and the round trip. It runs as a native probe
//! named `etcd` (added by `[cluster]`), so its reports go through the same
//! states, events, audit and telemetry as every other probe's, and an
//! operator is warned days before etcd refuses writes.
//!
//! Default thresholds: the database at 80 % of the quota or more is a
//! warning, any alarm is critical; etcd out of reach is `unknown` (cannot
//! tell), never `ok`.

use super::{Etcd, int, uint};
use crate::report::{Measurement, Report, Status};
use crate::runtime::{BoxFuture, NativeCheck, Probe, ProbeInfo};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// etcd's default `--quota-backend-bytes`.
pub const DEFAULT_QUOTA: u64 = 2 << 30;

/// The share of the quota at which the database is a warning.
pub const WARN_AT: f64 = 0.8;

/// What one look at etcd found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// The database file's size (bytes) and the part in use.
    pub db_size: u64,
    pub db_in_use: u64,
    /// The quota the size is measured against (bytes): etcd's own figure
    /// when it reports one, else the configured one.
    pub quota: u64,
    /// Active alarms: (member id, alarm name).
    pub alarms: Vec<(String, String)>,
    /// The Raft leader's member id (0: none) and term.
    pub leader: u64,
    pub term: u64,
    /// The store's revision.
    pub revision: i64,
    pub round_trip: Duration,
}

impl Health {
    /// Read from etcd's `maintenance/status` and `maintenance/alarm` answers.
    pub fn read(status: &Value, alarms: &Value, quota: u64, round_trip: Duration) -> Health {
        let reported_quota = uint(&status["dbSizeQuota"]);
        Health {
            db_size: uint(&status["dbSize"]),
            db_in_use: uint(&status["dbSizeInUse"]),
            quota: if reported_quota > 0 {
                reported_quota
            } else {
                quota
            },
            alarms: alarms["alarms"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|a| {
                            (
                                uint(&a["memberID"]).to_string(),
                                a["alarm"].as_str().unwrap_or("NONE").to_string(),
                            )
                        })
                        .filter(|(_, alarm)| alarm != "NONE")
                        .collect()
                })
                .unwrap_or_default(),
            leader: uint(&status["leader"]),
            term: uint(&status["raftTerm"]),
            revision: int(&status["header"]["revision"]),
            round_trip,
        }
    }

    /// The share of the quota in use (0 with no quota).
    pub fn used(&self) -> f64 {
        if self.quota == 0 {
            0.0
        } else {
            self.db_size as f64 / self.quota as f64
        }
    }

    /// The state by the default thresholds, and why.
    pub fn status(&self) -> (Status, String) {
        let size = format!(
            "database {:.1} MiB of the {:.0} MiB quota ({:.0} %)",
            self.db_size as f64 / 1048576.0,
            self.quota as f64 / 1048576.0,
            self.used() * 100.0
        );
        if !self.alarms.is_empty() {
            // Each member raises its own: named once, with how many.
            let mut names: Vec<&str> = self.alarms.iter().map(|(_, a)| a.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            let members = self
                .alarms
                .iter()
                .map(|(m, _)| m)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let fix = if names.contains(&"NOSPACE") {
                ": etcd refuses writes, so no standby can take over; compact, defragment and `etcdctl alarm disarm`"
            } else {
                ""
            };
            return (
                Status::Critical,
                format!(
                    "etcd alarm {} (raised by {members} member(s)){fix}; {size}",
                    names.join(", ")
                ),
            );
        }
        if self.leader == 0 {
            return (
                Status::Critical,
                format!("etcd has no Raft leader (term {}); {size}", self.term),
            );
        }
        if self.used() >= WARN_AT {
            return (
                Status::Warning,
                format!(
                    "{size}: at {:.0} % etcd refuses writes (NOSPACE); compact and defragment",
                    100.0
                ),
            );
        }
        (
            Status::Ok,
            format!("{size}; Raft term {}, no alarm", self.term),
        )
    }

    pub fn measurements(&self) -> Vec<Measurement> {
        let m = |name: &str, value: f64, unit: &str| Measurement {
            name: name.into(),
            value,
            unit: unit.into(),
            attributes: Vec::new(),
        };
        let alarm = |name: &str| {
            if self.alarms.iter().any(|(_, a)| a == name) {
                1.0
            } else {
                0.0
            }
        };
        vec![
            m("etcd.db.size", self.db_size as f64, "By"),
            m("etcd.db.size_in_use", self.db_in_use as f64, "By"),
            m("etcd.db.quota", self.quota as f64, "By"),
            m("etcd.db.quota_used", self.used(), "1"),
            m("etcd.alarms", self.alarms.len() as f64, "1"),
            m("etcd.alarm.nospace", alarm("NOSPACE"), "1"),
            m("etcd.alarm.corrupt", alarm("CORRUPT"), "1"),
            m("etcd.raft.has_leader", (self.leader != 0) as u8 as f64, "1"),
            m("etcd.raft.term", self.term as f64, "1"),
            m("etcd.revision", self.revision as f64, "1"),
            m("etcd.round_trip", self.round_trip.as_secs_f64(), "s"),
        ]
    }
}

impl Etcd {
    /// One look at etcd's health (the endpoint that answers first).
    pub async fn health(&self, quota: u64) -> Result<Health, super::EtcdError> {
        let sent = Instant::now();
        let status = self.call("/v3/maintenance/status", json!({})).await?;
        let round_trip = sent.elapsed();
        let alarms = self
            .call("/v3/maintenance/alarm", json!({"action": "GET"}))
            .await?;
        Ok(Health::read(&status, &alarms, quota, round_trip))
    }
}

/// The native probe `etcd` of a `[cluster]`.
struct Check {
    etcd: Etcd,
    quota: u64,
}

impl NativeCheck for Check {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let started = Instant::now();
            let (status, message, measurements) = match self.etcd.health(self.quota).await {
                Ok(health) => {
                    let (status, message) = health.status();
                    (status, message, health.measurements())
                }
                Err(e) => (
                    Status::Unknown,
                    format!("cannot tell etcd's health: {e}"),
                    Vec::new(),
                ),
            };
            Report {
                status,
                message,
                measurements,
                error: None,
                duration: started.elapsed(),
                peak_memory: 0,
            }
        })
    }
}

/// The probe for `spec` (its etcd client bounded by `timeout`).
pub fn probe(spec: &crate::config::ClusterSpec, timeout: Duration) -> Result<Probe, String> {
    let etcd = Etcd::for_cluster(spec, timeout).map_err(|e| e.to_string())?;
    let check = Check {
        etcd,
        quota: spec.etcd_quota,
    };
    Ok(Probe::native(
        format!("etcd:{}", spec.scope),
        info(),
        Arc::new(check),
    ))
}

fn info() -> ProbeInfo {
    ProbeInfo::native(
        "etcd-health",
        "availability",
        "the cluster's etcd: database size against the quota, alarms, Raft leader and term, round trip",
        &[
            ("etcd.db.size", "By", "size of etcd's database file"),
            (
                "etcd.db.size_in_use",
                "By",
                "bytes of the database in use (the rest is freed by defragmentation)",
            ),
            (
                "etcd.db.quota",
                "By",
                "the backend quota: at it etcd refuses writes (NOSPACE)",
            ),
            (
                "etcd.db.quota_used",
                "1",
                "database size / quota (warning at 0.8)",
            ),
            ("etcd.alarms", "1", "active alarms (any: critical)"),
            (
                "etcd.alarm.nospace",
                "1",
                "1 while the NOSPACE alarm is raised",
            ),
            (
                "etcd.alarm.corrupt",
                "1",
                "1 while the CORRUPT alarm is raised",
            ),
            ("etcd.raft.has_leader", "1", "1 when etcd has a Raft leader"),
            (
                "etcd.raft.term",
                "1",
                "etcd's Raft term (a rise is a leader election)",
            ),
            ("etcd.revision", "1", "the store's revision"),
            ("etcd.round_trip", "s", "round trip of a status request"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(db: u64, alarms: Value) -> Health {
        let status = json!({"header": {"revision": "42"}, "dbSize": db.to_string(), "dbSizeInUse": "10", "leader": "13668033151171901709", "raftTerm": "3"});
        Health::read(&status, &alarms, 1000, Duration::from_millis(2))
    }

    #[test]
    fn the_default_thresholds_warn_at_80_percent_and_any_alarm_is_critical() {
        let fine = health(500, json!({}));
        assert_eq!(fine.status().0, Status::Ok);
        // etcd's member ids are uint64s, half of them above i64::MAX: the
        // leader here is one (read as 0 it was "no Raft leader").
        assert_eq!(
            (fine.term, fine.leader, fine.revision),
            (3, 13668033151171901709, 42)
        );
        assert_eq!(health(800, json!({})).status().0, Status::Warning);
        let full = health(
            100,
            json!({"alarms": [{"memberID": "18000000000000000000", "alarm": "NOSPACE"}]}),
        );
        let (status, message) = full.status();
        assert_eq!(status, Status::Critical);
        assert!(
            message.contains("NOSPACE") && message.contains("alarm disarm"),
            "{message}"
        );
        let nospace = full
            .measurements()
            .into_iter()
            .find(|m| m.name == "etcd.alarm.nospace")
            .unwrap();
        assert_eq!(nospace.value, 1.0);
        assert_eq!(full.alarms[0].0, "18000000000000000000");
        let corrupt = health(
            100,
            json!({"alarms": [{"memberID": "1", "alarm": "CORRUPT"}]}),
        );
        assert_eq!(corrupt.status().0, Status::Critical);
    }

    #[test]
    fn etcd_own_quota_wins_and_no_leader_is_critical() {
        let status =
            json!({"dbSize": "900", "dbSizeQuota": "10000", "leader": "0", "raftTerm": "5"});
        let h = Health::read(&status, &json!({}), 1000, Duration::ZERO);
        assert_eq!(h.quota, 10000);
        assert_eq!(h.status().0, Status::Critical);
    }
}
