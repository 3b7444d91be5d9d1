//! A real browser for the status page tests: Debian's Chromium, headless,
//! driven through Debian's `chromedriver` (WebDriver) with `fantoccini`.
//! Each [`Browser`] runs its own chromedriver on a free loopback port and
//! each session gets a fresh profile directory; nothing reaches the
//! network (the flags turn off Chromium's own background traffic).
//! Dropping the browser ends chromedriver and its Chromium.

use crate::port::free_port;
use fantoccini::{Client, ClientBuilder};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Chromium binary (Debian's `chromium` package).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `chromium-driver` package.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    driver: Child,
    port: u16,
    profiles: tempfile::TempDir,
    sessions: u32,
}

impl Browser {
    /// Start chromedriver and wait until it answers.
    pub fn start() -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: install Debian's chromium and chromium-driver (`cargo xtask setup`)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let browser = Browser {
            driver,
            port,
            profiles: tempfile::tempdir().unwrap(),
            sessions: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        browser
    }

    /// A new headless Chromium session with a fresh profile; with
    /// `javascript` false, pages run no script at all.
    pub async fn session(&mut self, javascript: bool) -> Client {
        self.sessions += 1;
        let profile = self
            .profiles
            .path()
            .join(format!("profile-{}", self.sessions));
        let mut options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if !javascript {
            options["prefs"] = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session with headless Chromium")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where screenshots of `area` go: `target/screenshots/AREA/`, kept as
/// test artifacts.
pub fn screenshot_dir(area: &str) -> PathBuf {
    let dir = crate::cli::target_dir().join("screenshots").join(area);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Save a PNG of what `client` shows as `NAME.png` under [`screenshot_dir`].
pub async fn screenshot(client: &Client, area: &str, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("screenshot");
    let path = screenshot_dir(area).join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
}
