//! A burst of events reaches a durable consumer that applies what has
//! arrived together in one transaction, each event in a savepoint: one event
//! the handler rejects for good and one it cannot apply yet must neither be
//! lost nor take the others down, and nothing is applied twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use renkei_bus::subjects::StreamSpec;
use renkei_bus::{ConsumerSpec, Envelope, Event, EventHandler, HandlerError, consumer::Consumer};
use renkei_testkit::{NatsServer, TestDb};
use sea_orm::{DatabaseTransaction, EntityTrait as _, PaginatorTrait as _};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

const STREAM: StreamSpec = StreamSpec {
    name: "BATCHTEST",
    subjects: &["batchtest.>"],
    max_age_days: 1,
};

#[derive(Serialize, Deserialize)]
struct Happened {
    n: u32,
}

impl Event for Happened {
    const SUBJECT: &'static str = "batchtest.thing.happened";
}

struct Migrator;
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        renkei_bus::migrations::all()
    }
}

/// Rejects event 7 for good, fails event 13 once, records every application.
#[derive(Default)]
struct Recorder {
    applied: Mutex<HashMap<u32, usize>>,
    failed_once: Mutex<bool>,
}

#[async_trait::async_trait]
impl EventHandler for Recorder {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let n = event
            .decode::<Happened>()
            .map_err(|e| HandlerError::Permanent(e.to_string()))?
            .n;
        // A write of the handler's own, which a failure must roll back.
        renkei_bus::Outbox::new("test")
            .stage(txn, None, &Happened { n })
            .await?;
        match n {
            7 => return Err(HandlerError::Permanent("event 7 is never valid".into())),
            13 => {
                let mut failed = self.failed_once.lock().expect("lock");
                if !*failed {
                    *failed = true;
                    return Err(HandlerError::Transient(anyhow::anyhow!("not yet")));
                }
            }
            _ => {}
        }
        *self.applied.lock().expect("lock").entry(n).or_default() += 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_applied_once_each_around_a_rejected_and_a_retried_event() {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await.expect("nats-server");
    let test_db = TestDb::fresh().await.expect("database");
    let db = renkei_store::Db::connect_and_migrate::<Migrator>(&test_db.url, "batchtest", 2)
        .await
        .expect("db");
    let client = async_nats::connect(nats.url()).await.expect("nats");
    renkei_bus::nats::ensure_streams(&client, 1, &[STREAM])
        .await
        .expect("stream");

    // The burst is in the stream before the consumer starts: it arrives
    // together, so it is applied in batches.
    let js = async_nats::jetstream::new(client.clone());
    let mut acks = Vec::new();
    for n in 0..200 {
        let envelope = Envelope::new("test", None, &Happened { n }).expect("envelope");
        let body = serde_json::to_vec(&envelope).expect("json");
        acks.push(
            js.publish(Happened::SUBJECT, body.into())
                .await
                .expect("publish"),
        );
    }
    for ack in acks {
        ack.await.expect("stored");
    }
    // Event 42 delivered a second time (a replay).
    let replay = js
        .get_stream(STREAM.name)
        .await
        .expect("stream")
        .get_raw_message(43)
        .await
        .expect("message 43");
    js.publish(Happened::SUBJECT, replay.payload)
        .await
        .expect("publish")
        .await
        .expect("stored");

    let recorder = Arc::new(Recorder::default());
    let spec = ConsumerSpec {
        stream: STREAM,
        durable: "batch-test".into(),
        filter_subjects: vec![],
    };
    let cancel = CancellationToken::new();
    let consumer = tokio::spawn(
        Consumer::new(db.clone(), client.clone(), spec, recorder.clone(), None).run(cancel.clone()),
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let applied = recorder.applied.lock().expect("lock").len();
        if applied == 199 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {applied} of 199 events applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything still to come would come within the redelivery delay.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cancel.cancel();
    consumer.await.expect("consumer task");

    let applied = recorder.applied.lock().expect("lock").clone();
    assert!(
        !applied.contains_key(&7),
        "the rejected event left no effect"
    );
    assert_eq!(applied.get(&13), Some(&1), "the retried event applied once");
    assert!(
        applied.values().all(|count| *count == 1),
        "nothing twice: {applied:?}"
    );
    let markers = renkei_bus::consumer::entity::Entity::find()
        .count(&db.read)
        .await
        .expect("count");
    assert_eq!(markers, 199, "one marker per applied event, none for 7");
    let staged = renkei_bus::outbox::backlog(&db.read)
        .await
        .expect("backlog");
    assert_eq!(staged, 199, "the failed attempts' writes were rolled back");
}
