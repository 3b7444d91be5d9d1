//! Returns a message of `bytes` bytes (default 100 MB).
use watchpost_probe::{Info, Kind, Probe, Report, Result, config};

struct BigOutput;

impl Probe for BigOutput {
    fn describe() -> Info {
        Info::new("bigoutput", Kind::Host, "returns a huge message")
    }

    fn check() -> Result<Report> {
        let bytes: usize = config::get_or("bytes", 100_000_000)?;
        Ok(Report::ok("x".repeat(bytes)))
    }
}

watchpost_probe::export_probe!(BigOutput);
