//! What remediation must remember across restarts: when each remediation
//! last fired (its cooldown), the fires inside its rate-limit window, its
//! breaker, operator pauses, the failover block, and which incident each
//! remediation last settled (so a restart neither re-decides an incident
//! nor misses a new one). Kept in
//! `state_dir/remediation.json`, replaced crash-safely on every change and
//! before the audit record of a fire, so a restart never re-fires an action
//! still in cooldown.
//!
//! Dry-run decisions are tracked apart from live ones: guards are evaluated
//! the same way, but a dry run never puts a live action in cooldown.

use crate::store::atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const FORMAT: u32 = 1;

/// Guard state of one remediation (live or dry-run).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Guards {
    #[serde(default, with = "humantime_serde")]
    pub last_fired: Option<SystemTime>,
    /// Fire times inside the rate-limit window (oldest first).
    #[serde(default, with = "times")]
    pub fires: Vec<SystemTime>,
    /// Set while the breaker is open.
    #[serde(default, with = "humantime_serde")]
    pub breaker_open_since: Option<SystemTime>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerData {
    pub format: u32,
    #[serde(default)]
    pub live: BTreeMap<String, Guards>,
    #[serde(default)]
    pub dry_run: BTreeMap<String, Guards>,
    /// Remediations paused by an operator, until when (`None`: until resumed).
    #[serde(default, with = "pauses")]
    pub paused: BTreeMap<String, Option<SystemTime>>,
    /// Failovers are refused until then.
    #[serde(default, with = "humantime_serde")]
    pub failover_blocked_until: Option<SystemTime>,
    /// The incident (the onset of its trigger's level, ms since the Unix
    /// epoch; see `policy::confirm::Onsets`) each remediation last settled
    /// with a fire, a dry run, a breaker or a final skip.
    #[serde(default)]
    pub settled: BTreeMap<String, u64>,
}

/// Key of the pause that covers every remediation.
pub const ALL: &str = "*";

pub struct Ledger {
    path: PathBuf,
    pub data: LedgerData,
}

impl Ledger {
    /// Load `state_dir/remediation.json`; an unreadable file is set aside
    /// (and logged) and the ledger starts empty.
    pub fn open(state_dir: &Path) -> Ledger {
        let path = state_dir.join("remediation.json");
        let data = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<LedgerData>(&bytes) {
                Ok(data) if data.format == FORMAT => data,
                Ok(data) => {
                    set_aside(
                        &path,
                        &format!("it has format {}, this agent reads {FORMAT}", data.format),
                    );
                    LedgerData::default()
                }
                Err(e) => {
                    set_aside(&path, &format!("it is not valid JSON: {e}"));
                    LedgerData::default()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => LedgerData::default(),
            Err(e) => {
                tracing::error!(
                    "cannot read {}: {e}; remediation guards start empty",
                    path.display()
                );
                LedgerData::default()
            }
        };
        Ledger { path, data }
    }

    /// Write the ledger durably.
    pub fn save(&mut self) -> io::Result<()> {
        self.data.format = FORMAT;
        let bytes = serde_json::to_vec_pretty(&self.data).map_err(io::Error::other)?;
        atomic::write(&self.path, &bytes)
    }

    pub fn guards(&mut self, remediation: &str, dry_run: bool) -> &mut Guards {
        let map = if dry_run {
            &mut self.data.dry_run
        } else {
            &mut self.data.live
        };
        map.entry(remediation.to_string()).or_default()
    }

    /// Whether `remediation` is paused at `now` (expired pauses are dropped).
    pub fn paused(&mut self, remediation: &str, now: SystemTime) -> bool {
        self.data
            .paused
            .retain(|_, until| until.is_none_or(|t| t > now));
        self.data.paused.contains_key(remediation) || self.data.paused.contains_key(ALL)
    }
}

impl Guards {
    /// Still in cooldown at `now`?
    pub fn cooling_down(&self, cooldown: Duration, now: SystemTime) -> Option<Duration> {
        let last = self.last_fired?;
        match last.checked_add(cooldown) {
            Some(until) => until.duration_since(now).ok(),
            // Beyond the clock's range: cooling down for as long as it can say.
            None => Some(Duration::MAX),
        }
    }

    /// Forget fires older than the window.
    pub fn prune(&mut self, per: Duration, now: SystemTime) {
        self.fires
            .retain(|at| now.duration_since(*at).map_or(true, |age| age < per));
    }

    /// Record a fire.
    pub fn fired(&mut self, now: SystemTime) {
        self.last_fired = Some(now);
        self.fires.push(now);
    }
}

fn set_aside(path: &Path, problem: &str) {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = path.with_extension(format!("json.corrupt-{stamp}"));
    let outcome =
        std::fs::rename(path, &aside).map(|_| format!("set it aside as {}", aside.display()));
    tracing::error!(
        "remediation state {} is unusable ({problem}); {}; cooldowns and breakers start empty",
        path.display(),
        outcome.unwrap_or_else(|e| format!("could not set it aside ({e})"))
    );
}

/// (De)serialize a list of times as RFC 3339 strings.
mod times {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(times: &[SystemTime], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = times
            .iter()
            .map(|t| humantime::format_rfc3339_millis(*t).to_string())
            .collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SystemTime>, D::Error> {
        let text = Vec::<String>::deserialize(d)?;
        text.iter()
            .map(|t| humantime::parse_rfc3339_weak(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// (De)serialize pause deadlines as RFC 3339 strings (null: indefinite).
mod pauses {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<String, Option<SystemTime>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&String, Option<String>> = map
            .iter()
            .map(|(k, v)| {
                (
                    k,
                    v.map(|t| humantime::format_rfc3339_millis(t).to_string()),
                )
            })
            .collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Option<SystemTime>>, D::Error> {
        let text = BTreeMap::<String, Option<String>>::deserialize(d)?;
        text.into_iter()
            .map(|(k, v)| {
                let t = v
                    .map(|t| humantime::parse_rfc3339_weak(&t).map_err(serde::de::Error::custom))
                    .transpose()?;
                Ok((k, t))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        {
            let mut ledger = Ledger::open(dir.path());
            ledger.guards("restart", false).fired(now);
            ledger.data.paused.insert("other".into(), None);
            ledger.save().unwrap();
        }
        let mut ledger = Ledger::open(dir.path());
        let guards = ledger.guards("restart", false).clone();
        assert!(
            guards
                .cooling_down(Duration::from_secs(60), now + Duration::from_secs(1))
                .is_some()
        );
        assert!(
            guards
                .cooling_down(Duration::from_secs(60), now + Duration::from_secs(61))
                .is_none()
        );
        assert!(ledger.paused("other", now));
        assert!(!ledger.paused("restart", now));
        assert!(
            ledger.guards("restart", true).last_fired.is_none(),
            "dry runs are apart"
        );
    }

    #[test]
    fn the_window_forgets_old_fires() {
        let mut g = Guards::default();
        let t0 = SystemTime::now();
        g.fired(t0);
        g.fired(t0 + Duration::from_secs(30));
        g.prune(Duration::from_secs(60), t0 + Duration::from_secs(70));
        assert_eq!(g.fires.len(), 1);
    }
}
