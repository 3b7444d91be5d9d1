//! PostgreSQL over TLS: one server that takes TLS only (`hostssl` lines,
//! `hostnossl ... reject`), a CA and certificates made by the test, and
//! `pg-alive` connecting with each `sslmode`: verified against the right
//! CA and host name, refused with a `tls` error for a wrong CA or name, a
//! client certificate login, `require` without a CA, and `disable`
//! refused with the server's own words. `validate` names an unreadable
//! certificate at its place in the config.

use watchpost_e2e::cli::watchpost_run;
use watchpost_e2e::pg::MONITOR_USER;
use watchpost_e2e::pg::tls::{CERT_USER, TlsServer};
use watchpost_e2e::pki::Ca;
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check};

fn alive(dsn: &str) -> Checked {
    check(
        &probes::path("pg-alive"),
        &["--target".to_string(), format!("primary={dsn}")],
    )
}

fn assert_ok(checked: &Checked, what: &str) {
    assert_eq!(
        (checked.code, checked.status()),
        (0, "ok"),
        "{what}: {:#}",
        checked.json
    );
}

fn assert_fails_with(checked: &Checked, words: &[&str], what: &str) {
    assert_ne!(checked.code, 0, "{what}: {:#}", checked.json);
    let text = checked.json.to_string();
    for word in words {
        assert!(text.contains(word), "{what}: no {word:?} in {text}");
    }
}

#[test]
fn sslmodes_verify_the_server_and_present_client_certificates() {
    let server = TlsServer::start();
    let ca = server.ca.cert.display().to_string();

    let full = format!("sslmode=verify-full sslrootcert={ca}");
    assert_ok(
        &alive(&server.dsn("localhost", MONITOR_USER, &full)),
        "verify-full",
    );

    let other = Ca::new(&server.files, "other-ca");
    let wrong_ca = format!("sslmode=verify-full sslrootcert={}", other.cert.display());
    assert_fails_with(
        &alive(&server.dsn("localhost", MONITOR_USER, &wrong_ca)),
        &["tls", "UnknownIssuer"],
        "a wrong CA",
    );

    // The certificate names `localhost`, not 127.0.0.1: the chain is good
    // (verify-ca passes) but the name is not (verify-full fails).
    assert_fails_with(
        &alive(&server.dsn("127.0.0.1", MONITOR_USER, &full)),
        &["tls", "not valid for name"],
        "a wrong host name",
    );
    let chain_only = format!("sslmode=verify-ca sslrootcert={ca}");
    assert_ok(
        &alive(&server.dsn("127.0.0.1", MONITOR_USER, &chain_only)),
        "verify-ca",
    );

    let client = format!(
        "{full} sslcert={} sslkey={}",
        server.client.cert.display(),
        server.client.key.display()
    );
    assert_ok(
        &alive(&server.dsn("localhost", CERT_USER, &client)),
        "a client certificate",
    );
    assert_fails_with(
        &alive(&server.dsn("localhost", CERT_USER, &full)),
        &["certificate"],
        "cert auth without a client certificate",
    );

    // A client certificate of a CA the server does not trust: OpenSSL
    // refuses it with an alert, after the handshake under TLS 1.3 (the
    // client meets it at its first read, or only a closed connection).
    // The server answered: never down, and the key to fix is named.
    let stranger = Ca::new(&server.files, "stranger-ca").client("stranger", CERT_USER);
    let foreign = format!(
        "{full} sslcert={} sslkey={}",
        stranger.cert.display(),
        stranger.key.display()
    );
    let checked = alive(&server.dsn("localhost", CERT_USER, &foreign));
    assert_fails_with(
        &checked,
        &["refused the client's certificate", "sslcert"],
        "a client certificate of another CA",
    );
    assert_eq!(
        checked.value("postgresql.up"),
        1.0,
        "the server answered TLS: up, refusing: {:#}",
        checked.json
    );

    assert_ok(
        &alive(&server.dsn("127.0.0.1", MONITOR_USER, "sslmode=require")),
        "require without a CA",
    );
    assert_ok(
        &alive(&server.dsn("127.0.0.1", MONITOR_USER, "")),
        "prefer (the default)",
    );
    assert_fails_with(
        &alive(&server.dsn("127.0.0.1", MONITOR_USER, "sslmode=disable")),
        &["pg_hba.conf rejects connection", "no encryption"],
        "disable against hostnossl reject",
    );
}

#[test]
fn validate_names_an_unreadable_certificate_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("watchpost.toml");
    std::fs::write(
        &config,
        "[targets.primary]\n\
         dsn = \"host=db sslmode=verify-full sslrootcert=/nonexistent/ca.pem\"\n",
    )
    .unwrap();
    let outcome = watchpost_run(["validate", "-c", config.to_str().unwrap()]);
    assert_ne!(outcome.code, 0);
    let text = outcome.all_output();
    assert!(
        text.contains(&format!("{}:2:7:", config.display()))
            && text.contains("/nonexistent/ca.pem"),
        "{text}"
    );
}
