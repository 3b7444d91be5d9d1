//! Which statements a read-only MariaDB/MySQL target runs for a probe.
//!
//! `START TRANSACTION READ ONLY` alone does not stop a write: a statement
//! can end that transaction and open a read-write one inside itself.
//! MariaDB runs compound statements outside stored programs (`BEGIN NOT
//! ATOMIC COMMIT; SET SESSION TRANSACTION READ WRITE; INSERT ...; END`
//! writes, checked on 10.11), `CALL` reaches procedures that commit, and
//! `SET STATEMENT max_statement_time = 0 FOR ...` lifts the server's bound.
//! So a read-only target runs only statements that start with a keyword
//! that can neither commit nor run other statements: `SELECT`, `WITH`,
//! `VALUES`, `TABLE`, `SHOW`, `EXPLAIN`, `DESCRIBE`/`DESC`, `CHECK`,
//! `CHECKSUM`, `DO` and `SET` (not `SET STATEMENT`; a session setting is
//! reset after the run). Leading comments and parentheses are skipped; a
//! leading executable comment (`/*! ... */`, `/*M! ... */`, whose text the
//! server runs) is refused.

/// First keywords a read-only target runs.
const ALLOWED: &[&str] = &[
    "SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "CHECK",
    "CHECKSUM", "DO", "SET",
];

/// The statement's first keyword (upper case) and the text after it,
/// skipping whitespace, comments and opening parentheses; an error for a
/// leading executable comment.
fn first_keyword(statement: &str) -> Result<(String, &str), String> {
    let mut rest = statement;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if rest.starts_with("/*!") || rest.starts_with("/*M!") || rest.starts_with("/*m!") {
            return Err("it starts with an executable comment (/*! ... */)".into());
        }
        if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
        } else if rest.starts_with("-- ") || rest.starts_with("--\t") || rest.starts_with('#') {
            rest = rest.split_once('\n').map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Ok((rest[..end].to_ascii_uppercase(), &rest[end..]))
}

/// Ok when a read-only target may run `statement`; else why not, naming
/// what it may run.
pub fn check_read_only(statement: &str) -> Result<(), String> {
    let (keyword, rest) = first_keyword(statement)?;
    let refuse = |why: String| {
        Err(format!(
            "{why}: a read-only MariaDB/MySQL target runs statements that start with {} \
             (give the target `read_only = false` for others)",
            ALLOWED.join(", ")
        ))
    };
    if !ALLOWED.contains(&keyword.as_str()) {
        let shown = if keyword.is_empty() {
            "no keyword".to_string()
        } else {
            format!("`{keyword}`")
        };
        return refuse(format!("the statement starts with {shown}"));
    }
    if keyword == "SET" {
        let (next, _) = first_keyword(rest)?;
        if next == "STATEMENT" {
            return refuse("`SET STATEMENT ... FOR` would lift the statement's bounds".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass_and_what_could_commit_or_write_is_refused() {
        for fine in [
            "SELECT 1",
            "  (SELECT 1) UNION (SELECT 2)",
            "/* probe */ SELECT @@version",
            "-- note\nshow replica status",
            "# note\nWITH x AS (SELECT 1) SELECT * FROM x",
            "SET @x = 1",
            "CHECK TABLE app.t",
            "checksum table app.t",
            "DO SLEEP(0)",
        ] {
            assert_eq!(check_read_only(fine), Ok(()), "{fine}");
        }
        for (bad, says) in [
            (
                "BEGIN NOT ATOMIC COMMIT; INSERT INTO t VALUES (1); END",
                "starts with `BEGIN`",
            ),
            ("IF 1 THEN COMMIT; END IF", "starts with `IF`"),
            ("CALL p()", "starts with `CALL`"),
            ("COMMIT", "starts with `COMMIT`"),
            ("INSERT INTO t VALUES (1)", "starts with `INSERT`"),
            ("KILL 5", "starts with `KILL`"),
            ("label: LOOP COMMIT; END LOOP", "starts with `LABEL`"),
            ("/*!100000 BEGIN NOT ATOMIC END */", "executable comment"),
            ("/* x */ /*M! COMMIT */", "executable comment"),
            (
                "SET STATEMENT max_statement_time=0 FOR SELECT SLEEP(9)",
                "SET STATEMENT",
            ),
            ("", "no keyword"),
        ] {
            let error = check_read_only(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
