//! Tests of [`super::LocalServer`]'s conninfo for replication and
//! rewinds (TLS settings carried through).

use super::*;

fn server(cluster: &str) -> LocalServer {
    let text = format!(
        "[targets.local]\ndsn = \"host=127.0.0.1 user=w\"\ndata_dir = \"/d\"\n\n[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.0.0.1:5432\"\nreplication_user = \"replicator\"\nname = \"n1\"\n{cluster}\n"
    );
    let config = crate::config::parse_str("w.toml", &text, std::path::Path::new("/")).unwrap();
    LocalServer::new(config.cluster.unwrap(), SqlTargets::default())
}

#[test]
fn the_replication_and_rewind_conninfo_carries_the_sslmode_and_ca() {
    // Nothing configured: libpq's default, nothing added.
    let plain = server("").conninfo("10.0.0.2", 5432);
    assert_eq!(
        plain,
        "host='10.0.0.2' port=5432 user='replicator' application_name='n1'"
    );
    let ca = server("replication_sslrootcert = \"/etc/pg/ca.pem\"").conninfo("10.0.0.2", 5432);
    assert!(
        ca.ends_with("sslmode=verify-full sslrootcert='/etc/pg/ca.pem'"),
        "{ca}"
    );
    let require = server("replication_sslmode = \"require\"").conninfo("10.0.0.2", 5432);
    assert!(require.ends_with("sslmode=require"), "{require}");
}
