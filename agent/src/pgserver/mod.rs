//! The PostgreSQL server as files, a process and the programs that drive
//! it: what the agent reads and writes in a data directory ([`pgdata`]:
//! `standby.signal`, `primary_conninfo`, who its programs run as),
//! whether its postmaster runs ([`postmaster`], a three-valued answer),
//! the command lines of `pg_ctl` ([`ctl`]: start, stop, status, restart),
//! what `pg_controldata` says ([`controldata`], typed) and WAL positions'
//! text ([`lsn`]). It sits below every layer that acts on a server —
//! restore drills' copies, remediation, cluster mode — so that they share
//! one reading of `postmaster.pid`, one rule that "cannot read" is never
//! "stopped", and one spelling of each program's arguments; they name the
//! programs only through it. It depends only on [`crate::safefs`] and
//! [`crate::process`] (the runner).

pub mod controldata;
pub mod ctl;
pub mod lsn;
pub mod pgdata;
pub mod postmaster;

/// The environment under which a PostgreSQL program whose output the agent
/// parses must run: `LC_ALL=C`. PostgreSQL's programs translate their
/// output (gettext) under the agent's locale: with `LANG=C.UTF-8` and
/// `LANGUAGE=de`, `pg_controldata` prints `Position des letzten
/// Checkpoints:` for `Latest checkpoint location:`, and `pg_checksums`
/// its "data checksums are not enabled" in German. In the `C` locale
/// gettext ignores `LANGUAGE` (glibc's rule), so the text is the source's.
pub const UNTRANSLATED: (&str, &str) = ("LC_ALL", "C");

/// The message of an output line in which the PostgreSQL program
/// `program` speaks itself: `PROGRAM: [LEVEL: ]MESSAGE`, LEVEL as the
/// versions print it (`error: ` since 15, `fatal: ` in 12 to 14,
/// `FATAL:  ` before). A decision is made on such a message's start,
/// never on a line that merely contains the words: a path the program
/// names (the data, WAL or scratch directory, the user's words) may hold
/// them.
pub fn program_message<'a>(line: &'a str, program: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(program)?.strip_prefix(": ")?;
    Some(
        ["error: ", "fatal: ", "FATAL:  "]
            .iter()
            .find_map(|level| rest.strip_prefix(level))
            .unwrap_or(rest),
    )
}

/// The first message of `program` in `output` ([`program_message`]) that
/// begins with `words`.
pub fn program_says<'a>(output: &'a str, program: &str, words: &str) -> Option<&'a str> {
    output
        .lines()
        .filter_map(|line| program_message(line, program))
        .find(|message| message.starts_with(words))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_programs_message_is_told_from_a_path_that_holds_its_words() {
        let says = |output| program_says(output, "pg_checksums", "data checksums are not enabled");
        for own in [
            "pg_checksums: error: data checksums are not enabled in cluster",
            "pg_checksums: fatal: data checksums are not enabled in cluster",
            "pg_checksums: data checksums are not enabled in cluster",
        ] {
            assert!(says(own).is_some(), "{own}");
        }
        // PostgreSQL 15's words for a directory named so.
        let path = "pg_checksums: error: could not open file \"/scratch/data checksums are not \
                    enabled/global/pg_control\" for reading: No such file or directory";
        assert_eq!(says(path), None);
        assert_eq!(says("data checksums are not enabled"), None);
        assert_eq!(
            program_message(
                "pg_waldump: FATAL:  could not find file \"x\"",
                "pg_waldump"
            ),
            Some("could not find file \"x\"")
        );
        assert_eq!(program_message("pg_waldumpx: error: y", "pg_waldump"), None);
    }
}
