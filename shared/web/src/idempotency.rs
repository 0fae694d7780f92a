//! `Idempotency-Key` on every creating `POST`: a client that retries (after a
//! timeout, a dropped connection, a broker outage) sends the same key and
//! gets the first answer again instead of a second incident or organisation.
//!
//! - The first request with a key is recorded, with a fingerprint of its
//!   method, path and body, before the handler runs; its answer (status,
//!   body, `Content-Type`, `Location`) is kept once it is known.
//! - A replay (same caller, same key, same request) gets that answer again,
//!   marked `Idempotency-Replayed: true`, and the handler does not run.
//! - The same key with another request is a 422 naming `Idempotency-Key`; a
//!   replay while the first is still running is a 409.
//! - A 5xx is not kept: the key is released so a retry runs again. A first
//!   attempt whose process died is taken over after [`ABANDONED`].
//! - Unless it committed: the handler's own transaction marks the key with
//!   what it made ([`mark_committed`], called by every audited write), so
//!   an attempt that committed and then lost its answer (its process died,
//!   its database went away before the answer was kept) is never run again;
//!   a retry gets a 409 `idempotency_key_completed` naming what was made.
//! - Keys belong to the caller (organisation and subject of the verified
//!   token) and to the service whose route it is; they are kept for
//!   [`KEPT`] in that service's database, so every replica sees them.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use renkei_store::Db;
use renkei_store::schema::{CreateTable, at, at_null, int, string, text_null};
use sea_orm::sea_query::{ColumnDef, Expr, OnConflict, Table};
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter};
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;

/// A first attempt still unanswered after this long is taken to have died
/// with its process; a retry then runs the request again.
pub const ABANDONED: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// How long an answer is kept for replays.
pub const KEPT: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// The longest key accepted.
const MAX_KEY: usize = 255;

const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
const REPLAYED: HeaderName = HeaderName::from_static("idempotency-replayed");

/// The `idempotency_keys` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        /// `<organisation or ->:<subject>` of the caller.
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        /// SHA-256 of method, path and body.
        pub fingerprint: String,
        /// The answer's status; none while the first attempt runs.
        pub status: Option<i32>,
        pub content_type: Option<String>,
        pub location: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub body: Option<String>,
        /// When the current attempt started.
        pub created_at: DateTimeUtc,
        /// Attempts taken over after [`super::ABANDONED`]; a retry takes
        /// over only the attempt it saw.
        pub attempt: i32,
        pub answered_at: Option<DateTimeUtc>,
        /// What the attempt made (the audited object's id), written in the
        /// handler's own transaction: set, the request has taken effect.
        #[sea_orm(column_type = "Text", nullable)]
        pub committed_target: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The table and its later columns, for each service's migrator.
pub fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
    vec![
        Box::new(migration()),
        Box::new(renkei_store::schema::AddColumn {
            name: "m20261127_000200_add_idempotency_keys_committed_target",
            table: "idempotency_keys",
            column: ColumnDef::new("committed_target").text().null().to_owned(),
        }),
    ]
}

tokio::task_local! {
    /// The key of the request being handled, while its handler runs.
    static RUNNING: Running;
}

/// A claimed key, as its handler's transaction marks it.
#[derive(Clone, Debug)]
struct Running {
    scope: String,
    key: String,
    attempt: i32,
}

/// Marks the key of the request being handled (if it came with one) as
/// having made `target`, inside `conn` — the handler's transaction, so the
/// mark stands exactly when the change does. Called by every audited write
/// (`renkei_audit::record`); a no-op outside a keyed request.
pub async fn mark_committed<C: sea_orm::ConnectionTrait>(
    conn: &C,
    target: &str,
) -> Result<(), DbErr> {
    let Ok(running) = RUNNING.try_with(Clone::clone) else {
        return Ok(());
    };
    entity::Entity::update_many()
        .col_expr(
            entity::Column::CommittedTarget,
            Expr::value(target.to_owned()),
        )
        .filter(entity::Column::Scope.eq(running.scope))
        .filter(entity::Column::Key.eq(running.key))
        .filter(entity::Column::Attempt.eq(running.attempt))
        .exec(conn)
        .await?;
    Ok(())
}

/// The table, for each service's migrator.
fn migration() -> CreateTable {
    CreateTable {
        name: "m20261127_000100_create_idempotency_keys",
        table: Table::create()
            .table("idempotency_keys")
            .if_not_exists()
            .col(string("scope"))
            .col(string("key"))
            .col(string("fingerprint"))
            .col(ColumnDef::new("status").integer().null())
            .col(ColumnDef::new("content_type").string().null())
            .col(text_null("location"))
            .col(text_null("body"))
            .col(at("created_at"))
            .col(int("attempt").default(0))
            .col(at_null("answered_at"))
            .primary_key(sea_orm::sea_query::Index::create().col("scope").col("key"))
            .to_owned(),
        indexes: vec![renkei_store::schema::index(
            "idempotency_keys_created",
            "idempotency_keys",
            &["created_at"],
            false,
        )],
    }
}

/// What the record says of a key.
enum Claim {
    /// Ours to run (first attempt, or one abandoned), as this attempt.
    Run(i32),
    /// Committed, its answer lost: what it made.
    Completed(String),
    Replay(entity::Model),
    Mismatch,
    Running,
}

/// Records the key for this request, or finds it recorded.
async fn claim(db: &Db, scope: &str, key: &str, fingerprint: &str) -> Result<Claim, DbErr> {
    let now = Utc::now();
    let row = entity::ActiveModel {
        scope: Set(scope.to_owned()),
        key: Set(key.to_owned()),
        fingerprint: Set(fingerprint.to_owned()),
        status: Set(None),
        content_type: Set(None),
        location: Set(None),
        body: Set(None),
        created_at: Set(now),
        attempt: Set(0),
        answered_at: Set(None),
        committed_target: Set(None),
    };
    let inserted = entity::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([entity::Column::Scope, entity::Column::Key])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&db.write)
        .await?;
    if inserted > 0 {
        forget_old(db).await;
        return Ok(Claim::Run(0));
    }
    let Some(found) = entity::Entity::find_by_id((scope.to_owned(), key.to_owned()))
        .one(&db.write)
        .await?
    else {
        // Released between our insert and this read: try once more later.
        return Ok(Claim::Running);
    };
    if found.fingerprint != fingerprint {
        return Ok(Claim::Mismatch);
    }
    if found.status.is_some() {
        return Ok(Claim::Replay(found));
    }
    if let Some(target) = found.committed_target {
        return Ok(Claim::Completed(target));
    }
    if now - found.created_at < ABANDONED {
        return Ok(Claim::Running);
    }
    // Taken over only by the one retry that moves its start.
    let taken = entity::Entity::update_many()
        .col_expr(entity::Column::CreatedAt, Expr::value(now))
        .col_expr(entity::Column::Attempt, Expr::value(found.attempt + 1))
        .filter(entity::Column::Scope.eq(scope))
        .filter(entity::Column::Key.eq(key))
        .filter(entity::Column::Status.is_null())
        .filter(entity::Column::Attempt.eq(found.attempt))
        .exec(&db.write)
        .await?
        .rows_affected;
    Ok(if taken == 1 {
        Claim::Run(found.attempt + 1)
    } else {
        Claim::Running
    })
}

/// Deletes answers older than [`KEPT`], on one claim in a hundred.
async fn forget_old(db: &Db) {
    static CLAIMS: AtomicU64 = AtomicU64::new(0);
    if !CLAIMS.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
        return;
    }
    let cutoff: DateTime<Utc> = Utc::now() - KEPT;
    if let Err(error) = entity::Entity::delete_many()
        .filter(entity::Column::CreatedAt.lt(cutoff))
        .exec(&db.write)
        .await
    {
        tracing::debug!(%error, "old idempotency keys not deleted yet");
    }
}

/// The service databases keys are kept in, by service name, and the route
/// owners that say which service a request is for.
pub(crate) struct Stores {
    pub(crate) by_service: std::collections::HashMap<&'static str, Db>,
}

/// The middleware: see the module's text.
pub(crate) async fn idempotent(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let key = match req.headers().get(&HEADER) {
        Some(key) if req.method() == Method::POST => key.clone(),
        _ => return Ok(next.call(req).await?.map_into_boxed_body()),
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY && k.chars().all(|c| c.is_ascii_graphic()) => {
            k.to_owned()
        }
        _ => {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                format!("must be 1 to {MAX_KEY} visible ASCII characters"),
            )
            .into());
        }
    };
    let route = req.match_pattern();
    let db = {
        let owners = req.app_data::<web::Data<crate::metrics::RouteOwners>>();
        let stores = req.app_data::<web::Data<Stores>>();
        match (owners, stores, route.as_deref()) {
            (Some(owners), Some(stores), Some(route)) => {
                stores.by_service.get(owners.owner("POST", route)).cloned()
            }
            _ => None,
        }
    };
    // Not a route of a service with a database (or no route at all): the
    // key means nothing here.
    let Some(db) = db else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // An unauthenticated request gets its 401 from the handler, unrecorded.
    let Ok(who) = crate::identity::authenticate(req.request()).await else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let scope = format!(
        "{}:{}",
        who.org.map_or_else(|| "-".to_owned(), |o| o.to_string()),
        who.sub
    );
    let body = req.extract::<web::Bytes>().await?;
    let mut hash = Sha256::new();
    hash.update(req.method().as_str());
    hash.update(b" ");
    hash.update(req.uri().to_string());
    hash.update(b"\n");
    hash.update(&body);
    let fingerprint = hex::encode(hash.finalize());
    req.set_payload(actix_web::dev::Payload::from(body));

    match claim(&db, &scope, &key, &fingerprint)
        .await
        .map_err(store_error)?
    {
        Claim::Mismatch => Err(ApiError::Unprocessable {
            field: "Idempotency-Key".into(),
            detail: "this key was used for another request; use a new key for a new request".into(),
        }
        .into()),
        Claim::Running => Err(ApiError::conflict(
            "idempotency_key_in_use",
            "the first request with this Idempotency-Key is still running; retry later",
        )
        .into()),
        Claim::Replay(answer) => Ok(req.into_response(replayed(&answer))),
        Claim::Completed(target) => Err(ApiError::conflict(
            "idempotency_key_completed",
            format!("the request with this Idempotency-Key was carried out (it made {target}) but its answer was lost; read {target} instead of sending it again"),
        )
        .into()),
        Claim::Run(attempt) => {
            let running = Running {
                scope: scope.clone(),
                key: key.clone(),
                attempt,
            };
            let response = RUNNING.scope(running, next.call(req)).await?;
            let (request, response) = response.into_parts();
            let status = response.status();
            let (head, body) = response.into_parts();
            let bytes = actix_web::body::to_bytes(body).await.map_err(|e| {
                let e: Box<dyn std::error::Error> = e.into();
                ApiError::Internal(anyhow::anyhow!("response body not read: {e}"))
            })?;
            let header = |name| {
                head.headers()
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
                    .map(str::to_owned)
            };
            fail::fail_point!(renkei_bus::faults::BEFORE_ANSWER_KEPT, |_| {
                renkei_bus::faults::die(renkei_bus::faults::BEFORE_ANSWER_KEPT)
            });
            let outcome = if status.is_server_error() {
                release(&db, &scope, &key).await
            } else {
                keep(
                    &db,
                    &scope,
                    &key,
                    status,
                    header(CONTENT_TYPE),
                    header(LOCATION),
                    &bytes,
                )
                .await
            };
            if let Err(error) = outcome {
                tracing::warn!(%error, "idempotency key not updated; a replay may run the request again");
            }
            let response = head.set_body(bytes);
            Ok(ServiceResponse::new(request, response).map_into_boxed_body())
        }
    }
}

fn store_error(error: DbErr) -> actix_web::Error {
    if renkei_store::is_unreachable(&error) {
        return crate::error::db(error).into();
    }
    ApiError::Unavailable(format!("the idempotency record cannot be read: {error}")).into()
}

async fn keep(
    db: &Db,
    scope: &str,
    key: &str,
    status: StatusCode,
    content_type: Option<String>,
    location: Option<String>,
    body: &[u8],
) -> Result<(), DbErr> {
    entity::Entity::update_many()
        .col_expr(
            entity::Column::Status,
            Expr::value(i32::from(status.as_u16())),
        )
        .col_expr(entity::Column::ContentType, Expr::value(content_type))
        .col_expr(entity::Column::Location, Expr::value(location))
        .col_expr(
            entity::Column::Body,
            Expr::value(String::from_utf8_lossy(body).into_owned()),
        )
        .col_expr(entity::Column::AnsweredAt, Expr::value(Utc::now()))
        .filter(entity::Column::Scope.eq(scope))
        .filter(entity::Column::Key.eq(key))
        .exec(&db.write)
        .await?;
    Ok(())
}

/// Lets a retry run the request again — unless it committed (a 5xx after
/// the commit): then the key stays, and retries learn what it made.
async fn release(db: &Db, scope: &str, key: &str) -> Result<(), DbErr> {
    entity::Entity::delete_many()
        .filter(entity::Column::Scope.eq(scope))
        .filter(entity::Column::Key.eq(key))
        .filter(entity::Column::Status.is_null())
        .filter(entity::Column::CommittedTarget.is_null())
        .exec(&db.write)
        .await?;
    Ok(())
}

/// The kept answer, again.
fn replayed(answer: &entity::Model) -> HttpResponse {
    let status = answer
        .status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.insert_header((REPLAYED, "true"));
    if let Some(kind) = &answer.content_type {
        response.insert_header((CONTENT_TYPE, kind.as_str()));
    }
    if let Some(location) = &answer.location {
        response.insert_header((LOCATION, location.as_str()));
    }
    response.body(answer.body.clone().unwrap_or_default())
}
