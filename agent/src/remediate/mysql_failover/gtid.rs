//! MariaDB GTID positions (`0-1-42,1-2-7`: per replication domain, the
//! last transaction's server id and sequence number) and the comparison
//! the failover's errant-transaction check makes on them.

use std::collections::BTreeMap;

/// One domain's last GTID: (server id, sequence number).
pub type Last = (u32, u64);

/// A GTID position: the last GTID of each replication domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position(pub BTreeMap<u32, Last>);

impl Position {
    /// Read `0-1-42,1-2-7` (empty: no GTID yet). Errors name the part
    /// that is not `DOMAIN-SERVER-SEQUENCE`.
    pub fn parse(text: &str) -> Result<Position, String> {
        let mut map = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split('-');
            let parsed = (|| {
                let domain = fields.next()?.parse().ok()?;
                let server = fields.next()?.parse().ok()?;
                let sequence = fields.next()?.parse().ok()?;
                fields
                    .next()
                    .is_none()
                    .then_some((domain, (server, sequence)))
            })();
            let (domain, last) = parsed.ok_or_else(|| {
                format!("`{part}` is not a MariaDB GTID (DOMAIN-SERVER-SEQUENCE)")
            })?;
            map.insert(domain, last);
        }
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
            .map(|(domain, (server, sequence))| format!("{domain}-{server}-{sequence}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The GTIDs a replica wrote itself: the last GTID of each domain of its
/// binary log (`gtid_binlog_pos`) that goes beyond what it applied from
/// its primary (`gtid_slave_pos`) and what it received from it (the IO
/// thread's `Gtid_IO_Pos`). A primary never sent those, so promoting the
/// replica would hand its other replicas transactions the old primary
/// never had. A position keeps only each domain's last GTID: a local
/// write that replicated transactions followed in the same domain is no
/// longer visible in it (MariaDB has no GTID sets, unlike MySQL's
/// `gtid_executed`); `gtid_strict_mode` makes the replica stop on the
/// next one instead.
pub fn errant(binlog: &Position, applied: &Position, received: &Position) -> Vec<String> {
    binlog
        .0
        .iter()
        .filter(|(domain, last)| {
            let known = [applied.0.get(domain), received.0.get(domain)];
            if known.iter().flatten().any(|k| *k == *last) {
                return false;
            }
            let highest = known.iter().flatten().map(|(_, seq)| *seq).max();
            highest.is_none_or(|highest| last.1 >= highest)
        })
        .map(|(domain, (server, sequence))| format!("{domain}-{server}-{sequence}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Position {
        Position::parse(text).unwrap()
    }

    #[test]
    fn positions_read_and_print() {
        assert_eq!(p("0-1-42, 1-2-7").to_string(), "0-1-42,1-2-7");
        assert!(p("").is_empty());
        let bad = Position::parse("0-1").unwrap_err();
        assert!(bad.contains("`0-1`"), "{bad}");
        assert!(Position::parse("0-1-x").is_err());
        assert!(Position::parse("0-1-2-3").is_err());
    }

    #[test]
    fn a_replica_s_own_write_is_errant_and_replicated_ones_are_not() {
        // log_slave_updates: the binlog repeats what was applied.
        assert!(errant(&p("0-1-10"), &p("0-1-10"), &p("0-1-12")).is_empty());
        // A local write after the last applied one.
        assert_eq!(errant(&p("0-2-11"), &p("0-1-10"), &p("0-1-10")), ["0-2-11"]);
        // A local write in a domain the primary never used.
        assert_eq!(
            errant(&p("0-1-10,5-2-1"), &p("0-1-10"), &p("0-1-10")),
            ["5-2-1"]
        );
        // Binlog behind what was applied (log_slave_updates off, old
        // transactions of the primary's): not errant.
        assert!(errant(&p("0-1-4"), &p("0-1-10"), &p("")).is_empty());
        // Nothing written locally.
        assert!(errant(&p(""), &p("0-1-10"), &p("0-1-10")).is_empty());
    }
}
