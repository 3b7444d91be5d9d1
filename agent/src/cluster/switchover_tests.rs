//! Tests of [`super`]: the request's checks, its stages, cancel and ask over the in-memory store.
use super::*;
use crate::cluster::dcs::memory::{Call, Fault, Memory};

fn member(name: &str, role: &str, upstream: Option<&str>, replayed: u64) -> Member {
    Member {
        name: name.into(),
        role: role.into(),
        healthy: role == "standby",
        lsn: Some(replayed),
        replayed: Some(replayed),
        streaming_from: upstream.map(String::from),
        host: "h".into(),
        port: 5432 + name.len() as u16,
        ..Member::default()
    }
}

fn cluster() -> Vec<Member> {
    vec![
        member("a", "primary", None, 1000),
        member("bb", "standby", Some("h:5433"), 1000),
        member("ccc", "standby", Some("h:5434"), 1000),
    ]
}

#[test]
fn a_streaming_standby_close_enough_may_take_over() {
    assert_eq!(refusal("bb", Some("a"), &cluster(), Some(1000), 0), None);
}

#[test]
fn each_refusal_names_its_reason() {
    let all = cluster();
    let why = |to: &str, leader: Option<&str>, members: &[Member], optime| {
        refusal(to, leader, members, optime, 100).unwrap()
    };
    assert!(why("bb", None, &all, None).contains("no leader"));
    assert!(why("a", Some("a"), &all, None).contains("already leads"));
    assert!(why("zz", Some("a"), &all, None).contains("no live member `zz` (members: a, bb, ccc)"));
    assert!(why("ccc", Some("a"), &all, None).contains("does not stream from the leader"));
    assert!(why("bb", Some("a"), &all, Some(5000)).contains("4000 bytes less"));
    let mut sick = all.clone();
    sick[1].healthy = false;
    assert!(why("bb", Some("a"), &sick, None).contains("not a healthy standby"));
    sick[1].healthy = true;
    sick[1].nofailover = true;
    assert!(why("bb", Some("a"), &sick, None).contains("nofailover"));
}

/// A store with the leader key `leader`'s and `members` published.
fn store_of(keys: &Keys, leader: &str, members: &[Member]) -> Memory {
    let dcs = Memory::new();
    {
        let mut store = dcs.store.lock();
        store.put(&keys.leader, leader, 0).unwrap();
        for m in members {
            let text = serde_json::to_string(m).unwrap();
            store.put(&keys.member(&m.name), &text, 0).unwrap();
        }
    }
    dcs
}

/// `fault` on every call `on` picks, none on the others.
fn faulty(dcs: Memory, on: fn(&Call) -> bool, fault: Fault) -> Memory {
    dcs.with_faults(Box::new(
        move |call: &Call| {
            if on(call) { fault } else { Fault::None }
        },
    ))
}

#[tokio::test(start_paused = true)]
async fn ask_tells_a_refusal_from_a_store_that_failed() {
    let keys = Keys::new("main");
    let ask_bb = |dcs: Memory| {
        let keys = keys.clone();
        async move { ask(&dcs, &keys, 0, "bb", None).await }
    };
    let scope = |call: &Call| matches!(call, Call::Scope(_));
    let txn = |call: &Call| matches!(call, Call::Txn(..));
    // Refusals: the cluster does not allow it (the text as before).
    let none = ask_bb(Memory::new()).await.unwrap_err();
    assert_eq!(
        none,
        AskError::Refused(
            "switchover to `bb` refused: there is no leader to switch over from".into()
        )
    );
    let pending = store_of(&keys, "a", &cluster());
    pending.store.lock().put(&keys.switchover, "{}", 0).unwrap();
    let pending = ask_bb(pending).await.unwrap_err();
    assert!(
        matches!(&pending, AskError::Refused(why) if why.starts_with("a switchover is already pending")),
        "{pending:?}"
    );
    // The leader changes between the read and the write: the compare
    // fails, a conflict.
    let dcs = store_of(&keys, "a", &cluster());
    let store = dcs.store.clone();
    let leader = keys.leader.clone();
    let moved = dcs.with_faults(Box::new(move |call: &Call| {
        if matches!(call, Call::Txn(..)) {
            store.lock().put(&leader, "ccc", 0).unwrap();
        }
        Fault::None
    }));
    let moved = ask_bb(moved).await.unwrap_err();
    assert!(
        matches!(&moved, AskError::Refused(why) if why.ends_with("try again")),
        "{moved:?}"
    );
    // etcd failed: its error, by kind, its text unchanged.
    let cut = faulty(
        store_of(&keys, "a", &cluster()),
        scope,
        Fault::Unsent(Duration::ZERO),
    );
    let cut = ask_bb(cut).await.unwrap_err();
    assert!(
        matches!(&cut, AskError::Store(EtcdError::Unreachable(_))),
        "{cut:?}"
    );
    assert_eq!(cut.to_string(), "no etcd endpoint answered: not sent");
    let lost = faulty(
        store_of(&keys, "a", &cluster()),
        txn,
        Fault::AnswerLost(Duration::ZERO),
    );
    let lost = ask_bb(lost).await.unwrap_err();
    assert!(
        matches!(&lost, AskError::Store(EtcdError::AnswerLost(_))),
        "{lost:?}"
    );
    let full = store_of(&keys, "a", &cluster());
    full.store.lock().nospace = true;
    let full = ask_bb(full).await.unwrap_err();
    assert!(
        matches!(&full, AskError::Store(EtcdError::Refused(_))),
        "{full:?}"
    );
    // And asked for: written.
    let dcs = store_of(&keys, "a", &cluster());
    let store = dcs.store.clone();
    let asked = ask_bb(dcs).await.unwrap();
    assert_eq!((asked.from.as_str(), asked.to.as_str()), ("a", "bb"));
    assert!(store.lock().get(&keys.switchover).is_some());
}

#[tokio::test(start_paused = true)]
async fn cancel_tells_a_refusal_from_a_store_that_failed() {
    let keys = Keys::new("main");
    let request = |stage: Stage| Request {
        id: "1".into(),
        from: "a".into(),
        to: "bb".into(),
        at: None,
        stage,
        lsn: None,
        reach: None,
        timeline: None,
        leader_lease: None,
    };
    let pending = |stage: Stage| {
        let dcs = store_of(&keys, "a", &cluster());
        let text = serde_json::to_string(&request(stage)).unwrap();
        dcs.store.lock().put(&keys.switchover, &text, 0).unwrap();
        dcs
    };
    let get = |call: &Call| matches!(call, Call::Get(_));
    let txn = |call: &Call| matches!(call, Call::Txn(..));
    // Refusals, for good: nothing to withdraw, or too late (the texts
    // as before).
    let none = cancel(&store_of(&keys, "a", &cluster()), &keys)
        .await
        .unwrap_err();
    assert_eq!(
        none,
        CancelError::Refused("no switchover is pending".into())
    );
    assert_eq!(none.store(), None);
    let started = cancel(&pending(Stage::Stopping), &keys).await.unwrap_err();
    assert!(
        matches!(&started, CancelError::Refused(why) if why.starts_with("the switchover to `bb` is already under way")),
        "{started:?}"
    );
    let garbled = store_of(&keys, "a", &cluster());
    garbled.store.lock().put(&keys.switchover, "{", 0).unwrap();
    let garbled = cancel(&garbled, &keys).await.unwrap_err();
    assert!(
        matches!(&garbled, CancelError::Refused(why) if why.starts_with("unreadable switchover request \"{\"")),
        "{garbled:?}"
    );
    // The leader marks it `stopping` between the read and the delete:
    // the compare fails, and the reason is read back.
    let dcs = pending(Stage::Requested);
    let store = dcs.store.clone();
    let key = keys.switchover.clone();
    let stopping = serde_json::to_string(&request(Stage::Stopping)).unwrap();
    let raced = dcs.with_faults(Box::new(move |call: &Call| {
        if matches!(call, Call::Txn(..)) {
            store.lock().put(&key, &stopping, 0).unwrap();
        }
        Fault::None
    }));
    let raced = cancel(&raced, &keys).await.unwrap_err();
    assert!(
        matches!(&raced, CancelError::Refused(why) if why.contains("already under way")),
        "{raced:?}"
    );
    // ... or gone: finished or withdrawn meanwhile (here: its lease
    // expires).
    let dcs = store_of(&keys, "a", &cluster());
    let store = dcs.store.clone();
    {
        let mut store = store.lock();
        let lease = store.grant(Duration::from_secs(10));
        let text = serde_json::to_string(&request(Stage::Requested)).unwrap();
        store.put(&keys.switchover, &text, lease).unwrap();
    }
    let gone = dcs.with_faults(Box::new(move |call: &Call| {
        if matches!(call, Call::Txn(..)) {
            store
                .lock()
                .expire(tokio::time::Instant::now() + Duration::from_secs(60));
        }
        Fault::None
    }));
    assert_eq!(
        cancel(&gone, &keys).await.unwrap_err(),
        CancelError::Refused("the switchover finished or was withdrawn meanwhile".into())
    );
    // etcd failed: its error, by kind, its text unchanged.
    let cut = faulty(
        pending(Stage::Requested),
        get,
        Fault::Unsent(Duration::ZERO),
    );
    let cut = cancel(&cut, &keys).await.unwrap_err();
    assert!(
        matches!(cut.store(), Some(EtcdError::Unreachable(_))),
        "{cut:?}"
    );
    assert_eq!(cut.to_string(), "no etcd endpoint answered: not sent");
    // The delete applied, its answer lost: it may have been withdrawn
    // (it was), which cancelling again shows.
    let dcs = pending(Stage::Requested);
    let store = dcs.store.clone();
    let lost = faulty(dcs, txn, Fault::AnswerLost(Duration::ZERO));
    let lost = cancel(&lost, &keys).await.unwrap_err();
    assert!(
        matches!(&lost, CancelError::Store(EtcdError::AnswerLost(_))),
        "{lost:?}"
    );
    let again = cancel(&Memory::client(store), &keys).await.unwrap_err();
    assert_eq!(
        again,
        CancelError::Refused("no switchover is pending".into())
    );
    // And withdrawn.
    let dcs = pending(Stage::Requested);
    let store = dcs.store.clone();
    assert_eq!(
        cancel(&dcs, &keys).await.unwrap(),
        request(Stage::Requested)
    );
    assert!(store.lock().get(&keys.switchover).is_none());
}

#[test]
fn a_request_is_due_at_its_time() {
    let mut r = Request {
        id: "1".into(),
        from: "a".into(),
        to: "b".into(),
        at: None,
        stage: Stage::Requested,
        lsn: None,
        reach: None,
        timeline: None,
        leader_lease: None,
    };
    assert!(r.due());
    r.at =
        Some(humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(3600)).to_string());
    assert!(!r.due());
    r.at = Some(humantime::format_rfc3339(SystemTime::now()).to_string());
    assert!(r.due());
}
