//! The emergency service as a running service: its state, background tasks
//! (outbox relay, consumers, the deadline worker) and its part of an HTTP
//! server.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use renkei_bus::Outbox;
use renkei_bus::consumer::Consumer;
use renkei_settings::{EmergencySettings, Settings};
use renkei_store::Db;
use renkei_web::{Module, Readiness, Service, ServiceModule};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi as _;

use crate::assessment::Assessor;
use crate::deadlines::Worker;
use crate::events::{self, EmergencyEventsHandler};
use crate::store::migrations::Migrator;

pub const SERVICE: &str = "emergency";

/// What every request handler of the service shares.
pub struct EmergencyState {
    /// The outbox's and consumers' gauges, read at each scrape.
    pub gauges: renkei_bus::metrics::BusGauges,
    pub db: Db,
    pub outbox: Outbox,
    pub nats: async_nats::Client,
    pub audit: renkei_audit::AuditReader,
    pub assessor: Assessor,
    /// Wakes the deadline worker (something became owed or due).
    pub worker: Arc<Notify>,
    pub settings: EmergencySettings,
    /// How long a read-through query to another service may take.
    pub query_timeout: Duration,
}

/// A started emergency service.
pub struct Emergency {
    pub state: web::Data<EmergencyState>,
}

#[async_trait::async_trait]
impl Service for Emergency {
    async fn start(
        settings: &Settings,
        nats: async_nats::Client,
        tasks: &mut JoinSet<()>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Emergency> {
        let renkei_bus::service::Opened { db, outbox, gauges } =
            renkei_bus::service::open::<Migrator>(settings, SERVICE, &nats, tasks, &cancel).await?;
        let audit = renkei_audit::start(settings, SERVICE, &db, &nats, tasks, &cancel).await?;
        let query_timeout = Duration::from_millis(settings.nats.request_timeout_ms);
        let assessor = Assessor {
            db: db.clone(),
            nats: nats.clone(),
            outbox: outbox.clone(),
            timeout: query_timeout,
        };
        let worker = Arc::new(Notify::new());
        for spec in events::consumers() {
            gauges.watch(&spec);
            tasks.spawn(
                Consumer::new(
                    db.clone(),
                    nats.clone(),
                    spec,
                    Arc::new(EmergencyEventsHandler),
                    Some(outbox.clone()),
                )
                .waking(worker.clone())
                .run(cancel.clone()),
            );
        }
        tasks.spawn(
            Worker {
                assessor: assessor.clone(),
                wake: worker.clone(),
            }
            .run(cancel.clone()),
        );
        Ok(Emergency {
            state: web::Data::new(EmergencyState {
                gauges,
                audit,
                db,
                outbox,
                nats,
                assessor,
                worker,
                settings: settings.emergency.clone(),
                query_timeout,
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

impl Emergency {
    /// The service alone on `http.listen`, in the background (tests, tools).
    pub async fn spawn(settings: &Settings, name: &str) -> anyhow::Result<renkei_web::Running> {
        renkei_web::spawn_alone::<Emergency>(settings, name).await
    }
}

impl renkei_audit::AuditState for EmergencyState {
    fn audit(&self) -> &renkei_audit::AuditReader {
        &self.audit
    }
}

#[async_trait::async_trait]
impl Readiness for EmergencyState {
    async fn ready(&self) -> Result<(), String> {
        self.db.ping().await.map_err(|e| format!("{e:#}"))?;
        renkei_web::nats_ready(&self.nats)
    }

    fn db(&self) -> Option<&Db> {
        Some(&self.db)
    }

    async fn observe(&self) {
        self.gauges.observe().await;
        if let Err(error) = crate::store::observe(&self.db.read).await {
            tracing::debug!(%error, "incidents not counted for /metrics");
        }
    }
}
