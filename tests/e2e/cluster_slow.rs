//! A leader's long local actions with real servers (issue 30): a crash
//! recovery and a switchover's checkpoint that take longer than the
//! lease's deadline (2 s of the shipped 3 s `ttl`). Each is made slow by
//! freezing the PostgreSQL process doing the work: the startup process
//! during the crash recovery (6 s), the checkpointer during the
//! switchover's `CHECKPOINT` (8 s). Before, the agent awaited both inside
//! the pass that renews its lease, and its own watchdog stopped the server
//! mid-action: the recovering server was killed and a standby promoted;
//! the switchover was abandoned and its leader restarted on a new
//! timeline.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::cli::watchpost_run;
use watchpost_e2e::frozen::Frozen;
use watchpost_e2e::ha::HaCluster;
use watchpost_e2e::splitbrain;

/// The records, on any member, that say a lease was lost or a watchdog
/// fired (it records `demoted` when it stopped the server, `step` when it
/// fired and found nothing to stop).
fn lease_or_watchdog_faults(ha: &HaCluster) -> Vec<(usize, serde_json::Value)> {
    let mut faults = ha.records("lost-lease");
    for decision in ["demoted", "step"] {
        faults.extend(ha.records(decision).into_iter().filter(|(_, r)| {
            r["message"]
                .as_str()
                .is_some_and(|m| m.contains("the watchdog"))
        }));
    }
    faults
}

#[test]
fn a_crash_recovery_longer_than_the_lease_is_waited_for_and_the_leader_keeps_its_key() {
    let mut ha = HaCluster::start("");
    // WAL for the crash recovery to replay: the startup process is then
    // caught before the server answers. Committed durably (the test
    // servers run with `synchronous_commit = off`), so that it must be
    // there after the recovery.
    let made = ha.pg.nodes[0].try_value(
        "SET synchronous_commit = on; CREATE TABLE bulk AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 400000) g; SELECT 1",
    );
    assert_eq!(made.as_deref(), Ok("1"));
    ha.pg.nodes[0].kill();
    let startup = wait_for("the restarted server's startup process", PATIENCE, || {
        ha.pg.nodes[0].child_process("startup")
    });
    let frozen = Frozen::new(startup);
    // Caught during its recovery: the server does not answer yet.
    let early = ha.pg.nodes[0].try_value("SELECT 1");
    std::thread::sleep(Duration::from_secs(6));
    drop(frozen);
    assert!(
        early.is_err(),
        "the startup process was frozen only after the recovery ended ({early:?}): the test needs more WAL to replay"
    );
    wait_for(
        "the leader's server to be back as the primary",
        PATIENCE,
        || {
            ha.agents[0]
                .audit_of("cluster", "promoted")
                .into_iter()
                .next()
        },
    );
    ha.wait_leader("node1");
    assert_eq!(
        lease_or_watchdog_faults(&ha),
        vec![],
        "{}",
        ha.agents[0].log()
    );
    assert_eq!(
        ha.agents[0].audit_of("cluster", "restarted").len(),
        1,
        "restarted in place once: {:#?}",
        ha.agents[0].audit()
    );
    for i in 1..3 {
        assert!(ha.agents[i].audit_of("cluster", "promoted").is_empty());
    }
    let rows =
        ha.pg.nodes[0].try_value("INSERT INTO bulk VALUES (0, ''); SELECT count(*) FROM bulk");
    assert_eq!(rows.as_deref(), Ok("400001"), "{}", ha.agents[0].log());
}

#[test]
fn a_switchover_whose_checkpoint_outlasts_the_lease_completes_with_no_write_lost() {
    let ha = HaCluster::start("");
    ha.pg.nodes[0].execute(splitbrain::TABLE);
    let writer = ha.writers(None);
    wait_for("writes acknowledged", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    let checkpointer = ha.pg.nodes[0]
        .child_process("checkpointer")
        .expect("the leader's checkpointer");
    let frozen = Frozen::new(checkpointer);
    let thaw = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(8));
        drop(frozen);
    });
    let asked = Instant::now();
    let config = ha.config(0);
    let outcome = watchpost_run([
        "cluster",
        "switchover",
        "-c",
        config.to_str().unwrap(),
        "--to",
        "node2",
    ]);
    let took = asked.elapsed();
    thaw.join().expect("the thaw");
    assert_eq!(
        outcome.code,
        0,
        "{}\n{}",
        outcome.all_output(),
        ha.agents[0].log()
    );
    assert!(
        took >= Duration::from_secs(8),
        "the checkpoint was not slow: {took:?}"
    );
    ha.wait_leader("node2");
    let before = writer.count();
    wait_for("writes on the new leader", PATIENCE, || {
        (writer.count() >= before + 20).then_some(())
    });
    let report = writer.stop();
    let missing = report.missing(&splitbrain::present(&ha.tcp_dsn(1)));
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    assert_eq!(
        report.overlaps(asked),
        vec![],
        "two servers acknowledged writes at once"
    );
    assert_eq!(
        lease_or_watchdog_faults(&ha),
        vec![],
        "{}",
        ha.agents[0].log()
    );
    assert!(
        ha.agents[0].audit_of("cluster", "rewound").is_empty(),
        "{:#?}",
        ha.agents[0].audit()
    );
    eprintln!("switchover with an 8 s checkpoint: the command returned after {took:?}");
}
