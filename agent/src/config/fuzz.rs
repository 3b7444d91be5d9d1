//! Property tests of the config parser: whatever text it is given (TOML
//! fragments of the real schema shuffled with wrong values, or arbitrary
//! characters), it returns a config or errors, never panics, and every
//! error names the file and a place in it.

use super::*;
use proptest::prelude::*;
use std::path::Path;

/// Lines from the config's own vocabulary, right and wrong.
const FRAGMENTS: &[&str] = &[
    "[agent]",
    "[[probe]]",
    "[[remediation]]",
    "[targets.primary]",
    "[telemetry]",
    "[cluster]",
    "[probe.thresholds.\"x.y\"]",
    "name = \"disk\"",
    "name = \"\"",
    "wasm = \"builtin:host-disk\"",
    "wasm = \"builtin:nope\"",
    "every = \"1s\"",
    "every = \"0s\"",
    "every = \"soon\"",
    "every = 5",
    "timeout = \"99999999999999999999h\"",
    "memory = \"32MiB\"",
    "memory = \"-1B\"",
    "warning = \"~:10\"",
    "critical = \"2:1\"",
    "for = 0",
    "for = -9223372036854775808",
    "listen = \"0.0.0.0:9464\"",
    "listen = \"nowhere\"",
    "state_dir = \"\"",
    "kind = \"postgres\"",
    "dsn = \"host=127.0.0.1\"",
    "targets = [\"primary\", \"primary\"]",
    "on = { probe = \"disk\", status = \"critical\" }",
    "action = { exec = [] }",
    "action = { webhook = \"http://\" }",
    "limit = { count = 0, per = \"1h\" }",
    "config = { a = \"b\" }",
    "x = [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]",
    "\"\\u0000\" = 1",
    "a.b.c.d = 1",
    "= 1",
    "[",
    "]]",
    "'''",
    "\u{feff}",
    "é = \"\u{202e}\"",
];

fn check(text: &str) -> Result<(), TestCaseError> {
    match parse_str("w.toml", text, Path::new("/nonexistent")) {
        Ok(_) => {}
        Err(errors) => {
            prop_assert!(!errors.0.is_empty(), "an error without a diagnostic");
            let lines = text.split('\n').count();
            for d in &errors.0 {
                prop_assert!(!d.message.trim().is_empty(), "an empty message");
                prop_assert!(d.line <= lines + 1, "line {} of {lines}: {d}", d.line);
                prop_assert!(d.to_string().starts_with("w.toml"), "{d}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn shuffled_config_lines_never_panic_and_errors_have_places(
        lines in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24),
    ) {
        check(&lines.join("\n"))?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text)?;
    }

    #[test]
    fn arbitrary_bytes_as_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }
}
