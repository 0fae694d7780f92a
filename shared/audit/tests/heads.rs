//! Signed chain heads over a real NATS server: published on
//! `audit.head.<service>` in the AUDIT stream, read back, held against the
//! chain by the verifier; a forged or altered head is refused, and a chain
//! rewritten after a head was signed is caught by it.

use ed25519_dalek::SigningKey;
use renkei_audit::chain::{Evidence, Problem};
use renkei_audit::heads::{self, HeadPublisher};
use renkei_audit::store::log;
use renkei_audit::{Action, Actor, SignedHead};
use renkei_bus::subjects::AUDIT_STREAM;
use renkei_store::Db;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use sea_orm_migration::prelude::*;

const SERVICE: &str = "heads_test";

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        renkei_audit::store::migrations()
    }
}

async fn append(db: &Db, n: usize) {
    for i in 0..n {
        let txn = db.write.begin().await.expect("begin");
        renkei_audit::record(&txn, Actor::service(SERVICE), Action::new("thing.done", i))
            .await
            .expect("audited");
        txn.commit().await.expect("commit");
    }
}

#[tokio::test]
async fn a_signed_head_is_published_on_nats_and_a_forged_one_is_refused() {
    renkei_testkit::init_tracing();
    let server = renkei_testkit::NatsServer::start().await.expect("nats");
    let client = async_nats::connect(server.url()).await.expect("connect");
    renkei_bus::nats::wait_for_jetstream(&client, std::time::Duration::from_secs(10))
        .await
        .expect("jetstream");
    renkei_bus::nats::ensure_streams(&client, 1, &[AUDIT_STREAM])
        .await
        .expect("stream");
    let test_db = renkei_testkit::TestDb::fresh().await.expect("database");
    let db = Db::connect_and_migrate::<Migrator>(&test_db.url, SERVICE, 4)
        .await
        .expect("migrated");
    let key = SigningKey::from_bytes(&[7; 32]);
    let trusted = key.verifying_key();
    let publisher = HeadPublisher {
        service: SERVICE,
        db: db.clone(),
        js: async_nats::jetstream::new(client.clone()),
        key: key.clone(),
        interval: std::time::Duration::from_secs(60),
    };

    // Nothing to sign while the chain is empty; then the head, once.
    assert_eq!(publisher.publish_if_moved(None).await.expect("empty"), None);
    append(&db, 3).await;
    assert_eq!(
        publisher.publish_if_moved(None).await.expect("signed"),
        Some(3)
    );
    assert_eq!(
        publisher.publish_if_moved(Some(3)).await.expect("same"),
        None
    );

    let latest = heads::latest(&client, &[SERVICE]).await.expect("read back");
    assert_eq!(latest.len(), 1);
    let head = latest[0].clone();
    assert_eq!((head.service.as_str(), head.seq), (SERVICE, 3));
    head.verify(&trusted)
        .expect("signed with the installation's key");
    let third = log::Entity::find()
        .filter(log::Column::Seq.eq(3))
        .one(&db.read)
        .await
        .expect("read")
        .expect("entry 3");
    assert_eq!(head.hash, third.hash);

    let v = renkei_audit::verify_database(&db.read, SERVICE, &latest, &[trusted])
        .await
        .expect("verified");
    assert!(v.intact(), "{v}");
    assert_eq!(v.outcome.signed, Some(3));
    assert!(v.to_string().ends_with("head 3 signed ✓"), "{v}");

    // The chain moves on: a second head; both are in the stream, in order.
    append(&db, 2).await;
    assert_eq!(
        publisher.publish_if_moved(Some(3)).await.expect("signed"),
        Some(5)
    );
    let all = heads::all(&client, Some(SERVICE)).await.expect("all heads");
    assert_eq!(all.iter().map(|h| h.seq).collect::<Vec<_>>(), [3, 5]);

    // An altered head (its hash changed, signature kept) is refused.
    let mut altered = all.clone();
    altered[0].hash = "ab".repeat(32);
    let v = renkei_audit::verify_database(&db.read, SERVICE, &altered, &[trusted])
        .await
        .expect("verified");
    assert!(
        matches!(&v.outcome.problem, Some(Problem::ForgedHead { seq: 3, reason }) if reason.contains("forged or altered")),
        "{v}"
    );
    // A head signed with another key is refused.
    let forger = SigningKey::from_bytes(&[9; 32]);
    let forged = vec![SignedHead::sign(
        &forger,
        SERVICE,
        5,
        &"cd".repeat(32),
        chrono::Utc::now(),
    )];
    let v = renkei_audit::verify_database(&db.read, SERVICE, &forged, &[trusted])
        .await
        .expect("verified");
    assert!(
        matches!(&v.outcome.problem, Some(Problem::ForgedHead { seq: 5, reason }) if reason.contains("another key")),
        "{v}"
    );
    // Heads without a key to check them with are an error, not a pass.
    assert!(
        renkei_audit::verify_database(&db.read, SERVICE, &all, &[])
            .await
            .is_err()
    );

    // The last entry rewritten, re-hashed and the recorded head moved too:
    // only the signed head can tell, and it names the entry.
    let mut rewritten = renkei_audit::chain::Entry::from(
        log::Entity::find()
            .filter(log::Column::Seq.eq(5))
            .one(&db.read)
            .await
            .expect("read")
            .expect("entry 5"),
    );
    rewritten.actor_sub = "nobody".into();
    rewritten.hash = rewritten.computed_hash();
    db.write
        .execute_unprepared(&format!(
            "UPDATE audit_log SET actor_sub = 'nobody', hash = '{}' WHERE seq = 5",
            rewritten.hash
        ))
        .await
        .expect("tampered");
    db.write
        .execute_unprepared(&format!(
            "UPDATE audit_head SET hash = '{}'",
            rewritten.hash
        ))
        .await
        .expect("tampered head");
    let unsigned = renkei_audit::verify_database(&db.read, SERVICE, &[], &[])
        .await
        .expect("verified");
    assert!(
        unsigned.intact(),
        "without heads the rewrite is invisible: {unsigned}"
    );
    let v = renkei_audit::verify_database(&db.read, SERVICE, &all, &[trusted])
        .await
        .expect("verified");
    // Entry 5 differs from the head signed at 5 while the head at 3 still
    // holds: the rewrite lies in 4..=5.
    assert_eq!(
        v.outcome.problem,
        Some(Problem::Rewritten {
            at: rewritten.reference(),
            since: Some(3)
        }),
        "{v}"
    );
    assert!(
        v.to_string().contains("entries 4 to 5 were rewritten"),
        "{v}"
    );
    // With a head at every entry, the rewritten one is named exactly.
    let four = all[0].clone();
    let at_four = SignedHead::sign(
        &key,
        SERVICE,
        4,
        &log::Entity::find()
            .filter(log::Column::Seq.eq(4))
            .one(&db.read)
            .await
            .expect("read")
            .expect("entry 4")
            .hash,
        chrono::Utc::now(),
    );
    let v = renkei_audit::verify_database(
        &db.read,
        SERVICE,
        &[four, at_four, all[1].clone()],
        &[trusted],
    )
    .await
    .expect("verified");
    assert_eq!(
        v.outcome.problem,
        Some(Problem::Changed {
            entry: rewritten.reference(),
            evidence: Evidence::SignedHead(5)
        }),
        "{v}"
    );
}
