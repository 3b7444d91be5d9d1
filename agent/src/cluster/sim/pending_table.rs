//! Table tests of a term that never opened ([`crate::cluster::pending`]):
//! a member takes the leader key and writes its term (`T+1:LSN:NAME`) in
//! one transaction, then its node is killed before it promotes, and every
//! server is past `LSN` on timeline `T` by the time its agent is back.
//! The restarted agent reads the record its earlier run left: a promotion
//! never asked proves the term never opened, and its timeline is put back
//! (seeds 7676 and 10327: before, no member was ever a candidate again);
//! a promotion asked may have opened it, and "cannot tell" never counts
//! as "did not open": the term stays.

use super::fake::Node;
use super::harness::Harness;
use crate::cluster::dcs::memory::{Call, Fault, Memory};
use crate::cluster::did::Did;
use crate::cluster::pending_term::{FILE, PendingTerm};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn a_term_whose_node_was_killed_before_its_promotion_is_put_back_by_its_restarted_agent() {
    for asked in [false, true] {
        // The answer to taking the key is lost for longer than the agent
        // lives: applied, then the node is killed mid-call.
        let once = Arc::new(Mutex::new(true));
        let mut h = Harness::with(Node::new(false, 1000), |store| {
            Memory::client(store).with_faults(Box::new(move |call: &Call| match call {
                Call::Txn(when, _, _)
                    if when
                        .iter()
                        .any(|(k, v)| k.ends_with("/leader") && v.is_none())
                        && std::mem::take(&mut *once.lock()) =>
                {
                    Fault::AnswerLost(Duration::from_secs(60))
                }
                _ => Fault::None,
            }))
        });
        h.store.lock().put(&h.keys.timeline, "1:0:m1", 0).unwrap();
        h.other(1, "standby", 900);
        let killed = tokio::time::timeout(Duration::from_secs(1), h.tick()).await;
        assert!(killed.is_err(), "{asked}: the pass was to be cut short");
        assert_eq!(h.timeline().as_deref(), Some("2:1000:m0"), "{asked}");
        assert_eq!(h.holder().as_deref(), Some("m0"), "{asked}");
        assert!(!h.node.lock().primary, "{asked}: never promoted");
        if asked {
            // Killed right after asking for the promotion instead: the
            // record says so (the fake's promotion never came).
            let dir = h._dir.path();
            let mut pending = PendingTerm::load(dir).unwrap().expect("a record");
            pending.asked = true;
            std::fs::write(dir.join(FILE), pending.text()).unwrap();
        }
        // The node is killed; its lease expires; its server comes back
        // read-only and streams from `m1`'s (the former primary, restarted
        // read-only too) past the switch point the term named.
        {
            let mut node = h.node.lock();
            node.running = false;
        }
        tokio::time::sleep(Duration::from_secs(40)).await;
        {
            let mut node = h.node.lock();
            node.running = true;
            node.lsn = 1100;
        }
        h.other(1, "standby", 1100);
        h.restart();
        let did = h.tick().await;
        let promoted = did.iter().any(|d| matches!(d, Did::Promoted(_)));
        if asked {
            // Whether the term opened cannot be told: it stays, and no
            // member past its switch point is a candidate.
            assert!(!promoted, "{did:?}");
            assert_eq!(h.timeline().as_deref(), Some("2:1000:m0"));
            assert!(
                did.iter().any(|d| matches!(d, Did::NoCandidate(_))),
                "{did:?}"
            );
        } else {
            // Put back, then the most advanced standby (m0, by name on a
            // tie) takes the key and promotes from 1100.
            assert!(promoted, "{did:?}");
            assert_eq!(h.timeline().as_deref(), Some("2:1100:m0"));
            assert!(h.node.lock().primary);
            assert_eq!(PendingTerm::load(h._dir.path()), Ok(None));
        }
    }
}

/// Seed 11967: a former leader (its marker present: it led, and has not
/// streamed since) is the last leader, so it may take the key again; its
/// promotion is never attempted (its fence does not run). The failed
/// election must leave the marker: it was set by a term that opened, and
/// cleared it made this member a candidate once a later leader's term,
/// from the same point and with the same timeline number, was the last.
#[tokio::test(start_paused = true)]
async fn a_failed_election_of_a_former_leader_keeps_its_marker() {
    let mut node = Node::new(false, 1128);
    node.timeline = 3;
    node.history = vec![(1, 1036), (2, 1108)];
    node.fence_broken = true;
    let mut h = Harness::new(node);
    let marker = h._dir.path().join("cluster-leader");
    std::fs::write(&marker, "").unwrap();
    h.store
        .lock()
        .put(&h.keys.timeline, "3:1108:m0", 0)
        .unwrap();
    h.other(1, "standby", 1108);
    let did = h.tick().await;
    assert!(
        !did.iter().any(|d| matches!(d, Did::Promoted(_))),
        "{did:?}"
    );
    assert!(!h.node.lock().primary, "never promoted");
    assert_eq!(h.holder(), None, "the key is released: {did:?}");
    assert!(
        marker.exists(),
        "the former leader's marker was cleared by a failed election: {did:?}"
    );
}

/// Seed 18864: a member takes the key, its promotion is never asked (its
/// fence does not run), and its server cannot be stopped. That server was
/// not made writable in the term, so the key is given up without a stop
/// and the term put back. Before, the member kept a key it could not use
/// (a stop comes before every release), wrote its term again at every
/// pass, and once its lease lapsed that term barred every member: its own
/// server had received WAL past the switch point the term named.
#[tokio::test(start_paused = true)]
async fn a_key_whose_promotion_was_never_asked_is_given_up_without_a_stop() {
    let mut node = Node::new(false, 1000);
    node.fence_broken = true;
    node.stop_fails = true;
    let mut h = Harness::new(node);
    h.store.lock().put(&h.keys.timeline, "1:0:m1", 0).unwrap();
    h.other(1, "standby", 900);
    let did = h.tick().await;
    assert!(
        !did.iter().any(|d| matches!(d, Did::Promoted(_))),
        "{did:?}"
    );
    assert_eq!(h.holder(), None, "the key is given up: {did:?}");
    {
        let node = h.node.lock();
        assert!(node.running && !node.primary, "left running as a standby");
    }
    assert_eq!(h.timeline().as_deref(), Some("1:0:m1"), "the term put back");
    assert_eq!(PendingTerm::load(h._dir.path()), Ok(None));
    // Every later pass: the same, never a key kept.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let did = h.tick().await;
        assert_ne!(h.holder().as_deref(), Some("m0"), "{did:?}");
        assert_eq!(h.timeline().as_deref(), Some("1:0:m1"), "{did:?}");
    }
}

/// A term that never opened is put back only while no one holds the key:
/// when the compare fails, what failed is read back. The timeline still
/// this term's (the key still held: here by this node's lapsed lease) keeps
/// the record, and it is put back once the key is gone; before, any failed
/// compare dropped the record for good (seed 18864).
#[tokio::test(start_paused = true)]
async fn a_put_back_that_meets_a_held_key_is_tried_again_not_dropped() {
    let mut h = Harness::new(Node::new(false, 1000));
    let lapsed = h.store.lock().grant(Duration::from_secs(30));
    h.store.lock().put(&h.keys.leader, "m0", lapsed).unwrap();
    h.store
        .lock()
        .put(&h.keys.timeline, "2:1000:m0", 0)
        .unwrap();
    let pending = PendingTerm {
        before: crate::cluster::member::LeaderTimeline::parse("1:0:m1"),
        ours: crate::cluster::member::LeaderTimeline::parse("2:1000:m0"),
        asked: false,
    };
    h.ha.term_before = Some(pending.clone());
    h.ha.term_not_opened().await;
    assert_eq!(h.timeline().as_deref(), Some("2:1000:m0"));
    assert_eq!(h.ha.term_before.as_ref(), Some(&pending), "kept");
    // The key gone (its lease expired): put back.
    tokio::time::sleep(Duration::from_secs(31)).await;
    h.ha.put_back_pending_term().await;
    assert_eq!(h.timeline().as_deref(), Some("1:0:m1"));
    assert_eq!(h.ha.term_before, None);
    // Another term written since: left alone, the record dropped.
    h.store
        .lock()
        .put(&h.keys.timeline, "3:1200:m1", 0)
        .unwrap();
    h.ha.term_before = Some(pending);
    h.ha.term_not_opened().await;
    assert_eq!(h.timeline().as_deref(), Some("3:1200:m1"));
    assert_eq!(h.ha.term_before, None);
}

/// The reviewer's variant of seed 18864: the most advanced standby's
/// fence cannot start. Given up without a stop, its server would still be
/// the best candidate at once, take the key again and give it up again,
/// forever, while the next best standby waits for it. It stands aside for
/// a lease instead (published as no healthy standby), and the other one
/// leads.
#[tokio::test(start_paused = true)]
async fn a_member_that_gave_up_a_key_it_could_not_use_stands_aside_for_the_next() {
    let mut node = Node::new(false, 1000);
    node.fence_broken = true;
    let mut h = Harness::new(node);
    h.store.lock().put(&h.keys.timeline, "1:0:m2", 0).unwrap();
    let mut other = h.agent(1, Node::new(false, 900));
    let mut led = false;
    for _ in 0..8 {
        h.tick().await;
        other.ha.tick().await;
        if other.node.lock().primary {
            led = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(led, "m1 never led; the key: {:?}", h.holder());
    assert_eq!(h.holder().as_deref(), Some("m1"));
    assert!(!h.node.lock().primary);
}
