//! Redis and Valkey commands against the targets a probe is granted (the
//! `redis` import): [`call`] rebuilds the reply tree the agent sends
//! flattened ([`Reply`]), [`info`] reads `INFO` sections as key/values,
//! [`info_fields`] only the fields named.
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

/// The `fields` of `INFO`'s `sections` on `target`, e.g.
/// `info_fields(target, &["server", "replication"], &["redis_version",
/// "role"])`: for a probe that reads a few fields of many, much cheaper
/// than [`info`], which copies every field of the sections into the
/// probe's memory one by one; here the reply comes as one text and only
/// the fields asked for are kept. One `INFO` of the sections (Redis 7 and
/// later, Valkey); a server that takes one section per `INFO` (older: a
/// syntax error) is asked `INFO all`. A field the server does not have is
/// absent.
pub fn info_fields(target: &str, sections: &[&str], fields: &[&str]) -> Result<Info, RedisError> {
    read_fields(|args| call(target, args), sections, fields)
}

/// [`info_fields`], sending commands with `ask`.
fn read_fields(
    mut ask: impl FnMut(&[&str]) -> Result<Reply, RedisError>,
    sections: &[&str],
    fields: &[&str],
) -> Result<Info, RedisError> {
    let mut args = vec!["INFO"];
    args.extend_from_slice(sections);
    let reply = match ask(&args) {
        Err(RedisError::Server(error))
            if sections.len() > 1 && error.to_ascii_lowercase().contains("syntax error") =>
        {
            ask(&["INFO", "all"])?
        }
        other => other?,
    };
    let text = reply
        .text()
        .ok_or_else(|| RedisError::Server(format!("INFO replied {reply:?}, not text")))?;
    Ok(Info::from_text(&text, fields))
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
    /// The fields of `INFO`'s text (a `call(target, &["INFO", ...])`
    /// reply) named in `only`, or all of them when `only` is empty:
    /// `# Section` headers, blank lines and lines without `:` are left out.
    pub fn from_text(text: &str, only: &[&str]) -> Info {
        Info(
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .filter_map(|line| line.split_once(':'))
                .map(|(key, value)| (key.trim(), value))
                .filter(|(key, _)| only.is_empty() || only.contains(key))
                .map(|(key, value)| (key.to_string(), value.trim().to_string()))
                .collect(),
        )
    }

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

    const TEXT: &str = "# Server\r\nredis_version:6.2.14\r\nuptime_in_seconds:7\r\n\r\n\
                        # Clients\r\nconnected_clients:3\r\n\r\n\
                        # Replication\r\nrole:master\r\nslave0:ip=10.0.0.2,port=6379\r\n";

    #[test]
    fn info_text_is_read_whole_or_for_the_fields_named() {
        let all = Info::from_text(TEXT, &[]);
        assert_eq!(all.0.len(), 5);
        assert_eq!(all.get("slave0"), Some("ip=10.0.0.2,port=6379"));
        let some = Info::from_text(TEXT, &["role", "connected_clients", "valkey_version"]);
        assert_eq!(some.0.len(), 2);
        assert_eq!(some.get("role"), Some("master"));
        assert_eq!(some.number("connected_clients"), Some(3.0));
        assert_eq!(some.get("valkey_version"), None);
    }

    #[test]
    fn several_sections_are_one_info_and_info_all_on_a_server_that_takes_one() {
        let fields = ["redis_version", "role"];
        let mut sent = Vec::new();
        // Redis 7 and later: the sections in one command.
        let seven = read_fields(
            |args| {
                sent.push(args.join(" "));
                Ok(Reply::Bulk(TEXT.as_bytes().to_vec()))
            },
            &["server", "replication"],
            &fields,
        )
        .unwrap();
        assert_eq!(seven.get("role"), Some("master"));
        assert_eq!(sent, ["INFO server replication"]);

        // Redis 6: a syntax error to several sections, then INFO all.
        sent.clear();
        let six = read_fields(
            |args| {
                sent.push(args.join(" "));
                match args.len() {
                    2 => Ok(Reply::Bulk(TEXT.as_bytes().to_vec())),
                    _ => Err(RedisError::Server("ERR syntax error".into())),
                }
            },
            &["server", "replication"],
            &fields,
        )
        .unwrap();
        assert_eq!(six, seven);
        assert_eq!(sent, ["INFO server replication", "INFO all"]);

        // Any other error is the answer (no INFO all), and so is a
        // syntax error to one section.
        for sections in [&["server", "replication"][..], &["server"][..]] {
            sent.clear();
            let error = read_fields(
                |args| {
                    sent.push(args.join(" "));
                    match sections.len() {
                        1 => Err(RedisError::Server("ERR syntax error".into())),
                        _ => Err(RedisError::Server("NOPERM no INFO for you".into())),
                    }
                },
                sections,
                &fields,
            )
            .unwrap_err();
            assert!(matches!(error, RedisError::Server(_)), "{error:?}");
            assert_eq!(sent.len(), 1);
        }
        let not_text = read_fields(|_| Ok(Reply::Int(1)), &["server"], &fields).unwrap_err();
        assert!(
            matches!(&not_text, RedisError::Server(m) if m.contains("not text")),
            "{not_text:?}"
        );
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
