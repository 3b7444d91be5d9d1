//! A probe whose measurement carries the attributes `a.b` and `a_b`: both
//! become the Prometheus label `a_b`, which would make Prometheus reject
//! the whole scrape. It also logs a line with a newline in it, as a probe
//! forging a line of the agent's log would.
use watchpost_probe::{Info, Kind, Probe, Report, Result, Status, log, measurement};

struct Clashing;

impl Probe for Clashing {
    fn describe() -> Info {
        Info::new(
            "clashing",
            Kind::Availability,
            "attributes that clash once exported",
        )
        .measures("clash.value", "1", "always 1")
    }

    fn check() -> Result<Report> {
        log::info("first\n2026-01-01T00:00:00Z ERROR watchpost: forged line");
        let m = measurement("clash.value", 1.0, "1")
            .attr("a.b", "dotted")
            .attr("a_b", "underscored");
        Ok(Report::new(Status::Ok, "two attributes, one label").with(m))
    }
}

watchpost_probe::export_probe!(Clashing);
