//! The probe's settings (`config = { ... }` in the agent config, or
//! `--set KEY=VALUE` on `watchpost check`), parsed into Rust types with
//! errors that say which key is wrong and what to write instead.

use crate::bindings::watchpost::probe::config as wit;
use crate::{Error, Result};
use std::time::Duration;

/// A type a config value can be parsed into.
pub trait FromConfig: Sized {
    /// What a valid value looks like, for error messages (e.g. `a number such as "85"`).
    const EXPECTED: &'static str;
    /// Parse the raw string; `None` if it is not valid.
    fn parse(raw: &str) -> Option<Self>;
}

macro_rules! from_str_config {
    ($($ty:ty => $expected:literal),* $(,)?) => {$(
        impl FromConfig for $ty {
            const EXPECTED: &'static str = $expected;
            fn parse(raw: &str) -> Option<Self> {
                raw.trim().parse().ok()
            }
        }
    )*};
}

from_str_config! {
    f64 => "a number such as \"85\" or \"0.5\"",
    u64 => "a whole number such as \"3\"",
    u32 => "a whole number such as \"3\"",
    usize => "a whole number such as \"3\"",
    i64 => "a whole number such as \"-3\"",
}

impl FromConfig for String {
    const EXPECTED: &'static str = "text";
    fn parse(raw: &str) -> Option<Self> {
        Some(raw.to_string())
    }
}

impl FromConfig for bool {
    const EXPECTED: &'static str = "\"true\" or \"false\"";
    fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        }
    }
}

impl FromConfig for Duration {
    const EXPECTED: &'static str = "a duration such as \"500ms\", \"5s\" or \"2m\"";
    fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let split = raw.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, unit) = raw.split_at(split);
        let number: f64 = number.parse().ok()?;
        let seconds = match unit.trim() {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        Duration::try_from_secs_f64(seconds).ok()
    }
}

/// The raw value of `key`, if set.
pub fn raw(key: &str) -> Option<String> {
    wit::get(key)
}

/// The value of `key` parsed as `T`, or `None` if it is not set.
pub fn get<T: FromConfig>(key: &str) -> Result<Option<T>> {
    match wit::get(key) {
        None => Ok(None),
        Some(raw) => T::parse(&raw).map(Some).ok_or_else(|| {
            Error::msg(format!(
                "config `{key}` = {raw:?} is not valid: expected {}",
                T::EXPECTED
            ))
        }),
    }
}

/// The value of `key` parsed as `T`, or `default` if it is not set.
pub fn get_or<T: FromConfig>(key: &str, default: T) -> Result<T> {
    Ok(get(key)?.unwrap_or(default))
}

/// The value of `key` parsed as `T`; an error naming the key if it is not set.
pub fn require<T: FromConfig>(key: &str) -> Result<T> {
    get(key)?.ok_or_else(|| {
        Error::msg(format!(
            "config `{key}` is required: set it to {} (e.g. `--set {key}=...`)",
            T::EXPECTED
        ))
    })
}

/// A comma-separated list, trimmed, empty items dropped; empty if not set.
pub fn list(key: &str) -> Vec<String> {
    wit::get(key)
        .map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Every key/value pair, sorted by key.
pub fn entries() -> Vec<(String, String)> {
    wit::entries()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(Duration::parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(Duration::parse("2m"), Some(Duration::from_secs(120)));
        assert_eq!(Duration::parse("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(Duration::parse("5"), None);
        assert_eq!(Duration::parse("5 parsecs"), None);
    }

    #[test]
    fn booleans_parse() {
        assert_eq!(bool::parse("Yes"), Some(true));
        assert_eq!(bool::parse("off"), Some(false));
        assert_eq!(bool::parse("maybe"), None);
    }
}
