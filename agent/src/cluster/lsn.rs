//! PostgreSQL's text form of a WAL position (`X/Y`), read in one place:
//! the local server's observations, its timeline history
//! ([`super::history`]) and the switchover's shutdown checkpoint use it.

/// `X/Y` (PostgreSQL's text form of an LSN) in bytes from 0/0; `None`
/// for anything else.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}
