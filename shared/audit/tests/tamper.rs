//! The audit chain in a real database (SQLite, or PostgreSQL when
//! `RENKEI_TEST_DATABASE_URL` is set): appended in the transaction of the
//! change, verified by the real verifier, and tampered with directly in
//! SQL — an edit, a deletion, an insertion — each named by the verifier.

use renkei_audit::chain::{Entry, Evidence, Problem};
use renkei_audit::store::{self, log};
use renkei_audit::{Action, Actor, Verdict};
use renkei_store::Db;
use renkei_store::schema::{CreateTable, string, uuid};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use sea_orm_migration::prelude::*;

const SERVICE: &str = "audit_test";

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all: Vec<Box<dyn MigrationTrait>> = vec![Box::new(CreateTable {
            name: "m20261215_000001_create_things",
            table: Table::create()
                .table("things")
                .if_not_exists()
                .col(uuid("id").primary_key())
                .col(string("name").unique_key())
                .to_owned(),
            indexes: vec![],
        })];
        all.extend(renkei_audit::store::migrations());
        all
    }
}

mod thing {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "things")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

async fn database() -> (renkei_testkit::TestDb, Db) {
    renkei_testkit::init_tracing();
    let test_db = renkei_testkit::TestDb::fresh()
        .await
        .expect("test database");
    let db = Db::connect_and_migrate::<Migrator>(&test_db.url, SERVICE, 8)
        .await
        .expect("migrated");
    (test_db, db)
}

fn operator() -> Actor {
    Actor {
        sub: "op-1".into(),
        org: Some(uuid::Uuid::now_v7()),
        roles: vec!["operator".into()],
    }
}

/// A thing is made and its entry appended, in one transaction.
async fn make(db: &Db, name: &str) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    let txn = db.write.begin().await.expect("begin");
    thing::Entity::insert(thing::ActiveModel {
        id: Set(id),
        name: Set(name.to_owned()),
    })
    .exec_without_returning(&txn)
    .await
    .expect("thing");
    let done = Action::new("thing.made", id).detail(serde_json::json!({ "name": name }));
    renkei_audit::record(&txn, operator(), done)
        .await
        .expect("audited");
    txn.commit().await.expect("commit");
    id
}

async fn chain_of(db: &Db, n: usize) {
    for i in 0..n {
        make(db, &format!("thing-{i}")).await;
    }
}

async fn verdict(db: &Db) -> Verdict {
    renkei_audit::verify_database(&db.read, SERVICE, &[], &[])
        .await
        .expect("verifiable")
}

async fn entry(db: &Db, seq: i64) -> Entry {
    log::Entity::find()
        .filter(log::Column::Seq.eq(seq))
        .one(&db.write)
        .await
        .expect("read")
        .map(Entry::from)
        .expect("entry")
}

async fn sql(db: &Db, statement: &str) {
    db.write
        .execute_unprepared(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// An entry a forger writes, well formed, to be linked after `prev`.
fn forgery(seq: i64, prev: &str) -> Entry {
    Entry {
        seq: 0,
        id: uuid::Uuid::now_v7(),
        at: renkei_audit::chain::timestamp(chrono::Utc::now()),
        actor_sub: "admin".into(),
        actor_org: None,
        actor_roles: "admin".into(),
        action: "thing.approved".into(),
        object_type: "thing".into(),
        object_id: uuid::Uuid::now_v7().to_string(),
        organization_id: None,
        trace_id: None,
        detail: None,
        prev_hash: String::new(),
        hash: String::new(),
    }
    .seal(seq, prev)
}

#[tokio::test]
async fn an_untouched_chain_verifies_with_every_entry_counted() {
    let (_t, db) = database().await;
    assert!(verdict(&db).await.intact(), "an empty chain is intact");
    chain_of(&db, 6).await;
    let v = verdict(&db).await;
    assert!(v.intact(), "{v}");
    assert_eq!(v.outcome.entries, 6);
    assert_eq!(v.outcome.last_seq, Some(6));
    assert_eq!(
        v.to_string(),
        "audit_test: 6 entries, chain intact, no signed head given"
    );
    let first = entry(&db, 1).await;
    assert_eq!(first.prev_hash, renkei_audit::chain::GENESIS);
    assert_eq!(entry(&db, 2).await.prev_hash, first.hash);
    assert_eq!(first.actor_sub, "op-1");
    assert_eq!(first.object_type, "thing");
}

#[tokio::test]
async fn an_entry_edited_in_sql_is_named() {
    let (_t, db) = database().await;
    chain_of(&db, 6).await;
    let victim = entry(&db, 3).await;
    sql(
        &db,
        "UPDATE audit_log SET actor_sub = 'someone-else' WHERE seq = 3",
    )
    .await;
    let v = verdict(&db).await;
    match &v.outcome.problem {
        Some(Problem::Changed { entry, evidence }) => {
            assert_eq!((entry.seq, entry.id), (3, victim.id));
            assert_eq!(*evidence, Evidence::OwnHash);
        }
        other => panic!("expected entry 3 changed, got {other:?}"),
    }
    let line = v.to_string();
    assert!(line.contains("CHANGED: entry 3"), "{line}");
    assert!(line.contains(&victim.id.to_string()), "{line}");
    assert!(line.contains("thing.made by someone-else"), "{line}");
}

#[tokio::test]
async fn an_entry_edited_and_rehashed_in_sql_is_named_by_the_next_link() {
    let (_t, db) = database().await;
    chain_of(&db, 6).await;
    let mut forged = entry(&db, 3).await;
    forged.detail = Some("{\"name\":\"nothing to see\"}".into());
    forged.hash = forged.computed_hash();
    log::Entity::update(log::ActiveModel::from(&forged))
        .exec(&db.write)
        .await
        .expect("rewritten");
    let v = verdict(&db).await;
    assert_eq!(
        v.outcome.problem,
        Some(Problem::Changed {
            entry: forged.reference(),
            evidence: Evidence::NextLink
        }),
        "{v}"
    );
}

#[tokio::test]
async fn an_entry_deleted_in_sql_is_named() {
    let (_t, db) = database().await;
    chain_of(&db, 6).await;
    let before = entry(&db, 3).await;
    sql(&db, "DELETE FROM audit_log WHERE seq = 4").await;
    let v = verdict(&db).await;
    assert_eq!(
        v.outcome.problem,
        Some(Problem::Removed {
            after: Some(before.reference()),
            from: 4,
            to: 4,
            evidence: Evidence::Gap
        }),
        "{v}"
    );
    assert!(
        v.to_string()
            .contains("REMOVED: entry 4 was removed after entry 3"),
        "{v}"
    );
}

#[tokio::test]
async fn the_last_entry_deleted_in_sql_is_named_by_the_recorded_head() {
    let (_t, db) = database().await;
    chain_of(&db, 4).await;
    sql(&db, "DELETE FROM audit_log WHERE seq = 4").await;
    let v = verdict(&db).await;
    assert!(
        matches!(
            v.outcome.problem,
            Some(Problem::Removed {
                from: 4,
                to: 4,
                evidence: Evidence::RecordedHead(4),
                ..
            })
        ),
        "{v}"
    );
}

#[tokio::test]
async fn an_entry_inserted_in_sql_is_named() {
    let (_t, db) = database().await;
    chain_of(&db, 4).await;
    // Appended after the last one, linked and hashed as the service would.
    let last = entry(&db, 4).await;
    let forged = forgery(5, &last.hash);
    log::Entity::insert(log::ActiveModel::from(&forged))
        .exec_without_returning(&db.write)
        .await
        .expect("inserted");
    let v = verdict(&db).await;
    assert_eq!(
        v.outcome.problem,
        Some(Problem::Inserted {
            entry: forged.reference(),
            evidence: Evidence::RecordedHead(4)
        }),
        "{v}"
    );
    assert!(v.to_string().contains("INSERTED: entry 5"), "{v}");
}

#[tokio::test]
async fn an_entry_inserted_in_sql_in_the_middle_is_named() {
    let (_t, db) = database().await;
    chain_of(&db, 6).await;
    // Room is made at 3 (in two steps: seq is unique), the forgery linked
    // to entry 2 and hashed, and the recorded head moved along.
    sql(&db, "UPDATE audit_log SET seq = -seq WHERE seq >= 3").await;
    sql(&db, "UPDATE audit_log SET seq = 1 - seq WHERE seq < 0").await;
    sql(&db, "UPDATE audit_head SET seq = seq + 1").await;
    let forged = forgery(3, &entry(&db, 2).await.hash);
    log::Entity::insert(log::ActiveModel::from(&forged))
        .exec_without_returning(&db.write)
        .await
        .expect("inserted");
    let v = verdict(&db).await;
    assert_eq!(
        v.outcome.problem,
        Some(Problem::Inserted {
            entry: forged.reference(),
            evidence: Evidence::Renumbered
        }),
        "{v}"
    );
}

#[tokio::test]
async fn a_state_change_and_its_audit_entry_commit_or_roll_back_together() {
    let (_t, db) = database().await;
    make(&db, "kept").await;
    let head = store::recorded(&db.write).await.expect("head");
    // Rolled back after the append: neither the thing nor the entry stays.
    let txn = db.write.begin().await.expect("begin");
    thing::Entity::insert(thing::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        name: Set("dropped".into()),
    })
    .exec_without_returning(&txn)
    .await
    .expect("thing");
    renkei_audit::record(&txn, operator(), Action::new("thing.made", "x"))
        .await
        .expect("audited");
    txn.rollback().await.expect("rollback");
    // The change fails after the append: the transaction is abandoned.
    let txn = db.write.begin().await.expect("begin");
    renkei_audit::record(&txn, operator(), Action::new("thing.made", "y"))
        .await
        .expect("audited");
    let duplicate = thing::Entity::insert(thing::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        name: Set("kept".into()),
    })
    .exec_without_returning(&txn)
    .await;
    assert!(duplicate.is_err(), "the name is taken");
    drop(txn);
    assert_eq!(store::recorded(&db.write).await.expect("head"), head);
    let entries = log::Entity::find().all(&db.write).await.expect("entries");
    assert_eq!(entries.len(), 1);
    let things = thing::Entity::find().all(&db.write).await.expect("things");
    assert_eq!(things.len(), 1);
    // A committed change has its entry, and the chain goes on from it.
    make(&db, "second").await;
    let v = verdict(&db).await;
    assert!(v.intact(), "{v}");
    assert_eq!(v.outcome.entries, 2);
}

#[tokio::test]
async fn concurrent_appends_keep_one_gap_free_chain() {
    let (_t, db) = database().await;
    let writers = (0..8).map(|w| {
        let db = db.clone();
        tokio::spawn(async move {
            for i in 0..15 {
                // Other rows are written first, the append last: the head
                // row is locked only for the end of each transaction.
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let name = format!("w{w}-{i}-{attempt}");
                    let txn = db.write.begin().await.expect("begin");
                    let id = uuid::Uuid::now_v7();
                    let written = async {
                        thing::Entity::insert(thing::ActiveModel {
                            id: Set(id),
                            name: Set(name),
                        })
                        .exec_without_returning(&txn)
                        .await?;
                        renkei_audit::record(&txn, operator(), Action::new("thing.made", id)).await
                    }
                    .await;
                    match written {
                        Ok(()) => {
                            txn.commit().await.expect("commit");
                            break;
                        }
                        Err(e) if renkei_store::is_transient(&e) && attempt < 5 => continue,
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.expect("writer");
    }
    let v = verdict(&db).await;
    assert!(v.intact(), "{v}");
    assert_eq!(v.outcome.entries, 120);
    let seqs: Vec<i64> = log::Entity::find()
        .order_by_asc(log::Column::Seq)
        .all(&db.read)
        .await
        .expect("entries")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
}

#[tokio::test]
async fn several_actions_of_one_transaction_chain_in_order() {
    let (_t, db) = database().await;
    let txn = db.write.begin().await.expect("begin");
    renkei_audit::record_all(
        &txn,
        Actor::service("audit_test"),
        (0..3)
            .map(|i| Action::new("thing.swept", i).of(Some(uuid::Uuid::nil())))
            .collect(),
    )
    .await
    .expect("audited");
    txn.commit().await.expect("commit");
    let v = verdict(&db).await;
    assert!(v.intact(), "{v}");
    let third = entry(&db, 3).await;
    assert_eq!(third.object_id, "2");
    assert_eq!(third.actor_sub, "service:audit_test");
    assert_eq!(third.organization_id, Some(uuid::Uuid::nil()));
}
