//! Redis cluster mode under a network partition (issue 28, item 4): the
//! leader's node cut off from etcd and its peers (network namespaces, the
//! harness of PostgreSQL's and MariaDB's partition tests) fences its
//! server on its own deadline, before a new leader can be elected; the
//! split-brain writer, a client next to every server, sees no two servers
//! acknowledging writes at once. Healed, the old leader's server comes
//! back as a replica of the new leader.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::redis_ha::{overlaps_between, runs};
use watchpost_e2e::redis_net::RedisNetCluster;

#[test]
fn a_redis_leader_cut_off_from_etcd_is_fenced_before_a_new_leader_is_elected() {
    let ha = RedisNetCluster::start("");
    let writer = ha.writers();
    let watched = Instant::now();
    wait_for("writes acknowledged by node1", PATIENCE, || {
        (writer.count() > 20).then_some(())
    });
    let cut = Instant::now();
    ha.net.cut(0);
    let new = ha.wait_new_leader(0, PATIENCE);
    let promoted_after = cut.elapsed();
    // Once another member leads, the old leader's server takes no write.
    assert!(
        !ha.nodes[0].writable(),
        "node1 still takes writes beside node{}:\n{}",
        new + 1,
        ha.agents[0].log()
    );
    wait_for("the old leader to record its fence", PATIENCE, || {
        ha.agents[0]
            .audit_of("cluster", "demoted")
            .into_iter()
            .next()
    });
    let new_port = ha.nodes[new].port;
    wait_for("writes on the new leader", PATIENCE, || {
        ha.nodes[new].writable().then_some(())
    });
    ha.net.heal(0);
    let old_port = ha.nodes[0].port;
    wait_for(
        "the old leader's server to replicate from the new leader",
        Duration::from_secs(90),
        || ha.nodes[0].replicates_from(new_port).then_some(()),
    );
    let acks = writer.stop();
    assert_eq!(
        overlaps_between(&acks, watched, None),
        vec![],
        "writes acknowledged by two primaries; runs (port, writes, first sent ms, last acked ms): {:?}; cut at {} ms",
        runs(&acks, watched),
        cut.duration_since(watched).as_millis()
    );
    let old_last = acks
        .iter()
        .filter(|a| a.port == old_port)
        .map(|a| a.acked)
        .max()
        .expect("writes on the old leader");
    let new_first = acks
        .iter()
        .filter(|a| a.port == new_port)
        .map(|a| a.sent)
        .min()
        .expect("writes on the new leader");
    assert!(
        old_last < new_first,
        "the old leader acknowledged a write after the new one took its first"
    );
    eprintln!(
        "redis leader partition: node{} leads {promoted_after:?} after the cut; the old leader's last acknowledged write {:?} after the cut, {:?} before the new leader's first",
        new + 1,
        old_last.saturating_duration_since(cut),
        new_first - old_last
    );
    assert!(!ha.nodes[0].writable(), "node1 takes writes as a replica");
}
