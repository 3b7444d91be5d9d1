//! The agent-wide memory budget: the memory caps of the runs in flight
//! add up to at most `[agent] memory_budget`.
//!
//! Each run is bounded by its own cap (the sandbox's linear memory, and
//! what host calls hold on its behalf, such as a database result before it
//! is copied in), but `concurrency` runs of large caps could still add up
//! to more than the node can spare. A run reserves its cap's worth of the
//! budget before it starts and gives it back when it ends; a run whose cap
//! is larger than the whole budget takes all of it and runs alone, so no
//! run ever waits forever. Permits are MiB (caps are rounded up).

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget when the config does not set one: 1 GiB, the largest cap a
/// single probe may have.
pub const DEFAULT: u64 = 1 << 30;

const MIB: u64 = 1 << 20;

/// A budget of memory in MiB, shared by every run of the runtime.
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total: u32,
}

/// A run's share of the budget, given back when dropped.
pub struct Room {
    _permit: Option<OwnedSemaphorePermit>,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least 1 MiB).
    pub fn new(bytes: u64) -> Self {
        let total = u32::try_from(bytes.div_ceil(MIB).max(1)).unwrap_or(u32::MAX);
        MemoryBudget {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Wait until `cap` bytes fit in the budget (all of it when `cap` is
    /// larger) and hold them.
    pub async fn reserve(&self, cap: u64) -> Room {
        let wanted = u32::try_from(cap.div_ceil(MIB).max(1))
            .unwrap_or(u32::MAX)
            .min(self.total);
        Room {
            // The semaphore is never closed: `Err` cannot happen, and a
            // run without room would still be bounded by its own cap.
            _permit: self.permits.clone().acquire_many_owned(wanted).await.ok(),
        }
    }

    /// MiB not reserved now.
    pub fn available_mib(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_wait_for_room_and_an_oversized_cap_runs_alone() {
        let budget = MemoryBudget::new(100 * MIB);
        let first = budget.reserve(64 * MIB).await;
        assert_eq!(budget.available_mib(), 36);
        // 64 MiB more does not fit until the first run ends.
        let waiting = budget.reserve(64 * MIB);
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut waiting)
                .await
                .is_err()
        );
        drop(first);
        let second = waiting.await;
        assert_eq!(budget.available_mib(), 36);
        drop(second);
        // A cap over the whole budget takes all of it, and is not refused.
        let alone = budget.reserve(1 << 40).await;
        assert_eq!(budget.available_mib(), 0);
        drop(alone);
        assert_eq!(budget.available_mib(), 100);
        // Caps round up to whole MiB: 64 KiB takes one.
        let small = budget.reserve(64 << 10).await;
        assert_eq!(budget.available_mib(), 99);
        drop(small);
    }
}
