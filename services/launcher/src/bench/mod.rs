//! `renkei bench`: one command that measures the product and, in the same
//! run, the floor under each figure, and writes `report.md` and
//! `report.json`.
//!
//! Locally (the default) it starts the product in this process as `renkei
//! up` does ([`crate::start`]) on a nats-server of its own (started the way
//! `renkei up` starts one) and a scratch PostgreSQL database (SQLite with
//! `--sqlite`, or when PostgreSQL is not reachable), timing the cold start
//! to ready; with `--url` it drives an already-running deployment instead,
//! as `--token` (an admin token), minting other roles' tokens when given the
//! deployment's `--data-dir`, and using `--nats-url` for the NATS floors.
//!
//! It generates a platform (organisations, each with a linked system and a
//! CSIRT contact whose webhook is a receiver the bench runs), then runs the
//! scenarios picked with `--scenarios` (all by default):
//!
//! | name | scenario | floor |
//! |---|---|---|
//! | `blast` | blast radius on `--systems`/`--links` (in memory, no product) | recursive CTE in PostgreSQL |
//! | `get` | `GET /v1/organizations/{id}`, `--connections` for `--duration` | actix-web hello world |
//! | `events` | `--events` systems created → applied by demarcation | raw JetStream async publish |
//! | `incidents` | incident → every affected webhook, steady and burst | NATS request/reply |
//! | `rules` | rules proposed → in force, every organisation accepting | as many `GET /v1/rules/{id}` |
//! | `start` | cold start to `/readyz` 200, resident memory idle / under load | hello world start, the bench before the product |
//! | `console` | the console's incident page, signed in, `--connections` for `--duration` | `GET /v1/incidents/{id}` |
//!
//! Files: [`stats`] (figures, rows), [`machine`] (the machine, versions),
//! [`graph`] (scenario 1), [`platform`] (the product, the receivers, the
//! generated platform), [`scenarios`] (scenarios 2–6), [`report`].

pub mod graph;
pub mod machine;
pub mod platform;
pub mod report;
pub mod scenarios;
pub mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use platform::{Api, Hello, Local, Tokens, WebhookSink};
use stats::{Figure, Row};

/// The scenarios, by the names `--scenarios` takes.
pub const SCENARIOS: [&str; 7] = [
    "blast",
    "get",
    "events",
    "incidents",
    "rules",
    "start",
    "console",
];

/// The options of `renkei bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Small sizes and short phases: the whole run in about a minute.
    #[arg(long)]
    pub quick: bool,
    /// Scenarios to run, by name or number (blast,get,events,incidents,rules,start,console or 1–7).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Where `report.md` and `report.json` go.
    #[arg(long, default_value = "bench-report")]
    pub out: PathBuf,
    /// Organisations of the generated platform (1,000; 50 with --quick).
    #[arg(long, value_parser = whole::<usize>)]
    pub orgs: Option<usize>,
    /// Systems of the blast-radius graph (100,000; 10,000 with --quick).
    #[arg(long, value_parser = whole::<usize>)]
    pub systems: Option<usize>,
    /// Links of the blast-radius graph (1,000,000; 100,000 with --quick).
    #[arg(long, value_parser = whole::<usize>)]
    pub links: Option<usize>,
    /// Seed of the blast-radius graph.
    #[arg(long, default_value_t = 0x5eed_b1a5, value_parser = whole::<u64>)]
    pub seed: u64,
    /// Organisations per star group: an incident reaches the rest of its group.
    #[arg(long, value_parser = whole::<usize>)]
    pub group: Option<usize>,
    /// Concurrent connections of the GET scenario.
    #[arg(long, default_value_t = 64, value_parser = whole::<usize>)]
    pub connections: usize,
    /// Seconds of each GET run (10; 3 with --quick).
    #[arg(long, value_parser = whole::<u64>)]
    pub duration: Option<u64>,
    /// Objects created in the events scenario (2,000; 200 with --quick).
    #[arg(long, value_parser = whole::<usize>)]
    pub events: Option<usize>,
    /// Incidents per second of the steady phase.
    #[arg(long, default_value_t = 5, value_parser = whole::<usize>)]
    pub rate: usize,
    /// Seconds of the steady phase (10; 3 with --quick).
    #[arg(long, value_parser = whole::<u64>)]
    pub steady_secs: Option<u64>,
    /// Incidents declared at once in the burst phase (100; 20 with --quick).
    #[arg(long, value_parser = whole::<usize>)]
    pub burst: Option<usize>,
    /// Decisions in flight in the rules scenario.
    #[arg(long, default_value_t = 16, value_parser = whole::<usize>)]
    pub concurrency: usize,
    /// PostgreSQL (an admin URL) for the blast-radius floor and the
    /// product's scratch database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    /// The local product on SQLite files instead of PostgreSQL.
    #[arg(long)]
    pub sqlite: bool,
    /// No PostgreSQL floor for the blast radius.
    #[arg(long)]
    pub no_db: bool,
    /// An already-running deployment instead of a local one.
    #[arg(long)]
    pub url: Option<String>,
    /// An admin token for `--url`.
    #[arg(long, env = "RENKEI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The data dir of the `--url` deployment, to mint tokens of other roles.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The NATS of the `--url` deployment, for the NATS floors and events.
    #[arg(long)]
    pub nats_url: Option<String>,
}

/// A whole number, `_` allowed between digits (`--links 1_000_000`).
fn whole<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number"))
}

/// The sizes in effect after `--quick` and the explicit options.
#[derive(Debug, Clone)]
struct Sizes {
    orgs: usize,
    systems: usize,
    links: usize,
    queries: usize,
    cte_queries: usize,
    cte_budget: Duration,
    group: usize,
    duration: Duration,
    events: usize,
    steady: Duration,
    burst: usize,
}

impl Sizes {
    fn of(a: &BenchArgs) -> Sizes {
        let q = a.quick;
        Sizes {
            orgs: a.orgs.unwrap_or(if q { 50 } else { 1_000 }),
            systems: a.systems.unwrap_or(if q { 10_000 } else { 100_000 }),
            links: a.links.unwrap_or(if q { 100_000 } else { 1_000_000 }),
            queries: if q { 5_000 } else { 100_000 },
            cte_queries: if q { 10 } else { 100 },
            cte_budget: Duration::from_secs(if q { 2 } else { 30 }),
            group: a.group.unwrap_or(if q { 10 } else { 20 }),
            duration: Duration::from_secs(a.duration.unwrap_or(if q { 3 } else { 10 })),
            events: a.events.unwrap_or(if q { 200 } else { 2_000 }),
            steady: Duration::from_secs(a.steady_secs.unwrap_or(if q { 3 } else { 10 })),
            burst: a.burst.unwrap_or(if q { 20 } else { 100 }),
        }
    }
}

/// The scenario names picked by `--scenarios` (all when empty).
fn picked(names: &[String]) -> anyhow::Result<Vec<&'static str>> {
    if names.is_empty() {
        return Ok(SCENARIOS.to_vec());
    }
    let mut out = Vec::new();
    for n in names {
        let n = n.trim();
        let found = SCENARIOS
            .iter()
            .enumerate()
            .find(|(i, s)| **s == n || (i + 1).to_string() == n)
            .map(|(_, s)| *s)
            .with_context(|| format!("`{n}` is not a scenario; use {}", SCENARIOS.join(", ")))?;
        if !out.contains(&found) {
            out.push(found);
        }
    }
    Ok(out)
}

/// Runs `renkei bench`: the scenarios, then the report.
#[allow(clippy::print_stdout)]
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let started = Instant::now();
    let picked = picked(&args.scenarios)?;
    let sizes = Sizes::of(&args);
    let wants = |s: &str| picked.contains(&s);
    let baseline_rss = stats::rss_kib();
    let progress = ProgressBar::new_spinner();
    progress.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_msg} {pos}/{len}",
    )?);
    progress.enable_steady_tick(Duration::from_millis(200));

    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut versions = machine::Versions {
        renkei: env!("CARGO_PKG_VERSION").to_owned(),
        rustc: machine::rustc_version(),
        ..Default::default()
    };
    // 1: in memory and PostgreSQL only
    if wants("blast") {
        let options = graph::Options {
            systems: sizes.systems,
            links: sizes.links,
            seed: args.seed,
            queries: sizes.queries,
            cte_queries: sizes.cte_queries,
            cte_budget: sizes.cte_budget,
            database_url: args.database_url.clone(),
            no_db: args.no_db,
        };
        let outcome = graph::run(&options, &progress).await?;
        outcome.rows.iter().for_each(|r| done_line(&progress, r));
        rows.extend(outcome.rows);
        notes.extend(
            outcome
                .notes
                .into_iter()
                .map(|n| format!("blast radius: {n}")),
        );
        if let Some(v) = outcome.postgres {
            versions.postgres_floor = format!("PostgreSQL {v}");
        }
    }

    let product_needed = picked.iter().any(|s| *s != "blast");
    if product_needed {
        let outcome = against_product(
            &args,
            &sizes,
            &picked,
            baseline_rss,
            &progress,
            &mut versions,
        )
        .await?;
        rows.extend(outcome.0);
        notes.extend(outcome.1);
    }
    progress.finish_and_clear();

    let settings = json!({
        "mode": if args.url.is_some() { "remote (--url)" } else { "local, in-process" },
        "scenarios": picked.join(","),
        "quick": args.quick,
        "systems": sizes.systems, "links": sizes.links, "seed": format!("{:#x}", args.seed),
        "in-memory questions": sizes.queries, "CTE questions per bucket": sizes.cte_queries,
        "CTE budget per bucket (s)": sizes.cte_budget.as_secs(),
        "orgs": sizes.orgs, "group": sizes.group,
        "connections": args.connections, "GET duration (s)": sizes.duration.as_secs(),
        "events": sizes.events,
        "steady rate (/s)": args.rate, "steady (s)": sizes.steady.as_secs(), "burst": sizes.burst,
        "decisions in flight": args.concurrency,
    });
    let report = report::Report {
        started_at,
        took_secs: started.elapsed().as_secs_f64(),
        command: command_line(),
        machine: machine::Machine::read(),
        versions,
        settings: settings.as_object().cloned().unwrap_or_default(),
        rows,
        notes,
    };
    report.write(&args.out)?;
    println!("{}", report.table());
    println!(
        "report: {} and {}",
        args.out.join("report.md").display(),
        args.out.join("report.json").display()
    );
    Ok(())
}

/// The command line as run, for the report.
fn command_line() -> String {
    let mut args = std::env::args();
    let first = args.next().unwrap_or_else(|| "renkei".into());
    let name = std::path::Path::new(&first)
        .file_name()
        .map_or_else(|| first.clone(), |n| n.to_string_lossy().into_owned());
    std::iter::once(name)
        .chain(args.map(|a| if a.contains(' ') { format!("'{a}'") } else { a }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Scenarios 2–6: start (or reach) the product, generate the platform, run
/// what was picked; the rows and the notes.
async fn against_product(
    args: &BenchArgs,
    sizes: &Sizes,
    picked: &[&str],
    baseline_rss: Option<u64>,
    progress: &ProgressBar,
    versions: &mut machine::Versions,
) -> anyhow::Result<(Vec<Row>, Vec<String>)> {
    let wants = |s: &str| picked.contains(&s);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    progress.set_message("starting the product");
    let (local, base, nats_url, tokens) = match &args.url {
        None => {
            let local = Local::start(&args.database_url, args.sqlite).await?;
            let issuer = renkei_web::identity::dev_issuer(&local.settings)?;
            let base = local.url();
            let nats = local.settings.nats.url.clone();
            versions.database = local.database.clone();
            (
                Some(local),
                base,
                Some(nats),
                Tokens::new(Some(issuer), None)?,
            )
        }
        Some(url) => {
            let issuer = match &args.data_dir {
                Some(dir) => {
                    let s = renkei_settings::Settings {
                        data_dir: dir.clone(),
                        ..renkei_settings::Settings::default()
                    };
                    Some(renkei_web::identity::dev_issuer(&s)?)
                }
                None => None,
            };
            versions.database = "the deployment's (not known to the bench)".into();
            (
                None,
                url.clone(),
                args.nats_url.clone(),
                Tokens::new(issuer, args.token.clone())?,
            )
        }
    };
    let result = scenarios_on(
        args,
        sizes,
        &wants,
        baseline_rss,
        progress,
        versions,
        local.as_ref(),
        &base,
        nats_url.as_deref(),
        &tokens,
        &mut rows,
        &mut notes,
    )
    .await;
    progress.set_message("stopping the product");
    if let Some(local) = local {
        local.stop().await?;
    }
    result?;
    Ok((rows, notes))
}

#[allow(clippy::too_many_arguments)]
async fn scenarios_on(
    args: &BenchArgs,
    sizes: &Sizes,
    wants: &dyn Fn(&str) -> bool,
    baseline_rss: Option<u64>,
    progress: &ProgressBar,
    versions: &mut machine::Versions,
    local: Option<&Local>,
    base: &str,
    nats_url: Option<&str>,
    tokens: &Tokens,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let api = Api::new(base, args.connections.max(args.concurrency).max(16))?;
    let nats = match nats_url {
        Some(u) => {
            let client = async_nats::connect(u)
                .await
                .with_context(|| format!("NATS at {u}"))?;
            versions.nats_server = client.server_info().version;
            Some(client)
        }
        None => None,
    };
    let workers = local
        .map(|l| l.settings.http.workers)
        .filter(|w| *w > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let (hello, hello_start) = Hello::start(workers).await?;
    let sink = WebhookSink::start().await?;

    let mut rss_idle = Vec::new();
    if wants("start") {
        match local {
            Some(l) => {
                let row = Row::new(
                    "6 cold start",
                    "start → /readyz 200 (all four services)",
                    Some(Figure::once(l.cold_start)),
                    "actix-web hello world start → 200",
                    Some(Figure::once(hello_start)),
                    format!("database {}", l.database),
                );
                done_line(progress, &row);
                rows.push(row);
            }
            None => notes.push("cold start: not measured against --url".into()),
        }
    }

    let needs_platform = ["get", "events", "incidents", "rules", "console"]
        .iter()
        .any(|s| wants(s));
    let mut generated = None;
    if needs_platform {
        if tokens.can_mint() {
            progress.set_message(format!(
                "generating the platform: {} organisations",
                sizes.orgs
            ));
            let g = platform::generate(&api, tokens, &sink.url, sizes.orgs, sizes.group, progress)
                .await?;
            notes.push(format!(
                "platform: {} organisations, each with a linked system and a CSIRT webhook contact; {} links in star groups of {}; generated through the API in {:.1} s",
                g.orgs.len(),
                g.links,
                g.group,
                g.took.as_secs_f64()
            ));
            progress.set_message("waiting for every service to know the platform");
            platform::await_known(&api, &g, Duration::from_secs(600)).await?;
            generated = Some(g);
        } else {
            notes.push("no --data-dir: no tokens but the admin's, so no platform was generated (events, incidents and rules skipped)".into());
        }
    }
    if wants("start") && local.is_some() {
        // idle: everything generated, nothing running
        tokio::time::sleep(Duration::from_secs(1)).await;
        for _ in 0..10 {
            rss_idle.extend(stats::rss_kib());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let load = RssUnderLoad::start(wants("start") && local.is_some());

    if wants("get") {
        let org = match &generated {
            Some(g) => g.orgs.first().map(|o| o.id).context("no organisations")?,
            None => {
                let (status, json) = api.get("/v1/organizations?limit=1", tokens.admin()).await?;
                anyhow::ensure!(status == 200, "GET /v1/organizations: {status} {json}");
                json["items"][0]["id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .context("no organisation to GET in the deployment")?
            }
        };
        let r = scenarios::get_by_id(
            &api,
            tokens.admin(),
            org,
            &hello.url,
            args.connections,
            sizes.duration,
            progress,
        )
        .await?;
        r.iter().for_each(|row| done_line(progress, row));
        rows.extend(r);
    }
    if wants("events") {
        match (&mut generated, &nats) {
            (Some(g), Some(n)) => {
                let r = scenarios::events(&api, n, g, sizes.events, progress).await?;
                r.iter().for_each(|row| done_line(progress, row));
                rows.extend(r);
            }
            _ => notes.push("events: skipped (needs the platform and --nats-url)".into()),
        }
    }
    if wants("incidents") {
        match &generated {
            Some(g) => {
                let floor = match &nats {
                    Some(n) => scenarios::nats_round_trip(n, 2_000).await?,
                    None => None,
                };
                let steady = (args.rate as u64 * sizes.steady.as_secs()).max(1) as usize;
                for (phase, count, over) in [
                    ("steady", steady, sizes.steady),
                    ("burst", sizes.burst, Duration::ZERO),
                ] {
                    let r = scenarios::incidents(
                        &api,
                        g,
                        &sink,
                        phase,
                        count,
                        over,
                        floor.as_ref(),
                        progress,
                    )
                    .await?;
                    r.iter().for_each(|row| done_line(progress, row));
                    rows.extend(r);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            None => notes.push("incidents: skipped (no platform)".into()),
        }
    }
    if wants("rules") {
        match &generated {
            Some(g) => {
                let r = scenarios::rules(&api, g, args.concurrency, progress).await?;
                r.iter().for_each(|row| done_line(progress, row));
                rows.extend(r);
            }
            None => notes.push("rules: skipped (no platform)".into()),
        }
    }
    if wants("console") {
        match &generated {
            Some(g) => {
                let r = scenarios::console_page(
                    &api,
                    g,
                    args.connections.min(16),
                    sizes.duration,
                    progress,
                )
                .await?;
                r.iter().for_each(|row| done_line(progress, row));
                rows.extend(r);
            }
            None => notes.push("console: skipped (no platform)".into()),
        }
    }
    let under_load = load.stop();
    if wants("start") && local.is_some() {
        let floor = baseline_rss
            .map(|k| Figure::memory(vec![k]))
            .unwrap_or_default();
        for (figure, samples) in [
            ("resident memory, idle", rss_idle),
            ("resident memory, under load", under_load),
        ] {
            let row = Row::new(
                "6 memory",
                figure,
                Figure::memory(samples),
                "the bench process before the product started",
                floor.clone(),
                "VmRSS of the one process (product, bench, receivers); under load: sampled every 100 ms during scenarios 2–5",
            );
            done_line(progress, &row);
            rows.push(row);
        }
    }
    hello.stop().await;
    sink.stop().await;
    Ok(())
}

/// Samples resident memory while the load scenarios run, when asked to.
struct RssUnderLoad(Option<scenarios::RssSampler>);

impl RssUnderLoad {
    fn start(on: bool) -> RssUnderLoad {
        RssUnderLoad(on.then(scenarios::RssSampler::start))
    }
    fn stop(self) -> Vec<u64> {
        self.0.map(scenarios::RssSampler::stop).unwrap_or_default()
    }
}

fn done_line(progress: &ProgressBar, r: &Row) {
    let v = r
        .value
        .as_ref()
        .map_or_else(|| "–".to_owned(), |f| f.show(f.median));
    let f = r
        .floor
        .as_ref()
        .map_or_else(|| "–".to_owned(), |f| f.show(f.median));
    progress.println(format!("✔ {} — {}: {v} (floor {f})", r.scenario, r.figure));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn scenarios_are_picked_by_name_or_number() {
        assert_eq!(picked(&[]).expect("all"), SCENARIOS.to_vec());
        let some = picked(&["2".into(), "rules".into(), "get".into()]).expect("some");
        assert_eq!(some, vec!["get", "rules"]);
        assert!(picked(&["nope".into()]).is_err());
    }

    #[test]
    fn quick_sizes_give_way_to_explicit_ones() {
        let cli = Cli::parse_from([
            "bench",
            "--quick",
            "--links",
            "1_000",
            "--scenarios",
            "blast,get",
        ]);
        let sizes = Sizes::of(&cli.args);
        assert_eq!(
            (sizes.orgs, sizes.systems, sizes.links),
            (50, 10_000, 1_000)
        );
        assert_eq!(cli.args.scenarios, vec!["blast", "get"]);
        let full = Sizes::of(&Cli::parse_from(["bench"]).args);
        assert_eq!(
            (full.systems, full.links, full.orgs),
            (100_000, 1_000_000, 1_000)
        );
    }
}
