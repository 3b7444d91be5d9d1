//! Nagios threshold ranges (`[@][start:][end]`), as in the monitoring-plugins
//! guidelines: a range alerts when the value is outside `start..=end`, or
//! inside it with a leading `@`. `start` defaults to 0, `~` is negative
//! infinity, an empty `end` is positive infinity. A trailing unit (`12%`)
//! is accepted and ignored.

use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    pub start: f64,
    pub end: f64,
    /// `@`: alert when the value is inside the range.
    pub inside: bool,
    /// The range as written (without a unit), for perfdata and messages.
    text: String,
}

/// What a valid range looks like, for error messages.
pub const RANGE_HINT: &str = "write a Nagios range such as \"10\" (alert outside 0..10), \
     \"10:\" (below 10), \"~:10\" (above 10), \"10:20\" (outside 10..20) or \"@10:20\" (inside)";

fn number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let valid = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|&c| c == '.').count() <= 1
        && digits != ".";
    valid.then(|| text.parse().ok()).flatten()
}

/// `12%` -> `12`: drop a trailing unit.
fn strip_unit(text: &str) -> &str {
    text.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%')
}

impl Range {
    /// Parse a range; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Range, String> {
        let trimmed = text.trim();
        let (inside, body) = match trimmed.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if body.is_empty() {
            return Err("the range is empty".into());
        }
        if body.matches(':').count() > 1 {
            return Err(format!("{text:?} has more than one `:`"));
        }
        let (start_text, end_text) = match body.split_once(':') {
            Some((start, end)) => (Some(strip_unit(start)), strip_unit(end)),
            None => (None, strip_unit(body)),
        };
        if start_text == Some("") && end_text.is_empty() {
            return Err(format!("{text:?} gives neither a start nor an end"));
        }
        let start = match start_text {
            None | Some("") => 0.0,
            Some("~") => f64::NEG_INFINITY,
            Some(s) => {
                number(s).ok_or_else(|| format!("the start {s:?} is not a number or `~`"))?
            }
        };
        let end = match end_text {
            "" if start_text.is_some() => f64::INFINITY,
            "~" => {
                return Err(format!(
                    "{text:?}: `~` (negative infinity) can only be the start"
                ));
            }
            e => number(e).ok_or_else(|| format!("the end {e:?} is not a number"))?,
        };
        if start > end {
            return Err(format!(
                "{text:?}: the start {start} is above the end {end}"
            ));
        }
        let text = format!(
            "{}{}{}",
            if inside { "@" } else { "" },
            start_text.map(|s| format!("{s}:")).unwrap_or_default(),
            end_text
        );
        Ok(Range {
            start,
            end,
            inside,
            text,
        })
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
        assert_eq!(parse("1:12%").end, 12.0);
    }

    #[test]
    fn reference_vectors_are_rejected() {
        for bad in [
            "2:1", ":", "1:~", "foo", "1-10", "10:~", "1-10:2.4", "1,10", "", "@",
        ] {
            assert!(Range::parse(bad).is_err(), "{bad:?} should be rejected");
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
        fn a_start_above_the_end_is_rejected(a in -1e6f64..1e6, gap in 0.001f64..1e6) {
            let text = format!("{}:{a}", a + gap);
            prop_assert!(Range::parse(&text).is_err());
        }
    }
}
