//! Redis over TLS (`rediss://`, issue 28): one real `redis-server` that
//! takes TLS on a port of its own and asks every client for a certificate
//! (`tls-auth-clients yes`), a CA and certificates made by the test, and
//! `redis-alive` connecting through a config's `tls_ca_file`,
//! `tls_cert_file` and `tls_key_file`: verified against the right CA and
//! host name; a wrong CA or host name refused naming what to fix; TLS to
//! the plain port named as such (a timeout); and a client certificate the server refuses (or none) named as such. Under
//! TLS 1.3 the server refuses a client certificate after the handshake,
//! so the client sees a closed connection or an alert on its first read;
//! under TLS 1.2, an alert during the handshake: either way a server that
//! is alive and refusing the agent, never "down".

use std::path::Path;
use watchpost_e2e::pki::{Ca, Leaf};
use watchpost_e2e::port::free_port;
use watchpost_e2e::redis::Redis;
use watchpost_e2e::report::{Checked, check};

/// A server that speaks TLS on `tls_port` and asks for a client
/// certificate signed by `ca`, with `more` arguments.
fn tls_server(ca: &Ca, tls_port: u16, more: &[&str]) -> Redis {
    let server = ca.server("redis-server", &["localhost"]);
    let port = tls_port.to_string();
    let cert = server.cert.display().to_string();
    let key = server.key.display().to_string();
    let ca_file = ca.cert.display().to_string();
    let mut args = vec![
        "--tls-port",
        &port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca_file,
        "--tls-auth-clients",
        "yes",
    ];
    args.extend_from_slice(more);
    Redis::with_args(&args)
}

/// `redis-alive` on the target `primary` of a config with `host`, the CA
/// file `ca` and the client certificate `client`, if any.
fn alive(dir: &Path, host: &str, port: u16, ca: &Path, client: Option<&Leaf>) -> Checked {
    let mut target = format!(
        "[targets.primary]\nkind = \"redis\"\ndsn = \"rediss://{host}:{port}/0\"\n\
         tls_ca_file = \"{}\"\n",
        ca.display()
    );
    if let Some(client) = client {
        target.push_str(&format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            client.cert.display(),
            client.key.display()
        ));
    }
    let config = dir.join("redis-tls.toml");
    std::fs::write(&config, target).expect("write the config");
    check(
        Path::new("builtin:redis-alive"),
        &[
            "-c".to_string(),
            config.display().to_string(),
            "--timeout".to_string(),
            "5s".to_string(),
        ],
    )
}

fn value(checked: &Checked, name: &str) -> Option<f64> {
    checked.measurements(name).first()?["value"].as_f64()
}

/// Assert that `checked` failed with `redis.up` at `up` (1: the server
/// answered and refused; 0: no answer) and a message holding `words`.
fn assert_fails(checked: &Checked, up: f64, words: &[&str], what: &str) {
    assert_ne!(checked.status(), "ok", "{what}: {:#}", checked.json);
    assert_eq!(
        value(checked, "redis.up"),
        Some(up),
        "{what}: {:#}",
        checked.json
    );
    let text = checked.message();
    for word in words {
        assert!(text.contains(word), "{what}: no {word:?} in {text}");
    }
}

#[test]
fn rediss_verifies_the_server_and_presents_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "redis-ca");
    let tls_port = free_port();
    let server = tls_server(&ca, tls_port, &[]);
    let client = ca.client("watchpost-client", "watchpost");

    let checked = alive(dir.path(), "localhost", tls_port, &ca.cert, Some(&client));
    assert_eq!(checked.status(), "ok", "{:#}", checked.json);
    assert_eq!(value(&checked, "redis.up"), Some(1.0));

    // A CA that did not sign the server's certificate.
    let other = Ca::new(dir.path(), "other-ca");
    let checked = alive(
        dir.path(),
        "localhost",
        tls_port,
        &other.cert,
        Some(&client),
    );
    assert_fails(
        &checked,
        1.0,
        &["TLS", "UnknownIssuer", "tls_ca_file"],
        "a wrong CA",
    );

    // The certificate names `localhost`, not 127.0.0.1.
    let checked = alive(dir.path(), "127.0.0.1", tls_port, &ca.cert, Some(&client));
    assert_fails(
        &checked,
        1.0,
        &["TLS", "not valid for name", "host of `dsn`"],
        "a wrong host name",
    );

    // `rediss://` to the server's plain port: the server waits for the
    // rest of a command that never ends, so the handshake hangs; the
    // message names the step and the likely fix.
    let checked = alive(
        dir.path(),
        "localhost",
        server.port(),
        &ca.cert,
        Some(&client),
    );
    assert_fails(
        &checked,
        0.0,
        &["TLS handshake", "tls-port"],
        "TLS to the plain port",
    );
}

#[test]
fn a_client_certificate_the_server_refuses_is_named_and_the_server_is_not_down() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "redis-ca");
    // TLS 1.3 (refused after the handshake, at the first read) and TLS
    // 1.2 (refused by an alert during the handshake).
    let tls13 = free_port();
    let _server13 = tls_server(&ca, tls13, &[]);
    let tls12 = free_port();
    let _server12 = tls_server(&ca, tls12, &["--tls-protocols", "TLSv1.2"]);

    let stranger = Ca::new(dir.path(), "stranger-ca").client("stranger", "watchpost");
    for (port, client, what) in [
        (
            tls13,
            Some(&stranger),
            "TLS 1.3, a certificate of another CA",
        ),
        (tls13, None, "TLS 1.3, no certificate"),
        (
            tls12,
            Some(&stranger),
            "TLS 1.2, a certificate of another CA",
        ),
        (tls12, None, "TLS 1.2, no certificate"),
    ] {
        // The server is alive and refusing the agent; the key to fix named.
        let checked = alive(dir.path(), "localhost", port, &ca.cert, client);
        assert_fails(&checked, 1.0, &["tls_cert_file"], what);
    }
}
