//! Conversion between [`Value`](super::Value) (the WIT `sql.value`) and
//! PostgreSQL's binary wire format: result cells of any type become a value (numbers and booleans as
//! such, everything else as its text form), and parameters bind to the
//! type PostgreSQL inferred for their placeholder.

use super::types::Value;
use bytes::BytesMut;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use postgres_types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use std::error::Error;
use std::fmt::Write as _;

type BoxError = Box<dyn Error + Sync + Send>;

/// One result cell, decoded from any column type.
pub struct Cell(pub Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        decode(ty, raw).map(Cell)
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    let value = match *ty {
        // Functions returning void (pg_sleep, bt_index_check) have no value.
        Type::VOID => Value::Null,
        Type::BOOL => Value::Boolean(bool::from_sql(ty, raw)?),
        Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
        Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
        Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
        Type::OID | Type::XID | Type::CID | Type::REGCLASS | Type::REGPROC | Type::REGTYPE => {
            Value::Int(u32::from_be_bytes(fixed(raw)?).into())
        }
        Type::XID8 => Value::Int(i64::from_be_bytes(fixed(raw)?)),
        Type::FLOAT4 => Value::Float(f32::from_sql(ty, raw)?.into()),
        Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
        Type::BYTEA => Value::Bytes(raw.to_vec()),
        Type::CHAR => Value::Text(char::from(raw.first().copied().unwrap_or(b' ')).to_string()),
        Type::NUMERIC => Value::Text(numeric_text(raw)?),
        Type::PG_LSN => {
            let lsn = u64::from_be_bytes(fixed(raw)?);
            Value::Text(format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff))
        }
        Type::INTERVAL => Value::Text(interval_text(raw)?),
        Type::TIMESTAMPTZ => Value::Text(DateTime::<Utc>::from_sql(ty, raw)?.to_rfc3339()),
        Type::TIMESTAMP => Value::Text(NaiveDateTime::from_sql(ty, raw)?.to_string()),
        Type::DATE => Value::Text(NaiveDate::from_sql(ty, raw)?.to_string()),
        Type::TIME => Value::Text(NaiveTime::from_sql(ty, raw)?.to_string()),
        Type::UUID => Value::Text(uuid_text(&fixed::<16>(raw)?)),
        Type::JSONB => {
            Value::Text(String::from_utf8_lossy(raw.get(1..).unwrap_or_default()).into_owned())
        }
        _ if is_textual(ty) => Value::Text(String::from_utf8_lossy(raw).into_owned()),
        _ => {
            return Err(format!(
                "the agent cannot pass a value of type {} to a probe; cast the column to text in \
                 the statement (e.g. `column::text`)",
                ty.name()
            )
            .into());
        }
    };
    Ok(value)
}

/// Types whose binary form is their UTF-8 text.
fn is_textual(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::UNKNOWN
            | Type::JSON
            | Type::XML
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

fn fixed<const N: usize>(raw: &[u8]) -> Result<[u8; N], BoxError> {
    raw.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", raw.len()).into())
}

/// PostgreSQL's binary NUMERIC (base-10000 digits) as decimal text.
/// Anything PostgreSQL cannot send (a negative count or scale, a digit
/// above 9999, a length that does not match, an unknown sign) is an
/// error, never a panic or an endless loop.
fn numeric_text(raw: &[u8]) -> Result<String, BoxError> {
    let word = |i: usize| -> Result<i16, BoxError> {
        Ok(i16::from_be_bytes(fixed(
            raw.get(i * 2..i * 2 + 2).ok_or("short numeric")?,
        )?))
    };
    let ndigits = usize::try_from(word(0)?).map_err(|_| "numeric: negative digit count")?;
    let weight = word(1)? as i32;
    let sign = word(2)? as u16;
    // PostgreSQL keeps the display scale in the low 14 bits (at most 16383).
    let dscale = usize::try_from(word(3)?).map_err(|_| "numeric: negative display scale")?;
    if dscale > 0x3FFF {
        return Err("numeric: display scale above 16383".into());
    }
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        other => return Err(format!("numeric: unknown sign {other:#06x}").into()),
    }
    if raw.len() != 8 + 2 * ndigits {
        return Err(format!(
            "numeric: {} bytes for {ndigits} digits (expected {})",
            raw.len(),
            8 + 2 * ndigits
        )
        .into());
    }
    let digits = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<Vec<_>, _>>()?;
    if digits.iter().any(|d| !(0..10_000).contains(d)) {
        return Err("numeric: a base-10000 digit out of range".into());
    }
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    // Integer part: digit groups with weight >= 0, without leading zeros.
    let mut int = String::new();
    if weight >= 0 {
        for i in 0..=weight as usize {
            write!(int, "{:04}", digits.get(i).copied().unwrap_or(0))?;
        }
    }
    let int = int.trim_start_matches('0');
    text.push_str(if int.is_empty() { "0" } else { int });
    if dscale > 0 {
        let mut fraction = String::new();
        let mut position = weight + 1;
        while fraction.len() < dscale {
            let group = if position < 0 {
                0
            } else {
                digits.get(position as usize).copied().unwrap_or(0)
            };
            write!(fraction, "{group:04}")?;
            position += 1;
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

/// PostgreSQL's binary INTERVAL as `1 year 2 mons 3 days 04:05:06.5`.
fn interval_text(raw: &[u8]) -> Result<String, BoxError> {
    let micros = i64::from_be_bytes(fixed(raw.get(0..8).ok_or("short interval")?)?);
    let days = i32::from_be_bytes(fixed(raw.get(8..12).ok_or("short interval")?)?);
    let months = i32::from_be_bytes(fixed(raw.get(12..16).ok_or("short interval")?)?);
    let mut parts = Vec::new();
    let (years, months) = (months / 12, months % 12);
    let plural = |n: i32, one: &str, many: &str| {
        format!("{n} {}", if n.unsigned_abs() == 1 { one } else { many })
    };
    if years != 0 {
        parts.push(plural(years, "year", "years"));
    }
    if months != 0 {
        parts.push(plural(months, "mon", "mons"));
    }
    if days != 0 {
        parts.push(plural(days, "day", "days"));
    }
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 { "-" } else { "" };
        let micros = micros.unsigned_abs();
        let (hours, rest) = (micros / 3_600_000_000, micros % 3_600_000_000);
        let (minutes, rest) = (rest / 60_000_000, rest % 60_000_000);
        let (seconds, fraction) = (rest / 1_000_000, rest % 1_000_000);
        let mut clock = format!("{sign}{hours:02}:{minutes:02}:{seconds:02}");
        if fraction != 0 {
            let digits = format!("{fraction:06}");
            clock.push('.');
            clock.push_str(digits.trim_end_matches('0'));
        }
        parts.push(clock);
    }
    Ok(parts.join(" "))
}

fn uuid_text(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A probe's parameter, bound to whatever type the placeholder has when a
/// lossless conversion exists.
#[derive(Debug)]
pub struct Param<'a>(pub &'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let mismatch = || -> BoxError {
            format!(
                "a {} parameter cannot bind to a placeholder of type {}; cast the placeholder in \
                 the statement (e.g. `$1::text::{}`)",
                value_kind(self.0),
                ty.name(),
                ty.name()
            )
            .into()
        };
        match (self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Boolean(b), &Type::BOOL) => b.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::OID) => u32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (Value::Int(i), &Type::NUMERIC) => numeric_from_decimal(&i.to_string(), out),
            (Value::Float(f), &Type::NUMERIC) if f.is_finite() => {
                numeric_from_decimal(&f.to_string(), out)
            }
            (Value::Text(s), &Type::NUMERIC) => numeric_from_decimal(s.trim(), out),
            (Value::Int(i), t) if is_textual(t) => i.to_string().to_sql(&Type::TEXT, out),
            (Value::Float(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Float(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Float(f), t) if is_textual(t) => f.to_string().to_sql(&Type::TEXT, out),
            (Value::Text(s), t) if is_textual(t) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Bytes(b), &Type::BYTEA) => b.to_sql(ty, out),
            _ => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Encode a plain decimal (`-12.340`, no exponent) as PostgreSQL's binary
/// NUMERIC: base-10000 digit groups around the decimal point.
fn numeric_from_decimal(text: &str, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    let invalid = || -> BoxError { format!("{text:?} is not a decimal number").into() };
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(invalid());
    }
    let group = |chunk: &[u8]| -> i16 {
        chunk
            .iter()
            .fold(0i16, |acc, digit| acc * 10 + i16::from(digit - b'0'))
    };
    // Pad the integer part on the left and the fraction on the right to
    // whole groups of four digits.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_digits: Vec<u8> = std::iter::repeat_n(b'0', int_pad)
        .chain(int_part.bytes())
        .collect();
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_digits: Vec<u8> = frac_part
        .bytes()
        .chain(std::iter::repeat_n(b'0', frac_pad))
        .collect();
    let mut groups: Vec<i16> = int_digits
        .chunks(4)
        .chain(frac_digits.chunks(4))
        .map(group)
        .collect();
    let mut weight = i16::try_from(int_digits.len() / 4).map_err(|_| invalid())? - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= i16::try_from(leading).map_err(|_| invalid())?;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let ndigits = i16::try_from(groups.len()).map_err(|_| invalid())?;
    let dscale = i16::try_from(frac_part.len()).map_err(|_| invalid())?;
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(IsNull::No)
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for w in [ndigits, weight, sign as i16, dscale].iter().chain(digits) {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_render_as_postgres_does() {
        assert_eq!(
            numeric_text(&numeric(2, 1, 0, 0, &[12, 3456])).unwrap(),
            "123456"
        );
        assert_eq!(
            numeric_text(&numeric(2, 0, 0x4000, 2, &[3, 1400])).unwrap(),
            "-3.14"
        );
        assert_eq!(numeric_text(&numeric(1, -1, 0, 4, &[5])).unwrap(), "0.0005");
        assert_eq!(numeric_text(&numeric(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric_text(&numeric(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
    }

    #[test]
    fn decimals_encode_to_numerics_that_decode_back() {
        for text in [
            "0",
            "1",
            "-1",
            "12345678",
            "123456",
            "-3.14",
            "0.0005",
            "10000",
            "1.5",
            "0.000",
            "99999999999999999999.0001",
        ] {
            let mut out = BytesMut::new();
            numeric_from_decimal(text, &mut out).unwrap();
            assert_eq!(numeric_text(&out).unwrap(), text, "{text}");
        }
        let mut out = BytesMut::new();
        numeric_from_decimal("-0.10", &mut out).unwrap();
        assert_eq!(numeric_text(&out).unwrap(), "-0.10");
        for bad in ["", ".", "1e5", "abc", "1.2.3", "--1"] {
            assert!(
                numeric_from_decimal(bad, &mut BytesMut::new()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn intervals_render_as_postgres_does() {
        let interval = |micros: i64, days: i32, months: i32| {
            let mut raw = micros.to_be_bytes().to_vec();
            raw.extend_from_slice(&days.to_be_bytes());
            raw.extend_from_slice(&months.to_be_bytes());
            interval_text(&raw).unwrap()
        };
        assert_eq!(interval(0, 0, 0), "00:00:00");
        assert_eq!(interval(1_500_000, 0, 0), "00:00:01.5");
        assert_eq!(
            interval(3_723_000_000, 1, 14),
            "1 year 2 mons 1 day 01:02:03"
        );
    }

    /// The decimal text of base-10000 `digits` with `weight`, written the
    /// simple way: every decimal digit at its power of ten.
    fn reference(negative: bool, weight: i16, dscale: u16, digits: &[i16]) -> String {
        let mut decimal = std::collections::BTreeMap::new();
        for (i, d) in digits.iter().enumerate() {
            let group_exp = (weight as i64 - i as i64) * 4;
            for (k, c) in format!("{d:04}").chars().enumerate() {
                decimal.insert(group_exp + 3 - k as i64, c);
            }
        }
        let top = decimal.keys().next_back().copied().unwrap_or(0).max(0);
        let mut int: String = (0..=top)
            .rev()
            .map(|e| decimal.get(&e).copied().unwrap_or('0'))
            .collect();
        let trimmed = int.trim_start_matches('0');
        int = if trimmed.is_empty() {
            "0".into()
        } else {
            trimmed.into()
        };
        let frac: String = (1..=dscale as i64)
            .map(|e| decimal.get(&-e).copied().unwrap_or('0'))
            .collect();
        let mut text = if negative { format!("-{int}") } else { int };
        if dscale > 0 {
            text.push('.');
            text.push_str(&frac);
        }
        text
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        #[test]
        fn any_bytes_of_any_type_decode_without_panic(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            for ty in [Type::NUMERIC, Type::PG_LSN, Type::INTERVAL, Type::UUID, Type::TIMESTAMPTZ,
                       Type::DATE, Type::INT8, Type::FLOAT8, Type::JSONB, Type::TEXT, Type::BOOL, Type::OID] {
                let _ = decode(&ty, &raw);
            }
        }

        #[test]
        fn any_numeric_header_decodes_or_errs_without_panic(
            ndigits in proptest::prelude::any::<i16>(),
            weight in proptest::prelude::any::<i16>(),
            sign in proptest::prelude::any::<u16>(),
            dscale in proptest::prelude::any::<i16>(),
            digits in proptest::collection::vec(proptest::prelude::any::<i16>(), 0..8),
        ) {
            let raw = numeric(ndigits, weight, sign, dscale, &digits);
            let _ = numeric_text(&raw);
        }

        #[test]
        fn valid_numerics_decode_like_the_reference(
            negative: bool,
            weight in -40i16..40,
            dscale in 0u16..200,
            digits in proptest::collection::vec(0i16..10_000, 0..12),
        ) {
            let sign = if negative { 0x4000 } else { 0 };
            let raw = numeric(digits.len() as i16, weight, sign, dscale as i16, &digits);
            let text = numeric_text(&raw).unwrap();
            proptest::prop_assert_eq!(text, reference(negative, weight, dscale, &digits));
        }

        #[test]
        fn lsns_and_intervals_of_any_value_render(
            lsn: u64, micros: i64, days: i32, months: i32,
        ) {
            let Value::Text(text) = decode(&Type::PG_LSN, &lsn.to_be_bytes()).unwrap() else {
                panic!("an LSN decodes to text");
            };
            let (hi, lo) = text.split_once('/').unwrap();
            let back = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
            proptest::prop_assert_eq!(back, lsn);
            let mut raw = micros.to_be_bytes().to_vec();
            raw.extend_from_slice(&days.to_be_bytes());
            raw.extend_from_slice(&months.to_be_bytes());
            proptest::prop_assert!(!interval_text(&raw).unwrap().is_empty());
        }
    }

    /// Found by the property above: a negative display scale looped
    /// without end (it became a huge unsigned number).
    #[test]
    fn a_negative_display_scale_is_an_error_not_an_endless_loop() {
        let e = numeric_text(&numeric(1, 0, 0, -1, &[5])).unwrap_err();
        assert!(e.to_string().contains("display scale"), "{e}");
        let e = numeric_text(&numeric(-1, 0, 0, 0, &[])).unwrap_err();
        assert!(e.to_string().contains("negative digit count"), "{e}");
    }

    /// Found by the property above: `i32::MIN` days overflowed `abs()`.
    #[test]
    fn the_most_negative_interval_renders() {
        let mut raw = i64::MIN.to_be_bytes().to_vec();
        raw.extend_from_slice(&i32::MIN.to_be_bytes());
        raw.extend_from_slice(&i32::MIN.to_be_bytes());
        let text = interval_text(&raw).unwrap();
        assert!(text.contains("-2147483648 days"), "{text}");
    }

    #[test]
    fn uuids_render_hyphenated() {
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(uuid_text(&bytes), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }
}
