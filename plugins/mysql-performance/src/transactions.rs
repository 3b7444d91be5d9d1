//! The open InnoDB transactions as `SHOW ENGINE INNODB STATUS` lists them
//! ("LIST OF TRANSACTIONS FOR EACH SESSION"), read fresh on every call.
//!
//! Why not `information_schema.INNODB_TRX`: InnoDB serves that table from
//! a cache it refreshes only when nobody read it for 0.1 s
//! (`CACHE_MIN_IDLE_TIME_US` in `trx0i_s.cc`, MariaDB and MySQL alike), so
//! while any client reads it more often than that (a dashboard, another
//! monitor, a script polling it) it keeps showing an old snapshot: empty
//! for a transaction open for minutes (seen on MariaDB 10.11), or old
//! transactions long gone. The status text is made when asked.
//!
//! The lines read (MariaDB and MySQL write the same shape):
//!
//! ```text
//! ---TRANSACTION 61, ACTIVE 12 sec            (ACTIVE (PREPARED) 3 sec, ACTIVE 5 sec inserting, ...)
//! 2 lock struct(s), heap size 1128, 1 row lock(s), undo log entries 2
//! MariaDB thread id 82, OS thread handle 1400..., query id 275 localhost root User sleep
//! SELECT SLEEP(60)                            (the running statement, if any)
//! ---TRANSACTION (0x7f56877d9b80), not started
//! ```
//!
//! Transactions "not started" are sessions without one and are skipped.
//! When the text was too long, the server omits the *beginning* of the
//! list (`...truncated...`), which holds the newest transactions: the
//! oldest stay.

/// One open transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// Seconds since it started (whole seconds, as InnoDB prints them).
    pub age: u64,
    /// Its session (thread) id; `None` for a transaction with no session
    /// (one recovered at startup, or XA prepared).
    pub session: Option<u64>,
    /// The statement it runs, first line, at most 200 characters; empty
    /// when idle in transaction.
    pub statement: String,
    /// `PREPARED`, `LOCK WAIT`, ... as InnoDB names its state; empty
    /// when it only runs.
    pub state: String,
}

/// The transactions in `status` (the `Status` column of `SHOW ENGINE
/// INNODB STATUS`), in the order listed.
pub fn parse(status: &str) -> Vec<Open> {
    let mut open: Vec<Open> = Vec::new();
    let mut in_list = false;
    let mut expect_statement = false;
    for line in status.lines() {
        if line.starts_with("LIST OF TRANSACTIONS FOR EACH SESSION") {
            in_list = true;
            continue;
        }
        if !in_list {
            continue;
        }
        if let Some(head) = line.strip_prefix("---TRANSACTION ") {
            expect_statement = false;
            if let Some(age) = active_seconds(head) {
                let after = head.split_once("ACTIVE").map_or("", |(_, a)| a);
                let mut state = Vec::new();
                if after.contains("(PREPARED)") {
                    state.push("PREPARED");
                }
                open.push(Open {
                    age,
                    session: None,
                    statement: String::new(),
                    state: state.join(" "),
                });
            } else {
                // "not started", or a transaction committed meanwhile.
                open.push(Open {
                    age: u64::MAX,
                    session: None,
                    statement: String::new(),
                    state: String::new(),
                });
            }
            continue;
        }
        // The end of the list: the next section's rule.
        if line.starts_with("--------") {
            break;
        }
        let Some(current) = open.last_mut() else {
            continue;
        };
        if current.age == u64::MAX {
            continue;
        }
        if line.starts_with("LOCK WAIT") && !current.state.contains("LOCK WAIT") {
            if !current.state.is_empty() {
                current.state.push(' ');
            }
            current.state.push_str("LOCK WAIT");
            continue;
        }
        let thread = line
            .strip_prefix("MariaDB thread id ")
            .or_else(|| line.strip_prefix("MySQL thread id "));
        if let Some(rest) = thread {
            current.session = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok());
            expect_statement = true;
            continue;
        }
        if expect_statement {
            expect_statement = false;
            if !is_bookkeeping(line) {
                current.statement = line.chars().take(200).collect();
            }
        }
    }
    open.retain(|t| t.age != u64::MAX);
    open
}

/// `12` from `61, ACTIVE 12 sec` or `61, ACTIVE (PREPARED) 3 sec
/// inserting`; `None` when not active.
fn active_seconds(head: &str) -> Option<u64> {
    let (_, after) = head.split_once("ACTIVE")?;
    let mut words = after.split_whitespace().skip_while(|w| w.starts_with('('));
    let seconds = words.next()?.parse().ok()?;
    (words.next()? == "sec").then_some(seconds)
}

/// Lines InnoDB prints after the thread line that are not a statement.
fn is_bookkeeping(line: &str) -> bool {
    [
        "Trx read view",
        "Trx #rec lock",
        "TABLE LOCK",
        "RECORD LOCKS",
        "------- TRX HAS BEEN",
        "---TRANSACTION",
        "mysql tables in use",
        "LOCK WAIT",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// The oldest of `open`.
pub fn oldest(open: &[Open]) -> Option<&Open> {
    open.iter().max_by_key(|t| t.age)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MariaDB 10.11's text with an idle session, a reader, a writer
    /// sleeping in its transaction, and what follows the list.
    const MARIADB: &str = "\
=====================================
------------
TRANSACTIONS
------------
Trx id counter 62
Purge done for trx's n:o < 61 undo n:o < 0 state: running but idle
History list length 0
LIST OF TRANSACTIONS FOR EACH SESSION:
---TRANSACTION (0x7f56877db180), ACTIVE 1 sec
0 lock struct(s), heap size 1128, 0 row lock(s)
MariaDB thread id 83, OS thread handle 140009573181120, query id 278 localhost root User sleep
SELECT SLEEP(4)
Trx read view will not see trx with id >= 61, sees < 61
---TRANSACTION 61, ACTIVE 14 sec
2 lock struct(s), heap size 1128, 1 row lock(s), undo log entries 2
MariaDB thread id 82, OS thread handle 140009572873920, query id 275 localhost root
---TRANSACTION (0x7f56877d9b80), not started
0 lock struct(s), heap size 1128, 0 row lock(s)
--------
FILE I/O
--------
---TRANSACTION 99, ACTIVE 999 sec
";

    #[test]
    fn sessions_ages_and_statements_are_read_and_idle_ones_skipped() {
        let open = parse(MARIADB);
        assert_eq!(
            open,
            vec![
                Open {
                    age: 1,
                    session: Some(83),
                    statement: "SELECT SLEEP(4)".into(),
                    state: String::new(),
                },
                Open {
                    age: 14,
                    session: Some(82),
                    statement: String::new(),
                    state: String::new(),
                },
            ]
        );
        assert_eq!(oldest(&open).and_then(|t| t.session), Some(82));
        assert!(parse("").is_empty());
    }

    #[test]
    fn mysql_prepared_lock_waiting_and_sessionless_transactions_are_read() {
        let text = "\
LIST OF TRANSACTIONS FOR EACH SESSION:
---TRANSACTION 421, ACTIVE 5 sec starting index read
mysql tables in use 1, locked 1
LOCK WAIT 2 lock struct(s), heap size 1136, 1 row lock(s)
MySQL thread id 12, OS thread handle 1, query id 33 localhost root updating
UPDATE t SET a = 1 WHERE id = 1
------- TRX HAS BEEN WAITING 5 SEC FOR THIS LOCK TO BE GRANTED:
---TRANSACTION 400, ACTIVE (PREPARED) 3600 sec recovered trx
3 lock struct(s), heap size 1136, 2 row lock(s)
---TRANSACTION 7, COMMITTED IN MEMORY
--------
";
        let open = parse(text);
        assert_eq!(open.len(), 2, "{open:?}");
        assert_eq!(open[0].session, Some(12));
        assert_eq!(open[0].statement, "UPDATE t SET a = 1 WHERE id = 1");
        assert_eq!(open[0].state, "LOCK WAIT");
        assert_eq!((open[1].age, open[1].session), (3600, None));
        assert_eq!(open[1].state, "PREPARED");
        assert_eq!(oldest(&open).map(|t| t.age), Some(3600));
    }
}
