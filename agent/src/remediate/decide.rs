//! Whether a triggered remediation acts, and if not, why. The checks, in
//! order: the probe is flapping; an `unless` condition holds; an operator
//! paused it; its previous action is still running; failovers are blocked;
//! it is in cooldown; its breaker is open or its rate limit is reached.
//! Pure logic on the ledger, so that every outcome is testable and recorded.
//!
//! The first four are *passing* conditions ([`SkipReason::is_transient`]):
//! the trigger is reconsidered when they clear while it still holds
//! ("restart unless the disk is full" restarts once the disk is freed).
//! The others settle the trigger for its incident.

use super::ledger::Ledger;
use crate::config::{Action, Remediation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// Why a trigger was not acted on (the audit record's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    Flapping,
    Suppressed,
    Paused,
    Running,
    Blocked,
    Cooldown,
    Breaker,
    /// The probe's state no longer matched when the decision was made.
    Stale,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Flapping => "flapping",
            SkipReason::Suppressed => "suppressed",
            SkipReason::Paused => "paused",
            SkipReason::Running => "running",
            SkipReason::Blocked => "blocked",
            SkipReason::Cooldown => "cooldown",
            SkipReason::Breaker => "breaker",
            SkipReason::Stale => "stale",
        }
    }

    /// A condition that passes: the trigger is reconsidered when it clears.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            SkipReason::Flapping
                | SkipReason::Suppressed
                | SkipReason::Paused
                | SkipReason::Running
        )
    }
}

/// The outcome of a decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Run the action.
    Fire,
    /// Dry run: record that it would run.
    WouldFire,
    /// Do not act: the reason and a sentence.
    Skip { reason: SkipReason, why: String },
    /// The rate limit was just exceeded: the breaker opens now (an alert goes out).
    BreakerOpens { why: String },
}

/// What the decision needs besides the ledger.
pub struct Situation<'a> {
    pub remediation: &'a Remediation,
    pub now: SystemTime,
    pub dry_run: bool,
    pub flapping: bool,
    /// The first `unless` condition that holds, if any, described.
    pub suppressed_by: Option<String>,
    pub running: bool,
}

fn human(d: Duration) -> String {
    crate::config::units::format_duration(Duration::from_secs(d.as_secs().max(1)))
}

/// Decide, and record a fire (or a breaker opening) in the ledger.
pub fn decide(ledger: &mut Ledger, s: &Situation) -> Verdict {
    let r = s.remediation;
    if s.flapping {
        return Verdict::Skip {
            reason: SkipReason::Flapping,
            why: format!("probe {:?} is flapping", r.on.probe),
        };
    }
    if let Some(condition) = &s.suppressed_by {
        return Verdict::Skip {
            reason: SkipReason::Suppressed,
            why: format!("suppressed while {condition}"),
        };
    }
    if ledger.paused(&r.name, s.now) {
        return Verdict::Skip {
            reason: SkipReason::Paused,
            why: "paused by an operator".into(),
        };
    }
    if s.running {
        return Verdict::Skip {
            reason: SkipReason::Running,
            why: "the previous action is still running".into(),
        };
    }
    if matches!(r.action, Action::Failover(_))
        && !s.dry_run
        && let Some(until) = ledger.data.failover_blocked_until
        && let Ok(left) = until.duration_since(s.now)
    {
        return Verdict::Skip {
            reason: SkipReason::Blocked,
            why: format!(
                "failovers are blocked for {} more after the last one (`watchpost reset {}` lifts it)",
                human(left),
                r.name
            ),
        };
    }
    let guards = ledger.guards(&r.name, s.dry_run);
    if let Some(left) = guards.cooling_down(r.cooldown, s.now) {
        return Verdict::Skip {
            reason: SkipReason::Cooldown,
            why: format!("in cooldown for {} more", human(left)),
        };
    }
    if let Some(limit) = r.limit {
        guards.prune(limit.per, s.now);
        if let Some(since) = guards.breaker_open_since {
            if s.now
                .duration_since(since)
                .map_or(true, |open| open < limit.per)
            {
                return Verdict::Skip {
                    reason: SkipReason::Breaker,
                    why: format!(
                        "the breaker is open: more than {} actions within {} (`watchpost reset {}` closes it)",
                        limit.count,
                        human(limit.per),
                        r.name
                    ),
                };
            }
            guards.breaker_open_since = None;
        }
        if guards.fires.len() >= limit.count as usize {
            guards.breaker_open_since = Some(s.now);
            return Verdict::BreakerOpens {
                why: format!(
                    "{} actions within {}: the breaker opens and further triggers are only recorded",
                    guards.fires.len(),
                    human(limit.per)
                ),
            };
        }
    }
    guards.fired(s.now);
    if s.dry_run {
        Verdict::WouldFire
    } else {
        Verdict::Fire
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExecAction, Place, RateLimit, Trigger};
    use crate::report::Status;

    fn remediation(cooldown: u64, limit: Option<(u32, u64)>) -> Remediation {
        Remediation {
            name: "r".into(),
            on: Trigger {
                probe: "p".into(),
                status: Status::Critical,
                measurement: None,
            },
            unless: vec![],
            action: Action::Exec(ExecAction {
                argv: vec!["true".into()],
                timeout: Duration::from_secs(1),
                env: Default::default(),
            }),
            cooldown: Duration::from_secs(cooldown),
            limit: limit.map(|(count, per)| RateLimit {
                count,
                per: Duration::from_secs(per),
            }),
            verify: None,
            dry_run: false,
            alert: None,
            place: Place::default(),
        }
    }

    fn situation(r: &Remediation, now: SystemTime) -> Situation<'_> {
        Situation {
            remediation: r,
            now,
            dry_run: false,
            flapping: false,
            suppressed_by: None,
            running: false,
        }
    }

    #[test]
    fn cooldown_skips_until_it_passes() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path());
        let r = remediation(60, None);
        let t0 = SystemTime::now();
        assert_eq!(decide(&mut ledger, &situation(&r, t0)), Verdict::Fire);
        assert!(matches!(
            decide(&mut ledger, &situation(&r, t0 + Duration::from_secs(30))),
            Verdict::Skip {
                reason: SkipReason::Cooldown,
                ..
            }
        ));
        assert_eq!(
            decide(&mut ledger, &situation(&r, t0 + Duration::from_secs(61))),
            Verdict::Fire
        );
    }

    #[test]
    fn the_breaker_opens_after_the_limit_and_stays_open_through_recoveries() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path());
        let r = remediation(0, Some((3, 3600)));
        let t0 = SystemTime::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for i in 0..3 {
            assert_eq!(
                decide(&mut ledger, &situation(&r, at(i * 10))),
                Verdict::Fire
            );
        }
        assert!(matches!(
            decide(&mut ledger, &situation(&r, at(40))),
            Verdict::BreakerOpens { .. }
        ));
        // However often the probe recovers and fails again, nothing runs
        // until the window has passed.
        for s in [50, 600, 3000] {
            assert!(matches!(
                decide(&mut ledger, &situation(&r, at(s))),
                Verdict::Skip {
                    reason: SkipReason::Breaker,
                    ..
                }
            ));
        }
        assert_eq!(decide(&mut ledger, &situation(&r, at(3700))), Verdict::Fire);
    }

    #[test]
    fn flapping_and_pauses_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path());
        let r = remediation(0, None);
        let now = SystemTime::now();
        let mut s = situation(&r, now);
        s.flapping = true;
        assert!(matches!(
            decide(&mut ledger, &s),
            Verdict::Skip {
                reason: SkipReason::Flapping,
                ..
            }
        ));
        ledger
            .data
            .paused
            .insert("r".into(), Some(now + Duration::from_secs(10)));
        assert!(matches!(
            decide(&mut ledger, &situation(&r, now)),
            Verdict::Skip {
                reason: SkipReason::Paused,
                ..
            }
        ));
        assert_eq!(
            decide(&mut ledger, &situation(&r, now + Duration::from_secs(11))),
            Verdict::Fire
        );
        assert!(ledger.guards("r", false).last_fired.is_some());
    }

    #[test]
    fn dry_runs_do_not_start_live_cooldowns() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path());
        let r = remediation(600, None);
        let now = SystemTime::now();
        let mut s = situation(&r, now);
        s.dry_run = true;
        assert_eq!(decide(&mut ledger, &s), Verdict::WouldFire);
        assert!(matches!(
            decide(&mut ledger, &s),
            Verdict::Skip {
                reason: SkipReason::Cooldown,
                ..
            }
        ));
        assert_eq!(decide(&mut ledger, &situation(&r, now)), Verdict::Fire);
    }
}
