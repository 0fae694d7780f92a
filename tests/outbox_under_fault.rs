//! Outbox under fault: NATS is killed, 100 changes are made while it is
//! down, NATS comes back — and every event reaches a durable consumer exactly
//! once. A crash delays events; it never loses or doubles them.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt as _;
use renkei_bus::{Envelope, subjects};
use renkei_testkit::{NatsServer, TestDb, token};
use renkei_web::Role;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_made_while_nats_is_down_are_delivered_exactly_once_after_it_returns() {
    renkei_testkit::init_tracing();
    let mut nats = NatsServer::start().await.expect("nats-server");
    let db = TestDb::fresh().await.expect("database");
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    let running = renkei_registry::Registry::spawn(&settings, "fault-test")
        .await
        .expect("registry");
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let admin = token(Role::Admin, None);

    // A durable consumer exists before the fault, as a consuming service's would.
    let watcher = async_nats::connect(nats.url()).await.expect("nats");
    let stream = jetstream::new(watcher.clone())
        .get_stream(subjects::REGISTRY_STREAM.name)
        .await
        .expect("stream");
    stream
        .get_or_create_consumer(
            "fault-checker",
            pull::Config {
                durable_name: Some("fault-checker".into()),
                ..Default::default()
            },
        )
        .await
        .expect("consumer");
    drop(stream);
    drop(watcher);

    nats.kill();
    for i in 0..100 {
        let resp = http
            .post(format!("{base}/v1/organizations"))
            .bearer_auth(&admin)
            .json(&json!({"name": format!("Agency {i:03}"), "kind": "government_agency"}))
            .send()
            .await
            .expect("request");
        assert_eq!(
            resp.status().as_u16(),
            201,
            "changes are accepted while NATS is down"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart().await.expect("nats back");

    let client = async_nats::connect(nats.url()).await.expect("nats");
    let js = jetstream::new(client);
    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream(subjects::REGISTRY_STREAM.name)
        .await
        .expect("stream survives")
        .get_consumer("fault-checker")
        .await
        .expect("durable consumer survives");
    let mut messages = consumer.messages().await.expect("messages");
    let mut seen: HashMap<uuid::Uuid, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Collect until 100 distinct arrive, then keep listening 3 s for doubles.
    let mut quiet_until = None;
    loop {
        let wait = match quiet_until {
            Some(t) => t,
            None => deadline,
        };
        match tokio::time::timeout_at(wait, messages.next()).await {
            Ok(Some(Ok(m))) => {
                let envelope: Envelope = serde_json::from_slice(&m.payload).expect("envelope");
                m.ack().await.expect("ack");
                *seen.entry(envelope.id).or_default() += 1;
                if seen.len() == 100 && quiet_until.is_none() {
                    quiet_until = Some(tokio::time::Instant::now() + Duration::from_secs(3));
                }
            }
            Ok(Some(Err(e))) => panic!("consumer error: {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    assert_eq!(seen.len(), 100, "every event delivered");
    assert!(
        seen.values().all(|&n| n == 1),
        "no event delivered twice: {seen:?}"
    );
    running.stop().await.expect("clean stop");
}
