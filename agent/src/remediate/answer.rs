//! Whether an old primary is gone: the question both failovers ask
//! before they promote (PostgreSQL's pre-check, MariaDB's pre-check and
//! fence step), read from how an admin session to it ended, with three
//! answers ([`Answer`]). Only a server that gave no answer at all is
//! gone; one that answers, refuses a session (starting, stopping, full,
//! refusing the login) or answers with an error is alive; and when the
//! agent's own failure stands in the way the answer is "cannot tell",
//! which never counts as gone.

use crate::sql::Error;

/// What an old primary's answer to a new admin session says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// It answered (a session, a refusal or an error): alive. Why, for
    /// messages.
    Answers(String),
    /// No answer: connection refused, no route, or silence until the
    /// deadline.
    Gone,
    /// The agent cannot tell (its own failure, a target not granted, an
    /// error that says nothing about the server). Why, for messages.
    CannotTell(String),
}

impl Answer {
    /// The answer for a session's outcome `session` to `primary`.
    pub fn of<T>(primary: &str, session: Result<T, Error>) -> Answer {
        match session {
            Ok(_) => Answer::Answers(format!("the primary `{primary}` answers: it is not down")),
            Err(Error::Refused(why)) => Answer::Answers(format!(
                "the primary `{primary}` answers but refuses the session ({why}): it is alive (starting, stopping, full or refusing the login)"
            )),
            Err(Error::Query(q)) => Answer::Answers(format!(
                "the primary `{primary}` answers with an error ({}): it is alive",
                q.message
            )),
            Err(Error::Unreachable(_) | Error::Timeout(_)) => Answer::Gone,
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

    #[test]
    fn only_silence_is_gone_and_the_agent_s_own_failure_cannot_tell() {
        let kind = |session: Result<(), Error>| Answer::of("db1", session).kind();
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
        let Answer::CannotTell(why) = Answer::of("db1", Err::<(), _>(Error::Agent("x".into())))
        else {
            panic!("not cannot tell")
        };
        assert!(why.contains("`db1`"), "{why}");
    }
}
