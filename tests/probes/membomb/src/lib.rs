//! Allocates memory until something stops it: the memory cap must.
use watchpost_probe::{Info, Kind, Probe, Report, Result};

struct MemoryBomb;

impl Probe for MemoryBomb {
    fn describe() -> Info {
        Info::new("membomb", Kind::Host, "allocates without bound")
    }

    fn check() -> Result<Report> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch every page so the memory is really used.
            hoard.push(vec![0xA5; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

watchpost_probe::export_probe!(MemoryBomb);
