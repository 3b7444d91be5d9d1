//! A probe whose status the tests control: `status` (ok, warning,
//! critical, unknown) fixes it; otherwise, with `period_ms`, it is critical
//! during every other period of the wall clock and ok in between.
use std::time::{SystemTime, UNIX_EPOCH};
use watchpost_probe::{Info, Kind, Probe, Report, Result, Status, bail, config, measurement};

struct Flip;

impl Probe for Flip {
    fn describe() -> Info {
        Info::new(
            "flip",
            Kind::Availability,
            "a status set by config or by the clock",
        )
        .measures("flip.phase", "1", "1 while critical")
    }

    fn check() -> Result<Report> {
        let status = match config::raw("status").as_deref() {
            Some("ok") => Status::Ok,
            Some("warning") => Status::Warning,
            Some("critical") => Status::Critical,
            Some("unknown") => Status::Unknown,
            Some(other) => {
                bail!("config `status` = {other:?}: write ok, warning, critical or unknown")
            }
            None => {
                let period: u64 = config::get_or("period_ms", 1000)?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                if (now / period.max(1)) % 2 == 1 {
                    Status::Critical
                } else {
                    Status::Ok
                }
            }
        };
        let phase = if status == Status::Critical { 1.0 } else { 0.0 };
        let word = match status {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        };
        let report = Report::new(status, format!("flip is {word}"));
        Ok(report.with(measurement("flip.phase", phase, "1")))
    }
}

watchpost_probe::export_probe!(Flip);
