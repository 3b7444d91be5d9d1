//! MariaDB cluster mode under a network partition (issue 27, item 4): the
//! leader's node cut off from etcd and its peers (network namespaces,
//! the same harness as PostgreSQL's partition tests) fences itself on its
//! own deadline, so that it takes no write once a new leader is elected;
//! the split-brain writer, next to every server, sees no two servers
//! acknowledging at once.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::mariadb::partition::MariadbNetCluster;
use watchpost_e2e::splitbrain::mysql::TABLE;

/// Whether node `i`'s server takes no write: stopped, or `read_only`.
fn fenced(ha: &MariadbNetCluster, i: usize) -> bool {
    ha.nodes[i].pid().is_none()
        || ha.nodes[i]
            .try_execute("SELECT @@global.read_only")
            .is_ok_and(|v| v.trim() == "1")
}

#[test]
fn a_mariadb_leader_cut_off_from_etcd_is_fenced_before_a_new_leader_is_elected() {
    let ha = MariadbNetCluster::start();
    ha.nodes[0].value(TABLE);
    let writer = ha.writers();
    wait_for("writes acknowledged by the leader", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    let cut = Instant::now();
    ha.net.cut(0);
    let new = ha.wait_new_leader(0, PATIENCE);
    let promoted_after = cut.elapsed();
    // Once another member leads, the old leader's server takes no write.
    assert!(
        fenced(&ha, 0),
        "node1 still writable beside node{}",
        new + 1
    );
    wait_for("the old leader to record its lost lease", PATIENCE, || {
        ha.agents[0]
            .audit_of("cluster", "lost-lease")
            .into_iter()
            .next()
    });
    let new_label = format!("node{}", new + 1);
    let before = writer.count_via(&new_label);
    wait_for("writes on the new leader", PATIENCE, || {
        (writer.count_via(&new_label) >= before + 10).then_some(())
    });
    ha.net.heal(0);
    let report = writer.stop();
    assert_eq!(
        report.overlaps(cut - Duration::from_secs(5)),
        vec![],
        "two servers acknowledged writes at the same time"
    );
    let old_port = ha.nodes[0].port;
    let new_port = ha.nodes[new].port;
    let old_last = report
        .acks
        .iter()
        .filter(|a| a.server == old_port)
        .map(|a| a.acked)
        .max()
        .expect("writes on the old leader");
    let new_first = report
        .acks
        .iter()
        .filter(|a| a.server == new_port)
        .map(|a| a.sent)
        .min()
        .expect("writes on the new leader");
    assert!(
        old_last < new_first,
        "the old leader acknowledged a write after the new one took its first"
    );
    eprintln!(
        "mariadb leader partition: node{} leads {promoted_after:?} after the cut; the old leader's last acknowledged write {:?} after the cut, {:?} before the new leader's first",
        new + 1,
        old_last.saturating_duration_since(cut),
        new_first - old_last
    );
    // Healed: the old leader never leads again on its own; it replicates
    // from the new one, or is recorded as needing a rebuild.
    wait_for(
        "the old leader to rejoin or be recorded for a rebuild",
        Duration::from_secs(90),
        || {
            let replica = ha.agents[0]
                .get("/v1/role/replica")
                .is_ok_and(|(c, _)| c == 200);
            let rebuild = ha.agents[0].audit_of("cluster", "failed").iter().any(|r| {
                r["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("rebuild required")
            });
            (replica || rebuild).then_some(())
        },
    );
    assert!(fenced(&ha, 0));
}
