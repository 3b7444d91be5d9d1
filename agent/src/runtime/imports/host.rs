//! `host`: the shared host-metrics snapshot.

use crate::runtime::bindings::host::{CpuUsage, Filesystem, Host, MemoryUsage, Process};
use crate::runtime::state::RunState;

impl Host for RunState {
    async fn cpu(&mut self) -> CpuUsage {
        let cpu = self.services.host.cpu().await;
        CpuUsage {
            utilization: cpu.utilization,
            cores: cpu.cores,
            load1: cpu.load1,
            load5: cpu.load5,
            load15: cpu.load15,
        }
    }

    async fn memory(&mut self) -> MemoryUsage {
        let memory = self.services.host.memory().await;
        MemoryUsage {
            total_bytes: memory.total,
            used_bytes: memory.used,
            available_bytes: memory.available,
            swap_total_bytes: memory.swap_total,
            swap_used_bytes: memory.swap_used,
        }
    }

    async fn filesystems(&mut self) -> Vec<Filesystem> {
        self.services
            .host
            .filesystems()
            .await
            .into_iter()
            .map(|fs| Filesystem {
                mount_point: fs.mount_point,
                device: fs.device,
                fs_type: fs.fs_type,
                total_bytes: fs.total,
                available_bytes: fs.available,
                read_only: fs.read_only,
            })
            .collect()
    }

    async fn processes(&mut self, name: String) -> Vec<Process> {
        self.services
            .host
            .processes(&name)
            .await
            .into_iter()
            .map(|p| Process {
                pid: p.pid,
                name: p.name,
                memory_bytes: p.memory,
                cpu_utilization: p.cpu,
                run_time_seconds: p.run_time,
            })
            .collect()
    }

    async fn hostname(&mut self) -> String {
        crate::hostinfo::hostname()
    }

    async fn uptime_seconds(&mut self) -> u64 {
        crate::hostinfo::uptime_seconds()
    }
}
