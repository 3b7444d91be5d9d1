//! `[[probe]]` entries: name, component (built in or a pinned file),
//! schedule, limits, grants and the probe's own config.

use super::super::diagnostics::line_column;
use super::super::model::*;
use super::super::reader::{At, Section};
use super::super::units;
use super::{Parser, confirm, flapping, valid_name};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use super::super::keys::{Kind, Table, key};
use super::{FLAPPING, FOR, RECOVER};

/// `[[probe]]`'s keys.
pub(super) static PROBE: Table = Table {
    heading: "[[probe]]",
    doc: "One probe: a WebAssembly component run on a schedule in a sandbox, with the targets and directories it may reach and the thresholds that turn its measurements into a status. The built-in probes' own `config` keys and default thresholds are on their pages under Probes.",
    keys: &[
        key(
            "name",
            Kind::String,
            "required",
            "Unique name: 1 to 64 letters, digits, `-`, `_` or `.`; it labels metrics and names state files.",
        ),
        key(
            "wasm",
            Kind::String,
            "required",
            "The component: \"builtin:NAME\" for a built-in probe, or a .wasm file (relative to the config's directory).",
        ),
        key(
            "sha256",
            Kind::String,
            "none",
            "Pin of a .wasm file: 64 hex digits (`sha256sum FILE`); a file that differs is refused.",
        ),
        key(
            "every",
            Kind::Duration(units::SCHEDULE),
            "\"30s\"",
            "How often the probe runs.",
        ),
        key(
            "timeout",
            Kind::Duration(units::SCHEDULE),
            "\"10s\"",
            "Deadline of one run; a run past it is stopped and reports unknown.",
        ),
        key(
            "memory",
            Kind::Size(units::PROBE_MEMORY),
            "\"64MiB\"",
            "Cap of the probe's linear memory.",
        ),
        key(
            "targets",
            Kind::Strings,
            "[]",
            "Names of the [targets.NAME] the probe may connect to.",
        ),
        key(
            "dirs",
            Kind::Map,
            "{}",
            "Read-only directories the probe may read: NAME = \"/host/path\", seen by the probe at /NAME.",
        ),
        key(
            "config",
            Kind::Map,
            "{}",
            "The probe's own settings, key = value (see each built-in probe's page).",
        ),
        FOR,
        RECOVER,
        key(
            "flapping",
            Kind::Table,
            "[agent]'s",
            "Flap detection for this probe.",
        )
        .of(&FLAPPING),
        key(
            "thresholds",
            Kind::Table,
            "{}",
            "Ranges that turn measurements into a status, by measurement name.",
        )
        .of(&super::thresholds::THRESHOLDS),
    ],
    entries: None,
};

impl Parser<'_, '_> {
    pub(super) fn probes(
        &mut self,
        top: &mut Section,
        targets: &BTreeMap<String, Target>,
    ) -> Vec<ProbeSpec> {
        let mut probes = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (table, span) in self.array_of_tables(
            top,
            "probe",
            "[[probe]] name = \"disk\" wasm = \"builtin:host-disk\"",
        ) {
            let mut s = Section::new(&PROBE, "[[probe]]", table, span.clone());
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

    pub(super) fn probe_body(
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
            .duration(d, "every", units::SCHEDULE)
            .map_or(Duration::from_secs(30), |v| v.value);
        let timeout = s
            .duration(d, "timeout", units::SCHEDULE)
            .map_or(Duration::from_secs(10), |v| v.value);
        let memory = s
            .size(d, "memory", units::PROBE_MEMORY)
            .map_or(64 << 20, |m| m.value);
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
        let dirs = self.dirs(s);
        let d = &mut self.d;
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
            dirs,
            config,
            thresholds,
            confirm,
            flapping,
            place: Place::default(),
        })
    }

    pub(super) fn wasm_source(
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
}
