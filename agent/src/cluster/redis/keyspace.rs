//! The term key ([`super::info::TERM_KEY`]) lives in the users' keyspace,
//! so the agent checks, once a minute while the server answers, what could
//! take it away: an `allkeys-*` eviction policy under a `maxmemory` limit
//! set at run time (the file's is refused at start, [`super::conf::check`]),
//! and a default user that may write it (`ACL DRYRUN`, Redis 7.0 and
//! later; checked for the `default` user, which clients without a login
//! get). Both are warnings: the election reads a removed key as "cannot
//! tell" ([`super::info::term_of`]), never as an older term.

use super::info::TERM_KEY;
use super::session::text;
use super::{CALL, RedisServer};
use crate::cluster::quiet::Level;
use crate::redis::Error;
use ::redis::Value;
use std::time::{Duration, Instant};

/// How often the keyspace is checked.
const EVERY: Duration = Duration::from_secs(60);

/// What `CONFIG GET maxmemory*` says of the term key's eviction, if it may
/// be evicted (`reply`: the flat name/value list).
pub fn eviction(reply: &Value) -> Option<String> {
    let items: Vec<String> = match reply {
        Value::Array(items) => items.iter().map(text).collect(),
        Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [text(k), text(v)]).collect(),
        _ => return None,
    };
    let get = |name: &str| {
        items
            .chunks(2)
            .find(|pair| pair[0].eq_ignore_ascii_case(name))
            .and_then(|pair| pair.get(1).cloned())
            .unwrap_or_default()
    };
    super::conf::evicting(&get("maxmemory-policy"), &get("maxmemory"))
}

/// Whether the `default` user may write the term key: `dryrun` is the
/// answer to `ACL DRYRUN default SET key 1`, `flags` the flags of
/// `ACL GETUSER default` (`off`: nobody can log in as it). A warning
/// naming the fix, if it may.
pub fn default_user_may_write(dryrun: &Value, flags: &str) -> Option<String> {
    let allowed = text(dryrun) == "OK";
    let off = flags.split_whitespace().any(|f| f == "off");
    (allowed && !off).then(|| {
        format!(
            "the Redis `default` user may write the term key {TERM_KEY} (ACL DRYRUN says OK): a client without a login can change or delete the election's term (or FLUSHALL it away); give application users their own key patterns (e.g. `~app:*`, never `~*`) and `-flushall -flushdb`, and disable the default user (`ACL SETUSER default off`); see docs/src/engines/redis.md"
        )
    })
}

/// The flags of `ACL GETUSER`'s reply (`flags` then its list), as words.
fn flags(reply: &Value) -> String {
    let items: Vec<&Value> = match reply {
        Value::Array(items) => items.iter().collect(),
        Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return String::new(),
    };
    items
        .windows(2)
        .find(|pair| text(pair[0]) == "flags")
        .map(|pair| text(pair[1]))
        .unwrap_or_default()
}

impl RedisServer {
    /// Check the keyspace if it is time ([`EVERY`]); faults are logged
    /// once while they last.
    pub(super) async fn check_keyspace(&self) {
        {
            let mut last = self.keyspace_checked.lock();
            if last.is_some_and(|at| at.elapsed() < EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Ok(reply) = self
            .local
            .call(&["CONFIG", "GET", "maxmemory*"], CALL)
            .await
        {
            let evicts = eviction(&reply).map_or(Ok(()), Err);
            self.faults
                .lock()
                .outcome(Level::Error, "keep the term key from eviction", &evicts);
        }
        let dryrun = self
            .local
            .call(&["ACL", "DRYRUN", "default", "SET", TERM_KEY, "1"], CALL)
            .await;
        let outcome = match dryrun {
            Ok(reply) => {
                let user = self.local.call(&["ACL", "GETUSER", "default"], CALL).await;
                let flags = user.as_ref().map(flags).unwrap_or_default();
                default_user_may_write(&reply, &flags).map_or(Ok(()), Err)
            }
            Err(Error::Server(e)) => {
                // Before 7.0 (no DRYRUN), or an admin user without
                // +acl|dryrun: not checked, said once.
                tracing::debug!("cluster: ACL DRYRUN of the default user not checked: {e}");
                Ok(())
            }
            Err(_) => return,
        };
        self.faults.lock().outcome(
            Level::Warn,
            "keep the term key from the default user",
            &outcome,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(items: &[&str]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn an_allkeys_policy_under_a_limit_may_evict_the_term_key_and_is_named() {
        let evicts = eviction(&bulk(&[
            "maxmemory",
            "104857600",
            "maxmemory-policy",
            "allkeys-lru",
        ]))
        .unwrap();
        assert!(
            evicts.contains("allkeys-lru") && evicts.contains(TERM_KEY),
            "{evicts}"
        );
        // No limit, or a policy that evicts only keys with a TTL (the term
        // key has none), or none at all: nothing to say.
        for (limit, policy) in [
            ("0", "allkeys-lru"),
            ("104857600", "volatile-lru"),
            ("104857600", "noeviction"),
        ] {
            let reply = bulk(&["maxmemory", limit, "maxmemory-policy", policy]);
            assert_eq!(eviction(&reply), None, "{limit} {policy}");
        }
    }

    #[test]
    fn a_default_user_that_may_write_the_term_key_is_warned_of_unless_it_is_off() {
        let ok = Value::SimpleString("OK".into());
        let denied = Value::BulkString(
            b"User default has no permissions to access the 'watchpost:cluster:term' key".to_vec(),
        );
        let on = Value::Array(vec![
            Value::BulkString(b"flags".to_vec()),
            bulk(&["on", "nopass", "sanitize-payload"]),
            Value::BulkString(b"passwords".to_vec()),
            Value::Array(vec![]),
        ]);
        let off = Value::Array(vec![
            Value::BulkString(b"flags".to_vec()),
            bulk(&["off", "sanitize-payload"]),
        ]);
        let warned = default_user_may_write(&ok, &flags(&on)).unwrap();
        assert!(warned.contains("ACL SETUSER default off"), "{warned}");
        assert_eq!(default_user_may_write(&ok, &flags(&off)), None);
        assert_eq!(default_user_may_write(&denied, &flags(&on)), None);
    }
}
