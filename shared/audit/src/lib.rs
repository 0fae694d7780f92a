//! The tamper-evident audit record.
//!
//! Every state-changing action (who, organisation, what, object, when,
//! trace id) is appended to its service's `audit_log` in the same database
//! transaction as the change ([`record`]); each entry holds the hash of the
//! one before it (a SHA-256 chain, per service). Each service signs its
//! chain head with the installation's Ed25519 key at intervals and
//! publishes it on NATS (`audit.head.<service>`, stream `AUDIT`) for every
//! organisation to keep. `renkei audit verify` re-computes the chains and
//! names the first entry that was changed, removed or inserted
//! ([`verify_database`]); `GET /v1/audit` reads the record ([`http`]).
//!
//! - [`chain`]: entries, hashes and the verification walk (pure);
//! - [`head`]: signed heads (pure);
//! - [`store`]: the tables, appending, walking a database;
//! - [`heads`]: publishing and reading heads on NATS;
//! - [`query`]: `query.<service>.audit`, answered by every service;
//! - [`http`]: the routes every service mounts.

pub mod chain;
pub mod head;
pub mod heads;
pub mod http;
pub mod query;
pub mod store;

use std::time::Duration;

use anyhow::Context as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use renkei_settings::Settings;
use renkei_store::Db;
use renkei_web::Identity;
use sea_orm::{ConnectionTrait, DbErr};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use chain::{Outcome, Problem};
pub use head::SignedHead;
pub use http::{AuditReader, AuditState};

/// The file the signing key is kept in, in the data directory, when
/// `audit.signing_key` is not set.
pub const KEY_FILE: &str = "audit-signing.key";

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The person's subject, `service:<name>` for a service's own work,
    /// `contact:<id>` for a contact acknowledging through a link.
    pub sub: String,
    /// Their organisation (none for installation admins and services).
    pub org: Option<Uuid>,
    pub roles: Vec<String>,
}

impl Actor {
    /// A service's background work (assessments, deadlines, rules coming
    /// into force, escalation steps …).
    pub fn service(name: &str) -> Actor {
        Actor {
            sub: format!("service:{name}"),
            org: None,
            roles: Vec::new(),
        }
    }

    /// A contact acting through a link sent to them (no login).
    pub fn contact(contact_id: Uuid, org: Uuid) -> Actor {
        Actor {
            sub: format!("contact:{contact_id}"),
            org: Some(org),
            roles: vec!["contact".into()],
        }
    }
}

impl From<&Identity> for Actor {
    fn from(who: &Identity) -> Actor {
        Actor {
            sub: who.sub.clone(),
            org: who.org,
            roles: who.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        }
    }
}

impl From<&Actor> for Actor {
    fn from(actor: &Actor) -> Actor {
        actor.clone()
    }
}

/// What was done, to what, belonging to whom.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub action: String,
    pub object_type: String,
    pub object_id: String,
    pub organization_id: Option<Uuid>,
    pub detail: Option<serde_json::Value>,
}

impl Action {
    /// `action` (`<object type>.<past tense>`, e.g. `system.updated`) on the
    /// object `object_id`; its type is the action's first word.
    pub fn new(action: &str, object_id: impl ToString) -> Action {
        Action {
            action: action.to_owned(),
            object_type: action.split('.').next().unwrap_or(action).to_owned(),
            object_id: object_id.to_string(),
            organization_id: None,
            detail: None,
        }
    }

    /// The organisation the object belongs to: its entries are part of
    /// what that organisation reads.
    pub fn of(mut self, organization_id: impl Into<Option<Uuid>>) -> Action {
        self.organization_id = organization_id.into();
        self
    }

    /// A small JSON detail (what changed, the new state …).
    pub fn detail(mut self, detail: serde_json::Value) -> Action {
        self.detail = Some(detail);
        self
    }

    /// An object type other than the action's first word.
    pub fn object_type(mut self, object_type: &str) -> Action {
        self.object_type = object_type.to_owned();
        self
    }
}

/// Appends `action` by `actor` to the audit log in `conn`'s transaction.
/// Call it as the last write before the commit. In an event handler the
/// entry is appended when the consumer's batch commits (see
/// [`renkei_bus::consumer::defer`]): the head row is always locked last.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    actor: impl Into<Actor>,
    action: Action,
) -> Result<(), DbErr> {
    record_all(conn, actor, vec![action]).await
}

/// Appends several actions by one actor, in order, in one go.
pub async fn record_all<C: ConnectionTrait>(
    conn: &C,
    actor: impl Into<Actor>,
    actions: Vec<Action>,
) -> Result<(), DbErr> {
    let actor = actor.into();
    // A keyed request's write: its key is marked in the same transaction.
    if let Some(first) = actions.first() {
        renkei_web::idempotency::mark_committed(conn, &first.object_id).await?;
    }
    let entries = Deferred {
        actions: actions.into_iter().map(|a| (actor.clone(), a)).collect(),
        span: tracing::Span::current(),
    };
    match renkei_bus::consumer::defer(entries) {
        Ok(()) => Ok(()),
        Err(now) => now.write_to(conn).await,
    }
}

/// Entries an event handler recorded, appended when its batch commits,
/// with the trace of the event they were recorded for.
struct Deferred {
    actions: Vec<(Actor, Action)>,
    span: tracing::Span,
}

impl Deferred {
    async fn write_to<C: ConnectionTrait>(self, conn: &C) -> Result<(), DbErr> {
        use tracing::Instrument as _;
        store::append(conn, self.actions)
            .instrument(self.span)
            .await
            .map(drop)
    }
}

#[async_trait::async_trait]
impl renkei_bus::consumer::AtCommit for Deferred {
    async fn write(self: Box<Self>, txn: &sea_orm::DatabaseTransaction) -> Result<(), DbErr> {
        self.write_to(txn).await
    }
}

/// The installation's signing key: `audit.signing_key` (a hex seed), or
/// the one in `data_dir/audit-signing.key`, created (mode 0600) on first use.
pub fn signing_key(settings: &Settings) -> anyhow::Result<SigningKey> {
    use secrecy::ExposeSecret as _;
    let configured = settings.audit.signing_key.expose_secret();
    let seed = if configured.is_empty() {
        renkei_web::identity::key_file(&settings.data_dir, KEY_FILE)?
    } else {
        // Never echo the value (a decoding error would quote it).
        hex::decode(configured.trim()).map_err(|_| {
            anyhow::anyhow!("audit.signing_key: expected 64 hex digits (an Ed25519 seed)")
        })?
    };
    head::signing_key(&seed).map_err(|e| anyhow::anyhow!("audit.signing_key: {e}"))
}

/// The public key heads are checked with, when the installation has one:
/// from `audit.signing_key`, or the key file in `data_dir` (never created
/// here).
pub fn installed_public_key(settings: &Settings) -> anyhow::Result<Option<VerifyingKey>> {
    if no_key_yet(settings) {
        return Ok(None);
    }
    Ok(Some(signing_key(settings)?.verifying_key()))
}

/// Neither `audit.signing_key` nor a key file in the data dir: the first
/// use of [`signing_key`] creates one.
fn no_key_yet(settings: &Settings) -> bool {
    use secrecy::ExposeSecret as _;
    settings.audit.signing_key.expose_secret().is_empty()
        && !settings.data_dir.join(KEY_FILE).exists()
}

/// Starts what `service`'s audit record needs at run time: the responder
/// to `query.<service>.audit` and the signer of its heads (both stopped by
/// `cancel`). The service appends with [`record`] and serves the routes
/// with [`http::routes`] and the returned reader.
pub async fn start(
    settings: &Settings,
    service: &'static str,
    db: &Db,
    nats: &async_nats::Client,
    tasks: &mut JoinSet<()>,
    cancel: &CancellationToken,
) -> anyhow::Result<AuditReader> {
    let generated = no_key_yet(settings);
    let key = signing_key(settings).context("the audit signing key could not be loaded")?;
    if generated {
        let path = settings.data_dir.join(KEY_FILE);
        let advice = "every service and replica of an installation signs with one key: set audit.signing_key (RENKEI_AUDIT__SIGNING_KEY) to share it";
        if settings.profile == renkei_settings::Profile::Production {
            tracing::warn!(path = %path.display(), advice, "audit.signing_key is not set; a signing key was generated");
        } else {
            tracing::info!(path = %path.display(), "audit signing key generated");
        }
    }
    query::spawn_responder(tasks, nats.clone(), service, db.clone(), cancel.clone())?;
    let publisher = heads::HeadPublisher {
        service,
        db: db.clone(),
        js: async_nats::jetstream::new(nats.clone()),
        key,
        interval: Duration::from_secs(settings.audit.head_interval_secs),
    };
    tasks.spawn(publisher.run(cancel.clone()));
    Ok(AuditReader {
        nats: nats.clone(),
        timeout: Duration::from_millis(settings.nats.request_timeout_ms),
    })
}

/// One service's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub service: String,
    pub outcome: Outcome,
    /// Signed heads were given for this service.
    pub heads_given: bool,
}

impl Verdict {
    pub fn intact(&self) -> bool {
        self.outcome.intact()
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.outcome;
        write!(f, "{}: {} entries, ", self.service, o.entries)?;
        match &o.problem {
            Some(problem) => write!(f, "{problem}"),
            None => {
                write!(f, "chain intact")?;
                match (o.signed, self.heads_given) {
                    (Some(seq), _) => write!(f, ", head {seq} signed ✓"),
                    (None, true) => write!(f, ", no signed head reached yet"),
                    (None, false) => write!(f, ", no signed head given"),
                }
            }
        }
    }
}

/// Verifies the chain in the database `conn` is connected to (one
/// service's SQLite file, or its PostgreSQL schema), holding it to the
/// signed heads of `service` among `heads`, checked against the `trusted`
/// keys (without one, heads cannot be trusted and are an error when given).
pub async fn verify_database(
    conn: &sea_orm::DatabaseConnection,
    service: &str,
    heads: &[SignedHead],
    trusted: &[VerifyingKey],
) -> anyhow::Result<Verdict> {
    let own = heads.iter().filter(|h| h.service == service).count();
    let (signed, forged) = match (trusted, own) {
        (_, 0) => (Vec::new(), None),
        ([], _) => anyhow::bail!(
            "heads were given but no public key to check them with (--public-key, or the data dir's {KEY_FILE})"
        ),
        (keys, _) => match head::trusted_heads(service, heads, keys) {
            Ok(signed) => (signed, None),
            Err(problem) => (Vec::new(), Some(problem)),
        },
    };
    let mut outcome = store::walk(conn, signed)
        .await
        .with_context(|| format!("{service}: the audit log could not be read"))?;
    // A forged head is reported unless the chain itself is broken first.
    if outcome.problem.is_none() {
        outcome.problem = forged;
    }
    Ok(Verdict {
        service: service.to_owned(),
        outcome,
        heads_given: own > 0,
    })
}
