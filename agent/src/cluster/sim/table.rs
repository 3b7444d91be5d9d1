//! Table tests of the decisions of one pass of the loop ([`Ha::tick`]):
//! one member over the in-memory store and a fake server, the scope set
//! up as each row needs, and what the pass did and left checked.

use super::fake::Node;
use super::harness::Harness;
use super::world::spec;
use crate::cluster::dcs::Dcs;
use crate::cluster::dcs::memory::{Call, Fault, Memory};
use crate::cluster::did::Did;
use crate::cluster::member::Member;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

fn standby(lsn: u64) -> Node {
    Node::new(false, lsn)
}

#[tokio::test(start_paused = true)]
async fn no_leader_the_most_advanced_healthy_standby_takes_the_key_and_promotes() {
    let mut h = Harness::new(standby(1000));
    h.other(1, "standby", 900);
    h.optime(1000);
    let did = h.tick().await;
    assert!(matches!(did[0], Did::Acquired(_)), "{did:?}");
    assert!(matches!(did[1], Did::Promoted(_)), "{did:?}");
    assert_eq!(h.holder().as_deref(), Some("m0"));
    assert!(h.node.lock().primary);
    assert_eq!(h.node.lock().timeline, 2);
    assert!(h.ha.watchdog_armed(), "the fence is armed once it leads");
    assert_eq!(h.tick().await, vec![Did::Renewed]);
}

#[tokio::test(start_paused = true)]
async fn no_leader_a_standby_behind_another_or_past_max_lag_does_not_take_the_key() {
    let mut h = Harness::new(standby(1000));
    h.other(1, "standby", 2000);
    let did = h.tick().await;
    assert!(matches!(&did[0], Did::NoCandidate(_)), "{did:?}");
    assert_eq!(h.holder(), None);

    let mut h = Harness::new(standby(1000));
    h.optime(1000 + 2 * spec(0).max_lag_bytes);
    let did = h.tick().await;
    assert!(
        matches!(&did[0], Did::NoCandidate(why) if why.contains("max_lag_bytes")),
        "{did:?}"
    );
    assert!(!h.node.lock().primary);
}

#[tokio::test(start_paused = true)]
async fn a_key_held_elsewhere_a_stopped_server_is_started_as_its_standby() {
    let mut node = standby(500);
    node.running = false;
    let mut h = Harness::new(node);
    h.other(1, "primary", 1000);
    h.leader("m1", Duration::from_secs(30));
    h.tick().await;
    let node = h.node.lock().clone();
    assert!(node.running && !node.primary, "{node:?}");
    assert_eq!(node.upstream.as_deref(), Some("10.0.0.2:5432"));
}

#[tokio::test(start_paused = true)]
async fn a_primary_while_another_holds_the_key_is_demoted_and_rewound() {
    let mut h = Harness::new(Node::new(true, 1200));
    h.other(1, "primary", 1000);
    h.leader("m1", Duration::from_secs(30));
    let did = h.tick().await;
    assert!(matches!(&did[0], Did::Demoted(_)), "{did:?}");
    assert!(!h.node.lock().primary);
}

#[tokio::test(start_paused = true)]
async fn a_leader_keeps_its_primary_and_renews() {
    let mut h = Harness::new(Node::new(true, 1000));
    h.leader("m0", Duration::from_secs(3));
    let did = h.tick().await;
    assert!(
        matches!(&did[0], Did::Acquired(why) if why.contains("earlier run")),
        "{did:?}"
    );
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(h.tick().await, vec![Did::Renewed]);
    }
    assert_eq!(h.holder().as_deref(), Some("m0"));
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_lease_is_gone_stops_its_server_first() {
    let mut h = Harness::new(Node::new(true, 1000));
    h.leader("m0", Duration::from_secs(3));
    h.tick().await;
    let lease = h.store.lock().get(&h.keys.leader).unwrap().lease;
    Memory::client(h.store.clone()).revoke(lease).await.unwrap();
    let did = h.tick().await;
    assert!(matches!(&did[0], Did::LostLease(_)), "{did:?}");
    assert!(matches!(&did[1], Did::Demoted(_)), "{did:?}");
    // Stopped first; the same pass, still reading the scope, may start it
    // again as a standby (no leader to follow yet), never as a primary.
    let node = h.node.lock().clone();
    assert!(!node.primary && node.standby_marked, "{did:?} {node:?}");
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_server_crashed_restarts_it_in_place_then_promotes_it_again() {
    let mut h = Harness::new(Node::new(true, 1000));
    h.leader("m0", Duration::from_secs(3));
    h.tick().await;
    {
        let mut node = h.node.lock();
        node.running = false;
        node.primary = false;
    }
    let did = h.tick().await;
    assert!(matches!(&did[0], Did::Restarted(_)), "{did:?}");
    h.until(3, |d| matches!(d, Did::Promoted(_))).await;
    assert!(h.node.lock().primary);
    assert_eq!(h.holder().as_deref(), Some("m0"));
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_server_stays_down_releases_the_key_only_when_known_stopped() {
    let mut h = Harness::new(Node::new(true, 1000));
    h.leader("m0", Duration::from_secs(3));
    h.tick().await;
    {
        let mut node = h.node.lock();
        node.running = false;
        node.primary = false;
        node.unknown = true;
    }
    // Unknown: never released, never restarted over it.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let did = h.tick().await;
        assert!(
            !did.iter()
                .any(|d| matches!(d, Did::Released(_) | Did::Restarted(_))),
            "{did:?}"
        );
    }
    assert_eq!(h.holder().as_deref(), Some("m0"));
    // Known stopped, and a start that fails: released after restart_timeout.
    {
        let mut node = h.node.lock();
        node.unknown = false;
        node.stop_fails = true;
        node.running = false;
    }
    let did = h
        .until(60, |d| matches!(d, Did::Released(_) | Did::Restarted(_)))
        .await;
    assert!(
        did.iter().any(|d| matches!(d, Did::Restarted(_))),
        "{did:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_won_key_whose_answer_was_lost_is_read_back_and_taken_into_office() {
    let mut lost_once = true;
    let mut h = Harness::with(standby(1000), |store| {
        Memory::client(store).with_faults(Box::new(move |call: &Call| {
            if matches!(call, Call::Txn(..)) && lost_once {
                lost_once = false;
                return Fault::AnswerLost(Duration::from_millis(300));
            }
            Fault::None
        }))
    });
    let did = h.tick().await;
    assert!(matches!(did[0], Did::Acquired(_)), "{did:?}");
    assert!(did.iter().any(|d| matches!(d, Did::Promoted(_))), "{did:?}");
    assert!(h.ha.watchdog_armed());
}

#[tokio::test(start_paused = true)]
async fn a_create_resent_to_another_endpoint_is_read_back_not_taken_for_lost() {
    let mut resent_once = true;
    let mut h = Harness::with(standby(1000), |store| {
        Memory::client(store).with_faults(Box::new(move |call: &Call| {
            if matches!(call, Call::Txn(..)) && resent_once {
                resent_once = false;
                return Fault::Resent;
            }
            Fault::None
        }))
    });
    h.until(4, |d| matches!(d, Did::Acquired(_))).await;
    assert_eq!(h.holder().as_deref(), Some("m0"));
    assert!(h.ha.watchdog_armed());
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_renewal_is_refused_during_an_etcd_election_tries_again_in_the_same_pass() {
    // etcd answers "leader changed" at once while it elects a new Raft
    // leader; the loop's other calls then wait out their timeouts. The
    // renewal is tried again within the pass, not one pass (and several
    // timeouts) later.
    let refusals = Arc::new(Mutex::new(0));
    let left = refusals.clone();
    let mut h = Harness::with(Node::new(true, 1000), |store| {
        Memory::client(store).with_faults(Box::new(move |call: &Call| {
            let mut left = left.lock();
            if matches!(call, Call::KeepAlive(_)) && *left > 0 {
                *left -= 1;
                return Fault::Unsent(Duration::from_millis(5));
            }
            Fault::None
        }))
    });
    h.leader("m0", Duration::from_secs(3));
    h.tick().await;
    let lease = h.store.lock().get(&h.keys.leader).unwrap().lease;
    tokio::time::sleep(Duration::from_millis(500)).await;
    *refusals.lock() = 3;
    let before = h.store.lock().lease_expiry(lease).unwrap();
    let did = h.tick().await;
    assert_eq!(did, vec![Did::Renewed]);
    assert_eq!(*refusals.lock(), 0, "every refusal was met by a new try");
    let after = h.store.lock().lease_expiry(lease).unwrap();
    assert!(after > before, "the lease was renewed within the pass");
}

#[tokio::test(start_paused = true)]
async fn a_leader_cut_from_the_store_stops_serving_before_its_lease_can_expire() {
    let cut = Arc::new(Mutex::new(false));
    let flag = cut.clone();
    let mut h = Harness::with(Node::new(true, 1000), |store| {
        Memory::client(store).with_faults(Box::new(move |_: &Call| {
            if *flag.lock() {
                Fault::Unsent(Duration::from_millis(300))
            } else {
                Fault::None
            }
        }))
    });
    h.leader("m0", Duration::from_secs(3));
    h.tick().await;
    *cut.lock() = true;
    let did = h.until(10, |d| matches!(d, Did::LostLease(_))).await;
    assert!(did.iter().any(|d| matches!(d, Did::Demoted(_))), "{did:?}");
    assert!(!h.node.lock().primary);
    let lease = h.store.lock().get(&h.keys.leader).map(|kv| kv.lease);
    let expiry = lease.and_then(|l| h.store.lock().lease_expiry(l));
    assert!(
        expiry.is_none_or(|e| tokio::time::Instant::now() < e),
        "stopped before the lease could expire"
    );
}

#[tokio::test(start_paused = true)]
async fn a_candidate_whose_fence_cannot_start_does_not_promote_and_gives_the_key_back() {
    let mut node = standby(1000);
    node.fence_broken = true;
    let mut h = Harness::new(node);
    let did = h.tick().await;
    assert!(matches!(did[0], Did::Acquired(_)), "{did:?}");
    assert!(
        did.iter()
            .any(|d| matches!(d, Did::Failed(why) if why.contains("watchdog"))),
        "{did:?}"
    );
    assert!(
        !did.iter().any(|d| matches!(d, Did::Promoted(_))),
        "{did:?}"
    );
    assert!(!h.node.lock().primary);
    assert_eq!(h.holder(), None, "the key is given back");
}

#[tokio::test(start_paused = true)]
async fn under_synchronous_replication_a_candidate_that_cannot_set_its_standbys_does_not_promote() {
    let mut node = standby(1000);
    node.sql_fails = true;
    let mut h = Harness::configured(node, Memory::client, |spec| spec.synchronous = true);
    let did = h.tick().await;
    assert!(matches!(did[0], Did::Acquired(_)), "{did:?}");
    assert!(
        !did.iter().any(|d| matches!(d, Did::Promoted(_))),
        "{did:?}"
    );
    assert!(!h.node.lock().primary);
    assert_eq!(h.holder(), None, "the key is given back");
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_stop_its_server_keeps_the_fence_no_later_than_its_term_had() {
    let mut h = Harness::new(Node::new(true, 1000));
    h.leader("m0", Duration::from_secs(3));
    h.tick().await;
    let armed = h.node.lock().fences[0].1.unwrap();
    h.node.lock().stop_fails = true;
    let lease = h.store.lock().get(&h.keys.leader).unwrap().lease;
    Memory::client(h.store.clone()).revoke(lease).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let did = h.tick().await;
    assert!(matches!(&did[0], Did::LostLease(_)), "{did:?}");
    let fence = h.node.lock().fences[0].1.expect("still armed");
    assert!(fence <= armed, "re-armed later than the term's fence");
    // The fence fires at once: the lease is gone, the key may be taken.
    let now = tokio::time::Instant::now();
    assert!(fence <= now + spec(0).ttl / 6, "{:?}", fence - now);
}

#[tokio::test(start_paused = true)]
async fn a_former_primary_waiting_to_retry_its_rewind_never_runs_as_a_primary() {
    let mut node = Node::new(true, 1200);
    node.rewind_fails = true;
    let mut h = Harness::new(node);
    h.other(1, "primary", 1000);
    h.leader("m1", Duration::from_secs(600));
    let did = h.tick().await;
    assert!(did.iter().any(|d| matches!(d, Did::Failed(_))), "{did:?}");
    // Started again as a primary by someone (not marked a standby's).
    {
        let mut node = h.node.lock();
        node.running = true;
        node.primary = true;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let did = h.tick().await;
    assert!(matches!(&did[0], Did::Demoted(_)), "{did:?}");
    assert!(!h.node.lock().primary);
}

#[tokio::test(start_paused = true)]
async fn a_diverged_former_primary_on_an_old_timeline_does_not_take_a_free_key() {
    let mut h = Harness::new(Node::new(true, 5000));
    std::fs::write(h._dir.path().join("cluster-leader"), b"").unwrap();
    h.other(1, "standby", 1000);
    h.store.lock().put(&h.keys.timeline, "2", 0).unwrap();
    let did = h.tick().await;
    assert!(
        matches!(&did[0], Did::Demoted(why) if why.contains("timeline")),
        "{did:?}"
    );
    assert_eq!(h.holder(), None);
    assert!(!h.node.lock().primary);
}

#[tokio::test(start_paused = true)]
async fn a_standby_on_another_timeline_than_the_last_leader_is_no_candidate() {
    let mut h = Harness::new(standby(5000));
    h.store.lock().put(&h.keys.timeline, "2", 0).unwrap();
    let did = h.tick().await;
    assert!(
        matches!(&did[0], Did::NoCandidate(why) if why.contains("timeline")),
        "{did:?}"
    );
    assert_eq!(h.holder(), None);
}

/// Seed 1968: two promotions to "timeline 4" from the same point (a
/// switchover's, whose leader was then cut off with WAL up to 1236, and
/// a later election's, up to 1225). The key names whose term is last; a
/// former leader on the same timeline number whose term it is not is
/// never elected (its WAL past the switch point is not the cluster's),
/// whatever the switch point; on its own term it is.
#[tokio::test(start_paused = true)]
async fn a_former_leader_on_a_reused_timeline_number_is_elected_only_on_its_own_term() {
    let table = [
        ("4:1195:m1", false),
        ("4:1100:m1", false),
        ("4::m1", false),
        ("4:1195:m0", true),
        // A key from before terms were named: the number alone.
        ("4:1195", true),
    ];
    for (term, elected) in table {
        let mut node = standby(1236);
        node.timeline = 4;
        node.history = vec![(1, 1048), (2, 1109), (3, 1195)];
        let mut h = Harness::new(node);
        // It led (the former leader's marker).
        std::fs::write(h._dir.path().join("cluster-leader"), b"").unwrap();
        let s = spec(1);
        let other = Member {
            name: s.name.clone(),
            role: "standby".into(),
            healthy: true,
            lsn: Some(1225),
            timeline: Some(4),
            host: s.host.clone(),
            port: s.port,
            ..Member::default()
        };
        {
            let mut store = h.store.lock();
            let lease = store.grant(Duration::from_secs(30));
            store
                .put(
                    &h.keys.member(&s.name),
                    &serde_json::to_string(&other).unwrap(),
                    lease,
                )
                .unwrap();
            store.put(&h.keys.timeline, term, 0).unwrap();
        }
        h.optime(1225);
        let did = h.tick().await;
        if elected {
            assert!(matches!(did[0], Did::Acquired(_)), "{term}: {did:?}");
            assert!(matches!(did[1], Did::Promoted(_)), "{term}: {did:?}");
            assert_eq!(h.holder().as_deref(), Some("m0"), "{term}");
        } else {
            assert!(
                matches!(&did[0], Did::NoCandidate(why) if why.contains("diverged")),
                "{term}: {did:?}"
            );
            assert_eq!(h.holder(), None, "{term}");
            assert!(!h.node.lock().primary, "{term}");
        }
    }
}

/// Seed 3239: a standby elected just behind the last leader's switch
/// point (999 on timeline 1; that leader's term, timeline 2, began at
/// 1000; one exactly there is no candidate: [`reuses_the_term`]) received
/// WAL of timeline 1 before its promotion, from a former primary restarted
/// read-only: past that point (it would open a timeline from WAL the last
/// leader never had), or up to exactly it (it would begin a second
/// timeline 2 there, which no one could tell from the last leader's). It
/// is not promoted, the key is released and the last leader's term put
/// back.
///
/// [`reuses_the_term`]: crate::cluster::member::reuses_the_term
#[tokio::test(start_paused = true)]
async fn a_standby_that_received_past_the_switch_point_after_its_election_is_not_promoted() {
    for received in [1001, 1000] {
        let mut h = Harness::with_server_faults(standby(999), move |call, node| {
            if super::harness::takes_the_key_for(call, "m0") {
                // While the key is taken: more of timeline 1.
                node.lock().lsn = received;
            }
            Fault::None
        });
        h.store
            .lock()
            .put(&h.keys.timeline, "2:1000:m1", 0)
            .unwrap();
        let did = h.tick().await;
        assert!(matches!(did[0], Did::Acquired(_)), "{received}: {did:?}");
        assert!(
            did.iter().any(
                |d| matches!(d, Did::Failed(why) if why.contains("not promoted: since it was elected"))
            ),
            "{received}: {did:?}"
        );
        assert!(
            !did.iter().any(|d| matches!(d, Did::Promoted(_))),
            "{received}: {did:?}"
        );
        assert!(!h.node.lock().primary, "{received}");
        assert_eq!(h.holder(), None, "{received}");
        assert_eq!(h.timeline().as_deref(), Some("2:1000:m1"), "{received}");
    }
}

/// Seed 3566: the standbys with the most WAL are on a timeline the last
/// leader's term left (a stale "timeline 6"); they are no candidates, and
/// must not hold off the one on the last leader's history either.
#[tokio::test(start_paused = true)]
async fn a_rival_off_the_last_leaders_history_does_not_hold_off_a_candidate() {
    let mut node = standby(1261);
    node.timeline = 8;
    node.history = vec![(5, 1243), (6, 1249), (7, 1251)];
    let mut h = Harness::new(node);
    let s = spec(1);
    let stale = Member {
        name: s.name.clone(),
        role: "standby".into(),
        healthy: true,
        lsn: Some(1292),
        timeline: Some(6),
        host: s.host.clone(),
        port: s.port,
        ..Member::default()
    };
    {
        let mut store = h.store.lock();
        let lease = store.grant(Duration::from_secs(30));
        store
            .put(
                &h.keys.member(&s.name),
                &serde_json::to_string(&stale).unwrap(),
                lease,
            )
            .unwrap();
        store.put(&h.keys.timeline, "8:1251:m0", 0).unwrap();
    }
    h.optime(1242);
    let did = h.tick().await;
    assert!(matches!(did[0], Did::Acquired(_)), "{did:?}");
    assert!(matches!(did[1], Did::Promoted(_)), "{did:?}");
    assert_eq!(h.holder().as_deref(), Some("m0"));
}
