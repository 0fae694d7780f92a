//! A service SIGKILLed between its database commit and the publish of the
//! events it committed (fault point `relay.before_publish`): nothing is
//! published while it is down, and once it is started again its outbox
//! drains — every committed event published exactly once. A transaction that
//! never committed (killed, or failed, after its event was staged: fault
//! point `outbox.staged`) publishes nothing, ever, and leaves nothing behind.

use std::time::Duration;

use renkei_bus::subjects::REGISTRY_STREAM;
use renkei_bus::{Envelope, faults};
use serde_json::json;

use crate::world::{READY_WITHIN, World, id_at, stream_events};

/// The registry's events that mention `needle` (an id, a name).
async fn registry_events_about(world: &World, needle: &str) -> Vec<Envelope> {
    stream_events(&world.nats.url(), REGISTRY_STREAM.name)
        .await
        .into_iter()
        .filter(|e| e.payload.to_string().contains(needle))
        .collect()
}

/// Restarts the registry with `FAILPOINTS` set to `points` (empty: none).
async fn restart_registry(world: &mut World, points: &str) {
    // Stopped cleanly: every event it published is marked so, and none is
    // published again at its start (where the fault point would fire).
    world.services.stop_one("registry");
    let env: Vec<(&str, &str)> = if points.is_empty() {
        vec![]
    } else {
        vec![("FAILPOINTS", points)]
    };
    world.services.start_one("registry", &env);
    world.services.wait_ready(READY_WITHIN).await;
}

async fn create_org(world: &World, name: &str) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let resp = world
        .http
        .post(format!("{}/v1/organizations", world.url("registry")))
        .bearer_auth(&world.admin)
        .json(&json!({"name": name, "kind": "government_agency"}))
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_killed_between_commit_and_publish_publishes_its_events_once_when_restarted() {
    let mut world = World::start(&[]).await;
    let point = format!("{}=return(kill)", faults::BEFORE_PUBLISH);
    restart_registry(&mut world, &point).await;

    // Committed; the relay dies holding the unpublished event. The answer
    // usually gets out first, but the kill follows the commit at once and
    // may beat it (it did once, in CI): then the client has no answer, and
    // the organisation is found by its name once the registry is back.
    let name = "Agency Killed Before Publish";
    if let Ok((status, org)) = create_org(&world, name).await {
        assert_eq!(status, 201, "{org}");
    }
    world
        .services
        .wait_exit("registry", Duration::from_secs(10))
        .await;
    assert!(
        registry_events_about(&world, name).await.is_empty(),
        "nothing may be published before the restart: the process died before the publish"
    );

    // Started again without the fault: the outbox drains.
    world.services.start_one("registry", &[]);
    world.services.wait_ready(READY_WITHIN).await;
    let named: Vec<serde_json::Value> = world
        .list_all("registry", "/v1/organizations", &world.admin)
        .await
        .into_iter()
        .filter(|o| o["name"] == name)
        .collect();
    assert_eq!(named.len(), 1, "the organisation committed once: {named:?}");
    let org = &named[0];
    let id = id_at(&org["id"]).to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while registry_events_about(&world, &id).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the committed event was never published after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Some time for a double to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = registry_events_about(&world, &id).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["registry.organization.registered"],
        "exactly one creation event for the organisation"
    );
    // And the other services applied it: contacts takes a contact for it.
    let manager = renkei_testkit::token(renkei_web::Role::Manager, Some(id_at(&org["id"])));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = world
            .post(
                "contacts",
                "/v1/contacts",
                &manager,
                json!({"org_id": id, "name": "CSIRT", "role": "csirt", "availability": "both",
                       "channels": [{"kind": "webhook", "url": format!("{}/x", world.sink.url),
                                     "secret": "fault-secret-key-0123"}]}),
            )
            .await;
        if status == 201 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "contacts never learnt of the organisation: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_that_never_committed_publishes_nothing() {
    let mut world = World::start(&[]).await;

    // Killed with the event staged, before the commit: the client gets no
    // answer, and nothing of it survives.
    let point = format!("{}=return(kill)", faults::STAGED);
    restart_registry(&mut world, &point).await;
    let answer = create_org(&world, "Agency Killed Before Commit").await;
    assert!(
        answer.is_err(),
        "the process dies before answering, got {answer:?}"
    );
    world
        .services
        .wait_exit("registry", Duration::from_secs(10))
        .await;

    // Failed after staging (the handler's transaction rolls back): a 500,
    // then the next create, untouched by the fault, goes through.
    let point = format!("{}=1*return", faults::STAGED);
    world
        .services
        .start_one("registry", &[("FAILPOINTS", &point)]);
    world.services.wait_ready(READY_WITHIN).await;
    let (status, body) = create_org(&world, "Agency Rolled Back")
        .await
        .expect("answered");
    assert_eq!(status, 500, "a failed transaction is a 500: {body}");
    let (status, body) = create_org(&world, "Agency After The Fault")
        .await
        .expect("answered");
    assert_eq!(status, 201, "{body}");
    let after = id_at(&body["id"]).to_string();

    // Restarted clean; its relay has swept many times over.
    restart_registry(&mut world, "").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in ["Agency Killed Before Commit", "Agency Rolled Back"] {
        assert!(
            registry_events_about(&world, name).await.is_empty(),
            "{name}: an event of a transaction that never committed was published"
        );
    }
    let (status, list) = world
        .get("registry", "/v1/organizations?limit=100", &world.admin)
        .await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert!(
        !names.contains(&"Agency Killed Before Commit") && !names.contains(&"Agency Rolled Back"),
        "nothing of an uncommitted transaction is stored: {names:?}"
    );
    assert_eq!(
        registry_events_about(&world, &after).await.len(),
        1,
        "the create after the fault is published once"
    );
}
