//! Panics: the run must end as a trap that carries the panic message.
use watchpost_probe::{Info, Kind, Probe, Report, Result};

struct Panics;

impl Probe for Panics {
    fn describe() -> Info {
        Info::new("panics", Kind::Host, "panics on every run")
    }

    fn check() -> Result<Report> {
        panic!("the probe panicked on purpose");
    }
}

watchpost_probe::export_probe!(Panics);
