//! etcd at its quota (NOSPACE) does not silently end failover: a real
//! 3-member etcd with a tiny `--quota-backend-bytes` is filled until it
//! raises the NOSPACE alarm. Every member's `cluster-etcd` probe reports
//! it critical, the leader keeps its key by the usual lease rule (renewals
//! are not writes); after compaction, defragmentation and `alarm disarm`,
//! the probe is ok again and a node-loss failover works.

use serde_json::json;
use std::time::Duration;
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::etcd::{EtcdCluster, EtcdOptions};
use watchpost_e2e::ha::HaCluster;

const QUOTA: u64 = 8 << 20;

/// The `cluster-etcd` probe's status as agent `i` last reported it.
fn etcd_status(ha: &HaCluster, i: usize) -> Option<String> {
    ha.agents[i]
        .probe("cluster-etcd")
        .and_then(|p| p["status"].as_str().map(String::from))
}

fn b64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ABC[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn at_nospace_every_member_reports_it_critical_and_after_disarm_failover_works_again() {
    let etcd = EtcdCluster::start_with(
        &vec!["127.0.0.1".to_string(); 3],
        None,
        EtcdOptions {
            tls: None,
            quota_bytes: Some(QUOTA),
        },
    );
    let mut ha = HaCluster::start_on(etcd, &format!("etcd_quota = \"{}MiB\"\n", QUOTA >> 20));
    for i in 0..3 {
        wait_for("the etcd probe to say ok", PATIENCE, || {
            (etcd_status(&ha, i).as_deref() == Some("ok")).then_some(())
        });
    }

    // Fill etcd (keys outside the cluster's prefix) until it refuses.
    let filler = b64(&vec![7u8; 512 << 10]);
    let mut refused = None;
    for n in 0..64 {
        let (status, answer) = ha.etcd.call(
            "/v3/kv/put",
            json!({"key": b64(format!("/filler/{n}").as_bytes()), "value": filler}),
        );
        if status != 200 {
            refused = Some(answer.to_string());
            break;
        }
    }
    let refused = refused.expect("etcd never reached its quota");
    assert!(refused.contains("database space exceeded"), "{refused}");

    // Every member reports the alarm as critical.
    for i in 0..3 {
        wait_for("the etcd probe to say critical", PATIENCE, || {
            (etcd_status(&ha, i).as_deref() == Some("critical")).then_some(())
        });
        let probe = ha.agents[i].probe("cluster-etcd").unwrap();
        assert!(probe.to_string().contains("NOSPACE"), "{probe}");
    }
    // The leader keeps its key (renewals are not writes) and serves.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        ha.etcd.get("/watchpost/test/leader").as_deref(),
        Some("node1")
    );
    ha.wait_leader("node1");

    // Compact, defragment every member, disarm.
    for n in 0..64 {
        ha.etcd.call(
            "/v3/kv/deleterange",
            json!({"key": b64(format!("/filler/{n}").as_bytes())}),
        );
    }
    let revision = ha.etcd.revision();
    let (status, answer) = ha.etcd.call(
        "/v3/kv/compaction",
        json!({"revision": revision.to_string(), "physical": true}),
    );
    assert_eq!(status, 200, "compaction: {answer}");
    for i in 0..3 {
        // Tried up to five times: once, in a full run on a loaded machine,
        // one member's gateway answered "404 page not found" (not seen
        // again alone); every answer is kept for the report.
        let mut answers = Vec::new();
        for _ in 0..5 {
            let (status, answer) = ha.etcd.call_at(i, "/v3/maintenance/defragment", json!({}));
            answers.push((status, answer));
            if status == 200 {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        assert_eq!(
            answers.last().map(|(status, _)| *status),
            Some(200),
            "defragment member {i}: {answers:?}"
        );
    }
    let (_, alarms) = ha
        .etcd
        .call("/v3/maintenance/alarm", json!({"action": "GET"}));
    for alarm in alarms["alarms"].as_array().cloned().unwrap_or_default() {
        let (status, answer) = ha.etcd.call(
            "/v3/maintenance/alarm",
            json!({"action": "DEACTIVATE", "memberID": alarm["memberID"], "alarm": alarm["alarm"]}),
        );
        assert_eq!(status, 200, "disarm: {answer}");
    }
    for i in 0..3 {
        wait_for("the etcd probe to say ok again", PATIENCE, || {
            (etcd_status(&ha, i).as_deref() == Some("ok")).then_some(())
        });
    }

    // A node-loss failover works again.
    ha.agents[0].kill9();
    ha.pg.nodes[0].kill();
    let new = wait_for("a promotion after the alarm was cleared", PATIENCE, || {
        ha.records("promoted").into_iter().map(|(i, _)| i).next()
    });
    ha.wait_leader(&format!("node{}", new + 1));
}
