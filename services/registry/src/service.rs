//! The registry as a running service: its state, background tasks (outbox
//! relay, consumer, query responder) and its part of an HTTP server.

use std::sync::Arc;

use actix_web::web;
use parking_lot::RwLock;
use renkei_bus::contracts::registry::{BlastRadiusQuery, PlatformSystemsQuery, SystemQuery};
use renkei_bus::query::spawn_responder;
use renkei_bus::subjects::{self, DEMARCATION_STREAM};
use renkei_bus::{ConsumerSpec, Outbox, consumer::Consumer};
use renkei_settings::Settings;
use renkei_store::Db;
use renkei_web::{Module, Readiness, Service, ServiceModule};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi as _;

use crate::domain::GraphIndex;
use crate::events::{self, RulesAcceptedHandler};
use crate::store::migrations::Migrator;

pub const SERVICE: &str = "registry";

/// What every request handler of the registry shares.
pub struct RegistryState {
    /// The outbox's and consumers' gauges, read at each scrape.
    pub gauges: renkei_bus::metrics::BusGauges,
    pub db: Db,
    pub outbox: Outbox,
    pub index: Arc<RwLock<GraphIndex>>,
    pub nats: async_nats::Client,
    pub audit: renkei_audit::AuditReader,
}

/// A started registry: state plus its background tasks.
pub struct Registry {
    pub state: web::Data<RegistryState>,
}

#[async_trait::async_trait]
impl Service for Registry {
    /// Migrates, declares streams, builds the index and starts the relay,
    /// the consumer and the query responder (stopped by `cancel`).
    async fn start(
        settings: &Settings,
        nats: async_nats::Client,
        tasks: &mut JoinSet<()>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Registry> {
        let renkei_bus::service::Opened { db, outbox, gauges } =
            renkei_bus::service::open::<Migrator>(settings, SERVICE, &nats, tasks, &cancel).await?;
        let audit = renkei_audit::start(settings, SERVICE, &db, &nats, tasks, &cancel).await?;
        // This replica's index, kept in step with every replica's changes.
        let (index, changes) = crate::replica::open(&db, &nats).await?;
        tasks.spawn(crate::replica::follow(
            db.clone(),
            nats.clone(),
            index.clone(),
            changes,
            cancel.clone(),
        ));

        let handler = Arc::new(RulesAcceptedHandler {
            db: db.clone(),
            outbox: outbox.clone(),
            index: index.clone(),
        });
        let spec = ConsumerSpec {
            stream: DEMARCATION_STREAM,
            durable: "registry-rules-accepted".into(),
            filter_subjects: vec![subjects::DEMARCATION_RULES_ACCEPTED.into()],
        };
        gauges.watch(&spec);
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

        let query_index = index.clone();
        spawn_responder::<BlastRadiusQuery, _, _>(
            tasks,
            nats.clone(),
            SERVICE,
            move |q| {
                let index = query_index.clone();
                async move { events::answer_blast_radius(&index, &q) }
            },
            cancel.clone(),
        );
        let platform_db = db.clone();
        spawn_responder::<PlatformSystemsQuery, _, _>(
            tasks,
            nats.clone(),
            SERVICE,
            move |q| {
                let db = platform_db.clone();
                async move { events::answer_platform_systems(&db, &q).await }
            },
            cancel.clone(),
        );
        let system_db = db.clone();
        spawn_responder::<SystemQuery, _, _>(
            tasks,
            nats.clone(),
            SERVICE,
            move |q| {
                let db = system_db.clone();
                async move { events::answer_system(&db, &q).await }
            },
            cancel.clone(),
        );

        Ok(Registry {
            state: web::Data::new(RegistryState {
                gauges,
                db,
                outbox,
                index,
                nats,
                audit,
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

impl Registry {
    /// The registry alone on `http.listen`, in the background (tests, tools).
    pub async fn spawn(settings: &Settings, name: &str) -> anyhow::Result<renkei_web::Running> {
        renkei_web::spawn_alone::<Registry>(settings, name).await
    }
}

impl renkei_audit::AuditState for RegistryState {
    fn audit(&self) -> &renkei_audit::AuditReader {
        &self.audit
    }
}

#[async_trait::async_trait]
impl Readiness for RegistryState {
    async fn ready(&self) -> Result<(), String> {
        self.db.ping().await.map_err(|e| format!("{e:#}"))?;
        renkei_web::nats_ready(&self.nats)
    }

    fn db(&self) -> Option<&Db> {
        Some(&self.db)
    }

    async fn observe(&self) {
        self.gauges.observe().await;
    }
}
