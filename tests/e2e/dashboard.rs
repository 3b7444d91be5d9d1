//! The Grafana dashboard (`examples/grafana/watchpost.json`) against a real
//! Prometheus (Debian's) scraping a real agent: every PromQL expression in
//! it returns data after a few scrapes. The agent watches the host and a
//! real PostgreSQL pair (for the PostgreSQL panels) and has a remediation
//! that decides (for the decisions panel).

use serde_json::Value;
use std::time::{Duration, Instant};
use watchpost_e2e::agent::{Agent, wasm};
use watchpost_e2e::pg::PgPair;
use watchpost_e2e::prometheus::Prometheus;

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/grafana/watchpost.json"
    );
    let text = std::fs::read_to_string(path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every `expr` of every panel (rows' nested panels included).
fn expressions(dashboard: &Value) -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_string());
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn config(pair: &PgPair) -> String {
    format!(
        r#"[agent]
node = "dash-1"
state_dir = "{{STATE}}"
listen = "{{LISTEN}}"

[targets.primary]
kind = "postgres"
dsn = "{primary}"

[targets.standby]
kind = "postgres"
dsn = "{standby}"

[[probe]]
name = "cpu"
wasm = "builtin:host-cpu"
every = "1s"

[[probe]]
name = "memory"
wasm = "builtin:host-memory"
every = "1s"

[[probe]]
name = "disk"
wasm = "builtin:host-disk"
every = "1s"

[[probe]]
name = "postgres-process"
wasm = "builtin:process"
every = "1s"
config = {{ name = "postgres" }}

[[probe]]
name = "alive-primary"
wasm = "builtin:pg-alive"
every = "1s"
targets = ["primary"]
config = {{ role = "primary" }}

[[probe]]
name = "alive-standby"
wasm = "builtin:pg-alive"
every = "1s"
targets = ["standby"]
config = {{ target = "standby", role = "standby" }}

[[probe]]
name = "replication"
wasm = "builtin:pg-replication"
every = "1s"
targets = ["primary", "standby"]

[[probe]]
name = "consistency"
wasm = "builtin:pg-consistency"
every = "2s"
timeout = "2s"
targets = ["primary", "standby"]

[[probe]]
name = "integrity"
wasm = "builtin:pg-integrity"
every = "2s"
timeout = "2s"
targets = ["primary"]
  [probe.config]
  check_indexes = "orders"
  "unique.order_numbers" = "orders(customer_id, number)"

[[probe]]
name = "performance"
wasm = "builtin:pg-performance"
every = "1s"
targets = ["primary"]

[[probe]]
name = "trouble"
wasm = "{flip}"
every = "1s"
config = {{ status = "critical" }}

[[remediation]]
name = "note-trouble"
on = {{ probe = "trouble" }}
action = {{ exec = ["true"] }}
dry_run = true
"#,
        primary = pair.primary.dsn(),
        standby = pair.standby.dsn(),
        flip = wasm("flip"),
    )
}

#[test]
fn every_dashboard_expression_returns_data_through_prometheus() {
    let dashboard = dashboard();
    let exprs = expressions(&dashboard);
    assert!(exprs.len() >= 30, "only {} expressions", exprs.len());
    let variable = &dashboard["templating"]["list"][1];
    assert_eq!(variable["name"], "node");
    assert_eq!(
        variable["definition"],
        "label_values(watchpost_build_info, node)"
    );

    let pair = PgPair::start();
    pair.primary.execute(
        "CREATE EXTENSION amcheck;
         GRANT EXECUTE ON FUNCTION bt_index_check(regclass) TO watchpost;
         GRANT pg_read_all_data TO watchpost;
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int, number int, total numeric(12, 2),
                              UNIQUE (customer_id, number));
         INSERT INTO orders SELECT g, g % 100, g, g * 3.5 FROM generate_series(1, 500) g;
         ANALYZE;",
    );
    pair.wait_for_replay();
    let agent = Agent::start(&config(&pair));
    let prometheus = Prometheus::start(&[format!("127.0.0.1:{}", agent.port)]);

    // The node variable lists the agent's node.
    let node = agent.json("/v1/probes")["node"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending: Vec<String> = exprs
        .iter()
        .map(|e| {
            e.replace("$node", &node)
                .replace("$__rate_interval", "10s")
                .replace("$__interval", "2s")
        })
        .collect();
    pending.push(format!("watchpost_build_info{{node=\"{node}\"}}"));
    loop {
        let mut still = Vec::new();
        for expr in pending {
            match prometheus.query(&expr) {
                Ok(result) if !result.is_empty() => {}
                Ok(_) => still.push(expr),
                Err(e) => panic!("Prometheus refused a dashboard expression: {e}"),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expressions without data after 60 s:\n{}\n\ntargets: {}\n\n/metrics:\n{}",
            pending.join("\n"),
            prometheus.targets(),
            agent.get("/metrics").map(|r| r.1).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}
