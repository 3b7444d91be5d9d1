//! Replies as the probe world sees them: a reply tree flattened into a
//! pre-order list of [`Node`]s (WIT has no recursive types), and `INFO`'s
//! text as key/value pairs.

use ::redis::Value;

/// One node of a flattened reply (the WIT's `node`).
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Nil,
    Int(i64),
    Double(f64),
    Boolean(bool),
    Bulk(Vec<u8>),
    Simple(String),
    Error(String),
    /// An array of this many elements, which follow.
    Array(u32),
    /// A map of this many pairs (key, value, key, value, ...).
    Map(u32),
    /// A set of this many elements.
    Set(u32),
}

/// Host bytes a node costs beyond its payload (the enum itself).
pub const NODE_OVERHEAD: usize = std::mem::size_of::<Node>();

/// Flatten `value` in pre-order. Returns the nodes and the host bytes they
/// hold; Err(bytes reached) as soon as they would hold more than `budget`.
pub fn flatten(value: Value, budget: usize) -> Result<(Vec<Node>, usize), usize> {
    let mut out = Vec::new();
    let mut used = 0usize;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        let (node, children) = node_of(value);
        used += NODE_OVERHEAD + payload(&node);
        if used > budget {
            return Err(used);
        }
        out.push(node);
        // Children are pushed in reverse so that they pop in order.
        stack.extend(children.into_iter().rev());
    }
    Ok((out, used))
}

fn len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn payload(node: &Node) -> usize {
    match node {
        Node::Bulk(b) => b.len(),
        Node::Simple(s) | Node::Error(s) => s.len(),
        _ => 0,
    }
}

/// A value's node and its children, in order.
fn node_of(value: Value) -> (Node, Vec<Value>) {
    match value {
        Value::Nil => (Node::Nil, Vec::new()),
        Value::Int(i) => (Node::Int(i), Vec::new()),
        Value::Double(d) => (Node::Double(d), Vec::new()),
        Value::Boolean(b) => (Node::Boolean(b), Vec::new()),
        Value::BulkString(b) => (Node::Bulk(b), Vec::new()),
        Value::SimpleString(s) => (Node::Simple(s), Vec::new()),
        Value::Okay => (Node::Simple("OK".into()), Vec::new()),
        Value::VerbatimString { text, .. } => (Node::Simple(text), Vec::new()),
        Value::BigNumber(n) => (
            Node::Simple(String::from_utf8_lossy(&n).into_owned()),
            Vec::new(),
        ),
        Value::ServerError(e) => (Node::Error(server_error_text(&e)), Vec::new()),
        Value::Array(items) => (Node::Array(len(items.len())), items),
        Value::Set(items) => (Node::Set(len(items.len())), items),
        Value::Push { data, .. } => (Node::Array(len(data.len())), data),
        Value::Map(pairs) => (
            Node::Map(len(pairs.len())),
            pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        ),
        // Attributes (RESP3 metadata) are left out: the data alone.
        Value::Attribute { data, .. } => node_of(*data),
        // A kind of reply added by a later client release: its text.
        other => (Node::Simple(format!("{other:?}")), Vec::new()),
    }
}

/// A server error as the server wrote it: `CODE details`.
pub fn server_error_text(error: &::redis::ServerError) -> String {
    match error.details() {
        Some(details) => format!("{} {details}", error.code()),
        None => error.code().to_string(),
    }
}

/// `INFO`'s text as (key, value) pairs: `# Section` headers, blank lines
/// and lines without a `:` are left out.
pub fn info_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_replies_flatten_in_pre_order() {
        let value = Value::Array(vec![
            Value::BulkString(b"0".to_vec()),
            Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::Nil]),
            Value::Map(vec![(Value::SimpleString("k".into()), Value::Int(3))]),
        ]);
        let (nodes, _) = flatten(value, 1 << 20).unwrap();
        assert_eq!(
            nodes,
            vec![
                Node::Array(3),
                Node::Bulk(b"0".to_vec()),
                Node::Array(2),
                Node::Bulk(b"a".to_vec()),
                Node::Nil,
                Node::Map(1),
                Node::Simple("k".into()),
                Node::Int(3),
            ]
        );
    }

    #[test]
    fn a_reply_over_the_budget_is_an_error() {
        let value = Value::Array(vec![Value::BulkString(vec![b'x'; 1000]); 100]);
        let reached = flatten(value, 10_000).unwrap_err();
        assert!(reached > 10_000);
    }

    #[test]
    fn info_text_becomes_pairs() {
        let text = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
                    slave0:ip=127.0.0.1,port=6380,state=online\r\n\r\n";
        assert_eq!(
            info_pairs(text),
            vec![
                ("role".into(), "master".into()),
                ("connected_slaves".into(), "1".into()),
                (
                    "slave0".into(),
                    "ip=127.0.0.1,port=6380,state=online".into()
                ),
            ]
        );
    }
}
