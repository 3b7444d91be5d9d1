//! Human-readable durations (`500ms`, `5s`, `1m30s`) and sizes (`32MiB`),
//! and the range each kind of config key allows.
//!
//! Every duration and size the config accepts is bounded here, in one
//! place: an `every` of a microsecond busy-loops, a `timeout` of a million
//! years never ends a run, a `cooldown` past the end of time overflows the
//! clock. Validation refuses them at the key's `FILE:LINE:COL`, so nothing
//! at run time has to cope with them. The parser itself refuses anything
//! longer than [`PARSE_LIMIT`], so that no parsed duration can overflow an
//! `Instant` or a `SystemTime`.

use std::fmt;
use std::time::Duration;

/// What a valid duration looks like, for error messages.
pub const DURATION_HINT: &str =
    "write a number and a unit: ms, s, m, h or d (e.g. \"500ms\", \"5s\", \"1m30s\")";

/// What a valid size looks like, for error messages.
pub const SIZE_HINT: &str =
    "write a number and a unit: B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB) (e.g. \"32MiB\")";

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// The longest duration the parser accepts at all (100 years): anything
/// longer is an error, never a saturated or overflowing value.
pub const PARSE_LIMIT: Duration = days(36_500);

/// Schedules and deadlines, 10 ms to 30 days: `every`, a probe's and an
/// action's `timeout`, a failover's `write_within`, `verify.within`, the
/// OTLP `interval` and `timeout`, and `watchpost check --timeout`.
pub const SCHEDULE: DurationRange = DurationRange::new(Duration::from_millis(10), days(30));

/// How long something is held back, 0 (not at all) to 365 days:
/// `cooldown`, a failover's `block_for`, and pauses (`watchpost pause --for`).
pub const HOLD: DurationRange = DurationRange::new(Duration::ZERO, days(365));

/// How often soft state is written, 10 ms to 10 minutes: `state_flush`.
pub const STATE_FLUSH: DurationRange =
    DurationRange::new(Duration::from_millis(10), Duration::from_secs(600));

/// Rate-limit windows, 10 ms to 365 days: `limit.per`.
pub const WINDOW: DurationRange = DurationRange::new(Duration::from_millis(10), days(365));

/// The largest linear memory any probe may be configured to use.
pub const MAX_PROBE_MEMORY: u64 = GIB;

/// A probe's `memory` (and `watchpost check --memory`): one WebAssembly
/// page (64 KiB) to [`MAX_PROBE_MEMORY`].
pub const PROBE_MEMORY: SizeRange = SizeRange::new(64 * KIB, MAX_PROBE_MEMORY);

/// `[agent] memory_budget`, the sum of the memory caps of the runs in
/// flight: 1 MiB to 1 TiB.
pub const MEMORY_BUDGET: SizeRange = SizeRange::new(MIB, TIB);

/// `[agent] cache_size`, the compile cache's bound: 1 byte (keep nothing
/// worth mentioning) to 1 TiB.
pub const CACHE_SIZE: SizeRange = SizeRange::new(1, TIB);

/// The durations one kind of key allows, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
}

impl DurationRange {
    pub const fn new(min: Duration, max: Duration) -> Self {
        DurationRange { min, max }
    }

    pub fn contains(&self, duration: Duration) -> bool {
        (self.min..=self.max).contains(&duration)
    }

    /// `text` as a duration within this range, or what to write instead.
    pub fn parse(&self, text: &str) -> Result<Duration, UnitError> {
        match read_duration(text) {
            Ok(duration) if self.contains(duration) => Ok(duration),
            Ok(_) | Err(DurationError::TooLong) => Err(UnitError::OutOfRange {
                hint: self.to_string(),
            }),
            Err(DurationError::Syntax) => Err(UnitError::NotADuration),
        }
    }
}

impl fmt::Display for DurationRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write a duration from {} to {}",
            format_duration(self.min),
            format_duration(self.max)
        )
    }
}

/// The sizes one kind of key allows, in bytes, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeRange {
    pub min: u64,
    pub max: u64,
}

impl SizeRange {
    pub const fn new(min: u64, max: u64) -> Self {
        SizeRange { min, max }
    }

    pub fn contains(&self, size: u64) -> bool {
        (self.min..=self.max).contains(&size)
    }

    /// `text` as a size within this range, or what to write instead.
    pub fn parse(&self, text: &str) -> Result<u64, UnitError> {
        match read_size(text) {
            Ok(size) if self.contains(size) => Ok(size),
            Ok(_) | Err(SizeError::TooLarge) => Err(UnitError::OutOfRange {
                hint: self.to_string(),
            }),
            Err(SizeError::Syntax) => Err(UnitError::NotASize),
        }
    }
}

impl fmt::Display for SizeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write a size from {} to {}",
            format_size(self.min),
            format_size(self.max)
        )
    }
}

/// Why a text is not a value within a [`DurationRange`] or a
/// [`SizeRange`]; the message says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Well formed, but outside the range; `hint` is the range's own
    /// words ("write a duration from 10ms to 30d").
    #[error("out of range: {hint}")]
    OutOfRange { hint: String },
    #[error("not a duration; {}", DURATION_HINT)]
    NotADuration,
    #[error("not a size; {}", SIZE_HINT)]
    NotASize,
}

/// Why a text is not a duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationError {
    /// Not a number and a unit.
    Syntax,
    /// Longer than [`PARSE_LIMIT`].
    TooLong,
}

/// Why a text is not a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeError {
    /// Not a number and a unit.
    Syntax,
    /// More bytes than a `u64` holds.
    TooLarge,
}

/// Parse `500ms`, `5s`, `2m`, `1h`, `1d`, or a sequence such as `1m30s`;
/// `None` for anything else, including durations over [`PARSE_LIMIT`].
pub fn parse_duration(text: &str) -> Option<Duration> {
    read_duration(text).ok()
}

/// [`parse_duration`], telling a malformed text from one too long.
/// Computed in whole nanoseconds with checked arithmetic: no input can
/// overflow, panic or be silently saturated.
pub fn read_duration(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Syntax);
    }
    let limit = PARSE_LIMIT.as_nanos();
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let scale: u128 = match &rest[..unit_len] {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return Err(DurationError::Syntax),
        };
        rest = &rest[unit_len..];
        let nanos = scaled(number, scale)?;
        total = total.checked_add(nanos).ok_or(DurationError::TooLong)?;
        if total > limit {
            return Err(DurationError::TooLong);
        }
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::TooLong)?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// `number` (digits with at most one `.`) times `scale` nanoseconds,
/// rounded down to a whole nanosecond.
fn scaled(number: &str, scale: u128) -> Result<u128, DurationError> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(DurationError::Syntax);
    }
    let mut nanos: u128 = 0;
    for digit in whole.bytes() {
        nanos = nanos
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(digit - b'0')))
            .ok_or(DurationError::TooLong)?;
        if nanos > PARSE_LIMIT.as_nanos() {
            return Err(DurationError::TooLong);
        }
    }
    let mut nanos = nanos.checked_mul(scale).ok_or(DurationError::TooLong)?;
    // Digits past the 20th are below a nanosecond for every unit.
    let mut place = scale;
    for digit in fraction.bytes().take(20) {
        place /= 10;
        nanos += place * u128::from(digit - b'0');
    }
    Ok(nanos)
}

/// Parse `32MiB`, `512 KiB`, `1GB`, or a plain number of bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    read_size(text).ok()
}

/// [`parse_size`], telling a malformed text from one too large.
pub fn read_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number: f64 = text[..number_len].parse().map_err(|_| SizeError::Syntax)?;
    let scale: f64 = match text[number_len..].trim() {
        "" | "B" => 1.0,
        "KiB" => KIB as f64,
        "MiB" => MIB as f64,
        "GiB" => GIB as f64,
        "TiB" => TIB as f64,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return Err(SizeError::Syntax),
    };
    let bytes = number * scale;
    if !bytes.is_finite() || bytes < 0.0 {
        return Err(SizeError::Syntax);
    }
    if bytes >= u64::MAX as f64 {
        return Err(SizeError::TooLarge);
    }
    Ok(bytes as u64)
}

/// `1m30s`-style rendering, the inverse of [`parse_duration`] for whole
/// milliseconds.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// `64KiB`-style rendering in the largest binary unit that divides the
/// size exactly, the inverse of [`parse_size`].
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// `1.5 MiB`-style rendering of a byte count (rounded, for messages).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0.001ms"), Some(Duration::from_micros(1)));
        assert_eq!(parse_duration(".5s"), Some(Duration::from_millis(500)));
        for bad in [
            "", "5", "5 s", "s", "5sec", "-1s", "1m30", ".s", "1.2.3s", "1..5s",
        ] {
            assert_eq!(read_duration(bad), Err(DurationError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn durations_too_long_are_errors_not_panics() {
        for long in [
            "200000000000000d",
            "36501d",
            "99999999999999999999999999999999999999999999999s",
            "36500d1ms",
        ] {
            assert_eq!(read_duration(long), Err(DurationError::TooLong), "{long:?}");
        }
        assert_eq!(read_duration("36500d"), Ok(PARSE_LIMIT));
        assert!(std::time::Instant::now().checked_add(PARSE_LIMIT).is_some());
        assert!(
            std::time::SystemTime::now()
                .checked_add(PARSE_LIMIT)
                .is_some()
        );
    }

    #[test]
    fn ranges_name_their_bounds() {
        assert_eq!(SCHEDULE.to_string(), "write a duration from 10ms to 30d");
        assert_eq!(HOLD.to_string(), "write a duration from 0s to 365d");
        assert_eq!(PROBE_MEMORY.to_string(), "write a size from 64KiB to 1GiB");
        assert_eq!(SCHEDULE.parse("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(SCHEDULE.parse("30d"), Ok(days(30)));
        assert_eq!(HOLD.parse("0s"), Ok(Duration::ZERO));
        assert_eq!(HOLD.parse("365d"), Ok(days(365)));
        for out in ["9ms", "0.001ms", "30d1ms", "200000000000000d"] {
            let error = SCHEDULE.parse(out).unwrap_err();
            assert_eq!(
                error.to_string(),
                "out of range: write a duration from 10ms to 30d"
            );
        }
        assert_eq!(SCHEDULE.parse("soon"), Err(UnitError::NotADuration));
        assert!(
            SCHEDULE
                .parse("soon")
                .unwrap_err()
                .to_string()
                .starts_with("not a duration; ")
        );
        assert_eq!(PROBE_MEMORY.parse("many"), Err(UnitError::NotASize));
        assert_eq!(PROBE_MEMORY.parse("1GiB"), Ok(GIB));
        for out in ["2GiB", "99999999999999999999999GiB"] {
            assert!(
                matches!(PROBE_MEMORY.parse(out), Err(UnitError::OutOfRange { .. })),
                "{out}"
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32MiB"), Some(32 << 20));
        assert_eq!(parse_size("512 KiB"), Some(512 << 10));
        assert_eq!(parse_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_size("4096"), Some(4096));
        for bad in ["", "MiB", "32 megs", "-1MiB"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(
            read_size("99999999999999999999GiB"),
            Err(SizeError::TooLarge)
        );
    }

    #[test]
    fn durations_round_trip() {
        for text in ["500ms", "5s", "1m30s", "1h", "1d2h"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        for text in ["1B", "64KiB", "32MiB", "1GiB", "1TiB", "1025B"] {
            assert_eq!(format_size(parse_size(text).unwrap()), text);
        }
    }

    #[test]
    fn bytes_render_readably() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(32 << 20), "32.0 MiB");
    }
}
