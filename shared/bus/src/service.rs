//! What every service opens at start, the same way: its database (its own
//! SQLite file or PostgreSQL schema, migrated), every stream of the product
//! (declared idempotently), and its outbox with the relay running.

use renkei_settings::Settings;
use renkei_store::Db;
use sea_orm_migration::MigratorTrait;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::BusGauges;
use crate::outbox::Outbox;
use crate::subjects::STREAMS;

/// A service's database and outbox, ready for its own tasks.
pub struct Opened {
    pub db: Db,
    pub outbox: Outbox,
    /// The outbox's gauges; consumers are added with [`BusGauges::watch`].
    pub gauges: BusGauges,
}

/// Migrates `service`'s database with `M`, declares the streams and starts
/// the outbox relay in `tasks` (stopped by `cancel`).
pub async fn open<M: MigratorTrait>(
    settings: &Settings,
    service: &'static str,
    nats: &async_nats::Client,
    tasks: &mut JoinSet<()>,
    cancel: &CancellationToken,
) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(&settings.data_dir).ok();
    let db = Db::connect_and_migrate::<M>(
        &settings.database_url_for(service),
        service,
        settings.database.max_connections,
    )
    .await?;
    crate::nats::declare_streams(nats, settings.nats.stream_replicas, service, STREAMS).await?;
    let outbox = Outbox::new(service);
    tasks.spawn(
        outbox
            .relay(db.clone(), nats.clone(), &settings.outbox)
            .with_stream_replicas(settings.nats.stream_replicas)
            .run(cancel.clone()),
    );
    let gauges = BusGauges::new(service, db.clone(), nats.clone());
    Ok(Opened { db, outbox, gauges })
}
