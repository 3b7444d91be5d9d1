//! Builds the built-in probes (`plugins/*`) into components and embeds them
//! in the binary, so that `watchpost run` works from any directory.

use std::path::PathBuf;

use watchpost_probe_build::BUILTINS;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = watchpost_probe_build::workspace_root(&manifest);
    println!("cargo:rerun-if-changed={}", root.join("plugins").display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    let paths = match watchpost_probe_build::build(&root, BUILTINS) {
        Ok(paths) => paths,
        Err(message) => {
            println!("cargo:warning={message}");
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let mut table = String::from("&[\n");
    for (name, path) in BUILTINS.iter().zip(paths) {
        let embedded = out.join(format!("{name}.wasm"));
        std::fs::copy(&path, &embedded).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            embedded.display().to_string()
        ));
    }
    table.push_str("]\n");
    std::fs::write(out.join("builtins.rs"), table).expect("write builtins.rs");
    commit(&root);
}

/// `WATCHPOST_COMMIT` for `watchpost --version`: the commit the binary is
/// built from (`WATCHPOST_COMMIT` in the environment wins, for builds
/// outside a git checkout), rebuilt when HEAD moves.
fn commit(root: &std::path::Path) {
    println!("cargo:rerun-if-env-changed=WATCHPOST_COMMIT");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={}", root.join(file).display());
        }
    }
    let commit = std::env::var("WATCHPOST_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WATCHPOST_COMMIT={commit}");
}
