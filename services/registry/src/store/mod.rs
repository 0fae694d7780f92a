//! The registry's tables, migrations and the queries over them.

pub mod entities;
pub mod migrations;

use renkei_store::Db;
use sea_orm::{EntityTrait, QueryOrder};

use crate::domain::{CategorySet, GraphIndex, Lifecycle, SystemNode};
pub use entities::{link, organization, system};

/// The domain's view of a stored system.
pub fn node_of(model: &system::Model) -> SystemNode {
    SystemNode {
        id: model.id,
        owner_org_id: model.owner_org_id,
        platform_id: model.platform_id,
        lifecycle: Lifecycle::parse("lifecycle", &model.lifecycle).unwrap_or(Lifecycle::Active),
    }
}

/// Builds the graph index from every system and link (at start).
#[tracing::instrument(skip_all)]
pub async fn load_index(db: &Db) -> anyhow::Result<GraphIndex> {
    let mut index = GraphIndex::new();
    let systems = system::Entity::find()
        .order_by_asc(system::Column::Id)
        .all(&db.read)
        .await?;
    for s in &systems {
        index.upsert_system(node_of(s));
    }
    let links = link::Entity::find()
        .order_by_asc(link::Column::Id)
        .all(&db.read)
        .await?;
    for l in &links {
        index.add_link(
            l.id,
            l.from_system_id,
            l.to_system_id,
            CategorySet::from_mask(l.propagates),
        );
    }
    tracing::info!(
        systems = index.system_count(),
        links = index.link_count(),
        "graph index built"
    );
    Ok(index)
}
