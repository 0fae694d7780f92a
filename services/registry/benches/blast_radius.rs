//! Blast radius: the in-memory [`GraphIndex`] against a recursive CTE in
//! PostgreSQL, on the same generated platform, in the same run.
//!
//! The platform is [`renkei_registry::synthetic`]'s, shaped like a real one
//! (seeded, so every run sees the same graph): about one organisation per 100 systems, each a
//! cluster of systems linked mostly "downstream" inside the cluster; one
//! platform per 20 organisations, each with 20 shared platform components
//! (hubs) that link to the entry systems of the member clusters and are
//! linked back from some of them; a few partner links between organisations
//! of the same platform. Every link carries one to three incident categories,
//! some categories far more often than others, so that the same origin has a
//! large radius for one category and a small one for another. Radii range
//! from a handful of systems to a few thousand.
//!
//! It then times `GraphIndex::blast_radius` for random (origin, category)
//! pairs, bucketed by the size of the radius (median, p99, max), and runs the
//! same question as a recursive CTE over a `links(from_id, to_id, mask)` table
//! for a sample of those origins per bucket, checking that both answers agree
//! (same systems, same shortest hop counts). The database is a fresh one
//! (`renkei_bench_<pid>`) created next to `RENKEI_BENCH_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`) and dropped at the
//! end; if PostgreSQL cannot be reached the CTE part is skipped.
//!
//! ```text
//! cargo bench -p renkei-registry --bench blast_radius
//! cargo bench -p renkei-registry --bench blast_radius -- --systems 10000 --links 100000 --queries 2000
//! ```
//!
//! Options: `--systems N` (100000), `--links N` (1000000), `--queries N`
//! (in-memory queries, 100000), `--cte-queries N` (CTE queries per bucket,
//! 100), `--cte-budget S` (seconds per bucket and CTE variant, 30), `--seed N`,
//! `--no-db` (skip PostgreSQL).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use renkei_registry::domain::{Category, CategorySet, GraphIndex};
use renkei_registry::synthetic::{Platform, generate, link_id};
use renkei_testkit::bench;
use rustc_hash::FxHashMap;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{self, AssertSqlSafe, ConnectOptions, Connection, Row};
use uuid::Uuid;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Radius-size buckets the report is broken down by.
const BUCKETS: [(usize, usize, &str); 5] = [
    (1, 10, "1–10"),
    (11, 100, "11–100"),
    (101, 1_000, "101–1,000"),
    (1_001, 10_000, "1,001–10,000"),
    (10_001, usize::MAX, "> 10,000"),
];

/// The hop bound of the CTE; far above any shortest path in the generated graph.
const MAX_HOPS: i32 = 64;

/// The question asked of PostgreSQL: every system reachable from `$1` over
/// links carrying `$2`, with its shortest hop count. `UNION` drops repeated
/// (id, hops) rows and the hop bound stops the recursion on cycles.
const CTE_HOPS: &str = "WITH RECURSIVE r(id, hops) AS ( \
       SELECT to_id, 1 FROM links WHERE from_id = $1 AND mask & $2 <> 0 \
     UNION \
       SELECT l.to_id, r.hops + 1 FROM links l JOIN r ON l.from_id = r.id \
       WHERE l.mask & $2 <> 0 AND r.hops < $3 \
     ) SELECT id, min(hops) FROM r GROUP BY id";

/// The cheapest CTE that still answers "which systems": no hop counts, so
/// `UNION` on the id alone visits each system once. A lower bound on what
/// PostgreSQL can do, shown for honesty; it answers less than the index.
const CTE_REACH: &str = "WITH RECURSIVE r(id) AS ( \
       SELECT to_id FROM links WHERE from_id = $1 AND mask & $2 <> 0 \
     UNION \
       SELECT l.to_id FROM links l JOIN r ON l.from_id = r.id WHERE l.mask & $2 <> 0 \
     ) SELECT id FROM r";

/// The in-memory blast radius against a recursive CTE in PostgreSQL.
#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value_t = 100_000, value_parser = bench::whole::<usize>)]
    systems: usize,
    #[arg(long, default_value_t = 1_000_000, value_parser = bench::whole::<usize>)]
    links: usize,
    /// In-memory queries.
    #[arg(long, default_value_t = 100_000, value_parser = bench::whole::<usize>)]
    queries: usize,
    /// CTE queries per bucket.
    #[arg(long, default_value_t = 100, value_parser = bench::whole::<usize>)]
    cte_queries: usize,
    /// Seconds per bucket and CTE variant.
    #[arg(long = "cte-budget", default_value_t = 30, value_parser = bench::whole::<u64>)]
    cte_budget_secs: u64,
    #[arg(long, default_value_t = 0x5eed_b1a5, value_parser = bench::whole::<u64>)]
    seed: u64,
    /// Skip PostgreSQL.
    #[arg(long)]
    no_db: bool,
    #[arg(skip = std::env::var("RENKEI_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned()))]
    database_url: String,
}

fn bucket_of(radius: usize) -> Option<usize> {
    BUCKETS
        .iter()
        .position(|(lo, hi, _)| (*lo..=*hi).contains(&radius))
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).unwrap()
}

fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One in-memory query and what it found.
struct Query {
    origin: u32,
    category: usize,
    radius: usize,
}

/// Timings of one CTE variant in one bucket.
#[derive(Default)]
struct CteBucket {
    hist: Option<Histogram<u64>>,
    timed_out: usize,
    mismatches: usize,
}

impl CteBucket {
    fn record(&mut self, ns: u64) {
        self.hist
            .get_or_insert_with(histogram)
            .record(ns.max(1))
            .unwrap();
    }
    fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, Histogram::len)
    }
    fn quantile(&self, q: f64) -> Option<u64> {
        self.hist
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(q))
    }
}

struct CteReport {
    server_version: String,
    load: Duration,
    index: Duration,
    /// median of `SELECT 1`: the floor under every CTE figure
    round_trip: u64,
    hops: Vec<CteBucket>,
    reach: Vec<CteBucket>,
}

fn main() {
    let args: Args = bench::args();
    assert!(args.systems >= 1_000, "--systems must be at least 1000");
    let mut rng = StdRng::seed_from_u64(args.seed);
    println!(
        "# blast radius: {} systems, {} links, seed {:#x}",
        args.systems, args.links, args.seed
    );
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );

    let started = Instant::now();
    let platform = generate(args.systems, args.links, &mut rng);
    println!(
        "generated {} organisations on {} platforms ({} shared components) in {:.2?}",
        platform.orgs,
        platform.platforms,
        platform.hubs,
        started.elapsed()
    );

    let rss_before = rss_kib();
    let started = Instant::now();
    let mut index = GraphIndex::new();
    for node in &platform.nodes {
        index.upsert_system(*node);
    }
    for (i, &(from, to, mask)) in platform.links.iter().enumerate() {
        let (from, to) = (
            platform.nodes[from as usize].id,
            platform.nodes[to as usize].id,
        );
        index.add_link(
            link_id(i),
            from,
            to,
            CategorySet::from_mask(i32::from(mask)),
        );
    }
    let build = started.elapsed();
    assert_eq!(index.system_count(), args.systems);
    assert_eq!(index.link_count(), args.links);
    let rss = match (rss_before, rss_kib()) {
        (Some(a), Some(b)) => format!(", resident memory +{} MiB", b.saturating_sub(a) / 1024),
        _ => String::new(),
    };
    println!("index built in {build:.2?}{rss}");

    // warm up, then time random (origin, category) pairs
    for _ in 0..500 {
        let origin = platform.nodes[rng.random_range(0..args.systems)].id;
        std::hint::black_box(index.blast_radius(origin, Category::ALL[rng.random_range(0..6)]));
    }
    let mut hists: Vec<Histogram<u64>> = BUCKETS.iter().map(|_| histogram()).collect();
    let mut empty = 0usize;
    let mut queries = Vec::with_capacity(args.queries);
    let started = Instant::now();
    for _ in 0..args.queries {
        let origin = rng.random_range(0..args.systems) as u32;
        let category = rng.random_range(0..6);
        let id = platform.nodes[origin as usize].id;
        let t = Instant::now();
        let reached = index.blast_radius(id, Category::ALL[category]);
        let ns = t.elapsed().as_nanos() as u64;
        let radius = std::hint::black_box(reached).map_or(0, |r| r.len());
        match bucket_of(radius) {
            Some(b) => hists[b].record(ns.max(1)).unwrap(),
            None => empty += 1,
        }
        queries.push(Query {
            origin,
            category,
            radius,
        });
    }
    println!(
        "{} in-memory queries in {:.2?}",
        args.queries,
        started.elapsed()
    );

    let mut distribution = format!("radius sizes: 0 → {empty}");
    for (b, (_, _, label)) in BUCKETS.iter().enumerate() {
        write!(distribution, ", {label} → {}", hists[b].len()).unwrap();
    }
    let mut by_category = [0usize; 6];
    let mut largest = [0usize; 6];
    for q in &queries {
        by_category[q.category] += q.radius;
        largest[q.category] = largest[q.category].max(q.radius);
    }
    println!(
        "{distribution}; largest {}",
        queries.iter().map(|q| q.radius).max().unwrap_or(0)
    );
    for (c, cat) in Category::ALL.iter().enumerate() {
        let n = queries.iter().filter(|q| q.category == c).count().max(1);
        println!(
            "  {:<20} mean radius {:>6.0}, largest {:>6}",
            cat.as_str(),
            by_category[c] as f64 / n as f64,
            largest[c]
        );
    }

    let cte = if args.no_db {
        println!("PostgreSQL: skipped (--no-db)");
        None
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        match runtime.block_on(run_cte(&args, &platform, &index, &queries)) {
            Ok(report) => Some(report),
            Err(e) => {
                println!("PostgreSQL: unavailable or failed ({e}); CTE comparison skipped");
                None
            }
        }
    };

    println!();
    if let Some(c) = &cte {
        println!(
            "PostgreSQL {}: links loaded with COPY in {:.2?}, indexed and analysed in {:.2?}; round trip (SELECT 1) median {}",
            c.server_version,
            c.load,
            c.index,
            fmt_ns(c.round_trip)
        );
        let checked: u64 = c.hops.iter().chain(&c.reach).map(CteBucket::count).sum();
        let mismatches: usize = c.hops.iter().chain(&c.reach).map(|b| b.mismatches).sum();
        let timed_out: usize = c.hops.iter().chain(&c.reach).map(|b| b.timed_out).sum();
        println!(
            "CTE answers checked against the index: {checked}, mismatches: {mismatches}, timed out: {timed_out}"
        );
        println!();
    }
    println!(
        "| radius (systems) | queries | in-memory median | in-memory p99 | in-memory max | CTE queries | CTE median | CTE p99 | speed-up | reach-only CTE median | speed-up |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (b, (_, _, label)) in BUCKETS.iter().enumerate() {
        let h = &hists[b];
        if h.is_empty() {
            continue;
        }
        let median = h.value_at_quantile(0.5);
        let mut row = format!(
            "| {label} | {} | {} | {} | {}",
            h.len(),
            fmt_ns(median),
            fmt_ns(h.value_at_quantile(0.99)),
            fmt_ns(h.max())
        );
        let cell = |c: &CteBucket, q: f64| c.quantile(q).map_or_else(|| "–".to_owned(), fmt_ns);
        let ratio = |c: &CteBucket| {
            c.quantile(0.5).map_or_else(
                || "–".to_owned(),
                |m| format!("{:.0}×", m as f64 / median as f64),
            )
        };
        match &cte {
            Some(c) => {
                let (hb, rb) = (&c.hops[b], &c.reach[b]);
                let timed_out = if hb.timed_out > 0 {
                    format!(" (+{} timed out)", hb.timed_out)
                } else {
                    String::new()
                };
                write!(
                    row,
                    " | {}{timed_out} | {} | {} | {} | {} | {} |",
                    hb.count(),
                    cell(hb, 0.5),
                    cell(hb, 0.99),
                    ratio(hb),
                    cell(rb, 0.5),
                    ratio(rb)
                )
                .unwrap();
            }
            None => row.push_str(" | – | – | – | – | – | – |"),
        }
        println!("{row}");
    }
    println!();
    let worst_small = hists[..3]
        .iter()
        .filter(|h| !h.is_empty())
        .map(|h| h.value_at_quantile(0.99))
        .max()
        .unwrap_or(0);
    println!(
        "target p99 ≤ 10 ms for radii ≤ 1,000: {} (worst p99 {})",
        if worst_small <= 10_000_000 {
            "met"
        } else {
            "NOT met"
        },
        fmt_ns(worst_small)
    );
    if let Some(c) = &cte {
        let speedups: Vec<f64> = (0..BUCKETS.len())
            .filter_map(|b| {
                Some(c.hops[b].quantile(0.5)? as f64 / hists[b].value_at_quantile(0.5) as f64)
            })
            .collect();
        let least = speedups.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "target ≥ 50× faster than the CTE (median, every bucket): {} (least {least:.0}×)",
            if least >= 50.0 { "met" } else { "NOT met" }
        );
    }
}

/// Creates a scratch database, loads the links, runs the CTEs, drops it.
async fn run_cte(
    args: &Args,
    platform: &Platform,
    index: &GraphIndex,
    queries: &[Query],
) -> Result<CteReport, sqlx::Error> {
    let admin_options = PgConnectOptions::from_str(&args.database_url)?.disable_statement_logging();
    let mut admin = tokio::time::timeout(
        Duration::from_secs(5),
        PgConnection::connect_with(&admin_options),
    )
    .await
    .map_err(|_| sqlx::Error::PoolTimedOut)??;
    let database = format!("renkei_bench_{}", std::process::id());
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {database}")))
        .execute(&mut admin)
        .await?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await?;
    println!("PostgreSQL: created database {database}");
    let result = cte_in(
        args,
        admin_options.clone().database(&database),
        platform,
        index,
        queries,
    )
    .await;
    let dropped = sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE {database} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    match &dropped {
        Ok(_) => println!("PostgreSQL: dropped database {database}"),
        Err(e) => println!("PostgreSQL: could not drop database {database}: {e}"),
    }
    admin.close().await?;
    result
}

async fn cte_in(
    args: &Args,
    options: PgConnectOptions,
    platform: &Platform,
    index: &GraphIndex,
    queries: &[Query],
) -> Result<CteReport, sqlx::Error> {
    let mut conn = PgConnection::connect_with(&options).await?;
    let server_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE links (from_id uuid NOT NULL, to_id uuid NOT NULL, mask int NOT NULL)",
    )
    .execute(&mut conn)
    .await?;

    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY links (from_id, to_id, mask) FROM STDIN")
        .await?;
    let mut buf = String::with_capacity(1 << 20);
    for &(from, to, mask) in &platform.links {
        let (from, to) = (
            platform.nodes[from as usize].id,
            platform.nodes[to as usize].id,
        );
        writeln!(buf, "{from}\t{to}\t{mask}").unwrap();
        if buf.len() > (1 << 20) - 128 {
            copy.send(buf.as_bytes()).await?;
            buf.clear();
        }
    }
    copy.send(buf.as_bytes()).await?;
    copy.finish().await?;
    let load = started.elapsed();

    // a covering index, so the recursion can use index-only scans: the
    // fairest footing PostgreSQL can get
    let started = Instant::now();
    sqlx::raw_sql("CREATE INDEX links_from ON links (from_id) INCLUDE (to_id, mask)")
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql("VACUUM ANALYZE links")
        .execute(&mut conn)
        .await?;
    let index_time = started.elapsed();
    println!(
        "PostgreSQL {server_version}: {} links loaded in {load:.2?}, indexed in {index_time:.2?}",
        platform.links.len()
    );
    sqlx::raw_sql("SET statement_timeout = '60s'")
        .execute(&mut conn)
        .await?;

    // warm the cache and the prepared statements
    for q in queries.iter().take(20) {
        let mask = 1i32 << q.category;
        let id = platform.nodes[q.origin as usize].id;
        sqlx::query(CTE_HOPS)
            .bind(id)
            .bind(mask)
            .bind(MAX_HOPS)
            .fetch_all(&mut conn)
            .await?;
        sqlx::query(CTE_REACH)
            .bind(id)
            .bind(mask)
            .fetch_all(&mut conn)
            .await?;
    }

    let mut round_trip = histogram();
    for _ in 0..1_000 {
        let t = Instant::now();
        sqlx::query("SELECT 1").fetch_one(&mut conn).await?;
        round_trip
            .record((t.elapsed().as_nanos() as u64).max(1))
            .unwrap();
    }
    let round_trip = round_trip.value_at_quantile(0.5);

    let mut hops: Vec<CteBucket> = BUCKETS.iter().map(|_| CteBucket::default()).collect();
    let mut reach: Vec<CteBucket> = BUCKETS.iter().map(|_| CteBucket::default()).collect();
    for (b, (_, _, label)) in BUCKETS.iter().enumerate() {
        // the first queries that landed in this bucket: a random sample of it
        let sample: Vec<&Query> = queries
            .iter()
            .filter(|q| bucket_of(q.radius) == Some(b))
            .take(args.cte_queries)
            .collect();
        if sample.is_empty() {
            continue;
        }
        for (variant, out) in [(CTE_HOPS, &mut hops[b]), (CTE_REACH, &mut reach[b])] {
            let started = Instant::now();
            for q in &sample {
                if started.elapsed() > Duration::from_secs(args.cte_budget_secs) {
                    break;
                }
                let origin = platform.nodes[q.origin as usize].id;
                let category = Category::ALL[q.category];
                let mask = 1i32 << q.category;
                let mut query = sqlx::query(variant).bind(origin).bind(mask);
                if variant == CTE_HOPS {
                    query = query.bind(MAX_HOPS);
                }
                let t = Instant::now();
                let rows = match query.fetch_all(&mut conn).await {
                    Ok(rows) => rows,
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57014") => {
                        out.timed_out += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                out.record(t.elapsed().as_nanos() as u64);

                // same systems (the origin aside), and for the hop variant the same distances
                let expected: FxHashMap<Uuid, u32> = index
                    .blast_radius(origin, category)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| (r.system_id, r.hops))
                    .collect();
                let mut got: FxHashMap<Uuid, u32> = FxHashMap::default();
                for row in &rows {
                    let id: Uuid = row.try_get(0)?;
                    let h: i32 = if variant == CTE_HOPS {
                        row.try_get(1)?
                    } else {
                        0
                    };
                    if id != origin {
                        got.insert(id, h as u32);
                    }
                }
                let same = if variant == CTE_HOPS {
                    got == expected
                } else {
                    got.len() == expected.len() && got.keys().all(|k| expected.contains_key(k))
                };
                if !same {
                    out.mismatches += 1;
                    println!(
                        "MISMATCH {label}: origin {origin} {}: index {} systems, CTE {}",
                        category.as_str(),
                        expected.len(),
                        got.len()
                    );
                }
            }
        }
        println!(
            "CTE {label}: {} hop queries, {} reach-only queries",
            hops[b].count() + hops[b].timed_out as u64,
            reach[b].count() + reach[b].timed_out as u64
        );
    }
    conn.close().await?;
    Ok(CteReport {
        server_version,
        load,
        index: index_time,
        round_trip,
        hops,
        reach,
    })
}
