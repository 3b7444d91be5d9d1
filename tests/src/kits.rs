//! The probe kits of `examples/probes/` (Python, JavaScript, C), built from
//! source once per test run with each kit's own build command, as a user
//! would, into `target/kits/`. Right after the build each probe is run
//! once, which compiles it into the shared compile cache: the tests that
//! run the probe then start in milliseconds instead of each compiling it
//! for seconds. The toolchains come from `cargo xtask setup`.

use crate::cli::{assert_no_panic, target_dir, watchpost_run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug)]
pub enum Kit {
    Python,
    Js,
    C,
}

impl Kit {
    fn name(self) -> &'static str {
        match self {
            Kit::Python => "python",
            Kit::Js => "js",
            Kit::C => "c",
        }
    }

    /// The kit's directory in the repository.
    pub fn dir(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/probes")
            .join(self.name())
    }
}

/// The pinned componentize-py that `cargo xtask setup` installs.
pub fn componentize_py() -> PathBuf {
    let tool = Kit::Python.dir().join(".venv/bin/componentize-py");
    assert!(
        tool.exists(),
        "componentize-py is not installed in {}: run `cargo xtask setup`",
        tool.display()
    );
    tool
}

fn check_js_toolchain() {
    let package = Kit::Js
        .dir()
        .join("node_modules/@bytecodealliance/componentize-js");
    assert!(
        package.exists(),
        "componentize-js is not installed in {}: run `cargo xtask setup`",
        package.display()
    );
}

/// The component of probe `name` (e.g. `pg-node`) built from `kit`.
pub fn probe(kit: Kit, name: &str) -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    static JS: OnceLock<PathBuf> = OnceLock::new();
    static C: OnceLock<PathBuf> = OnceLock::new();
    let built = match kit {
        Kit::Python => &PYTHON,
        Kit::Js => &JS,
        Kit::C => &C,
    };
    let path = built
        .get_or_init(|| build(kit))
        .join(format!("{name}.wasm"));
    assert!(path.exists(), "the {kit:?} kit builds no probe {name}");
    path
}

/// Run the kit's build command into `target/kits/NAME`, then load every
/// probe once.
fn build(kit: Kit) -> PathBuf {
    let out = target_dir().join("kits").join(kit.name());
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("create the kit's output directory");
    let mut command = match kit {
        Kit::Python => {
            componentize_py();
            let mut command = Command::new("sh");
            command.arg("build.sh").arg(&out);
            command
        }
        Kit::Js => {
            check_js_toolchain();
            let mut command = Command::new("npm");
            command.args(["run", "--silent", "build", "--"]).arg(&out);
            command
        }
        // build.sh says which tool is missing (`cargo xtask setup`
        // installs them).
        Kit::C => {
            let mut command = Command::new("sh");
            command.arg("build.sh").arg(&out);
            command
        }
    };
    let output = command
        .current_dir(kit.dir())
        .env_remove("COMPONENTIZE_PY")
        .env_remove("WIT_BINDGEN")
        .env_remove("CC")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the {kit:?} kit's build: {e}"));
    assert!(
        output.status.success(),
        "the {kit:?} kit's build failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for entry in std::fs::read_dir(&out).expect("read the kit's output") {
        let path = entry.expect("directory entry").path();
        let outcome = watchpost_run(["check".as_ref(), path.as_os_str()]);
        assert_no_panic(&outcome);
    }
    out
}
