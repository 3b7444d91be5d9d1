//! GTID positions and sets in both servers' forms, and the two questions
//! the probe asks of them: how many transactions a replica received but
//! has not applied, and which of its transactions its primary never had
//! (errant GTIDs).
//!
//! MariaDB writes a position as `domain-server-seq` per domain
//! (`0-1-42,1-3-7`); within a domain sequence numbers are shared by all
//! servers, so "received, not applied" is the difference of the sequence
//! numbers in each domain, and a replica's transaction `d-s-n` is one its
//! primary has when the primary's binlog state holds `d-s-m` with `m >= n`.
//! MySQL writes a set as `uuid:1-5:7,uuid2:1-3`; its differences are
//! computed by the server itself (`GTID_SUBTRACT`), and counted here.

use std::collections::BTreeMap;

/// One MariaDB GTID: domain, server id, sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl std::fmt::Display for Gtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A MariaDB GTID list (`0-1-42,1-3-7`; empty text: none). An error names
/// the part that is not a GTID.
pub fn parse_mariadb(text: &str) -> Result<Vec<Gtid>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut fields = part.split('-');
            let gtid = (|| {
                let gtid = Gtid {
                    domain: fields.next()?.parse().ok()?,
                    server: fields.next()?.parse().ok()?,
                    seq: fields.next()?.parse().ok()?,
                };
                fields.next().is_none().then_some(gtid)
            })();
            gtid.ok_or_else(|| format!("`{part}` is not a MariaDB GTID (domain-server-sequence)"))
        })
        .collect()
}

/// Transactions in `received` (per domain, the last received) that are
/// not in `applied` (per domain, the last applied).
pub fn mariadb_not_applied(received: &[Gtid], applied: &[Gtid]) -> u64 {
    let applied: BTreeMap<u32, u64> = applied.iter().map(|g| (g.domain, g.seq)).collect();
    received
        .iter()
        .map(|g| {
            g.seq
                .saturating_sub(applied.get(&g.domain).copied().unwrap_or(0))
        })
        .sum()
}

/// The replica's binlog-state entries its primary does not have: for each
/// (domain, server) the replica logged up to `n`, the primary's state must
/// hold the same pair up to at least `n`.
pub fn mariadb_errant(replica_state: &[Gtid], primary_state: &[Gtid]) -> Vec<Gtid> {
    replica_state
        .iter()
        .filter(|r| {
            !primary_state
                .iter()
                .any(|p| p.domain == r.domain && p.server == r.server && p.seq >= r.seq)
        })
        .copied()
        .collect()
}

/// The number of transactions in a MySQL GTID set
/// (`uuid:1-5:7,uuid2:1-3` is 9). An error names what is not a set.
pub fn mysql_count(set: &str) -> Result<u64, String> {
    let mut total = 0u64;
    for member in set.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let mut parts = member.split(':');
        let _source = parts.next();
        let mut intervals = 0;
        for interval in parts {
            // MySQL 8.3+ tags: `uuid:tag:1-5`; a tag is not an interval.
            if interval.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                continue;
            }
            let (start, end) = match interval.split_once('-') {
                Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
                None => (interval.parse::<u64>(), interval.parse::<u64>()),
            };
            match (start, end) {
                (Ok(a), Ok(b)) if a <= b => total += b - a + 1,
                _ => return Err(format!("`{member}` is not a MySQL GTID set member")),
            }
            intervals += 1;
        }
        if intervals == 0 {
            return Err(format!("`{member}` has no transaction interval"));
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(domain: u32, server: u32, seq: u64) -> Gtid {
        Gtid {
            domain,
            server,
            seq,
        }
    }

    #[test]
    fn mariadb_positions_parse_and_compare() {
        assert_eq!(
            parse_mariadb("0-1-42, 1-3-7"),
            Ok(vec![g(0, 1, 42), g(1, 3, 7)])
        );
        assert_eq!(parse_mariadb(""), Ok(vec![]));
        assert!(parse_mariadb("0-1").unwrap_err().contains("`0-1`"));
        assert!(parse_mariadb("0-1-2-3").is_err());
        let received = [g(0, 1, 50), g(1, 3, 7)];
        let applied = [g(0, 1, 42)];
        assert_eq!(mariadb_not_applied(&received, &applied), 8 + 7);
        assert_eq!(mariadb_not_applied(&applied, &received), 0);
    }

    #[test]
    fn an_errant_gtid_is_one_the_primary_never_logged() {
        let primary = [g(0, 1, 10), g(0, 2, 4)];
        assert!(mariadb_errant(&[g(0, 1, 9), g(0, 2, 4)], &primary).is_empty());
        assert_eq!(
            mariadb_errant(&[g(0, 1, 10), g(0, 2, 5)], &primary),
            vec![g(0, 2, 5)]
        );
        assert_eq!(mariadb_errant(&[g(3, 2, 1)], &primary), vec![g(3, 2, 1)]);
        assert_eq!(g(0, 2, 5).to_string(), "0-2-5");
    }

    #[test]
    fn mysql_sets_are_counted() {
        let a = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert_eq!(mysql_count(&format!("{a}:1-5:7,\n{a}:10-11")), Ok(8));
        assert_eq!(mysql_count(""), Ok(0));
        assert_eq!(mysql_count(&format!("{a}:tag:1-3")), Ok(3));
        assert!(mysql_count(&format!("{a}:5-1")).is_err());
        assert!(mysql_count(a).is_err());
    }
}
