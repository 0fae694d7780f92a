//! The emergency service's tables and the queries more than one module uses.

pub mod entities;
pub mod migrations;

use chrono::{DateTime, Utc};
pub use entities::*;
pub use renkei_bus::registry_copy::{org_names, organization, system, system_names};
use renkei_store::json::to_column;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

/// The central coordinating bodies of the installation.
pub async fn central_bodies<C: ConnectionTrait>(conn: &C) -> Result<Vec<Uuid>, DbErr> {
    Ok(organization::Entity::find()
        .filter(organization::Column::Kind.eq("central_body"))
        .order_by_asc(organization::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|o| o.id)
        .collect())
}

/// The affected organisations of an incident.
pub async fn affected_of<C: ConnectionTrait>(
    conn: &C,
    incident_id: Uuid,
) -> Result<Vec<affected::Model>, DbErr> {
    affected::Entity::find()
        .filter(affected::Column::IncidentId.eq(incident_id))
        .order_by_asc(affected::Column::Id)
        .all(conn)
        .await
}

/// One timeline entry to append.
#[derive(Debug)]
pub struct Entry<'a> {
    pub kind: &'a str,
    pub actor: &'a str,
    pub org_id: Option<Uuid>,
    pub text: String,
    pub detail: serde_json::Value,
}

/// Appends entries to an incident's timeline, with the current trace id.
pub async fn append<C: ConnectionTrait>(
    conn: &C,
    incident_id: Uuid,
    at: DateTime<Utc>,
    entries: Vec<Entry<'_>>,
) -> Result<(), DbErr> {
    if entries.is_empty() {
        return Ok(());
    }
    let trace_id = renkei_telemetry::trace_id(&tracing::Span::current());
    let rows = entries
        .into_iter()
        .map(|e| {
            Ok(timeline::ActiveModel {
                id: Set(Uuid::now_v7()),
                incident_id: Set(incident_id),
                at: Set(at),
                kind: Set(e.kind.to_owned()),
                actor: Set(e.actor.to_owned()),
                org_id: Set(e.org_id),
                text: Set(e.text),
                detail: Set(to_column(&e.detail)?),
                trace_id: Set(trace_id.clone()),
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    for chunk in rows.chunks(300) {
        timeline::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Sets the gauges of open incidents by severity (1–4) and of the nearest
/// initial report still owed (+Inf when none is).
pub async fn observe<C: ConnectionTrait>(conn: &C) -> Result<(), DbErr> {
    use renkei_telemetry::metrics;
    use sea_orm::QuerySelect;
    let open: Vec<(i32, i64)> = incident::Entity::find()
        .select_only()
        .column(incident::Column::Severity)
        .column_as(incident::Column::Id.count(), "n")
        .filter(incident::Column::ClosedAt.is_null())
        .group_by(incident::Column::Severity)
        .into_tuple()
        .all(conn)
        .await?;
    for severity in 1..=4 {
        let n = open
            .iter()
            .find(|(s, _)| *s == severity)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!(metrics::OPEN_INCIDENTS, "severity" => severity.to_string()).set(n as f64);
    }
    let nearest: Option<chrono::DateTime<chrono::Utc>> = incident::Entity::find()
        .select_only()
        .column(incident::Column::ReportDueAt)
        .filter(incident::Column::ClosedAt.is_null())
        .filter(incident::Column::ReportDueAt.is_not_null())
        .order_by_asc(incident::Column::ReportDueAt)
        .into_tuple::<Option<chrono::DateTime<chrono::Utc>>>()
        .one(conn)
        .await?
        .flatten();
    let gauge = metrics::gauge!(metrics::REPORT_DEADLINE_NEAREST);
    match nearest {
        Some(due) => {
            gauge.set((due - chrono::Utc::now()).num_milliseconds() as f64 / 1000.0);
        }
        // None owed: far away, so no alert on "deadline near" fires.
        None => gauge.set(f64::INFINITY),
    }
    Ok(())
}
