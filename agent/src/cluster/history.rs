//! Where the local server's timeline began, from its timeline history
//! file (`pg_wal/NNNNNNNN.history`): PostgreSQL gives the same number to
//! every promotion from the same history, so a member publishes its
//! timeline's start beside its number ([`super::member::Member`]), and the
//! election compares both ([`super::member::off_timeline`]).

use crate::pgserver::lsn::parse_lsn;

/// The SQL that reads the history file of timeline `$1` (an `int8`: the
/// one the server is on; `NULL` on timeline 1, which has none, or when
/// the file is missing): columns `timeline` and `history`. Needs the
/// right to read server files (a superuser, or `pg_read_server_files`);
/// when refused, the start is unknown and only the number is compared.
pub const READ_HISTORY: &str = "SELECT $1::int8 AS timeline,
    CASE WHEN $1::int8 > 1 THEN pg_read_file('pg_wal/' || lpad(upper(to_hex($1::int8)), 8, '0') || '.history', 0, 1048576, true) END AS history";

/// Where `timeline` began, from the text of its history file (`None`:
/// no file): the switch point of the file's last entry (lines
/// `PARENT<TAB>X/Y<TAB>reason`; blank and `#` lines skipped), and 0 on
/// the first timeline; `None` when the file is absent on a later
/// timeline, or its last entry does not parse.
///
/// ```
/// # use watchpost::cluster::history::start;
/// assert_eq!(start(1, None), Some(0));
/// assert_eq!(start(3, Some("1\t0/3000148\tno recovery target specified\n2\t0/5000000\tx\n")), Some(0x5000000));
/// assert_eq!(start(3, None), None);
/// ```
pub fn start(timeline: u64, history: Option<&str>) -> Option<u64> {
    if timeline <= 1 {
        return Some(0);
    }
    let last = history?
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with('#'))?;
    let mut fields = last.split_whitespace();
    let parent: u64 = fields.next()?.parse().ok()?;
    if parent >= timeline {
        return None;
    }
    parse_lsn(fields.next()?)
}

#[cfg(test)]
mod tests {
    use super::start;

    #[test]
    fn a_timeline_begins_at_its_history_files_last_switch_point() {
        let table: [(u64, Option<&str>, Option<u64>); 7] = [
            (1, None, Some(0)),
            (
                2,
                Some("1\t0/3000148\tno recovery target specified\n"),
                Some(0x3000148),
            ),
            (
                4,
                Some("1\t0/3000148\tx\n\n2\t1/0\ty\n# comment\n3\t1/A0\tz\n"),
                Some((1 << 32) | 0xA0),
            ),
            // Missing on a later timeline: unknown, never 0.
            (4, None, None),
            (4, Some(""), None),
            (4, Some("3\tnot-an-lsn\tz\n"), None),
            // A file naming a parent that is not older: not this one's.
            (4, Some("4\t0/10\tz\n"), None),
        ];
        for (timeline, text, want) in table {
            assert_eq!(start(timeline, text), want, "{timeline} {text:?}");
        }
    }
}
