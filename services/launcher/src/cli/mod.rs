//! The operator CLI: the commands operators and managers use every day
//! against a running deployment, over its public HTTP API only.
//!
//! Every command takes `--url`/`--token` (or `RENKEI_URL`/`RENKEI_TOKEN`, or
//! `url`/`token` in `~/.config/renkei/cli.toml` or `--cli-config FILE`) and
//! `--json` to print the API's JSON instead of tables. A refusal prints the
//! API's `detail` (and the field at fault) and exits non-zero.

pub mod client;
pub mod contact;
pub mod drill;
pub mod import;
pub mod incident;
pub mod link;
pub mod lookup;
pub mod org;
pub mod output;
pub mod rules;
pub mod system;

use std::collections::HashMap;

use serde_json::Value;

pub use client::{Client, Remote};

/// The end of a CLI command: on error, the message and its causes on one
/// line (never a backtrace), and exit status 1.
pub fn finish(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(error) = result {
        output::note(&format!("error: {error:#}"));
        std::process::exit(1);
    }
    Ok(())
}

/// The id of an object as text.
pub fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap_or_default().to_owned()
}

/// Names of what the caller can see, by id (organisations or systems),
/// for tables that would otherwise show bare ids.
pub async fn names(client: &Client, path: &str) -> HashMap<String, String> {
    client
        .list_all(path)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|v| (id_of(&v), v["name"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// A name when known, else the id.
pub fn named(names: &HashMap<String, String>, id: &Value) -> String {
    let id = output::text(id);
    match names.get(&id) {
        Some(name) if !name.is_empty() => name.clone(),
        _ => id,
    }
}
