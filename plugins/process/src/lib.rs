//! `process`: is a named process running, how many, how much memory.
//!
//! Config (defaults in brackets):
//! - `name`: the process name as `ps -o comm` shows it [required].
//! - `min_count`: fewer running processes is critical [1].
//! - `rss_warning` / `rss_critical`: total resident memory in bytes [off].

use watchpost_probe::{
    Info, Kind, Probe, Report, Result, Status, Threshold, config, host, measurement,
};

struct Process;

impl Probe for Process {
    fn describe() -> Info {
        Info::new(
            "process",
            Kind::Availability,
            "whether a named process runs, its count and memory",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "process.up",
            "1",
            "1 when at least `min_count` processes run, else 0",
        )
        .measures("process.count", "1", "number of processes with that name")
        .measures(
            "process.memory.usage",
            "By",
            "total resident memory of those processes",
        )
    }

    fn check() -> Result<Report> {
        let name: String = config::require("name")?;
        let min_count: u64 = config::get_or("min_count", 1)?;
        let processes = host::processes(&name);
        let count = processes.len() as u64;
        let rss: u64 = processes.iter().map(|p| p.memory_bytes).sum();
        let up = count >= min_count;

        let mut status = if up { Status::Ok } else { Status::Critical };
        if let Some(limit) = Threshold::optional_above("rss_warning", "rss_critical")? {
            status = status.worst(limit.status(rss as f64));
        }
        let message = if up {
            format!(
                "{count} {name} process(es) running, {:.1} MiB resident",
                rss as f64 / 1048576.0
            )
        } else {
            format!("{count} {name} process(es) running, expected at least {min_count}")
        };
        Ok(Report::new(status, message)
            .with(
                measurement("process.up", if up { 1.0 } else { 0.0 }, "1")
                    .attr("process", name.as_str()),
            )
            .with(measurement("process.count", count as f64, "1").attr("process", name.as_str()))
            .with(
                measurement("process.memory.usage", rss as f64, "By")
                    .attr("process", name.as_str()),
            ))
    }
}

watchpost_probe::export_probe!(Process);
