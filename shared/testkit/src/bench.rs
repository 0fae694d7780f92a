//! What every benchmark (`services/*/benches`, `harness = false`) shares:
//! its command line, its runtime and failure line, creating objects through
//! the API, and medians.

use std::future::Future;
use std::str::FromStr;

use anyhow::{Context as _, ensure};
use serde_json::Value;
use uuid::Uuid;

/// The benchmark's options, parsed by clap from its command line; the
/// `--bench` that `cargo bench` adds is dropped.
pub fn args<A: clap::Parser>() -> A {
    A::parse_from(std::env::args_os().filter(|a| a != "--bench"))
}

/// A whole number as an option's value, `_` allowed between digits
/// (`--orgs 1_000`): `#[arg(long, value_parser = bench::whole::<usize>)]`.
pub fn whole<T: FromStr>(value: &str) -> Result<T, String> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number"))
}

/// Runs `bench` on a runtime of two worker threads (the machine the figures
/// are for); a failure is printed as `benchmark failed: …` and exits 1.
#[allow(clippy::print_stdout)]
pub fn block_on(bench: impl Future<Output = anyhow::Result<()>>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(e) = runtime.block_on(bench) {
        println!("benchmark failed: {e:#}");
        std::process::exit(1);
    }
}

/// POSTs `body` as `token` and expects 201: the created object.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let resp = http
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .with_context(|| url.to_owned())?;
    let status = resp.status().as_u16();
    let json: Value = resp.json().await.unwrap_or(Value::Null);
    ensure!(status == 201, "{url}: {status} {json}");
    Ok(json)
}

/// [`post`], and the created object's `id`.
pub async fn create(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<Uuid> {
    id(&post(http, url, token, body).await?).with_context(|| url.to_owned())
}

/// An object's `id`.
pub fn id(v: &Value) -> anyhow::Result<Uuid> {
    v["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no id in {v}"))
}

/// The median of figures (the upper one of an even count); 0 for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
