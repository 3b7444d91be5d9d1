//! What one look at a Redis server says, in the HA core's terms
//! ([`Observation`]): pure functions of `INFO replication` and of the
//! term key, so that the mapping is tested on its own.
//!
//! - `in_recovery`: `role:slave`.
//! - `lsn`: the replication offset, bytes of the replication stream: a
//!   primary's `master_repl_offset`; a replica's `slave_repl_offset` (what
//!   it has processed). `replayed` is the replica's same offset.
//! - `streaming_from`: `master_host:master_port` while
//!   `master_link_status:up`.
//! - `timeline`: the **term** of the history the server's data belongs
//!   to. PostgreSQL numbers its timelines; Redis names its histories by a
//!   random replication id (`master_replid`; after a promotion the old one
//!   is kept as `master_replid2`, valid up to `second_repl_offset - 1`),
//!   which cannot be ordered. Offsets compare only within one replication
//!   id. The agent therefore keeps an ordered number *in* the replicated
//!   data: the key [`TERM_KEY`], raised by one by every promotion the
//!   agent makes (the promotion's verifying write). It travels in the
//!   replication stream exactly as the replication id does: a replica
//!   holds a term's number exactly when it holds that term's history (a
//!   partial sync continues the stream, a full sync loads the primary's
//!   data with the key). The core's rule "a candidate is on the last
//!   leader's term, or on the one before at or before the term's switch
//!   point" then says for Redis: a server whose data is that of the last
//!   primary's replication id, or of the id before it up to
//!   `second_repl_offset - 1` (where the new primary's history began). A
//!   former primary that took writes after the switch point holds the
//!   old term with an offset past it: never a candidate, until it
//!   resynchronises from the leader (Redis does that by itself: a partial
//!   sync when its id and offset are in the leader's history, else a full
//!   one). A server that never was a primary's replica has no key: term 1.
//!   A primary whose key was removed (`FLUSHALL`) gets it back with the
//!   number last seen (see [`super::RedisServer`]).

use crate::cluster::local::Observation;
use std::collections::BTreeMap;

/// The key holding the term number, in database 0 of the replicated data.
pub const TERM_KEY: &str = "watchpost:cluster:term";

/// The address a server is made a replica of when there is no leader to
/// follow: a loopback port nothing listens on (port 1), so that it stays
/// a read-only replica whose link is down.
pub const NOWHERE: (&str, u16) = ("127.0.0.1", 1);

/// The replication state one `INFO replication` gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replication {
    pub replica: bool,
    /// `master_host:master_port` (replicas).
    pub upstream: Option<String>,
    pub link_up: bool,
    pub replid: String,
    pub replid2: String,
    /// `second_repl_offset` (-1: none).
    pub second_offset: i64,
    /// Primary: `master_repl_offset`; replica: `slave_repl_offset`.
    pub offset: Option<u64>,
    /// `master_repl_offset` is 0: the server never took nor received a
    /// write since it started with what its files held.
    pub fresh: bool,
}

/// Read `INFO replication`'s fields.
pub fn replication(info: &BTreeMap<String, String>) -> Replication {
    let field = |k: &str| info.get(k).map(String::as_str).unwrap_or_default();
    let replica = field("role") == "slave";
    let offset_key = if replica {
        "slave_repl_offset"
    } else {
        "master_repl_offset"
    };
    let offset = info
        .get(offset_key)
        .or_else(|| info.get("master_repl_offset"))
        .and_then(|v| v.parse::<i64>().ok())
        .map(|v| v.max(0) as u64);
    let upstream = replica.then(|| format!("{}:{}", field("master_host"), field("master_port")));
    Replication {
        replica,
        upstream,
        link_up: replica && field("master_link_status") == "up",
        replid: field("master_replid").into(),
        replid2: field("master_replid2").into(),
        second_offset: field("second_repl_offset").parse().unwrap_or(-1),
        offset,
        fresh: field("master_repl_offset") == "0",
    }
}

/// The term a value of [`TERM_KEY`] names: absent is 1 (no promotion by
/// the agent yet); a value that is not a positive number is unknown.
pub fn term(value: Option<&str>) -> Option<u64> {
    match value {
        None => Some(1),
        Some(text) => text.trim().parse::<u64>().ok().filter(|t| *t >= 1),
    }
}

/// The term a server holds, or why it cannot be told: `value` is the
/// term key as read (`None`: the server would not serve it), `fresh`
/// [`Replication::fresh`], `promoted` the term of its configuration
/// file's [`super::conf::PROMOTED`] line. An absent key is term 1 only on
/// a server that took no write yet (a new one); on data that took writes
/// it was removed (`FLUSHALL`, `FLUSHDB`, an eviction, a client's `DEL`)
/// and says nothing: "cannot tell", never an older term. A server
/// promoted here at term T that holds less than T came back without its
/// data (a restart without persistence): never promoted again as it is.
pub fn term_of(
    value: Option<Option<&str>>,
    fresh: bool,
    promoted: Option<u64>,
) -> Result<u64, String> {
    let held = match value {
        None => return Err(format!("its term ({TERM_KEY}) cannot be read")),
        Some(None) if fresh => 1,
        Some(None) => {
            return Err(format!(
                "its term key {TERM_KEY} is absent from data that took writes (FLUSHALL, FLUSHDB, an eviction or a client's DEL): which history it holds cannot be told"
            ));
        }
        Some(Some(text)) => term(Some(text))
            .ok_or_else(|| format!("its term key {TERM_KEY} holds {text:?}, not a term"))?,
    };
    match promoted {
        Some(was) if held < was => Err(format!(
            "it was promoted here at term {was} and holds term {held}: it came back without its data (restarted without persistence, or from an older snapshot)"
        )),
        _ => Ok(held),
    }
}

/// Fill `seen` (its process state already set) from an answered look
/// whose term is `held` ([`term_of`]).
pub fn observed(seen: &mut Observation, state: &Replication, held: &Result<u64, String>) {
    seen.answering = true;
    seen.in_recovery = state.replica;
    seen.lsn = state.offset;
    seen.replayed = if state.replica { state.offset } else { None };
    seen.replay_paused = false;
    // Redis has no replay of its own log to wait for.
    seen.wal_end_read = true;
    seen.timeline = held.as_ref().ok().copied();
    // A replica whose term cannot be told cannot be placed on the last
    // leader's history (MASTERDOWN, LOADING, no `+get`, the key removed,
    // its data lost): never a candidate, as cannot tell is not "on it";
    // nor promoted again in place by its leader (no timeline to open).
    seen.unfit = match held {
        Err(why) if state.replica => Some(format!(
            "{why}: it cannot be placed on the leader's history"
        )),
        _ => None,
    };
    seen.streaming_from = if state.link_up {
        state.upstream.clone()
    } else {
        None
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::member::{LeaderTimeline, Member, not_a_candidate, off_timeline};

    fn info(text: &str) -> BTreeMap<String, String> {
        crate::redis::reply::info_pairs(text).into_iter().collect()
    }

    const REPLICA: &str = "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6379\r\n\
        master_link_status:up\r\nslave_repl_offset:5000\r\nmaster_replid:aaaa\r\n\
        master_replid2:0000\r\nmaster_repl_offset:5000\r\nsecond_repl_offset:-1\r\n";
    const PRIMARY: &str = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
        master_replid:bbbb\r\nmaster_replid2:aaaa\r\nmaster_repl_offset:7000\r\nsecond_repl_offset:5001\r\n";

    #[test]
    fn info_replication_maps_onto_the_core_s_observation() {
        let state = replication(&info(REPLICA));
        assert!(state.replica && state.link_up);
        assert_eq!(state.offset, Some(5000));
        let mut seen = Observation::default();
        observed(&mut seen, &state, &term_of(Some(Some("3")), false, None));
        assert!(seen.healthy_standby(), "{seen:?}");
        assert_eq!(seen.role(), "standby");
        assert_eq!(seen.timeline, Some(3));
        assert_eq!(seen.replayed, Some(5000));
        assert_eq!(seen.streaming_from.as_deref(), Some("10.0.0.1:6379"));

        let state = replication(&info(PRIMARY));
        assert!(!state.replica);
        assert_eq!(
            (state.replid2.as_str(), state.second_offset),
            ("aaaa", 5001)
        );
        let mut seen = Observation::default();
        observed(&mut seen, &state, &term_of(Some(None), true, None));
        assert!(seen.primary());
        assert_eq!(
            (seen.lsn, seen.timeline, seen.replayed),
            (Some(7000), Some(1), None)
        );

        // A link that is down streams from nobody; a term that cannot be
        // read is unknown, and a nonsense value is unknown too.
        let down = REPLICA.replace("link_status:up", "link_status:down");
        let mut seen = Observation::default();
        observed(
            &mut seen,
            &replication(&info(&down)),
            &term_of(None, false, None),
        );
        assert!(!seen.healthy_standby(), "an unknown term is no candidate");
        assert_eq!((seen.streaming_from, seen.timeline), (None, None));
        assert_eq!(term(Some("x")), None);
        assert_eq!(term(Some("0")), None);
    }

    /// The core's rule, with the Redis mapping: the last leader (term 4)
    /// was promoted at offset 5000 (its `second_repl_offset` 5001). A
    /// former primary of term 3 (the old replication id) that took writes
    /// up to 5200 after the switch point is no candidate, nor a rival; a
    /// replica of the old id that stopped at 5000 still is.
    #[test]
    fn a_replica_on_an_old_replication_id_past_the_switch_point_is_not_a_candidate() {
        let member = |name: &str, text: &str, term_value: &str| {
            let mut seen = Observation::default();
            observed(
                &mut seen,
                &replication(&info(text)),
                &term_of(Some(Some(term_value)), false, None),
            );
            Member {
                name: name.into(),
                role: seen.role().into(),
                healthy: seen.healthy_standby(),
                lsn: seen.lsn,
                timeline: seen.timeline,
                failover_priority: 1,
                ..Member::default()
            }
        };
        let leader = LeaderTimeline::parse("4:5000:n2").unwrap();
        let down = |offset: u64| {
            REPLICA
                .replace("link_status:up", "link_status:down")
                .replace("5000", &offset.to_string())
        };
        let diverged = member("n1", &down(5200), "3");
        let behind = member("n3", &down(5000), "3");
        let current = member("n4", &down(6000), "4");
        assert!(off_timeline(&diverged, Some(&leader)).is_some());
        assert!(off_timeline(&behind, Some(&leader)).is_none());
        assert!(off_timeline(&current, Some(&leader)).is_none());
        // Among those on the history, the most advanced wins; the diverged
        // one, with the highest offset, is filtered out as a rival.
        let rivals: Vec<Member> = [diverged.clone(), behind.clone(), current.clone()]
            .into_iter()
            .filter(|m| off_timeline(m, Some(&leader)).is_none())
            .collect();
        assert!(not_a_candidate(&current, &rivals, None, 1 << 20).is_none());
        assert!(not_a_candidate(&behind, &rivals, None, 1 << 20).is_some());
    }

    /// Issue 28 (5c): FLUSHALL, FLUSHDB, an eviction or a client's DEL
    /// remove the term key; on data that took writes that reads as
    /// "cannot tell" (unfit, no timeline), never as term 1, an older
    /// term. A new server's absent key is term 1. A server promoted here
    /// that came back holding less than its term lost its data.
    #[test]
    fn a_removed_term_key_reads_as_cannot_tell_never_as_an_older_term() {
        let state = replication(&info(REPLICA));
        assert!(!state.fresh);
        let mut seen = Observation::default();
        observed(&mut seen, &state, &term_of(Some(None), state.fresh, None));
        assert_eq!(seen.timeline, None);
        assert!(!seen.healthy_standby(), "{seen:?}");
        let why = seen.unfit.clone().unwrap();
        assert!(why.contains("absent") && why.contains("FLUSHALL"), "{why}");

        let new = REPLICA.replace("master_repl_offset:5000", "master_repl_offset:0");
        let state = replication(&info(&new));
        assert!(state.fresh);
        assert_eq!(term_of(Some(None), state.fresh, None), Ok(1));

        // Promoted here at term 4: back empty (term 1) or from an older
        // snapshot (term 3) is not its term; its own or a later one is.
        let lost = term_of(Some(None), true, Some(4)).unwrap_err();
        assert!(lost.contains("without its data"), "{lost}");
        assert!(term_of(Some(Some("3")), false, Some(4)).is_err());
        assert_eq!(term_of(Some(Some("4")), false, Some(4)), Ok(4));
        assert_eq!(term_of(Some(Some("5")), false, Some(4)), Ok(5));
        // A primary that cannot be placed has no timeline to open a term
        // from, and is not "unfit" (that is for candidates).
        let state = replication(&info(PRIMARY));
        let mut seen = Observation::default();
        observed(&mut seen, &state, &term_of(Some(None), state.fresh, None));
        assert!(seen.primary() && seen.timeline.is_none() && seen.unfit.is_none());
    }
}
