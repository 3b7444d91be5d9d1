//! Sleeps (a blocking WASI call, not wasm code) for `seconds` (default an hour).
use std::time::Duration;
use watchpost_probe::{Info, Kind, Probe, Report, Result, config};

struct Sleepy;

impl Probe for Sleepy {
    fn describe() -> Info {
        Info::new("sleepy", Kind::Host, "sleeps in a host call")
    }

    fn check() -> Result<Report> {
        let seconds: f64 = config::get_or("seconds", 3600.0)?;
        std::thread::sleep(Duration::from_secs_f64(seconds));
        Ok(Report::ok(format!("slept {seconds} s")))
    }
}

watchpost_probe::export_probe!(Sleepy);
