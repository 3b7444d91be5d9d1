//! The read-only allowlist: which commands a probe may send to a Redis
//! target. Redis has no read-only session, so this check, done in the
//! agent before anything is sent, is the only thing between a probe and
//! `FLUSHALL`. A command not listed here is refused, so that a command
//! added by a later Redis release is refused until someone has looked at
//! it.

/// Largest `COUNT` a `SCAN` (or `HSCAN`, `SSCAN`, `ZSCAN`) may ask for:
/// one call walks at most this many keys, so that a scan of a large
/// keyspace goes in steps the run's deadline can stop.
pub const MAX_SCAN_COUNT: u64 = 10_000;

/// Commands that only read, allowed with any arguments.
const READ: &[&str] = &[
    "PING",
    "ECHO",
    "INFO",
    "ROLE",
    "TIME",
    "DBSIZE",
    "LASTSAVE",
    "TYPE",
    "TTL",
    "PTTL",
    "EXPIRETIME",
    "PEXPIRETIME",
    "EXISTS",
    "STRLEN",
    "GET",
    "MGET",
    "GETRANGE",
    "SUBSTR",
    "HGET",
    "HMGET",
    "HLEN",
    "HEXISTS",
    "HSTRLEN",
    "HKEYS",
    "HVALS",
    "HGETALL",
    "LLEN",
    "LINDEX",
    "LRANGE",
    "LPOS",
    "SCARD",
    "SISMEMBER",
    "SMISMEMBER",
    "SMEMBERS",
    "ZCARD",
    "ZSCORE",
    "ZMSCORE",
    "ZRANK",
    "ZREVRANK",
    "ZCOUNT",
    "ZLEXCOUNT",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGE",
    "ZREVRANGEBYSCORE",
    "XLEN",
    "XRANGE",
    "XREVRANGE",
    "XPENDING",
    "GETBIT",
    "BITCOUNT",
    "BITPOS",
    "LCS",
    "READONLY",
];

/// Commands with subcommands: the command, then the subcommands allowed.
const WITH_SUBCOMMANDS: &[(&str, &[&str])] = &[
    ("CONFIG", &["GET"]),
    ("LATENCY", &["LATEST", "HISTORY", "DOCTOR", "HISTOGRAM"]),
    ("SLOWLOG", &["GET", "LEN"]),
    ("MEMORY", &["USAGE", "STATS", "DOCTOR", "MALLOC-STATS"]),
    ("DEBUG", &["DIGEST-VALUE"]),
    (
        "CLUSTER",
        &["INFO", "NODES", "MYID", "SLOTS", "SHARDS", "KEYSLOT"],
    ),
    ("CLIENT", &["INFO", "ID", "GETNAME", "LIST"]),
    ("COMMAND", &["COUNT", "INFO", "DOCS"]),
    ("OBJECT", &["ENCODING", "FREQ", "IDLETIME", "REFCOUNT"]),
    ("XINFO", &["STREAM", "GROUPS", "CONSUMERS"]),
    ("ACL", &["WHOAMI"]),
];

/// Commands whose `COUNT` argument is bounded by [`MAX_SCAN_COUNT`].
const SCANS: &[&str] = &["SCAN", "HSCAN", "SSCAN", "ZSCAN"];

/// Commands a target's `heartbeat_key` allows, on that key only.
const HEARTBEAT: &[&str] = &["SET", "PEXPIRE", "DEL", "GET"];

/// `CONFIG GET` parameters whose values are secrets (a probe's output is
/// not a place for them), refused like a pattern that could match them.
const SECRET_PARAMETERS: &[&str] = &[
    "REQUIREPASS",
    "MASTERAUTH",
    "MASTERUSER",
    "TLS-KEY-FILE-PASS",
    "TLS-CLIENT-KEY-FILE-PASS",
];

/// `CONFIG GET name...`: named parameters only, none of them a secret;
/// glob patterns (`*`, `?`, `[`) could match one and are refused.
fn config_get(args: &[Vec<u8>]) -> Result<(), String> {
    for parameter in args.iter().skip(2) {
        let parameter = String::from_utf8_lossy(parameter).to_ascii_uppercase();
        if parameter.contains(['*', '?', '[']) {
            return Err(format!(
                "`CONFIG GET {parameter}`: a pattern could return passwords (requirepass, masterauth); name the parameters; it was not sent"
            ));
        }
        if SECRET_PARAMETERS.contains(&parameter.as_str()) {
            return Err(format!(
                "`CONFIG GET {parameter}` returns a secret; it was not sent"
            ));
        }
    }
    Ok(())
}

/// Whether `args` (a command and its arguments) may be sent to a target
/// whose heartbeat key is `heartbeat` (None: no writes at all). Err: why
/// not, naming the command and what would be allowed.
pub fn check(args: &[Vec<u8>], heartbeat: Option<&str>) -> Result<(), String> {
    let Some(first) = args.first() else {
        return Err("an empty command (give at least the command's name)".into());
    };
    let name = String::from_utf8_lossy(first).to_ascii_uppercase();
    if READ.contains(&name.as_str()) {
        return Ok(());
    }
    if SCANS.contains(&name.as_str()) {
        return scan_count(&name, args);
    }
    if name == "CONFIG" {
        config_get(args)?;
    }
    if let Some((_, subs)) = WITH_SUBCOMMANDS.iter().find(|(c, _)| *c == name) {
        let sub = args
            .get(1)
            .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase())
            .unwrap_or_default();
        if subs.contains(&sub.as_str()) {
            return Ok(());
        }
        return Err(format!(
            "`{name} {sub}` is not on the agent's read-only allowlist (of {name}, only {} \
             may be sent); it was not sent",
            subs.join(", ")
        ));
    }
    if let Some(key) = heartbeat
        && HEARTBEAT.contains(&name.as_str())
        && args.get(1).is_some_and(|k| k.as_slice() == key.as_bytes())
        && (name != "DEL" || args.len() == 2)
    {
        return Ok(());
    }
    let writes = match heartbeat {
        Some(key) => format!(
            "; this target allows writes only as {} on its heartbeat key `{key}`",
            HEARTBEAT.join(", ")
        ),
        None => String::new(),
    };
    Err(format!(
        "`{name}` is not on the agent's read-only allowlist (reads, INFO, ROLE, SCAN, CONFIG \
         GET, LATENCY, SLOWLOG GET/LEN, MEMORY USAGE, DEBUG DIGEST-VALUE, CLUSTER INFO/NODES, \
         ...){writes}; it was not sent"
    ))
}

/// A SCAN's `COUNT`, when given, must be a number up to [`MAX_SCAN_COUNT`].
fn scan_count(name: &str, args: &[Vec<u8>]) -> Result<(), String> {
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if !arg.eq_ignore_ascii_case(b"COUNT") {
            continue;
        }
        let value = rest.next().map(|v| String::from_utf8_lossy(v).into_owned());
        match value.as_deref().map(str::parse::<u64>) {
            Some(Ok(n)) if n <= MAX_SCAN_COUNT => {}
            _ => {
                return Err(format!(
                    "`{name} ... COUNT {}`: COUNT must be a number from 0 to {MAX_SCAN_COUNT} \
                     (scan a large keyspace in steps); it was not sent",
                    value.unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Vec<u8>> {
        line.split(' ').map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn reads_pass_and_writes_are_refused() {
        for ok in [
            "info replication",
            "ping",
            "role",
            "scan 0 count 1000",
            "config get maxmemory",
            "slowlog get 10",
            "latency latest",
            "memory usage k",
            "debug digest-value k",
            "cluster nodes",
            "get k",
        ] {
            assert_eq!(check(&args(ok), None), Ok(()), "{ok}");
        }
        for refused in [
            "flushall",
            "FLUSHDB",
            "config set maxmemory 1",
            "shutdown nosave",
            "eval return 0",
            "evalsha abc 0",
            "fcall f 0",
            "module load /tmp/x.so",
            "multi",
            "subscribe c",
            "client kill 1.2.3.4:5",
            "keys *",
            "debug sleep 1",
            "debug digest",
            "set k v",
            "slowlog reset",
            "acl setuser x on",
            "replicaof no one",
        ] {
            let error = check(&args(refused), None).expect_err(refused);
            assert!(error.contains("not sent"), "{error}");
        }
        assert!(check(&[], None).is_err());
    }

    #[test]
    fn scan_counts_are_bounded() {
        assert!(check(&args("scan 0 count 10000"), None).is_ok());
        let error = check(&args("scan 0 count 10001"), None).unwrap_err();
        assert!(error.contains("COUNT must be"), "{error}");
        assert!(check(&args("hscan h 0 count x"), None).is_err());
        assert!(check(&args("scan 0 count"), None).is_err());
    }

    #[test]
    fn the_heartbeat_key_alone_is_writable() {
        let hb = Some("watchpost:heartbeat");
        assert!(check(&args("set watchpost:heartbeat 1"), hb).is_ok());
        assert!(check(&args("del watchpost:heartbeat"), hb).is_ok());
        let error = check(&args("set other 1"), hb).unwrap_err();
        assert!(error.contains("heartbeat key"), "{error}");
        assert!(check(&args("flushall"), hb).is_err());
        assert!(check(&args("set watchpost:heartbeat 1"), None).is_err());
        // DEL takes several keys: only the heartbeat key alone.
        assert!(check(&args("del watchpost:heartbeat orders users"), hb).is_err());
    }

    #[test]
    fn config_get_names_parameters_and_never_a_secret() {
        assert!(check(&args("config get maxmemory"), None).is_ok());
        assert!(check(&args("CONFIG GET maxmemory save"), None).is_ok());
        for refused in [
            "config get *",
            "config get *pass*",
            "config get requirepass",
            "config get maxmemory masterauth",
            "config get master?uth",
        ] {
            assert!(check(&args(refused), None).is_err(), "{refused}");
        }
    }
}
