//! `[probe.thresholds."MEASUREMENT"]`: the Nagios ranges that turn a
//! measurement's value into a status.
//!
//! A unit in a range (`~:16MiB`, `~:500ms`, `~:60%`) is converted to the
//! unit the measurement is reported in (see [`Range`]). For the
//! measurements the built-in and bundled probes report, a unit of the wrong
//! kind is an error at its `FILE:LINE:COL` (`~:60%` on a byte count); for
//! other names the unit's own kind is trusted.

use super::super::diagnostics::Diagnostics;
use super::super::model::*;
use super::super::range::{RANGE_HINT, Range};
use super::super::reader::Section;
use super::{Parser, confirm};
use toml::de::DeValue;

use super::super::keys::{Kind, Table, key};
use super::{FOR, RECOVER};

/// `thresholds` in `[[probe]]` and `[[drill]]`: a table by measurement.
pub(super) static THRESHOLDS: Table = Table {
    heading: "[probe.thresholds]",
    doc: "Thresholds by measurement name, each `[probe.thresholds.\"MEASUREMENT\"]` (also in `[[drill]]`). A measurement without thresholds is recorded but never changes the status.",
    keys: &[],
    entries: Some(&THRESHOLD),
};

static THRESHOLD: Table = Table {
    heading: "[probe.thresholds.\"MEASUREMENT\"]",
    doc: "Nagios ranges (`10`, `~:80`, `@10:20`, with units such as `~:16MiB`, `~:500ms`, `~:60%` converted to the measurement's unit): a value outside `warning`'s range is a warning, outside `critical`'s a critical. Give one or both.",
    keys: &[
        key(
            "warning",
            Kind::String,
            "none",
            "The range whose outside is a warning, e.g. \"~:80\" (above 80).",
        ),
        key(
            "critical",
            Kind::String,
            "none",
            "The range whose outside is critical, e.g. \"~:90\".",
        ),
        FOR,
        RECOVER,
    ],
    entries: None,
};

impl Parser<'_, '_> {
    pub(super) fn thresholds(&mut self, s: &mut Section) -> Vec<ThresholdRule> {
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
                section.entry_doc(),
                format!("{} thresholds.\"{name}\"", s.path),
                table,
                value.span(),
            );
            let unit = measurement_unit(&name);
            let range = |t: &mut Section, key: &'static str, d: &mut Diagnostics| {
                let text = t.string(d, key)?;
                match Range::parse(&text.value).and_then(|range| match unit {
                    Some(unit) => range.check_unit(unit).map(|()| range),
                    None => Ok(range),
                }) {
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
}

/// The unit a measurement is reported in, for the names the bundled probes
/// report (UCUM: `By`, `s`, `1`), and for names that say it by convention
/// (`*.utilization`, `*_ratio`: `1`; `*.duration`: `s`; `*_bytes`: `By`).
pub(crate) fn measurement_unit(name: &str) -> Option<&'static str> {
    const KNOWN: &[(&str, &str)] = &[
        ("postgresql.replication.replay_lag", "s"),
        ("postgresql.replication.standby.replay_delay", "s"),
        ("postgresql.replication.standby.contact_age", "s"),
        ("postgresql.replication.standby.lag_bytes", "By"),
        ("postgresql.replication.standby.receive_replay_gap", "By"),
        ("postgresql.transaction.oldest_age", "s"),
        ("postgresql.xid.age", "1"),
        ("postgresql.archiver.last_archived_age", "s"),
        ("postgresql.archiver.oldest_waiting_age", "s"),
        ("postgresql.backup.age", "s"),
        ("postgresql.integrity.scan.rate", "By/s"),
        ("system.filesystem.limit", "By"),
        ("system.filesystem.usage", "By"),
        ("system.memory.limit", "By"),
        ("system.memory.usage", "By"),
        ("system.paging.usage", "By"),
        ("process.memory.usage", "By"),
        ("system.cpu.load_average.1m", "1"),
        ("system.cpu.load_average.5m", "1"),
        ("system.cpu.load_average.15m", "1"),
    ];
    if let Some((_, unit)) = KNOWN.iter().find(|(known, _)| *known == name) {
        return Some(unit);
    }
    if name.ends_with(".utilization") || name.ends_with("_ratio") {
        Some("1")
    } else if name.ends_with(".duration") {
        Some("s")
    } else if name.ends_with("_bytes") {
        Some("By")
    } else {
        None
    }
}
