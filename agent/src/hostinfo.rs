//! The host-metrics service behind the `host` capability: one snapshot
//! per metric shared by every probe, refreshed at most once per
//! [`MAX_AGE`], read off the async threads (reading `/proc` blocks).
//!
//! Host sampling must never hang: each metric has its own lock, so a slow
//! one never holds up another, and filesystems are read without `sysinfo`
//! (whose disk list calls `statvfs` on every mount in turn and hangs with
//! the first mount whose server is gone): the mount table from
//! `/proc/self/mounts`, then one `statvfs` per mount, each on its own
//! thread, waited for at most [`STATVFS_TIMEOUT`]. A mount that does not
//! answer (a stopped FUSE daemon, a stalled NFS server) is reported with
//! a size of 0 (`host-disk` names it as unknown) while the others are
//! measured, and gets no new thread while its last `statvfs` is still
//! stuck: one stuck thread per hung mount at most, never a pile.

use parking_lot::Mutex;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

/// How old a snapshot may be before a probe's request refreshes it.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// How long a filesystem's `statvfs` may take before it counts as hung.
pub const STATVFS_TIMEOUT: Duration = Duration::from_millis(1500);

/// Filesystem types served over the network or by a user-space daemon:
/// they can hang, and `host-disk` checks them only when asked to.
pub const REMOTE_FILESYSTEMS: &[&str] = &[
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

/// True for a network or FUSE filesystem type (`fuse.bindfs`, `nfs4`).
pub fn is_remote(fs_type: &str) -> bool {
    fs_type.starts_with("fuse.") || REMOTE_FILESYSTEMS.contains(&fs_type)
}

/// Filesystem types that hold no user data and are never reported.
const PSEUDO_FILESYSTEMS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "cgroup",
    "cgroup2",
    "overlay",
    "squashfs",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "autofs",
    "mqueue",
    "hugetlbfs",
    "fusectl",
    "configfs",
    "binfmt_misc",
    "nsfs",
    "ramfs",
    "rpc_pipefs",
    "efivarfs",
];

#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// Busy fraction of all cores, 0 to 1.
    pub utilization: f64,
    pub cores: u32,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub total: u64,
    pub used: u64,
    pub available: u64,
    pub swap_total: u64,
    pub swap_used: u64,
}

#[derive(Clone, Debug)]
pub struct Filesystem {
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    /// 0 (and `available` 0) when the filesystem did not answer in time.
    pub total: u64,
    pub available: u64,
    pub read_only: bool,
    /// False when `statvfs` did not answer within [`STATVFS_TIMEOUT`].
    pub answered: bool,
}

#[derive(Clone, Debug)]
pub struct Process {
    pub pid: u32,
    pub name: String,
    /// Resident set size, bytes.
    pub memory: u64,
    /// 1.0 is one full core.
    pub cpu: f64,
    pub run_time: u64,
}

/// Shared, lazily refreshed host metrics, one lock per metric. Cheap to
/// clone.
#[derive(Clone, Default)]
pub struct HostMetrics {
    cpu: Arc<Mutex<Sampler>>,
    memory: Arc<Mutex<Sampler>>,
    processes: Arc<Mutex<Sampler>>,
    disks: Arc<Mutex<Disks>>,
}

/// One metric's `sysinfo` handle and when it was last refreshed.
#[derive(Default)]
struct Sampler {
    system: Option<System>,
    cpu_at: Option<Instant>,
    memory_at: Option<Instant>,
    processes_at: Option<Instant>,
}

/// The filesystems snapshot and the mounts whose `statvfs` is still stuck.
#[derive(Default)]
struct Disks {
    snapshot: Option<(Instant, Vec<Filesystem>)>,
    stuck: Arc<Mutex<HashSet<String>>>,
}

fn stale(at: Option<Instant>) -> bool {
    at.is_none_or(|at| at.elapsed() >= MAX_AGE)
}

impl Sampler {
    /// The `sysinfo` handle; `None` on a platform it does not support.
    fn system(&mut self) -> Option<&mut System> {
        if self.system.is_none() {
            self.system = System::new().ok();
        }
        self.system.as_mut()
    }

    fn cpu(&mut self) -> Cpu {
        let first = self.cpu_at.is_none();
        let refresh = stale(self.cpu_at);
        let Some(system) = self.system() else {
            return Cpu::default();
        };
        if first {
            // Utilization is a difference between two samples: take the
            // first one now and the second after the minimum interval.
            system.refresh_cpu_usage();
            std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        }
        if refresh {
            system.refresh_cpu_usage();
            self.cpu_at = Some(Instant::now());
        }
        let Some(system) = self.system() else {
            return Cpu::default();
        };
        let load = System::load_average().unwrap_or(sysinfo::LoadAvg {
            one: 0.0,
            five: 0.0,
            fifteen: 0.0,
        });
        Cpu {
            utilization: f64::from(system.global_cpu_usage() / 100.0).clamp(0.0, 1.0),
            cores: system.cpus().len() as u32,
            load1: load.one,
            load5: load.five,
            load15: load.fifteen,
        }
    }

    fn memory(&mut self) -> Memory {
        let refresh = stale(self.memory_at);
        let Some(system) = self.system() else {
            return Memory::default();
        };
        if refresh {
            system.refresh_memory();
            self.memory_at = Some(Instant::now());
        }
        let Some(system) = self.system() else {
            return Memory::default();
        };
        let total = system.total_memory();
        let available = system.available_memory();
        Memory {
            total,
            used: total.saturating_sub(available),
            available,
            swap_total: system.total_swap(),
            swap_used: system.used_swap(),
        }
    }

    fn processes(&mut self, name: &str) -> Vec<Process> {
        let refresh = stale(self.processes_at);
        let Some(system) = self.system() else {
            return Vec::new();
        };
        if refresh {
            let kind = ProcessRefreshKind::nothing().with_memory().with_cpu();
            system.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
            self.processes_at = Some(Instant::now());
        }
        let Some(system) = self.system() else {
            return Vec::new();
        };
        system
            .processes_by_exact_name(OsStr::new(name))
            .map(|p| Process {
                pid: p.pid().as_u32(),
                name: p.name().to_string_lossy().into_owned(),
                memory: p.memory(),
                cpu: f64::from(p.cpu_usage() / 100.0),
                run_time: p.run_time(),
            })
            .collect()
    }
}

impl Disks {
    fn filesystems(&mut self) -> Vec<Filesystem> {
        if let Some((at, list)) = &self.snapshot
            && at.elapsed() < MAX_AGE
        {
            return list.clone();
        }
        let list = read_filesystems(&self.stuck, STATVFS_TIMEOUT);
        self.snapshot = Some((Instant::now(), list.clone()));
        list
    }
}

/// One line of the mount table: (device, mount point, type, read-only).
fn mounts() -> Vec<(String, String, String, bool)> {
    let Ok(table) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let device = unescape(fields.next()?);
            let mount_point = unescape(fields.next()?);
            let fs_type = fields.next()?.to_string();
            let read_only = fields.next()?.split(',').any(|o| o == "ro");
            Some((device, mount_point, fs_type, read_only))
        })
        .filter(|(_, _, fs_type, _)| !PSEUDO_FILESYSTEMS.contains(&fs_type.as_str()))
        // The last mount on a point hides the ones under it.
        .rev()
        .filter(|(_, mount_point, _, _)| seen.insert(mount_point.clone()))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// `/proc/mounts` writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = field
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// (total, available) bytes of the filesystem at `path`.
fn statvfs(path: &str) -> Option<(u64, u64)> {
    let c_path = std::ffi::CString::new(path).ok()?;
    // SAFETY: a valid NUL-terminated path and a zeroed out-struct that
    // statvfs(3) fills.
    let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut buf) } != 0 {
        return None;
    }
    let fragment = buf.f_frsize as u64;
    Some((
        (buf.f_blocks as u64).saturating_mul(fragment),
        (buf.f_bavail as u64).saturating_mul(fragment),
    ))
}

/// Every real filesystem, each measured on its own thread within
/// `timeout`; one that does not answer has `answered: false`.
fn read_filesystems(stuck: &Arc<Mutex<HashSet<String>>>, timeout: Duration) -> Vec<Filesystem> {
    let deadline = Instant::now() + timeout;
    let (sender, receiver) = mpsc::channel();
    let mounts = mounts();
    for (index, (_, mount_point, _, _)) in mounts.iter().enumerate() {
        let mut stuck_now = stuck.lock();
        if !stuck_now.insert(mount_point.clone()) {
            continue; // its last statvfs has not come back yet
        }
        drop(stuck_now);
        let (sender, marks, path) = (sender.clone(), stuck.clone(), mount_point.clone());
        let spawned = std::thread::Builder::new()
            .name("watchpost-statvfs".into())
            .spawn(move || {
                let sizes = statvfs(&path);
                marks.lock().remove(&path);
                let _ = sender.send((index, sizes));
            });
        if spawned.is_err() {
            stuck.lock().remove(mount_point);
        }
    }
    drop(sender);
    let mut sizes = vec![None; mounts.len()];
    let mut answered = vec![false; mounts.len()];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match receiver.recv_timeout(left) {
            Ok((index, measured)) => {
                answered[index] = true;
                sizes[index] = measured;
            }
            Err(_) => break,
        }
    }
    mounts
        .into_iter()
        .zip(sizes.into_iter().zip(answered))
        // A mount statvfs refuses (permission) is left out as before.
        .filter(|(_, (sizes, answered))| sizes.is_some() || !answered)
        .map(
            |((device, mount_point, fs_type, read_only), (sizes, answered))| {
                let (total, available) = sizes.unwrap_or((0, 0));
                Filesystem {
                    mount_point,
                    device,
                    fs_type,
                    total,
                    available,
                    read_only,
                    answered,
                }
            },
        )
        .collect()
}

/// Run `f` on one metric's state, under its own lock, on a blocking thread.
async fn with<S: Send + 'static, R: Default + Send + 'static>(
    state: &Arc<Mutex<S>>,
    f: impl FnOnce(&mut S) -> R + Send + 'static,
) -> R {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut state = state.lock();
        f(&mut state)
    })
    .await
    .unwrap_or_default()
}

impl HostMetrics {
    pub async fn cpu(&self) -> Cpu {
        with(&self.cpu, Sampler::cpu).await
    }

    pub async fn memory(&self) -> Memory {
        with(&self.memory, Sampler::memory).await
    }

    pub async fn filesystems(&self) -> Vec<Filesystem> {
        with(&self.disks, Disks::filesystems).await
    }

    pub async fn processes(&self, name: &str) -> Vec<Process> {
        let name = name.to_string();
        with(&self.processes, move |s| s.processes(&name)).await
    }
}

/// The host name, or `localhost` if it cannot be read.
pub fn hostname() -> String {
    System::host_name().unwrap_or_else(|_| "localhost".to_string())
}

/// Seconds since boot (0 if unknown).
pub fn uptime_seconds() -> u64 {
    System::uptime().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_table_escapes_are_decoded() {
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/odd\\"), "/odd\\");
    }

    #[test]
    fn remote_filesystems_are_told_apart() {
        assert!(is_remote("fuse.bindfs") && is_remote("nfs4") && is_remote("cifs"));
        assert!(!is_remote("ext4") && !is_remote("xfs"));
    }

    #[test]
    fn the_root_filesystem_is_measured_in_time() {
        let stuck = Arc::new(Mutex::new(HashSet::new()));
        let list = read_filesystems(&stuck, STATVFS_TIMEOUT);
        let root = list.iter().find(|fs| fs.mount_point == "/");
        assert!(
            root.is_some_and(|fs| fs.answered && fs.total > 0),
            "{list:?}"
        );
        assert!(stuck.lock().is_empty());
    }
}
