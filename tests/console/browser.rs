//! Debian's Chromium, headless, driven through chromedriver (WebDriver):
//! one browser per test, its processes killed with the test, and a
//! screenshot of every page the test looks at.

use std::path::PathBuf;
use std::time::Duration;

use thirtyfour::components::SelectElement;
use thirtyfour::prelude::*;

/// Where the screenshots go: `RENKEI_SCREENSHOTS`, else
/// `target/console-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("RENKEI_SCREENSHOTS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots"),
        PathBuf::from,
    )
}

pub struct Browser {
    pub driver: WebDriver,
    base: String,
    /// chromedriver and the browsers it started: one process group.
    group: i32,
    _chromedriver: tokio::process::Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    prefix: String,
}

fn program(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

impl Browser {
    /// A fresh headless browser (its own profile: no cookies) on `base`;
    /// screenshots named `<prefix>-<page>.png`.
    pub async fn start(base: &str, prefix: &str) -> Browser {
        let chromedriver = program("RENKEI_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("RENKEI_TEST_CHROMIUM", "/usr/bin/chromium");
        assert!(
            std::path::Path::new(&chromedriver).exists()
                && std::path::Path::new(&chromium).exists(),
            "the browser tests need Debian's chromium and chromium-driver ({chromium}, {chromedriver}); tests/run installs them"
        );
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("address").port()
        };
        let child = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let group = child.id().expect("chromedriver pid") as i32;
        let server = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while http.get(format!("{server}/status")).send().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not answer in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("browser profile");
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&chromium).expect("binary");
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            &format!("--user-data-dir={}", profile.path().display()),
        ] {
            caps.add_arg(arg).expect("argument");
        }
        let driver = WebDriver::new(&server, caps)
            .await
            .expect("a browser session");
        let shots = screenshot_dir();
        std::fs::create_dir_all(&shots).expect("screenshot directory");
        Browser {
            driver,
            base: base.to_owned(),
            group,
            _chromedriver: child,
            _profile: profile,
            shots,
            prefix: prefix.to_owned(),
        }
    }

    pub async fn open(&self, path: &str) {
        self.driver
            .goto(format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Saves a screenshot of the page as it is now.
    pub async fn shot(&self, page: &str) {
        let path = self.shots.join(format!("{}-{page}.png", self.prefix));
        self.driver
            .screenshot(&path)
            .await
            .unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    }

    pub async fn find(&self, css: &str) -> WebElement {
        match self.driver.find(By::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!(
                "no `{css}` on {}: {e}\n{}",
                self.url().await,
                self.source().await
            ),
        }
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    pub async fn source(&self) -> String {
        self.driver.source().await.expect("page source")
    }

    pub async fn url(&self) -> String {
        self.driver
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    pub async fn choose(&self, css: &str, value: &str) {
        let select = SelectElement::new(&self.find(css).await)
            .await
            .expect("a select");
        select
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("option {value} of {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Clicks what sends a form and waits for the page it leads to (the
    /// old page's elements gone), so nothing is read off the old one.
    pub async fn submit(&self, css: &str) {
        let old = self.find("html").await;
        self.click(css).await;
        old.wait_until()
            .stale()
            .await
            .unwrap_or_else(|e| panic!("{css} did not lead to another page: {e}"));
    }

    /// Reloads until `css` holds `wanted` (for what arrives over NATS).
    pub async fn wait_for_text(&self, css: &str, wanted: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(el) = self.driver.find(By::Css(css)).await
                && let Ok(text) = el.text().await
                && text.contains(wanted)
            {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` never showed `{wanted}` within {within:?} on {}:\n{}",
                self.url().await,
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.driver.refresh().await.expect("reload");
        }
    }

    /// Waits, without reloading, for the page's own refresh to show
    /// `wanted` in `css`.
    pub async fn wait_live(&self, css: &str, wanted: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(el) = self.driver.find(By::Css(css)).await
                && let Ok(text) = el.text().await
                && text.contains(wanted)
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` did not turn to `{wanted}` by itself within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn quit(self) {
        let _ = self.driver.clone().quit().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and every browser process it started.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
