//! Scenario 1, blast radius: the registry's in-memory
//! [`GraphIndex`](renkei_registry::domain::GraphIndex) against its floor, a
//! recursive CTE in PostgreSQL over the same generated platform.
//!
//! The generator is the one of `services/registry/benches/blast_radius.rs`,
//! moved here (seeded, so every run sees the same graph): about one
//! organisation per 100 systems, each a cluster of systems linked mostly
//! downstream inside the cluster; one platform per 20 organisations with 20
//! shared components (hubs) linked to and from the member clusters; a few
//! partner links; every link carries one to three incident categories.
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
use renkei_registry::domain::{Category, CategorySet, GraphIndex, Lifecycle, SystemNode};
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

/// Relative weights of the six categories (in `Category::ALL` order:
/// malware, unauthorized_access, data_leak, denial_of_service, outage,
/// other) on each kind of generated link.
const INTRA_WEIGHTS: [u32; 6] = [30, 25, 10, 12, 18, 5];
const HUB_TO_MEMBER_WEIGHTS: [u32; 6] = [25, 15, 10, 20, 25, 5];
const MEMBER_TO_HUB_WEIGHTS: [u32; 6] = [20, 35, 20, 5, 5, 15];
const HUB_TO_HUB_WEIGHTS: [u32; 6] = [25, 20, 10, 20, 20, 5];
const PARTNER_WEIGHTS: [u32; 6] = [25, 25, 20, 5, 10, 15];

/// The generated platform, by slot (`0..systems`).
struct Platform {
    nodes: Vec<SystemNode>,
    /// (from slot, to slot, category mask)
    links: Vec<(u32, u32, u8)>,
    orgs: usize,
    platforms: usize,
    hubs: usize,
}

struct Org {
    primary: usize,
    start: usize,
    len: usize,
}

impl Org {
    /// The cluster's entry systems: the first tenth, where links from the
    /// platform's components land and links to them leave from.
    fn entries(&self) -> usize {
        (self.len / 10).max(1)
    }
}

fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random::<u128>().to_le_bytes()).into_uuid()
}

/// One category (70 %), two (25 %) or three (5 %), drawn by weight.
fn pick_mask(rng: &mut StdRng, weights: &[u32; 6]) -> u8 {
    let total: u32 = weights.iter().sum();
    let wanted = match rng.random_range(0..100) {
        0..70 => 1,
        70..95 => 2,
        _ => 3,
    };
    let mut mask = 0u8;
    while mask.count_ones() < wanted {
        let mut x = rng.random_range(0..total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                mask |= 1 << i;
                break;
            }
            x -= w;
        }
    }
    mask
}

fn generate(systems: usize, links: usize, rng: &mut StdRng) -> Platform {
    let org_count = (systems / 100).max(4);
    let platform_count = (org_count / 20).max(1);
    let hubs_per_platform = 20.min(systems / (10 * platform_count)).max(2);
    let hub_count = platform_count * hubs_per_platform;
    let member_orgs = org_count - platform_count;
    let members = systems - hub_count;

    let ids: Vec<Uuid> = (0..systems).map(|_| random_uuid(rng)).collect();
    let platform_ids: Vec<Uuid> = (0..platform_count).map(|_| random_uuid(rng)).collect();
    let operator_ids: Vec<Uuid> = (0..platform_count).map(|_| random_uuid(rng)).collect();
    let org_ids: Vec<Uuid> = (0..member_orgs).map(|_| random_uuid(rng)).collect();

    // cluster sizes vary about 20-fold; boundaries from cumulative weights
    let weights: Vec<f64> = (0..member_orgs)
        .map(|_| (0.3 + rng.random::<f64>()).powi(2))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut orgs = Vec::with_capacity(member_orgs);
    let mut cumulative = 0.0;
    let mut start = hub_count;
    for w in &weights {
        cumulative += w;
        let end = hub_count + ((cumulative / total) * members as f64).round() as usize;
        let end = end.min(systems);
        orgs.push(Org {
            primary: rng.random_range(0..platform_count),
            start,
            len: end - start,
        });
        start = end;
    }
    if let Some(last) = orgs.last_mut() {
        last.len = systems - last.start;
    }
    // which organisations each platform serves: those homed on it, and one in
    // ten organisations also uses a second platform (downstream of it only)
    let mut served: Vec<Vec<usize>> = vec![Vec::new(); platform_count];
    let mut homed: Vec<Vec<usize>> = vec![Vec::new(); platform_count];
    let mut org_of = vec![usize::MAX; systems];
    for (o, org) in orgs.iter().enumerate() {
        served[org.primary].push(o);
        homed[org.primary].push(o);
        if platform_count > 1 && rng.random_bool(0.1) {
            let mut other = rng.random_range(0..platform_count - 1);
            if other >= org.primary {
                other += 1;
            }
            served[other].push(o);
        }
        org_of[org.start..org.start + org.len].fill(o);
    }

    let mut nodes = Vec::with_capacity(systems);
    for (slot, id) in ids.iter().enumerate() {
        let (owner_org_id, platform_id) = if slot < hub_count {
            let p = slot / hubs_per_platform;
            (operator_ids[p], platform_ids[p])
        } else {
            let o = org_of[slot];
            (org_ids[o], platform_ids[orgs[o].primary])
        };
        nodes.push(SystemNode {
            id: *id,
            owner_org_id,
            platform_id,
            lifecycle: Lifecycle::Active,
        });
    }

    let hub = |p: usize, i: usize| (p * hubs_per_platform + i) as u32;
    let mut out: Vec<(u32, u32, u8)> = Vec::with_capacity(links);
    let hub_to_hub = links / 100;
    let hub_to_member = links / 10;
    let member_to_hub = links * 3 / 100;
    let partner = links * 3 / 1000;
    let intra = links - hub_to_hub - hub_to_member - member_to_hub - partner;

    // platform components depend on each other
    for _ in 0..hub_to_hub {
        let p = rng.random_range(0..platform_count);
        let a = rng.random_range(0..hubs_per_platform);
        let b = (a + rng.random_range(1..hubs_per_platform)) % hubs_per_platform;
        out.push((hub(p, a), hub(p, b), pick_mask(rng, &HUB_TO_HUB_WEIGHTS)));
    }
    // platform components serve the entry systems of their own clusters, and
    // other systems of a cluster that uses the platform as its second one
    while out.len() < hub_to_hub + hub_to_member {
        let p = rng.random_range(0..platform_count);
        if served[p].is_empty() {
            continue;
        }
        let org = &orgs[served[p][rng.random_range(0..served[p].len())]];
        let to = if org.primary == p || org.len <= org.entries() {
            org.start + rng.random_range(0..org.entries())
        } else {
            org.start + rng.random_range(org.entries()..org.len)
        };
        out.push((
            hub(p, rng.random_range(0..hubs_per_platform)),
            to as u32,
            pick_mask(rng, &HUB_TO_MEMBER_WEIGHTS),
        ));
    }
    // a cluster's entry systems feed back into its own platform's components
    for _ in 0..member_to_hub {
        let org = &orgs[org_of[rng.random_range(hub_count..systems)]];
        let from = org.start + rng.random_range(0..org.entries());
        let to = hub(org.primary, rng.random_range(0..hubs_per_platform));
        out.push((from as u32, to, pick_mask(rng, &MEMBER_TO_HUB_WEIGHTS)));
    }
    // a few partner links between organisations on the same platform
    for _ in 0..partner {
        let from = rng.random_range(hub_count..systems);
        let peers = &homed[orgs[org_of[from]].primary];
        let other = &orgs[peers[rng.random_range(0..peers.len())]];
        let to = other.start + rng.random_range(0..other.len);
        out.push((from as u32, to as u32, pick_mask(rng, &PARTNER_WEIGHTS)));
    }
    // inside a cluster: mostly downstream, plus short links back (cycles)
    while out.len() < links {
        let org = &orgs[org_of[rng.random_range(hub_count..systems)]];
        if org.len < 2 {
            continue;
        }
        let (from, to) = if rng.random_bool(0.03) {
            let i = rng.random_range(1..org.len);
            (i, i - rng.random_range(1..=i.min(5)))
        } else {
            let i = rng.random_range(0..org.len - 1);
            (i, rng.random_range(i + 1..org.len))
        };
        out.push((
            (org.start + from) as u32,
            (org.start + to) as u32,
            pick_mask(rng, &INTRA_WEIGHTS),
        ));
    }
    debug_assert_eq!(
        out.len(),
        hub_to_hub + hub_to_member + member_to_hub + partner + intra
    );

    Platform {
        nodes,
        links: out,
        orgs: org_count,
        platforms: platform_count,
        hubs: hub_count,
    }
}

fn bucket_of(radius: usize) -> Option<usize> {
    BUCKETS
        .iter()
        .position(|(lo, hi, _)| (*lo..=*hi).contains(&radius))
}

fn link_id(i: usize) -> Uuid {
    Uuid::from_u64_pair(0xb1a5_7000_0000_0000, i as u64)
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
