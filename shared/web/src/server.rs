//! The HTTP server: the same for one service's binary and for `renkei up`,
//! which mounts every service under one address.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage as _, HttpRequest, HttpResponse, HttpServer, web};
use renkei_settings::{HttpSettings, RateLimitSettings};
use tracing::Instrument as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::error::ApiError;
use crate::identity::{Identity, Refused, TokenVerifier};
use crate::json::BodyLimit;
use crate::limits::RateLimits;

/// What a service contributes to an HTTP server.
#[async_trait::async_trait]
pub trait ServiceModule: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Registers the service's routes (under `/v1`).
    fn configure(&self, cfg: &mut web::ServiceConfig);
    /// The service's part of the OpenAPI document.
    fn openapi(&self) -> utoipa::openapi::OpenApi;
    /// Ready to serve: its database and NATS answer.
    async fn ready(&self) -> Result<(), String>;
    /// Sets the gauges of its state (backlogs, open incidents…) just before
    /// `/metrics` is rendered.
    async fn observe(&self) {}
    /// Its database, where the `Idempotency-Key`s of its routes are kept.
    fn db(&self) -> Option<renkei_store::Db> {
        None
    }
}

pub(crate) struct Modules(pub(crate) Vec<Arc<dyn ServiceModule>>);

/// Starts serving `modules` on `listener`, with the body limit of `http`
/// and the per-organisation limits of `rate_limit` (one set of buckets for
/// the whole server). The server stops on SIGINT/SIGTERM or through its
/// handle.
pub fn serve(
    modules: Vec<Arc<dyn ServiceModule>>,
    listener: TcpListener,
    http: &HttpSettings,
    rate_limit: &RateLimitSettings,
    verifier: Arc<TokenVerifier>,
) -> anyhow::Result<Server> {
    // Each module's document is made once: for /openapi.json and for the
    // owner of each route.
    let documents: Vec<(&'static str, utoipa::openapi::OpenApi)> =
        modules.iter().map(|m| (m.name(), m.openapi())).collect();
    let openapi = web::Data::new(openapi_document(&documents));
    // `http.metrics`: the request histogram and `/metrics`, or neither.
    if http.metrics {
        renkei_telemetry::metrics::install();
    }
    let owners = web::Data::new(crate::metrics::RouteOwners::of(&documents, http.metrics));
    let stores = web::Data::new(crate::idempotency::Stores {
        by_service: modules
            .iter()
            .filter_map(|m| Some((m.name(), m.db()?)))
            .collect(),
    });
    let modules = web::Data::new(Modules(modules));
    let verifier = web::Data::new(verifier);
    let limits = web::Data::new(RateLimits::new(rate_limit));
    let limit = http.body_limit_bytes;
    let mut server = HttpServer::new(move || {
        let modules_for_routes = modules.clone();
        App::new()
            .app_data(modules.clone())
            .app_data(verifier.clone())
            .app_data(limits.clone())
            .app_data(openapi.clone())
            .app_data(owners.clone())
            .app_data(stores.clone())
            .app_data(web::PayloadConfig::new(limit))
            .app_data(BodyLimit(limit))
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::Malformed {
                    detail: format!("query string could not be read: {e}"),
                    field: None,
                }
                .into()
            }))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::Malformed {
                    detail: format!("path could not be read: {e}"),
                    field: None,
                }
                .into()
            }))
            .wrap(from_fn(crate::idempotency::idempotent))
            .wrap(from_fn(crate::limits::limit_requests))
            .wrap(from_fn(trace_request))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/openapi.json", web::get().to(openapi_json))
            .configure(|cfg| {
                if owners.measured {
                    cfg.route("/metrics", web::get().to(crate::metrics::serve_metrics));
                }
            })
            .configure(|cfg| {
                for module in &modules_for_routes.0 {
                    module.configure(cfg);
                }
            })
            .default_service(web::to(not_found))
    })
    .listen(listener)?;
    if http.workers > 0 {
        server = server.workers(http.workers);
    }
    Ok(server.disable_signals().shutdown_timeout(10).run())
}

fn openapi_document(
    documents: &[(&'static str, utoipa::openapi::OpenApi)],
) -> utoipa::openapi::OpenApi {
    let mut doc = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("Renkei API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Security coordination for a common platform system and its linked systems.",
                ))
                .build(),
        )
        .build();
    for (_, document) in documents {
        doc.merge(document.clone());
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    doc
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(modules: web::Data<Modules>) -> Result<HttpResponse, ApiError> {
    for module in &modules.0 {
        if let Err(why) = module.ready().await {
            return Err(ApiError::Unavailable(format!(
                "{} is not ready: {why}",
                module.name()
            )));
        }
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

async fn openapi_json(doc: web::Data<utoipa::openapi::OpenApi>) -> HttpResponse {
    HttpResponse::Ok().json(doc.get_ref())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    tracing::debug!(path = req.path(), "no route");
    Err(ApiError::NotFound("route"))
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One span per request, child of the caller's trace when it sent a
/// `traceparent`; a request id echoed back (or made up) on every response.
pub(crate) async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    // The route pattern, not the path: a path can carry a secret (the token
    // of an acknowledgement link, /ack/{token}), and spans reach logs and
    // traces.
    let route = req.match_pattern();
    let span = tracing::info_span!(
        "http.request",
        http.method = %req.method(),
        http.route = route.as_deref().unwrap_or("(no route)"),
        request_id = %request_id,
        identity.sub = tracing::field::Empty,
        http.status_code = tracing::field::Empty,
    );
    let mut carrier = renkei_telemetry::Carrier::new();
    for key in ["traceparent", "tracestate"] {
        if let Some(v) = req.headers().get(key).and_then(|v| v.to_str().ok()) {
            carrier.insert(key.to_owned(), v.to_owned());
        }
    }
    renkei_telemetry::adopt(&span, &carrier);
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let owners = req
        .app_data::<web::Data<crate::metrics::RouteOwners>>()
        .cloned();
    let mut response = next.call(req).instrument(span.clone()).await?;
    span.record("http.status_code", response.status().as_u16());
    if let Some(owners) = owners.filter(|o| o.measured) {
        owners.record(
            method.as_str(),
            route.as_deref(),
            response.status().as_u16(),
            started.elapsed(),
        );
    }
    span.in_scope(|| log_refusal(&response));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// Every refusal of a caller (401, 403, a 404 hiding an object) once, at
/// warn on target `renkei::access`: who (when the token was valid), the
/// method, the route pattern, the status and the reason; for a refused token
/// why, and what it claimed (alg, kid, sub, iss: unverified, so never as
/// `sub`). Never the token.
fn log_refusal<B>(response: &ServiceResponse<B>) {
    let Some(error) = response
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
        .filter(|e| e.is_refusal())
    else {
        return;
    };
    let req = response.request();
    let extensions = req.extensions();
    let who = extensions.get::<Identity>();
    let org = who.and_then(|i| i.org).map(|o| o.to_string());
    let roles = who.map(|i| {
        i.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    });
    let token = extensions.get::<Refused>().map(|Refused(refusal)| refusal);
    let route = req.match_pattern();
    tracing::warn!(
        target: "renkei::access",
        sub = who.map(|i| i.sub.as_str()),
        org = org.as_deref(),
        roles = roles.as_deref(),
        method = %req.method(),
        route = route.as_deref().unwrap_or("(no route)"),
        status = response.status().as_u16(),
        reason = %error.reason(),
        token_refused = token.map(|t| t.reason.as_str()),
        alg = token.and_then(|t| t.alg()),
        kid = token.and_then(|t| t.kid()),
        claimed_sub = token.and_then(|t| t.sub()),
        iss = token.and_then(|t| t.iss()),
        "request refused"
    );
}

/// What a process needs around its services: the NATS connection, the token
/// verifier, background tasks and the signal that stops them.
pub struct Runtime {
    pub nats: async_nats::Client,
    pub verifier: Arc<TokenVerifier>,
    pub tasks: tokio::task::JoinSet<()>,
    pub cancel: tokio_util::sync::CancellationToken,
}

/// A server started by [`Runtime::spawn`].
pub struct Running {
    /// The bound address (port 0 in settings picks a free one).
    pub addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    tasks: tokio::task::JoinSet<()>,
    cancel: tokio_util::sync::CancellationToken,
    nats: async_nats::Client,
}

impl Runtime {
    /// Connects to NATS (waiting for JetStream) and loads the signing key.
    pub async fn start(
        settings: &renkei_settings::Settings,
        name: &str,
    ) -> anyhow::Result<Runtime> {
        use anyhow::Context as _;
        // Before any service starts, so what they record from the first
        // moment (consumers binding, the relay's first publish) is kept.
        if settings.http.metrics {
            renkei_telemetry::metrics::install();
        }
        let nats = renkei_bus::nats::connect(&settings.nats, name).await?;
        renkei_bus::nats::wait_for_jetstream(&nats, std::time::Duration::from_secs(30))
            .await
            .with_context(|| format!("nats.url: no JetStream at {}", settings.nats.url))?;
        // Development key and/or identity provider, as the profile says.
        let verifier = TokenVerifier::from_settings(settings).await?;
        Ok(Runtime {
            nats,
            verifier: Arc::new(verifier),
            tasks: tokio::task::JoinSet::new(),
            cancel: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Binds `http.listen` and serves `modules` in the background.
    pub fn spawn(
        self,
        settings: &renkei_settings::Settings,
        modules: Vec<Arc<dyn ServiceModule>>,
    ) -> anyhow::Result<Running> {
        use anyhow::Context as _;
        let listener = TcpListener::bind(settings.listen_addr())
            .with_context(|| format!("http.listen: cannot bind {}", settings.http.listen))?;
        let addr = listener.local_addr()?;
        let server = serve(
            modules,
            listener,
            &settings.http,
            &settings.rate_limit,
            self.verifier.clone(),
        )?;
        let handle = server.handle();
        Ok(Running {
            addr,
            handle,
            server: tokio::spawn(server),
            tasks: self.tasks,
            cancel: self.cancel,
            nats: self.nats,
        })
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn serve(
        self,
        settings: &renkei_settings::Settings,
        modules: Vec<Arc<dyn ServiceModule>>,
    ) -> anyhow::Result<()> {
        let running = self.spawn(settings, modules)?;
        tracing::info!(addr = %running.addr, "listening");
        shutdown_signal().await;
        tracing::info!("shutting down");
        running.stop().await
    }
}

impl Running {
    /// Stops accepting requests, lets in-flight ones finish, stops the
    /// background tasks and flushes NATS.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        self.cancel.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(std::time::Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in 10 s; aborting them");
            self.tasks.abort_all();
        }
        let _ = self.nats.flush().await;
        self.server.await??;
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM (what `docker stop` and systemd send).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A service's shared state, as the readiness check sees it.
#[async_trait::async_trait]
pub trait Readiness: Send + Sync + 'static {
    /// Ready to serve: its database and NATS answer.
    async fn ready(&self) -> Result<(), String>;
    /// Sets the gauges of this state just before `/metrics` is rendered.
    async fn observe(&self) {}
    /// The service's database (for `Idempotency-Key`s).
    fn db(&self) -> Option<&renkei_store::Db> {
        None
    }
}

/// The usual [`ServiceModule`]: a name, the state every handler shares, the
/// routes and the OpenAPI document.
pub struct Module<S> {
    pub name: &'static str,
    pub state: web::Data<S>,
    pub routes: fn(&mut web::ServiceConfig),
    pub openapi: fn() -> utoipa::openapi::OpenApi,
}

#[async_trait::async_trait]
impl<S: Readiness> ServiceModule for Module<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.state.clone());
        (self.routes)(cfg);
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        (self.openapi)()
    }

    async fn ready(&self) -> Result<(), String> {
        self.state.ready().await
    }

    async fn observe(&self) {
        self.state.observe().await
    }

    fn db(&self) -> Option<renkei_store::Db> {
        self.state.db().cloned()
    }
}

/// Whether the NATS connection is up, for readiness checks.
pub fn nats_ready(client: &async_nats::Client) -> Result<(), String> {
    match client.connection_state() {
        async_nats::connection::State::Connected => Ok(()),
        other => Err(format!("NATS is {other:?}")),
    }
}

/// A service that starts inside a [`Runtime`]: alone in its own binary, or
/// beside the others in `renkei up`.
#[async_trait::async_trait]
pub trait Service: Sized + Send + 'static {
    /// Migrates, declares streams and starts the background tasks (relay,
    /// consumers, responders), all stopped by `cancel`.
    async fn start(
        settings: &renkei_settings::Settings,
        nats: async_nats::Client,
        tasks: &mut tokio::task::JoinSet<()>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self>;

    /// Its part of an HTTP server.
    fn module(&self) -> Arc<dyn ServiceModule>;
}

impl Runtime {
    /// Starts `S` on this runtime's connection, tasks and stop signal.
    pub async fn start_service<S: Service>(
        &mut self,
        settings: &renkei_settings::Settings,
    ) -> anyhow::Result<S> {
        S::start(
            settings,
            self.nats.clone(),
            &mut self.tasks,
            self.cancel.clone(),
        )
        .await
    }
}

/// `S` alone on `http.listen`, in the background (tests, tools).
pub async fn spawn_alone<S: Service>(
    settings: &renkei_settings::Settings,
    name: &str,
) -> anyhow::Result<Running> {
    let mut runtime = Runtime::start(settings, name).await?;
    let service = runtime.start_service::<S>(settings).await?;
    runtime.spawn(settings, vec![service.module()])
}

/// The `main` of a service's own binary: settings (defaults, then `config`,
/// then `RENKEI_*` variables), telemetry, then serve until a signal.
pub async fn run_alone<S: Service>(
    config: Option<&std::path::Path>,
    name: &'static str,
) -> anyhow::Result<()> {
    let settings = renkei_settings::Settings::load(&renkei_settings::Sources {
        file: config,
        environment: true,
        ..Default::default()
    })?;
    let _telemetry = renkei_telemetry::init(&settings.telemetry, name)?;
    renkei_bus::faults::from_env()?;
    let mut runtime = Runtime::start(&settings, name).await?;
    let service = runtime.start_service::<S>(&settings).await?;
    runtime.serve(&settings, vec![service.module()]).await
}
