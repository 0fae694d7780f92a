//! The audit tables of a service's database and the two things done with
//! them: appending in the caller's transaction, and walking the stored
//! chain for the verifier.
//!
//! `audit_log` holds the entries; `audit_head` one row with the last
//! entry's number and hash. Appending locks that row (`FOR UPDATE` on
//! PostgreSQL; SQLite has a single writer), so concurrent transactions
//! chain one after the other. Append last, just before the commit: the
//! lock is then held briefly and never taken before another row lock.
//! Event handlers need not: what they record is appended when their
//! consumer's batch commits ([`renkei_bus::consumer::defer`]).

use renkei_store::schema::{CreateTable, at, index, int, string, text_null, uuid, uuid_null};
use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    AccessMode, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr,
    EntityTrait, IsolationLevel, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use sea_orm_migration::prelude::*;

use crate::chain::{self, Entry, GENESIS, Outcome, Recorded, Walk};
use crate::{Action, Actor};

/// The `audit_log` table.
pub mod log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub seq: i64,
        pub at: DateTimeUtc,
        pub actor_sub: String,
        pub actor_org: Option<Uuid>,
        pub actor_roles: String,
        pub action: String,
        pub object_type: String,
        pub object_id: String,
        pub organization_id: Option<Uuid>,
        pub trace_id: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub detail: Option<String>,
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The one-row `audit_head` table.
pub mod head {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_head")]
    pub struct Model {
        /// Always 1.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub seq: i64,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const HEAD_ROW: i32 = 1;

impl From<log::Model> for Entry {
    fn from(m: log::Model) -> Entry {
        Entry {
            seq: m.seq,
            id: m.id,
            at: m.at,
            actor_sub: m.actor_sub,
            actor_org: m.actor_org,
            actor_roles: m.actor_roles,
            action: m.action,
            object_type: m.object_type,
            object_id: m.object_id,
            organization_id: m.organization_id,
            trace_id: m.trace_id,
            detail: m.detail,
            prev_hash: m.prev_hash,
            hash: m.hash,
        }
    }
}

/// The row an entry is stored as.
impl From<&Entry> for log::ActiveModel {
    fn from(e: &Entry) -> log::ActiveModel {
        log::ActiveModel {
            id: Set(e.id),
            seq: Set(e.seq),
            at: Set(e.at),
            actor_sub: Set(e.actor_sub.clone()),
            actor_org: Set(e.actor_org),
            actor_roles: Set(e.actor_roles.clone()),
            action: Set(e.action.clone()),
            object_type: Set(e.object_type.clone()),
            object_id: Set(e.object_id.clone()),
            organization_id: Set(e.organization_id),
            trace_id: Set(e.trace_id.clone()),
            detail: Set(e.detail.clone()),
            prev_hash: Set(e.prev_hash.clone()),
            hash: Set(e.hash.clone()),
        }
    }
}

/// Appends one entry per action, in order, in `conn`'s transaction: they
/// commit or roll back with the change they record. Call it last, just
/// before the commit.
pub async fn append<C: ConnectionTrait>(
    conn: &C,
    actions: Vec<(Actor, Action)>,
) -> Result<Vec<Entry>, DbErr> {
    if actions.is_empty() {
        return Ok(Vec::new());
    }
    let current = head::Entity::find_by_id(HEAD_ROW)
        .lock(LockType::Update)
        .one(conn)
        .await?
        .ok_or_else(|| {
            DbErr::Custom("audit_head has no row: the audit migration did not run".into())
        })?;
    let at = chain::timestamp(chrono::Utc::now());
    let trace_id = renkei_telemetry::trace_id(&tracing::Span::current());
    let mut prev = current.hash;
    let mut seq = current.seq;
    let mut entries = Vec::with_capacity(actions.len());
    for (actor, action) in actions {
        seq += 1;
        let entry = Entry {
            seq,
            id: uuid::Uuid::now_v7(),
            at,
            actor_sub: actor.sub,
            actor_org: actor.org,
            actor_roles: actor.roles.join(","),
            action: action.action,
            object_type: action.object_type,
            object_id: action.object_id,
            organization_id: action.organization_id,
            trace_id: trace_id.clone(),
            detail: action.detail.map(|d| d.to_string()),
            prev_hash: String::new(),
            hash: String::new(),
        }
        .seal(seq, &prev);
        prev = entry.hash.clone();
        entries.push(entry);
    }
    for chunk in entries.chunks(200) {
        log::Entity::insert_many(chunk.iter().map(log::ActiveModel::from))
            .exec_without_returning(conn)
            .await?;
    }
    head::Entity::update_many()
        .col_expr(head::Column::Seq, Expr::value(seq))
        .col_expr(head::Column::Hash, Expr::value(prev))
        .filter(head::Column::Id.eq(HEAD_ROW))
        .exec(conn)
        .await?;
    Ok(entries)
}

/// The recorded head: the last entry's number and hash (0 and
/// [`GENESIS`] for an empty chain).
pub async fn recorded<C: ConnectionTrait>(conn: &C) -> Result<Recorded, DbErr> {
    let row = head::Entity::find_by_id(HEAD_ROW)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::Custom("audit_head has no row".into()))?;
    Ok(Recorded {
        seq: row.seq,
        hash: row.hash,
    })
}

/// Entries read per round trip by the verifier.
const PAGE: u64 = 2_000;

/// Re-computes the whole stored chain and checks it against the recorded
/// head and the signed heads `(seq, hash)`, in one consistent snapshot
/// (a read-only repeatable-read transaction on PostgreSQL; SQLite's read
/// transaction is one).
pub async fn walk(
    conn: &sea_orm::DatabaseConnection,
    signed: Vec<(i64, String)>,
) -> Result<Outcome, DbErr> {
    let txn = if conn.get_database_backend() == DatabaseBackend::Postgres {
        conn.begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?
    } else {
        conn.begin().await?
    };
    // The head row first: on SQLite the first read fixes the snapshot.
    let head = head::Entity::find_by_id(HEAD_ROW).one(&txn).await?;
    let mut walk = Walk::new(
        head.map(|h| Recorded {
            seq: h.seq,
            hash: h.hash,
        }),
        signed,
    );
    let mut after: Option<(i64, uuid::Uuid)> = None;
    loop {
        let mut query = log::Entity::find()
            .order_by_asc(log::Column::Seq)
            .order_by_asc(log::Column::Id)
            .limit(PAGE);
        if let Some((seq, id)) = after {
            query = query.filter(
                Condition::any().add(log::Column::Seq.gt(seq)).add(
                    Condition::all()
                        .add(log::Column::Seq.eq(seq))
                        .add(log::Column::Id.gt(id)),
                ),
            );
        }
        let rows = query.all(&txn).await?;
        let n = rows.len() as u64;
        for row in rows {
            after = Some((row.seq, row.id));
            walk.push(Entry::from(row));
        }
        if n < PAGE {
            break;
        }
    }
    txn.rollback().await.ok();
    Ok(walk.finish())
}

/// `audit_log`: the entries.
fn create_audit_log() -> CreateTable {
    CreateTable {
        name: "m20261215_000901_create_audit_log",
        table: Table::create()
            .table("audit_log")
            .if_not_exists()
            .col(uuid("id").primary_key())
            .col(ColumnDef::new("seq").big_integer().not_null())
            .col(at("at"))
            .col(string("actor_sub"))
            .col(uuid_null("actor_org"))
            .col(string("actor_roles"))
            .col(string("action"))
            .col(string("object_type"))
            .col(string("object_id"))
            .col(uuid_null("organization_id"))
            .col(ColumnDef::new("trace_id").string().null())
            .col(text_null("detail"))
            .col(string("prev_hash"))
            .col(string("hash"))
            .to_owned(),
        indexes: vec![
            index("audit_log_seq", "audit_log", &["seq"], true),
            index(
                "audit_log_actor_org",
                "audit_log",
                &["actor_org", "id"],
                false,
            ),
            index(
                "audit_log_organization",
                "audit_log",
                &["organization_id", "id"],
                false,
            ),
            index("audit_log_object", "audit_log", &["object_id", "id"], false),
        ],
    }
}

/// `audit_head`: the one row every append locks and moves, made with the
/// table.
struct CreateAuditHead(CreateTable);

impl CreateAuditHead {
    fn new() -> CreateAuditHead {
        CreateAuditHead(CreateTable {
            name: "m20261215_000902_create_audit_head",
            table: Table::create()
                .table("audit_head")
                .if_not_exists()
                .col(int("id").primary_key())
                .col(ColumnDef::new("seq").big_integer().not_null())
                .col(string("hash"))
                .to_owned(),
            indexes: vec![],
        })
    }
}

impl MigrationName for CreateAuditHead {
    fn name(&self) -> &str {
        self.0.name()
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAuditHead {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.0.up(manager).await?;
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO audit_head (id, seq, hash) VALUES ({HEAD_ROW}, 0, '{GENESIS}')"
            ))
            .await
            .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.0.down(manager).await
    }
}

/// The audit migrations, to be listed by every service's migrator.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(create_audit_log()),
        Box::new(CreateAuditHead::new()),
    ]
}
