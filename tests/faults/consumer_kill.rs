//! A consumer killed before it acks, again and again, while 10,000
//! notifications flow: contacts is SIGKILLed at the point where a batch of
//! emergency events has committed its notifications but is not yet acked
//! (`consumer.contacts-emergency.before_ack`), four times, and started again
//! each time. JetStream delivers those batches again; the consumer sees they
//! were handled and only acks. The checker: every (incident, agency at risk)
//! alert received, none made twice (one delivery id per pair), and at least
//! one redelivery observed by the last instance.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use renkei_telemetry::metrics::{CONSUMER_REDELIVERIES, EVENTS_HANDLED};

use crate::world::{READY_WITHIN, World, declare_with_retries};

/// Agencies at risk from the origin, and incidents declared on it:
/// 50 × 200 = 10,000 spread alerts.
const AT_RISK: usize = 50;
const INCIDENTS: usize = 200;
/// Times contacts is killed before an ack.
const KILLS: usize = 4;
/// Batches a contacts instance acks before the kill: few, so that all four
/// kills come early in the flow. (With 15, once the emergency service
/// batched its events more, the flow ended before the fourth instance had
/// seen 16 batches, and the test waited for a kill that never came.)
const ACKED_BEFORE_KILL: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_killed_before_it_acks_loses_and_doubles_no_notification() {
    let _alone = crate::world::HEAVY.lock().await;
    let mut world = World::start(&[]).await;
    let (origin, at_risk) = world.fan(AT_RISK).await;
    let point = format!(
        "{}={ACKED_BEFORE_KILL}*off->return(kill)",
        renkei_bus::faults::before_ack("contacts-emergency")
    );
    world.services.kill("contacts");
    world
        .services
        .start_one("contacts", &[("FAILPOINTS", &point)]);
    world.services.wait_ready(READY_WITHIN).await;

    // Four clients declare the incidents while contacts keeps dying.
    let declaration = world.declaration(&origin, "Malware spreading");
    let http = world.http.clone();
    let declaring = tokio::spawn(async move {
        let mut incidents = Vec::with_capacity(INCIDENTS);
        let mut clients = futures::stream::iter(0..INCIDENTS)
            .map(|i| {
                let http = http.clone();
                let declaration = declaration.clone();
                async move {
                    declare_with_retries(
                        &http,
                        &declaration,
                        &format!("consumer-kill-{i}"),
                        Duration::from_secs(120),
                    )
                    .await
                    .0
                }
            })
            .buffer_unordered(4);
        while let Some(id) = clients.next().await {
            incidents.push(id);
        }
        incidents
    });

    let expected = AT_RISK * INCIDENTS;
    let csirts: HashSet<String> = at_risk.iter().map(|o| o.csirt()).collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut kills = 0;
    loop {
        if !world.services.is_running("contacts") {
            world
                .services
                .wait_exit("contacts", Duration::from_secs(1))
                .await;
            kills += 1;
            let env: Vec<(&str, &str)> = if kills < KILLS {
                vec![("FAILPOINTS", &point)]
            } else {
                vec![]
            };
            world.services.start_one("contacts", &env);
            world.services.wait_ready(READY_WITHIN).await;
        }
        let received = world.alerts().pairs_on(&csirts);
        if received >= expected && kills >= KILLS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {kills} kills only {received} of {expected} alerts arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let incidents = declaring.await.expect("declarations");
    assert_eq!(incidents.len(), INCIDENTS);
    // Time for a double to show.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let alerts = world.alerts();
    for incident in &incidents {
        for org in &at_risk {
            let ids = alerts.by_pair.get(&(*incident, org.csirt()));
            assert!(
                ids.is_some(),
                "agency {} never alerted of incident {incident}",
                org.id
            );
        }
    }
    assert_eq!(
        alerts.pairs_on(&csirts),
        expected,
        "alerts only for (incident, agency at risk) pairs"
    );
    assert_eq!(
        alerts.doubled(),
        vec![],
        "no alert made twice (two deliveries for one pair)"
    );
    let redelivered = world
        .metric(
            "contacts",
            CONSUMER_REDELIVERIES,
            &["consumer=\"contacts-emergency\""],
        )
        .await;
    let duplicates = world
        .metric(
            "contacts",
            EVENTS_HANDLED,
            &["consumer=\"contacts-emergency\"", "outcome=\"duplicate\""],
        )
        .await;
    println!(
        "{kills} kills; {expected} alerts; {redelivered} redeliveries and {duplicates} duplicates seen by the last instance; {} requests repeated a delivery id (a send cut off by a kill, sent again)",
        alerts.resent()
    );
    assert_eq!(kills, KILLS, "contacts was killed {KILLS} times");
    assert!(
        redelivered >= 1.0 && duplicates >= 1.0,
        "the last instance saw the killed batch again: {redelivered} redeliveries, {duplicates} duplicates"
    );
}
