//! What the MariaDB and Redis drills share once their copy runs: a
//! check's value against its bounds, and the report's measurements and
//! message (`ENGINE.restore.duration`, `.size`, `.verify_duration`,
//! `.verified`; "restored X from Y in Z s (RTO); verified: ..." or
//! "... but verification failed: ...").

use super::verify::Findings;
use super::{human, measurement};
use crate::config::DrillQuery;
use crate::report::{Measurement, Status};

/// Record `check`'s first value (`text`, as returned) against its
/// bounds; `label` names the check in a failure.
pub fn bounds(check: &DrillQuery, label: &str, text: Option<String>, found: &mut Findings) {
    let Some(text) = text else {
        found.failures.push(format!("{label}: returned no value"));
        return;
    };
    match text.trim().parse::<f64>() {
        Err(_) => found
            .failures
            .push(format!("{label}: {text:?} is not a number")),
        Ok(v) if check.min.is_some_and(|m| v < m) || check.max.is_some_and(|m| v > m) => {
            found.failures.push(format!(
                "{label}: {v} is outside {}..{}",
                check.min.map_or(String::new(), |m| m.to_string()),
                check.max.map_or(String::new(), |m| m.to_string())
            ))
        }
        Ok(v) => found.passed.push(format!("{label} = {v}")),
    }
}

/// What the copy took and what the checks found.
pub struct Restored<'a> {
    /// `mysql` or `redis`: the measurements' prefix.
    pub engine: &'a str,
    /// What was restored, for the message.
    pub source: String,
    /// Bytes in the scratch directory once the copy was ready.
    pub size: u64,
    /// Seconds from the start of the copy to a copy that answers.
    pub rto: f64,
    /// Seconds the checks took.
    pub verify: f64,
}

/// The report's status and message, its measurements pushed to `out`.
pub fn finish(r: Restored, found: Findings, out: &mut Vec<Measurement>) -> (Status, String) {
    let name = |n: &str| format!("{}.restore.{n}", r.engine);
    out.push(measurement(&name("duration"), r.rto, "s"));
    out.push(measurement(&name("size"), r.size as f64, "By"));
    out.push(measurement(&name("verify_duration"), r.verify, "s"));
    let verified = found.failures.is_empty();
    out.push(measurement(
        &name("verified"),
        if verified { 1.0 } else { 0.0 },
        "1",
    ));
    if verified {
        (
            Status::Ok,
            format!(
                "restored {} from {} in {:.1} s (RTO); verified: {}",
                human(r.size),
                r.source,
                r.rto,
                found.passed.join(", ")
            ),
        )
    } else {
        (
            Status::Critical,
            format!(
                "restored {} from {} in {:.1} s, but verification failed: {}",
                human(r.size),
                r.source,
                r.rto,
                found.failures.join("; ")
            ),
        )
    }
}
