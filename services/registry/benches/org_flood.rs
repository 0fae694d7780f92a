//! One organisation floods the API; do the others notice? (Issue 6: "an
//! organisation flooding the API must not move the others' p99 by more than
//! 20 %".)
//!
//! The registry alone (`Registry::spawn`, the product's HTTP server with every
//! middleware) against a real nats-server and a real database, with the
//! product's default rate limits (20 requests/s, burst 100 per organisation)
//! unless told otherwise.
//!
//! Setup through the API: a platform operator and its platform, organisation
//! A (the flooder) and `--others` organisations, each owning one linked
//! system.
//!
//! Each round measures the others for `--seconds` alone and `--seconds`
//! while A floods, in alternating one-second slices (alone, flooded, alone,
//! …), so that whatever else the machine is doing falls on both alike:
//! - every other organisation's manager reads its own system,
//!   `GET /v1/systems/{id}`, `--rate` times a second (paced, one request at a
//!   time each, under its limit) — the same in both kinds of slice;
//! - in a flooded slice A's manager also reads A's system from `--flooders`
//!   concurrent connections, `--flood-rate` requests a second in all (0: as
//!   fast as they can). A's bucket earns 20 tokens back during each quiet
//!   second, as a real flooder's would.
//!
//! The flood's client is a process of its own at the lowest CPU priority
//! (`nice -n 19`, this binary with `--flood-child`, switched on and off
//! through its standard input): in production the flooder's client runs
//! elsewhere, and on one small machine its CPU would otherwise be counted as
//! the server's. The server still parses, verifies and answers every
//! flooding request.
//!
//! Printed per round and as medians over the rounds: the others' p50 and
//! p99 in each phase, their ratio, the flood's requests/s and its share of
//! 429s, and any answer to the others that was not a 200.
//!
//! ```text
//! cargo bench -p renkei-registry --bench org_flood
//! cargo bench -p renkei-registry --bench org_flood -- --flood-rate 0
//! cargo bench -p renkei-registry --bench org_flood -- --per-second 0   # limits off
//! ```
//!
//! Options: `--rounds N` (5), `--seconds N` (10), `--others N` (4), `--rate N`
//! (15), `--flooders N` (8), `--flood-rate N` (2000; 0 unpaced),
//! `--per-second N` (20; 0 turns the limits off), `--burst N` (100).
//! NATS: `RENKEI_TEST_NATS_SERVER` or `nats-server` on the PATH. Database:
//! SQLite files in a temporary directory, or PostgreSQL with
//! `RENKEI_TEST_DATABASE_URL`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use renkei_testkit::bench::{self, create, median};
use renkei_testkit::{NatsServer, TestDb, token};
use renkei_web::Role;
use serde_json::json;

/// One organisation floods the API; do the others notice?
#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value_t = 5, value_parser = bench::whole::<usize>)]
    rounds: usize,
    #[arg(long, default_value_t = 10, value_parser = bench::whole::<u64>)]
    seconds: u64,
    #[arg(long, default_value_t = 4, value_parser = bench::whole::<usize>)]
    others: usize,
    #[arg(long, default_value_t = 15, value_parser = bench::whole::<u64>)]
    rate: u64,
    #[arg(long, default_value_t = 8, value_parser = bench::whole::<usize>)]
    flooders: usize,
    #[arg(long, default_value_t = 2000, value_parser = bench::whole::<u64>)]
    flood_rate: u64,
    #[arg(long, default_value_t = 20, value_parser = bench::whole::<u32>)]
    per_second: u32,
    #[arg(long, default_value_t = 100, value_parser = bench::whole::<u32>)]
    burst: u32,
    /// Set in the flood's own process: the reader to flood as.
    #[arg(long, num_args = 2, value_names = ["URL", "TOKEN"])]
    flood_child: Option<Vec<String>>,
}

fn main() {
    let args: Args = bench::args();
    assert!(args.rounds > 0 && args.others > 0 && args.rate > 0 && args.flooders > 0);
    if let Some([url, token]) = args.flood_child.clone().as_deref() {
        let reader = Reader {
            url: url.clone(),
            token: token.clone(),
        };
        flood_child(reader, args.flooders, args.flood_rate);
        return;
    }
    bench::block_on(run(&args));
}

/// A manager's token and the URL of its organisation's system.
#[derive(Clone)]
struct Reader {
    token: String,
    url: String,
}

/// One other organisation's client: its own connection, kept across slices.
#[derive(Clone)]
struct Other {
    reader: Reader,
    http: reqwest::Client,
}

/// What the others saw in one kind of slice.
struct Phase {
    latency: Histogram<u64>,
    not_ok: u64,
}

impl Phase {
    fn new() -> Phase {
        Phase {
            latency: Histogram::new(3).unwrap(),
            not_ok: 0,
        }
    }

    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1e3
    }
}

/// Every other organisation reads its system `rate` times a second for
/// `slice`, one request at a time each; their latencies go into `phase`.
async fn measure_others(
    others: &[Other],
    rate: u64,
    slice: Duration,
    phase: &mut Phase,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for other in others.iter().cloned() {
        tasks.spawn(async move {
            let mut latency = Histogram::<u64>::new(3).unwrap();
            let mut not_ok = 0u64;
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let until = Instant::now() + slice;
            loop {
                tick.tick().await;
                if Instant::now() >= until {
                    break;
                }
                let t = Instant::now();
                let resp = other
                    .http
                    .get(&other.reader.url)
                    .bearer_auth(&other.reader.token)
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        status == 200
                    }
                    Err(_) => false,
                };
                latency.record(t.elapsed().as_micros() as u64).unwrap();
                if !ok {
                    not_ok += 1;
                }
            }
            (latency, not_ok)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (latency, not_ok) = done?;
        phase.latency.add(latency)?;
        phase.not_ok += not_ok;
    }
    Ok(())
}

/// The flood's process: floods as `reader` while the last line on its
/// standard input was `on`, until that closes, printing `sent refused failed`
/// (running totals) every 100 ms.
fn flood_child(reader: Reader, flooders: usize, flood_rate: u64) {
    #[derive(Default)]
    struct Count {
        sent: AtomicU64,
        refused: AtomicU64,
        failed: AtomicU64,
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let on = Arc::new(std::sync::atomic::AtomicBool::new(false));
    runtime.block_on(async move {
        let http = reqwest::Client::new();
        let count = Arc::new(Count::default());
        for _ in 0..flooders {
            let (http, reader, count, on) =
                (http.clone(), reader.clone(), count.clone(), on.clone());
            tokio::spawn(async move {
                let mut tick = (flood_rate > 0).then(|| {
                    let each = flood_rate.div_ceil(flooders as u64).max(1);
                    let mut t = tokio::time::interval(Duration::from_micros(1_000_000 / each));
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    t
                });
                loop {
                    if !on.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    count.sent.fetch_add(1, Ordering::Relaxed);
                    match http
                        .get(&reader.url)
                        .bearer_auth(&reader.token)
                        .send()
                        .await
                    {
                        Ok(r) => {
                            if r.status().as_u16() == 429 {
                                count.refused.fetch_add(1, Ordering::Relaxed);
                            }
                            let _ = r.bytes().await;
                        }
                        Err(_) => {
                            count.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        let report = count.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                println!(
                    "{} {} {}",
                    report.sent.load(Ordering::Relaxed),
                    report.refused.load(Ordering::Relaxed),
                    report.failed.load(Ordering::Relaxed)
                );
            }
        });
        // `on` / `off` lines until the parent closes our standard input.
        let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                on.store(line.trim() == "on", Ordering::Relaxed);
            }
            let _ = closed.send(());
        });
        let _ = on_close.await;
    });
    runtime.shutdown_background();
}

/// The flood's process, seen from the benchmark: its latest running totals.
struct Flood {
    child: std::process::Child,
    totals: Arc<parking_lot::Mutex<(u64, u64, u64)>>,
}

impl Flood {
    fn start(reader: &Reader, args: &Args) -> anyhow::Result<Flood> {
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new("nice")
            .args(["-n", "19"])
            .arg(exe)
            .args(["--flood-child", &reader.url, &reader.token])
            .args(["--flooders", &args.flooders.to_string()])
            .args(["--flood-rate", &args.flood_rate.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("nice (coreutils) runs the flood's process")?;
        let stdout = child.stdout.take().context("the flood's output")?;
        let totals = Arc::new(parking_lot::Mutex::new((0, 0, 0)));
        let latest = totals.clone();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let n: Vec<u64> = line.split(' ').filter_map(|v| v.parse().ok()).collect();
                if let [sent, refused, failed] = n[..] {
                    *latest.lock() = (sent, refused, failed);
                }
            }
        });
        Ok(Flood { child, totals })
    }

    fn totals(&self) -> (u64, u64, u64) {
        *self.totals.lock()
    }

    /// Switches the flood on or off.
    fn set(&mut self, on: bool) -> anyhow::Result<()> {
        use std::io::Write as _;
        let stdin = self.child.stdin.as_mut().context("the flood's input")?;
        writeln!(stdin, "{}", if on { "on" } else { "off" })?;
        stdin.flush()?;
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let db = TestDb::fresh().await?;
    let dir = tempfile::tempdir()?;
    let mut settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    settings.rate_limit.per_second = args.per_second;
    settings.rate_limit.burst = args.burst;
    let running = renkei_registry::Registry::spawn(&settings, "bench-registry").await?;
    let base = format!("http://{}", running.addr);
    println!(
        "org_flood: registry on {} ({}), {} HTTP workers, rate limit {}",
        base,
        if db.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        settings.http.workers,
        if args.per_second == 0 {
            "off".to_owned()
        } else {
            format!("{}/s burst {}", args.per_second, args.burst)
        }
    );

    let http = reqwest::Client::new();
    let admin = token(Role::Admin, None);
    let op_org = create(
        &http,
        &format!("{base}/v1/organizations"),
        &admin,
        &json!({"name": "Platform Office", "kind": "platform_operator"}),
    )
    .await?;
    let operator = token(Role::Operator, Some(op_org));
    let platform = create(
        &http,
        &format!("{base}/v1/systems"),
        &operator,
        &json!({"name": "Common Platform", "kind": "platform", "owner_org_id": op_org,
            "confidentiality": 3, "integrity": 2, "availability": 2}),
    )
    .await?;
    let mut readers = Vec::new();
    for i in 0..=args.others {
        let org = create(
            &http,
            &format!("{base}/v1/organizations"),
            &admin,
            &json!({"name": format!("Agency {i}"), "kind": "government_agency"}),
        )
        .await?;
        let system = create(
            &http,
            &format!("{base}/v1/systems"),
            &operator,
            &json!({"name": format!("Agency {i} records"), "kind": "linked", "owner_org_id": org,
                "platform_id": platform, "confidentiality": 2, "integrity": 1, "availability": 1}),
        )
        .await?;
        readers.push(Reader {
            token: token(Role::Manager, Some(org)),
            url: format!("{base}/v1/systems/{system}"),
        });
    }
    let flooder = readers.remove(0);
    let others: Vec<Other> = readers
        .into_iter()
        .map(|reader| Other {
            reader,
            http: reqwest::Client::new(),
        })
        .collect();
    let mut flood = Flood::start(&flooder, args)?;
    // Warm up (connections, caches, the flood's process), then let every
    // bucket fill again.
    flood.set(true)?;
    measure_others(
        &others,
        args.rate,
        Duration::from_secs(2),
        &mut Phase::new(),
    )
    .await?;
    flood.set(false)?;
    tokio::time::sleep(Duration::from_secs(6)).await;

    println!(
        "{} other organisations at {}/s each, {} s alone and {} s flooded per round in alternating 1 s slices; \
         A floods from {} connections at {}",
        args.others,
        args.rate,
        args.seconds,
        args.seconds,
        args.flooders,
        if args.flood_rate == 0 {
            "full speed".to_owned()
        } else {
            format!("{}/s", args.flood_rate)
        }
    );
    let (mut base50, mut base99, mut flood50, mut flood99, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut flood_rates, mut refused_shares) = (Vec::new(), Vec::new());
    let slice = Duration::from_secs(1);
    for round in 1..=args.rounds {
        let (mut alone, mut flooded) = (Phase::new(), Phase::new());
        let (mut sent, mut refused, mut flooding) = (0u64, 0u64, Duration::ZERO);
        for _ in 0..args.seconds {
            measure_others(&others, args.rate, slice, &mut alone).await?;
            flood.set(true)?;
            // The flood's first requests spend A's burst while it ramps up.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (sent_before, refused_before, _) = flood.totals();
            let started = Instant::now();
            measure_others(&others, args.rate, slice, &mut flooded).await?;
            flooding += started.elapsed();
            let (sent_after, refused_after, _) = flood.totals();
            flood.set(false)?;
            sent += sent_after - sent_before;
            refused += refused_after - refused_before;
            // In-flight flooding requests finish before the next quiet slice.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let failed = flood.totals().2;
        let ratio = flooded.ms(0.99) / alone.ms(0.99);
        let flood_rate = sent as f64 / flooding.as_secs_f64();
        let refused_share = refused as f64 / sent.max(1) as f64;
        println!(
            "round {round}: others alone p50 {:.2} ms p99 {:.2} ms ({} requests, {} not 200) | \
             flooded p50 {:.2} ms p99 {:.2} ms ({} requests, {} not 200) | p99 ×{ratio:.2} | \
             A sent {flood_rate:.0}/s, {:.1} % refused (429){}",
            alone.ms(0.5),
            alone.ms(0.99),
            alone.latency.len(),
            alone.not_ok,
            flooded.ms(0.5),
            flooded.ms(0.99),
            flooded.latency.len(),
            flooded.not_ok,
            refused_share * 100.0,
            if failed > 0 {
                format!(", {failed} failed to connect")
            } else {
                String::new()
            }
        );
        base50.push(alone.ms(0.5));
        base99.push(alone.ms(0.99));
        flood50.push(flooded.ms(0.5));
        flood99.push(flooded.ms(0.99));
        ratios.push(ratio);
        flood_rates.push(flood_rate);
        refused_shares.push(refused_share);
    }
    flood.stop().await?;
    println!(
        "median of {} rounds: others alone p50 {:.2} ms p99 {:.2} ms | flooded p50 {:.2} ms p99 {:.2} ms | \
         p99 ratio ×{:.2} (target ≤ ×1.20) | A {:.0} requests/s, {:.1} % refused",
        args.rounds,
        median(base50),
        median(base99),
        median(flood50),
        median(flood99),
        median(ratios),
        median(flood_rates),
        median(refused_shares) * 100.0
    );
    running.stop().await?;
    drop(nats);
    Ok(())
}
