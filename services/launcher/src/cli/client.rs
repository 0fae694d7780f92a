//! The HTTP client of the operator CLI: where the deployment is, which
//! token to send, and the API's refusals turned into errors people can read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

/// Where a running deployment is and who calls it; shared by every command
/// that talks to the API.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Remote {
    /// Base URL of the deployment (default: `url` of the CLI config file,
    /// else http://127.0.0.1:8080).
    #[arg(long, env = "RENKEI_URL", global = true)]
    pub url: Option<String>,
    /// Bearer token (default: `token` of the CLI config file).
    #[arg(long, env = "RENKEI_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// The CLI config file (TOML, keys `url` and `token`; default
    /// ~/.config/renkei/cli.toml).
    #[arg(long, global = true)]
    pub cli_config: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only the id of what the command made or showed (one per line
    /// for lists), for shell variables:
    /// `I=$(renkei incident declare … --quiet)`.
    #[arg(long, short = 'q', global = true, conflicts_with = "json")]
    pub quiet: bool,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    url: Option<String>,
    token: Option<String>,
}

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("renkei").join("cli.toml"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".config/renkei/cli.toml"))
}

fn read_config(path: &Path, required: bool) -> anyhow::Result<FileConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .with_context(|| format!("CLI config {}: not valid", path.display())),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            Ok(FileConfig::default())
        }
        Err(e) => Err(e).with_context(|| format!("--cli-config: cannot read {}", path.display())),
    }
}

/// An answer of the API that is not a success: its problem+json, kept whole.
#[derive(Debug)]
pub struct ApiFailure {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: Value,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let detail = self.body["detail"]
            .as_str()
            .or_else(|| self.body["title"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| match &self.body {
                Value::Null => "no explanation given".to_owned(),
                Value::String(s) => s.chars().take(300).collect(),
                other => other.to_string(),
            });
        write!(
            f,
            "{} {} refused with {}: {detail}",
            self.method, self.path, self.status
        )?;
        if let Some(field) = self.body["field"].as_str() {
            write!(f, " (field `{field}`)")?;
        }
        if let Some(code) = self.body["error"].as_str() {
            write!(f, " [{code}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiFailure {}

/// The API of one deployment, as one caller.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
    pub json: bool,
    /// `--quiet`: only ids are printed.
    pub id_only: bool,
}

impl Client {
    /// How [`super::output::show`] prints for this command.
    pub fn format(&self) -> super::output::Format {
        if self.id_only {
            super::output::Format::Id
        } else if self.json {
            super::output::Format::Json
        } else {
            super::output::Format::Table
        }
    }

    /// Flags, then environment (both through clap), then the config file.
    pub fn new(remote: &Remote) -> anyhow::Result<Client> {
        let file = match &remote.cli_config {
            Some(path) => read_config(path, true)?,
            None => match default_config_path() {
                Some(path) => read_config(&path, false)?,
                None => FileConfig::default(),
            },
        };
        let base = remote
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .or(file.url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("--url: `{base}` is not an http:// or https:// URL");
        }
        let token = remote
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or(file.token)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no token: give --token, set RENKEI_TOKEN, or put `token = \"…\"` in \
                     ~/.config/renkei/cli.toml (mint one with `renkei token`)"
                )
            })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("renkei-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            base,
            token: token.trim().to_owned(),
            http,
            json: remote.json,
            id_only: remote.quiet,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Every item of a list, following `next` (1000 a page).
    pub async fn list_all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self.get(&format!("{path}{sep}limit=1000{cursor}")).await?;
            match page["items"].as_array() {
                Some(got) => items.extend(got.iter().cloned()),
                None => anyhow::bail!("GET {path}: the answer is not a list page"),
            }
            match page["next"].as_str() {
                Some(next) if !next.is_empty() => cursor = format!("&cursor={next}"),
                _ => return Ok(items),
            }
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{method} {url}: no answer: {}", without_url(&e)))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .with_context(|| format!("{method} {path}: the answer could not be read"))?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            return Err(ApiFailure {
                method: method.to_string(),
                path: path.split('?').next().unwrap_or(path).to_owned(),
                status,
                body: value,
            }
            .into());
        }
        Ok(value)
    }
}

/// reqwest's message without the URL it repeats (already in ours).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.without_url_ref().to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        if self.is_timeout() {
            "timed out".to_owned()
        } else if self.is_connect() {
            "cannot connect".to_owned()
        } else {
            "request failed".to_owned()
        }
    }
}
