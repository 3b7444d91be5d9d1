//! MariaDB over TLS (issue 27): one real `mariadbd` with a certificate
//! made by the test (`ssl-ca`, `ssl-cert`, `ssl-key`), an account that
//! requires a client certificate (`REQUIRE X509`), and `mysql-alive`
//! connecting with each `ssl-mode`: verified against the right CA; a wrong
//! CA refused naming what to fix; a client certificate for the X509
//! account; no certificate refused by the account; and a certificate of a
//! CA the server does not trust refused by the server's TLS (after the
//! handshake under TLS 1.3: an alert at the first read), which is a
//! server that is alive and refusing, never "down".

use watchpost_e2e::mariadb::Mariadb;
use watchpost_e2e::pki::{Ca, Leaf};
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check};

/// The account that must present a client certificate.
const X509_USER: &str = "watchpost_x509";

fn alive(dsn: &str) -> Checked {
    check(
        &probes::path("mysql-alive"),
        &["--target".to_string(), format!("primary={dsn}")],
    )
}

/// The DSN of `user` on `db` over TLS with `params` (`ssl-mode=...&...`).
fn dsn(db: &Mariadb, user: &str, params: &str) -> String {
    format!("mysql://{user}@127.0.0.1:{}/?{params}", db.port())
}

fn identity(leaf: &Leaf) -> String {
    format!(
        "&ssl-cert={}&ssl-key={}",
        leaf.cert.display(),
        leaf.key.display()
    )
}

#[test]
fn mysql_tls_verifies_the_server_and_presents_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "mariadb-ca");
    let server = ca.server("mariadb-server", &["127.0.0.1"]);
    let db = Mariadb::with_settings(&[
        &format!("ssl-ca={}", ca.cert.display()),
        &format!("ssl-cert={}", server.cert.display()),
        &format!("ssl-key={}", server.key.display()),
    ]);
    db.execute(&format!(
        "CREATE USER '{X509_USER}'@'%' REQUIRE X509; GRANT PROCESS, SLAVE MONITOR, BINLOG MONITOR, SELECT ON *.* TO '{X509_USER}'@'%';"
    ));
    let verify = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca.cert.display());

    let checked = alive(&dsn(&db, "watchpost", &verify));
    assert_eq!(checked.status(), "ok", "verified: {:#}", checked.json);

    let other = Ca::new(dir.path(), "other-ca");
    let checked = alive(&dsn(
        &db,
        "watchpost",
        &format!("ssl-mode=VERIFY_CA&ssl-ca={}", other.cert.display()),
    ));
    assert_ne!(checked.status(), "ok", "a wrong CA: {:#}", checked.json);
    assert_eq!(
        checked.value("mysql.up"),
        1.0,
        "a wrong CA: the server answered: up, refusing: {:#}",
        checked.json
    );
    assert!(
        checked.message().contains("ssl-ca"),
        "a wrong CA: {}",
        checked.message()
    );

    let client = ca.client("x509-client", X509_USER);
    let checked = alive(&dsn(
        &db,
        X509_USER,
        &format!("{verify}{}", identity(&client)),
    ));
    assert_eq!(
        checked.status(),
        "ok",
        "a client certificate: {:#}",
        checked.json
    );

    // No certificate: the account refuses the login (1045), the server up.
    let checked = alive(&dsn(&db, X509_USER, &verify));
    assert_ne!(checked.status(), "ok", "no certificate: {:#}", checked.json);
    assert_eq!(checked.value("mysql.up"), 1.0, "{:#}", checked.json);

    // A certificate of a CA the server does not trust: refused by TLS.
    let stranger = Ca::new(dir.path(), "stranger-ca").client("stranger", X509_USER);
    let checked = alive(&dsn(
        &db,
        X509_USER,
        &format!("{verify}{}", identity(&stranger)),
    ));
    assert_ne!(checked.status(), "ok", "{:#}", checked.json);
    assert_eq!(
        checked.value("mysql.up"),
        1.0,
        "the server answered: up, refusing: {:#}",
        checked.json
    );
    assert!(
        checked.message().contains("ssl-cert"),
        "a client certificate of another CA: {}",
        checked.message()
    );
}
