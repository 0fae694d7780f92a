//! Helpers the emergency API's resources share: access to an incident,
//! the caller's name, error mapping, participants and id subqueries.

use actix_web::web;
use renkei_bus::registry_copy::LookupError;
use renkei_web::error::db;
use renkei_web::platforms::Platforms;
use renkei_web::{ApiError, Identity};
use sea_orm::sea_query::{
    IntoColumnRef, IntoCondition, IntoTableRef, LockType, Query, SelectStatement,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QuerySelect,
};
use uuid::Uuid;

use crate::access;
use crate::domain::{Disclosure, Relation, Status, Tlp};
use crate::service::EmergencyState;
use crate::store::{self, incident, system};

pub(super) type State = web::Data<EmergencyState>;

pub(super) fn platforms(state: &EmergencyState) -> Platforms<'_> {
    Platforms {
        db: &state.db,
        nats: &state.nats,
        timeout: state.query_timeout,
    }
}

/// The incident and what `who` may see of it; 404 for strangers.
pub(super) async fn readable(
    state: &EmergencyState,
    who: &Identity,
    id: Uuid,
) -> Result<(incident::Model, Relation, Disclosure), ApiError> {
    let inc = incident::Entity::find_by_id(id)
        .one(&state.db.read)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("incident"))?;
    let relation = access::relation(&state.db.read, who, &inc)
        .await
        .map_err(db)?;
    let tlp = Tlp::parse("tlp", &inc.tlp).unwrap_or(Tlp::Red);
    let disclosure = Disclosure::of(relation, tlp).ok_or(ApiError::NotFound("incident"))?;
    Ok((inc, relation, disclosure))
}

/// The incident, locked for a change `who` must be allowed to make.
pub(super) async fn actionable(
    txn: &DatabaseTransaction,
    who: &Identity,
    id: Uuid,
    action: &str,
) -> Result<incident::Model, ApiError> {
    let inc = incident::Entity::find_by_id(id)
        .lock(LockType::Update)
        .one(txn)
        .await
        .map_err(db)?
        .ok_or(ApiError::NotFound("incident"))?;
    let relation = access::relation(txn, who, &inc).await.map_err(db)?;
    let tlp = Tlp::parse("tlp", &inc.tlp).unwrap_or(Tlp::Red);
    if Disclosure::of(relation, tlp).is_none() {
        return Err(ApiError::NotFound("incident"));
    }
    if !access::may_act(txn, who, &inc).await.map_err(db)? {
        return Err(ApiError::Forbidden(format!(
            "only the declaring organisation's manager, CSIRT or CISO, or the platform operator, {action}"
        )));
    }
    Ok(inc)
}

pub(super) fn actor(who: &Identity) -> String {
    who.sub.clone()
}

pub(super) fn status_of(inc: &incident::Model) -> Result<Status, ApiError> {
    Status::parse("status", &inc.status)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored incident status: {e}")))
}

pub(super) fn lookup(e: LookupError) -> ApiError {
    match e {
        LookupError::Db(e) => db(e),
        LookupError::Unavailable(why) => ApiError::Unavailable(why),
    }
}

/// The participants of an incident: declaring org, affected orgs, the
/// platform operator, the central bodies.
pub(super) async fn participants<C: ConnectionTrait>(
    conn: &C,
    inc: &incident::Model,
) -> Result<(Vec<Uuid>, Vec<Uuid>), DbErr> {
    let central = store::central_bodies(conn).await?;
    let mut all = vec![inc.org_id];
    all.extend(
        store::affected_of(conn, inc.id)
            .await?
            .iter()
            .map(|a| a.org_id),
    );
    if let Some(p) = system::Entity::find_by_id(inc.platform_id)
        .one(conn)
        .await?
    {
        all.push(p.owner_org_id);
    }
    all.extend(central.iter().copied());
    all.sort();
    all.dedup();
    Ok((all, central))
}

/// `SELECT column FROM entity WHERE filter`, for `Column.in_subquery(..)`.
pub(super) fn ids_where(
    column: impl IntoColumnRef,
    entity: impl IntoTableRef,
    filter: impl IntoCondition,
) -> SelectStatement {
    Query::select()
        .column(column)
        .from(entity)
        .cond_where(filter)
        .to_owned()
}

/// The ids of the platforms `org` operates.
pub(super) fn operated_platforms(org: Uuid) -> SelectStatement {
    ids_where(
        system::Column::Id,
        system::Entity,
        Condition::all()
            .add(system::Column::Kind.eq("platform"))
            .add(system::Column::OwnerOrgId.eq(org)),
    )
}
