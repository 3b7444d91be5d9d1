//! From TOML text to a validated [`Config`], collecting every error.

use super::diagnostics::{ConfigErrors, Diagnostics, line_column};
use super::model::*;
use super::reader::{At, Section, type_name};
use crate::policy::range::{RANGE_HINT, Range};
use crate::report::Status;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::{DeTable, DeValue};

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
    let mut top = Section::new("top level", root.get_ref(), span);
    let mut parser = Parser { d, source };

    let targets = parser.targets(&mut top);
    let agent = match top.table(&mut parser.d, "agent") {
        Some(section) => parser.agent(section, &targets),
        None => parser.default_agent(),
    };
    let probes = parser.probes(&mut top, &targets);
    let remediations = parser.remediations(&mut top, &probes, &targets);
    let telemetry = match top.table(&mut parser.d, "telemetry") {
        Some(section) => parser.telemetry(section),
        None => Telemetry::default(),
    };
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
        telemetry,
    })
}

struct Parser<'s, 'a> {
    d: Diagnostics<'s>,
    source: &'a Source<'a>,
}

fn status_word(d: &mut Diagnostics, path: &str, key: &str, text: At<String>) -> Option<Status> {
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

impl<'s> Parser<'s, '_> {
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
            dry_run: false,
            api_token_env: None,
            flapping: Flapping::default(),
            cache_size: 1 << 30,
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
        if let Some(dry) = s.bool(d, "dry_run") {
            agent.dry_run = dry;
        }
        agent.api_token_env = s.string(d, "api_token_env").map(|t| t.value);
        if let Some(flap) = s.table(d, "flapping") {
            agent.flapping = flapping(d, flap, Flapping::default());
        }
        if let Some(size) = s.size(d, "cache_size") {
            agent.cache_size = size.value;
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

    fn targets(&mut self, top: &mut Section) -> BTreeMap<String, Target> {
        let mut targets = BTreeMap::new();
        let Some(section) = top.table(&mut self.d, "targets") else {
            return targets;
        };
        for (name, value) in section.entries() {
            let name_text = name.get_ref().to_string();
            let DeValue::Table(table) = value.get_ref() else {
                self.d.error(
                    value.span(),
                    format!("[targets]: `{name_text}` is {}, expected a table such as [targets.{name_text}]", type_name(value.get_ref())),
                );
                continue;
            };
            if !valid_name(&name_text) {
                self.d.error(name.span(), format!("[targets]: target name {name_text:?} must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit"));
            }
            let mut s = Section::new(format!("[targets.{name_text}]"), table, value.span());
            let d = &mut self.d;
            let kind = match s.string(d, "kind") {
                None => TargetKind::Postgres,
                Some(k) if k.value == "postgres" || k.value == "postgresql" => TargetKind::Postgres,
                Some(k) => {
                    d.error(
                        k.span,
                        format!(
                            "{}: `kind` = {:?} is not supported; write \"postgres\"",
                            s.path, k.value
                        ),
                    );
                    TargetKind::Postgres
                }
            };
            let dsn = s.required_string(
                d,
                "dsn",
                "\"host=127.0.0.1 port=5432 user=watchpost dbname=postgres\"",
            );
            if let Some(dsn) = &dsn
                && let Err(e) = crate::sql::validate_dsn(&dsn.value)
            {
                d.error(
                    dsn.span.clone(),
                    format!("{}: `dsn` is not a valid connection string: {e}", s.path),
                );
            }
            let read_only = s.bool(d, "read_only").unwrap_or(true);
            let data_dir = s.string(d, "data_dir").map(|p| PathBuf::from(p.value));
            s.finish(d);
            if let Some(dsn) = dsn {
                targets.insert(
                    name_text,
                    Target {
                        kind,
                        dsn: dsn.value,
                        read_only,
                        data_dir,
                    },
                );
            }
        }
        targets
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

    fn probes(&mut self, top: &mut Section, targets: &BTreeMap<String, Target>) -> Vec<ProbeSpec> {
        let mut probes = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (table, span) in self.array_of_tables(
            top,
            "probe",
            "[[probe]] name = \"disk\" wasm = \"builtin:host-disk\"",
        ) {
            let mut s = Section::new("[[probe]]", table, span.clone());
            let Some(name) = s.required_string(&mut self.d, "name", "\"disk\"") else {
                // Read the rest anyway, to report its errors too.
                let _ = self.probe_body(&mut s, "?", targets);
                s.finish(&mut self.d);
                continue;
            };
            s.path = format!("[[probe]] {:?}", name.value);
            if !valid_name(&name.value) {
                self.d.error(
                    name.span.clone(),
                    format!(
                        "{}: the name must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit",
                        s.path
                    ),
                );
            }
            let line = line_column(self.source.text, name.span.start).0;
            if let Some(first) = seen.insert(name.value.clone(), line) {
                self.d.error(
                    name.span.clone(),
                    format!("{}: the name {:?} is already used by the probe at line {first}; probe names must be unique", s.path, name.value),
                );
            }
            let body = self.probe_body(&mut s, &name.value, targets);
            s.finish(&mut self.d);
            if let Some(mut probe) = body {
                probe.place = self.place(&name.span);
                probes.push(probe);
            }
        }
        probes
    }

    fn probe_body(
        &mut self,
        s: &mut Section,
        name: &str,
        targets: &BTreeMap<String, Target>,
    ) -> Option<ProbeSpec> {
        let wasm_text = s.required_string(
            &mut self.d,
            "wasm",
            "\"builtin:host-disk\" or \"probes/pg-alive.wasm\"",
        );
        let sha256 = s.string(&mut self.d, "sha256");
        let d = &mut self.d;
        let every = s
            .duration(d, "every")
            .map_or(Duration::from_secs(30), |v| v.value);
        let timeout = s
            .duration(d, "timeout")
            .map_or(Duration::from_secs(10), |v| v.value);
        let memory = s.size(d, "memory");
        if let Some(m) = &memory
            && m.value > crate::runtime::engine::MAX_PROBE_MEMORY
        {
            d.error(
                m.span.clone(),
                format!(
                    "{}: `memory` is over the limit of {}",
                    s.path,
                    crate::runtime::human_bytes(crate::runtime::engine::MAX_PROBE_MEMORY)
                ),
            );
        }
        let memory = memory.map_or(64 << 20, |m| {
            m.value.min(crate::runtime::engine::MAX_PROBE_MEMORY)
        });
        let granted = s.string_list(d, "targets").unwrap_or_default();
        for target in &granted {
            if !targets.contains_key(&target.value) {
                let defined: Vec<&str> = targets.keys().map(String::as_str).collect();
                d.error(
                    target.span.clone(),
                    format!(
                        "{}: target `{}` is not defined; add a [targets.{}] table or remove it from `targets` (defined: {})",
                        s.path,
                        target.value,
                        target.value,
                        if defined.is_empty() { "none".to_string() } else { defined.join(", ") }
                    ),
                );
            }
        }
        let config = s
            .string_map(d, "config")
            .map(|m| m.into_iter().map(|(k, v)| (k, v.value)).collect())
            .unwrap_or_default();
        let confirm = confirm(d, s, Confirm::default());
        let flapping = s
            .table(d, "flapping")
            .map_or(Flapping::default(), |f| flapping(d, f, Flapping::default()));
        let thresholds = self.thresholds(s);
        let wasm = self.wasm_source(s, wasm_text?, sha256.as_ref())?;
        if name == "?" {
            return None;
        }
        Some(ProbeSpec {
            name: name.to_string(),
            wasm,
            sha256: sha256.map(|s| s.value.to_ascii_lowercase()),
            every,
            timeout,
            memory,
            targets: granted.into_iter().map(|t| t.value).collect(),
            config,
            thresholds,
            confirm,
            flapping,
            place: Place::default(),
        })
    }

    fn wasm_source(
        &mut self,
        s: &Section,
        text: At<String>,
        pin: Option<&At<String>>,
    ) -> Option<WasmSource> {
        let d = &mut self.d;
        if let Some(builtin) = text.value.strip_prefix("builtin:") {
            if !self.source.builtins.contains(&builtin) {
                d.error(
                    text.span,
                    format!(
                        "{}: there is no built-in probe {builtin:?}; built-in probes are: {}",
                        s.path,
                        self.source.builtins.join(", ")
                    ),
                );
                return None;
            }
            if let Some(pin) = pin {
                d.error(pin.span.clone(), format!("{}: `sha256` pins a file; built-in probes are part of the binary and cannot be pinned", s.path));
            }
            return Some(WasmSource::Builtin(builtin.to_string()));
        }
        let path = PathBuf::from(&text.value);
        let path = if path.is_absolute() {
            path
        } else {
            self.source.base_dir.join(path)
        };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let what = if e.kind() == std::io::ErrorKind::NotFound {
                    "not found".to_string()
                } else {
                    e.to_string()
                };
                d.error(
                    text.span,
                    format!(
                        "{}: `wasm` file {} {what} (relative paths are resolved from the config file's directory; \
                         build the probes with `cargo xtask build`)",
                        s.path,
                        path.display()
                    ),
                );
                return None;
            }
        };
        if let Some(pin) = pin {
            let actual = hex::encode(Sha256::digest(&bytes));
            let wanted = pin.value.to_ascii_lowercase();
            if wanted.len() != 64 || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
                d.error(
                    pin.span.clone(),
                    format!(
                        "{}: `sha256` must be 64 hex digits (the output of `sha256sum FILE`)",
                        s.path
                    ),
                );
            } else if actual != wanted {
                d.error(
                    pin.span.clone(),
                    format!(
                        "{}: `sha256` pin does not match {}: the file's sha256 is {actual}; if the file changed on purpose, update the pin",
                        s.path,
                        path.display()
                    ),
                );
            }
        }
        Some(WasmSource::File(path))
    }

    fn thresholds(&mut self, s: &mut Section) -> Vec<ThresholdRule> {
        let d = &mut self.d;
        let Some(section) = s.table(d, "thresholds") else {
            return Vec::new();
        };
        let mut rules = Vec::new();
        for (measurement, value) in section.entries() {
            let name = measurement.get_ref().to_string();
            let DeValue::Table(table) = value.get_ref() else {
                d.error(
                    value.span(),
                    format!("{}: thresholds for `{name}` must be a table, e.g. {{ warning = \"~:80\", critical = \"~:90\" }}", s.path),
                );
                continue;
            };
            let mut t = Section::new(
                format!("{} thresholds.\"{name}\"", s.path),
                table,
                value.span(),
            );
            let range = |t: &mut Section, key: &'static str, d: &mut Diagnostics| {
                let text = t.string(d, key)?;
                match Range::parse(&text.value) {
                    Ok(range) => Some(range),
                    Err(e) => {
                        d.error(
                            text.span,
                            format!(
                                "{}: `{key}` = {:?} is not a valid range: {e}; {RANGE_HINT}",
                                t.path, text.value
                            ),
                        );
                        None
                    }
                }
            };
            let warning = range(&mut t, "warning", d);
            let critical = range(&mut t, "critical", d);
            if !t.has("warning") && !t.has("critical") {
                d.error(
                    t.span.clone(),
                    format!("{}: give `warning`, `critical` or both", t.path),
                );
            }
            let confirm = confirm(d, &mut t, Confirm::default());
            t.finish(d);
            rules.push(ThresholdRule {
                measurement: name,
                warning,
                critical,
                confirm,
            });
        }
        rules
    }

    fn remediations(
        &mut self,
        top: &mut Section,
        probes: &[ProbeSpec],
        targets: &BTreeMap<String, Target>,
    ) -> Vec<Remediation> {
        let mut out = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let probe_names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
        for (table, span) in
            self.array_of_tables(top, "remediation", "[[remediation]] name = \"restart\" ...")
        {
            let mut s = Section::new("[[remediation]]", table, span.clone());
            let name = s.required_string(&mut self.d, "name", "\"restart-postgres\"");
            if let Some(name) = &name {
                s.path = format!("[[remediation]] {:?}", name.value);
                if !valid_name(&name.value) {
                    self.d.error(
                        name.span.clone(),
                        format!(
                            "{}: the name must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit",
                            s.path
                        ),
                    );
                }
                let line = line_column(self.source.text, name.span.start).0;
                if let Some(first) = seen.insert(name.value.clone(), line) {
                    self.d.error(
                        name.span.clone(),
                        format!(
                            "{}: the name is already used by the remediation at line {first}",
                            s.path
                        ),
                    );
                }
            }
            let body = self.remediation_body(&mut s, &probe_names, probes, targets);
            s.finish(&mut self.d);
            if let (Some(name), Some(mut r)) = (name, body) {
                r.name = name.value;
                r.place = self.place(&name.span);
                out.push(r);
            }
        }
        out
    }

    fn probe_ref(
        &mut self,
        path: &str,
        key: &str,
        name: At<String>,
        probes: &[&str],
    ) -> Option<String> {
        if probes.contains(&name.value.as_str()) {
            return Some(name.value);
        }
        self.d.error(
            name.span,
            format!(
                "{path}: `{key}` names probe {:?}, which is not defined (probes: {})",
                name.value,
                if probes.is_empty() {
                    "none".to_string()
                } else {
                    probes.join(", ")
                }
            ),
        );
        None
    }

    fn condition(
        &mut self,
        mut c: Section,
        probes: &[&str],
        default_status: Status,
    ) -> Option<Condition> {
        let probe = c.required_string(&mut self.d, "probe", "\"alive\"");
        let status = c.string(&mut self.d, "status");
        let path = c.path.clone();
        c.finish(&mut self.d);
        let status = match status {
            Some(text) => status_word(&mut self.d, &path, "status", text)?,
            None => default_status,
        };
        let probe = self.probe_ref(&path, "probe", probe?, probes)?;
        Some(Condition { probe, status })
    }

    fn remediation_body(
        &mut self,
        s: &mut Section,
        probe_names: &[&str],
        probes: &[ProbeSpec],
        targets: &BTreeMap<String, Target>,
    ) -> Option<Remediation> {
        let on = match s.table(&mut self.d, "on") {
            Some(mut t) => {
                let measurement = t.string(&mut self.d, "measurement");
                let condition = self.condition_with(&mut t, probe_names, Status::Critical);
                let measurement = measurement.map(|m| m.value);
                if let (Some(c), Some(m)) = (&condition, &measurement)
                    && let Some(p) = probes.iter().find(|p| p.name == c.probe)
                    && !p.thresholds.iter().any(|t| &t.measurement == m)
                {
                    self.d.error(
                        t.span.clone(),
                        format!("{}: `on.measurement` = {m:?} has no thresholds in probe {:?}; add [probe.thresholds.\"{m}\"] there", s.path, c.probe),
                    );
                }
                t.finish(&mut self.d);
                condition.map(|c| Trigger {
                    probe: c.probe,
                    status: c.status,
                    measurement,
                })
            }
            None => {
                self.d.error(s.span.clone(), format!("{}: `on` is missing; add e.g. `on = {{ probe = \"alive\", status = \"critical\" }}`", s.path));
                None
            }
        };
        let mut unless = Vec::new();
        if let Some(raw) = s.raw("unless") {
            let items: Vec<(&DeTable, std::ops::Range<usize>)> = match raw.get_ref() {
                DeValue::Table(t) => vec![(t, raw.span())],
                DeValue::Array(a) => a
                    .iter()
                    .filter_map(|i| match i.get_ref() {
                        DeValue::Table(t) => Some((t, i.span())),
                        _ => {
                            self.d.error(i.span(), format!("{}: each `unless` entry must be a table like {{ probe = \"disk\", status = \"critical\" }}", s.path));
                            None
                        }
                    })
                    .collect(),
                _ => {
                    self.d.error(raw.span(), format!("{}: `unless` must be a table like {{ probe = \"disk\", status = \"critical\" }} or an array of them", s.path));
                    Vec::new()
                }
            };
            for (table, span) in items {
                let c = Section::new(format!("{} unless", s.path), table, span);
                if let Some(c) = self.condition(c, probe_names, Status::Critical) {
                    unless.push(c);
                }
            }
        }
        let action = match s.table(&mut self.d, "action") {
            Some(a) => self.action(a, targets, true),
            None => {
                self.d.error(s.span.clone(), format!("{}: `action` is missing; add e.g. `action = {{ exec = [\"systemctl\", \"restart\", \"postgresql\"] }}`", s.path));
                None
            }
        };
        let d = &mut self.d;
        let cooldown = s
            .duration(d, "cooldown")
            .map_or(Duration::from_secs(300), |c| c.value);
        let limit = s.table(d, "limit").and_then(|mut l| {
            let count = l.integer(d, "count", 1, 1_000_000);
            let per = l.duration(d, "per");
            if count.is_none() || per.is_none() {
                d.error(
                    l.span.clone(),
                    format!(
                        "{}: `limit` needs `count` and `per`, e.g. {{ count = 3, per = \"1h\" }}",
                        s.path
                    ),
                );
            }
            l.finish(d);
            Some(RateLimit {
                count: count?.value as u32,
                per: per?.value,
            })
        });
        let dry_run = s.bool(d, "dry_run").unwrap_or(false);
        let verify = match s.table(d, "verify") {
            Some(mut v) => {
                let probe = v.required_string(d, "probe", "\"alive\"");
                let within = v
                    .duration(d, "within")
                    .map_or(Duration::from_secs(30), |w| w.value);
                let path = v.path.clone();
                v.finish(d);
                probe
                    .and_then(|p| self.probe_ref(&path, "probe", p, probe_names))
                    .map(|probe| Verify { probe, within })
            }
            None => None,
        };
        let alert = match s.table(&mut self.d, "alert") {
            Some(a) => {
                let span = a.span.clone();
                let action = self.action(a, targets, false);
                if let Some(action) = &action
                    && !matches!(action, Action::Exec(_) | Action::Webhook(_))
                {
                    self.d.error(
                        span,
                        format!("{}: `alert` must be an exec or webhook action", s.path),
                    );
                }
                action
            }
            None => None,
        };
        Some(Remediation {
            name: String::new(),
            on: on?,
            unless,
            action: action?,
            cooldown,
            limit,
            verify,
            dry_run,
            alert,
            place: Place::default(),
        })
    }

    fn condition_with(
        &mut self,
        t: &mut Section,
        probes: &[&str],
        default_status: Status,
    ) -> Option<Condition> {
        let probe = t.required_string(&mut self.d, "probe", "\"alive\"");
        let status = t.string(&mut self.d, "status");
        let path = t.path.clone();
        let status = match status {
            Some(text) => status_word(&mut self.d, &path, "status", text)?,
            None => default_status,
        };
        if status == Status::Ok {
            self.d.error(
                t.span.clone(),
                format!("{path}: a remediation cannot fire on status \"ok\""),
            );
        }
        let probe = self.probe_ref(&path, "probe", probe?, probes)?;
        Some(Condition { probe, status })
    }

    fn argv(&mut self, path: &str, key: &'static str, s: &mut Section) -> Option<Vec<String>> {
        let list = s.string_list(&mut self.d, key)?;
        if list.is_empty() || list[0].value.is_empty() {
            self.d.error(s.span.clone(), format!("{path}: `{key}` needs a program and its arguments, e.g. [\"systemctl\", \"restart\", \"postgresql\"]"));
            return None;
        }
        Some(list.into_iter().map(|a| a.value).collect())
    }

    fn target_ref(
        &mut self,
        path: &str,
        key: &str,
        name: At<String>,
        targets: &BTreeMap<String, Target>,
    ) -> Option<String> {
        if targets.contains_key(&name.value) {
            return Some(name.value);
        }
        self.d.error(
            name.span,
            format!(
                "{path}: `{key}` names target {:?}, which is not defined in [targets]",
                name.value
            ),
        );
        None
    }

    fn action(
        &mut self,
        mut a: Section,
        targets: &BTreeMap<String, Target>,
        allow_post: bool,
    ) -> Option<Action> {
        let path = a.path.clone();
        let kinds = ["exec", "restart", "failover", "webhook"];
        let present: Vec<&str> = kinds.iter().copied().filter(|k| a.has(k)).collect();
        if present.len() != 1 {
            self.d.error(
                a.span.clone(),
                format!("{path}: give exactly one of `exec`, `restart`, `failover` or `webhook` (found {})", if present.is_empty() { "none".to_string() } else { present.join(", ") }),
            );
            a.finish(&mut self.d);
            return None;
        }
        let action = match present[0] {
            "exec" => {
                let argv = self.argv(&path, "exec", &mut a);
                let d = &mut self.d;
                let timeout = a
                    .duration(d, "timeout")
                    .map_or(Duration::from_secs(60), |t| t.value);
                let env = a
                    .string_map(d, "env")
                    .map(|m| m.into_iter().map(|(k, v)| (k, v.value)).collect())
                    .unwrap_or_default();
                argv.map(|argv| Action::Exec(ExecAction { argv, timeout, env }))
            }
            "restart" => self.restart(&path, &mut a, targets),
            "failover" => self.failover(&path, &mut a, targets, allow_post),
            _ => {
                let d = &mut self.d;
                let url = a.string(d, "webhook");
                if let Some(u) = &url
                    && !(u.value.starts_with("http://") || u.value.starts_with("https://"))
                {
                    d.error(
                        u.span.clone(),
                        format!("{path}: `webhook` must be an http:// or https:// URL"),
                    );
                }
                let timeout = a
                    .duration(d, "timeout")
                    .map_or(Duration::from_secs(5), |t| t.value);
                let retries = a
                    .integer(d, "retries", 0, 100)
                    .map_or(3, |r| r.value as u32);
                let bearer_env = a.string(d, "bearer_env").map(|b| b.value);
                url.map(|u| {
                    Action::Webhook(WebhookAction {
                        url: u.value,
                        timeout,
                        retries,
                        bearer_env,
                    })
                })
            }
        };
        a.finish(&mut self.d);
        action
    }

    fn pg_ctl_paths(
        &mut self,
        path: &str,
        a: &mut Section,
        data_dir_key: &'static str,
        fallback: Option<PathBuf>,
    ) -> Option<(PathBuf, PathBuf)> {
        let d = &mut self.d;
        let pg_ctl = a
            .string(d, "pg_ctl")
            .map_or_else(|| PathBuf::from("pg_ctl"), |p| PathBuf::from(p.value));
        let data_dir = a
            .string(d, data_dir_key)
            .map(|p| PathBuf::from(p.value))
            .or(fallback);
        match data_dir {
            Some(dir) => Some((pg_ctl, dir)),
            None => {
                d.error(a.span.clone(), format!("{path}: `{data_dir_key}` is needed (the PostgreSQL data directory), or set `data_dir` on the target"));
                None
            }
        }
    }

    fn restart(
        &mut self,
        path: &str,
        a: &mut Section,
        targets: &BTreeMap<String, Target>,
    ) -> Option<Action> {
        let d = &mut self.d;
        let method_text = a.string(d, "restart")?;
        let timeout = a
            .duration(d, "timeout")
            .map_or(Duration::from_secs(60), |t| t.value);
        let target = a.string(d, "target");
        let target_dir = target
            .and_then(|t| self.target_ref(path, "target", t, targets))
            .and_then(|t| targets.get(&t).and_then(|t| t.data_dir.clone()));
        let d = &mut self.d;
        let method = match method_text.value.as_str() {
            "pg_ctl" => {
                let (pg_ctl, data_dir) = self.pg_ctl_paths(path, a, "data_dir", target_dir)?;
                RestartMethod::PgCtl { pg_ctl, data_dir }
            }
            "pg_ctlcluster" => {
                let version = a.string(d, "version");
                let cluster = a
                    .string(d, "cluster")
                    .map_or_else(|| "main".to_string(), |c| c.value);
                match version {
                    Some(v) => RestartMethod::PgCtlCluster {
                        version: v.value,
                        cluster,
                    },
                    None => {
                        d.error(a.span.clone(), format!("{path}: `version` is needed for pg_ctlcluster, e.g. version = \"15\""));
                        return None;
                    }
                }
            }
            "systemctl" => match a.string(d, "unit") {
                Some(u) => RestartMethod::Systemctl { unit: u.value },
                None => {
                    d.error(a.span.clone(), format!("{path}: `unit` is needed for systemctl, e.g. unit = \"postgresql@15-main\""));
                    return None;
                }
            },
            "command" => RestartMethod::Command(self.argv(path, "command", a)?),
            other => {
                d.error(method_text.span, format!("{path}: `restart` = {other:?} is not a method; write \"pg_ctl\", \"pg_ctlcluster\", \"systemctl\" or \"command\""));
                return None;
            }
        };
        Some(Action::Restart(RestartAction { method, timeout }))
    }

    fn failover(
        &mut self,
        path: &str,
        a: &mut Section,
        targets: &BTreeMap<String, Target>,
        allow_post: bool,
    ) -> Option<Action> {
        let d = &mut self.d;
        let standby = a.string(d, "failover");
        let primary = a
            .string(d, "primary")
            .unwrap_or_else(|| At::new("primary".into(), a.span.clone()));
        let max_lag_bytes = a
            .integer(d, "max_lag_bytes", 0, u64::MAX >> 1)
            .map_or(1 << 20, |v| v.value);
        let write_within = a
            .duration(d, "write_within")
            .map_or(Duration::from_secs(10), |v| v.value);
        let block_for = a
            .duration(d, "block_for")
            .map_or(Duration::from_secs(3600), |v| v.value);
        let fence_required = a.bool(d, "fence_required").unwrap_or(true);
        let standby = standby.and_then(|s| self.target_ref(path, "failover", s, targets));
        let primary = self.target_ref(path, "primary", primary, targets);
        let fence = match a.raw("fence").map(|v| (v.get_ref(), v.span())) {
            None => {
                // Promoting without stopping the old primary risks two
                // primaries: the choice must be written down.
                self.d.error(a.span.clone(), format!("{path}: a failover needs `fence`: \"pg_ctl\" (stop the old primary, on this node), a command such as [\"ssh\", \"db-1\", \"pg_ctl\", \"stop\"], or \"none\" to accept the risk of two primaries"));
                return None;
            }
            Some((DeValue::String(s), _)) if s == "none" => Fence::None,
            Some((DeValue::String(s), _)) if s == "pg_ctl" => {
                let fallback = primary
                    .as_ref()
                    .and_then(|p| targets.get(p))
                    .and_then(|t| t.data_dir.clone());
                let (pg_ctl, data_dir) =
                    self.pg_ctl_paths(path, a, "primary_data_dir", fallback)?;
                Fence::PgCtl { pg_ctl, data_dir }
            }
            Some((DeValue::Array(_), _)) => Fence::Command(self.argv(path, "fence", a)?),
            Some((_, span)) => {
                self.d.error(span, format!("{path}: `fence` must be \"pg_ctl\" (built in), \"none\" or a command such as [\"ssh\", \"db-1\", \"pg_ctl\", \"stop\"]"));
                return None;
            }
        };
        if !matches!(fence, Fence::PgCtl { .. }) {
            for key in ["pg_ctl", "primary_data_dir"] {
                if let Some(v) = a.raw(key) {
                    self.d.error(
                        v.span(),
                        format!("{path}: `{key}` is only used with fence = \"pg_ctl\""),
                    );
                }
            }
        }
        let mut post = Vec::new();
        if let Some(raw) = a.raw("post") {
            if !allow_post {
                self.d
                    .error(raw.span(), format!("{path}: `post` steps cannot be nested"));
            } else if let DeValue::Array(items) = raw.get_ref() {
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::Table(t) => {
                            let section = Section::new(format!("{path} post"), t, item.span());
                            if let Some(step) = self.action(section, targets, false) {
                                post.push(step);
                            }
                        }
                        other => self.d.error(
                            item.span(),
                            format!(
                                "{path}: each `post` step must be an action table, found {}",
                                type_name(other)
                            ),
                        ),
                    }
                }
            } else {
                self.d.error(raw.span(), format!("{path}: `post` must be an array of actions, e.g. [{{ webhook = \"http://...\" }}]"));
            }
        }
        if standby.is_some() && standby == primary {
            self.d.error(
                a.span.clone(),
                format!("{path}: `failover` and `primary` must be different targets"),
            );
        }
        Some(Action::Failover(FailoverAction {
            primary: primary?,
            standby: standby?,
            max_lag_bytes,
            fence,
            fence_required,
            write_within,
            block_for,
            post,
        }))
    }

    fn telemetry(&mut self, mut s: Section) -> Telemetry {
        let d = &mut self.d;
        let otlp = s.table(d, "otlp").map(|mut o| {
            let endpoint = o.string(d, "endpoint").map(|e| {
                if let Err(problem) = check_endpoint(&e.value) {
                    d.error(e.span, format!("[telemetry.otlp]: `endpoint` = {:?} {problem}", e.value));
                }
                e.value
            });
            let protocol = o.string(d, "protocol").and_then(|p| match OtlpProtocol::parse(&p.value) {
                Some(protocol) => Some(protocol),
                None => {
                    d.error(p.span, format!("[telemetry.otlp]: `protocol` = {:?} is not supported; write \"grpc\" or \"http/protobuf\"", p.value));
                    None
                }
            });
            let interval = o.duration(d, "interval").map_or(Duration::from_secs(10), |v| v.value);
            let timeout = o.duration(d, "timeout").map(|v| v.value);
            let mut headers = BTreeMap::new();
            for (key, value) in o.string_map(d, "headers").unwrap_or_default() {
                match resolve_env(&value.value) {
                    Ok(resolved) => {
                        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
                            d.error(value.span.clone(), format!("[telemetry.otlp]: {key:?} is not a valid header name (letters, digits and - only)"));
                        } else if http::HeaderValue::from_str(&resolved).is_err() {
                            d.error(value.span.clone(), format!("[telemetry.otlp]: the value of header `{key}` has characters a header cannot carry (control characters or non-ASCII)"));
                        }
                        headers.insert(key, resolved);
                    }
                    Err(var) => d.error(
                        value.span,
                        format!("[telemetry.otlp]: header `{key}` uses ${{{var}}}, but the environment variable {var} is not set"),
                    ),
                }
            }
            o.finish(d);
            Otlp { endpoint, protocol, interval, headers, timeout }
        });
        s.finish(d);
        Telemetry { otlp }
    }
}

/// Replace `${NAME}` with the environment variable NAME; the name of the
/// first unset variable on error.
pub fn resolve_env(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &rest[start + 2..start + end];
        out.push_str(&std::env::var(name).map_err(|_| name.to_string())?);
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

/// Why an OTLP endpoint cannot be used, if it cannot.
fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|_| "is not a URL; write e.g. \"http://127.0.0.1:4317\"")?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(()),
        Some("https") => {
            Err("uses https, which is not supported yet; send to a local Collector over http://")
        }
        _ => Err("must be an http:// URL with a host, e.g. \"http://127.0.0.1:4317\""),
    }
}
