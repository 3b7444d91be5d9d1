//! TCP ports for the test servers, taken from outside the kernel's
//! ephemeral range.
//!
//! A test server that the agent stops and starts again (a switchover, a
//! restart, a rejoin as a replica) must find its port free when it comes
//! back. A port from `bind("127.0.0.1:0")` lies in the ephemeral range
//! (`net.ipv4.ip_local_port_range`, 32768-60999 on Debian), which every
//! outgoing connection of every process on the machine draws its local
//! port from, and which the next `bind(":0")` of another test may hand out
//! again: while the server is down, either can take its port. CI saw a
//! Redis server the agent restarted as a replica fail three times with
//! "bind: Address already in use" on 127.0.0.1:36999.
//!
//! So ports come from below that range (or above it when there is no room
//! below), each handed out once per test process, starting at an offset
//! drawn from the process id so that two test processes rarely meet; a
//! port is handed out only if it can be bound on 127.0.0.1 right now.

use std::net::TcpListener;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out: clear of the well-known ports and of
/// those test machines commonly run services on (5432, 3306, 6379, 9464).
const LOWEST: u16 = 10_000;

/// A TCP port on 127.0.0.1 that nothing listens on now and that no
/// outgoing connection can be given as its local port (outside
/// `net.ipv4.ip_local_port_range`); never the same one twice in a process.
///
/// Panics (this is a test harness) only when every port of the span is
/// taken.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SPAN: OnceLock<(u16, u16)> = OnceLock::new();
    let (low, high) = *SPAN.get_or_init(span);
    let size = u32::from(high - low) + 1;
    // Spread test processes over the span: a prime step keeps neighbours
    // (consecutive process ids) far apart.
    let start = std::process::id().wrapping_mul(7_919) % size;
    for _ in 0..size {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + (start.wrapping_add(n) % size) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 between {low} and {high}")
}

/// The span ports are drawn from: the larger of the gaps below and above
/// the ephemeral range (below starting at [`LOWEST`], or at 1024 when
/// that leaves no room). A machine whose ephemeral range leaves no gap
/// at all gets a warning, and ports that may be taken meanwhile.
fn span() -> (u16, u16) {
    let (ephemeral_low, ephemeral_high) = ephemeral_range().unwrap_or((32_768, 60_999));
    let below_from = if ephemeral_low > LOWEST {
        LOWEST
    } else {
        1_024
    };
    let below = (ephemeral_low > below_from).then(|| (below_from, ephemeral_low - 1));
    let above = (ephemeral_high < u16::MAX).then(|| (ephemeral_high + 1, u16::MAX));
    let size = |span: &Option<(u16, u16)>| span.map_or(0, |(low, high)| high - low);
    match if size(&below) >= size(&above) {
        below
    } else {
        above
    } {
        Some(span) => span,
        None => {
            eprintln!(
                "watchpost-e2e: net.ipv4.ip_local_port_range ({ephemeral_low}-{ephemeral_high}) \
                 leaves no port outside it: a server restarted on its port may find it taken"
            );
            (LOWEST, u16::MAX)
        }
    }
}

/// `net.ipv4.ip_local_port_range` as (lowest, highest), if readable.
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut numbers = text.split_whitespace().map(|n| n.parse::<u16>().ok());
    Some((numbers.next()??, numbers.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_outside_the_ephemeral_range_and_never_repeat() {
        let (low, high) = ephemeral_range().expect("this Linux has an ephemeral range");
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        for port in &ports {
            assert!(
                !(low..=high).contains(port),
                "{port} is in the ephemeral range {low}-{high}"
            );
        }
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports.len(),
            "a port was handed out twice: {ports:?}"
        );
    }
}
