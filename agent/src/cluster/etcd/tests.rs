//! Tests of the etcd client against loopback endpoints ([`super::answering`]):
//! which error kind each failure makes, and what is resent where.

use super::*;

#[test]
fn a_prefix_range_ends_after_the_prefix() {
    assert_eq!(B64.decode(prefix_end("/a/")).unwrap(), b"/a0");
}

/// An endpoint that accepts connections and never answers, one that
/// answers every request (counted), and a port nobody listens on.
async fn endpoints() -> (Vec<String>, std::sync::Arc<AtomicUsize>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_at = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let (answering_at, count) = answering::counting(r#"{"succeeded":true,"kvs":[]}"#).await;
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_at = refused.local_addr().unwrap();
    drop(refused);
    (
        vec![
            format!("http://{refused_at}"),
            format!("http://{silent_at}"),
            format!("http://{answering_at}"),
        ],
        count,
    )
}

#[tokio::test]
async fn a_sent_transaction_whose_answer_is_lost_is_never_resent_elsewhere() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (urls, count) = endpoints().await;
    let etcd = Etcd::new(urls.clone(), Duration::from_millis(300)).unwrap();
    // Refused (never sent): the next endpoint; silent (sent, no
    // answer): an error, not the third endpoint.
    let lost = etcd.create("/k", "me", 1).await.unwrap_err();
    assert!(matches!(lost, EtcdError::AnswerLost(_)), "{lost:?}");
    assert!(lost.to_string().contains("not resent"), "{lost}");
    assert_eq!(count.load(Ordering::SeqCst), 0);
    // A read goes on to the endpoint that answers.
    assert_eq!(etcd.get("/k").await.unwrap(), None);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // An unreachable endpoint before one that answers: the
    // transaction never left, so it goes to the next.
    let etcd = Etcd::new(
        vec![urls[0].clone(), urls[2].clone()],
        Duration::from_millis(300),
    )
    .unwrap();
    assert!(etcd.create("/k", "me", 1).await.unwrap());
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

/// What a row expects: the kind (a variant) and a part of the message.
type Kind = fn(&EtcdError) -> bool;

fn unreachable(e: &EtcdError) -> bool {
    matches!(e, EtcdError::Unreachable(_))
}
fn refused(e: &EtcdError) -> bool {
    matches!(e, EtcdError::Refused(_))
}
fn answer_lost(e: &EtcdError) -> bool {
    matches!(e, EtcdError::AnswerLost(_))
}
fn local(e: &EtcdError) -> bool {
    matches!(e, EtcdError::Local(_))
}

#[tokio::test]
async fn each_failure_is_made_with_its_kind_and_keeps_its_message() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (urls, _) = endpoints().await;
    let (nobody, silent) = (urls[0].clone(), urls[1].clone());
    let url = |at: std::net::SocketAddr| format!("http://{at}");
    let (denied, _) = answering::answering(
        "403 Forbidden",
        r#"{"error":"etcdserver: permission denied","code":7}"#,
    )
    .await;
    let (cancelled, _) = answering::answering(
        "408 Request Timeout",
        r#"{"error":"etcdserver: request cancelled","code":1}"#,
    )
    .await;
    let (named, _) = answering::answering(
        "400 Bad Request",
        "CommonName of client sending a request against gateway will be ignored and not used as expected\n",
    )
    .await;
    let (garbled, _) = answering::counting("not json").await;
    let (unrenewed, _) =
        answering::counting(r#"{"error":{"grpc_code":14,"message":"etcdserver: leader changed"}}"#)
            .await;
    let (no_lease, _) = answering::counting(r#"{"ID":"0"}"#).await;
    let timeout = Duration::from_millis(300);
    let at = |url: String| Etcd::new(vec![url], timeout).unwrap();
    let user = crate::config::EtcdAccess {
        user: Some("agent".into()),
        password: Some(crate::config::Secret::new("wrong")),
        ..Default::default()
    };
    let as_user = Etcd::with_access(vec![url(denied)], timeout, &user, "/watchpost/main/").unwrap();
    let missing_ca = crate::config::EtcdAccess {
        ca: Some("/nonexistent/watchpost-test/ca.pem".into()),
        ..Default::default()
    };
    let rows: Vec<(&str, Result<(), EtcdError>, Kind, &str)> = vec![
        (
            "a read, nobody listening",
            at(nobody.clone()).get("/k").await.map(drop),
            unreachable,
            UNREACHABLE,
        ),
        (
            "a transaction, nobody listening (never sent)",
            at(nobody.clone()).create("/k", "me", 1).await.map(drop),
            unreachable,
            UNREACHABLE,
        ),
        (
            "a read, no answer (resent until no endpoint is left)",
            at(silent.clone()).get("/k").await.map(drop),
            unreachable,
            UNREACHABLE,
        ),
        (
            "a transaction the gateway calls cancelled (408: may have been applied)",
            at(url(cancelled)).create("/k", "me", 1).await.map(drop),
            answer_lost,
            "it may have been applied",
        ),
        (
            "a transaction, no answer (sent: may have been applied)",
            at(silent.clone()).create("/k", "me", 1).await.map(drop),
            answer_lost,
            "it may have been applied; not resent",
        ),
        (
            "a put refused",
            at(url(denied)).put("/k", "v", 0).await,
            refused,
            "has no permission on the cluster's keys",
        ),
        (
            "a transaction refused",
            at(url(denied)).create("/k", "me", 1).await.map(drop),
            refused,
            "403 Forbidden",
        ),
        (
            "a refusal in plain text (the gateway's own, without a gRPC code)",
            at(url(named)).get("/k").await.map(drop),
            refused,
            "400 Bad Request CommonName of client sending a request against gateway will be ignored and not used as expected: etcd's JSON gateway refuses client certificates that have a CommonName",
        ),
        (
            "a password refused",
            as_user.get("/k").await.map(drop),
            refused,
            "etcd refused to authenticate user `agent`",
        ),
        (
            "an unreadable answer",
            at(url(garbled)).get("/k").await.map(drop),
            answer_lost,
            "unreadable answer",
        ),
        (
            "a renewal answered with an error",
            at(url(unrenewed)).keep_alive(7).await.map(drop),
            refused,
            "etcd did not renew the lease: etcdserver: leader changed",
        ),
        (
            "a grant answered without a lease",
            at(url(no_lease))
                .grant(Duration::from_secs(3))
                .await
                .map(drop),
            refused,
            "etcd granted no lease",
        ),
        (
            "a client that cannot be set up",
            Etcd::with_access(vec![nobody.clone()], timeout, &missing_ca, "/p/").map(drop),
            local,
            "[cluster] `etcd_ca`",
        ),
    ];
    for (what, got, kind, says) in rows {
        let e = got.expect_err(what);
        assert!(kind(&e), "{what}: {e:?}");
        assert!(e.to_string().contains(says), "{what}: {e}");
        assert_eq!(e.unreachable(), unreachable(&e), "{what}");
    }
}

#[test]
fn gateway_integers_are_strings() {
    assert_eq!(int(&json!("42")), 42);
    assert_eq!(int(&json!(7)), 7);
    assert_eq!(int(&Value::Null), 0);
    // A member id above i64::MAX (etcd's ids are random uint64s).
    assert_eq!(uint(&json!("13668033151171901709")), 13668033151171901709);
    assert_eq!(uint(&json!(7)), 7);
    assert_eq!(uint(&json!("-1")), 0);
}
