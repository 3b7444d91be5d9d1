//! Whether an old primary is gone: the question both failovers ask
//! before they promote (PostgreSQL's pre-check, MariaDB's pre-check and
//! fence step), read from how an admin session to it ended, with three
//! answers ([`Answer`]), and from whether its address accepted a TCP
//! connection at all ([`Accept`]). Only a server whose address accepted
//! no connection (refused, no route, nothing within the bound) is gone;
//! one that answers, refuses a session (starting, stopping, full,
//! refusing the login) or answers with an error is alive; one that
//! accepted the connection and then said nothing (frozen by SIGSTOP, an
//! I/O stall) cannot be told, and neither can one where the agent's own
//! failure stands in the way: "cannot tell" never counts as gone.

use crate::sql::{Accept, Error, SqlTargets};
use std::time::Duration;

/// What an old primary's answer to a new admin session says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// It answered (a session, a refusal or an error): alive. Why, for
    /// messages.
    Answers(String),
    /// No answer and its address accepted no connection: refused, no
    /// route, or no accept until the deadline.
    Gone,
    /// The agent cannot tell (its own failure, a target not granted, an
    /// error that says nothing about the server). Why, for messages.
    CannotTell(String),
}

impl Answer {
    /// Ask `primary`: an admin session opened by `session` and a bare
    /// connect to its address ([`SqlTargets::tcp_accepts`]), side by side,
    /// each within `within`.
    pub async fn ask<T>(
        sql: &SqlTargets,
        primary: &str,
        within: Duration,
        session: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Answer {
        let (accept, session) = tokio::join!(sql.tcp_accepts(primary, within), session);
        Answer::of(primary, &accept, session)
    }

    /// The answer for a session's outcome `session` to `primary`, with
    /// what a bare connect to its address said (`accept`). Any error the
    /// server sent answers; a session that ran out of time or lost its
    /// connection is "gone" only when the address accepted no connection.
    pub fn of<T>(primary: &str, accept: &Accept, session: Result<T, Error>) -> Answer {
        match session {
            Ok(_) => Answer::Answers(format!("the primary `{primary}` answers: it is not down")),
            Err(Error::Refused(why)) => Answer::Answers(format!(
                "the primary `{primary}` answers but refuses the session ({why}): it is alive (starting, stopping, full or refusing the login)"
            )),
            Err(Error::Query(q)) => Answer::Answers(format!(
                "the primary `{primary}` answers with an error ({}): it is alive",
                q.message
            )),
            Err(Error::Unreachable(why) | Error::Timeout(why)) => match accept {
                Accept::NotAccepted(_) => Answer::Gone,
                Accept::Accepted(at) => Answer::CannotTell(format!(
                    "the primary `{primary}` accepts connections ({at}) but its session failed ({why}): frozen, stalled or overloaded, not down; its state cannot be told"
                )),
                Accept::CannotTell(tcp) => Answer::CannotTell(format!(
                    "the primary `{primary}`'s session failed ({why}) and whether its address accepts connections cannot be told ({tcp}): that is not \"down\""
                )),
            },
            Err(Error::Agent(why)) => Answer::CannotTell(format!(
                "the agent could not reach the primary `{primary}` for a reason of its own ({why}): that says nothing about the primary"
            )),
            Err(Error::NotGranted(why)) => Answer::CannotTell(why),
            Err(other) => Answer::CannotTell(format!(
                "the state of the primary `{primary}` cannot be told ({other}): that is not \"down\""
            )),
        }
    }

    /// `answers`, `gone` or `cannot tell`, for audit details.
    pub fn kind(&self) -> &'static str {
        match self {
            Answer::Answers(_) => "answers",
            Answer::Gone => "gone",
            Answer::CannotTell(_) => "cannot tell",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::QueryError;

    fn gone() -> Accept {
        Accept::NotAccepted("refused".into())
    }

    #[test]
    fn only_silence_is_gone_and_the_agent_s_own_failure_cannot_tell() {
        let kind = |session: Result<(), Error>| Answer::of("db1", &gone(), session).kind();
        assert_eq!(kind(Ok(())), "answers");
        assert_eq!(kind(Err(Error::Refused("1040 too many".into()))), "answers");
        let query = QueryError {
            code: "HY000".into(),
            message: "read-only".into(),
            number: Some(1290),
        };
        assert_eq!(kind(Err(Error::Query(query))), "answers");
        assert_eq!(kind(Err(Error::Unreachable("refused".into()))), "gone");
        assert_eq!(kind(Err(Error::Timeout("2 s".into()))), "gone");
        assert_eq!(kind(Err(Error::Agent("no memory".into()))), "cannot tell");
        assert_eq!(kind(Err(Error::NotGranted("db1".into()))), "cannot tell");
        let Answer::CannotTell(why) =
            Answer::of("db1", &gone(), Err::<(), _>(Error::Agent("x".into())))
        else {
            panic!("not cannot tell")
        };
        assert!(why.contains("`db1`"), "{why}");
    }

    /// The table: the session's outcome against what the bare connect
    /// said. A server that accepted the connection and then said nothing
    /// (SIGSTOP, an I/O stall) is never gone.
    #[test]
    fn gone_only_when_the_address_accepts_no_connection() {
        let accepted = Accept::Accepted("h:3306".into());
        let unknown = Accept::CannotTell("no such host".into());
        let timeout = || Err::<(), _>(Error::Timeout("connecting took longer than 2s".into()));
        let dropped = || Err::<(), _>(Error::Unreachable("connection reset".into()));
        let cases: [(Result<(), Error>, &Accept, &str); 8] = [
            (timeout(), &gone(), "gone"),
            (dropped(), &gone(), "gone"),
            (timeout(), &accepted, "cannot tell"),
            (dropped(), &accepted, "cannot tell"),
            (timeout(), &unknown, "cannot tell"),
            (dropped(), &unknown, "cannot tell"),
            (Ok(()), &gone(), "answers"),
            (
                Err(Error::Refused("1053 shutdown".into())),
                &accepted,
                "answers",
            ),
        ];
        for (i, (session, accept, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                Answer::of("db1", accept, session).kind(),
                expected,
                "case {i}"
            );
        }
    }

    /// Against real sockets: a listener that never answers in user space
    /// (the kernel accepts, as for a frozen server) is "cannot tell", a
    /// closed port is "gone".
    #[tokio::test]
    async fn a_frozen_listener_cannot_be_told_and_a_closed_port_is_gone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spec = crate::sql::TargetSpec::new(format!("mysql://root@127.0.0.1:{port}/"));
        let sql = SqlTargets::new(&[("db1".to_string(), spec)].into_iter().collect()).unwrap();
        let within = Duration::from_millis(300);
        let frozen = Answer::ask(&sql, "db1", within, sql.mysql_admin_session("db1", within)).await;
        assert_eq!(frozen.kind(), "cannot tell", "{frozen:?}");
        drop(listener);
        let dead = Answer::ask(&sql, "db1", within, sql.mysql_admin_session("db1", within)).await;
        assert_eq!(dead, Answer::Gone);
    }
}
