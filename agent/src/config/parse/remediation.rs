//! `[[remediation]]` entries: what triggers them (`on`, `unless`), how
//! often they may act (`cooldown`, `limit`), how their effect is checked
//! (`verify`); the action itself is read in [`super::actions`].

use super::super::diagnostics::line_column;
use super::super::model::*;
use super::super::reader::{At, Section};
use super::super::units;
use super::{Parser, status_word, valid_name};
use crate::report::Status;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use toml::de::{DeTable, DeValue};

use super::super::keys::{Kind, Table, key};
use super::actions::ACTION;

/// `[[remediation]]`'s keys.
pub(super) static REMEDIATION: Table = Table {
    heading: "[[remediation]]",
    doc: "What to do when a probe reaches a hard state: one action, guarded by conditions, a cooldown and a rate limit, checked afterwards by a probe, and written to the audit log.",
    keys: &[
        key("name", Kind::String, "required", "Unique name: 1 to 64 letters, digits, `-`, `_` or `.`."),
        key("on", Kind::Table, "required", "The hard state that fires the action.").of(&ON),
        key("unless", Kind::Shapes("a table or an array of tables"), "none", "Conditions that hold the action back while any of them is true.").of(&CONDITION),
        key("action", Kind::Table, "required", "What to do: exactly one action kind.").of(&ACTION),
        key("cooldown", Kind::Duration(units::HOLD), "\"5m\"", "Least time between two runs of this remediation."),
        key("limit", Kind::Table, "none", "At most `count` runs `per` window.").of(&LIMIT),
        key("dry_run", Kind::Bool, "false", "Log what the action would do instead of doing it."),
        key("verify", Kind::Table, "none", "A probe that must be OK `within` a time after the action, else the action counts as failed.").of(&VERIFY),
        key("alert", Kind::Table, "none", "An exec or webhook action run when the remediation's breaker opens (its rate limit was exceeded).").of(&ACTION),
    ],
    entries: None,
};

/// `on = { ... }`.
static ON: Table = Table {
    heading: "[[remediation]] on",
    doc: "The trigger: a probe in a hard state of at least `status`, optionally caused by one measurement.",
    keys: &[
        key("probe", Kind::String, "required", "The probe's name."),
        key(
            "status",
            Kind::String,
            "\"critical\"",
            "\"warning\", \"critical\" or \"unknown\" (not \"ok\").",
        ),
        key(
            "measurement",
            Kind::String,
            "any",
            "Fire only when this measurement's thresholds caused the state (it needs thresholds in the probe).",
        ),
    ],
    entries: None,
};

/// An `unless` condition.
static CONDITION: Table = Table {
    heading: "[[remediation]] unless",
    doc: "A condition that holds the action back: the probe is in a hard state of `status`.",
    keys: &[
        key("probe", Kind::String, "required", "The probe's name."),
        key(
            "status",
            Kind::String,
            "\"critical\"",
            "\"ok\", \"warning\", \"critical\" or \"unknown\".",
        ),
    ],
    entries: None,
};

/// `limit = { ... }`.
static LIMIT: Table = Table {
    heading: "[[remediation]] limit",
    doc: "A rate limit; both keys are needed.",
    keys: &[
        key(
            "count",
            Kind::Integer {
                min: 1,
                max: 1_000_000,
            },
            "required",
            "Most runs within one window.",
        )
        .unit("runs"),
        key(
            "per",
            Kind::Duration(units::WINDOW),
            "required",
            "The window.",
        ),
    ],
    entries: None,
};

/// `verify = { ... }`.
static VERIFY: Table = Table {
    heading: "[[remediation]] verify",
    doc: "The check that the action worked.",
    keys: &[
        key(
            "probe",
            Kind::String,
            "required",
            "A probe that must report OK after the action.",
        ),
        key(
            "within",
            Kind::Duration(units::SCHEDULE),
            "\"30s\"",
            "How long it may take.",
        ),
    ],
    entries: None,
};

impl Parser<'_, '_> {
    pub(super) fn remediations(
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
            let mut s = Section::new(&REMEDIATION, "[[remediation]]", table, span.clone());
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

    pub(super) fn probe_ref(
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

    pub(super) fn condition(
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

    pub(super) fn remediation_body(
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
                let c = Section::new(&CONDITION, format!("{} unless", s.path), table, span);
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
            .duration(d, "cooldown", units::HOLD)
            .map_or(Duration::from_secs(300), |c| c.value);
        let limit = s.table(d, "limit").and_then(|mut l| {
            let count = l.integer(d, "count", 1, 1_000_000);
            let per = l.duration(d, "per", units::WINDOW);
            // A missing key (a bad value has its own error already).
            if l.raw("count").is_none() || l.raw("per").is_none() {
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
                    .duration(d, "within", units::SCHEDULE)
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

    pub(super) fn condition_with(
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
}
