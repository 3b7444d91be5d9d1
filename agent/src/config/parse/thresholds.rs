//! `[probe.thresholds."MEASUREMENT"]`: the Nagios ranges that turn a
//! measurement's value into a status.

use super::super::diagnostics::Diagnostics;
use super::super::model::*;
use super::super::range::{RANGE_HINT, Range};
use super::super::reader::Section;
use super::{Parser, confirm};
use toml::de::DeValue;

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
}
