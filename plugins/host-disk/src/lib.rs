//! `host-disk`: filesystem utilization per mount point.
//!
//! Config: `mounts`: comma-separated mount points to check (default: every
//! real filesystem; a listed mount point that is not mounted is critical);
//! `warning` / `critical`: space in use, percent (default 85 / 95).

use watchpost_probe::{
    Info, Kind, Probe, Report, Result, Status, Threshold, config, host, measurement,
};

struct HostDisk;

impl Probe for HostDisk {
    fn describe() -> Info {
        Info::new(
            "host-disk",
            Kind::Host,
            "filesystem utilization per mount point",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "system.filesystem.utilization",
            "1",
            "space in use per mount point, 0 to 1",
        )
        .measures(
            "system.filesystem.usage",
            "By",
            "space in use per mount point, bytes",
        )
        .measures(
            "system.filesystem.limit",
            "By",
            "size per mount point, bytes",
        )
    }

    fn check() -> Result<Report> {
        let limit = Threshold::above(85.0, 95.0).configured("warning", "critical")?;
        let wanted = config::list("mounts");
        let filesystems = host::filesystems();

        let mut report = Report::ok("");
        let mut worst: Option<(f64, String)> = None;
        let mut problems = Vec::new();
        for mount in &wanted {
            if !filesystems.iter().any(|fs| &fs.mount_point == mount) {
                report.worsen(Status::Critical);
                problems.push(format!("{mount} is not mounted"));
            }
        }
        let checked = filesystems
            .iter()
            .filter(|fs| wanted.is_empty() || wanted.contains(&fs.mount_point));
        let mut count = 0;
        for fs in checked {
            count += 1;
            let used = fs.total_bytes.saturating_sub(fs.available_bytes);
            let utilization = if fs.total_bytes == 0 {
                0.0
            } else {
                used as f64 / fs.total_bytes as f64
            };
            let status = limit.status(utilization * 100.0);
            if status != Status::Ok {
                problems.push(format!(
                    "{} {:.1}% full",
                    fs.mount_point,
                    utilization * 100.0
                ));
            }
            report.worsen(status);
            if worst.as_ref().is_none_or(|(u, _)| utilization > *u) {
                worst = Some((utilization, fs.mount_point.clone()));
            }
            let labelled = |m: watchpost_probe::Measurement| {
                m.attr("mountpoint", fs.mount_point.as_str())
                    .attr("device", fs.device.as_str())
                    .attr("type", fs.fs_type.as_str())
            };
            report.push(labelled(measurement(
                "system.filesystem.utilization",
                utilization,
                "1",
            )));
            report.push(labelled(measurement(
                "system.filesystem.usage",
                used as f64,
                "By",
            )));
            report.push(labelled(measurement(
                "system.filesystem.limit",
                fs.total_bytes as f64,
                "By",
            )));
        }
        report.message = match (problems.is_empty(), worst) {
            (false, _) => problems.join(", "),
            (true, Some((u, mount))) => format!(
                "{count} filesystems below {:.0}%, fullest {mount} at {:.1}%",
                limit.warning,
                u * 100.0
            ),
            (true, None) => "no filesystems to check".to_string(),
        };
        Ok(report)
    }
}

watchpost_probe::export_probe!(HostDisk);
