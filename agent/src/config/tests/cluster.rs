//! Config tests of the `[cluster]` section: its defaults, the errors that
//! name a key, and what cluster mode refuses beside it.

use super::*;
const CLUSTER_TARGET: &str = "[targets.local]\ndsn = \"host=127.0.0.1 user=postgres\"\ndata_dir = \"/var/lib/postgresql/15/main\"\n\n";

#[test]
fn a_cluster_section_parses_with_defaults() {
    let text = format!(
        "{CLUSTER_TARGET}[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.9.9.9:5432\"\n"
    );
    let config = parse_str("w.toml", &text, Path::new("/")).unwrap();
    let cluster = config.cluster.unwrap();
    assert_eq!(cluster.ttl, ClusterSpec::DEFAULT_TTL);
    assert_eq!(cluster.loop_wait, ClusterSpec::DEFAULT_TTL / 6);
    assert_eq!((cluster.host.as_str(), cluster.port), ("10.9.9.9", 5432));
    assert_eq!(cluster.max_lag_bytes, 1 << 20);
    assert_eq!(cluster.data_dir, Path::new("/var/lib/postgresql/15/main"));
    assert!(!cluster.synchronous);
    assert_eq!(cluster.synchronous_node_count, 1);
    let text = format!("{text}synchronous = true\nsynchronous_node_count = 2\n");
    let cluster = parse_str("w.toml", &text, Path::new("/"))
        .unwrap()
        .cluster
        .unwrap();
    assert!(cluster.synchronous);
    assert_eq!(cluster.synchronous_node_count, 2);
}

#[test]
fn cluster_errors_name_the_key() {
    let base = format!(
        "{CLUSTER_TARGET}[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.9.9.9:5432\"\n"
    );
    // A lease under etcd's minimum.
    one(&format!("{base}ttl = \"1s\"\n"), 10, 7, &["`ttl`", "2s"]);
    // Renewals too rare for the lease.
    one(
        &format!("{base}loop_wait = \"2s\"\n"),
        10,
        13,
        &["`loop_wait`", "quarter of `ttl`"],
    );
    one(
        &base.replace("connect = \"10.9.9.9:5432\"", "connect = \"nohost\""),
        9,
        11,
        &["`connect`", "HOST:PORT"],
    );
    one(
        &format!("{base}synchronous_node_count = 0\n"),
        10,
        26,
        &["`synchronous_node_count`"],
    );
    one(
        &base.replace("http://127.0.0.1:2379", "127.0.0.1:2379"),
        7,
        9,
        &["etcd endpoint", "http://"],
    );
    // PostgreSQL truncates application_name to 63 bytes: a 64-byte member
    // name would never match synchronous_standby_names.
    let long = "n".repeat(64);
    one(
        &format!("{base}name = \"{long}\"\n"),
        10,
        8,
        &["`name`", "64 bytes", "application_name", "at most 63"],
    );
    let fits = "n".repeat(63);
    let cluster = parse_str(
        "w.toml",
        &format!("{base}name = \"{fits}\"\n"),
        Path::new("/"),
    )
    .unwrap()
    .cluster
    .unwrap();
    assert_eq!(cluster.name, fits);
}

#[test]
fn a_single_agent_failover_is_refused_in_cluster_mode() {
    let text = format!(
        "{CLUSTER_TARGET}[targets.standby]\ndsn = \"host=127.0.0.1 port=5433 user=postgres\"\n\n[[probe]]\nname = \"alive\"\nwasm = \"builtin:pg-alive\"\ntargets = [\"local\"]\nconfig = {{ target = \"local\" }}\n\n[[remediation]]\nname = \"failover\"\non = {{ probe = \"alive\" }}\naction = {{ failover = \"standby\", primary = \"local\", fence = \"none\" }}\n\n[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.9.9.9:5432\"\n"
    );
    let found = errors(&text);
    assert!(
        found
            .iter()
            .any(|d| d.message.contains("is a failover; in cluster mode")),
        "{found:#?}"
    );
}

#[test]
fn etcd_access_keys_are_read_and_checked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("etcd.pw");
    std::fs::write(&password, "s3cret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let base = format!(
        "{CLUSTER_TARGET}[cluster]\nscope = \"main\"\netcd = [\"https://10.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.9.9.9:5432\"\n"
    );
    let text = format!(
        "{base}etcd_user = \"agent\"\netcd_password_file = \"{}\"\netcd_quota = \"4GiB\"\n",
        password.display()
    );
    let config = parse_str("w.toml", &text, dir.path()).unwrap();
    let cluster = config.cluster.as_ref().unwrap();
    assert_eq!(cluster.etcd_access.user.as_deref(), Some("agent"));
    assert_eq!(
        cluster.etcd_access.password.as_ref().map(|p| p.expose()),
        Some("s3cret")
    );
    assert_eq!(cluster.etcd_quota, 4 << 30);
    // [cluster] adds the probe of etcd's health, with its thresholds.
    let probe = config
        .probes
        .iter()
        .find(|p| p.name == "cluster-etcd")
        .unwrap();
    assert_eq!(probe.wasm, WasmSource::Etcd);
    assert_eq!(probe.thresholds.len(), 2);
    // A user without a password, a password without a user.
    one(
        &format!("{base}etcd_user = \"agent\"\n"),
        10,
        13,
        &["`etcd_user`", "etcd_password_file"],
    );
    one(
        &format!("{base}etcd_password_env = \"PATH\"\n"),
        10,
        21,
        &["without `etcd_user`"],
    );
    // A certificate without its key; a password file others can read.
    one(
        &format!("{base}etcd_cert = \"/etc/hostname\"\n"),
        10,
        13,
        &["`etcd_cert` and `etcd_key`"],
    );
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let exposed = errors_in(
        &format!(
            "{base}etcd_user = \"agent\"\netcd_password_file = \"{}\"\n",
            password.display()
        ),
        dir.path(),
    );
    assert!(
        exposed
            .iter()
            .any(|d| d.message.contains("etcd_password_file") && d.message.contains("chmod 0600")),
        "{exposed:#?}"
    );
}
