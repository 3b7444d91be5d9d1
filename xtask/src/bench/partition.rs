//! The `redis-partition` section: what clients on the primary's side of a
//! network partition are told and what of it is lost, Watchpost's Redis
//! cluster mode against Redis Sentinel (tuned, and with Redis's
//! `min-replicas-to-write` fence), from
//! `tests/examples/redis_partition_bench.rs`: one row per contender.

use super::{Options, Row};

/// The contender's name in the table and the note beside it.
fn describe(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "redis-partition" => (
            "Redis cluster (3 s lease): the primary's node cut off from etcd and its peers",
            "goal: zero writes acknowledged by two primaries",
        ),
        "redis-partition-sentinel" => (
            "peer: Redis Sentinel (one per node, quorum 2, down-after-milliseconds 1000), same partition",
            "the peer at its tuned minimum",
        ),
        "redis-partition-sentinel-min-replicas" => (
            "peer: the same Sentinel, servers with min-replicas-to-write 1, min-replicas-max-lag 10",
            "Redis's documented fence",
        ),
        _ => return None,
    })
}

/// Run the example and make its summary lines rows.
pub fn run(options: &Options) -> Result<Vec<Row>, String> {
    if !std::path::Path::new("/usr/bin/redis-sentinel").exists() {
        crate::apt::apt_install(&["redis-sentinel"])?;
    }
    let rounds = if options.quick { 1 } else { options.rounds };
    let mut rows = Vec::new();
    for value in super::example::json_lines(
        "redis-partition",
        "redis_partition_bench",
        &[rounds.to_string()],
    )? {
        let Some((what, note)) = value["benchmark"].as_str().and_then(describe) else {
            continue;
        };
        if value.get("median_failover_ms").is_none() {
            continue;
        }
        rows.push(Row::new(
            what,
            format!(
                "first write on the other side {} ms (median); writes acknowledged by two primaries at once: {} over {} ms; acknowledged then lost: {}-{} ({} rounds, cut for {} ms)",
                value["median_failover_ms"],
                value["max_both_writes"],
                value["max_both_ms"],
                value["min_lost"],
                value["max_lost"],
                value["rounds"],
                value["hold_ms"]
            ),
            note,
        ));
    }
    Ok(rows)
}
