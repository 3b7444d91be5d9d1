//! Rolling restart in cluster mode (`watchpost cluster restart`), with real
//! parts (a 3-member etcd, three PostgreSQL servers, an agent each, HAProxy
//! routing on the role endpoints): a setting that needs a restart reaches
//! every server, standbys first and the leader by a switchover, under a
//! steady write load with no acknowledged write lost and never two
//! servers acknowledging writes at once; with nothing pending, `--pending`
//! restarts nothing.

use std::time::Instant;
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::cli::watchpost_run;
use watchpost_e2e::ha::HaCluster;
use watchpost_e2e::haproxy::HaProxy;
use watchpost_e2e::splitbrain;

fn restart(ha: &HaCluster, args: &[&str]) -> watchpost_e2e::cli::Outcome {
    let config = ha.config(0);
    let mut argv = vec!["cluster", "restart", "-c", config.to_str().unwrap()];
    argv.extend_from_slice(args);
    watchpost_run(argv)
}

fn pids(ha: &HaCluster) -> Vec<Option<i32>> {
    ha.pg.nodes.iter().map(|n| n.postmaster_pid()).collect()
}

#[test]
fn a_rolling_restart_applies_a_pending_setting_everywhere_and_loses_no_write() {
    let ha = HaCluster::start("");
    ha.pg.nodes[0].execute(splitbrain::TABLE);
    // Nothing waits for a restart: nothing restarts.
    let before = pids(&ha);
    let outcome = restart(&ha, &["--pending"]);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert!(
        outcome.stdout.contains("rolling restart done: 0 server(s)"),
        "{}",
        outcome.all_output()
    );
    assert_eq!(pids(&ha), before);

    // A setting that only a restart applies, on every server.
    for node in &ha.pg.nodes {
        node.append_config(&["max_connections = 123".to_string()]);
        node.execute("SELECT pg_reload_conf()");
    }
    for node in &ha.pg.nodes {
        wait_for("the setting to wait for a restart", PATIENCE, || {
            (node.value("SELECT bool_or(pending_restart)::text FROM pg_settings") == "true")
                .then_some(())
        });
    }
    let proxy = HaProxy::start(&ha.backends());
    let writer = ha.writers(Some(&proxy));
    wait_for("writes acknowledged", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    let asked = Instant::now();
    let outcome = restart(&ha, &["--pending"]);
    assert_eq!(
        outcome.code,
        0,
        "{}\n{}",
        outcome.all_output(),
        ha.agents[1].log()
    );
    assert!(
        outcome.stdout.contains("rolling restart done: 3 server(s)"),
        "{}",
        outcome.all_output()
    );
    // Every server restarted with the setting; node2 leads now.
    let after = pids(&ha);
    for (i, node) in ha.pg.nodes.iter().enumerate() {
        assert_ne!(after[i], before[i], "node{} was not restarted", i + 1);
        assert_eq!(node.value("SHOW max_connections"), "123");
    }
    ha.wait_leader("node2");
    let through = || writer.count_via("haproxy");
    let seen = through();
    wait_for("writes through HAProxy after the restart", PATIENCE, || {
        (through() >= seen + 10).then_some(())
    });
    let ended = Instant::now();
    let report = writer.stop();
    let missing = report.missing(&splitbrain::present(&ha.tcp_dsn(1)));
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    assert_eq!(
        report.overlaps(asked),
        vec![],
        "two servers acknowledged writes at once"
    );
    eprintln!(
        "rolling restart: longest time without an acknowledged write {:?} (through HAProxy {:?})",
        report.longest_gap(None, asked, ended),
        report.longest_gap(Some("haproxy"), asked, ended)
    );
    // Each standby's restart is in its agent's audit log.
    for i in [1, 2] {
        assert!(
            !ha.agents[i].audit_of("cluster", "restarted").is_empty(),
            "{:#?}",
            ha.agents[i].audit()
        );
    }
    drop(proxy);
}
