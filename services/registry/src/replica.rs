//! This replica's graph index, kept in step with every replica's changes.
//!
//! Each registry replica holds the link graph in memory (blast radius,
//! membership, access checks). A change made through another replica
//! reaches this one in two ways:
//!
//! - live: every `registry.system.*` and `registry.link.*` event the relays
//!   publish is also delivered to a plain subscription of each replica, which
//!   re-reads the system or link from the database (the truth) and applies
//!   it; the replica's own changes come back too and are applied again,
//!   harmlessly. The subscription is opened before the index is loaded, so
//!   nothing committed in between is missed. After a lost NATS connection the
//!   whole index is loaded again (what was published meanwhile is gone from a
//!   plain subscription).
//! - on a miss: a request naming a system this index does not hold yet (made
//!   through another replica a moment ago, its event still on its way) reads
//!   it from the database first ([`catch_up`]), so a client never sees its
//!   own write refused by the replica it reaches next.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use parking_lot::RwLock;
use renkei_bus::Envelope;
use renkei_bus::contracts::registry as contract;
use renkei_store::Db;
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{CategorySet, GraphIndex};
use crate::store::{self, link, system};

/// Subjects whose events change the index.
const CHANGES: &str = "registry.>";

/// Opens the subscription, then loads the index: see the module's text.
pub async fn open(
    db: &Db,
    nats: &async_nats::Client,
) -> anyhow::Result<(Arc<RwLock<GraphIndex>>, async_nats::Subscriber)> {
    let changes = nats.subscribe(CHANGES).await?;
    let index = Arc::new(RwLock::new(store::load_index(db).await?));
    Ok((index, changes))
}

/// Applies every change event until `cancel`; loads the whole index again
/// after the NATS connection came back.
pub async fn follow(
    db: Db,
    nats: async_nats::Client,
    index: Arc<RwLock<GraphIndex>>,
    mut changes: async_nats::Subscriber,
    cancel: CancellationToken,
) {
    let mut connected = true;
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = check.tick() => {
                let now = renkei_bus::nats::is_connected(&nats);
                if now && !connected {
                    reload(&db, &index).await;
                }
                connected = now;
            }
            message = changes.next() => {
                let Some(message) = message else { return };
                let Ok(envelope) = serde_json::from_slice::<Envelope>(&message.payload) else {
                    continue;
                };
                if let Err(error) = apply(&db, &index, &envelope).await {
                    tracing::warn!(%error, subject = %envelope.subject, "index change not applied; reloading the index");
                    reload(&db, &index).await;
                }
            }
        }
    }
}

async fn reload(db: &Db, index: &RwLock<GraphIndex>) {
    match store::load_index(db).await {
        Ok(fresh) => *index.write() = fresh,
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "index not reloaded; it may lag until the next change")
        }
    }
}

/// One event's change, read again from the database.
async fn apply(db: &Db, index: &RwLock<GraphIndex>, envelope: &Envelope) -> Result<(), DbErr> {
    let system_id = if envelope.is::<contract::SystemRegistered>() {
        envelope
            .decode::<contract::SystemRegistered>()
            .ok()
            .map(|e| e.system.system_id)
    } else if envelope.is::<contract::SystemUpdated>() {
        envelope
            .decode::<contract::SystemUpdated>()
            .ok()
            .map(|e| e.system.system_id)
    } else if envelope.is::<contract::SystemLifecycleChanged>() {
        envelope
            .decode::<contract::SystemLifecycleChanged>()
            .ok()
            .map(|e| e.system_id)
    } else if envelope.is::<contract::LinkAdded>() {
        if let Ok(e) = envelope.decode::<contract::LinkAdded>() {
            catch_up(db, index, [e.link.from_system_id, e.link.to_system_id]).await?;
            if let Some(l) = link::Entity::find_by_id(e.link.link_id)
                .one(&db.read)
                .await?
            {
                add(&mut index.write(), &l);
            }
        }
        None
    } else if envelope.is::<contract::LinkRemoved>() {
        if let Ok(e) = envelope.decode::<contract::LinkRemoved>() {
            index.write().remove_link(e.link.link_id);
        }
        None
    } else {
        None
    };
    if let Some(id) = system_id
        && let Some(s) = system::Entity::find_by_id(id).one(&db.read).await?
    {
        index.write().upsert_system(store::node_of(&s));
    }
    Ok(())
}

fn add(index: &mut GraphIndex, l: &link::Model) {
    index.add_link(
        l.id,
        l.from_system_id,
        l.to_system_id,
        CategorySet::from_mask(l.propagates),
    );
}

/// Makes sure the index holds `ids` (systems that exist), with their links,
/// reading from the database those it does not hold yet.
pub async fn catch_up(
    db: &Db,
    index: &RwLock<GraphIndex>,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<(), DbErr> {
    let missing: Vec<Uuid> = {
        let index = index.read();
        ids.into_iter()
            .filter(|id| index.system(*id).is_none())
            .collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    let mut systems = system::Entity::find()
        .filter(system::Column::Id.is_in(missing.iter().copied()))
        .all(&db.read)
        .await?;
    if systems.is_empty() {
        return Ok(());
    }
    // Their platforms too: membership and the operator's rights come from
    // them.
    let platforms: Vec<Uuid> = {
        let index = index.read();
        systems
            .iter()
            .map(|s| s.platform_id)
            .filter(|p| index.system(*p).is_none() && !systems.iter().any(|s| s.id == *p))
            .collect()
    };
    if !platforms.is_empty() {
        systems.extend(
            system::Entity::find()
                .filter(system::Column::Id.is_in(platforms))
                .all(&db.read)
                .await?,
        );
    }
    // Platforms first: a linked system joins its platform's members.
    systems.sort_by_key(|s| s.id != s.platform_id);
    let links = link::Entity::find()
        .filter(
            Condition::any()
                .add(link::Column::FromSystemId.is_in(systems.iter().map(|s| s.id)))
                .add(link::Column::ToSystemId.is_in(systems.iter().map(|s| s.id))),
        )
        .all(&db.read)
        .await?;
    let mut index = index.write();
    for s in &systems {
        index.upsert_system(store::node_of(s));
    }
    for l in &links {
        add(&mut index, l);
    }
    tracing::debug!(
        systems = systems.len(),
        links = links.len(),
        "index caught up from the database"
    );
    Ok(())
}
