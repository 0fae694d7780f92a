//! The contacts service as a running service: its state, background tasks
//! (outbox relay, consumers, dispatcher, escalation timer) and its part of
//! an HTTP server.

use std::sync::Arc;

use actix_web::web;
use renkei_bus::Outbox;
use renkei_bus::consumer::Consumer;
use renkei_settings::Settings;
use renkei_store::Db;
use renkei_web::{Module, Readiness, Service, ServiceModule};
use secrecy::ExposeSecret as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi as _;

use crate::channels::Channels;
use crate::delivery::{Dispatcher, Timer};
use crate::events::{self, ContactsEventsHandler};
use crate::links::AckLinks;
use crate::store::migrations::Migrator;

pub const SERVICE: &str = "contacts";

/// What every request handler of the service shares.
pub struct ContactsState {
    /// The outbox's and consumers' gauges, read at each scrape.
    pub gauges: renkei_bus::metrics::BusGauges,
    pub db: Db,
    pub outbox: Outbox,
    pub nats: async_nats::Client,
    pub audit: renkei_audit::AuditReader,
    pub links: AckLinks,
    /// Woken when deliveries are created (drills started here).
    pub dispatch: Arc<Notify>,
    /// Woken when escalation timers change.
    pub timer: Arc<Notify>,
    /// How long a read-through query to the registry may take.
    pub query_timeout_ms: u64,
}

/// A started contacts service.
pub struct Contacts {
    pub state: web::Data<ContactsState>,
}

#[async_trait::async_trait]
impl Service for Contacts {
    async fn start(
        settings: &Settings,
        nats: async_nats::Client,
        tasks: &mut JoinSet<()>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Contacts> {
        let renkei_bus::service::Opened { db, outbox, gauges } =
            renkei_bus::service::open::<Migrator>(settings, SERVICE, &nats, tasks, &cancel).await?;
        let audit = renkei_audit::start(settings, SERVICE, &db, &nats, tasks, &cancel).await?;
        let key = link_key(settings)?;
        let links = AckLinks::new(&key, &settings.public_url());
        let dispatch = Arc::new(Notify::new());
        let timer = Arc::new(Notify::new());

        let handler = Arc::new(ContactsEventsHandler {
            outbox: outbox.clone(),
        });
        for spec in events::consumers() {
            gauges.watch(&spec);
            tasks.spawn(
                Consumer::new(
                    db.clone(),
                    nats.clone(),
                    spec,
                    handler.clone(),
                    Some(outbox.clone()),
                )
                .waking(dispatch.clone())
                .waking(timer.clone())
                .run(cancel.clone()),
            );
        }
        tasks.spawn(
            Dispatcher {
                db: db.clone(),
                outbox: outbox.clone(),
                channels: Channels::new(&settings.contacts)?,
                links: links.clone(),
                settings: settings.contacts.delivery.clone(),
                wake: dispatch.clone(),
                timer: timer.clone(),
            }
            .run(cancel.clone()),
        );
        tasks.spawn(
            Timer {
                db: db.clone(),
                outbox: outbox.clone(),
                wake: timer.clone(),
                dispatch: dispatch.clone(),
            }
            .run(cancel.clone()),
        );

        Ok(Contacts {
            state: web::Data::new(ContactsState {
                gauges,
                audit,
                db,
                outbox,
                nats,
                links,
                dispatch,
                timer,
                query_timeout_ms: settings.nats.request_timeout_ms,
            }),
        })
    }

    fn module(&self) -> Arc<dyn ServiceModule> {
        Arc::new(Module {
            name: SERVICE,
            state: self.state.clone(),
            routes: crate::http::routes,
            openapi: || renkei_audit::http::with_audit(crate::http::ApiDoc::openapi()),
        })
    }
}

impl Contacts {
    /// The service alone on `http.listen`, in the background (tests, tools).
    pub async fn spawn(settings: &Settings, name: &str) -> anyhow::Result<renkei_web::Running> {
        renkei_web::spawn_alone::<Contacts>(settings, name).await
    }
}

impl renkei_audit::AuditState for ContactsState {
    fn audit(&self) -> &renkei_audit::AuditReader {
        &self.audit
    }
}

#[async_trait::async_trait]
impl Readiness for ContactsState {
    async fn ready(&self) -> Result<(), String> {
        self.db.ping().await.map_err(|e| format!("{e:#}"))?;
        renkei_web::nats_ready(&self.nats)
    }

    fn db(&self) -> Option<&Db> {
        Some(&self.db)
    }

    async fn observe(&self) {
        self.gauges.observe().await;
        match crate::store::notifications_by_state(&self.db.read).await {
            Ok(counts) => {
                for state in crate::domain::NotificationState::ALL {
                    let n = counts.get(state.as_str()).copied().unwrap_or(0);
                    renkei_telemetry::metrics::gauge!(
                        renkei_telemetry::metrics::NOTIFICATIONS,
                        "state" => state.as_str(),
                    )
                    .set(n as f64);
                }
            }
            Err(error) => tracing::debug!(%error, "notifications not counted for /metrics"),
        }
    }
}

/// The key that signs acknowledgement links: `contacts.link_key`, or in
/// development the development key. A production installation never
/// creates a development key, so it must be given one.
fn link_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    let configured = settings.contacts.link_key.expose_secret();
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    if settings.profile == renkei_settings::Profile::Production {
        anyhow::bail!(
            "contacts.link_key: the production profile needs a key for acknowledgement links, the same for every contacts replica (RENKEI_CONTACTS__LINK_KEY)"
        );
    }
    renkei_web::identity::dev_key(settings.auth.dev_key.expose_secret(), &settings.data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_needs_its_own_link_key_and_never_creates_a_development_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings {
            data_dir: dir.path().to_path_buf(),
            profile: renkei_settings::Profile::Production,
            ..Settings::default()
        };
        let err = link_key(&settings).expect_err("no key in production");
        assert!(err.to_string().contains("contacts.link_key"), "{err}");
        assert!(!dir.path().join("dev-signing.key").exists());
        settings.contacts.link_key = "shared by every replica".to_owned().into();
        assert_eq!(
            link_key(&settings).expect("configured key"),
            b"shared by every replica".to_vec()
        );
        settings.profile = renkei_settings::Profile::Development;
        settings.contacts.link_key = String::new().into();
        assert_eq!(link_key(&settings).expect("development key").len(), 32);
    }
}
