//! Cluster mode through a closed etcd: TLS on the client port with
//! `--client-cert-auth` (a CA and certificates made by the test), `auth
//! enable` with a role limited to the scope's prefix. The agents form a
//! cluster and fail over through it; a certificate etcd refuses, a CA that
//! did not sign etcd's certificate, a wrong password and a role without
//! the prefix each give an error naming what to fix, and no leadership.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for};
use watchpost_e2e::etcd::{EtcdCluster, EtcdOptions};
use watchpost_e2e::ha::{HaCluster, node_config};
use watchpost_e2e::pg::PgNodes;
use watchpost_e2e::pki::{Ca, Leaf};

const LEADER_KEY: &str = "/watchpost/test/leader";

/// A closed etcd of `n` members: TLS with client certificates signed by
/// `ca`, and users `agent` (readwrite on `/watchpost/test/`) and `other`
/// (readwrite on `/watchpost/other/` only).
fn closed_etcd(ca: &Ca, n: usize) -> EtcdCluster {
    let server = ca.server_and_client("etcd-server", &["127.0.0.1", "localhost"]);
    let etcd = EtcdCluster::start_with(
        &vec!["127.0.0.1".to_string(); n],
        None,
        EtcdOptions {
            tls: Some((ca.cert.clone(), server)),
            quota_bytes: None,
        },
    );
    etcd.enable_auth(&[
        ("agent", "agent-secret", "/watchpost/test/"),
        ("other", "other-secret", "/watchpost/other/"),
    ]);
    etcd
}

/// A private file holding `text`.
fn secret(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The `[cluster]` keys that reach etcd as `user` with `password` in a
/// file, trusting `ca` and presenting `client`.
fn access(dir: &Path, ca: &Path, client: Option<&Leaf>, user: &str, password: &str) -> String {
    let file = secret(
        dir,
        &format!("{user}-{}.pw", password.len()),
        &format!("{password}\n"),
    );
    let mut keys = format!(
        "etcd_ca = \"{}\"\netcd_user = \"{user}\"\netcd_password_file = \"{}\"\n",
        ca.display(),
        file.display()
    );
    if let Some(client) = client {
        keys.push_str(&format!(
            "etcd_cert = \"{}\"\netcd_key = \"{}\"\n",
            client.cert.display(),
            client.key.display()
        ));
    }
    keys
}

#[test]
fn agents_form_a_cluster_and_fail_over_through_a_closed_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "etcd-ca");
    let client = ca.anonymous_client("agent-client");
    let etcd = closed_etcd(&ca, 3);
    let extra = access(dir.path(), &ca.cert, Some(&client), "agent", "agent-secret");
    let mut ha = HaCluster::start_on(etcd, &extra);
    assert_eq!(ha.etcd.get(LEADER_KEY).as_deref(), Some("node1"));

    // The operator's commands reach the closed etcd with the same settings.
    let listed = watchpost_e2e::cli::watchpost_run([
        "cluster",
        "list",
        "--json",
        "-c",
        ha.config(1).to_str().unwrap(),
    ]);
    assert_eq!(listed.code, 0, "{}", listed.all_output());
    assert!(listed.stdout.contains("node1"), "{}", listed.all_output());

    // Node loss: its agent and its server die together.
    ha.agents[0].kill9();
    ha.pg.nodes[0].kill();
    let new = wait_for("a promotion through the closed etcd", PATIENCE, || {
        ha.records("promoted").into_iter().map(|(i, _)| i).next()
    });
    let name = format!("node{}", new + 1);
    ha.wait_leader(&name);
    assert_eq!(ha.etcd.get(LEADER_KEY), Some(name));
}

/// Start an agent on the one-node cluster with `extra` access keys; wait
/// until its log says `expected`; check that it took no leadership and
/// that `watchpost cluster list` says the same.
fn refused(etcd: &EtcdCluster, pg: &PgNodes, extra: &str, expected: &[&str]) {
    let started = std::time::Instant::now();
    let mut agent = Agent::start(&node_config(etcd, &pg.nodes[0], 0, extra));
    let deadline = std::time::Instant::now() + PATIENCE;
    let log = loop {
        let log = agent.log();
        if expected.iter().all(|e| log.contains(e)) {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent's log does not say {expected:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // A few more loops: still nothing taken.
    std::thread::sleep(Duration::from_secs(2));
    let primary = agent.get("/v1/role/primary").map(|(c, _)| c).unwrap_or(0);
    assert_ne!(primary, 200, "{log}");
    assert_eq!(etcd.get(LEADER_KEY), None, "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let listed = watchpost_e2e::cli::watchpost_run([
        "cluster",
        "list",
        "-c",
        agent.config_path().to_str().unwrap(),
    ]);
    assert_ne!(listed.code, 0, "{}", listed.all_output());
    for e in expected {
        assert!(
            listed.all_output().contains(e),
            "{e:?} not in {}",
            listed.all_output()
        );
    }
    agent.kill9();
    eprintln!("refused {expected:?}: checked in {:?}", started.elapsed());
}

#[test]
fn a_refused_certificate_an_unknown_ca_a_wrong_password_or_role_are_named_and_take_no_leadership() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "etcd-ca");
    let rogue = Ca::new(dir.path(), "rogue-ca");
    let good = ca.anonymous_client("agent-client");
    let etcd = closed_etcd(&ca, 1);
    let pg = PgNodes::start(1);
    let d = dir.path();
    // A client certificate from a CA etcd does not trust.
    let forged = rogue.anonymous_client("forged-client");
    refused(
        &etcd,
        &pg,
        &access(d, &ca.cert, Some(&forged), "agent", "agent-secret"),
        // Said for sure when the client sees etcd's alert; under TLS 1.3
        // it may see only the connection closed after the handshake.
        &["the client certificate `etcd_cert`"],
    );
    // A certificate etcd trusts but with a CommonName, which etcd's JSON
    // gateway refuses under --client-cert-auth (etcd#10366).
    let named = ca.client("named-client", "agent");
    refused(
        &etcd,
        &pg,
        &access(d, &ca.cert, Some(&named), "agent", "agent-secret"),
        &["empty subject CN"],
    );
    // No client certificate at all.
    refused(
        &etcd,
        &pg,
        &access(d, &ca.cert, None, "agent", "agent-secret"),
        &["set `etcd_cert` and `etcd_key`"],
    );
    // etcd's certificate checked against a CA that did not sign it.
    refused(
        &etcd,
        &pg,
        &access(d, &rogue.cert, Some(&good), "agent", "agent-secret"),
        &["not signed by the CA in `etcd_ca`"],
    );
    // A wrong password.
    refused(
        &etcd,
        &pg,
        &access(d, &ca.cert, Some(&good), "agent", "wrong-secret"),
        &[
            "etcd refused to authenticate user `agent`",
            "etcd_password_file",
        ],
    );
    // A user whose role does not cover /watchpost/test/.
    refused(
        &etcd,
        &pg,
        &access(d, &ca.cert, Some(&good), "other", "other-secret"),
        &[
            "permission denied",
            "etcd user `other`",
            "readwrite /watchpost/test/",
        ],
    );
}
