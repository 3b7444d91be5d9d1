//! Config tests of the MariaDB failover's keys: defaults, the targets'
//! admin and replication logins, and what is refused with a reason.

use super::*;
use std::time::Duration;

const TARGETS: &str = "[targets.primary]\nkind = \"mysql\"\ndsn = \"mysql://w@db1/\"\nadmin_dsn = \"mysql://admin@db1/\"\n\n\
    [targets.replica]\nkind = \"mysql\"\ndsn = \"mysql://w@db2/\"\nadmin_dsn = \"mysql://admin@db2/\"\nreplication_dsn = \"mysql://repl@db2/\"\n\n\
    [targets.replica2]\nkind = \"mysql\"\ndsn = \"mysql://w@db3/\"\n\n\
    [targets.pg]\ndsn = \"host=db4 user=w\"\n\n\
    [[probe]]\nname = \"alive\"\nwasm = \"builtin:host-cpu\"\n\n";

fn failover(action: &str) -> String {
    format!(
        "{TARGETS}[[remediation]]\nname = \"failover\"\non = {{ probe = \"alive\", status = \"critical\" }}\naction = {{ {action} }}\n"
    )
}

#[test]
fn a_mariadb_failover_reads_its_keys_with_defaults() {
    let text = failover(
        "failover = \"replica\", primary = \"primary\", fence = \"none\", replicas = [\"replica2\"], apply_within = \"5s\"",
    );
    let config = parse_str("w.toml", &text, Path::new("/")).expect("a MariaDB failover");
    let Action::Failover(action) = &config.remediations[0].action else {
        panic!("not a failover");
    };
    let mysql = action.mysql.as_ref().expect("the MariaDB part");
    assert_eq!(mysql.replicas, ["replica2"]);
    assert_eq!(mysql.apply_within, Duration::from_secs(5));
    assert_eq!(mysql.rejoin_within, Duration::from_secs(3600));
    assert_eq!(
        config.targets["replica"].replication_dsn.as_deref(),
        Some("mysql://repl@db2/")
    );
    assert_eq!(
        config.targets["primary"].admin_dsn.as_deref(),
        Some("mysql://admin@db1/")
    );
}

#[test]
fn what_a_mariadb_failover_refuses_is_named() {
    let errors = |action: &str| {
        parse_str("w.toml", &failover(action), Path::new("/"))
            .expect_err("refused")
            .to_string()
    };
    let mixed = errors("failover = \"replica\", primary = \"pg\", fence = \"none\"");
    assert!(mixed.contains("targets of one kind"), "{mixed}");
    let on_pg =
        errors("failover = \"pg\", primary = \"pg2\", fence = \"none\", replicas = [\"replica2\"]");
    assert!(
        on_pg.contains("not defined") || on_pg.contains("only used by a failover of MariaDB"),
        "{on_pg}"
    );
    let pg_keys = parse_str(
        "w.toml",
        &format!(
            "{TARGETS}[targets.pg2]\ndsn = \"host=db5 user=w\"\n\n[[remediation]]\nname = \"f\"\non = {{ probe = \"alive\", status = \"critical\" }}\naction = {{ failover = \"pg\", primary = \"pg2\", fence = \"none\", apply_within = \"5s\" }}\n"
        ),
        Path::new("/"),
    )
    .expect_err("refused")
    .to_string();
    assert!(
        pg_keys.contains("`apply_within` is only used by a failover of MariaDB"),
        "{pg_keys}"
    );
    let itself = errors(
        "failover = \"replica\", primary = \"primary\", fence = \"none\", replicas = [\"replica\"]",
    );
    assert!(itself.contains("the failover's own"), "{itself}");
    let unknown = errors(
        "failover = \"replica\", primary = \"primary\", fence = \"none\", replicas = [\"nope\"]",
    );
    assert!(unknown.contains("not defined in [targets]"), "{unknown}");
    let pg_ctl = errors(
        "failover = \"replica\", primary = \"primary\", fence = \"pg_ctl\", primary_data_dir = \"/x\"",
    );
    assert!(pg_ctl.contains("PostgreSQL's"), "{pg_ctl}");
    let password = parse_str(
        "w.toml",
        "[targets.db]\nkind = \"mysql\"\ndsn = \"mysql://w@db/\"\nadmin_password_env = \"PATH\"\n",
        Path::new("/"),
    )
    .expect_err("refused")
    .to_string();
    assert!(
        password.contains("the admin password needs `admin_dsn`"),
        "{password}"
    );
}
