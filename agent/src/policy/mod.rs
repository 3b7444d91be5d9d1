//! Policy: from run reports to states. Thresholds in Nagios range syntax
//! ([`crate::config::range`], [`thresholds`]) make a run's status; soft/hard confirmation
//! ([`confirm`]) and flap detection ([`flap`]) make the per-probe
//! [`state::ProbeState`] that remediation and alerts act on.

pub mod confirm;
pub mod flap;
pub mod state;
pub mod thresholds;
