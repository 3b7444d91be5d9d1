//! MariaDB GTID positions (`0-1-42,1-2-7`: per replication domain, the
//! last transaction's server id and sequence number) and the comparison
//! the failover's errant-transaction check makes on them.

use std::collections::BTreeMap;

/// One domain's last GTID: (server id, sequence number).
pub type Last = (u32, u64);

/// A GTID position: the last GTID of each replication domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position(pub BTreeMap<u32, Last>);

/// One GTID: (domain, server id, sequence number).
pub type Gtid = (u32, u32, u64);

/// Read a GTID list (`0-1-42,1-2-7`; `gtid_binlog_state` may name a
/// domain once per server). Errors name the part that is not
/// `DOMAIN-SERVER-SEQUENCE`.
pub fn parse_list(text: &str) -> Result<Vec<Gtid>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let mut fields = part.split('-');
            let parsed = (|| {
                let domain = fields.next()?.parse().ok()?;
                let server = fields.next()?.parse().ok()?;
                let sequence = fields.next()?.parse().ok()?;
                fields
                    .next()
                    .is_none()
                    .then_some((domain, server, sequence))
            })();
            parsed.ok_or_else(|| format!("`{part}` is not a MariaDB GTID (DOMAIN-SERVER-SEQUENCE)"))
        })
        .collect()
}

fn show((domain, server, sequence): Gtid) -> String {
    format!("{domain}-{server}-{sequence}")
}

impl Position {
    /// Read `0-1-42,1-2-7` (empty: no GTID yet). Errors name the part
    /// that is not `DOMAIN-SERVER-SEQUENCE`.
    pub fn parse(text: &str) -> Result<Position, String> {
        let map = parse_list(text)?
            .into_iter()
            .map(|(domain, server, sequence)| (domain, (server, sequence)))
            .collect();
        Ok(Position(map))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(domain, (server, sequence))| show((*domain, *server, *sequence)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The last GTIDs of `position` that go beyond every one of `known` in
/// their domain: not equal to the domain's GTID there, and at or past its
/// sequence number (a domain none of them has: all of it). The old
/// primary's transactions its successor lacks, at a rejoin.
pub fn beyond(position: &Position, known: &[&Position]) -> Vec<String> {
    position
        .0
        .iter()
        .filter(|(domain, last)| {
            let there: Vec<&Last> = known.iter().filter_map(|k| k.0.get(domain)).collect();
            !there.contains(last) && there.iter().all(|(_, seq)| last.1 >= *seq)
        })
        .map(|(domain, (server, sequence))| show((*domain, *server, *sequence)))
        .collect()
}

/// What a replica's GTID variables say, as the errant check reads them.
#[derive(Clone, Debug, Default)]
pub struct ReplicaGtids {
    /// `@@server_id`: the id its own writes carry.
    pub server_id: u32,
    /// `gtid_binlog_pos`: each domain's last GTID in its binary log.
    pub binlog: Position,
    /// `gtid_binlog_state`: the last GTID of each (domain, server) pair in
    /// its binary log, so a write of its own stays visible after other
    /// servers' transactions followed it in the same domain.
    pub binlog_state: Vec<Gtid>,
    /// `gtid_slave_pos`: what it applied from its primary.
    pub applied: Position,
    /// `Gtid_IO_Pos`: what its IO thread received.
    pub received: Position,
    /// `gtid_strict_mode` and `log_slave_updates`: with both on, the
    /// server logs what it applies and stops replicating (error 1950) on
    /// a transaction not above the last one in its binary log's domain,
    /// so a write of its own can never be passed by later replicated
    /// ones.
    pub strict_mode: bool,
    pub log_replica_updates: bool,
}

/// The errant check's answer. "Cannot tell" is its own answer and never
/// counts as clean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Errant {
    /// No transaction of its own that its primary did not send.
    Clean,
    /// These GTIDs (`domain-server-sequence`) were written on the replica.
    Found(Vec<String>),
    /// Its own GTIDs that replicated ones followed, on a server where
    /// MariaDB does not stop on that: history from when it was a primary,
    /// or a write on the replica; why, and what to change.
    CannotTell(String),
}

/// The GTIDs a replica wrote itself, which its primary never sent:
/// promoting it would hand them to every replica.
///
/// - Its own writes carry its `server_id`: every own entry of its binary
///   log's state that is not what it applied or received in that domain,
///   at or past the highest sequence number it applied or received there
///   (or in a domain its primary never used), is errant.
/// - An own entry *below* that was followed by replicated transactions in
///   the same domain: history from when it was a primary, or a write on
///   the replica that replication then passed. Only with
///   `gtid_strict_mode` and `log_slave_updates` both on does MariaDB
///   refuse to pass one (error 1950), so then it is history; otherwise
///   the answer is [`Errant::CannotTell`] (with `log_slave_updates` off,
///   replicated transactions are not logged and the last GTID of the
///   domain's binary log and `gtid_current_pos` lose the write as soon as
///   the primary's next transaction is applied).
/// - Another server's last GTID of a domain in its binary log past what
///   it applied or received is errant as well (a write under another
///   `server_id`).
pub fn errant(replica: &ReplicaGtids) -> Errant {
    let known = |domain: u32| {
        [
            replica.applied.0.get(&domain),
            replica.received.0.get(&domain),
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect::<Vec<Last>>()
    };
    let mut found = Vec::new();
    let mut unclear = Vec::new();
    let own = replica
        .binlog_state
        .iter()
        .copied()
        .filter(|(_, server, _)| *server == replica.server_id);
    let others = replica
        .binlog
        .0
        .iter()
        .map(|(domain, (server, sequence))| (*domain, *server, *sequence))
        .filter(|(_, server, _)| *server != replica.server_id);
    for gtid @ (domain, server, sequence) in own.chain(others) {
        let known = known(domain);
        if known.contains(&(server, sequence)) {
            continue;
        }
        let highest = known.iter().map(|(_, seq)| *seq).max();
        match highest {
            Some(highest) if sequence < highest => {
                if server == replica.server_id
                    && !(replica.strict_mode && replica.log_replica_updates)
                {
                    unclear.push(show(gtid));
                }
            }
            _ => found.push(show(gtid)),
        }
    }
    if !found.is_empty() {
        return Errant::Found(found);
    }
    if unclear.is_empty() {
        return Errant::Clean;
    }
    let off: Vec<&str> = [
        (!replica.strict_mode).then_some("gtid_strict_mode"),
        (!replica.log_replica_updates).then_some("log_slave_updates"),
    ]
    .into_iter()
    .flatten()
    .collect();
    Errant::CannotTell(format!(
        "its own GTIDs {} (server_id {}) were followed by replicated transactions in the same domain, and {} OFF lets replication pass a write on the replica: they are either from when it was a primary or errant, which cannot be told here; turn on gtid_strict_mode and log_slave_updates, or check on the servers that had them and remove them with RESET MASTER if they are old",
        unclear.join(","),
        replica.server_id,
        off.join(" and "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Position {
        Position::parse(text).unwrap()
    }

    /// A replica with server id 2, strict mode and log_slave_updates on.
    fn replica(binlog: &str, state: &str, applied: &str, received: &str) -> ReplicaGtids {
        ReplicaGtids {
            server_id: 2,
            binlog: p(binlog),
            binlog_state: parse_list(state).unwrap(),
            applied: p(applied),
            received: p(received),
            strict_mode: true,
            log_replica_updates: true,
        }
    }

    fn found(list: &[&str]) -> Errant {
        Errant::Found(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn positions_read_and_print() {
        assert_eq!(p("0-1-42, 1-2-7").to_string(), "0-1-42,1-2-7");
        assert!(p("").is_empty());
        let bad = Position::parse("0-1").unwrap_err();
        assert!(bad.contains("`0-1`"), "{bad}");
        assert!(Position::parse("0-1-x").is_err());
        assert!(Position::parse("0-1-2-3").is_err());
        assert_eq!(parse_list("0-1-10,0-2-7"), Ok(vec![(0, 1, 10), (0, 2, 7)]));
    }

    #[test]
    fn an_old_primary_s_transactions_beyond_its_successor_s_are_named() {
        assert_eq!(beyond(&p("0-1-12"), &[&p("0-1-10")]), ["0-1-12"]);
        assert!(beyond(&p("0-1-10"), &[&p("0-1-10")]).is_empty());
        assert!(beyond(&p("0-1-9"), &[&p("0-2-10")]).is_empty());
        assert_eq!(beyond(&p("0-1-9,1-1-3"), &[&p("0-2-10")]), ["1-1-3"]);
    }

    #[test]
    fn a_replica_s_own_write_is_errant_and_replicated_ones_are_not() {
        let cases: &[(ReplicaGtids, Errant)] = &[
            // log_slave_updates: the binlog repeats what was applied.
            (
                replica("0-1-10", "0-1-10", "0-1-10", "0-1-12"),
                Errant::Clean,
            ),
            // A local write after the last applied one.
            (
                replica("0-2-11", "0-1-10,0-2-11", "0-1-10", "0-1-10"),
                found(&["0-2-11"]),
            ),
            // A local write in a domain the primary never used.
            (
                replica("0-1-10,5-2-1", "0-1-10,5-2-1", "0-1-10", "0-1-10"),
                found(&["5-2-1"]),
            ),
            // Nothing written locally.
            (replica("", "", "0-1-10", "0-1-10"), Errant::Clean),
            // Its own write from when it was the primary, then replicated
            // ones logged after it: strict mode would have stopped on an
            // errant one, so it is history.
            (
                replica("0-1-10", "0-2-5,0-1-10", "0-1-10", "0-1-10"),
                Errant::Clean,
            ),
            // Its own last GTID equal to what it applied (the rejoin sets
            // gtid_slave_pos to its binlog position).
            (replica("0-2-5", "0-2-5", "0-2-5", ""), Errant::Clean),
            // Another server id's GTID past what was applied.
            (
                replica("0-9-11", "0-1-10,0-9-11", "0-1-10", "0-1-10"),
                found(&["0-9-11"]),
            ),
            // The primary's own old transactions behind what was applied
            // (log_slave_updates off on an earlier hop): not errant.
            (replica("0-1-4", "0-1-4", "0-1-10", ""), Errant::Clean),
        ];
        for (i, (replica, expected)) in cases.iter().enumerate() {
            assert_eq!(&errant(replica), expected, "case {i}: {replica:?}");
        }
    }

    /// log_slave_updates off (seen on MariaDB 10.11): the replica's write
    /// 0-2-7, then the primary's 0-1-7 and 0-1-8 applied: gtid_binlog_pos
    /// stays 0-2-7, gtid_slave_pos and gtid_current_pos say 0-1-8, and
    /// strict mode did not stop replication.
    #[test]
    fn a_write_passed_by_replication_is_never_missed() {
        let mut passed = replica("0-2-7", "0-2-7", "0-1-8", "0-1-8");
        passed.log_replica_updates = false;
        let Errant::CannotTell(why) = errant(&passed) else {
            panic!("{:?}", errant(&passed));
        };
        assert!(why.contains("0-2-7"), "{why}");
        assert!(why.contains("log_slave_updates"), "{why}");
        assert!(!why.contains("gtid_strict_mode OFF"), "{why}");
        // The same with strict mode off as well, and log_slave_updates on:
        // the replicated transactions hide it from gtid_binlog_pos, not
        // from gtid_binlog_state.
        let mut lax = replica("0-1-8", "0-2-7,0-1-8", "0-1-8", "0-1-8");
        lax.strict_mode = false;
        let Errant::CannotTell(why) = errant(&lax) else {
            panic!("{:?}", errant(&lax));
        };
        assert!(
            why.contains("0-2-7") && why.contains("gtid_strict_mode"),
            "{why}"
        );
        // Before the primary's next transaction, it is errant outright
        // (the same sequence number as the primary's next one too).
        let mut fresh = replica("0-2-7", "0-2-7", "0-1-6", "0-1-6");
        fresh.log_replica_updates = false;
        assert_eq!(errant(&fresh), found(&["0-2-7"]));
        let mut collided = replica("0-2-7", "0-2-7", "0-1-6", "0-1-7");
        collided.log_replica_updates = false;
        assert_eq!(errant(&collided), found(&["0-2-7"]));
    }
}
