//! The Redis partition benchmark, side by side with Redis Sentinel: what
//! clients on the primary's side of a network partition are told, and
//! what of it is lost.
//!
//! Three nodes in network namespaces (`watchpost_e2e::netns`), a
//! `redis-server` each, replicating over the cluster links; a client next
//! to every server (the split-brain writer: a `SET` of a new key every
//! 20 ms on each) on the node's own link, which a cut leaves up. The
//! primary's node is cut off from the others for [`HOLD`], then healed;
//! once the old primary replicates from the new one, the writers stop and
//! every acknowledged key is looked up on the new primary. Per round:
//!
//! - `failover_ms`: from the cut to the first `SET` a server on the other
//!   side accepts (polled every 100 ms, the peers' clock);
//! - `both_writes`: writes the old primary acknowledged after the new
//!   primary had acknowledged its first (two primaries at once), and
//!   `both_ms`, how long that lasted;
//! - `lost`: acknowledged writes whose key the new primary does not have
//!   once the old primary rejoined (acknowledged, then discarded).
//!
//! Contenders:
//!
//! - `redis-partition`: Watchpost's cluster mode, the shipped `[cluster]`
//!   defaults (3 s lease), a 3-member etcd in the hub (the cut node loses
//!   it too);
//! - `redis-partition-sentinel`: Redis Sentinel, one sentinel per node
//!   (quorum 2), `down-after-milliseconds 1000` (its tuned minimum);
//! - `redis-partition-sentinel-min-replicas`: the same with Redis's
//!   documented fence on the servers, `min-replicas-to-write 1` and
//!   `min-replicas-max-lag 10` (the defaults' lag).
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example redis_partition_bench -- 3
//! ```
//!
//! Needs root (`ip netns`). Prints one JSON line per round and a summary
//! line per contender; `cargo xtask bench --only redis-partition` runs it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::netns::{self, Net};
use watchpost_e2e::redis_ha::{Ack, RedisNode, writers};
use watchpost_e2e::redis_net::{RedisNetCluster, listen_on};
use watchpost_e2e::sentinel::{Place, Sentinel};

/// How long the primary's node stays cut off.
const HOLD: Duration = Duration::from_secs(15);

/// What one round saw.
struct Round {
    failover: Duration,
    both_writes: usize,
    both: Duration,
    lost: usize,
    acked: usize,
}

/// With the writers on every one of `nodes`: cut node 0 off in `net`,
/// time the failover, hold the cut, heal it, wait for node 0 to replicate
/// from the new primary, and count.
fn partition(nodes: &[RedisNode], net: &Net) -> Round {
    let writer = writers(nodes);
    wait_for("writes acknowledged by node1", PATIENCE, || {
        (writer.count() > 20).then_some(())
    });
    let cut = Instant::now();
    net.cut(0);
    let (new, failover) = loop {
        if let Some(i) = (1..3).find(|i| nodes[*i].writable()) {
            break (i, cut.elapsed());
        }
        assert!(
            cut.elapsed() < PATIENCE,
            "no new primary within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(HOLD.saturating_sub(cut.elapsed()));
    net.heal(0);
    let new_port = nodes[new].port;
    wait_for(
        "the old primary to replicate from the new one",
        Duration::from_secs(120),
        || nodes[0].replicates_from(new_port).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(1));
    let acks = writer.stop();
    let kept = nodes[new]
        .try_keys("sb:*")
        .expect("KEYS on the new primary");
    let missing = acks
        .iter()
        .filter(|a| a.port == new_port && !kept.contains(&format!("sb:{}", a.seq)))
        .count();
    assert_eq!(
        missing, 0,
        "writes the new primary acknowledged are not on it"
    );
    count(&acks, nodes[0].port, new_port, &kept, failover)
}

fn count(acks: &[Ack], old: u16, new: u16, kept: &BTreeSet<String>, failover: Duration) -> Round {
    let new_first = acks
        .iter()
        .filter(|a| a.port == new)
        .map(|a| a.acked)
        .min()
        .expect("writes on the new primary");
    let late: Vec<&Ack> = acks
        .iter()
        .filter(|a| a.port == old && a.acked > new_first)
        .collect();
    let both = late
        .iter()
        .map(|a| a.acked - new_first)
        .max()
        .unwrap_or_default();
    Round {
        failover,
        both_writes: late.len(),
        both,
        lost: acks
            .iter()
            .filter(|a| !kept.contains(&format!("sb:{}", a.seq)))
            .count(),
        acked: acks.len(),
    }
}

fn watchpost_round() -> Round {
    let ha = RedisNetCluster::start("");
    partition(&ha.nodes, &ha.net)
}

/// A primary and two replicas in the nodes of `net`, started by hand
/// (`server`: extra `redis.conf` lines), and a sentinel next to each.
fn sentinel_round(server: &str) -> Round {
    let net = Net::create(3);
    let node = |i: usize, role: &str| {
        RedisNode::at(
            &netns::client_addr(i),
            &listen_on(i),
            &format!("protected-mode no\n{server}{role}"),
        )
    };
    let mut nodes = vec![node(0, "replicaof no one\n")];
    let port = nodes[0].port;
    let primary = format!("{} {port}", netns::node_addr(0));
    for i in 1..3 {
        nodes.push(node(i, &format!("replicaof {primary}\n")));
    }
    for (i, node) in nodes.iter().enumerate() {
        node.start_by_hand_in(Some(&net.nodes[i]));
    }
    for node in &nodes[1..] {
        wait_for("the replicas to link", PATIENCE, || {
            node.replicates_from(port).then_some(())
        });
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|i| {
            Sentinel::start(
                dir.path(),
                &Place {
                    netns: Some(&net.nodes[i]),
                    bind: &format!("{} {}", netns::client_addr(i), netns::node_addr(i)),
                    primary: &primary,
                    down_after_ms: Some(1000),
                },
            )
        })
        .collect();
    wait_for("the sentinels to see the set", PATIENCE * 2, || {
        sentinels.iter().all(Sentinel::ready).then_some(())
    });
    let round = partition(&nodes, &net);
    drop(sentinels);
    round
}

/// (benchmark name, one round)
type Contender = (&'static str, Box<dyn Fn() -> Round>);

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("rounds: a number"))
        .unwrap_or(3)
        .max(1);
    let contenders: [Contender; 3] = [
        ("redis-partition", Box::new(watchpost_round)),
        ("redis-partition-sentinel", Box::new(|| sentinel_round(""))),
        (
            "redis-partition-sentinel-min-replicas",
            Box::new(|| sentinel_round("min-replicas-to-write 1\nmin-replicas-max-lag 10\n")),
        ),
    ];
    for (name, round) in contenders {
        let mut all = Vec::new();
        for i in 0..rounds {
            let r = round();
            println!(
                "{{\"benchmark\":\"{name}\",\"round\":{i},\"failover_ms\":{},\"both_writes\":{},\"both_ms\":{},\"lost\":{},\"acked\":{}}}",
                r.failover.as_millis(),
                r.both_writes,
                r.both.as_millis(),
                r.lost,
                r.acked
            );
            all.push(r);
        }
        let mut failovers: Vec<u128> = all.iter().map(|r| r.failover.as_millis()).collect();
        failovers.sort();
        println!(
            "{{\"benchmark\":\"{name}\",\"rounds\":{},\"hold_ms\":{},\"median_failover_ms\":{},\"max_both_writes\":{},\"max_both_ms\":{},\"max_lost\":{},\"min_lost\":{}}}",
            all.len(),
            HOLD.as_millis(),
            failovers[failovers.len() / 2],
            all.iter().map(|r| r.both_writes).max().unwrap_or(0),
            all.iter().map(|r| r.both.as_millis()).max().unwrap_or(0),
            all.iter().map(|r| r.lost).max().unwrap_or(0),
            all.iter().map(|r| r.lost).min().unwrap_or(0),
        );
    }
}
