//! From TOML text to a validated [`Config`], collecting every error.
//!
//! This file holds the reader's entry point ([`parse`]), the [`Parser`]
//! that carries the diagnostics through every section, the `[agent]`
//! section and the helpers shared by the sections. Each other section has
//! a file of its own, so that each file does one job: [`targets`],
//! [`probe`] (and its [`thresholds`] and [`dirs`] grants), [`drill`]
//! (`[[drill]]` restore drills; the MariaDB and Redis methods' keys in
//! [`drill_engine`]), [`remediation`] (and its [`actions`],
//! the recovery ones in [`recovery`]), [`otlp`] (`[telemetry]`) and
//! [`cluster`] (`[cluster]`, its etcd access in [`etcd_access`]).

mod actions;
mod cluster;
mod cluster_mariadb;
mod dirs;
mod drill;
mod drill_engine;
mod etcd_access;
mod mysql_failover;
mod otlp;
mod probe;
mod recovery;
mod redis_target;
mod remediation;
mod secrets;
mod targets;
mod thresholds;

use super::diagnostics::{ConfigErrors, Diagnostics, line_column};
use super::model::*;
use super::reader::{Section, type_name};
use super::units;
use crate::report::Status;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

pub use drill_engine::redis_check_words;
pub use targets::validate_dsn;

use super::keys::{Key, Kind, Table, key};

/// The config file's top level; each key's table is documented beside the
/// code that reads it.
pub(super) static ROOT: Table = Table {
    heading: "Top level",
    doc: "A config file is TOML with these sections; all are optional (an empty file is a valid config that runs nothing).",
    keys: &[
        key("agent", Kind::Table, "none", "How the agent itself runs.").of(&AGENT),
        key(
            "targets",
            Kind::Table,
            "none",
            "The database servers probes and actions may use, by name.",
        )
        .of(&targets::TARGETS),
        key(
            "probe",
            Kind::Tables,
            "none",
            "The probes to run, each `[[probe]]` with a name, a component and a schedule.",
        )
        .of(&probe::PROBE),
        key("drill", Kind::Tables, "none", "Scheduled restore drills.").of(&drill::DRILL),
        key(
            "remediation",
            Kind::Tables,
            "none",
            "What to do when a probe reaches a hard state.",
        )
        .of(&remediation::REMEDIATION),
        key("telemetry", Kind::Table, "none", "Metric and event export.").of(&otlp::TELEMETRY),
        key(
            "cluster",
            Kind::Table,
            "none",
            "Cluster mode: a leader lease in etcd decides which node is the primary.",
        )
        .of(&cluster::CLUSTER),
    ],
    entries: None,
};

static AGENT: Table = Table {
    heading: "[agent]",
    doc: "How the agent itself runs: its name, state, API address and resource bounds.",
    keys: &[
        key(
            "node",
            Kind::String,
            "the host name",
            "This node's name in reports, metrics and the cluster: 1 to 64 letters, digits, `-`, `_` or `.`.",
        ),
        key(
            "state_dir",
            Kind::String,
            "/var/lib/watchpost (root), ~/.local/state/watchpost (others)",
            "Directory of persistent state, the API token, the audit log and the compile cache; `WATCHPOST_STATE_DIR` overrides the default.",
        ),
        key(
            "listen",
            Kind::String,
            "\"127.0.0.1:9464\"",
            "IP:PORT of the status page, API and /metrics; a non-loopback address needs `api_token_env`.",
        ),
        key(
            "concurrency",
            Kind::Integer { min: 1, max: 1024 },
            "the number of CPUs",
            "How many probe runs may be in flight at once.",
        ),
        key(
            "memory_budget",
            Kind::Size(units::MEMORY_BUDGET),
            "\"1GiB\"",
            "Sum of the memory caps of the runs in flight; a run waits until its cap fits.",
        ),
        key(
            "dry_run",
            Kind::Bool,
            "false",
            "Log what every remediation would do instead of doing it.",
        ),
        key(
            "api_token_env",
            Kind::String,
            "none",
            "Name of an environment variable holding the token the control endpoints (reload, pause, reset) require; needed when `listen` is not loopback (else the token is the file `state_dir/api-token`).",
        ),
        key(
            "flapping",
            Kind::Table,
            "enabled, high 30, low 25",
            "Flap detection for every probe (a probe's own `flapping` overrides it).",
        )
        .of(&FLAPPING),
        key(
            "cache_size",
            Kind::Size(units::CACHE_SIZE),
            "\"1GiB\"",
            "Bound of the compiled-probe cache in `state_dir/cache`.",
        ),
        key(
            "state_flush",
            Kind::Duration(units::STATE_FLUSH),
            "\"1s\"",
            "How often soft state (counters, recent results) is written to disk.",
        ),
        key(
            "local_target",
            Kind::String,
            "the one target with a `data_dir`, if exactly one",
            "The [targets.NAME] whose server runs on this node: what the load-balancer endpoints (/v1/role/...) report on, and cluster mode's default `target`.",
        ),
    ],
    entries: None,
};

/// `flapping = { ... }` in `[agent]`, `[[probe]]` and `[[drill]]`.
static FLAPPING: Table = Table {
    heading: "flapping (in [agent], [[probe]] and [[drill]])",
    doc: "Flap detection: a probe whose status changes in more than `high` percent of its recent runs is flapping (its notifications and remediations are held) until it falls below `low`.",
    keys: &[
        key(
            "enabled",
            Kind::Bool,
            "true",
            "Whether flapping is detected.",
        ),
        key(
            "high",
            Kind::Number,
            "30",
            "Percent of state changes at which a probe starts flapping (0 to 100, at least `low`).",
        )
        .unit("%"),
        key(
            "low",
            Kind::Number,
            "25",
            "Percent of state changes below which it stops flapping (0 to 100).",
        )
        .unit("%"),
    ],
    entries: None,
};

/// `for` in `[[probe]]`, `[[drill]]` and thresholds.
const FOR: Key = key(
    "for",
    Kind::Integer { min: 1, max: 1000 },
    "1",
    "Consecutive failing runs before a soft state becomes hard.",
)
.unit("runs");
/// `recover` in `[[probe]]`, `[[drill]]` and thresholds.
const RECOVER: Key = key(
    "recover",
    Kind::Integer { min: 1, max: 1000 },
    "1",
    "Consecutive OK runs before a hard problem state recovers.",
)
.unit("runs");

/// Where a config comes from and how to resolve what it names.
pub struct Source<'a> {
    /// Name used in messages (usually the path as given).
    pub file: &'a str,
    pub text: &'a str,
    /// Directory that relative `wasm` paths are resolved against.
    pub base_dir: &'a Path,
    /// Names of the probes embedded in the binary (`builtin:NAME`).
    pub builtins: &'a [&'a str],
}

pub fn parse(source: &Source<'_>) -> Result<Config, ConfigErrors> {
    let mut d = Diagnostics::new(source.file, source.text);
    let root = match DeTable::parse(source.text) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            d.error(span, format!("invalid TOML: {}", e.message().trim()));
            return Err(d.into_errors());
        }
    };
    let span = root.span();
    let mut top = Section::new(&ROOT, "top level", root.get_ref(), span);
    let mut parser = Parser {
        d,
        source,
        strict_written: Default::default(),
    };

    let mut targets = parser.targets(&mut top);
    let agent = match top.table(&mut parser.d, "agent") {
        Some(section) => parser.agent(section, &targets),
        None => parser.default_agent(),
    };
    let mut probes = parser.probes(&mut top, &targets);
    let (drills, drill_probes) = parser.drills(&mut top, &probes);
    probes.extend(drill_probes);
    let remediations = parser.remediations(&mut top, &probes, &targets);
    let telemetry = match top.table(&mut parser.d, "telemetry") {
        Some(section) => parser.telemetry(section),
        None => Telemetry::default(),
    };
    let cluster = match top.table(&mut parser.d, "cluster") {
        Some(section) => {
            let span = section.span.clone();
            // In cluster mode the leader key decides failovers: a
            // single-agent failover beside it could promote a second server.
            for r in remediations
                .iter()
                .filter(|r| matches!(r.action, Action::Failover(_)))
            {
                parser.d.error(
                    span.clone(),
                    format!(
                        "[cluster]: remediation {:?} ({}) is a failover; in cluster mode the leader key decides failovers: remove that remediation (or the [cluster] section)",
                        r.name, r.place
                    ),
                );
            }
            parser.cluster(section, &agent, &targets)
        }
        None => None,
    };
    if let Some(cluster) = &cluster {
        let etcd_probe = parser.etcd_probe(cluster, &probes);
        probes.extend(etcd_probe);
        // The local server's target: its `dsn` role is the probes', and
        // the agent's own (admin_dsn) may promote; probes on a role that
        // may do more than monitor are refused unless written otherwise.
        if !parser.strict_written.contains(&cluster.target)
            && let Some(target) = targets.get_mut(&cluster.target)
        {
            target.strict_privileges = true;
        }
    }
    let mut d = parser.d;
    top.finish(&mut d);
    if !d.is_empty() {
        return Err(d.into_errors());
    }
    Ok(Config {
        file: source.file.to_string(),
        agent,
        targets,
        probes,
        remediations,
        drills,
        telemetry,
        cluster,
    })
}

struct Parser<'s, 'a> {
    d: Diagnostics<'s>,
    source: &'a Source<'a>,
    /// The targets whose `strict_privileges` is written (cluster mode
    /// turns it on for its target unless written).
    strict_written: std::collections::BTreeSet<String>,
}

fn status_word(
    d: &mut Diagnostics,
    path: &str,
    key: &str,
    text: super::reader::At<String>,
) -> Option<Status> {
    match Status::parse(&text.value) {
        Some(status) => Some(status),
        None => {
            d.error(
                text.span,
                format!(
                    "{path}: `{key}` = {:?} is not a status; write \"ok\", \"warning\", \"critical\" or \"unknown\"",
                    text.value
                ),
            );
            None
        }
    }
}

/// Names of probes, targets and remediations: they become file names and
/// metric labels, so 1 to 64 letters, digits, `-`, `_` or `.`, starting
/// with a letter or digit.
fn valid_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Default state directory: `/var/lib/watchpost` for root, else under `$HOME`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WATCHPOST_STATE_DIR") {
        return PathBuf::from(dir);
    }
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    match std::env::var_os("HOME") {
        Some(home) if !is_root => PathBuf::from(home).join(".local/state/watchpost"),
        _ => PathBuf::from("/var/lib/watchpost"),
    }
}

pub fn default_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

impl Parser<'_, '_> {
    fn place(&self, span: &std::ops::Range<usize>) -> Place {
        let (line, column) = line_column(self.source.text, span.start);
        Place {
            file: self.source.file.to_string(),
            line,
            column,
        }
    }

    fn default_agent(&self) -> Agent {
        Agent {
            node: crate::hostinfo::hostname(),
            state_dir: default_state_dir(),
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            concurrency: default_concurrency(),
            memory_budget: units::GIB,
            dry_run: false,
            api_token_env: None,
            flapping: Flapping::default(),
            cache_size: 1 << 30,
            state_flush: std::time::Duration::from_secs(1),
            local_target: None,
        }
    }

    fn agent(&mut self, mut s: Section, targets: &BTreeMap<String, Target>) -> Agent {
        let mut agent = self.default_agent();
        let d = &mut self.d;
        if let Some(node) = s.string(d, "node") {
            if valid_name(&node.value) {
                agent.node = node.value;
            } else {
                d.error(
                    node.span,
                    format!(
                        "[agent]: `node` = {:?} must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit",
                        node.value
                    ),
                );
            }
        }
        if let Some(dir) = s.string(d, "state_dir") {
            let path = PathBuf::from(&dir.value);
            agent.state_dir = if path.is_absolute() {
                path
            } else {
                self.source.base_dir.join(path)
            };
        }
        if let Some(listen) = s.string(d, "listen") {
            match listen.value.parse::<SocketAddr>() {
                Ok(addr) => agent.listen = addr,
                Err(_) => d.error(
                    listen.span,
                    format!("[agent]: `listen` = {:?} is not an address; write IP:PORT, e.g. \"127.0.0.1:9464\"", listen.value),
                ),
            }
        }
        if let Some(n) = s.integer(d, "concurrency", 1, 1024) {
            agent.concurrency = n.value as usize;
        }
        if let Some(budget) = s.size(d, "memory_budget", units::MEMORY_BUDGET) {
            agent.memory_budget = budget.value;
        }
        if let Some(dry) = s.bool(d, "dry_run") {
            agent.dry_run = dry;
        }
        agent.api_token_env = s.string(d, "api_token_env").map(|t| t.value);
        if let Some(flap) = s.table(d, "flapping") {
            agent.flapping = flapping(d, flap, Flapping::default());
        }
        if let Some(size) = s.size(d, "cache_size", units::CACHE_SIZE) {
            agent.cache_size = size.value;
        }
        if let Some(every) = s.duration(d, "state_flush", units::STATE_FLUSH) {
            agent.state_flush = every.value;
        }
        if let Some(local) = s.string(d, "local_target") {
            if !targets.contains_key(&local.value) {
                d.error(
                    local.span.clone(),
                    format!(
                        "[agent]: `local_target` = {:?} is not a target defined in [targets]",
                        local.value
                    ),
                );
            }
            agent.local_target = Some(local.value);
        }
        let span = s.span.clone();
        s.finish(d);
        if !agent.listen.ip().is_loopback() && agent.api_token_env.is_none() {
            d.error(
                span,
                format!(
                    "[agent]: `listen` = \"{}\" is reachable from other hosts, so the control endpoints need a token: \
                     set `api_token_env` to the name of an environment variable holding it",
                    agent.listen
                ),
            );
        }
        agent
    }

    fn array_of_tables<'t, 'i>(
        &mut self,
        top: &mut Section<'t, 'i>,
        key: &'static str,
        example: &str,
    ) -> Vec<(&'t DeTable<'i>, std::ops::Range<usize>)> {
        let Some(value) = top.raw(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.d.error(
                value.span(),
                format!("`{key}` must be an array of tables: write each as [[{key}]] ({example})"),
            );
            return Vec::new();
        };
        let mut tables = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => tables.push((t, item.span())),
                other => self.d.error(
                    item.span(),
                    format!(
                        "each `{key}` entry must be a table, found {}",
                        type_name(other)
                    ),
                ),
            }
        }
        tables
    }
}

/// A `${NAME}` whose environment variable is not set (the first one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("uses ${{{name}}}, but the environment variable {name} is not set")]
pub struct UnsetVar {
    pub name: String,
}

/// Replace `${NAME}` with the environment variable NAME; the first unset
/// variable on error.
pub fn resolve_env(text: &str) -> Result<String, UnsetVar> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &rest[start + 2..start + end];
        out.push_str(&std::env::var(name).map_err(|_| UnsetVar {
            name: name.to_string(),
        })?);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn confirm(d: &mut Diagnostics, s: &mut Section, default: Confirm) -> Confirm {
    Confirm {
        failures: s
            .integer(d, "for", 1, 1000)
            .map_or(default.failures, |v| v.value as u32),
        recoveries: s
            .integer(d, "recover", 1, 1000)
            .map_or(default.recoveries, |v| v.value as u32),
    }
}

fn flapping(d: &mut Diagnostics, mut s: Section, default: Flapping) -> Flapping {
    let enabled = s.bool(d, "enabled").unwrap_or(default.enabled);
    let high = s.number(d, "high");
    let low = s.number(d, "low");
    let flap = Flapping {
        enabled,
        high: high.as_ref().map_or(default.high, |h| h.value),
        low: low.as_ref().map_or(default.low, |l| l.value),
    };
    if !(0.0..=100.0).contains(&flap.high)
        || !(0.0..=100.0).contains(&flap.low)
        || flap.low > flap.high
    {
        d.error(
            s.span.clone(),
            format!("{}: `low` ({}) and `high` ({}) must be percentages with low <= high, e.g. high = 30, low = 25", s.path, flap.low, flap.high),
        );
    }
    s.finish(d);
    flap
}
