//! Where a `SCAN` is in the keyspace, and how to start one anywhere.
//!
//! Redis walks its hash table in reverse-binary order of the bucket index
//! (the cursor is the index with its bits reversed, so that a table that
//! grows or shrinks during the walk loses no key). Reversing the cursor's
//! 64 bits back gives a position that only grows during a walk, from 0 to
//! the end (the cursor 0 again), whatever the table's size: the top bits
//! of the position are the bucket's rank in the walk. A walk can thus
//! start at any position `s` (the cursor `reverse(s)`: the server keeps
//! the bits its table size needs), run to the end, and go on from 0 until
//! it is back at `s`. Successive runs from random positions cover the
//! whole keyspace without the probe keeping anything between runs.

/// A cursor's position in the walk: its bits reversed.
pub fn position(cursor: u64) -> u64 {
    cursor.reverse_bits()
}

/// The cursor that starts a walk at `position`.
pub fn start(position: u64) -> u64 {
    position.reverse_bits()
}

/// A walk from a start position round the keyspace to it again.
#[derive(Debug)]
pub struct Walk {
    start: u64,
    /// The cursor of the next `SCAN`.
    cursor: u64,
    /// The walk passed the end of the table and goes on from 0.
    wrapped: bool,
    done: bool,
}

impl Walk {
    /// A walk starting at `start` (a position, e.g. a random number).
    pub fn new(start: u64) -> Walk {
        Walk {
            start,
            cursor: self::start(start),
            wrapped: false,
            done: false,
        }
    }

    /// The cursor to send with the next `SCAN`; None when the walk is round.
    pub fn next_cursor(&self) -> Option<u64> {
        (!self.done).then_some(self.cursor)
    }

    /// Take in the cursor a `SCAN` returned.
    pub fn advance(&mut self, returned: u64) {
        if returned == 0 {
            if self.wrapped || self.start == 0 {
                self.done = true;
            } else {
                self.wrapped = true;
            }
        } else if self.wrapped && position(returned) >= self.start {
            self.done = true;
        }
        self.cursor = returned;
    }

    /// True once the walk has passed the end of the table and goes on
    /// from its start: the buckets it meets now were seen first or will be
    /// past the start position, where the first batch was.
    pub fn wrapped(&self) -> bool {
        self.wrapped
    }

    /// True when every bucket was visited.
    pub fn complete(&self) -> bool {
        self.done
    }

    /// The share of the keyspace walked so far, 0 to 1.
    pub fn covered(&self) -> f64 {
        if self.done {
            return 1.0;
        }
        const WHOLE: f64 = 18_446_744_073_709_551_616.0; // 2^64
        let at = position(self.cursor);
        let walked = if self.wrapped {
            // From the start to the end, then from 0 to here.
            (WHOLE - self.start as f64) + at as f64
        } else {
            at.wrapping_sub(self.start) as f64
        };
        (walked / WHOLE).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reverse-binary walk of a table of `2^bits` buckets, as the
    /// server steps its cursor (dictScan's increment of the reversed
    /// cursor, high bits set), from `cursor` to 0.
    fn server_step(cursor: u64, bits: u32) -> u64 {
        let mask = (1u64 << bits) - 1;
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// Walk a table of `2^bits` buckets from `start`; the buckets visited.
    fn walk_table(start_position: u64, bits: u32) -> (Vec<u64>, Walk) {
        let mask = (1u64 << bits) - 1;
        let mut walk = Walk::new(start_position);
        let mut seen = Vec::new();
        while let Some(cursor) = walk.next_cursor() {
            seen.push(cursor & mask);
            let returned = server_step(cursor, bits);
            let before = walk.covered();
            walk.advance(returned);
            assert!(walk.covered() >= before, "coverage never goes back");
            assert!(seen.len() <= (2 << bits), "the walk ends");
        }
        (seen, walk)
    }

    #[test]
    fn a_walk_from_anywhere_visits_every_bucket() {
        for bits in [0u32, 1, 4, 10] {
            for start in [
                0u64,
                1,
                u64::MAX,
                0x8000_0000_0000_0000,
                0x1234_5678_9abc_def0,
            ] {
                let (seen, walk) = walk_table(start, bits);
                let mut buckets = seen.clone();
                buckets.sort();
                buckets.dedup();
                assert_eq!(
                    buckets.len(),
                    1 << bits,
                    "bits {bits} start {start:#x}: every bucket, got {seen:?}"
                );
                assert!(walk.complete());
                assert_eq!(walk.covered(), 1.0);
            }
        }
    }

    #[test]
    fn coverage_is_the_share_walked() {
        let mut walk = Walk::new(0);
        assert_eq!(walk.covered(), 0.0);
        // Half way: position 2^63 is the cursor with the lowest bit set.
        walk.advance(1);
        assert!((walk.covered() - 0.5).abs() < 1e-9);
        let mut walk = Walk::new(1 << 63);
        walk.advance(0);
        assert!(!walk.complete());
        assert!((walk.covered() - 0.5).abs() < 1e-9);
        walk.advance(start(1 << 62));
        assert!((walk.covered() - 0.75).abs() < 1e-9);
        walk.advance(start(1 << 63));
        assert!(walk.complete());
    }
}
