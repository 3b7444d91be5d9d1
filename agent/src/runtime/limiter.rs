//! The per-run memory cap, and the record of how much memory a run used.
//!
//! wasmtime asks the limiter before it creates or grows a linear memory or
//! a table. Growing past the cap traps at once, and the limiter remembers
//! that it did, so the run is reported as `memory` rather than as a plain
//! trap.

use crate::config::units::human_bytes;
use wasmtime::ResourceLimiter;

/// Tables may hold at most this many elements (function references).
const MAX_TABLE_ELEMENTS: usize = 200_000;

#[derive(Debug)]
pub struct MemoryLimiter {
    /// Total bytes of linear memory the run may hold.
    cap: u64,
    /// Bytes currently held, over all of the instance's memories.
    current: u64,
    /// Largest `current` seen.
    peak: u64,
    /// The total the probe asked for when it went over the cap.
    exceeded: Option<u64>,
}

impl MemoryLimiter {
    pub fn new(cap: u64) -> Self {
        MemoryLimiter {
            cap,
            current: 0,
            peak: 0,
            exceeded: None,
        }
    }

    /// Peak linear memory of the run, in bytes.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// If the run went over its cap: the total it asked for.
    pub fn exceeded(&self) -> Option<u64> {
        self.exceeded
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Bytes the run may still take before its cap: what a host call may
    /// hold on the probe's behalf (a database result) before it is copied
    /// into the probe's memory.
    pub fn headroom(&self) -> u64 {
        self.cap.saturating_sub(self.current)
    }

    /// A host call on the probe's behalf went over the cap: `asked` more
    /// bytes than the probe held. The run ends as `memory`.
    pub fn host_exceeded(&mut self, asked: u64) {
        let wanted = self.current.saturating_add(asked);
        self.exceeded = Some(self.exceeded.map_or(wanted, |e| e.max(wanted)));
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let wanted = self.current - current as u64 + desired as u64;
        if wanted > self.cap {
            self.exceeded = Some(wanted);
            wasmtime::bail!(
                "memory cap exceeded: the probe asked for {} in total, its limit is {}",
                human_bytes(wanted),
                human_bytes(self.cap)
            );
        }
        self.current = wanted;
        self.peak = self.peak.max(wanted);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_within_the_cap_is_allowed_and_tracked() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 65536, None).unwrap());
        assert!(limiter.memory_growing(65536, 131072, None).unwrap());
        assert_eq!(limiter.peak(), 131072);
        assert_eq!(limiter.exceeded(), None);
    }

    #[test]
    fn growth_past_the_cap_traps_and_is_remembered() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        limiter.memory_growing(0, 65536, None).unwrap();
        let error = limiter.memory_growing(65536, 2 << 20, None).unwrap_err();
        assert!(error.to_string().contains("limit is 1.0 MiB"), "{error}");
        assert_eq!(limiter.exceeded(), Some(2 << 20));
    }
}
