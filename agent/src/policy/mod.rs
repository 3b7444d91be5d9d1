//! Policy: from run reports to states. Thresholds in Nagios range syntax
//! ([`range`]) make a run's status; soft/hard confirmation and flap
//! detection make the states that remediation and alerts act on.

pub mod range;
pub mod thresholds;
