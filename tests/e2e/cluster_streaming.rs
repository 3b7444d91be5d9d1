//! Issue 30 (patroni#2412): a standby that cannot stream for a reason
//! other than diverged WAL is left running. Here the leader's
//! `pg_hba.conf` rejects replication connections: both standbys stop
//! streaming, their WAL still on the leader's timeline. Before, each was
//! stopped, "rewound" (`pg_rewind`: no rewind required) and restarted every
//! ~10 s, forever; now each records once why it is not rewound, keeps its
//! postmaster, and streams again by itself once the line is gone.

use std::time::Duration;
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::ha::HaCluster;

#[test]
fn a_standby_refused_by_pg_hba_is_not_rewound_and_streams_again_once_allowed() {
    let ha = HaCluster::start("");
    let leader = &ha.pg.nodes[0];
    let hba = leader.data_dir().join("pg_hba.conf");
    let allowed = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host replication all 127.0.0.1/32 reject\n{allowed}"),
    )
    .unwrap();
    leader.execute("SELECT pg_reload_conf()");
    // pg_hba.conf is read at connection: cut the streams that run.
    leader.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_replication");
    let before: Vec<Option<i32>> = (1..3).map(|i| ha.pg.nodes[i].postmaster_pid()).collect();
    for i in 1..3 {
        wait_for(
            &format!("node{} to record why it is not rewound", i + 1),
            PATIENCE * 2,
            || {
                ha.agents[i]
                    .audit_of("cluster", "failed")
                    .iter()
                    .any(|r| r.to_string().contains("not rewound nor restarted"))
                    .then_some(())
            },
        );
    }
    // Two more 10 s rounds of "does not stream".
    std::thread::sleep(Duration::from_secs(21));
    for i in 1..3 {
        assert_eq!(
            ha.pg.nodes[i].postmaster_pid(),
            before[i - 1],
            "node{} was restarted:\n{}",
            i + 1,
            ha.agents[i].log()
        );
        assert!(
            ha.agents[i].audit_of("cluster", "rewound").is_empty(),
            "node{}: {:?}",
            i + 1,
            ha.agents[i].audit_of("cluster", "rewound")
        );
        let why = ha.agents[i]
            .audit_of("cluster", "failed")
            .into_iter()
            .filter(|r| r.to_string().contains("not rewound nor restarted"))
            .count();
        assert_eq!(why, 1, "node{}: recorded once", i + 1);
    }
    // The line gone: they stream again by themselves.
    std::fs::write(&hba, allowed).unwrap();
    leader.execute("SELECT pg_reload_conf()");
    wait_for("both standbys to stream again", PATIENCE * 2, || {
        let streaming =
            leader.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'");
        (streaming[0][0].as_deref() == Some("2")).then_some(())
    });
    for i in 1..3 {
        assert_eq!(ha.pg.nodes[i].postmaster_pid(), before[i - 1]);
    }
}
