//! How a MariaDB server's GTIDs map onto what the HA core compares
//! (positions, timelines, candidacy), as pure functions so that the
//! mapping is tested on its own. The mapping is described in the
//! module's documentation ([`super`]).

use crate::remediate::mysql_failover::gtid::{Errant, Position, ReplicaGtids, errant};
use crate::remediate::mysql_failover::server::NOT_IN_PRIMARY_BINLOG;

/// The term a server holds when it has no `watchpost.cluster_term` row
/// yet (a cluster that never elected a leader).
pub const FIRST_TERM: u64 = 1;

/// A replica's state, as `SHOW SLAVE STATUS` says it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replica {
    /// `Yes`, `No` or `Connecting`.
    pub io_running: String,
    pub sql_running: String,
    pub last_io_errno: u32,
    pub last_io_error: String,
    pub last_sql_errno: u32,
    pub last_sql_error: String,
    /// `Master_Host` and `Master_Port`.
    pub host: String,
    pub port: u64,
}

/// What one look at a MariaDB server read, before the mapping.
#[derive(Clone, Debug, Default)]
pub struct Reading {
    /// `@@read_only`: on for every member but the leader's.
    pub read_only: bool,
    /// `@@gtid_domain_id`: the cluster's replication domain (every member
    /// uses the same one).
    pub domain: u32,
    /// Its GTID variables (`received` from the IO thread's `Gtid_IO_Pos`).
    pub gtids: ReplicaGtids,
    /// Its replication, if it is configured (`SHOW SLAVE STATUS` has a row).
    pub replica: Option<Replica>,
    /// Its `watchpost.cluster_term` (`None`: it could not be read).
    pub term: Option<u64>,
}

/// The core's view of one reading ([`super::super::local::Observation`]'s
/// fields).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mapped {
    pub in_recovery: bool,
    /// The sequence number of its last transaction in the domain (0:
    /// none yet).
    pub lsn: u64,
    /// What it applied in the domain.
    pub replayed: u64,
    /// Its SQL thread does not run while replication is configured.
    pub replay_paused: bool,
    pub timeline: Option<u64>,
    /// `Master_Host:Master_Port` while the IO thread runs.
    pub streaming_from: Option<String>,
    /// Why it may not lead although it answers as a replica.
    pub unfit: Option<String>,
}

/// The sequence number of `position`'s last GTID in `domain`.
pub fn sequence(position: &Position, domain: u32) -> Option<u64> {
    position.0.get(&domain).map(|(_, sequence)| *sequence)
}

/// Map one reading (see the module documentation of [`super`]).
pub fn map(reading: &Reading) -> Mapped {
    let gtids = &reading.gtids;
    let domain = reading.domain;
    let written = sequence(&gtids.binlog, domain);
    let applied = sequence(&gtids.applied, domain);
    let received = sequence(&gtids.received, domain);
    if !reading.read_only {
        let lsn = written.unwrap_or(0).max(applied.unwrap_or(0));
        return Mapped {
            in_recovery: false,
            lsn,
            replayed: lsn,
            timeline: reading.term,
            ..Mapped::default()
        };
    }
    let lsn = [written, applied, received]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
    let replayed = written.max(applied).unwrap_or(0);
    let replica = reading.replica.as_ref();
    Mapped {
        in_recovery: true,
        lsn,
        replayed,
        replay_paused: replica.is_some_and(|r| r.sql_running != "Yes"),
        timeline: reading.term,
        streaming_from: replica
            .filter(|r| r.io_running == "Yes")
            .map(|r| format!("{}:{}", r.host, r.port)),
        unfit: unfit(reading),
    }
}

/// Why a read-only server may not become the leader, if it may not.
fn unfit(reading: &Reading) -> Option<String> {
    let gtids = &reading.gtids;
    if reading.term.is_none() {
        // Cannot tell is not "on the leader's history".
        return Some("its term (watchpost.cluster_term) cannot be read: it cannot be placed on the leader's history".into());
    }
    if !gtids.log_bin {
        return Some("its binary log is off (log_bin = OFF): its own writes cannot be seen, and its replicas could not follow it; turn on log_bin and log_slave_updates".into());
    }
    if let Some(why) = settings_unfit(reading) {
        return Some(why);
    }
    // Not replicating (a new member, or a former primary whose
    // replication was reset): its own GTIDs are its history as a
    // primary, which the term rule (its timeline and position against
    // the last leader's switch point) judges.
    let replica = reading.replica.as_ref()?;
    if replica.last_io_errno == SAME_SERVER_ID {
        return Some(format!(
            "its server_id {} is its upstream's (error {SAME_SERVER_ID}: {}): every member needs its own server_id",
            gtids.server_id, replica.last_io_error
        ));
    }
    if replica.last_io_errno == NOT_IN_PRIMARY_BINLOG {
        return Some(format!(
            "rebuild required: its upstream refused it (error {NOT_IN_PRIMARY_BINLOG}: {}): it holds transactions the leader lacks (its gtid_binlog_pos {})",
            replica.last_io_error, gtids.binlog
        ));
    }
    if replica.last_sql_errno != 0 {
        return Some(format!(
            "its SQL thread stopped on error {}: {}",
            replica.last_sql_errno, replica.last_sql_error
        ));
    }
    match errant(gtids) {
        Errant::Clean => None,
        Errant::Found(list) => Some(format!(
            "errant GTIDs {} (written on this replica, never sent by a primary): leading would hand them to every member; remove them or rebuild it",
            list.join(",")
        )),
        Errant::CannotTell(why) => {
            Some(format!("whether it has errant GTIDs cannot be told: {why}"))
        }
    }
}

/// The replica's IO thread stopped because its upstream has its
/// `server_id` (ER_SLAVE_FATAL_ERROR, "equal server ids").
pub const SAME_SERVER_ID: u32 = 1593;

/// A setting the cluster mode needs (checked in the option file at start)
/// that the running server does not have: `gtid_strict_mode` and
/// `log_slave_updates` on, and GTIDs of its own replication domain only
/// (every member uses the same `gtid_domain_id`: positions of two domains
/// do not order members).
fn settings_unfit(reading: &Reading) -> Option<String> {
    let gtids = &reading.gtids;
    if !gtids.strict_mode {
        return Some("gtid_strict_mode is OFF: errant or out-of-order GTIDs would be applied, not refused; set gtid_strict_mode = ON in its option file and restart it".into());
    }
    if !gtids.log_replica_updates {
        return Some("log_slave_updates is OFF: what it applies is not in its binary log, so the others could not follow it once it leads; set log_slave_updates = ON in its option file and restart it".into());
    }
    let mut foreign: Vec<u32> = [&gtids.binlog, &gtids.applied, &gtids.received]
        .into_iter()
        .flat_map(|p| p.0.keys().copied())
        .filter(|d| *d != reading.domain)
        .collect();
    foreign.sort_unstable();
    foreign.dedup();
    (!foreign.is_empty()).then(|| format!(
        "it holds GTIDs of replication domain(s) {foreign:?} while its gtid_domain_id is {}: every member must use the same gtid_domain_id (positions in two domains do not order members)",
        reading.domain
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::member::{LeaderTimeline, Member, off_timeline};
    use crate::remediate::mysql_failover::gtid::parse_list;

    fn p(text: &str) -> Position {
        Position::parse(text).unwrap()
    }

    /// Server id 2, domain 0, strict mode and log_slave_updates on.
    fn reading(read_only: bool, binlog: &str, state: &str, applied: &str) -> Reading {
        Reading {
            read_only,
            domain: 0,
            gtids: ReplicaGtids {
                server_id: 2,
                binlog: p(binlog),
                binlog_state: parse_list(state).unwrap(),
                applied: p(applied),
                received: Position::default(),
                strict_mode: true,
                log_replica_updates: true,
                log_bin: true,
            },
            replica: None,
            term: Some(FIRST_TERM),
        }
    }

    fn streaming() -> Replica {
        Replica {
            io_running: "Yes".into(),
            sql_running: "Yes".into(),
            host: "10.0.0.1".into(),
            port: 3306,
            ..Replica::default()
        }
    }

    fn member(name: &str, mapped: &Mapped) -> Member {
        Member {
            name: name.into(),
            role: if mapped.in_recovery {
                "standby"
            } else {
                "primary"
            }
            .into(),
            healthy: mapped.in_recovery && !mapped.replay_paused && mapped.unfit.is_none(),
            lsn: Some(mapped.lsn),
            timeline: mapped.timeline,
            ..Member::default()
        }
    }

    #[test]
    fn a_replica_whose_term_cannot_be_read_is_no_candidate() {
        let mut replica = reading(true, "0-1-10", "0-1-10", "0-1-10");
        replica.replica = Some(streaming());
        assert_eq!(map(&replica).unfit, None);
        replica.term = None;
        let mapped = map(&replica);
        assert!(
            mapped.unfit.as_deref().is_some_and(|u| u.contains("term")),
            "{:?}",
            mapped.unfit
        );
        assert!(!member("m2", &mapped).healthy);
    }

    #[test]
    fn a_primary_s_position_is_its_last_gtid_in_the_cluster_s_domain() {
        let mut primary = reading(false, "0-2-42,7-9-900", "0-1-10,0-2-42,7-9-900", "0-1-10");
        primary.term = Some(3);
        let mapped = map(&primary);
        assert!(!mapped.in_recovery);
        assert_eq!((mapped.lsn, mapped.timeline), (42, Some(3)));
        assert_eq!(mapped.unfit, None);
        // Another domain's numbers never count.
        primary.domain = 7;
        assert_eq!(map(&primary).lsn, 900);
        // A new server: no GTID yet.
        assert_eq!(map(&reading(false, "", "", "")).lsn, 0);
    }

    #[test]
    fn a_replica_s_position_counts_what_it_received_and_streams_while_its_io_thread_runs() {
        let mut replica = reading(true, "0-1-40", "0-1-40", "0-1-40");
        replica.gtids.received = p("0-1-45");
        replica.replica = Some(streaming());
        let mapped = map(&replica);
        assert!(mapped.in_recovery);
        assert_eq!((mapped.lsn, mapped.replayed), (45, 40));
        assert_eq!(mapped.streaming_from.as_deref(), Some("10.0.0.1:3306"));
        assert_eq!(mapped.unfit, None);
        assert!(!mapped.replay_paused);
        // The primary is gone: the IO thread reconnects; still a candidate.
        replica.replica.as_mut().unwrap().io_running = "Connecting".into();
        let mapped = map(&replica);
        assert_eq!(mapped.streaming_from, None);
        assert_eq!(mapped.unfit, None);
        // Its SQL thread stopped on a duplicate key: not a candidate.
        let status = replica.replica.as_mut().unwrap();
        status.sql_running = "No".into();
        status.last_sql_errno = 1062;
        status.last_sql_error = "Duplicate entry '1' for key 'PRIMARY'".into();
        let mapped = map(&replica);
        assert!(mapped.replay_paused);
        assert!(mapped.unfit.unwrap().contains("1062"));
    }

    #[test]
    fn a_replica_with_errant_gtids_is_never_a_candidate() {
        // A write on the replica (its own server id 2) after what it
        // applied from the primary (server 1).
        let mut replica = reading(true, "0-2-41", "0-1-40,0-2-41", "0-1-40");
        replica.gtids.received = p("0-1-40");
        replica.replica = Some(streaming());
        let mapped = map(&replica);
        let why = mapped.unfit.clone().expect("errant");
        assert!(why.contains("errant GTIDs 0-2-41"), "{why}");
        // It looks the most advanced (41 > 40), yet is no candidate and no
        // rival of one.
        let errant = member("n2", &mapped);
        assert!(!errant.healthy);
        let clean = member(
            "n3",
            &map(&{
                let mut r = reading(true, "0-1-40", "0-1-40", "0-1-40");
                r.gtids.server_id = 3;
                r.replica = Some(streaming());
                r
            }),
        );
        assert!(clean.healthy);
        let others = [errant.clone(), clean.clone()];
        assert_eq!(
            crate::cluster::member::not_a_candidate(&clean, &others, Some(40), 0),
            None
        );
        assert!(crate::cluster::member::not_a_candidate(&errant, &others, Some(40), 0).is_some());
    }

    #[test]
    fn a_former_primary_with_transactions_the_leader_lacks_is_off_its_history() {
        // n1 led term 2 and wrote up to 0-1-50; n2 was elected at 45 and
        // opened term 3 there (the key `timeline` says 3:45:n2).
        let leader = LeaderTimeline::parse("3:45:n2").unwrap();
        let mut former = reading(true, "0-1-50", "0-1-50", "0-1-30");
        former.gtids.server_id = 1;
        former.term = Some(2);
        let mapped = map(&former);
        assert_eq!(mapped.lsn, 50);
        let why = off_timeline(&member("n1", &mapped), Some(&leader));
        assert!(why.is_some_and(|w| w.contains("timeline 2 at 50")));
        // The same former primary without the extra writes (it stopped at
        // 45, all of which n2 has) is on the leader's history.
        let mut clean = former.clone();
        clean.gtids.binlog = p("0-1-45");
        clean.gtids.binlog_state = parse_list("0-1-45").unwrap();
        assert_eq!(
            off_timeline(&member("n1", &map(&clean)), Some(&leader)),
            None
        );
        // A replica that already applied the leader's term row.
        let mut follower = reading(true, "0-2-60", "0-1-45,0-2-60", "0-2-60");
        follower.gtids.server_id = 3;
        follower.term = Some(3);
        assert_eq!(
            off_timeline(&member("n3", &map(&follower)), Some(&leader)),
            None
        );
    }

    #[test]
    fn a_former_primary_refused_by_the_leader_needs_a_rebuild() {
        let mut former = reading(true, "0-1-50", "0-1-50", "0-1-50");
        former.gtids.server_id = 1;
        former.replica = Some(Replica {
            io_running: "No".into(),
            sql_running: "Yes".into(),
            last_io_errno: 1236,
            last_io_error: "Error: connecting slave requested to start from GTID 0-1-50, which is not in the master's binlog".into(),
            host: "10.0.0.2".into(),
            port: 3306,
            ..Replica::default()
        });
        let why = map(&former).unfit.expect("rebuild required");
        assert!(why.starts_with("rebuild required"), "{why}");
        assert!(why.contains("0-1-50"), "{why}");
    }

    #[test]
    fn without_a_binary_log_or_strict_mode_a_replica_is_not_trusted() {
        let mut replica = reading(true, "", "", "0-1-8");
        replica.replica = Some(streaming());
        replica.gtids.log_bin = false;
        assert!(map(&replica).unfit.unwrap().contains("log_bin"));
        // Its own old GTID passed by replicated ones, strict mode off:
        // no candidate, the setting named.
        let mut lax = reading(true, "0-1-8", "0-2-7,0-1-8", "0-1-8");
        lax.replica = Some(streaming());
        lax.gtids.strict_mode = false;
        assert!(map(&lax).unfit.unwrap().contains("gtid_strict_mode is OFF"));
    }

    #[test]
    fn a_replica_without_the_cluster_s_settings_is_never_a_candidate() {
        let fit = || {
            let mut r = reading(true, "0-1-40", "0-1-40", "0-1-40");
            r.replica = Some(streaming());
            r
        };
        assert_eq!(map(&fit()).unfit, None);
        type Change = fn(&mut Reading);
        let table: [(Change, &str); 5] = [
            (|r| r.gtids.strict_mode = false, "gtid_strict_mode"),
            (|r| r.gtids.log_replica_updates = false, "log_slave_updates"),
            // Its own domain differs from the leader's it replicates.
            (|r| r.domain = 1, "gtid_domain_id is 1"),
            // Another domain beside the cluster's.
            (|r| r.gtids.applied = p("0-1-40,5-3-2"), "domain(s) [5]"),
            (
                |r| {
                    let status = r.replica.as_mut().unwrap();
                    status.io_running = "No".into();
                    status.last_io_errno = SAME_SERVER_ID;
                    status.last_io_error = "equal MariaDB server ids".into();
                },
                "server_id 2",
            ),
        ];
        for (change, named) in table {
            let mut r = fit();
            change(&mut r);
            let mapped = map(&r);
            let why = mapped.unfit.clone().unwrap_or_default();
            assert!(why.contains(named), "{named:?} not in {why:?}");
            assert!(!member("n2", &mapped).healthy);
        }
    }
}
