//! Loops forever: the sandbox must cut it off at its timeout.
use watchpost_probe::{Info, Kind, Probe, Report, Result};

struct Spin;

impl Probe for Spin {
    fn describe() -> Info {
        Info::new("spin", Kind::Host, "loops forever")
    }

    fn check() -> Result<Report> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

watchpost_probe::export_probe!(Spin);
