//! The demarcation service as a running service: its state, background
//! tasks (outbox relay, registry consumer, reminder scheduler, query
//! responder) and its part of an HTTP server.

use std::sync::Arc;

use actix_web::web;
use renkei_bus::contracts::demarcation::ResponsibilityQuery;
use renkei_bus::query::spawn_responder;
use renkei_bus::subjects::REGISTRY_STREAM;
use renkei_bus::{ConsumerSpec, Outbox, consumer::Consumer};
use renkei_settings::Settings;
use renkei_store::Db;
use renkei_web::{Module, Readiness, Service, ServiceModule};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi as _;

use crate::events::{self, RegistryEventsHandler, reminders::Reminders};
use crate::store::{self, migrations::Migrator};

pub const SERVICE: &str = "demarcation";

/// What every request handler of the service shares.
pub struct DemarcationState {
    /// The outbox's and consumers' gauges, read at each scrape.
    pub gauges: renkei_bus::metrics::BusGauges,
    pub db: Db,
    pub outbox: Outbox,
    pub nats: async_nats::Client,
    pub audit: renkei_audit::AuditReader,
    /// Woken when a proposal schedules reminders.
    pub reminders: Reminders,
    /// How long a read-through query to the registry may take.
    pub query_timeout_ms: u64,
}

/// A started demarcation service: state plus its background tasks.
pub struct Demarcation {
    pub state: web::Data<DemarcationState>,
}

#[async_trait::async_trait]
impl Service for Demarcation {
    /// Migrates, loads the default catalogue, declares streams and starts
    /// the relay, the registry consumer, the reminders and the responder
    /// (stopped by `cancel`).
    async fn start(
        settings: &Settings,
        nats: async_nats::Client,
        tasks: &mut JoinSet<()>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Demarcation> {
        let renkei_bus::service::Opened { db, outbox, gauges } =
            renkei_bus::service::open::<Migrator>(settings, SERVICE, &nats, tasks, &cancel).await?;
        let audit = renkei_audit::start(settings, SERVICE, &db, &nats, tasks, &cancel).await?;
        store::seed_catalogue(&db).await?;
        // A last acceptance whose follow-up was cut short by a crash.
        let settled = crate::consensus::settle_all(&db, &outbox).await?;
        if settled > 0 {
            tracing::info!(settled, "rules versions came into force at start");
        }

        let spec = ConsumerSpec {
            stream: REGISTRY_STREAM,
            durable: "demarcation-registry".into(),
            // The whole registry stream: organisations and systems are
            // handled, links skipped (one filter works on every server).
            filter_subjects: vec![],
        };
        gauges.watch(&spec);
        let handler = Arc::new(RegistryEventsHandler {
            outbox: outbox.clone(),
        });
        tasks.spawn(
            Consumer::new(
                db.clone(),
                nats.clone(),
                spec,
                handler,
                Some(outbox.clone()),
            )
            .run(cancel.clone()),
        );

        let reminders = Reminders::new(db.clone(), outbox.clone());
        tasks.spawn(reminders.clone().run(cancel.clone()));

        let query_db = db.clone();
        spawn_responder::<ResponsibilityQuery, _, _>(
            tasks,
            nats.clone(),
            SERVICE,
            move |q| {
                let db = query_db.clone();
                async move { events::answer_responsibility(&db, &q).await }
            },
            cancel.clone(),
        );

        Ok(Demarcation {
            state: web::Data::new(DemarcationState {
                gauges,
                audit,
                db,
                outbox,
                nats,
                reminders,
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

impl Demarcation {
    /// The service alone on `http.listen`, in the background (tests, tools).
    pub async fn spawn(settings: &Settings, name: &str) -> anyhow::Result<renkei_web::Running> {
        renkei_web::spawn_alone::<Demarcation>(settings, name).await
    }
}

impl renkei_audit::AuditState for DemarcationState {
    fn audit(&self) -> &renkei_audit::AuditReader {
        &self.audit
    }
}

#[async_trait::async_trait]
impl Readiness for DemarcationState {
    async fn ready(&self) -> Result<(), String> {
        self.db.ping().await.map_err(|e| format!("{e:#}"))?;
        renkei_web::nats_ready(&self.nats)
    }

    fn db(&self) -> Option<&Db> {
        Some(&self.db)
    }

    async fn observe(&self) {
        self.gauges.observe().await;
        if let Err(error) = store::observe_consensus(&self.db.read).await {
            tracing::debug!(%error, "rules consensus not measured for /metrics");
        }
    }
}
