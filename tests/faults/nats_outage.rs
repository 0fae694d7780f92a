//! The NATS server SIGKILLed for 10 s while 1,000 incidents are declared at
//! 50 a second by clients that send each declaration with an
//! `Idempotency-Key` and send it again whenever they get no answer, a 5xx or
//! a 409 — and one in ten send it again after success too, as a client that
//! lost the answer would. The checker: exactly 1,000 incidents exist, one per
//! key; every (incident, agency at risk) alert is delivered, none twice; the
//! outbox backlog built up during the outage is published within 5 s of the
//! restart, and the alerts it owed arrive (the time is printed).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use uuid::Uuid;

use crate::world::{World, declare_with_retries};

const INCIDENTS: usize = 1_000;
const PER_SECOND: u64 = 50;
const AT_RISK: usize = 3;
/// The outage starts this long after the first declaration…
const OUTAGE_AT: Duration = Duration::from_secs(5);
/// …and lasts this long.
const OUTAGE: Duration = Duration::from_secs(10);
/// The outage's outbox backlog (every event staged before NATS came back)
/// is published this soon after it is back, in every build.
const PUBLISHED_WITHIN: Duration = Duration::from_secs(5);
/// The alerts owed for the incidents declared before NATS came back (about
/// 750: 500 of them made while it was down, their assessment owed) have all
/// arrived this soon after it is back: each incident is five notifications
/// and ten webhook deliveries, 7,500 to send while the clients go on
/// declaring at 50/s. An optimised build is held to the 5 s (2.8–3.2 s
/// measured on SQLite, 4.4 s on PostgreSQL); the debug build the suite runs
/// in CI, sharing two cores with the broker, four services and the clients,
/// takes about 19 s, so there the bound only catches a backlog that never
/// drains, and the figure is printed.
const DELIVERED_WITHIN: Duration = if cfg!(debug_assertions) {
    Duration::from_secs(90)
} else {
    Duration::from_secs(5)
};

/// One client's declaration: the incident, the attempts it took, when its
/// answer came.
#[derive(Clone)]
struct Declared {
    id: Uuid,
    attempts: u32,
    answered: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incidents_declared_through_a_nats_outage_exist_once_and_alert_everyone_once() {
    let _alone = crate::world::HEAVY.lock().await;
    let mut world = World::start(&[]).await;
    let (origin, at_risk) = world.fan(AT_RISK).await;
    let declaration = world.declaration(&origin, "Malware during a broker outage");

    // The clients: one declaration every 20 ms, each on its own task.
    let started = Instant::now();
    let outcomes: Arc<Mutex<Vec<Declared>>> = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    let http = world.http.clone();
    let schedule = tokio::spawn({
        let outcomes = outcomes.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1_000 / PER_SECOND));
            for i in 0..INCIDENTS {
                tick.tick().await;
                let http = http.clone();
                let declaration = declaration.clone();
                let outcomes = outcomes.clone();
                clients.spawn(async move {
                    let key = format!("outage-{i}");
                    let (id, attempts) =
                        declare_with_retries(&http, &declaration, &key, Duration::from_secs(120))
                            .await;
                    if i % 10 == 0 {
                        // The answer "lost": the same key again is the same incident.
                        let (again, _) = declare_with_retries(
                            &http,
                            &declaration,
                            &key,
                            Duration::from_secs(120),
                        )
                        .await;
                        assert_eq!(again, id, "a replayed declaration is the same incident");
                    }
                    outcomes.lock().await.push(Declared {
                        id,
                        attempts,
                        answered: Instant::now(),
                    });
                });
            }
            while let Some(done) = clients.join_next().await {
                done.expect("a client");
            }
        }
    });

    tokio::time::sleep_until((started + OUTAGE_AT).into()).await;
    world.nats.kill();
    tokio::time::sleep(OUTAGE).await;
    world.nats.restart().await.expect("nats-server back");
    let back = Instant::now();

    // The outage's backlog: the events staged before NATS came back are
    // published (every service's oldest unpublished event is younger than
    // the restart), while the clients go on declaring at 50/s.
    let mut published = None;
    while back.elapsed() < PUBLISHED_WITHIN + Duration::from_secs(30) {
        if world.outbox_oldest_age().await < back.elapsed().as_secs_f64() {
            published = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let published = published.expect("the outage's outbox backlog was never published");
    println!("the outage's outbox backlog published {published:?} after NATS came back");

    schedule.await.expect("the clients");
    let outcomes = outcomes.lock().await.clone();
    let retried = outcomes.iter().filter(|d| d.attempts > 1).count();
    println!(
        "{} declarations, {retried} of them needed more than one attempt, in {:?}",
        outcomes.len(),
        started.elapsed()
    );
    let ids: HashSet<Uuid> = outcomes.iter().map(|d| d.id).collect();
    assert_eq!(ids.len(), INCIDENTS, "one incident per key");

    // Exactly 1,000 incidents exist.
    let listed = world
        .list_all("emergency", "/v1/incidents", &world.operator)
        .await;
    let listed: HashSet<Uuid> = listed
        .iter()
        .map(|i| crate::world::id_at(&i["id"]))
        .collect();
    assert_eq!(
        listed, ids,
        "the incidents stored are exactly those declared"
    );

    // Every (incident, agency at risk) alert, once.
    let csirts: HashSet<String> = at_risk.iter().map(|o| o.csirt()).collect();
    let expected = INCIDENTS * AT_RISK;
    let deadline = Instant::now() + Duration::from_secs(120);
    while world.alerts().pairs_on(&csirts) < expected {
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} alerts arrived",
            world.alerts().pairs_on(&csirts)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alerts = world.alerts();
    for id in &ids {
        for org in &at_risk {
            let deliveries = alerts.by_pair.get(&(*id, org.csirt()));
            assert_eq!(
                deliveries.map(Vec::len),
                Some(1),
                "agency {} told of incident {id} exactly once",
                org.id
            );
        }
    }
    assert_eq!(
        alerts.pairs_on(&csirts),
        expected,
        "no alert beyond the expected pairs"
    );
    // …and every alert owed for an incident declared before NATS came back
    // has arrived.
    let owed: HashSet<Uuid> = outcomes
        .iter()
        .filter(|d| d.answered < back)
        .map(|d| d.id)
        .collect();
    // Enough that the drain is timed over a real backlog. Not "every
    // declaration of the outage": the clients' pace depends on the load
    // beside this test (the other fault tests run in parallel), and CI once
    // saw 351 answered before the restart where a quiet machine sees 750.
    assert!(
        owed.len() >= PER_SECOND as usize * 2,
        "the outage left alerts owed (only {} incidents declared before NATS came back)",
        owed.len()
    );
    let delivered = alerts
        .first_at
        .iter()
        .filter(|((id, path), _)| owed.contains(id) && csirts.contains(path))
        .map(|(_, at)| at.saturating_duration_since(back))
        .max()
        .unwrap_or_default();
    println!(
        "the alerts of the {} incidents declared before NATS came back all arrived {delivered:?} after it",
        owed.len()
    );
    assert!(
        published <= PUBLISHED_WITHIN,
        "the outage's outbox backlog took {published:?} to be published (limit {PUBLISHED_WITHIN:?})"
    );
    assert!(
        delivered <= DELIVERED_WITHIN,
        "the outage's alerts took {delivered:?} to arrive (limit {DELIVERED_WITHIN:?})"
    );

    let pending = world.consumer_pending().await;
    assert_eq!(pending, 0.0, "every event consumed");
}
