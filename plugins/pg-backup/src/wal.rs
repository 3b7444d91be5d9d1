//! WAL segment names and the archive's continuity: from the newest
//! backup's first segment to the newest archived one, which segments are
//! missing. A segment file is named `TTTTTTTTXXXXXXXXYYYYYYYY` (timeline,
//! then the segment number split in two); archives add suffixes
//! (`.gz`, `.zst`, pgBackRest's `-SHA1.gz`), which are ignored.
//!
//! Across a promotion the archive holds two timelines: recovery follows
//! the newest timeline's `TTTTTTTT.history` file (each ancestor timeline
//! and the LSN where it was left), reading the old timeline's segments up
//! to the switch point's segment and the new one's from there on. So the
//! continuity is judged the same way: a segment of the new timeline is
//! missing even when the old timeline has one of the same number, and a
//! history file the path needs is itself reported missing.

use std::collections::{BTreeMap, BTreeSet};
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

/// A timeline's history: its ancestors, oldest first, each with the LSN
/// at which the next timeline branched off it.
pub type History = Vec<(u32, u64)>;

/// What an archive holds: segments, and history files by timeline (the
/// parsed file, or why it cannot be read).
#[derive(Default)]
pub struct Archive {
    pub segments: BTreeSet<Segment>,
    pub histories: BTreeMap<u32, Result<History, String>>,
}

/// `TTTTTTTT.history` (pgBackRest stores them uncompressed, as PostgreSQL
/// writes them): the timeline it describes.
fn history_timeline(name: &str) -> Option<u32> {
    let head = name.strip_suffix(".history")?;
    (head.len() == 8 && head.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(head, 16).ok())
        .flatten()
}

/// Parse a timeline history file: `parentTLI <tab> X/Y <tab> reason` per
/// line, `#` comments and blank lines skipped.
pub fn parse_history(text: &str) -> Result<History, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut parse = || -> Option<(u32, u64)> {
            let tli = fields.next()?.parse().ok()?;
            let (high, low) = fields.next()?.split_once('/')?;
            let lsn =
                (u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?;
            Some((tli, lsn))
        };
        out.push(parse().ok_or_else(|| format!("line {line:?} is not `TLI X/Y reason`"))?);
    }
    Ok(out)
}

/// Every segment and history file found in `dir` and, `depth` levels
/// down, its subdirectories (pgBackRest keeps
/// `archive/STANZA/VERSION/XXXXXXXXXXXXXXXX/`, history files one level up).
pub fn collect(dir: &Path, depth: u32, segment_size: u64, out: &mut Archive) {
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
        } else if let Some(timeline) = history_timeline(&name) {
            // A history file is a few lines per promotion; refuse a huge one.
            let text = match entry.metadata() {
                Ok(m) if m.len() > 1 << 20 => Err(format!("{name} is larger than 1 MiB")),
                _ => std::fs::read_to_string(entry.path()).map_err(|e| format!("{name}: {e}")),
            };
            let history = text.and_then(|t| parse_history(&t).map_err(|e| format!("{name}: {e}")));
            out.histories.insert(timeline, history);
        } else if let Some(segment) = Segment::parse(&name, segment_size) {
            out.segments.insert(segment);
        }
    }
}

/// What the archive holds after `start`.
pub struct Continuity {
    /// The newest segment archived on the path of timelines recovery takes.
    pub newest: Option<Segment>,
    /// Segments (with the timeline recovery reads them from) missing
    /// between start and newest, at most 1000.
    pub missing: Vec<Segment>,
    /// Why the timelines cannot be followed: history files missing or
    /// unreadable, a backup's timeline that is no ancestor of the newest.
    pub history_problems: Vec<String>,
    /// The timelines followed, with the first segment number read from each.
    pub path: Vec<(u32, u64)>,
}

/// The timelines recovery follows from `start` to `newest_timeline`, each
/// with the first segment read from it, or why it cannot be known.
fn timeline_path(
    archive: &Archive,
    start: Segment,
    newest_timeline: u32,
    segment_size: u64,
) -> Result<Vec<(u32, u64)>, String> {
    if newest_timeline == start.timeline {
        return Ok(vec![(start.timeline, start.number)]);
    }
    let file = format!("{newest_timeline:08X}.history");
    let history = match archive.histories.get(&newest_timeline) {
        None => {
            return Err(format!(
                "{file} is missing from the archive: segments of timeline {newest_timeline} \
                 exist, but recovery cannot tell where it branched off (it would follow \
                 timeline {} on)",
                start.timeline
            ));
        }
        Some(Err(e)) => return Err(format!("{file} cannot be read: {e}")),
        Some(Ok(h)) => h,
    };
    // Timeline i is read from the segment its parent was left in on.
    let mut path = Vec::new();
    let mut begin = 0;
    for &(tli, switch) in history {
        path.push((tli, begin));
        begin = switch / segment_size.max(1);
    }
    path.push((newest_timeline, begin));
    let Some(at) = path.iter().position(|&(tli, _)| tli == start.timeline) else {
        return Err(format!(
            "the backup's timeline {} is not in {file} (timelines {}): the archive's newest \
             timeline does not descend from the backup",
            start.timeline,
            path.iter()
                .map(|(t, _)| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let mut path = path.split_off(at);
    path[0].1 = path[0].1.max(start.number);
    Ok(path)
}

/// Segments missing from `start` to the newest archived segment, on the
/// path of timelines recovery follows (see the module's doc).
pub fn continuity(archive: &Archive, start: Segment, segment_size: u64) -> Continuity {
    let segments = &archive.segments;
    let newest_timeline = segments
        .iter()
        .filter(|s| s.timeline >= start.timeline && s.number >= start.number)
        .map(|s| s.timeline)
        .chain(
            archive
                .histories
                .keys()
                .copied()
                .filter(|&t| t > start.timeline),
        )
        .max()
        .unwrap_or(start.timeline);
    let mut history_problems = Vec::new();
    let path = match timeline_path(archive, start, newest_timeline, segment_size) {
        Ok(path) => path,
        Err(problem) => {
            history_problems.push(problem);
            // Without the history: judge the backup's timeline alone.
            vec![(start.timeline, start.number)]
        }
    };
    // Intermediate timelines need their own history files too: a restore
    // to a point on one of them reads it.
    for &(tli, _) in path.iter().skip(1) {
        if tli != newest_timeline && !archive.histories.contains_key(&tli) {
            history_problems.push(format!("{tli:08X}.history is missing from the archive"));
        }
    }
    let on_path = |n: u64| {
        path.iter()
            .rev()
            .find(|&&(_, begin)| begin <= n)
            .map(|&(tli, _)| tli)
    };
    let newest = segments
        .iter()
        .filter(|s| s.number >= start.number && on_path(s.number) == Some(s.timeline))
        .max_by_key(|s| s.number)
        .copied();
    let last = newest.map_or(start.number, |s| s.number);
    let missing = (start.number..=last)
        .filter_map(|number| {
            let timeline = on_path(number)?;
            let wanted = Segment { timeline, number };
            (!segments.contains(&wanted)).then_some(wanted)
        })
        .take(1000)
        .collect();
    Continuity {
        newest,
        missing,
        history_problems,
        path,
    }
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

    fn archive(segments: &[(u32, u64)], histories: &[(u32, &str)]) -> Archive {
        Archive {
            segments: segments
                .iter()
                .map(|&(timeline, number)| Segment { timeline, number })
                .collect(),
            histories: histories
                .iter()
                .map(|&(t, text)| (t, parse_history(text)))
                .collect(),
        }
    }

    const TL1: Segment = Segment {
        timeline: 1,
        number: 2,
    };

    #[test]
    fn gaps_are_found() {
        let a = archive(&[(1, 2), (1, 3), (1, 5), (1, 6)], &[]);
        let c = continuity(&a, TL1, MB16);
        assert_eq!(
            c.missing,
            vec![Segment {
                timeline: 1,
                number: 4
            }]
        );
        assert_eq!(c.newest.unwrap().number, 6);
        assert!(c.history_problems.is_empty());
    }

    /// Promoted in segment 4 (LSN 0/4000100): timeline 1 up to 3, timeline
    /// 2 from 4 on (its 4 holds the switch).
    const TL2: &str = "1\t0/4000100\tno recovery target specified\n";

    #[test]
    fn timelines_are_followed_from_the_switch_point() {
        let whole = archive(
            &[(1, 2), (1, 3), (1, 4), (2, 4), (2, 5), (2, 6)],
            &[(2, TL2)],
        );
        let c = continuity(&whole, TL1, MB16);
        assert_eq!(c.path, vec![(1, 2), (2, 4)]);
        assert!(c.missing.is_empty() && c.history_problems.is_empty());
        assert_eq!(
            c.newest,
            Some(Segment {
                timeline: 2,
                number: 6
            })
        );
        // Timeline 2's segment 5 deleted, timeline 1's segment 5 present
        // (the old primary went on writing): missing all the same.
        let gap = archive(
            &[(1, 2), (1, 3), (1, 4), (1, 5), (2, 4), (2, 6)],
            &[(2, TL2)],
        );
        let c = continuity(&gap, TL1, MB16);
        assert_eq!(
            c.missing,
            vec![Segment {
                timeline: 2,
                number: 5
            }]
        );
    }

    #[test]
    fn a_missing_history_file_is_reported() {
        let a = archive(&[(1, 2), (1, 3), (2, 4), (2, 5)], &[]);
        let c = continuity(&a, TL1, MB16);
        assert_eq!(c.history_problems.len(), 1, "{:?}", c.history_problems);
        assert!(c.history_problems[0].starts_with("00000002.history is missing"));
        // Three timelines, the middle one's history gone.
        let tl3 = "1\t0/4000100\tx\n2\t0/6000000\ty\n";
        let a = archive(&[(1, 2), (1, 3), (2, 4), (2, 5), (3, 6)], &[(3, tl3)]);
        let c = continuity(&a, TL1, MB16);
        assert_eq!(c.path, vec![(1, 2), (2, 4), (3, 6)]);
        assert_eq!(
            c.history_problems,
            vec!["00000002.history is missing from the archive"]
        );
        // A backup on a timeline the newest does not descend from.
        let other = Segment {
            timeline: 4,
            number: 2,
        };
        let a = archive(&[(4, 2), (5, 3)], &[(5, "3\t0/3000000\tz\n")]);
        let c = continuity(&a, other, MB16);
        assert!(
            c.history_problems[0].contains("is not in 00000005.history"),
            "{:?}",
            c.history_problems
        );
        assert!(parse_history("1 nonsense").is_err());
    }
}
