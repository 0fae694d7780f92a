//! What the registry publishes and consumes.
//!
//! Publishes (through the outbox): organisation registered, system
//! registered / updated / lifecycle changed / activated, link added /
//! removed.
//! Consumes: `demarcation.rules.accepted` (activates the owner's pending
//! systems). Answers: the blast-radius query, one system's snapshot, and
//! every system of a platform.

use std::sync::Arc;

use chrono::Utc;
use parking_lot::RwLock;
use renkei_bus::contracts::demarcation::RulesAccepted;
use renkei_bus::contracts::registry as contract;
use renkei_bus::{Envelope, EventHandler, HandlerError, Outbox, QueryFailure};
use renkei_store::Db;
use renkei_web::ApiError;
use renkei_web::error::db as db_error;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use uuid::Uuid;

use crate::domain::{Category, CategorySet, GraphIndex, Lifecycle};
use crate::store::{link, organization, system};

pub fn organization_registered(m: &organization::Model) -> contract::OrganizationRegistered {
    contract::OrganizationRegistered {
        organization_id: m.id,
        name: m.name.clone(),
        kind: m.kind.clone(),
        competent_org_id: m.competent_org_id,
    }
}

pub fn organization_updated(
    m: &organization::Model,
    changed: Vec<String>,
) -> contract::OrganizationUpdated {
    contract::OrganizationUpdated {
        organization_id: m.id,
        name: m.name.clone(),
        kind: m.kind.clone(),
        competent_org_id: m.competent_org_id,
        changed,
    }
}

pub fn snapshot(m: &system::Model) -> contract::SystemSnapshot {
    contract::SystemSnapshot {
        system_id: m.id,
        name: m.name.clone(),
        kind: m.kind.clone(),
        owner_org_id: m.owner_org_id,
        platform_id: m.platform_id,
        lifecycle: m.lifecycle.clone(),
        confidentiality: m.confidentiality,
        integrity: m.integrity,
        availability: m.availability,
    }
}

pub fn system_registered(m: &system::Model) -> contract::SystemRegistered {
    contract::SystemRegistered {
        system: snapshot(m),
    }
}

pub fn system_updated(m: &system::Model, changed: Vec<String>) -> contract::SystemUpdated {
    contract::SystemUpdated {
        system: snapshot(m),
        changed,
    }
}

fn link_snapshot(m: &link::Model) -> contract::LinkSnapshot {
    contract::LinkSnapshot {
        link_id: m.id,
        platform_id: m.platform_id,
        from_system_id: m.from_system_id,
        to_system_id: m.to_system_id,
        kind: m.kind.clone(),
        propagates: CategorySet::from_mask(m.propagates).names(),
    }
}

pub fn link_added(m: &link::Model) -> contract::LinkAdded {
    contract::LinkAdded {
        link: link_snapshot(m),
    }
}

pub fn link_removed(m: &link::Model) -> contract::LinkRemoved {
    contract::LinkRemoved {
        link: link_snapshot(m),
    }
}

/// Moves a system's lifecycle and stages the event, in one transaction,
/// audited as done by `by`.
/// `Ok(None)` when the system does not exist; a 409 for an illegal move.
pub async fn apply_lifecycle(
    db: &Db,
    outbox: &Outbox,
    id: Uuid,
    to: Lifecycle,
    txn: Option<&DatabaseTransaction>,
    by: &renkei_audit::Actor,
) -> Result<Option<system::Model>, ApiError> {
    match txn {
        Some(txn) => change_in(txn, outbox, id, to, by).await,
        None => {
            let txn = db.write.begin().await.map_err(db_error)?;
            let saved = change_in(&txn, outbox, id, to, by).await?;
            outbox.commit(txn).await.map_err(db_error)?;
            Ok(saved)
        }
    }
}

async fn change_in<C: ConnectionTrait>(
    conn: &C,
    outbox: &Outbox,
    id: Uuid,
    to: Lifecycle,
    by: &renkei_audit::Actor,
) -> Result<Option<system::Model>, ApiError> {
    let Some(current) = system::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let from = Lifecycle::parse("lifecycle", &current.lifecycle)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    from.transition(to)
        .map_err(|e| ApiError::conflict("illegal_transition", e.to_string()))?;
    let mut model: system::ActiveModel = current.into();
    model.lifecycle = Set(to.as_str().to_owned());
    model.updated_at = Set(Utc::now());
    let saved = model.update(conn).await.map_err(db_error)?;
    let event = contract::SystemLifecycleChanged {
        system_id: saved.id,
        platform_id: saved.platform_id,
        owner_org_id: saved.owner_org_id,
        from: from.as_str().to_owned(),
        to: to.as_str().to_owned(),
    };
    outbox
        .stage(conn, Some(saved.owner_org_id), &event)
        .await
        .map_err(db_error)?;
    if to == Lifecycle::Active {
        let activated = contract::SystemActivated {
            system_id: saved.id,
            platform_id: saved.platform_id,
            owner_org_id: saved.owner_org_id,
            from: from.as_str().to_owned(),
        };
        outbox
            .stage(conn, Some(saved.owner_org_id), &activated)
            .await
            .map_err(db_error)?;
    }
    let done = renkei_audit::Action::new("system.lifecycle_changed", saved.id)
        .of(saved.owner_org_id)
        .detail(serde_json::json!({"from": from.as_str(), "to": to.as_str()}));
    renkei_audit::record(conn, by, done)
        .await
        .map_err(db_error)?;
    Ok(Some(saved))
}

/// Activates the systems whose owner accepted the rules in force.
pub struct RulesAcceptedHandler {
    pub db: Db,
    pub outbox: Outbox,
    pub index: Arc<RwLock<GraphIndex>>,
}

#[async_trait::async_trait]
impl EventHandler for RulesAcceptedHandler {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let accepted: RulesAccepted = event
            .decode()
            .map_err(|e| HandlerError::Permanent(e.to_string()))?;
        let mut activated = Vec::new();
        for system_id in &accepted.system_ids {
            let Some(current) = system::Entity::find_by_id(*system_id).one(txn).await? else {
                continue;
            };
            // Only the owner's acceptance counts, and only a pending system moves.
            if current.owner_org_id != accepted.organization_id
                || current.platform_id != accepted.platform_id
                || current.lifecycle != Lifecycle::PendingRules.as_str()
            {
                continue;
            }
            apply_lifecycle(
                &self.db,
                &self.outbox,
                *system_id,
                Lifecycle::Active,
                Some(txn),
                &renkei_audit::Actor::service(crate::SERVICE),
            )
            .await
            .map_err(|e| HandlerError::Transient(anyhow::anyhow!(e.to_string())))?;
            activated.push(*system_id);
        }
        tracing::info!(organization.id = %accepted.organization_id, activated = activated.len(), "rules accepted");
        // The index only tracks retirement, which activation never changes;
        // still keep it exact for readers.
        let mut index = self.index.write();
        for id in activated {
            index.set_lifecycle(id, Lifecycle::Active);
        }
        Ok(())
    }
}

/// Answers "what is system X now" from the database.
pub async fn answer_system(
    db: &Db,
    query: &contract::SystemQuery,
) -> Result<contract::SystemSnapshot, QueryFailure> {
    system::Entity::find_by_id(query.system_id)
        .one(&db.read)
        .await
        .map_err(|e| QueryFailure::new("unavailable", e.to_string()))?
        .map(|m| snapshot(&m))
        .ok_or_else(|| QueryFailure::new("not_found", "no such system"))
}

/// Answers "every system on platform P" from the database.
pub async fn answer_platform_systems(
    db: &Db,
    query: &contract::PlatformSystemsQuery,
) -> Result<contract::PlatformSystems, QueryFailure> {
    let systems = system::Entity::find()
        .filter(system::Column::PlatformId.eq(query.platform_id))
        .order_by_asc(system::Column::Id)
        .all(&db.read)
        .await
        .map_err(|e| QueryFailure::new("unavailable", e.to_string()))?;
    if !systems.iter().any(|s| s.id == query.platform_id) {
        return Err(QueryFailure::new("not_found", "no such platform"));
    }
    Ok(contract::PlatformSystems {
        platform_id: query.platform_id,
        systems: systems.iter().map(snapshot).collect(),
    })
}

/// Answers the blast-radius query from the in-memory index.
pub fn answer_blast_radius(
    index: &RwLock<GraphIndex>,
    query: &contract::BlastRadiusQuery,
) -> Result<contract::BlastRadius, QueryFailure> {
    let category = Category::parse("category", &query.category)
        .map_err(|e| QueryFailure::new("invalid_category", e.reason))?;
    let index = index.read();
    let origin = index
        .system(query.system_id)
        .ok_or_else(|| QueryFailure::new("not_found", "no such system"))?;
    let platform_id = origin.platform_id;
    let reached = index
        .blast_radius(query.system_id, category)
        .unwrap_or_default();
    Ok(contract::BlastRadius {
        origin: query.system_id,
        platform_id,
        category: category.as_str().to_owned(),
        affected: reached
            .into_iter()
            .map(|r| contract::AffectedSystem {
                system_id: r.system_id,
                owner_org_id: r.owner_org_id,
                hops: r.hops,
                path: r.path,
            })
            .collect(),
    })
}
