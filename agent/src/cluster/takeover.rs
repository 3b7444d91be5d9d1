//! The target's side of a planned switchover ([`super::handover`]): it
//! waits, looking often, for the old leader to shut its server down and
//! mark the request `stopped`; once it has replayed up to where the old
//! leader's WAL ends, it takes the key in one transaction (only if the
//! key still names the old leader under the lease it held at its stop,
//! and the request is unchanged), with its term recorded first as any
//! term taken and not opened yet ([`super::pending`]), and promotes.

use super::etcd::Op;
use super::failclosed::GaveUp;
use super::ha::Ha;
use super::handover::{HAND_OVER_WAIT, POLL};
use super::local::Observation;
use super::switchover::{Outcome, Request, Stage};
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use crate::events::Decision;
use crate::pgserver::lsn::lsn_text;
use std::time::Duration;
use tokio::time::Instant;

/// How long the target waits to replay up to the old leader's end.
const CATCH_UP_WAIT: Duration = Duration::from_secs(15);

impl<D: Dcs, S: Server> Ha<D, S> {
    /// The target, before the leader stopped: look often, so that it
    /// takes over as soon as the leader's server is down.
    pub(super) async fn await_stop(&mut self, request: &Request) {
        let started = Instant::now();
        let mut renewed = Instant::now();
        while started.elapsed() < HAND_OVER_WAIT {
            tokio::time::sleep(POLL).await;
            if renewed.elapsed() >= self.local.spec().loop_wait {
                renewed = Instant::now();
                self.renew().await;
            }
            if let Ok(holder) = self.etcd.get(&self.keys.leader).await
                && holder.is_none_or(|kv| kv.value != request.from)
            {
                return; // the old leader is gone: the loop decides again
            }
            let Ok(found) = self.etcd.get(&self.keys.switchover).await else {
                continue;
            };
            let Some(kv) = found else { return };
            match serde_json::from_str::<Request>(&kv.value) {
                Ok(next) if next.id == request.id && next.stage == Stage::Stopped => {
                    self.take_over(next, kv.value).await;
                    return;
                }
                Ok(next) if next.id == request.id => {}
                _ => return,
            }
        }
    }

    /// The target's side, once the old leader is shut down.
    pub(super) async fn take_over(&mut self, request: Request, raw: String) {
        let Some(end) = request
            .reach
            .or_else(|| request.lsn.and_then(|past| past.checked_add(1)))
        else {
            return;
        };
        // The lease the old leader held the key under when it stopped: as
        // it wrote it, or (a request of an older agent) read back while the
        // key has not changed since the stop.
        let held = match request.leader_lease {
            Some(lease) => lease,
            None => {
                match super::switchover::lease_at_stop(&self.etcd, &self.keys, &request, &raw).await
                {
                    Ok(lease) => lease,
                    Err(why) => {
                        self.step(format!("switchover: not taking over: {why}"));
                        return;
                    }
                }
            }
        };
        let budget = self.local.spec().loop_wait.max(Duration::from_millis(500));
        let started = Instant::now();
        let mut renewed = Instant::now();
        let mut seen = self.local.observe(budget).await;
        while seen.replayed.is_none_or(|r| r < end) {
            if started.elapsed() > CATCH_UP_WAIT {
                self.step(format!(
                    "switchover: not taking over: replayed only up to {} in {} s, not up to the old leader's end {}",
                    seen.replayed.map_or("?".into(), lsn_text), CATCH_UP_WAIT.as_secs(), lsn_text(end)
                ));
                return;
            }
            tokio::time::sleep(POLL).await;
            if renewed.elapsed() >= self.local.spec().loop_wait {
                renewed = Instant::now();
                self.renew().await;
            }
            seen = self.local.observe(budget).await;
        }
        if let Some(why) = unfit_to_take_over(&seen, &request, self.local.term_is_replicated()) {
            self.step(format!("switchover: not taking over: {why}"));
            return;
        }
        let Some(lease) = self.lease else { return };
        // The term's timeline, written with the key as in an election:
        // the next one after the old leader's, begun where this standby
        // replayed to (the election's reference from now on; put back if
        // the promotion fails).
        let term = super::member::LeaderTimeline {
            timeline: request.timeline.or(seen.timeline).unwrap_or(1) + 1,
            switch: seen.lsn.or(seen.replayed),
            by: Some(self.local.spec().name.clone()),
        };
        if let Err(e) = self.begin_term(Some(term.clone())) {
            self.step(format!("switchover: not taking over: {e}"));
            return;
        }
        let me = self.local.spec().name.clone();
        let members = self.view.lock().members.clone();
        // Compared: the request, the key's holder and the lease it held
        // the key under when it stopped (a key taken back since by a
        // restarted agent of the old leader, under a new lease, fails it).
        let took = self
            .etcd
            .txn_held(
                &[
                    (&self.keys.leader, Some(&request.from)),
                    (&self.keys.switchover, Some(&raw)),
                    // The term this take was decided on is still the last.
                    (&self.keys.timeline, self.timeline_read.as_deref()),
                ],
                (&self.keys.leader, held),
                &[
                    Op::Put {
                        key: self.keys.leader.clone(),
                        value: me.clone(),
                        lease,
                    },
                    Op::Delete {
                        key: self.keys.switchover.clone(),
                    },
                    self.opening_sync(&members),
                    Op::Put {
                        key: self.keys.timeline.clone(),
                        value: term.text(),
                        lease: 0,
                    },
                ],
            )
            .await;
        if self.won_key(took.clone(), lease).await != super::owner::Won::Yes {
            self.step(format!(
                "switchover: not taking over: the request was withdrawn or the key moved ({took:?})"
            ));
            return;
        }
        self.take_office();
        self.record(
            Decision::Acquired,
            format!(
                "switchover: replayed up to {} (`{}`'s end {} on timeline {} reached): took the leader key",
                seen.replayed.map_or("?".into(), lsn_text), request.from, lsn_text(end), request.timeline.unwrap_or(0)
            ),
        );
        let ready = match self.fence_ready() {
            Ok(()) => self.prepare_synchronous(&members).await,
            Err(e) => Err(e),
        };
        let promoted = match ready {
            Ok(()) => self.promote().await,
            Err(e) => Err(format!("not promoted: {e}")),
        };
        let (ok, message) = match promoted {
            Ok(()) => {
                self.settle_term();
                self.keep_standby_marked();
                self.record(
                    Decision::Promoted,
                    "switchover: promoted the local standby; it accepts writes".into(),
                );
                (true, format!("`{me}` leads; `{}` follows it", request.from))
            }
            // As after a failed election ([`Ha::give_up_key`]).
            Err(e) => {
                let why = format!("switchover: promotion failed ({e})");
                let message = match self.give_up_key(&why).await {
                    GaveUp::Released => format!(
                        "`{me}` took the key but its promotion failed ({e}) before it was asked: it released the key, its server still a standby"
                    ),
                    GaveUp::Stopped => format!(
                        "`{me}` took the key but its promotion failed ({e}); it stopped its server and released the key"
                    ),
                    GaveUp::Ended => format!(
                        "`{me}` took the key but stopped leading while promoting ({e}): its lease lost or its fence gone, its server stopped by the lease's path"
                    ),
                    GaveUp::Kept(stop) => format!(
                        "`{me}` took the key but its promotion failed ({e}) and its server could not be stopped ({stop}): it keeps the key"
                    ),
                };
                (false, message)
            }
        };
        let outcome = serde_json::to_string(&Outcome {
            id: request.id.clone(),
            ok,
            message: message.clone(),
        })
        .unwrap_or_default();
        let _ = self
            .etcd
            .put(&self.keys.switchover_result, &outcome, 0)
            .await;
        self.record(
            if ok {
                Decision::Succeeded
            } else {
                Decision::Failed
            },
            format!("switchover to `{me}`: {message}"),
        );
    }
}

/// Why the target may not take the key from the look that saw its replay
/// reach the old leader's end, if it may not: it must still be a standby,
/// fit to lead by its engine's own findings (`unfit`: MariaDB's errant
/// GTIDs or a stopped SQL thread can show a position it did not get from
/// the old leader), with a readable term on no newer timeline than the
/// old leader's end (a server promoted meanwhile, by hand, has another
/// history). Where the term is replicated data (`replicated`: Redis,
/// MariaDB), it must be exactly the old leader's: a replica that came
/// back empty (Redis reports offset 1 before it has a primary) holds the
/// first term, not the old leader's.
pub(super) fn unfit_to_take_over(
    seen: &Observation,
    request: &Request,
    replicated: bool,
) -> Option<String> {
    let from = &request.from;
    if !seen.in_recovery {
        return Some(format!(
            "the local server is {}, not a standby of `{from}`",
            seen.role()
        ));
    }
    if let Some(why) = &seen.unfit {
        return Some(format!("the local server may not lead: {why}"));
    }
    let Some(mine) = seen.timeline else {
        return Some("the local server's timeline (term) cannot be read".into());
    };
    match request.timeline {
        Some(theirs) if mine > theirs => Some(format!(
            "the local server is on timeline {mine}, newer than `{from}`'s {theirs}"
        )),
        Some(theirs) if replicated && mine != theirs => Some(format!(
            "the local server holds term {mine}, not `{from}`'s term {theirs}"
        )),
        _ => None,
    }
}
