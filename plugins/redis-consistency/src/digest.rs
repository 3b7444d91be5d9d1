//! Values compared by digest: `DEBUG DIGEST-VALUE` on many keys at once,
//! what a pair of digests says about a key, and what a refused `DEBUG`
//! means (the server's `enable-debug-command`, or the ACL user).

use watchpost_probe::redis::{self, RedisError, Reply};
use watchpost_probe::{Error, Result, Status};

/// The digest of a key that does not exist (or has expired).
pub const MISSING: &str = "0000000000000000000000000000000000000000";

/// `DEBUG DIGEST-VALUE key...` on `target`: one digest per key, in order.
pub fn digests(target: &str, keys: &[Vec<u8>]) -> Result<Vec<String>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut args: Vec<&[u8]> = vec![b"DEBUG", b"DIGEST-VALUE"];
    args.extend(keys.iter().map(Vec::as_slice));
    let reply = redis::call(target, &args).map_err(|e| refused_debug(target, e))?;
    let digests = read(&reply);
    if digests.len() != keys.len() {
        watchpost_probe::bail!(
            "{target}: DEBUG DIGEST-VALUE gave {} digests for {} keys: {reply:?}",
            digests.len(),
            keys.len()
        );
    }
    Ok(digests)
}

/// The digests of a `DEBUG DIGEST-VALUE` reply.
pub fn read(reply: &Reply) -> Vec<String> {
    reply
        .items()
        .unwrap_or_default()
        .iter()
        .filter_map(Reply::text)
        .collect()
}

/// Whether `DEBUG DIGEST-VALUE` may run on `target` (it is sent with no
/// key, which digests nothing).
pub fn usable(target: &str) -> Result<()> {
    redis::call(target, &["DEBUG", "DIGEST-VALUE"])
        .map(|_| ())
        .map_err(|e| refused_debug(target, e))
}

/// The error for a failed `DEBUG DIGEST-VALUE`: a server that does not
/// allow `DEBUG`, or an ACL user that may not, is `unknown` saying what
/// to set; a server that is not there keeps its own status.
pub fn refused_debug(target: &str, error: RedisError) -> Error {
    let RedisError::Server(text) = &error else {
        return error.into();
    };
    if text.contains("DEBUG command not allowed") || text.contains("enable-debug-command") {
        return Error::with_status(
            Status::Unknown,
            format!(
                "{target} does not allow DEBUG DIGEST-VALUE, so values cannot be compared: set \
                 `enable-debug-command yes` (or `local` when the agent connects over loopback or a \
                 socket) in its config and restart it; the server said: {text}"
            ),
        );
    }
    if text.starts_with("NOPERM") {
        return Error::with_status(
            Status::Unknown,
            format!(
                "{target}: the probe's ACL user may not run DEBUG DIGEST-VALUE: add \
                 `+debug|digest-value` to it; the server said: {text}"
            ),
        );
    }
    error.into()
}

/// What the digests of one key, read on the primary before and after the
/// replica's, say.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// The replica holds the primary's value.
    Same,
    /// The key changed on the primary around the replica's read: a write
    /// in flight, not a difference.
    Changing,
    /// The primary's value, unchanged around the replica's read, is not
    /// the replica's.
    Differs(Difference),
}

/// How a key differs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Difference {
    MissingOnReplica,
    OnlyOnReplica,
    Value,
}

impl Difference {
    pub fn describe(self) -> &'static str {
        match self {
            Difference::MissingOnReplica => "missing on the replica",
            Difference::OnlyOnReplica => "only on the replica",
            Difference::Value => "a different value",
        }
    }
}

/// The verdict for one key: `before` and `after` the primary's digests
/// around `replica`'s, the replica read once it had passed the primary's
/// offset taken after `before` (the "seen unchanged" rule).
pub fn verdict(before: &str, replica: &str, after: &str) -> Verdict {
    if before != after {
        return Verdict::Changing;
    }
    if before == replica {
        return Verdict::Same;
    }
    Verdict::Differs(if replica == MISSING {
        Difference::MissingOnReplica
    } else if before == MISSING {
        Difference::OnlyOnReplica
    } else {
        Difference::Value
    })
}

/// A key as it may appear in a message: text, control characters
/// escaped, cut at 80 characters.
pub fn shown(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    let escaped: String = text.chars().flat_map(char::escape_debug).collect();
    if escaped.chars().count() > 80 {
        format!("{}...", escaped.chars().take(80).collect::<String>())
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aa00000000000000000000000000000000000000";
    const B: &str = "bb00000000000000000000000000000000000000";

    #[test]
    fn verdicts_follow_the_seen_unchanged_rule() {
        let table = [
            (A, A, A, Verdict::Same),
            (A, B, A, Verdict::Differs(Difference::Value)),
            (
                A,
                MISSING,
                A,
                Verdict::Differs(Difference::MissingOnReplica),
            ),
            (
                MISSING,
                A,
                MISSING,
                Verdict::Differs(Difference::OnlyOnReplica),
            ),
            // Written between the two reads: never a difference.
            (A, B, B, Verdict::Changing),
            (A, A, B, Verdict::Changing),
            (MISSING, MISSING, MISSING, Verdict::Same),
        ];
        for (before, replica, after, expected) in table {
            assert_eq!(
                verdict(before, replica, after),
                expected,
                "{before} {replica} {after}"
            );
        }
    }

    #[test]
    fn replies_and_keys_read_safely() {
        let reply = Reply::Array(vec![Reply::Simple(A.into()), Reply::Simple(MISSING.into())]);
        assert_eq!(read(&reply), vec![A.to_string(), MISSING.to_string()]);
        assert!(read(&Reply::Nil).is_empty());
        assert_eq!(shown(b"user:1"), "user:1");
        assert_eq!(shown(b"a\nb"), "a\\nb");
        assert_eq!(shown(&[b'x'; 100]).len(), 83);
    }

    #[test]
    fn a_refused_debug_names_what_to_set() {
        let off = refused_debug(
            "replica",
            RedisError::Server(
                "ERR DEBUG command not allowed. If the enable-debug-command option is set to \
                 \"local\", you can run it from a local connection"
                    .into(),
            ),
        );
        assert_eq!(off.status(), Some(Status::Unknown));
        assert!(
            off.to_string().contains("`enable-debug-command yes`"),
            "{off}"
        );
        let acl = refused_debug(
            "replica",
            RedisError::Server("NOPERM this user has no permissions".into()),
        );
        assert!(acl.to_string().contains("+debug|digest-value"), "{acl}");
        let down = refused_debug("replica", RedisError::Unreachable("refused".into()));
        assert_eq!(down.status(), Some(Status::Critical));
    }
}
