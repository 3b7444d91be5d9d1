//! Tests of how etcd is reached: `validate`'s warnings, etcd's refusals
//! told by their gRPC code, TLS failures told by the TLS library's error.

use super::*;

fn spec(etcd: &[&str], access: EtcdAccess) -> ClusterSpec {
    let text = "[targets.local]\ndsn = \"host=127.0.0.1 user=postgres\"\ndata_dir = \"/d\"\n\n[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.9.9.9:5432\"\n";
    let mut spec = crate::config::parse_str("w.toml", text, std::path::Path::new("/"))
        .unwrap()
        .cluster
        .unwrap();
    spec.etcd = etcd.iter().map(|e| e.to_string()).collect();
    spec.etcd_access = access;
    spec
}

#[test]
fn validate_warns_on_plain_http_off_loopback_only() {
    let closed = EtcdAccess {
        user: Some("agent".into()),
        password: Some(Secret::new("x")),
        ca: Some("/ca.pem".into()),
        ..EtcdAccess::default()
    };
    for quiet in [
        "http://127.0.0.1:2379",
        "http://localhost:2379",
        "http://[::1]:2379",
        "https://10.0.0.1:2379",
    ] {
        assert!(
            warnings(&spec(&[quiet], closed.clone())).is_empty(),
            "{quiet}"
        );
    }
    let open = warnings(&spec(&["http://10.0.0.1:2379"], closed.clone()));
    assert!(open[0].contains("plain http to a non-loopback"), "{open:?}");
    let no_ca = warnings(&spec(
        &["https://10.0.0.1:2379"],
        EtcdAccess { ca: None, ..closed },
    ));
    assert!(no_ca[0].contains("`etcd_ca`"), "{no_ca:?}");
    let no_user = warnings(&spec(&["https://10.0.0.1:2379"], EtcdAccess::default()));
    assert!(
        no_user.iter().any(|w| w.contains("`etcd_user`")),
        "{no_user:?}"
    );
}

#[test]
fn refusals_name_the_fix() {
    let explain = |body: Value| explain_refusal(&body, Some("agent"), "/watchpost/main/");
    // As etcd 3.4.23 answers them (its gateway's JSON, gRPC code).
    let denied = explain(
        json!({"error": "etcdserver: permission denied", "message": "etcdserver: permission denied", "code": 7}),
    );
    assert!(
        denied.starts_with("etcdserver: permission denied: "),
        "{denied}"
    );
    assert!(denied.contains("etcd user `agent`"), "{denied}");
    assert!(denied.contains("readwrite /watchpost/main/"), "{denied}");
    let full = explain(
        json!({"error": "etcdserver: mvcc: database space exceeded", "message": "etcdserver: mvcc: database space exceeded", "code": 8}),
    );
    assert!(full.contains("NOSPACE alarm"), "{full}");
    let empty = explain(
        json!({"error": "etcdserver: user name is empty", "message": "etcdserver: user name is empty", "code": 3}),
    );
    assert!(empty.contains("set `etcd_user`"), "{empty}");
    // The gateway's own refusal is plain text, without a code.
    let named = explain(json!(
        "CommonName of client sending a request against gateway will be ignored and not used as expected"
    ));
    assert!(named.contains("empty subject CN"), "{named}");
    // Decided on the code where it tells the case alone: other words
    // with code 7 are a permission refusal, the same words with
    // another code are not.
    assert!(
        explain(json!({"message": "etcdserver: access refused", "code": 7})).contains("readwrite")
    );
    assert_eq!(
        explain(json!({"message": "etcdserver: permission denied (proxied)", "code": 2})),
        "etcdserver: permission denied (proxied)"
    );
    // Code 8 is also "too many requests": no NOSPACE advice for it.
    assert_eq!(
        explain(json!({"message": "etcdserver: too many requests", "code": 8})),
        "etcdserver: too many requests"
    );
    // Without a code, the text alone.
    assert!(explain(json!({"error": "etcdserver: permission denied"})).contains("readwrite"));
    assert!(
        explain_refusal(
            &json!({"error": "etcdserver: user name is empty"}),
            None,
            "/p/"
        )
        .contains("etcd_user")
    );
}

#[test]
fn an_invalid_token_is_told_by_its_code() {
    // etcd 3.4.23: a token it never gave, and one past --auth-token-ttl.
    assert!(token_expired(
        &json!({"error": "etcdserver: invalid auth token", "message": "etcdserver: invalid auth token", "code": 16})
    ));
    // Code 16 whatever the words; the words under another code are not.
    assert!(token_expired(
        &json!({"message": "etcdserver: token gone", "code": 16})
    ));
    assert!(!token_expired(
        &json!({"message": "etcdserver: invalid auth token", "code": 3})
    ));
    // A streamed call's error object carries `grpc_code`.
    assert!(token_expired(
        &json!({"grpc_code": 16, "message": "etcdserver: token gone"})
    ));
    // Without a code, the text.
    assert!(token_expired(
        &json!({"error": "etcdserver: invalid auth token"})
    ));
    assert!(token_expired(
        &json!({"error": "etcdserver: auth token is expired"})
    ));
    assert!(!token_expired(
        &json!({"error": "etcdserver: permission denied", "code": 7})
    ));
    assert!(!token_expired(
        &json!({"error": "etcdserver: permission denied"})
    ));
}

/// An error with `source` behind it, as reqwest and hyper nest theirs.
#[derive(Debug)]
struct Wrapped(&'static str, Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.1)
    }
}

/// A client error around the TLS library's error `inner`, as reqwest
/// reports a failed handshake: hyper-rustls's I/O error around
/// tokio-rustls's (of `kind`) around it.
fn failed(kind: std::io::ErrorKind, inner: rustls::Error) -> Wrapped {
    Wrapped(
        "client error (Connect)",
        Box::new(std::io::Error::other(std::io::Error::new(kind, inner))),
    )
}

#[test]
fn a_tls_failure_is_told_by_the_tls_library_s_error() {
    use rustls::AlertDescription as Alert;
    use rustls::CertificateError as Cert;
    use std::io::ErrorKind::{InvalidData, UnexpectedEof};
    let url = "https://10.0.0.1:2379";
    let hint = |e: &Wrapped, cert| transport_hint(e, url, cert).unwrap_or_default();
    let bad = |cert| failed(InvalidData, rustls::Error::InvalidCertificate(cert));
    let alert = |alert| failed(InvalidData, rustls::Error::AlertReceived(alert));
    assert!(
        hint(&bad(Cert::UnknownIssuer), Some(true)).contains("not signed by the CA in `etcd_ca`")
    );
    assert!(hint(&bad(Cert::BadSignature), None).contains("not signed by the CA"));
    assert!(hint(&bad(Cert::NotValidForName), Some(true)).contains("does not name the host"));
    // Expired says so itself: no advice about the CA.
    assert_eq!(hint(&bad(Cert::Expired), Some(true)), "");
    // etcd's alerts about the client's certificate, or its absence.
    for (alert_, cert, says) in [
        (
            Alert::CertificateRequired,
            Some(true),
            "etcd asks for a client certificate",
        ),
        (
            Alert::HandshakeFailure,
            Some(false),
            "etcd asks for a client certificate",
        ),
        (
            Alert::BadCertificate,
            Some(false),
            "etcd asks for a client certificate",
        ),
        (
            Alert::BadCertificate,
            Some(true),
            "etcd refused the client certificate `etcd_cert`",
        ),
        (
            Alert::UnknownCA,
            Some(true),
            "etcd refused the client certificate",
        ),
        (
            Alert::DecryptError,
            Some(true),
            "etcd refused the client certificate",
        ),
    ] {
        assert!(
            hint(&alert(alert_), cert).contains(says),
            "{alert_:?} {cert:?}"
        );
    }
    // Inside a single I/O error too.
    let once = Wrapped(
        "client error (Connect)",
        Box::new(std::io::Error::new(
            InvalidData,
            rustls::Error::InvalidCertificate(Cert::UnknownIssuer),
        )),
    );
    assert!(hint(&once, Some(true)).contains("not signed by the CA"));
    // Another alert is not about certificates.
    assert_eq!(hint(&alert(Alert::ProtocolVersion), Some(true)), "");
    // The words alone are not a TLS error (a proxy's text, say).
    let words = Wrapped(
        "client error",
        Box::new(std::io::Error::other("UnknownIssuer HandshakeFailure")),
    );
    assert_eq!(hint(&words, Some(true)), "");
    // A TLS connection closed after the handshake (TLS 1.3 refuses a
    // client certificate then), told by the I/O error's kind.
    let closed = Wrapped(
        "client error (SendRequest)",
        Box::new(std::io::Error::from(UnexpectedEof)),
    );
    assert!(
        hint(&closed, Some(true)).contains("etcd closed the TLS connection after the handshake")
    );
    assert!(hint(&closed, Some(false)).contains("if it asks for a client certificate"));
    // Not over https, or a connection refused: no TLS advice.
    assert_eq!(
        transport_hint(&closed, "http://10.0.0.1:2379", Some(true)),
        None
    );
    let refused = Wrapped(
        "client error (Connect)",
        Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
    );
    assert_eq!(hint(&refused, Some(true)), "");
}
