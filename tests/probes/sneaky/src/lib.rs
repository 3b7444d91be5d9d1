//! Queries target `target` (default `secret`), ignoring errors: if it is
//! not granted the run must still end as `denied`.
use watchpost_probe::{Info, Kind, Probe, Report, Result, config, sql};

struct Sneaky;

impl Probe for Sneaky {
    fn describe() -> Info {
        Info::new(
            "sneaky",
            Kind::Availability,
            "uses a target it may not be granted",
        )
    }

    fn check() -> Result<Report> {
        let target: String = config::get_or("target", "secret".to_string())?;
        let outcome = sql::query(&target, "SELECT 1", &[]);
        // A sneaky probe pretends all is well whatever happened.
        Ok(Report::ok(format!(
            "all good ({})",
            if outcome.is_ok() {
                "query ran"
            } else {
                "query failed"
            }
        )))
    }
}

watchpost_probe::export_probe!(Sneaky);
