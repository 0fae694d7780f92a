//! Entries recorded by event handlers are appended when the consumer's
//! transaction commits, after every other write of it: the audit head is
//! never locked while a later write waits for a row an HTTP transaction
//! holds (which would wait for the head in turn, a deadlock on
//! PostgreSQL), and the entries of an event that fails are never appended.

use std::sync::Arc;
use std::time::Duration;

use renkei_audit::store::log;
use renkei_audit::{Action, Actor};
use renkei_bus::consumer::{Applied, Consumer};
use renkei_bus::subjects::StreamSpec;
use renkei_bus::{ConsumerSpec, Envelope, Event, EventHandler, HandlerError};
use renkei_store::Db;
use renkei_store::schema::{CreateTable, string, uuid};
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait, QueryOrder, TransactionTrait};
use sea_orm_migration::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

const SERVICE: &str = "audit_consumer_test";

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = renkei_bus::migrations::all();
        all.push(Box::new(CreateTable {
            name: "m20261215_000001_create_things",
            table: Table::create()
                .table("things")
                .if_not_exists()
                .col(uuid("id").primary_key())
                .col(string("name"))
                .to_owned(),
            indexes: vec![],
        }));
        all.extend(renkei_audit::store::migrations());
        all
    }
}

#[derive(Serialize, Deserialize)]
struct Touched {
    thing: Uuid,
    fail: bool,
}

impl Event for Touched {
    const SUBJECT: &'static str = "audittest.thing.touched";
}

/// Records the touch, then renames the thing (waiting for its row when
/// another transaction holds it), then fails when asked to.
struct Toucher {
    recorded: Notify,
}

#[async_trait::async_trait]
impl EventHandler for Toucher {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let e: Touched = event
            .decode()
            .map_err(|e| HandlerError::Permanent(e.to_string()))?;
        renkei_audit::record(
            txn,
            Actor::service(SERVICE),
            Action::new("thing.touched", e.thing),
        )
        .await?;
        self.recorded.notify_one();
        rename(txn, e.thing, "touched").await?;
        if e.fail {
            return Err(HandlerError::Transient(anyhow::anyhow!(
                "failed on purpose"
            )));
        }
        Ok(())
    }
}

async fn rename<C: ConnectionTrait>(conn: &C, thing: Uuid, name: &str) -> Result<(), DbErr> {
    conn.execute_unprepared(&format!(
        "UPDATE things SET name = '{name}' WHERE id = '{thing}'"
    ))
    .await
    .map(drop)
}

struct World {
    _nats: renkei_testkit::NatsServer,
    test_db: renkei_testkit::TestDb,
    db: Db,
    consumer: Arc<Consumer<Toucher>>,
    handler: Arc<Toucher>,
    thing: Uuid,
}

async fn world() -> World {
    renkei_testkit::init_tracing();
    let nats = renkei_testkit::NatsServer::start().await.expect("nats");
    let client = async_nats::connect(nats.url()).await.expect("connected");
    let test_db = renkei_testkit::TestDb::fresh()
        .await
        .expect("test database");
    let db = Db::connect_and_migrate::<Migrator>(&test_db.url, SERVICE, 8)
        .await
        .expect("migrated");
    let thing = Uuid::now_v7();
    db.write
        .execute_unprepared(&format!(
            "INSERT INTO things (id, name) VALUES ('{thing}', 'new')"
        ))
        .await
        .expect("a thing");
    let handler = Arc::new(Toucher {
        recorded: Notify::new(),
    });
    let spec = ConsumerSpec {
        stream: StreamSpec {
            name: "AUDITTEST",
            subjects: &["audittest.>"],
            max_age_days: 1,
        },
        durable: "audit-test".into(),
        filter_subjects: Vec::new(),
    };
    let consumer = Arc::new(Consumer::new(
        db.clone(),
        client,
        spec,
        handler.clone(),
        None,
    ));
    World {
        _nats: nats,
        test_db,
        db,
        consumer,
        handler,
        thing,
    }
}

fn touched(thing: Uuid, fail: bool) -> Envelope {
    Envelope::new(SERVICE, None, &Touched { thing, fail }).expect("envelope")
}

async fn actions(db: &Db) -> Vec<String> {
    log::Entity::find()
        .order_by_asc(log::Column::Seq)
        .all(&db.read)
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

async fn assert_intact(db: &Db, entries: u64) {
    let verdict = renkei_audit::verify_database(&db.read, SERVICE, &[], &[])
        .await
        .expect("verifiable");
    assert!(verdict.intact(), "{verdict}");
    assert_eq!(verdict.outcome.entries, entries, "{verdict}");
}

#[tokio::test]
async fn an_event_handler_and_an_http_change_of_the_same_row_both_commit_their_entries() {
    let w = world().await;
    if !w.test_db.is_postgres() {
        // SQLite has one writer: the two transactions never interleave.
        eprintln!("skipped: row locks need RENKEI_TEST_DATABASE_URL (PostgreSQL)");
        return;
    }
    // An HTTP change holds the thing's row…
    let http = w.db.write.begin().await.expect("begin");
    rename(&http, w.thing, "renamed").await.expect("renamed");
    // …while the handler records its entry and then waits for that row.
    let consumer = w.consumer.clone();
    let event = touched(w.thing, false);
    let applying = tokio::spawn(async move { consumer.apply(&event).await });
    w.handler.recorded.notified().await;
    // The HTTP change appends last and commits: the head is not held by
    // the handler (it used to be: one side was aborted as a deadlock).
    let operator = Actor {
        sub: "op-1".into(),
        org: Some(Uuid::now_v7()),
        roles: vec!["operator".into()],
    };
    tokio::time::timeout(
        Duration::from_secs(10),
        renkei_audit::record(&http, operator, Action::new("thing.renamed", w.thing)),
    )
    .await
    .expect("the head is free")
    .expect("the HTTP change is audited");
    http.commit().await.expect("the HTTP change commits");
    let applied = tokio::time::timeout(Duration::from_secs(10), applying)
        .await
        .expect("the handler finishes")
        .expect("joined")
        .expect("the event is applied");
    assert_eq!(applied, Applied::Handled);
    assert_eq!(actions(&w.db).await, ["thing.renamed", "thing.touched"]);
    assert_intact(&w.db, 2).await;
}

#[tokio::test]
async fn the_entries_of_an_event_that_fails_are_never_appended() {
    let w = world().await;
    w.consumer
        .apply(&touched(w.thing, true))
        .await
        .expect_err("the handler fails");
    assert!(actions(&w.db).await.is_empty());
    assert_intact(&w.db, 0).await;
    let applied = w
        .consumer
        .apply(&touched(w.thing, false))
        .await
        .expect("applied");
    assert_eq!(applied, Applied::Handled);
    assert_eq!(actions(&w.db).await, ["thing.touched"]);
    assert_intact(&w.db, 1).await;
}
