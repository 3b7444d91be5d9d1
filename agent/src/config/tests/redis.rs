//! `kind = "redis"` targets: a URL, TLS files, a heartbeat key, and the
//! keys only PostgreSQL targets have refused.

use super::*;

#[test]
fn redis_targets_take_a_url_and_their_own_keys() {
    let text = "[targets.cache]\nkind = \"redis\"\ndsn = \"redis://watchpost@127.0.0.1:6379/0\"\n\
                heartbeat_key = \"watchpost:hb\"\nstrict_privileges = true\n";
    let config = parse_str("w.toml", text, Path::new("/nonexistent")).expect("a redis target");
    let target = &config.targets["cache"];
    assert_eq!(target.kind, TargetKind::Redis);
    assert!(target.strict_privileges);
    let options = target.redis.as_ref().expect("redis options");
    assert_eq!(options.heartbeat_key.as_deref(), Some("watchpost:hb"));
}

#[test]
fn redis_target_errors_name_the_key_and_what_to_write() {
    one(
        "[targets.cache]\nkind = \"redis\"\ndsn = \"host=127.0.0.1\"\n",
        3,
        7,
        &["[targets.cache]: `dsn` is not usable", "redis://"],
    );
    one(
        "[targets.cache]\nkind = \"redis\"\ndsn = \"redis://h/\"\nreplication_dsn = \"redis://h/\"\n",
        4,
        19,
        &["`replication_dsn` is not supported for kind = \"redis\""],
    );
    one(
        "[targets.cache]\nkind = \"redis\"\ndsn = \"redis://h/\"\ntls_ca_file = \"/ca.pem\"\n",
        3,
        7,
        &["not rediss://"],
    );
    one(
        "[targets.cache]\nkind = \"redis\"\ndsn = \"rediss://h/\"\ntls_ca_file = \"/nonexistent/ca.pem\"\n",
        3,
        7,
        &["/nonexistent/ca.pem"],
    );
}
