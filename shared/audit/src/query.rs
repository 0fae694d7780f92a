//! Reading the audit record over NATS: every service answers
//! `query.<service>.audit` for its own log, applying the caller's
//! visibility itself, and whoever serves `GET /v1/audit` asks all of them.

use std::marker::PhantomData;
use std::time::Duration;

use renkei_bus::query::{self, Query, QueryError, QueryFailure};
use renkei_bus::subjects;
use renkei_store::Db;
use renkei_web::{Identity, Role};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::log;

/// Who asks, as the HTTP front verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub sub: String,
    pub org: Option<Uuid>,
    pub roles: Vec<Role>,
}

impl From<&Identity> for Caller {
    fn from(who: &Identity) -> Caller {
        Caller {
            sub: who.sub.clone(),
            org: who.org,
            roles: who.roles.clone(),
        }
    }
}

impl Caller {
    fn identity(&self) -> Identity {
        Identity {
            sub: self.sub.clone(),
            org: self.org,
            roles: self.roles.clone(),
        }
    }

    /// What the caller may read: `Ok(None)` everything, `Ok(Some(org))`
    /// the entries of that organisation (its own actions and those on its
    /// objects), `Err` nothing.
    pub fn visibility(&self) -> Result<Option<Uuid>, &'static str> {
        let who = self.identity();
        if who.reads_everything() {
            Ok(None)
        } else {
            who.org.map(Some).ok_or(
                "the audit record is read by auditors, the central body, admins and organisations",
            )
        }
    }
}

/// One page of one service's log, as asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRequest {
    pub caller: Caller,
    pub action: Option<String>,
    pub object_id: Option<String>,
    /// Only for callers who read everything.
    pub organization_id: Option<Uuid>,
    /// Entries with an id after this one.
    pub after: Option<Uuid>,
    /// At most this many entries.
    pub limit: u64,
}

/// An entry as readers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// The service whose chain holds it.
    pub service: String,
    /// Its number in that chain.
    pub seq: i64,
    /// UUIDv7: entries of all services sort by time on it.
    pub id: Uuid,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Who: the person's subject, `service:<name>` for background work, or
    /// `contact:<id>` for an acknowledgement link.
    pub actor_sub: String,
    pub actor_org: Option<Uuid>,
    pub actor_roles: Vec<String>,
    /// What: `system.updated`, `rules.decision_recorded`, `incident.declared` …
    pub action: String,
    pub object_type: String,
    pub object_id: String,
    /// The organisation the object belongs to.
    pub organization_id: Option<Uuid>,
    /// The W3C trace id of the request or task that made the change.
    pub trace_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    fn of(service: &str, m: log::Model) -> AuditEntry {
        AuditEntry {
            service: service.to_owned(),
            seq: m.seq,
            id: m.id,
            at: m.at,
            actor_sub: m.actor_sub,
            actor_org: m.actor_org,
            actor_roles: m
                .actor_roles
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            action: m.action,
            object_type: m.object_type,
            object_id: m.object_id,
            organization_id: m.organization_id,
            trace_id: m.trace_id,
            detail: m
                .detail
                .map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))),
            prev_hash: m.prev_hash,
            hash: m.hash,
        }
    }
}

/// One service's answer: up to `limit` entries in id order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
}

/// A service that keeps an audit chain.
pub trait AuditedService: Send + Sync + 'static {
    const NAME: &'static str;
    const SUBJECT: &'static str;
}

macro_rules! audited {
    ($marker:ident, $name:literal, $subject:path) => {
        #[derive(Debug)]
        pub struct $marker;
        impl AuditedService for $marker {
            const NAME: &'static str = $name;
            const SUBJECT: &'static str = $subject;
        }
    };
}

audited!(Registry, "registry", subjects::QUERY_REGISTRY_AUDIT);
audited!(
    Demarcation,
    "demarcation",
    subjects::QUERY_DEMARCATION_AUDIT
);
audited!(Contacts, "contacts", subjects::QUERY_CONTACTS_AUDIT);
audited!(Emergency, "emergency", subjects::QUERY_EMERGENCY_AUDIT);

/// [`AuditRequest`] addressed to `S`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent, bound = "")]
pub struct AuditQuery<S> {
    pub request: AuditRequest,
    #[serde(skip)]
    to: PhantomData<fn() -> S>,
}

impl<S: AuditedService> Query for AuditQuery<S> {
    const SUBJECT: &'static str = S::SUBJECT;
    type Response = AuditPage;
}

impl<S> AuditQuery<S> {
    pub fn new(request: AuditRequest) -> Self {
        AuditQuery {
            request,
            to: PhantomData,
        }
    }
}

/// The largest page a service answers (an answer must fit a NATS message).
pub const MAX_LIMIT: u64 = 500;

/// Answers `request` from `service`'s own log.
pub async fn answer(
    db: &Db,
    service: &str,
    request: &AuditRequest,
) -> Result<AuditPage, QueryFailure> {
    let visible = request
        .caller
        .visibility()
        .map_err(|why| QueryFailure::new("forbidden", why))?;
    let mut query = log::Entity::find()
        .order_by_asc(log::Column::Id)
        .limit(request.limit.clamp(1, MAX_LIMIT + 1));
    if let Some(org) = visible {
        if request.organization_id.is_some() {
            return Err(QueryFailure::new(
                "forbidden",
                "only readers of everything filter by organization_id",
            ));
        }
        query = query.filter(
            Condition::any()
                .add(log::Column::ActorOrg.eq(org))
                .add(log::Column::OrganizationId.eq(org)),
        );
    }
    if let Some(org) = request.organization_id {
        query = query.filter(log::Column::OrganizationId.eq(org));
    }
    if let Some(action) = &request.action {
        query = query.filter(log::Column::Action.eq(action.as_str()));
    }
    if let Some(object) = &request.object_id {
        query = query.filter(log::Column::ObjectId.eq(object.as_str()));
    }
    if let Some(after) = request.after {
        query = query.filter(log::Column::Id.gt(after));
    }
    let rows = query.all(&db.read).await.map_err(|e| {
        tracing::warn!(error = %e, "audit log could not be read");
        QueryFailure::new("unavailable", "the audit log could not be read")
    })?;
    Ok(AuditPage {
        items: rows
            .into_iter()
            .map(|m| AuditEntry::of(service, m))
            .collect(),
    })
}

/// Answers `service`'s audit query until `cancel`.
pub fn spawn_responder(
    tasks: &mut JoinSet<()>,
    client: async_nats::Client,
    service: &'static str,
    db: Db,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    fn spawn<S: AuditedService>(
        tasks: &mut JoinSet<()>,
        client: async_nats::Client,
        db: Db,
        cancel: CancellationToken,
    ) {
        query::spawn_responder::<AuditQuery<S>, _, _>(
            tasks,
            client,
            S::NAME,
            move |q: AuditQuery<S>| {
                let db = db.clone();
                async move { answer(&db, S::NAME, &q.request).await }
            },
            cancel,
        );
    }
    match service {
        "registry" => spawn::<Registry>(tasks, client, db, cancel),
        "demarcation" => spawn::<Demarcation>(tasks, client, db, cancel),
        "contacts" => spawn::<Contacts>(tasks, client, db, cancel),
        "emergency" => spawn::<Emergency>(tasks, client, db, cancel),
        other => anyhow::bail!("{other} keeps no audit chain"),
    }
    Ok(())
}

/// Asks `service` for a page of its log.
pub async fn ask(
    client: &async_nats::Client,
    service: &str,
    request: AuditRequest,
    timeout: Duration,
) -> Result<AuditPage, QueryError> {
    match service {
        "registry" => query::request(client, &AuditQuery::<Registry>::new(request), timeout).await,
        "demarcation" => {
            query::request(client, &AuditQuery::<Demarcation>::new(request), timeout).await
        }
        "contacts" => query::request(client, &AuditQuery::<Contacts>::new(request), timeout).await,
        "emergency" => {
            query::request(client, &AuditQuery::<Emergency>::new(request), timeout).await
        }
        other => Err(QueryError::Refused(QueryFailure::new(
            "not_found",
            format!("{other} keeps no audit chain"),
        ))),
    }
}

/// What every asked service gave, merged in id order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    pub items: Vec<AuditEntry>,
    /// There is more after the last item.
    pub more: bool,
    /// The services that did not answer.
    pub unavailable: Vec<String>,
}

/// Asks every service in `services` at once for up to `limit` entries and
/// merges the answers by id (time order).
pub async fn ask_all(
    client: &async_nats::Client,
    services: &[&str],
    request: &AuditRequest,
    limit: u64,
    timeout: Duration,
) -> Merged {
    let mut asked = request.clone();
    asked.limit = limit + 1;
    let answers = futures::future::join_all(services.iter().map(|service| {
        let asked = asked.clone();
        async move { (*service, ask(client, service, asked, timeout).await) }
    }))
    .await;
    let mut merged = Merged::default();
    for (service, answer) in answers {
        match answer {
            Ok(page) => merged.items.extend(page.items),
            Err(error) => {
                tracing::warn!(service, %error, "a service's audit log is unavailable");
                merged.unavailable.push(service.to_owned());
            }
        }
    }
    merged.items.sort_by_key(|e| e.id);
    merged.more = merged.items.len() as u64 > limit;
    merged.items.truncate(limit as usize);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_reads_what() {
        let org = Uuid::now_v7();
        let caller = |org, roles: &[Role]| Caller {
            sub: "x".into(),
            org,
            roles: roles.to_vec(),
        };
        assert_eq!(caller(None, &[Role::Auditor]).visibility(), Ok(None));
        assert_eq!(caller(Some(org), &[Role::Auditor]).visibility(), Ok(None));
        assert_eq!(caller(None, &[Role::Central]).visibility(), Ok(None));
        assert_eq!(
            caller(Some(org), &[Role::Manager]).visibility(),
            Ok(Some(org))
        );
        assert!(caller(None, &[Role::Manager]).visibility().is_err());
    }

    #[test]
    fn a_query_travels_as_the_bare_request() {
        let request = AuditRequest {
            caller: Caller {
                sub: "a".into(),
                org: None,
                roles: vec![Role::Auditor],
            },
            action: Some("system.updated".into()),
            object_id: None,
            organization_id: None,
            after: None,
            limit: 10,
        };
        let q = AuditQuery::<Registry>::new(request.clone());
        let json = serde_json::to_value(&q).expect("json");
        assert_eq!(json["limit"], 10);
        let back: AuditQuery<Contacts> = serde_json::from_value(json).expect("parse");
        assert_eq!(back.request.caller, request.caller);
        assert_eq!(AuditQuery::<Contacts>::SUBJECT, "query.contacts.audit");
    }
}
