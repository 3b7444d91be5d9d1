//! The key tables ([`super::keys`]) against the parser: every key the
//! parser asks for has a doc of the kind it parses, every documented key is
//! asked for, and the reference names every key.

use super::keys::{Findings, Table, recording};
use super::{DEFAULT_NAME, DEFAULT_TEXT, parse_str, reference};
use std::path::Path;

/// A config that reaches every section and every action kind of the
/// parser, so that every key the parser knows is asked for (a getter asks
/// whether or not the key is present). It need not be valid.
const TOUR: &str = r#"
[agent]
node = "n1"
state_dir = "/tmp/watchpost-tour"
listen = "127.0.0.1:9464"
concurrency = 2
memory_budget = "1GiB"
dry_run = false
api_token_env = "TOKEN"
flapping = { enabled = true, high = 30, low = 25 }
cache_size = "1GiB"
state_flush = "1s"
local_target = "pg"

[targets.pg]
dsn = "host=127.0.0.1 user=watchpost dbname=postgres"
read_only = true
strict_privileges = false
admin_dsn = "host=127.0.0.1 user=postgres"
replication_dsn = "host=127.0.0.1 user=replicator"
data_dir = "/var/lib/postgresql/15/main"
password_env = "PG_PASSWORD"
admin_password_env = "PG_ADMIN"
replication_password_env = "PG_REPL"

[targets.my]
kind = "mysql"
dsn = "mysql://watchpost@127.0.0.1:3306/"

[targets.my2]
kind = "mysql"
dsn = "mysql://watchpost@127.0.0.1:3307/"

[targets.cache]
kind = "redis"
dsn = "redis://watchpost@127.0.0.1:6379/0"
heartbeat_key = "watchpost:heartbeat"
strict_privileges = true
tls_ca_file = "/nonexistent"
tls_cert_file = "/nonexistent"
tls_key_file = "/nonexistent"
password_env = "REDIS_PASSWORD"

[[probe]]
name = "alive"
wasm = "builtin:pg-alive"
every = "30s"
timeout = "10s"
memory = "64MiB"
targets = ["pg"]
dirs = {}
config = { a = "b" }
for = 2
recover = 2
flapping = { enabled = false }
[probe.thresholds."x"]
warning = "~:80"
critical = "~:90"
for = 1
recover = 1

[[drill]]
name = "restore"
every = "24h"
timeout = "1h"
reserve = "1GiB"
expected_size = "1GiB"
superuser = "postgres"
amcheck = true
checksums = true
bin_dir = "/usr/lib/postgresql/15/bin"
run_as_owner_of = "/srv"
backup = "/srv/backups/base"
method = "pg_basebackup"
aof = "/srv/redis/appendonlydir"
keys = ["order:17"]
archive = "/srv/wal"
pgbackrest = "main"
pgbackrest_config = "/etc/pgbackrest.conf"
command = ["true"]
checks = [{ query = "SELECT 1", database = "postgres", min = 1, max = 2 }]
for = 1
recover = 1
flapping = { enabled = true }
thresholds = { "x" = { warning = "1" } }

[[remediation]]
name = "exec"
on = { probe = "alive", status = "critical", measurement = "x" }
unless = [{ probe = "alive", status = "warning" }]
action = { exec = ["true"], env = { A = "b" }, timeout = "5s" }
cooldown = "5m"
limit = { count = 3, per = "1h" }
dry_run = true
verify = { probe = "alive", within = "30s" }
alert = { webhook = "http://127.0.0.1:1/", timeout = "5s", retries = 1, bearer_env = "B", bearer_file = "/nonexistent" }

[[remediation]]
name = "pg-ctl"
on = { probe = "alive" }
action = { restart = "pg_ctl", target = "pg", pg_ctl = "pg_ctl", data_dir = "/d" }

[[remediation]]
name = "ctlcluster"
on = { probe = "alive" }
action = { restart = "pg_ctlcluster", version = "15", cluster = "main" }

[[remediation]]
name = "systemctl"
on = { probe = "alive" }
action = { restart = "systemctl", unit = "postgresql" }

[[remediation]]
name = "command"
on = { probe = "alive" }
action = { restart = "command", command = ["true"] }

[[remediation]]
name = "failover"
on = { probe = "alive" }
action = { failover = "pg", primary = "pg", max_lag_bytes = 1, write_within = "10s", block_for = "1h", fence_required = true, fence = "pg_ctl", pg_ctl = "pg_ctl", primary_data_dir = "/d", post = [{ webhook = "http://127.0.0.1:1/" }] }

[[remediation]]
name = "mysql-failover"
on = { probe = "alive" }
action = { failover = "my2", primary = "my", fence = "none", replicas = [], apply_within = "30s", rejoin_within = "1h" }

[[remediation]]
name = "terminate"
on = { probe = "alive" }
action = { terminate = "pg", idle_in_transaction = "5m", transaction_older_than = "10m", running_longer_than = "1m", blocking = true, databases = ["a"], users = ["b"], applications = ["c"], max_sessions = 10, timeout = "30s" }

[[remediation]]
name = "resume"
on = { probe = "alive" }
action = { resume_replay = "pg", timeout = "30s" }

[[remediation]]
name = "reinit"
on = { probe = "alive" }
action = { reinit = "pg", primary = "pg", timeout = "1h", stream_within = "1m", bin_dir = "/b", data_dir = "/d" }

[telemetry.otlp]
endpoint = "http://127.0.0.1:4317"
protocol = "grpc"
interval = "10s"
timeout = "5s"
headers = { a = "b" }
headers_file = "/nonexistent"
certificate = "/nonexistent"
client_certificate = "/nonexistent"
client_key = "/nonexistent"

[cluster]
scope = "main"
etcd = ["http://127.0.0.1:2379"]
name = "n1"
ttl = "10s"
loop_wait = "1s"
target = "pg"
bin_dir = "/usr/lib/postgresql/15/bin"
connect = "127.0.0.1:5432"
replication_user = "replicator"
passfile = "/nonexistent"
replication_sslmode = "verify-full"
replication_sslrootcert = "/nonexistent"
max_lag_bytes = 1
restart_timeout = "30s"
nofailover = false
failover_priority = 1
synchronous = false
synchronous_node_count = 1
etcd_quota = "2GiB"
etcd_ca = "/nonexistent"
etcd_cert = "/nonexistent"
etcd_key = "/nonexistent"
etcd_user = "watchpost"
etcd_password_env = "ETCD_PASSWORD"
"#;

fn findings(file: &str, text: &str, base: &Path) -> Findings {
    recording(|| parse_str(file, text, base)).1
}

/// What a parse found wrong with the key tables, as one message.
fn problems(findings: &Findings) -> Vec<String> {
    let mut out = Vec::new();
    for key in &findings.undocumented {
        out.push(format!(
            "{key} is accepted by the parser but has no doc: add a `key(...)` line to its section's \
             Table beside the parser (see config/keys.rs)"
        ));
    }
    out.extend(findings.mismatched.iter().cloned());
    out
}

#[test]
fn every_key_the_parser_accepts_has_a_doc() {
    let mut all = problems(&findings("tour.toml", TOUR, Path::new("/nonexistent")));
    all.extend(problems(&findings(
        DEFAULT_NAME,
        DEFAULT_TEXT,
        Path::new("/"),
    )));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for entry in std::fs::read_dir(&examples).expect("examples/ is readable") {
        let path = entry.expect("an entry of examples/").path();
        if path.extension().is_some_and(|e| e == "toml")
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            let name = path.display().to_string();
            all.extend(problems(&findings(&name, &text, &examples)));
        }
    }
    all.sort();
    all.dedup();
    assert!(all.is_empty(), "{}", all.join("\n"));
}

#[test]
fn every_documented_key_is_read_by_the_parser() {
    let found = findings("tour.toml", TOUR, Path::new("/nonexistent"));
    let mut stale = Vec::new();
    for table in reference::tables() {
        for key in table.keys {
            if !found.asked.contains(&(table.heading, key.name)) {
                stale.push(format!("{}: `{}`", table.heading, key.name));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "documented but never read (a stale doc, or TOUR in this file does not reach it):\n{}",
        stale.join("\n")
    );
    let reachable: Vec<&str> = reference::tables().iter().map(|t| t.heading).collect();
    for (heading, key) in &found.asked {
        assert!(
            reachable.contains(heading),
            "{heading}: `{key}` is read through a Table the reference does not reach from the top level: link it with `.of(&TABLE)` or `entries`"
        );
    }
}

#[test]
fn every_doc_is_one_line_and_every_heading_unique() {
    let tables: Vec<&Table> = reference::tables();
    let mut anchors: Vec<String> = tables.iter().map(|t| reference::anchor(t)).collect();
    anchors.sort();
    let before = anchors.len();
    anchors.dedup();
    assert_eq!(before, anchors.len(), "two tables share an anchor");
    for table in tables {
        assert!(!table.doc.is_empty(), "{} has no doc", table.heading);
        for key in table.keys {
            assert!(
                !key.doc.is_empty() && !key.doc.contains('\n') && !key.default.is_empty(),
                "{}: `{}` needs a one-line doc and a default",
                table.heading,
                key.name
            );
        }
    }
}

#[test]
fn the_reference_names_every_key_with_its_range() {
    let page = reference::markdown();
    assert!(
        page.contains("| `every` | duration | \"30s\" | 10ms to 30d |"),
        "{page}"
    );
    assert!(page.contains("## `[cluster]`"));
    assert!(page.contains("| `concurrency` | integer | the number of CPUs | 1 to 1024 |"));
    for table in reference::tables() {
        for key in table.keys {
            assert!(
                page.contains(&format!("| `{}` |", key.name)),
                "{}",
                key.name
            );
        }
    }
}

#[test]
fn an_undocumented_key_is_found() {
    // The tables' check itself: a section read with a table that lacks the
    // key is reported.
    static EMPTY: Table = Table {
        heading: "[empty]",
        doc: "A table with no keys.",
        keys: &[],
        entries: None,
    };
    let root = toml::de::DeTable::parse("x = 1").expect("TOML");
    let mut d = super::diagnostics::Diagnostics::new("t.toml", "x = 1");
    let ((), found) = recording(|| {
        let mut s = super::reader::Section::new(&EMPTY, "[empty]", root.get_ref(), 0..5);
        let _ = s.integer(&mut d, "x", 0, 10);
        s.finish(&mut d);
    });
    assert_eq!(found.undocumented, ["[empty]: `x`"]);
}

/// The key names given as literals to the reader's getters in the parse
/// modules' code (`s.string(d, "node")`, `self.secret(s, "a_file",
/// "a_env")`): a net under [`TOUR`], which only reaches the branches it
/// was written for.
fn getter_literals(source: &str) -> Vec<String> {
    const GETTERS: [&str; 17] = [
        "string(",
        "bool(",
        "integer(",
        "number(",
        "duration(",
        "size(",
        "string_list(",
        "table(",
        "string_map(",
        "raw(",
        "has(",
        "required_string(",
        "secret(",
        "secret_file(",
        "path_key(",
        "header_file(",
        "argv(",
    ];
    let code: String = source
        .lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    for getter in GETTERS {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(getter) {
            let before = rest[..at].chars().last();
            rest = &rest[at + getter.len()..];
            if before != Some('.') {
                continue;
            }
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            for literal in rest[..end].split('"').skip(1).step_by(2) {
                if literal
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase())
                    && literal
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    out.push(literal.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn every_key_literal_in_the_parser_has_a_doc() {
    let documented: Vec<&str> = reference::tables()
        .iter()
        .flat_map(|t| t.keys.iter().map(|k| k.name))
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/parse");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("config/parse is readable") {
        let path = entry.expect("an entry").path();
        let source = std::fs::read_to_string(&path).expect("a parse module");
        for key in getter_literals(&source) {
            if !documented.contains(&key.as_str()) {
                missing.push(format!(
                    "{}: `{key}` is read but no Table documents it",
                    path.display()
                ));
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn getter_literals_are_found_in_code_only() {
    let source = "let a = s.string(d, \"node\");\nlet b = self.secret(&mut s, \"x_file\", \"x_env\");\n\
                  // s.bool(d, \"commented\")\nlet c = s.required_string(d, \"name\", \"\\\"disk\\\"\");\n\
                  let e = format(\"{}\", \"not_a_getter\");\n#[cfg(test)]\nmod t { s.bool(d, \"test_only\") }\n";
    let mut found = getter_literals(source);
    found.sort();
    assert_eq!(found, ["name", "node", "x_env", "x_file"]);
}
