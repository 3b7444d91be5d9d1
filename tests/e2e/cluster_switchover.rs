//! Planned switchover in cluster mode, with real parts (a 3-member etcd,
//! three PostgreSQL servers, an agent each): under a steady write load on
//! every node (the split-brain detector's writers, every 50 ms), no
//! acknowledged write is lost, no two servers acknowledge writes at the
//! same time, and the old leader streams from the new one without a
//! rewind; a switchover the target cannot take is refused with the reason.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::cli::watchpost_run;
use watchpost_e2e::ha::HaCluster;
use watchpost_e2e::haproxy::HaProxy;
use watchpost_e2e::splitbrain::{self, Writer};

fn code(ha: &HaCluster, i: usize, path: &str) -> u16 {
    ha.agents[i].get(path).map(|(c, _)| c).unwrap_or(0)
}

fn switchover(ha: &HaCluster, args: &[&str]) -> watchpost_e2e::cli::Outcome {
    let config = ha.config(0);
    let mut argv = vec!["cluster", "switchover", "-c", config.to_str().unwrap()];
    argv.extend_from_slice(args);
    watchpost_run(argv)
}

#[test]
fn a_switchover_under_write_load_loses_no_acknowledged_write_and_needs_no_rewind() {
    let ha = HaCluster::start("");
    ha.pg.nodes[0].execute(splitbrain::TABLE);
    let proxy = HaProxy::start(&ha.backends());
    let writer = ha.writers(Some(&proxy));
    wait_for("writes acknowledged", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    let asked = Instant::now();
    let outcome = switchover(&ha, &["--to", "node2"]);
    let took = asked.elapsed();
    assert_eq!(
        outcome.code,
        0,
        "{}\n{}",
        outcome.all_output(),
        ha.agents[0].log()
    );
    assert!(
        outcome.stdout.contains("switchover done"),
        "{}",
        outcome.all_output()
    );
    ha.wait_leader("node2");
    wait_for(
        "the old leader to stream from the new one",
        Duration::from_secs(60),
        || (code(&ha, 0, "/v1/role/replica") == 200).then_some(()),
    );
    let deadline = Instant::now() + PATIENCE;
    let rejoined = loop {
        let found = ha.agents[0]
            .audit_of("cluster", "step")
            .into_iter()
            .find(|r| r["message"].as_str().unwrap_or("").contains("rejoined"));
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no rejoin record: {:#?}\n{}",
            ha.agents[0].audit(),
            ha.agents[0].log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let before = writer.count();
    wait_for("writes on the new leader", PATIENCE, || {
        (writer.count() >= before + 20).then_some(())
    });
    // HAProxy follows the role endpoints to the new leader.
    let through = |w: &Writer| w.count_via("haproxy");
    let before = through(&writer);
    wait_for("writes through HAProxy on the new leader", PATIENCE, || {
        (through(&writer) >= before + 10).then_some(())
    });
    let report = writer.stop();
    let ended = Instant::now();
    // Zero lost acknowledged writes; one server at a time acknowledges.
    let missing = report.missing(&splitbrain::present(&ha.tcp_dsn(1)));
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    assert_eq!(
        report.overlaps(asked),
        vec![],
        "two servers acknowledged writes at once"
    );
    let on = |port: u16| report.acks.iter().filter(|a| a.server == port).count();
    assert!(on(ha.pg.nodes[0].port()) > 0 && on(ha.pg.nodes[1].port()) > 0);
    assert_eq!(on(ha.pg.nodes[2].port()), 0);
    let gap = report.longest_gap(None, asked, ended);
    let via_proxy = report.longest_gap(Some("haproxy"), asked, ended);
    eprintln!(
        "switchover: the command returned after {took:?}; longest time without an acknowledged write {gap:?} (through HAProxy {via_proxy:?}); {} writes acknowledged",
        report.acks.len()
    );
    drop(proxy);
    // Every step recorded; the old leader was not rewound.
    let message = rejoined["message"].as_str().unwrap();
    assert!(message.contains("without pg_rewind"), "{message}");
    assert!(
        ha.agents[0].audit_of("cluster", "rewound").is_empty(),
        "{:#?}",
        ha.agents[0].audit()
    );
    let steps: Vec<String> = ha.agents[0]
        .audit_of("cluster", "step")
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect();
    for step in [
        "checkpoint",
        "stopping the local server cleanly",
        "shut down at",
    ] {
        assert!(
            steps.iter().any(|s| s.contains(step)),
            "no step {step:?}: {steps:#?}"
        );
    }
    assert!(!ha.agents[0].audit_of("cluster", "released").is_empty());
    assert!(!ha.agents[1].audit_of("cluster", "promoted").is_empty());
    assert!(!ha.agents[1].audit_of("cluster", "succeeded").is_empty());
    assert_eq!(
        ha.records("promoted").len(),
        1,
        "{:#?}",
        ha.records("promoted")
    );
    // The old leader and the other standby stream on the new timeline.
    let timeline = ha.pg.nodes[1].value("SELECT timeline_id FROM pg_control_checkpoint()");
    for i in [0, 2] {
        wait_for("a standby to stream on the new timeline", PATIENCE, || {
            let tli = ha.pg.nodes[i]
                .try_value(
                    "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'",
                )
                .ok()?;
            (tli == timeline || tli.parse::<u64>().ok()? > 1).then_some(())
        });
    }
    assert_eq!(ha.pg.nodes[0].value("SELECT pg_is_in_recovery()"), "t");
}

#[test]
fn a_switchover_the_target_cannot_take_is_refused_with_the_reason() {
    let ha = HaCluster::start("");
    ha.pg.nodes[2].pause_replay();
    // Wait until node3 publishes that its replay is paused.
    wait_for("node3 to publish its paused replay", PATIENCE, || {
        ha.view(0)["members"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == "node3" && m["healthy"] == false)
            .map(|_| ())
    });
    for (to, why) in [
        ("node3", "not a healthy standby"),
        (
            "node9",
            "no live member `node9` (members: node1, node2, node3)",
        ),
        ("node1", "`node1` already leads"),
    ] {
        let outcome = switchover(&ha, &["--to", to]);
        // Refused, nothing written: the documented exit code 2.
        assert_eq!(outcome.code, 2, "{}", outcome.all_output());
        assert!(
            outcome.all_output().contains(why),
            "{to}: {}",
            outcome.all_output()
        );
    }
    // The same check through the API, which wants the agent's token.
    let (status, body) = ha.agents[0].post_json("/v1/cluster/switchover", r#"{"to": "node3"}"#);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not a healthy standby"), "{body}");
    let anonymous: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let answer = anonymous
        .post(&ha.agents[0].url("/v1/cluster/switchover"))
        .header("content-type", "application/json")
        .send(r#"{"to": "node2"}"#)
        .unwrap();
    assert_eq!(
        answer.status().as_u16(),
        401,
        "a switchover without the token"
    );
    // A bad time is named.
    let outcome = switchover(&ha, &["--to", "node2", "--at", "tomorrow"]);
    assert_eq!(outcome.code, 3, "{}", outcome.all_output());
    assert!(
        outcome.all_output().contains("RFC 3339"),
        "{}",
        outcome.all_output()
    );
    // One scheduled for later waits, and can be cancelled.
    let outcome = switchover(&ha, &["--to", "node2", "--at", "2099-01-01T00:00:00Z"]);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert!(
        outcome.stdout.contains("scheduled"),
        "{}",
        outcome.all_output()
    );
    let again = switchover(&ha, &["--to", "node2"]);
    assert_eq!(again.code, 2, "{}", again.all_output());
    assert!(
        again.all_output().contains("already pending"),
        "{}",
        again.all_output()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(code(&ha, 0, "/v1/role/primary"), 200);
    let cancelled = switchover(&ha, &["--cancel"]);
    assert_eq!(cancelled.code, 0, "{}", cancelled.all_output());
    let nothing = switchover(&ha, &["--cancel"]);
    assert_eq!(nothing.code, 2, "{}", nothing.all_output());
    assert!(
        nothing.all_output().contains("no switchover is pending"),
        "{}",
        nothing.all_output()
    );
    // The same through the API.
    let (status, body) = ha.agents[0].post_json(
        "/v1/cluster/switchover",
        r#"{"to": "node2", "at": "2099-01-01T00:00:00Z"}"#,
    );
    assert_eq!(status, 202, "{body}");
    let (status, body) = ha.agents[0].post("/v1/cluster/switchover/cancel");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""to":"node2""#), "{body}");
    let (status, body) = ha.agents[0].post("/v1/cluster/switchover/cancel");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no switchover is pending"), "{body}");
    assert!(ha.records("step").is_empty(), "{:#?}", ha.records("step"));
    assert!(ha.records("promoted").is_empty());
    assert_eq!(code(&ha, 0, "/v1/role/primary"), 200);
    // Once the leader has marked a request `stopping` (its compare-and-set
    // before the checkpoint), a cancel is refused with the reason.
    ha.etcd.put(
        "/watchpost/test/switchover",
        r#"{"id":"t-1","from":"node1","to":"node2","at":"2099-01-01T00:00:00Z","stage":"stopping","lsn":null,"timeline":null}"#,
    );
    let refused = switchover(&ha, &["--cancel"]);
    assert_eq!(refused.code, 2, "{}", refused.all_output());
    assert!(
        refused.all_output().contains("already under way"),
        "{}",
        refused.all_output()
    );
    let (status, body) = ha.agents[0].post("/v1/cluster/switchover/cancel");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already under way"), "{body}");
    assert!(body.contains(r#""kind":"refused""#), "{body}");
}
