//! Nagios threshold ranges (`[@][start:][end]`), as in the monitoring-plugins
//! guidelines: a range alerts when the value is outside `start..=end`, or
//! inside it with a leading `@`. `start` defaults to 0, `~` is negative
//! infinity, an empty `end` is positive infinity. Numbers may use
//! scientific notation (`1e6`, `2.5E-3`).
//!
//! A bound may carry a unit, converted to the unit the measurement is
//! reported in (UCUM, as the probes report them): sizes (`B`, `KB`, `MB`,
//! `GB`, `TB`, powers of 1000; `KiB`, `MiB`, `GiB`, `TiB`, powers of 1024)
//! to bytes (`By`), durations (`us`, `ms`, `s`, `m`/`min`, `h`, `d`) to
//! seconds (`s`), and `%` to a ratio (`1`: `60%` is 0.6). `~:16MiB` is
//! `~:16777216`. A bound without a unit in a range whose other bound has
//! one takes that unit (`1:12%` is 1 % to 12 %). An unknown unit, or two
//! kinds of unit in one range, is an error; so is a unit of the wrong kind
//! for the measurement (see [`Range::check_unit`]).

use std::fmt;

/// Why a range does not parse, or does not fit its measurement. The
/// message names the text and what to write instead; `text` is the range
/// as written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RangeError {
    #[error("the range is empty")]
    Empty,
    #[error("{text:?} has more than one `:`")]
    TwoColons { text: String },
    #[error("{text:?} gives neither a start nor an end")]
    NoBounds { text: String },
    /// `which` is `start` or `end`; `bound` the bound as written.
    #[error("the {which} {bound:?} is not a number{}", or_tilde(.which))]
    NotANumber { which: &'static str, bound: String },
    #[error(
        "the {which} {bound:?} has the unknown unit {unit:?}; units: {}",
        UNIT_HINT
    )]
    UnknownUnit {
        which: &'static str,
        bound: String,
        unit: String,
    },
    #[error("{text:?}: `~` (negative infinity) can only be the start")]
    TildeAtEnd { text: String },
    /// Two bounds with units of different kinds (`1MiB:1s`).
    #[error("{text:?} mixes {} ({a}) and {} ({b})", .qa.what(), .qb.what())]
    MixedUnits {
        text: String,
        a: &'static str,
        qa: Quantity,
        b: &'static str,
        qb: Quantity,
    },
    #[error("{text:?}: the start {start} is above the end {end}")]
    StartAboveEnd { text: String, start: f64, end: f64 },
    /// The range's unit is of another kind than the measurement's
    /// ([`Range::check_unit`]).
    #[error("the range is {} but the measurement is in `{measurement_unit}`: write it {}", .range.what(), unit_hint(.measurement_unit))]
    WrongUnit {
        range: Quantity,
        measurement_unit: String,
    },
}

/// What else a start may be.
fn or_tilde(which: &str) -> &'static str {
    if which == "start" { " or `~`" } else { "" }
}

/// How to write a range for a measurement in `unit`.
fn unit_hint(unit: &str) -> &'static str {
    match unit {
        "By" => "in bytes or with a size unit such as MiB",
        "s" => "in seconds or with a duration unit such as ms",
        "1" => "as a ratio (0.6) or a percentage (60%)",
        _ => "as a plain number in that unit",
    }
}

/// What a unit in a range measures, with the UCUM unit it converts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// Sizes, converted to bytes (`By`).
    Bytes,
    /// Durations, converted to seconds (`s`).
    Seconds,
    /// Percentages, converted to a ratio (`1`).
    Ratio,
}

impl Quantity {
    /// The UCUM unit values of this quantity are converted to.
    pub fn ucum(self) -> &'static str {
        match self {
            Quantity::Bytes => "By",
            Quantity::Seconds => "s",
            Quantity::Ratio => "1",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Quantity::Bytes => "a size",
            Quantity::Seconds => "a duration",
            Quantity::Ratio => "a percentage",
        }
    }
}

/// The units a range may carry: (suffix, quantity, factor to the base unit).
const UNITS: &[(&str, Quantity, f64)] = &[
    ("B", Quantity::Bytes, 1.0),
    ("By", Quantity::Bytes, 1.0),
    ("KB", Quantity::Bytes, 1e3),
    ("kB", Quantity::Bytes, 1e3),
    ("MB", Quantity::Bytes, 1e6),
    ("GB", Quantity::Bytes, 1e9),
    ("TB", Quantity::Bytes, 1e12),
    ("KiB", Quantity::Bytes, 1024.0),
    ("MiB", Quantity::Bytes, 1024.0 * 1024.0),
    ("GiB", Quantity::Bytes, 1024.0 * 1024.0 * 1024.0),
    ("TiB", Quantity::Bytes, 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("us", Quantity::Seconds, 1e-6),
    ("ms", Quantity::Seconds, 1e-3),
    ("s", Quantity::Seconds, 1.0),
    ("m", Quantity::Seconds, 60.0),
    ("min", Quantity::Seconds, 60.0),
    ("h", Quantity::Seconds, 3600.0),
    ("d", Quantity::Seconds, 86400.0),
    ("%", Quantity::Ratio, 0.01),
];

/// The units a range accepts, for error messages.
pub const UNIT_HINT: &str = "sizes B, KB, MB, GB, TB, KiB, MiB, GiB, TiB (to bytes); durations \
     us, ms, s, m, h, d (to seconds); % (to a ratio: 60% is 0.6)";

#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    pub start: f64,
    pub end: f64,
    /// `@`: alert when the value is inside the range.
    pub inside: bool,
    /// The kind of unit the range was written with, if any (its bounds are
    /// already converted to [`Quantity::ucum`]).
    pub unit: Option<Quantity>,
    /// The range in the measurement's unit (units converted), for perfdata
    /// and messages.
    text: String,
}

/// What a valid range looks like, for error messages.
pub const RANGE_HINT: &str = "write a Nagios range such as \"10\" (alert outside 0..10), \
     \"10:\" (below 10), \"~:10\" (above 10), \"10:20\" (outside 10..20) or \"@10:20\" (inside); \
     a bound may carry a unit such as \"~:16MiB\", \"~:500ms\" or \"~:60%\"";

/// Split `12.5e3MiB` into the number `12.5e3` and the unit `MiB`.
fn split_number(text: &str) -> (&str, &str) {
    let bytes = text.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        i += 1;
    }
    // An exponent only when digits follow (`1e6`), so that a unit starting
    // with `e` could never be eaten.
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    text.split_at(i)
}

fn number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let mantissa = digits.split(['e', 'E']).next().unwrap_or("");
    let valid = !mantissa.is_empty()
        && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.')
        && mantissa.chars().filter(|&c| c == '.').count() <= 1
        && mantissa != ".";
    valid
        .then(|| text.parse::<f64>().ok())
        .flatten()
        .filter(|v| v.is_finite())
}

/// One bound as written: its number and its unit, if any.
struct Bound {
    value: f64,
    unit: Option<(&'static str, Quantity, f64)>,
}

fn bound(text: &str, which: &'static str) -> Result<Bound, RangeError> {
    let (digits, unit) = split_number(text);
    let value = number(digits).ok_or_else(|| RangeError::NotANumber {
        which,
        bound: text.to_string(),
    })?;
    let unit = unit.trim();
    if unit.is_empty() {
        return Ok(Bound { value, unit: None });
    }
    let known = UNITS
        .iter()
        .find(|(name, _, _)| *name == unit)
        .ok_or_else(|| RangeError::UnknownUnit {
            which,
            bound: text.to_string(),
            unit: unit.to_string(),
        })?;
    Ok(Bound {
        value,
        unit: Some(*known),
    })
}

/// A number as short as it prints exactly (`16777216`, `0.6`).
fn show(value: f64) -> String {
    format!("{value}")
}

impl Range {
    /// Parse a range; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        let trimmed = text.trim();
        let (inside, body) = match trimmed.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if body.is_empty() {
            return Err(RangeError::Empty);
        }
        if body.matches(':').count() > 1 {
            return Err(RangeError::TwoColons { text: text.into() });
        }
        let (start_text, end_text) = match body.split_once(':') {
            Some((start, end)) => (Some(start.trim()), end.trim()),
            None => (None, body.trim()),
        };
        if start_text == Some("") && end_text.is_empty() {
            return Err(RangeError::NoBounds { text: text.into() });
        }
        let start = match start_text {
            None | Some("") | Some("~") => None,
            Some(s) => Some(bound(s, "start")?),
        };
        let end = match end_text {
            "" if start_text.is_some() => None,
            "~" => {
                return Err(RangeError::TildeAtEnd { text: text.into() });
            }
            e => Some(bound(e, "end")?),
        };
        let units: Vec<(&str, Quantity, f64)> = [&start, &end]
            .into_iter()
            .flatten()
            .filter_map(|b| b.unit)
            .collect();
        if let [(a, qa, _), (b, qb, _)] = units.as_slice()
            && qa != qb
        {
            return Err(RangeError::MixedUnits {
                text: text.into(),
                a,
                qa: *qa,
                b,
                qb: *qb,
            });
        }
        let unit = units.first().copied();
        // A bare bound takes the unit of the other one.
        let convert = |b: &Bound| b.value * b.unit.or(unit).map_or(1.0, |(_, _, f)| f);
        let start_value = match (start_text, &start) {
            (Some("~"), _) => f64::NEG_INFINITY,
            (_, Some(b)) => convert(b),
            _ => 0.0,
        };
        let end_value = end.as_ref().map_or(f64::INFINITY, convert);
        if start_value > end_value {
            return Err(RangeError::StartAboveEnd {
                text: text.into(),
                start: start_value,
                end: end_value,
            });
        }
        let text = if unit.is_none() {
            format!(
                "{}{}{}",
                if inside { "@" } else { "" },
                start_text.map(|s| format!("{s}:")).unwrap_or_default(),
                end_text
            )
        } else {
            let start = match start_text {
                None => String::new(),
                Some("") => ":".to_string(),
                Some("~") => "~:".to_string(),
                Some(_) => format!("{}:", show(start_value)),
            };
            let end = if end.is_some() {
                show(end_value)
            } else {
                String::new()
            };
            format!("{}{start}{end}", if inside { "@" } else { "" })
        };
        Ok(Range {
            start: start_value,
            end: end_value,
            inside,
            unit: unit.map(|(_, q, _)| q),
            text,
        })
    }

    /// Check the range's unit against the unit the measurement is reported
    /// in (`By`, `s`, `1`, ...): a range without a unit fits any; one with a
    /// unit fits only a measurement of the same kind.
    pub fn check_unit(&self, measurement_unit: &str) -> Result<(), RangeError> {
        match self.unit {
            Some(q) if q.ucum() != measurement_unit => Err(RangeError::WrongUnit {
                range: q,
                measurement_unit: measurement_unit.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// True when `value` should raise an alert.
    pub fn alerts(&self, value: f64) -> bool {
        let within = self.start <= value && value <= self.end;
        if self.inside { within } else { !within }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Range {
        Range::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    #[test]
    fn reference_ranges_alert_as_documented() {
        let r = parse("10");
        assert!(r.alerts(-0.1) && r.alerts(10.1) && !r.alerts(0.0) && !r.alerts(10.0));
        let r = parse("10:");
        assert!(r.alerts(9.9) && !r.alerts(10.0) && !r.alerts(1e12));
        let r = parse("~:10");
        assert!(r.alerts(10.1) && !r.alerts(10.0) && !r.alerts(-1e12));
        let r = parse("10:20");
        assert!(r.alerts(9.9) && r.alerts(20.1) && !r.alerts(15.0));
        let r = parse("@10:20");
        assert!(r.alerts(10.0) && r.alerts(20.0) && !r.alerts(9.9) && !r.alerts(20.1));
    }

    #[test]
    fn reference_vectors_parse() {
        let r = parse("6");
        assert_eq!((r.start, r.end), (0.0, 6.0));
        assert_eq!((parse("-7:23").start, parse("-7:23").end), (-7.0, 23.0));
        assert_eq!((parse(":5.75").start, parse(":5.75").end), (0.0, 5.75));
        assert_eq!(parse("~:-95.99").start, f64::NEG_INFINITY);
        assert_eq!(parse("~:-95.99").end, -95.99);
        assert_eq!(parse("~:0").end, 0.0);
        assert_eq!((parse("1:1").start, parse("1:1").end), (1.0, 1.0));
        let big = parse("12345678901234567890:");
        assert_eq!(
            (big.start, big.end),
            (12345678901234567890.0, f64::INFINITY)
        );
        assert_eq!((parse("1:12%").start, parse("1:12%").end), (0.01, 0.12));
    }

    #[test]
    fn reference_vectors_are_rejected() {
        for bad in [
            "2:1", ":", "1:~", "foo", "1-10", "10:~", "1-10:2.4", "1,10", "", "@",
        ] {
            assert!(Range::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        // Each fault its own kind.
        for (bad, kind) in [
            ("", "Empty"),
            ("1:2:3", "TwoColons"),
            (":", "NoBounds"),
            ("foo", "NotANumber"),
            ("~:5parsecs", "UnknownUnit"),
            ("1:~", "TildeAtEnd"),
            ("1MiB:1s", "MixedUnits"),
            ("2:1", "StartAboveEnd"),
        ] {
            let e = Range::parse(bad).unwrap_err();
            assert!(format!("{e:?}").starts_with(kind), "{bad:?}: {e:?}");
        }
    }

    #[test]
    fn reference_values_alert_as_documented() {
        let r = parse("~:0");
        assert!(r.alerts(0.5) && !r.alerts(0.0));
        let r = parse("@0:657.8210567");
        assert!(r.alerts(0.0) && r.alerts(657.8210567) && !r.alerts(-2.0));
    }

    #[test]
    fn critical_wins_over_warning() {
        let (warning, critical) = (parse("30"), parse("60"));
        let status = |x: f64| {
            if critical.alerts(x) {
                "critical"
            } else if warning.alerts(x) {
                "warning"
            } else {
                "ok"
            }
        };
        assert_eq!(status(15.3), "ok");
        assert_eq!(status(30.0001), "warning");
        assert_eq!(status(69.0), "critical");
    }

    #[test]
    fn units_convert_to_the_measurement_unit() {
        let r = parse("~:16MiB");
        assert_eq!((r.end, r.unit), (16_777_216.0, Some(Quantity::Bytes)));
        assert_eq!(r.to_string(), "~:16777216");
        assert!(r.alerts(16_777_217.0) && !r.alerts(6464.0));
        let r = parse("~:60%");
        assert_eq!((r.end, r.unit), (0.6, Some(Quantity::Ratio)));
        assert!(r.alerts(0.70) && !r.alerts(0.5));
        assert_eq!(parse("~:1GB").end, 1e9);
        assert_eq!(parse("~:2KiB").end, 2048.0);
        assert_eq!(parse("~:500ms").end, 0.5);
        assert_eq!(parse("10s:2m").start, 10.0);
        assert_eq!(parse("10s:2m").end, 120.0);
        assert_eq!(parse("@1h:").start, 3600.0);
        assert_eq!(parse("1e6").end, 1e6);
        assert_eq!(parse("~:2.5E-3").end, 0.0025);
        assert_eq!(parse("1.5e+3:").start, 1500.0);
    }

    #[test]
    fn units_that_do_not_fit_are_rejected() {
        for (bad, says) in [
            ("~:16parsecs", "unknown unit \"parsecs\""),
            ("1MiB:1s", "mixes a size (MiB) and a duration (s)"),
            ("~:5e", "unknown unit \"e\""),
            ("~:1e400", "not a number"),
        ] {
            let e = Range::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        assert!(parse("~:16MiB").check_unit("By").is_ok());
        assert!(parse("~:16").check_unit("s").is_ok());
        let e = parse("~:16MiB").check_unit("s").unwrap_err();
        assert!(
            matches!(
                e,
                RangeError::WrongUnit {
                    range: Quantity::Bytes,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("a size but the measurement is in `s`: write it in seconds"),
            "{e}"
        );
        let e = parse("~:60%").check_unit("By").unwrap_err().to_string();
        assert!(e.contains("a percentage"), "{e}");
    }

    proptest! {
        #[test]
        fn bounded_ranges_alert_exactly_outside(a in -1e6f64..1e6, b in -1e6f64..1e6, x in -2e6f64..2e6) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let r = Range::parse(&format!("{lo}:{hi}")).unwrap();
            prop_assert_eq!(r.alerts(x), !(lo <= x && x <= hi));
            let inverted = Range::parse(&format!("@{lo}:{hi}")).unwrap();
            prop_assert_eq!(inverted.alerts(x), lo <= x && x <= hi);
        }

        #[test]
        fn printed_ranges_parse_back_the_same(a in -1e6f64..1e6, b in 0f64..1e6, inside: bool) {
            let text = format!("{}{a}:{}", if inside { "@" } else { "" }, a + b);
            let r = Range::parse(&text).unwrap();
            prop_assert_eq!(Range::parse(&r.to_string()).unwrap(), r);
        }

        #[test]
        fn the_parser_never_panics(text in ".{0,20}") {
            let _ = Range::parse(&text);
        }

        #[test]
        fn whatever_parses_prints_back_to_the_same_bounds(text in "[@~:0-9.eE+%-]{0,24}|(inf|NaN|1e400|-0):?") {
            if let Ok(r) = Range::parse(&text) {
                let printed = r.to_string();
                let back = Range::parse(&printed)
                    .map_err(|e| TestCaseError::fail(format!("{text:?} printed as {printed:?}, which does not parse: {e}")))?;
                // A range with a unit prints in the measurement's unit
                // (`50%` as `0.5`): the same bounds, without the unit.
                prop_assert_eq!((back.start, back.end, back.inside), (r.start, r.end, r.inside));
            }
        }

        #[test]
        fn a_start_above_the_end_is_rejected(a in -1e6f64..1e6, gap in 0.001f64..1e6) {
            let text = format!("{}:{a}", a + gap);
            prop_assert!(Range::parse(&text).is_err());
        }
    }
}
