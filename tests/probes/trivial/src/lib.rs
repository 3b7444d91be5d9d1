//! The cheapest useful probe: one measurement, no host calls. Benchmarks
//! use it to measure the sandbox's own per-run cost.
use watchpost_probe::{Info, Kind, Probe, Report, Result, measurement};

struct Trivial;

impl Probe for Trivial {
    fn describe() -> Info {
        Info::new("trivial", Kind::Host, "returns ok with one measurement").measures(
            "trivial.value",
            "1",
            "always 1",
        )
    }

    fn check() -> Result<Report> {
        Ok(Report::ok("trivial").with(measurement("trivial.value", 1.0, "1")))
    }
}

watchpost_probe::export_probe!(Trivial);
