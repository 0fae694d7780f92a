//! Fan-out: one spread-risk alert to `--orgs` organisations with two webhook
//! contacts each, against a real nats-server, a real database and a real
//! webhook receiver on loopback (the testkit's, in this process).
//!
//! Setup: a platform operator, a platform and `--orgs` organisations each
//! owning one linked system, registered through the registry's HTTP API;
//! every organisation then adds two contacts (CSIRT and system manager,
//! availability `both`) through the contacts API, each with its own webhook
//! URL. Every organisation keeps the default escalation policy, whose first
//! step reaches both contacts.
//!
//! Each round publishes one `emergency.incident.spread_risk` event (a new
//! incident) on JetStream, naming every organisation, exactly as the
//! emergency service does, and times from the publish to:
//! - the first webhook request received;
//! - the last of the `2 × orgs` requests received (the figure the target
//!   is about: ≤ 1 s for 1,000 organisations);
//!
//! and the deliveries/s sustained between the first and the last.
//!
//! Baseline in the same run: the same rounds for an alert to
//! `--baseline-orgs` organisations of the same platform (run first; they
//! also warm the services up).
//!
//! ```text
//! cargo bench -p renkei-contacts --bench fanout
//! RENKEI_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p renkei-contacts --bench fanout
//! cargo bench -p renkei-contacts --bench fanout -- --orgs 200 --rounds 3
//! ```
//!
//! Options: `--orgs N` (1000), `--rounds N` (5), `--baseline-orgs N` (10).
//! NATS: `RENKEI_TEST_NATS_SERVER` or `nats-server` on the PATH.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::ensure;
use futures::StreamExt as _;
use renkei_bus::Envelope;
use renkei_bus::contracts::emergency::{AtRisk, IncidentSpreadRisk};
use renkei_testkit::bench::{self, create, median};
use renkei_testkit::{NatsServer, TestDb, WebhookSink, token};
use renkei_web::Role;
use serde_json::json;
use uuid::Uuid;

/// Requests in flight while organisations, systems and contacts are set up.
const SETUP_CONCURRENCY: usize = 16;
const PATIENCE: Duration = Duration::from_secs(120);

/// Fan-out of one spread-risk alert to many organisations' webhooks.
#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000, value_parser = bench::whole::<usize>)]
    orgs: usize,
    #[arg(long, default_value_t = 5, value_parser = bench::whole::<usize>)]
    rounds: usize,
    #[arg(long, default_value_t = 10, value_parser = bench::whole::<usize>)]
    baseline_orgs: usize,
}

fn main() {
    let args: Args = bench::args();
    assert!(
        args.orgs >= args.baseline_orgs,
        "--orgs below --baseline-orgs"
    );
    bench::block_on(run(&args));
}

struct Org {
    id: Uuid,
    system: Uuid,
}

struct Figures {
    first: Duration,
    last: Duration,
    per_second: f64,
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let db = TestDb::fresh().await?;
    let dir = tempfile::tempdir()?;
    let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    let registry = renkei_registry::Registry::spawn(&settings, "bench-registry").await?;
    let contacts = renkei_contacts::Contacts::spawn(&settings, "bench-contacts").await?;
    let sink = WebhookSink::start().await?;
    let http = reqwest::Client::new();
    let reg = format!("http://{}", registry.addr);
    let con = format!("http://{}", contacts.addr);
    println!(
        "fan-out: {} organisations × 2 webhook contacts, {} rounds, baseline {} organisations; database {}",
        args.orgs,
        args.rounds,
        args.baseline_orgs,
        if db.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );

    let admin = token(Role::Admin, None);
    let op_org = create(
        &http,
        &format!("{reg}/v1/organizations"),
        &admin,
        &json!({"name": "Platform Office", "kind": "platform_operator"}),
    )
    .await?;
    let operator = token(Role::Operator, Some(op_org));
    let platform = create(
        &http,
        &format!("{reg}/v1/systems"),
        &operator,
        &json!({"name": "Common Platform", "kind": "platform", "owner_org_id": op_org,
                "confidentiality": 3, "integrity": 2, "availability": 2}),
    )
    .await?;
    let setup = Instant::now();
    let orgs: Vec<Org> = futures::stream::iter(0..args.orgs)
        .map(|i| {
            let (http, reg, con, admin, operator, sink) =
                (http.clone(), reg.clone(), con.clone(), admin.clone(), operator.clone(), sink.url.clone());
            async move {
                let id = create(&http, &format!("{reg}/v1/organizations"), &admin,
                    &json!({"name": format!("Agency {i}"), "kind": "government_agency"})).await?;
                let system = create(&http, &format!("{reg}/v1/systems"), &operator,
                    &json!({"name": format!("Agency {i} records"), "kind": "linked", "owner_org_id": id,
                            "platform_id": platform, "confidentiality": 2, "integrity": 1, "availability": 1})).await?;
                let manager = token(Role::Manager, Some(id));
                for role in ["csirt", "system_manager"] {
                    create(&http, &format!("{con}/v1/contacts"), &manager,
                        &json!({"org_id": id, "name": format!("{role} {i}"), "role": role, "availability": "both",
                                "channels": [{"kind": "webhook", "url": format!("{sink}/{i}/{role}"), "secret": "bench-secret-key"}]})).await?;
                }
                anyhow::Ok(Org { id, system })
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    println!(
        "setup: {} organisations in {:.1} s",
        orgs.len(),
        setup.elapsed().as_secs_f64()
    );

    let client = async_nats::connect(nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    let mut baseline = Vec::new();
    let mut full = Vec::new();
    for (label, n, out) in [
        ("baseline", args.baseline_orgs, &mut baseline),
        ("full", args.orgs, &mut full),
    ] {
        for round in 0..args.rounds {
            let event = IncidentSpreadRisk {
                incident_id: Uuid::now_v7(),
                platform_id: platform,
                system_id: orgs[0].system,
                organization_id: orgs[0].id,
                title: format!("Bench incident {label} {round}"),
                severity: "critical".into(),
                category: "malware".into(),
                tlp: "amber".into(),
                at_risk: orgs[..n]
                    .iter()
                    .map(|o| AtRisk {
                        organization_id: o.id,
                        system_ids: vec![o.system],
                        hops: 1,
                        paths: vec![vec![orgs[0].system, platform, o.system]],
                    })
                    .collect(),
                informed: Vec::new(),
                assessment: 1,
            };
            let envelope = Envelope::new("emergency", None, &event)?;
            let before = sink.count();
            let expected = before + 2 * n;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", envelope.id.to_string().as_str());
            let t0 = Instant::now();
            js.publish_with_headers(
                envelope.subject.clone(),
                headers,
                serde_json::to_vec(&envelope)?.into(),
            )
            .await?
            .await?;
            let deadline = Instant::now() + PATIENCE;
            while sink.count() < expected {
                ensure!(
                    Instant::now() < deadline,
                    "{label} round {round}: {} of {} deliveries",
                    sink.count() - before,
                    2 * n
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let times = sink.received_since(before);
            let first = times.iter().min().copied().unwrap() - t0;
            let last = times.iter().max().copied().unwrap() - t0;
            let span = (last - first).as_secs_f64().max(1e-6);
            let f = Figures {
                first,
                last,
                per_second: (2 * n) as f64 / span,
            };
            println!(
                "{label:>8} round {round}: first delivery {:>7.1} ms, last {:>7.1} ms, {:>7.0} deliveries/s",
                f.first.as_secs_f64() * 1e3,
                f.last.as_secs_f64() * 1e3,
                f.per_second
            );
            out.push(f);
            // Let the delivered records and events settle before the next round.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    for (label, n, figures) in [
        ("baseline", args.baseline_orgs, &baseline),
        ("full", args.orgs, &full),
    ] {
        println!(
            "median {label} ({n} orgs, {} deliveries): first {:.1} ms, last {:.1} ms, {:.0} deliveries/s",
            2 * n,
            median(
                figures
                    .iter()
                    .map(|f| f.first.as_secs_f64() * 1e3)
                    .collect()
            ),
            median(figures.iter().map(|f| f.last.as_secs_f64() * 1e3).collect()),
            median(figures.iter().map(|f| f.per_second).collect()),
        );
    }
    sink.stop().await;
    contacts.stop().await?;
    registry.stop().await?;
    Ok(())
}
