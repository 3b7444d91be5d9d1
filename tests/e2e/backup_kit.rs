//! The backup tests' shared setup lives in the harness
//! (`watchpost_e2e::backup`); this name stays for the tests that import it.

pub use watchpost_e2e::backup::*;
