//! The host-metrics service behind the `host` capability: one `sysinfo`
//! snapshot shared by every probe, refreshed at most once per
//! [`MAX_AGE`], read off the async threads (reading `/proc` blocks).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sysinfo::{Disks, ProcessRefreshKind, ProcessesToUpdate, System};

/// How old a snapshot may be before a probe's request refreshes it.
pub const MAX_AGE: Duration = Duration::from_secs(1);

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
    pub total: u64,
    pub available: u64,
    pub read_only: bool,
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

/// Shared, lazily refreshed host metrics. Cheap to clone.
#[derive(Clone, Default)]
pub struct HostMetrics {
    sampler: Arc<Mutex<Sampler>>,
}

#[derive(Default)]
struct Sampler {
    system: Option<System>,
    cpu_at: Option<Instant>,
    memory_at: Option<Instant>,
    processes_at: Option<Instant>,
    disks: Option<(Instant, Vec<Filesystem>)>,
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

    fn filesystems(&mut self) -> Vec<Filesystem> {
        if let Some((at, list)) = &self.disks
            && at.elapsed() < MAX_AGE
        {
            return list.clone();
        }
        let list = read_filesystems();
        self.disks = Some((Instant::now(), list.clone()));
        list
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

fn read_filesystems() -> Vec<Filesystem> {
    let Ok(disks) = Disks::new_with_refreshed_list() else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    disks
        .iter()
        .filter(|d| !PSEUDO_FILESYSTEMS.contains(&d.file_system().to_string_lossy().as_ref()))
        .filter(|d| seen.insert(d.mount_point().to_path_buf()))
        .map(|d| Filesystem {
            mount_point: d.mount_point().to_string_lossy().into_owned(),
            device: d.name().to_string_lossy().into_owned(),
            fs_type: d.file_system().to_string_lossy().into_owned(),
            total: d.total_space(),
            available: d.available_space(),
            read_only: d.is_read_only(),
        })
        .collect()
}

impl HostMetrics {
    /// Run `f` on the sampler on a blocking thread.
    async fn with<R: Default + Send + 'static>(
        &self,
        f: impl FnOnce(&mut Sampler) -> R + Send + 'static,
    ) -> R {
        let sampler = self.sampler.clone();
        tokio::task::spawn_blocking(move || {
            let mut sampler = sampler.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut sampler)
        })
        .await
        .unwrap_or_default()
    }

    pub async fn cpu(&self) -> Cpu {
        self.with(Sampler::cpu).await
    }

    pub async fn memory(&self) -> Memory {
        self.with(Sampler::memory).await
    }

    pub async fn filesystems(&self) -> Vec<Filesystem> {
        self.with(Sampler::filesystems).await
    }

    pub async fn processes(&self, name: &str) -> Vec<Process> {
        let name = name.to_string();
        self.with(move |s| s.processes(&name)).await
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
