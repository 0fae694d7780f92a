//! A keyed request whose process dies after its transaction committed but
//! before its answer was kept (fault point `idempotency.before_answer_kept`):
//! the client got no answer and sends the request again with the same
//! `Idempotency-Key`. It is never carried out twice: the retry gets, at
//! once, a 409 `idempotency_key_completed` naming what the first attempt
//! made (before this, it got 409s for 60 s and then ran the request a
//! second time), and exactly one organisation exists.

use std::time::Duration;

use renkei_bus::faults;
use serde_json::{Value, json};

use crate::world::{READY_WITHIN, World};

async fn create(world: &World, key: &str) -> Result<(u16, Value), reqwest::Error> {
    let resp = world
        .http
        .post(format!("{}/v1/organizations", world.url("registry")))
        .bearer_auth(&world.admin)
        .header("Idempotency-Key", key)
        .json(&json!({"name": "Agency Whose Answer Was Lost", "kind": "government_agency"}))
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_committed_but_lost_its_answer_is_never_carried_out_twice() {
    let mut world = World::start(&[]).await;
    let point = format!("{}=return(kill)", faults::BEFORE_ANSWER_KEPT);
    world.services.kill("registry");
    world
        .services
        .start_one("registry", &[("FAILPOINTS", &point)]);
    world.services.wait_ready(READY_WITHIN).await;

    let first = create(&world, "lost-answer-1").await;
    assert!(
        first.is_err(),
        "the process dies before answering: {first:?}"
    );
    world
        .services
        .wait_exit("registry", Duration::from_secs(10))
        .await;
    world.services.start_one("registry", &[]);
    world.services.wait_ready(READY_WITHIN).await;

    let organisations = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|o| o["name"] == "Agency Whose Answer Was Lost")
            .map(|o| o["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (_, list) = world
        .get("registry", "/v1/organizations?limit=100", &world.admin)
        .await;
    let made = organisations(&list);
    assert_eq!(made.len(), 1, "the first attempt committed: {list}");

    // The retry is not made to wait out the abandonment delay, and is not
    // run again after it either: a committed key is never taken over.
    let (status, body) = create(&world, "lost-answer-1").await.expect("answered");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "idempotency_key_completed", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&made[0])),
        "the answer names what the first attempt made: {body}"
    );
    let (_, list) = world
        .get("registry", "/v1/organizations?limit=100", &world.admin)
        .await;
    assert_eq!(organisations(&list), made, "carried out once");
}
