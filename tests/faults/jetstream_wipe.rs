//! The JetStream store wiped (every stream and consumer gone) and the NATS
//! server restarted empty, with alerts published but not yet consumed: the
//! services declare their streams again, their consumers bind again, and
//! each relay publishes again what its database says went into the lost
//! store. Every outstanding alert is delivered; nothing delivered before
//! the wipe is delivered again.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::world::{READY_WITHIN, World, declare_with_retries};

const AT_RISK: usize = 3;
/// Incidents alerted before the wipe, and declared while contacts is down
/// (their alerts wait in the stream that is then wiped).
const BEFORE: usize = 5;
const OUTSTANDING: usize = 20;

async fn declare(
    world: &World,
    origin: &crate::world::Org,
    tag: &str,
    n: usize,
) -> Vec<uuid::Uuid> {
    let declaration = world.declaration(origin, "Malware and a lost broker store");
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (id, _) = declare_with_retries(
            &world.http,
            &declaration,
            &format!("wipe-{tag}-{i}"),
            Duration::from_secs(60),
        )
        .await;
        ids.push(id);
    }
    ids
}

async fn wait_for_pairs(world: &World, csirts: &HashSet<String>, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while world.alerts().pairs_on(csirts) < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} alerts arrived",
            world.alerts().pairs_on(csirts)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_jetstream_store_is_wiped_every_outstanding_alert_is_delivered_once() {
    let mut world = World::start(&[]).await;
    let (origin, at_risk) = world.fan(AT_RISK).await;
    let csirts: HashSet<String> = at_risk.iter().map(|o| o.csirt()).collect();

    // Alerted before anything breaks.
    let mut incidents = declare(&world, &origin, "before", BEFORE).await;
    wait_for_pairs(&world, &csirts, BEFORE * AT_RISK, Duration::from_secs(60)).await;

    // Contacts down: these incidents' alerts are published by emergency
    // and wait, unconsumed, in the stream.
    world.services.kill("contacts");
    incidents.extend(declare(&world, &origin, "outstanding", OUTSTANDING).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    while world
        .metric("emergency", renkei_telemetry::metrics::OUTBOX_BACKLOG, &[])
        .await
        > 0.0
    {
        assert!(
            Instant::now() < deadline,
            "emergency never published its alerts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The store is lost.
    world
        .nats
        .wipe_and_restart()
        .await
        .expect("nats-server back, empty");
    world.services.start_one("contacts", &[]);
    world.services.wait_ready(READY_WITHIN).await;

    let expected = (BEFORE + OUTSTANDING) * AT_RISK;
    let recovered = Instant::now();
    wait_for_pairs(&world, &csirts, expected, Duration::from_secs(90)).await;
    println!(
        "{} outstanding alerts delivered {:?} after the wiped server came back",
        OUTSTANDING * AT_RISK,
        recovered.elapsed()
    );

    // New work flows as before.
    incidents.extend(declare(&world, &origin, "after", 1).await);
    wait_for_pairs(&world, &csirts, expected + AT_RISK, Duration::from_secs(60)).await;
    // Time for a double to show.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let alerts = world.alerts();
    for id in &incidents {
        for org in &at_risk {
            assert_eq!(
                alerts.by_pair.get(&(*id, org.csirt())).map(Vec::len),
                Some(1),
                "agency {} told of incident {id} exactly once",
                org.id
            );
        }
    }
    assert_eq!(alerts.pairs_on(&csirts), incidents.len() * AT_RISK);
}
