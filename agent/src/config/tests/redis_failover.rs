//! Config tests of the Redis failover's keys: its own part read with
//! defaults, the admin login every server needs, and what is refused
//! with a reason.

use super::*;
use std::time::Duration;

const TARGETS: &str = "[targets.primary]\nkind = \"redis\"\ndsn = \"redis://w@db1:6379/0\"\nadmin_dsn = \"redis://admin@db1:6379/0\"\n\n\
    [targets.replica]\nkind = \"redis\"\ndsn = \"redis://w@db2:6379/0\"\nadmin_dsn = \"redis://admin@db2:6379/0\"\n\n\
    [targets.replica2]\nkind = \"redis\"\ndsn = \"redis://w@db3:6379/0\"\nadmin_dsn = \"redis://admin@db3:6379/0\"\n\n\
    [targets.bare]\nkind = \"redis\"\ndsn = \"redis://w@db4:6379/0\"\n\n\
    [targets.socket]\nkind = \"redis\"\ndsn = \"redis://w@db5:6379/0\"\nadmin_dsn = \"unix:///run/redis.sock\"\n\n\
    [targets.maria]\nkind = \"mysql\"\ndsn = \"mysql://w@db6/\"\n\n\
    [[probe]]\nname = \"alive\"\nwasm = \"builtin:host-cpu\"\n\n";

fn failover(action: &str) -> String {
    format!(
        "{TARGETS}[[remediation]]\nname = \"failover\"\non = {{ probe = \"alive\", status = \"critical\" }}\naction = {{ {action} }}\n"
    )
}

#[test]
fn a_redis_failover_reads_its_keys_with_defaults() {
    let text = failover(
        "failover = \"replica\", primary = \"primary\", fence = \"none\", replicas = [\"replica2\"], apply_within = \"5s\"",
    );
    let config = parse_str("w.toml", &text, Path::new("/")).expect("a Redis failover");
    let Action::Failover(action) = &config.remediations[0].action else {
        panic!("not a failover");
    };
    assert!(action.mysql.is_none());
    let redis = action.redis.as_ref().expect("the Redis part");
    assert_eq!(redis.replicas, ["replica2"]);
    assert_eq!(redis.apply_within, Duration::from_secs(5));
    assert_eq!(redis.rejoin_within, Duration::from_secs(3600));
    assert_eq!(
        config.targets["primary"].admin_dsn.as_deref(),
        Some("redis://admin@db1:6379/0")
    );
}

#[test]
fn what_a_redis_failover_refuses_is_named() {
    let errors = |action: &str| {
        parse_str("w.toml", &failover(action), Path::new("/"))
            .expect_err("refused")
            .to_string()
    };
    let bare = errors("failover = \"bare\", primary = \"primary\", fence = \"none\"");
    assert!(
        bare.contains("logs in to `bare` with its `admin_dsn`") && bare.contains("[targets.bare]"),
        "{bare}"
    );
    let socket = errors("failover = \"socket\", primary = \"primary\", fence = \"none\"");
    assert!(socket.contains("is a Unix socket"), "{socket}");
    let mixed = errors("failover = \"replica\", primary = \"maria\", fence = \"none\"");
    assert!(mixed.contains("targets of one kind"), "{mixed}");
    let other = errors(
        "failover = \"replica\", primary = \"primary\", fence = \"none\", replicas = [\"maria\"]",
    );
    assert!(
        other.contains("`maria`, which is not a Redis target"),
        "{other}"
    );
}

#[test]
fn a_redis_admin_password_needs_an_admin_dsn() {
    let errors = parse_str(
        "w.toml",
        "[targets.c]\nkind = \"redis\"\ndsn = \"redis://h/\"\nadmin_password_env = \"PATH\"\n",
        Path::new("/"),
    )
    .expect_err("refused")
    .to_string();
    assert!(
        errors.contains("an admin password needs `admin_dsn`"),
        "{errors}"
    );
    let errors = parse_str(
        "w.toml",
        "[targets.c]\nkind = \"redis\"\ndsn = \"redis://h/\"\nadmin_dsn = \"http://h/\"\n",
        Path::new("/"),
    )
    .expect_err("refused")
    .to_string();
    assert!(errors.contains("`admin_dsn` is not usable"), "{errors}");
}
