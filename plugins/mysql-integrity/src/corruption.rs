//! Which error-log lines tell of corruption, when they were written, and
//! which table they name: plain text work on MariaDB's and MySQL's error
//! log formats, kept apart from the file reading so it can be tested
//! without a server.
//!
//! Line formats understood:
//! - MariaDB 10.x: `2026-12-06 19:38:05 0 [ERROR] InnoDB: ...` (local
//!   time; the hour may be space-padded);
//! - MariaDB 5.5/10.0 and MySQL 5.x: `161213 10:02:01 [ERROR] ...`;
//! - MySQL 5.7/8.x: `2026-12-06T19:38:05.123456Z 0 [ERROR] [MY-011906]
//!   [InnoDB] ...` (UTC with `Z`; `log_timestamps = SYSTEM` writes an
//!   offset instead, read as local time).

/// Phrases (lower case) of an `[ERROR]` line that mean damaged data: the
/// InnoDB page checks (a checksum that does not match, a page LSN ahead of
/// the redo log, a failed page read) and the engines' own "corrupt" /
/// "crashed" verdicts.
const PHRASES: [&str; 9] = [
    "page corruption",
    "index corruption",
    "checksum mismatch",
    "is in the future",
    "is corrupted",
    "looks corrupted",
    "corrupt page",
    "corruption in the innodb tablespace",
    "marked as crashed",
];

/// When a line was written, as the log says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `YYYY-MM-DD HH:MM:SS`, zero-padded (compares as text).
    pub text: String,
    /// True when the log wrote it in UTC (`...Z`), else the server's local
    /// time.
    pub utc: bool,
}

/// The timestamp a line starts with, if any.
pub fn stamp(line: &str) -> Option<Stamp> {
    let line = line.trim_start();
    let bytes = line.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    // `YYYY-MM-DD` then `T` or one space, then `H:MM:SS` (hour maybe padded).
    if digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10)
    {
        let separator = *bytes.get(10)?;
        if separator != b'T' && separator != b' ' {
            return None;
        }
        let (clock, rest) = clock(&line[11..])?;
        let utc = separator == b'T' && zulu(rest);
        return Some(Stamp {
            text: format!("{} {clock}", &line[..10]),
            utc,
        });
    }
    // `YYMMDD` then spaces then `H:MM:SS`.
    if digits(0..6) && bytes.get(6) == Some(&b' ') {
        let (clock, _) = clock(&line[7..])?;
        return Some(Stamp {
            text: format!("20{}-{}-{} {clock}", &line[0..2], &line[2..4], &line[4..6]),
            utc: false,
        });
    }
    None
}

/// `H:MM:SS` or ` H:MM:SS` or `HH:MM:SS` at the start of `text`,
/// zero-padded, and what follows it.
fn clock(text: &str) -> Option<(String, &str)> {
    let trimmed = text.trim_start_matches(' ');
    let hour_len = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=2).contains(&hour_len) {
        return None;
    }
    let rest = &trimmed[hour_len..];
    let b = rest.as_bytes();
    let ok = b.len() >= 6
        && b[0] == b':'
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3] == b':'
        && b[4..6].iter().all(u8::is_ascii_digit);
    if !ok {
        return None;
    }
    Some((
        format!("{:0>2}{}", &trimmed[..hour_len], &rest[..6]),
        &rest[6..],
    ))
}

/// After the seconds of an ISO stamp: fractions then `Z`.
fn zulu(rest: &str) -> bool {
    let rest = rest
        .strip_prefix('.')
        .map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
    rest.starts_with('Z')
}

/// True when `line` is an error line telling of corruption.
pub fn is_corruption(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    lower.contains("[error]") && PHRASES.iter().any(|p| lower.contains(p))
}

/// What a corruption line names, most precise first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Named {
    /// `` `db`.`table` ``, from a data file path or a quoted name.
    Table(String),
    /// An InnoDB tablespace id (`space=N`), to be looked up.
    Space(u64),
    /// Nothing in the line says which.
    Unnamed,
}

/// The table (or tablespace) a corruption line names.
pub fn named(line: &str) -> Named {
    if let Some(table) = data_file(line) {
        return Named::Table(table);
    }
    if let Some(table) = quoted_table(line) {
        return Named::Table(table);
    }
    if let Some(at) = line.find("space=") {
        let digits: String = line[at + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(space) = digits.parse() {
            return Named::Space(space);
        }
    }
    Named::Unnamed
}

/// `./db/table.ibd` (or `.frm`, `.MYD`, `.MAI`...) in the line, as
/// `` `db`.`table` ``; a partition's file names its table.
fn data_file(line: &str) -> Option<String> {
    for word in line.split(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == ',') {
        let word = word.trim_end_matches(['.', ';', ':']);
        let Some((path, ext)) = word.rsplit_once('.') else {
            continue;
        };
        if !matches!(
            ext.to_ascii_lowercase().as_str(),
            "ibd" | "myd" | "myi" | "mad" | "mai" | "frm"
        ) {
            continue;
        }
        let mut parts = path.rsplit('/');
        let (Some(table), Some(db)) = (parts.next(), parts.next()) else {
            continue;
        };
        if table.is_empty() || db.is_empty() || db == "." {
            continue;
        }
        let table = table.split("#P#").next().unwrap_or(table);
        let table = table.split("#p#").next().unwrap_or(table);
        return Some(quoted(db, table));
    }
    None
}

/// `` `db`.`table` `` written in the line.
fn quoted_table(line: &str) -> Option<String> {
    let start = line.find('`')?;
    let rest = &line[start + 1..];
    let db_end = rest.find('`')?;
    let db = &rest[..db_end];
    let rest = rest[db_end + 1..].strip_prefix(".`")?;
    let table_end = rest.find('`')?;
    Some(quoted(db, &rest[..table_end]))
}

/// `` `db`.`table` `` from an InnoDB tablespace name `db/table`.
pub fn from_space_name(name: &str) -> Option<String> {
    let (db, table) = name.split_once('/')?;
    let table = table.split("#P#").next().unwrap_or(table);
    Some(quoted(db, table))
}

fn quoted(db: &str, table: &str) -> String {
    format!("`{}`.`{}`", db.replace('`', "``"), table.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "2026-12-06 19:38:05 3 [ERROR] InnoDB: Database page corruption on disk or a \
        failed read of file './app/damaged.ibd' page [page id: space=6, page number=4]. You may \
        have to recover from a backup.";

    #[test]
    fn stamps_of_each_format() {
        assert_eq!(
            stamp(PAGE),
            Some(Stamp {
                text: "2026-12-06 19:38:05".into(),
                utc: false
            })
        );
        assert_eq!(
            stamp("2026-12-06  9:08:05 0 [Note] x").unwrap().text,
            "2026-12-06 09:08:05"
        );
        assert_eq!(
            stamp("2026-12-06T19:38:05.123456Z 0 [ERROR] [MY-011906] [InnoDB] x"),
            Some(Stamp {
                text: "2026-12-06 19:38:05".into(),
                utc: true
            })
        );
        assert!(
            !stamp("2026-12-06T19:38:05.123456+01:00 0 [ERROR] x")
                .unwrap()
                .utc
        );
        assert_eq!(
            stamp("161213 10:02:01 [ERROR] x").unwrap().text,
            "2016-12-13 10:02:01"
        );
        assert_eq!(stamp("InnoDB: Page dump in ascii and hex"), None);
        assert_eq!(stamp(""), None);
        assert_eq!(stamp("2026-12-06"), None);
    }

    #[test]
    fn corruption_lines_and_what_they_name() {
        assert!(is_corruption(PAGE));
        assert_eq!(named(PAGE), Named::Table("`app`.`damaged`".into()));
        let future = "2026-12-06 19:38:05 0 [ERROR] InnoDB: Page [page id: space=12, page \
            number=3] log sequence number 99999 is in the future! Current system log sequence \
            number 1234.";
        assert!(is_corruption(future));
        assert_eq!(named(future), Named::Space(12));
        let mysql = "2026-12-06T19:38:05.1Z 0 [ERROR] [MY-011906] [InnoDB] Database page \
            corruption on disk or a failed read of file './shop/orders#P#p1.ibd' page";
        assert!(is_corruption(mysql));
        assert_eq!(named(mysql), Named::Table("`shop`.`orders`".into()));
        // MariaDB 10.11's own words for a flipped byte in page 4.
        for seen in [
            "2026-12-06 19:44:47 4 [ERROR] InnoDB: Failed to read page 4 from file \
             './app/damaged.ibd': Page read from tablespace is corrupted.",
            "2026-12-06 19:44:47 0 [ERROR] InnoDB: File './app/damaged.ibd' is corrupted",
        ] {
            assert!(is_corruption(seen), "{seen}");
            assert_eq!(named(seen), Named::Table("`app`.`damaged`".into()));
        }
        let checksum = "2026-12-06 19:38:05 0 [ERROR] InnoDB: checksum mismatch in tablespace";
        assert!(is_corruption(checksum));
        assert_eq!(named(checksum), Named::Unnamed);
        let crashed = "2026-12-06 19:38:05 5 [ERROR] mariadbd: Table `app`.`log` is marked as \
            crashed and should be repaired";
        assert_eq!(named(crashed), Named::Table("`app`.`log`".into()));
        // Not errors, or not corruption.
        assert!(!is_corruption(
            "2026-12-06 19:38:05 0 [Note] InnoDB: checksum mismatch resolved"
        ));
        assert!(!is_corruption(
            "2026-12-06 19:38:05 0 [ERROR] Aborted connection 5 to db: 'app'"
        ));
        assert_eq!(from_space_name("app/t#P#p0"), Some("`app`.`t`".into()));
        assert_eq!(from_space_name("innodb_system"), None);
    }
}
