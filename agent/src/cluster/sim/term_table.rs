//! Table tests of the `timeline` key as the leader writes it
//! ([`crate::cluster::term`]): rewritten with where the promotion really
//! began, written only under the leader's lease and read back when the
//! answer is lost; and of the leader key's release, compared on the
//! lease as well as the name.

use super::fake::Node;
use super::harness::Harness;
use crate::cluster::dcs::memory::{Call, Fault, Memory};
use crate::cluster::did::Did;
use crate::cluster::etcd::Op;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

type SharedStore = Arc<Mutex<crate::cluster::dcs::memory::Store>>;

/// Whether `call` is a transaction that writes the `timeline` key.
fn writes_timeline(call: &Call) -> bool {
    matches!(call, Call::Txn(_, _, ops) if ops.iter().any(
        |op| matches!(op, Op::Put { key, .. } if key.ends_with("/timeline"))
    ))
}

fn timeline(h: &Harness) -> Option<String> {
    h.store
        .lock()
        .get(&h.keys.timeline)
        .map(|kv| kv.value.clone())
}

/// A standby elected at 1000 receives three more bytes before its
/// promotion: its timeline begins at 1003, and the key says so once it
/// is promoted (its standbys, which share that start, stay candidates).
#[tokio::test(start_paused = true)]
async fn a_promoted_standby_rewrites_its_term_with_where_its_timeline_began() {
    let mut h = Harness::with_server_faults(Node::new(false, 1000), |call, node| {
        if let Call::Txn(when, _, _) = call
            && when
                .iter()
                .any(|(k, v)| k.ends_with("/leader") && v.is_none())
        {
            node.lock().lsn = 1003;
        }
        Fault::None
    });
    let did = h.tick().await;
    assert!(matches!(did[1], Did::Promoted(_)), "{did:?}");
    assert_eq!(h.node.lock().history, vec![(1, 1003)]);
    assert_eq!(timeline(&h).as_deref(), Some("2:1003:m0"));
}

/// The leader's server, restarted in place, comes up in recovery: the
/// new term is written under the leader's lease before the promotion;
/// its answer lost, the key is read back (written: promoted); not sent,
/// nothing is promoted until a later pass writes it.
#[tokio::test(start_paused = true)]
async fn a_leader_restarted_in_place_promotes_only_once_its_term_is_read_back() {
    for fault in [
        Fault::AnswerLost(Duration::from_millis(300)),
        Fault::Unsent(Duration::from_millis(300)),
    ] {
        // The fault of the next write of the timeline, once.
        let next: Arc<Mutex<Option<Fault>>> = Arc::default();
        let taken = next.clone();
        let mut h = Harness::with(Node::new(true, 1000), |store| {
            Memory::client(store).with_faults(Box::new(move |call: &Call| {
                let pending = taken.lock().take();
                match pending {
                    Some(fault) if writes_timeline(call) => fault,
                    other => {
                        *taken.lock() = other;
                        Fault::None
                    }
                }
            }))
        });
        h.leader("m0", Duration::from_secs(30));
        let did = h.tick().await;
        assert!(matches!(did[0], Did::Acquired(_)), "{fault:?}: {did:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.tick().await;
        // A term opened before the key existed: written, with where
        // timeline 1 began.
        assert_eq!(timeline(&h).as_deref(), Some("1:0:m0"), "{fault:?}");
        *next.lock() = Some(fault);
        {
            let mut node = h.node.lock();
            node.primary = false;
            node.standby_marked = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let did = h.tick().await;
        let promoted = did.iter().any(|d| matches!(d, Did::Promoted(_)));
        match fault {
            Fault::AnswerLost(_) => assert!(promoted, "{fault:?}: {did:?}"),
            _ => {
                assert!(!promoted, "{fault:?}: {did:?}");
                assert!(!h.node.lock().primary);
                tokio::time::sleep(Duration::from_millis(500)).await;
                let did = h.tick().await;
                assert!(
                    did.iter().any(|d| matches!(d, Did::Promoted(_))),
                    "{fault:?}: {did:?}"
                );
            }
        }
        assert!(next.lock().is_none(), "{fault:?}: the fault was met");
        assert!(h.node.lock().primary);
        assert_eq!(timeline(&h).as_deref(), Some("2:1000:m0"), "{fault:?}");
    }
}

/// Between the read of the scope and the write of the new term, the key
/// was taken over under another lease (a later run of this member's
/// agent): the term is not written, the server not promoted.
#[tokio::test(start_paused = true)]
async fn a_term_is_never_written_nor_promoted_without_the_leader_lease() {
    let store_slot: Arc<Mutex<Option<(SharedStore, String)>>> = Arc::default();
    let reached = store_slot.clone();
    let mut h = Harness::with(Node::new(true, 1000), |store| {
        Memory::client(store).with_faults(Box::new(move |call: &Call| {
            if writes_timeline(call)
                && let Some((store, key)) = reached.lock().as_ref()
            {
                let mut store = store.lock();
                let fresh = store.grant(Duration::from_secs(30));
                store.put(key, "m0", fresh).unwrap();
            }
            Fault::None
        }))
    });
    h.leader("m0", Duration::from_secs(30));
    h.tick().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.tick().await;
    {
        let mut node = h.node.lock();
        node.primary = false;
        node.standby_marked = true;
    }
    *store_slot.lock() = Some((h.store.clone(), h.keys.leader.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let did = h.tick().await;
    assert!(
        !did.iter().any(|d| matches!(d, Did::Promoted(_))),
        "{did:?}"
    );
    assert!(!h.node.lock().primary);
    assert_eq!(timeline(&h).as_deref(), Some("1:0:m0"));
}

/// The release compares the lease id, not only the name: a key that
/// names this member under another lease (a later run of its agent) is
/// left alone; its own is deleted.
#[tokio::test(start_paused = true)]
async fn the_leader_key_is_released_only_under_this_nodes_lease() {
    let mut h = Harness::new(Node::new(false, 1000));
    let mine = h.store.lock().grant(Duration::from_secs(30));
    h.ha.lease = Some(mine);
    let other = h.leader("m0", Duration::from_secs(30));
    h.ha.release_key().await.unwrap();
    let kv = h.store.lock().get(&h.keys.leader).cloned();
    assert_eq!(
        kv.map(|kv| (kv.value, kv.lease)),
        Some(("m0".into(), other))
    );
    h.store.lock().put(&h.keys.leader, "m0", mine).unwrap();
    h.ha.release_key().await.unwrap();
    assert!(h.store.lock().get(&h.keys.leader).is_none());
}
