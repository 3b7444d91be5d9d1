//! Redis and Valkey commands against the targets a probe is granted (the
//! `redis` import): [`call`] rebuilds the reply tree the agent sends
//! flattened ([`Reply`]), [`info`] reads `INFO` sections as key/values.
//!
//! The agent sends only read-only commands (its allowlist); anything else
//! comes back as [`RedisError::NotAllowed`] without reaching the server.

use crate::{Error, Status};
use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::bindings::watchpost::probe::redis::{Error as RedisError, Node, targets};

/// A reply, as a tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Double(f64),
    Boolean(bool),
    /// A bulk string (binary-safe).
    Bulk(Vec<u8>),
    /// A simple string (`OK`), verbatim string or big number.
    Simple(String),
    /// An error inside an aggregate.
    Error(String),
    Array(Vec<Reply>),
    /// Key/value pairs, in the server's order.
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
}

/// Deepest nesting [`Reply::from_nodes`] rebuilds (no Redis command
/// nests deeper than a few levels).
const MAX_DEPTH: usize = 64;

impl Reply {
    /// Rebuild a tree from its pre-order nodes. Err when the nodes do not
    /// form exactly one tree.
    pub fn from_nodes(nodes: Vec<Node>) -> Result<Reply, String> {
        let mut iter = nodes.into_iter();
        let reply = take(&mut iter, 0)?;
        if iter.next().is_some() {
            return Err("the reply has nodes past its end".into());
        }
        Ok(reply)
    }

    /// The reply as text: bulk (UTF-8, lossy) and simple strings.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Simple(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The reply as an integer: ints, and strings that parse as one.
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            other => other.text()?.trim().parse().ok(),
        }
    }

    /// The elements of an array or set (None for anything else).
    pub fn items(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(items) | Reply::Set(items) => Some(items),
            _ => None,
        }
    }
}

fn take(iter: &mut impl Iterator<Item = Node>, depth: usize) -> Result<Reply, String> {
    if depth > MAX_DEPTH {
        return Err(format!("the reply nests deeper than {MAX_DEPTH} levels"));
    }
    let node = iter
        .next()
        .ok_or_else(|| "the reply ends inside an aggregate".to_string())?;
    let mut children =
        |n: u32| -> Result<Vec<Reply>, String> { (0..n).map(|_| take(iter, depth + 1)).collect() };
    Ok(match node {
        Node::Nil => Reply::Nil,
        Node::Int(i) => Reply::Int(i),
        Node::Double(d) => Reply::Double(d),
        Node::Boolean(b) => Reply::Boolean(b),
        Node::Bulk(b) => Reply::Bulk(b),
        Node::Simple(s) => Reply::Simple(s),
        Node::Error(s) => Reply::Error(s),
        Node::Array(n) => Reply::Array(children(n)?),
        Node::Set(n) => Reply::Set(children(n)?),
        Node::Map(n) => {
            let flat = children(n.saturating_mul(2))?;
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((k, v));
            }
            Reply::Map(pairs)
        }
    })
}

/// Send one command (`args[0]` is its name) to `target`; its reply.
pub fn call<A: AsRef<[u8]>>(target: &str, args: &[A]) -> Result<Reply, RedisError> {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_ref().to_vec()).collect();
    let nodes = crate::bindings::watchpost::probe::redis::call(target, &args)?;
    Reply::from_nodes(nodes).map_err(RedisError::Server)
}

/// Open a new connection to `target` the way a new client would, PING,
/// close it: the time it took. LOADING, BUSY or max clients come back as
/// [`RedisError::Refused`].
pub fn ping(target: &str) -> Result<Duration, RedisError> {
    crate::bindings::watchpost::probe::redis::ping(target).map(Duration::from_nanos)
}

/// One `INFO` section (`server`, `replication`, `persistence`, ... or
/// `all`) as key/values.
pub fn info(target: &str, section: &str) -> Result<Info, RedisError> {
    let pairs = crate::bindings::watchpost::probe::redis::info(target, section)?;
    Ok(Info(pairs.into_iter().collect()))
}

/// `CONFIG GET name...` on `target`: the parameters the server returned,
/// by name (lower case). A parameter the server does not know is absent.
/// Patterns and secret parameters are refused by the agent.
pub fn config_get(target: &str, names: &[&str]) -> Result<BTreeMap<String, String>, RedisError> {
    let mut args = vec!["CONFIG", "GET"];
    args.extend_from_slice(names);
    Ok(config_pairs(&call(target, &args)?))
}

/// The name/value pairs of a `CONFIG GET` reply: a flat array (RESP2) or
/// a map (RESP3).
pub fn config_pairs(reply: &Reply) -> BTreeMap<String, String> {
    let mut pairs = BTreeMap::new();
    match reply {
        Reply::Map(entries) => {
            for (k, v) in entries {
                if let (Some(k), Some(v)) = (k.text(), v.text()) {
                    pairs.insert(k.to_ascii_lowercase(), v);
                }
            }
        }
        other => {
            for pair in other.items().unwrap_or_default().chunks(2) {
                if let [k, v] = pair
                    && let (Some(k), Some(v)) = (k.text(), v.text())
                {
                    pairs.insert(k.to_ascii_lowercase(), v);
                }
            }
        }
    }
    pairs
}

/// `INFO`'s fields by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Info(pub BTreeMap<String, String>);

impl Info {
    /// A field's text.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A field as a number.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key)?.trim().parse().ok()
    }

    /// The server's engine and version: `("valkey", "8.0.1")` when INFO
    /// has `valkey_version`, else `("redis", redis_version)`.
    pub fn engine(&self) -> (&'static str, String) {
        match self.get("valkey_version") {
            Some(v) => ("valkey", v.to_string()),
            None => ("redis", self.get("redis_version").unwrap_or("").to_string()),
        }
    }

    /// A field of the form `a=1,b=2` (`slave0`, `db0`, ...) as key/values.
    pub fn fields(&self, key: &str) -> Option<BTreeMap<String, String>> {
        let raw = self.get(key)?;
        Some(
            raw.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl RedisError {
    /// A one-line description, e.g. `refused: BUSY Redis is busy ...`.
    pub fn describe(&self) -> String {
        match self {
            RedisError::NotGranted(m) => format!("not granted: {m}"),
            RedisError::NotAllowed(m) => format!("not allowed: {m}"),
            RedisError::Unreachable(m) => format!("unreachable: {m}"),
            RedisError::Refused(m) => format!("refused: {m}"),
            RedisError::Timeout(m) => format!("timeout: {m}"),
            RedisError::Server(m) => format!("server error: {m}"),
            RedisError::TooLarge(m) => format!("too large: {m}"),
        }
    }

    /// The status a failure decides: no answer (unreachable, timeout) is
    /// `critical`, a refusal `warning`; others decide nothing.
    pub fn status(&self) -> Option<Status> {
        match self {
            RedisError::Unreachable(_) | RedisError::Timeout(_) => Some(Status::Critical),
            RedisError::Refused(_) => Some(Status::Warning),
            _ => None,
        }
    }
}

impl From<RedisError> for Error {
    fn from(error: RedisError) -> Self {
        match error.status() {
            Some(status) => Error::with_status(status, error.describe()),
            None => Error::msg(error.describe()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_rebuilt_from_pre_order() {
        let nodes = vec![
            Node::Array(2),
            Node::Bulk(b"17".to_vec()),
            Node::Array(2),
            Node::Bulk(b"a".to_vec()),
            Node::Map(1),
            Node::Simple("k".into()),
            Node::Int(1),
        ];
        let reply = Reply::from_nodes(nodes).unwrap();
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Bulk(b"17".to_vec()),
                Reply::Array(vec![
                    Reply::Bulk(b"a".to_vec()),
                    Reply::Map(vec![(Reply::Simple("k".into()), Reply::Int(1))]),
                ]),
            ])
        );
        assert_eq!(reply.items().unwrap()[0].int(), Some(17));
        assert!(Reply::from_nodes(vec![Node::Array(2), Node::Nil]).is_err());
        assert!(Reply::from_nodes(vec![Node::Nil, Node::Nil]).is_err());
    }

    #[test]
    fn config_get_replies_read_as_arrays_and_maps() {
        let bulk = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
        let array = Reply::Array(vec![bulk("save"), bulk(""), bulk("DIR"), bulk("/data")]);
        let pairs = config_pairs(&array);
        assert_eq!(pairs.get("save").map(String::as_str), Some(""));
        assert_eq!(pairs.get("dir").map(String::as_str), Some("/data"));
        let map = Reply::Map(vec![(bulk("maxmemory"), bulk("100"))]);
        assert_eq!(
            config_pairs(&map).get("maxmemory").map(String::as_str),
            Some("100")
        );
        // An odd element out is dropped, not misread.
        assert_eq!(config_pairs(&Reply::Array(vec![bulk("save")])).len(), 0);
        assert!(config_pairs(&Reply::Nil).is_empty());
    }
}
