//! PostgreSQL's text form of a WAL position (`X/Y`), read and written in
//! one place: the cluster mode's observations, its timeline history and
//! the switchover's shutdown checkpoint, the failover's measure of the
//! primary's WAL ([`super::controldata`] reads its checkpoint with it).

/// `X/Y` (PostgreSQL's text form of an LSN) in bytes from 0/0; `None`
/// for anything else.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Bytes from 0/0 as PostgreSQL writes an LSN (`X/Y`).
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_read_and_print_alike() {
        for text in ["0/3000028", "1A/FF00", "0/0"] {
            assert_eq!(lsn_text(parse_lsn(text).unwrap()), text);
        }
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("0/1B46C50"), Some(0x1B46C50));
        assert_eq!(parse_lsn("x"), None);
        assert_eq!(parse_lsn("0/x"), None);
    }
}
