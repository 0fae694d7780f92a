//! Spread alerts end to end: from `POST /v1/incidents` returning to the
//! last affected organisation's webhook receiving its alert, on a generated
//! platform, with all four services in this process talking over a real
//! nats-server, a real database and a real webhook receiver on loopback.
//!
//! The platform: `--systems` linked systems (10,000) owned by `--orgs`
//! organisations (1,000), in star groups of `--group` systems (200): every
//! member links to its group's hub and the hub to every member, all
//! carrying malware. An incident on a member reaches the hub and every other
//! member in two hops: about `--group` − 1 organisations, each with one
//! CSIRT webhook contact. A playbook of three steps makes tasks on every
//! incident (owners asked of demarcation), as in real use.
//!
//! Phases, each incident declared on a random member by its owner's CSIRT:
//! - steady: `--rate` incidents/s (10) for `--steady-secs` (30);
//! - burst: `--burst` declarations (1,000) spread over `--burst-secs` (10).
//!
//! For each phase: p50, p99 and max of the latency above, and of the POST
//! itself. Floor, in the same run: the raw NATS request/reply round trip
//! (an echo responder on the same server), and a JetStream publish with its
//! ack.
//!
//! ```text
//! cargo bench -p renkei-emergency --bench spread
//! RENKEI_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p renkei-emergency --bench spread
//! cargo bench -p renkei-emergency --bench spread -- --systems 2000 --steady-secs 10 --burst 200
//! ```
//! NATS: `RENKEI_TEST_NATS_SERVER` or `nats-server` on the PATH.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use renkei_testkit::bench::{self, id, post};
use renkei_testkit::{NatsServer, TestDb, WebhookSink, token};
use renkei_web::Role;
use serde_json::json;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(600);

/// Spread alerts end to end on a generated platform.
#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000, value_parser = bench::whole::<usize>)]
    systems: usize,
    #[arg(long, default_value_t = 1_000, value_parser = bench::whole::<usize>)]
    orgs: usize,
    #[arg(long, default_value_t = 200, value_parser = bench::whole::<usize>)]
    group: usize,
    #[arg(long, default_value_t = 10, value_parser = bench::whole::<usize>)]
    rate: usize,
    #[arg(long, default_value_t = 30, value_parser = bench::whole::<usize>)]
    steady_secs: usize,
    #[arg(long, default_value_t = 1_000, value_parser = bench::whole::<usize>)]
    burst: usize,
    #[arg(long, default_value_t = 10, value_parser = bench::whole::<usize>)]
    burst_secs: usize,
    #[arg(long, default_value_t = 32, value_parser = bench::whole::<usize>)]
    setup_concurrency: usize,
}

fn main() {
    let args: Args = bench::args();
    assert!(
        args.group >= 2 && args.group <= args.orgs,
        "--group must be 2..=--orgs"
    );
    bench::block_on(run(&args));
}

/// One declared incident: when its POST returned, and who must hear of it.
struct Declared {
    id: Uuid,
    returned: Instant,
    post: Duration,
    expected: usize,
}

fn ms(d: Duration) -> u64 {
    (d.as_secs_f64() * 1_000.0).round() as u64
}

fn line(label: &str, h: &Histogram<u64>) -> String {
    format!(
        "{label}: p50 {} ms, p99 {} ms, max {} ms (n = {})",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max(),
        h.len()
    )
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let db = TestDb::fresh().await?;
    let dir = tempfile::tempdir()?;
    let mut settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    settings.database.max_connections = 8;
    let registry = renkei_registry::Registry::spawn(&settings, "bench-registry").await?;
    let demarcation =
        renkei_demarcation::Demarcation::spawn(&settings, "bench-demarcation").await?;
    let contacts = renkei_contacts::Contacts::spawn(&settings, "bench-contacts").await?;
    let emergency = renkei_emergency::Emergency::spawn(&settings, "bench-emergency").await?;
    let sink = WebhookSink::start().await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let reg = format!("http://{}", registry.addr);
    let con = format!("http://{}", contacts.addr);
    let eme = format!("http://{}", emergency.addr);
    println!(
        "spread: {} systems, {} organisations, star groups of {} (≈{} organisations per alert); steady {}/s for {} s; burst {} in {} s; database {}",
        args.systems,
        args.orgs,
        args.group,
        args.group - 1,
        args.rate,
        args.steady_secs,
        args.burst,
        args.burst_secs,
        if db.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );

    // ---- the platform ----------------------------------------------------
    let setup = Instant::now();
    let admin = token(Role::Admin, None);
    let op_org = id(&post(
        &http,
        &format!("{reg}/v1/organizations"),
        &admin,
        &json!({"name": "Platform Office", "kind": "platform_operator"}),
    )
    .await?)?;
    let operator = token(Role::Operator, Some(op_org));
    let platform = id(&post(
        &http,
        &format!("{reg}/v1/systems"),
        &operator,
        &json!({"name": "Common Platform", "kind": "platform", "owner_org_id": op_org,
                "confidentiality": 3, "integrity": 2, "availability": 2}),
    )
    .await?)?;
    let orgs: Vec<Uuid> = futures::stream::iter(0..args.orgs)
        .map(|i| {
            let (http, reg, con, admin, sink) = (http.clone(), reg.clone(), con.clone(), admin.clone(), sink.url.clone());
            async move {
                let org = id(&post(&http, &format!("{reg}/v1/organizations"), &admin,
                    &json!({"name": format!("Agency {i}"), "kind": "government_agency"})).await?)?;
                post(&http, &format!("{con}/v1/contacts"), &token(Role::Manager, Some(org)),
                    &json!({"org_id": org, "name": format!("CSIRT {i}"), "role": "csirt", "availability": "both",
                            "channels": [{"kind": "webhook", "url": format!("{sink}/{i}"), "secret": "bench-secret-key"}]})).await?;
                anyhow::Ok(org)
            }
        })
        .buffered(args.setup_concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let owner = |j: usize| orgs[(j / args.group * args.group + j % args.group) % args.orgs];
    let systems: Vec<Uuid> = futures::stream::iter(0..args.systems)
        .map(|j| {
            let (http, reg, operator) = (http.clone(), reg.clone(), operator.clone());
            let org = owner(j);
            async move {
                id(&post(&http, &format!("{reg}/v1/systems"), &operator,
                    &json!({"name": format!("System {j}"), "kind": "linked", "owner_org_id": org,
                            "platform_id": platform, "confidentiality": 2, "integrity": 1, "availability": 1})).await?)
            }
        })
        .buffered(args.setup_concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    println!(
        "setup: organisations, contacts and systems in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let links: Vec<(Uuid, Uuid)> = (0..args.systems)
        .filter(|j| j % args.group != 0)
        .flat_map(|j| {
            let hub = systems[j / args.group * args.group];
            [(systems[j], hub), (hub, systems[j])]
        })
        .collect();
    let link_count = links.len();
    futures::stream::iter(links)
        .map(|(from, to)| {
            let (http, reg, operator) = (http.clone(), reg.clone(), operator.clone());
            async move {
                post(&http, &format!("{reg}/v1/links"), &operator,
                    &json!({"from_system_id": from, "to_system_id": to, "kind": "network", "propagates": ["malware"]})).await
            }
        })
        .buffer_unordered(args.setup_concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    post(&http, &format!("{eme}/v1/platforms/{platform}/playbooks"), &operator,
        &json!({"category": "malware", "title": "Malware", "steps": [
            {"title": "Isolate the link", "control": "incident-response", "due_after_minutes": 30},
            {"title": "Revoke shared credentials", "control": "access-control", "due_after_minutes": 60},
            {"title": "Confirm recovery", "control": "incident-response", "due_after_minutes": 240}]})).await?;
    println!(
        "setup: {} links in total {:.1} s",
        link_count,
        setup.elapsed().as_secs_f64()
    );
    // Let every service's copy of the registry catch up.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // ---- the floor -------------------------------------------------------
    let client = async_nats::connect(nats.url()).await?;
    let mut echo = client.subscribe("bench.echo").await?;
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(m) = echo.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, m.payload).await;
            }
        }
    });
    client.flush().await?;
    let mut rtt = Histogram::<u64>::new(3)?;
    for _ in 0..2_000 {
        let t = Instant::now();
        client.request("bench.echo", "ping".into()).await?;
        rtt.record(t.elapsed().as_micros() as u64)?;
    }
    let js = async_nats::jetstream::new(client.clone());
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "BENCHFLOOR".into(),
        subjects: vec!["benchfloor.>".into()],
        ..Default::default()
    })
    .await?;
    let mut js_ack = Histogram::<u64>::new(3)?;
    for i in 0..2_000 {
        let t = Instant::now();
        js.publish("benchfloor.x", format!("{i}").into())
            .await?
            .await?;
        js_ack.record(t.elapsed().as_micros() as u64)?;
    }
    println!(
        "floor: NATS request/reply p50 {:.3} ms p99 {:.3} ms; JetStream publish+ack p50 {:.3} ms p99 {:.3} ms",
        rtt.value_at_quantile(0.5) as f64 / 1e3,
        rtt.value_at_quantile(0.99) as f64 / 1e3,
        js_ack.value_at_quantile(0.5) as f64 / 1e3,
        js_ack.value_at_quantile(0.99) as f64 / 1e3
    );

    // ---- the phases ------------------------------------------------------
    let members: Arc<Vec<(Uuid, Uuid)>> = Arc::new(
        (0..args.systems)
            .filter(|j| j % args.group != 0)
            .map(|j| (systems[j], owner(j)))
            .collect(),
    );
    for (label, count, over) in [
        (
            "steady",
            args.rate * args.steady_secs,
            Duration::from_secs(args.steady_secs as u64),
        ),
        (
            "burst",
            args.burst,
            Duration::from_secs(args.burst_secs as u64),
        ),
    ] {
        let before = sink.count();
        let interval = over / count.max(1) as u32;
        let start = Instant::now();
        let mut handles = Vec::with_capacity(count);
        for k in 0..count {
            let at = start + interval * k as u32;
            tokio::time::sleep_until(at.into()).await;
            let (http, eme, members) = (http.clone(), eme.clone(), members.clone());
            handles.push(tokio::spawn(async move {
                let (system, org) = members[(k * 7_919 + 13) % members.len()];
                let t = Instant::now();
                let v = post(&http, &format!("{eme}/v1/incidents"), &token(Role::Csirt, Some(org)),
                    &json!({"system_id": system, "category": "malware", "severity": 2, "tlp": "amber",
                            "summary": format!("Bench incident {k}"), "detected_at": chrono::Utc::now()})).await?;
                let returned = Instant::now();
                let expected = v["affected"].as_array().map_or(0, Vec::len);
                ensure!(expected > 0, "assessed without organisations at risk: {v}");
                anyhow::Ok(Declared { id: id(&v)?, returned, post: returned - t, expected })
            }));
        }
        let mut declared = Vec::with_capacity(count);
        for h in handles {
            declared.push(h.await??);
        }
        let sent = start.elapsed();
        let total: usize = declared.iter().map(|d| d.expected).sum();
        let deadline = Instant::now() + PATIENCE;
        while sink.count() < before + total {
            ensure!(
                Instant::now() < deadline,
                "{label}: {} of {total} alerts",
                sink.count() - before
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let drained = start.elapsed();
        let mut last: HashMap<Uuid, Instant> = HashMap::new();
        let mut received = 0;
        for r in sink.since(before) {
            let v = r.json();
            let Some(incident) = v["topic"]
                .as_str()
                .and_then(|t| t.strip_prefix("incident/"))
                .and_then(|t| t.strip_suffix("/spread_risk"))
                .and_then(|t| t.parse::<Uuid>().ok())
            else {
                continue;
            };
            received += 1;
            let e = last.entry(incident).or_insert(r.at);
            *e = (*e).max(r.at);
        }
        let mut alert = Histogram::<u64>::new(3)?;
        let mut post_h = Histogram::<u64>::new(3)?;
        for d in &declared {
            let at = last
                .get(&d.id)
                .with_context(|| format!("no alert for {}", d.id))?;
            alert.record(ms(at.saturating_duration_since(d.returned)))?;
            post_h.record(ms(d.post))?;
        }
        println!(
            "{label}: {count} incidents declared in {:.1} s, {received} alerts ({:.0} per incident), all delivered after {:.1} s",
            sent.as_secs_f64(),
            received as f64 / count as f64,
            drained.as_secs_f64()
        );
        println!(
            "  {}",
            line("POST returned → last organisation alerted", &alert)
        );
        println!("  {}", line("POST /v1/incidents", &post_h));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    sink.stop().await;
    for s in [emergency, contacts, demarcation, registry] {
        s.stop().await?;
    }
    Ok(())
}
