//! `host-disk`: filesystem utilization per mount point.
//!
//! Config (defaults in brackets):
//! - `mounts`: comma-separated mount points to check; a listed mount point
//!   that is not mounted is critical [every real local filesystem].
//! - `remote`: also check network and FUSE filesystems (`nfs`, `cifs`,
//!   `fuse.*`, ...) without listing them [false].
//! - `warning` / `critical`: space in use, percent [85 / 95].
//!
//! A filesystem that does not answer in time (the agent gives each mount's
//! `statvfs` its own thread and a timeout, and reports a hung one with a
//! size of 0) is `unknown`, by name; the others are measured as usual.

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
        let remote: bool = config::get_or("remote", false)?;
        let checked = filesystems.iter().filter(|fs| {
            if wanted.is_empty() {
                remote || !is_remote(&fs.fs_type)
            } else {
                wanted.contains(&fs.mount_point)
            }
        });
        let mut count = 0;
        for fs in checked {
            if fs.total_bytes == 0 {
                report.worsen(Status::Unknown);
                problems.push(format!(
                    "{} ({}) did not answer in time (a stalled network server or FUSE daemon?): \
                     size unknown",
                    fs.mount_point, fs.fs_type
                ));
                continue;
            }
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

/// True for a network or FUSE filesystem type: these can hang, and are
/// checked only when listed in `mounts` or with `remote = true`.
fn is_remote(fs_type: &str) -> bool {
    const REMOTE: &[&str] = &[
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "ceph",
        "glusterfs",
        "lustre",
        "afs",
        "sshfs",
        "davfs",
        "fuse",
    ];
    fs_type.starts_with("fuse.") || REMOTE.contains(&fs_type)
}

watchpost_probe::export_probe!(HostDisk);
