//! Scenario 1, blast radius: the registry's in-memory
//! [`GraphIndex`](renkei_registry::domain::GraphIndex) against its floor, a
//! recursive CTE in PostgreSQL over the same generated platform.
//!
//! The platform is [`renkei_registry::synthetic`]'s, the one the registry's
//! own `blast_radius` bench uses (seeded, so every run sees the same graph).
//!
//! Random (origin, category) questions are timed on the index, bucketed by
//! the radius' size; a sample of each bucket is asked of PostgreSQL as a
//! recursive CTE (shortest hop counts) in a scratch database
//! (`renkei_bench_<pid>`, created next to `--database-url` and dropped at
//! the end), and every CTE answer is checked against the index's.

use std::fmt::Write as _;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use renkei_registry::domain::{Category, CategorySet, GraphIndex};
use renkei_registry::synthetic::{Platform, generate, link_id};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{self, AssertSqlSafe, ConnectOptions, Connection, Row as _};
use uuid::Uuid;

use super::stats::{Figure, Row, histogram, record};

/// Radius-size buckets the figures are broken down by.
const BUCKETS: [(usize, usize, &str); 5] = [
    (1, 10, "1–10"),
    (11, 100, "11–100"),
    (101, 1_000, "101–1,000"),
    (1_001, 10_000, "1,001–10,000"),
    (10_001, usize::MAX, "> 10,000"),
];

/// The hop bound of the CTE; far above any shortest path in the generated graph.
const MAX_HOPS: i32 = 64;

/// Every system reachable from `$1` over links carrying `$2`, with its
/// shortest hop count: what the index answers.
const CTE_HOPS: &str = "WITH RECURSIVE r(id, hops) AS ( \
       SELECT to_id, 1 FROM links WHERE from_id = $1 AND mask & $2 <> 0 \
     UNION \
       SELECT l.to_id, r.hops + 1 FROM links l JOIN r ON l.from_id = r.id \
       WHERE l.mask & $2 <> 0 AND r.hops < $3 \
     ) SELECT id, min(hops) FROM r GROUP BY id";

/// The sizes and budgets of scenario 1.
#[derive(Debug, Clone)]
pub struct Options {
    pub systems: usize,
    pub links: usize,
    pub seed: u64,
    /// In-memory questions.
    pub queries: usize,
    /// CTE questions per bucket at most.
    pub cte_queries: usize,
    /// Time per bucket for the CTE questions.
    pub cte_budget: Duration,
    /// The PostgreSQL server of the floor (an admin URL).
    pub database_url: String,
    /// No PostgreSQL at all.
    pub no_db: bool,
}

/// What scenario 1 found: the report's rows, the PostgreSQL version, notes.
pub struct Outcome {
    pub rows: Vec<Row>,
    pub postgres: Option<String>,
    pub notes: Vec<String>,
}

fn bucket_of(radius: usize) -> Option<usize> {
    BUCKETS
        .iter()
        .position(|(lo, hi, _)| (*lo..=*hi).contains(&radius))
}

/// One in-memory question and the size of its answer.
struct Query {
    origin: u32,
    category: usize,
    radius: usize,
}

/// Runs scenario 1.
pub async fn run(options: &Options, progress: &ProgressBar) -> anyhow::Result<Outcome> {
    anyhow::ensure!(options.systems >= 1_000, "--systems must be at least 1000");
    let mut notes = Vec::new();
    let mut rng = StdRng::seed_from_u64(options.seed);
    progress.set_message(format!(
        "blast radius: generating {} systems, {} links",
        options.systems, options.links
    ));
    let started = Instant::now();
    let platform = generate(options.systems, options.links, &mut rng);
    notes.push(format!(
        "generated {} organisations on {} platforms ({} shared components), {} systems, {} links in {:.1} s (seed {:#x})",
        platform.orgs,
        platform.platforms,
        platform.hubs,
        options.systems,
        options.links,
        started.elapsed().as_secs_f64(),
        options.seed
    ));

    progress.set_message("blast radius: building the index");
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

    progress.set_message(format!(
        "blast radius: {} in-memory questions",
        options.queries
    ));
    for _ in 0..500 {
        let origin = platform.nodes[rng.random_range(0..options.systems)].id;
        std::hint::black_box(index.blast_radius(origin, Category::ALL[rng.random_range(0..6)]));
    }
    let mut hists: Vec<Histogram<u64>> = BUCKETS
        .iter()
        .map(|_| histogram())
        .collect::<anyhow::Result<_>>()?;
    let mut queries = Vec::with_capacity(options.queries);
    for _ in 0..options.queries {
        let origin = rng.random_range(0..options.systems) as u32;
        let category = rng.random_range(0..6);
        let id = platform.nodes[origin as usize].id;
        let t = Instant::now();
        let reached = index.blast_radius(id, Category::ALL[category]);
        let took = t.elapsed();
        let radius = std::hint::black_box(reached).map_or(0, |r| r.len());
        if let Some(b) = bucket_of(radius) {
            record(&mut hists[b], took);
        }
        queries.push(Query {
            origin,
            category,
            radius,
        });
    }
    notes.push(format!(
        "index of {} systems and {} links built in {:.2} s",
        index.system_count(),
        index.link_count(),
        build.as_secs_f64()
    ));

    let (cte, postgres) = if options.no_db {
        notes.push("PostgreSQL floor skipped (--no-db)".into());
        (None, None)
    } else {
        progress.set_message("blast radius: the recursive CTE in PostgreSQL");
        match run_cte(options, &platform, &index, &queries, progress).await {
            Ok((hists, version, mismatches, note)) => {
                notes.push(note);
                if mismatches > 0 {
                    notes.push(format!(
                        "{mismatches} CTE answers DIFFERED from the index's"
                    ));
                }
                (Some(hists), Some(version))
            }
            Err(e) => {
                notes.push(format!(
                    "PostgreSQL unavailable or failed ({e:#}); no CTE floor"
                ));
                (None, None)
            }
        }
    };

    let mut rows = Vec::new();
    for (b, (_, _, label)) in BUCKETS.iter().enumerate() {
        let Some(value) = Figure::latency(&hists[b]) else {
            continue;
        };
        let floor = cte
            .as_ref()
            .and_then(|c: &Vec<Histogram<u64>>| Figure::latency(&c[b]));
        let cte_n = floor.as_ref().map_or(0, |f| f.samples);
        rows.push(Row::new(
            "1 blast radius",
            &format!("radius {label} systems"),
            Some(value),
            "recursive CTE (PostgreSQL)",
            floor,
            format!("{} index / {cte_n} CTE questions", hists[b].len()),
        ));
    }
    Ok(Outcome {
        rows,
        postgres,
        notes,
    })
}

/// Creates the scratch database, loads the links, asks the CTE, drops it:
/// per-bucket histograms, the server version, mismatches, a note.
async fn run_cte(
    options: &Options,
    platform: &Platform,
    index: &GraphIndex,
    queries: &[Query],
    progress: &ProgressBar,
) -> anyhow::Result<(Vec<Histogram<u64>>, String, usize, String)> {
    let admin_options =
        PgConnectOptions::from_str(&options.database_url)?.disable_statement_logging();
    let mut admin = tokio::time::timeout(
        Duration::from_secs(5),
        PgConnection::connect_with(&admin_options),
    )
    .await
    .context("PostgreSQL did not answer within 5 s")??;
    let database = format!("renkei_bench_{}", std::process::id());
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {database}")))
        .execute(&mut admin)
        .await?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await?;
    let result = cte_in(
        options,
        admin_options.clone().database(&database),
        platform,
        index,
        queries,
        progress,
    )
    .await;
    let dropped = sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE {database} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    admin.close().await.ok();
    let out = result?;
    dropped.with_context(|| format!("could not drop the scratch database {database}"))?;
    Ok(out)
}

async fn cte_in(
    options: &Options,
    pg: PgConnectOptions,
    platform: &Platform,
    index: &GraphIndex,
    queries: &[Query],
    progress: &ProgressBar,
) -> anyhow::Result<(Vec<Histogram<u64>>, String, usize, String)> {
    let mut conn = PgConnection::connect_with(&pg).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE links (from_id uuid NOT NULL, to_id uuid NOT NULL, mask int NOT NULL)",
    )
    .execute(&mut conn)
    .await?;
    progress.set_message(format!(
        "blast radius: loading {} links into PostgreSQL",
        platform.links.len()
    ));
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
        writeln!(buf, "{from}\t{to}\t{mask}")?;
        if buf.len() > (1 << 20) - 128 {
            copy.send(buf.as_bytes()).await?;
            buf.clear();
        }
    }
    copy.send(buf.as_bytes()).await?;
    copy.finish().await?;
    // a covering index so the recursion can use index-only scans: the
    // fairest footing PostgreSQL can get
    sqlx::raw_sql("CREATE INDEX links_from ON links (from_id) INCLUDE (to_id, mask)")
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql("VACUUM ANALYZE links")
        .execute(&mut conn)
        .await?;
    let load = started.elapsed();
    sqlx::raw_sql("SET statement_timeout = '60s'")
        .execute(&mut conn)
        .await?;
    for q in queries.iter().take(20) {
        sqlx::query(CTE_HOPS)
            .bind(platform.nodes[q.origin as usize].id)
            .bind(1i32 << q.category)
            .bind(MAX_HOPS)
            .fetch_all(&mut conn)
            .await?;
    }

    let mut hists: Vec<Histogram<u64>> = BUCKETS
        .iter()
        .map(|_| histogram())
        .collect::<anyhow::Result<_>>()?;
    let mut mismatches = 0;
    let mut timed_out = 0;
    for (b, (_, _, label)) in BUCKETS.iter().enumerate() {
        progress.set_message(format!("blast radius: CTE, radius {label}"));
        let started = Instant::now();
        for q in queries
            .iter()
            .filter(|q| bucket_of(q.radius) == Some(b))
            .take(options.cte_queries)
        {
            if started.elapsed() > options.cte_budget {
                break;
            }
            let origin = platform.nodes[q.origin as usize].id;
            let category = Category::ALL[q.category];
            let t = Instant::now();
            let rows = match sqlx::query(CTE_HOPS)
                .bind(origin)
                .bind(1i32 << q.category)
                .bind(MAX_HOPS)
                .fetch_all(&mut conn)
                .await
            {
                Ok(rows) => rows,
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57014") => {
                    timed_out += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            record(&mut hists[b], t.elapsed());
            let expected: std::collections::HashMap<Uuid, u32> = index
                .blast_radius(origin, category)
                .unwrap_or_default()
                .into_iter()
                .map(|r| (r.system_id, r.hops))
                .collect();
            let mut got = std::collections::HashMap::new();
            for row in &rows {
                let id: Uuid = row.try_get(0)?;
                let hops: i32 = row.try_get(1)?;
                if id != origin {
                    got.insert(id, hops as u32);
                }
            }
            if got != expected {
                mismatches += 1;
            }
        }
    }
    conn.close().await.ok();
    let note = format!(
        "PostgreSQL {version}: links loaded with COPY, indexed and analysed in {:.1} s; CTE answers checked against the index: {} mismatches, {timed_out} timed out (60 s)",
        load.as_secs_f64(),
        mismatches
    );
    Ok((hists, version, mismatches, note))
}
