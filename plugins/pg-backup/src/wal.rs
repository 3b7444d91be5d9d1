//! WAL segment names and the archive's continuity: from the newest
//! backup's first segment to the newest archived one, which segments are
//! missing. A segment file is named `TTTTTTTTXXXXXXXXYYYYYYYY` (timeline,
//! then the segment number split in two); archives add suffixes
//! (`.gz`, `.zst`, pgBackRest's `-SHA1.gz`), which are ignored.

use std::collections::BTreeSet;
use std::path::Path;

/// A segment: timeline and segment number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    pub timeline: u32,
    pub number: u64,
}

/// Segments per "xlogid" (the middle 8 hex digits) for a segment size.
fn per_id(segment_size: u64) -> u64 {
    0x1_0000_0000 / segment_size.max(1)
}

impl Segment {
    /// Parse the first 24 characters of `name` as a segment name.
    pub fn parse(name: &str, segment_size: u64) -> Option<Segment> {
        let head = name.get(..24)?;
        if !head.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        // `...backup` and `.partial` files are not complete segments.
        let rest = &name[24..];
        if rest.contains(".backup") || rest.contains(".partial") || rest.contains(".history") {
            return None;
        }
        let timeline = u32::from_str_radix(&head[..8], 16).ok()?;
        let high = u64::from_str_radix(&head[8..16], 16).ok()?;
        let low = u64::from_str_radix(&head[16..24], 16).ok()?;
        Some(Segment {
            timeline,
            number: high * per_id(segment_size) + low,
        })
    }

    /// The segment's file name.
    pub fn name(&self, segment_size: u64) -> String {
        let per = per_id(segment_size);
        format!(
            "{:08X}{:08X}{:08X}",
            self.timeline,
            self.number / per,
            self.number % per
        )
    }
}

/// Every segment found in `dir` and, `depth` levels down, its
/// subdirectories (pgBackRest keeps `archive/STANZA/VERSION/XXXXXXXXXXXXXXXX/`).
pub fn collect(dir: &Path, depth: u32, segment_size: u64, out: &mut BTreeSet<Segment>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            if depth > 0 {
                collect(&entry.path(), depth - 1, segment_size, out);
            }
        } else if let Some(segment) = Segment::parse(&name, segment_size) {
            out.insert(segment);
        }
    }
}

/// What the archive holds after `start`.
pub struct Continuity {
    /// The newest segment archived (any timeline at or after start's).
    pub newest: Option<Segment>,
    /// Segment numbers missing between start and newest.
    pub missing: Vec<u64>,
}

/// Segments missing from `start` to the newest archived segment, on
/// timelines at or after `start`'s (a segment counts on any of them: after
/// a promotion the numbers go on under the new timeline).
pub fn continuity(segments: &BTreeSet<Segment>, start: Segment) -> Continuity {
    let numbers: BTreeSet<u64> = segments
        .iter()
        .filter(|s| s.timeline >= start.timeline && s.number >= start.number)
        .map(|s| s.number)
        .collect();
    let newest = segments
        .iter()
        .filter(|s| s.timeline >= start.timeline)
        .max_by_key(|s| (s.number, s.timeline))
        .copied();
    let last = numbers.iter().next_back().copied().unwrap_or(start.number);
    let missing = (start.number..=last)
        .filter(|n| !numbers.contains(n))
        .take(1000)
        .collect();
    Continuity { newest, missing }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB16: u64 = 16 << 20;

    #[test]
    fn names_round_trip() {
        let s = Segment::parse("0000000100000002000000FF", MB16).unwrap();
        assert_eq!(s.number, 2 * 256 + 255);
        assert_eq!(s.name(MB16), "0000000100000002000000FF");
        assert!(Segment::parse("000000010000000000000002.00000028.backup", MB16).is_none());
        assert!(Segment::parse("00000002.history", MB16).is_none());
        assert!(Segment::parse("000000010000000000000003-0123abcd.gz", MB16).is_some());
    }

    #[test]
    fn gaps_are_found() {
        let set: BTreeSet<Segment> = [2u64, 3, 5, 6]
            .iter()
            .map(|&number| Segment {
                timeline: 1,
                number,
            })
            .collect();
        let c = continuity(
            &set,
            Segment {
                timeline: 1,
                number: 2,
            },
        );
        assert_eq!(c.missing, vec![4]);
        assert_eq!(c.newest.unwrap().number, 6);
    }
}
