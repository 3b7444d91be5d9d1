//! `host-memory`: memory and swap utilization.
//!
//! Config (defaults in brackets):
//! - `warning` / `critical`: memory in use, percent [90 / 95].
//! - `swap_warning` / `swap_critical`: swap in use, percent [80 / 95].

use watchpost_probe::{Info, Kind, Probe, Report, Result, Threshold, host, measurement};

struct HostMemory;

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Probe for HostMemory {
    fn describe() -> Info {
        Info::new(
            "host-memory",
            Kind::Host,
            "memory and swap utilization of the host",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "system.memory.utilization",
            "1",
            "memory in use (total minus available), 0 to 1",
        )
        .measures("system.memory.usage", "By", "memory in use, bytes")
        .measures("system.memory.limit", "By", "total memory, bytes")
        .measures("system.paging.utilization", "1", "swap in use, 0 to 1")
        .measures("system.paging.usage", "By", "swap in use, bytes")
    }

    fn check() -> Result<Report> {
        let mem = host::memory();
        let memory = ratio(mem.used_bytes, mem.total_bytes);
        let swap = ratio(mem.swap_used_bytes, mem.swap_total_bytes);
        let memory_limit = Threshold::above(90.0, 95.0).configured("warning", "critical")?;
        let swap_limit =
            Threshold::above(80.0, 95.0).configured("swap_warning", "swap_critical")?;
        let status = memory_limit
            .status(memory * 100.0)
            .worst(swap_limit.status(swap * 100.0));
        let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
        let message = format!(
            "memory {:.1}% used ({:.1} of {:.1} GiB), swap {:.1}% used",
            memory * 100.0,
            gib(mem.used_bytes),
            gib(mem.total_bytes),
            swap * 100.0
        );
        Ok(Report::new(status, message)
            .with(measurement("system.memory.utilization", memory, "1"))
            .with(measurement(
                "system.memory.usage",
                mem.used_bytes as f64,
                "By",
            ))
            .with(measurement(
                "system.memory.limit",
                mem.total_bytes as f64,
                "By",
            ))
            .with(measurement("system.paging.utilization", swap, "1"))
            .with(measurement(
                "system.paging.usage",
                mem.swap_used_bytes as f64,
                "By",
            )))
    }
}

watchpost_probe::export_probe!(HostMemory);
