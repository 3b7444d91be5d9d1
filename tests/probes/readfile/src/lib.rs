//! Reads the file at config `path` (e.g. `/data/file.txt`, inside a
//! directory granted with `dirs`) and reports `ok` with its size
//! (`file.size`) and first line, or `critical` with the error; with
//! `write = true` it tries to create `path` instead. For tests of the
//! `dirs` capability: what a probe can and cannot reach.

use watchpost_probe::{Info, Kind, Probe, Report, Result, config, dirs, measurement};

struct ReadFile;

impl Probe for ReadFile {
    fn describe() -> Info {
        Info::new(
            "readfile",
            Kind::Host,
            "reads one file through the dirs capability",
        )
        .measures("file.size", "By", "size of the file read")
    }

    fn check() -> Result<Report> {
        let path: String = config::require("path")?;
        let granted: Vec<String> = dirs::granted().into_iter().map(|d| d.name).collect();
        if config::get_or("write", false)? {
            return Ok(match std::fs::write(&path, b"x") {
                Ok(()) => Report::ok(format!("wrote {path}")),
                Err(e) => Report::critical(format!("error: {e}")),
            });
        }
        Ok(match std::fs::read_to_string(&path) {
            Ok(text) => Report::ok(format!(
                "read {} bytes: {} (granted: {})",
                text.len(),
                text.lines().next().unwrap_or(""),
                granted.join(",")
            ))
            .with(measurement("file.size", text.len() as f64, "By")),
            Err(e) => Report::critical(format!("error: {e}")),
        })
    }
}

watchpost_probe::export_probe!(ReadFile);
