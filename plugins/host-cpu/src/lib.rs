//! `host-cpu`: processor utilization and load averages.
//!
//! Config (defaults in brackets):
//! - `warning` / `critical`: utilization in percent [90 / 98].
//! - `load_warning` / `load_critical`: 1-minute load per core [off].

use watchpost_probe::{Info, Kind, Probe, Report, Result, Threshold, host, measurement};

struct HostCpu;

impl Probe for HostCpu {
    fn describe() -> Info {
        Info::new(
            "host-cpu",
            Kind::Host,
            "CPU utilization and load averages of the host",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "system.cpu.utilization",
            "1",
            "busy fraction of all cores, 0 to 1",
        )
        .measures(
            "system.cpu.load_average.1m",
            "1",
            "load average over 1 minute",
        )
        .measures(
            "system.cpu.load_average.5m",
            "1",
            "load average over 5 minutes",
        )
        .measures(
            "system.cpu.load_average.15m",
            "1",
            "load average over 15 minutes",
        )
        .measures("system.cpu.logical.count", "1", "number of logical cores")
    }

    fn check() -> Result<Report> {
        let cpu = host::cpu();
        let percent = cpu.utilization * 100.0;
        let utilization = Threshold::above(90.0, 98.0).configured("warning", "critical")?;
        let load_per_core = cpu.load1 / f64::from(cpu.cores.max(1));

        let mut status = utilization.status(percent);
        if let Some(load) = Threshold::optional_above("load_warning", "load_critical")? {
            status = status.worst(load.status(load_per_core));
        }
        let message = format!(
            "CPU {percent:.1}% busy on {} cores, load {:.2} {:.2} {:.2} ({load_per_core:.2} per core)",
            cpu.cores, cpu.load1, cpu.load5, cpu.load15
        );
        Ok(Report::new(status, message)
            .with(measurement("system.cpu.utilization", cpu.utilization, "1"))
            .with(measurement("system.cpu.load_average.1m", cpu.load1, "1"))
            .with(measurement("system.cpu.load_average.5m", cpu.load5, "1"))
            .with(measurement("system.cpu.load_average.15m", cpu.load15, "1"))
            .with(measurement(
                "system.cpu.logical.count",
                f64::from(cpu.cores),
                "1",
            )))
    }
}

watchpost_probe::export_probe!(HostCpu);
