//! The console: the web pages managers, operators and responders use, in
//! Japanese and English, served under `/console`.
//!
//! It is a client of the four services' public API like any other: every
//! page calls the API with the signed-in user's token, so it shows exactly
//! what that user may read. Pages are rendered on the server and work
//! without JavaScript; the incident page refreshes itself with a little.
//!
//! - [`sign_in`]: OpenID Connect (code flow with PKCE) or, in development,
//!   a page that picks organisation and role.
//! - [`session`]: the signed, encrypted session cookie and the form token
//!   every form carries.
//! - [`i18n`]: language (`Accept-Language` or the user's choice) and time
//!   zone; the texts are in `locales/`.
//! - [`pages`]: one module per page; templates in `templates/`.
//! - [`graph`]: where the link graph's systems are drawn.

rust_i18n::i18n!("locales", fallback = "en");

pub mod api;
pub mod graph;
pub mod i18n;
pub mod model;
pub mod pages;
pub mod session;
pub mod sign_in;
pub mod state;

use std::sync::Arc;

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite, time::Duration as CookieDuration};
use actix_web::web;
use anyhow::Context as _;
use renkei_settings::{Profile, Settings};
use renkei_web::{ServiceModule, TokenVerifier};
use secrecy::ExposeSecret as _;

use state::ConsoleState;

/// The console, as `renkei up` and its own binary run it.
pub struct Console {
    state: web::Data<ConsoleState>,
    key: Key,
    secure: bool,
}

impl Console {
    /// The console of `settings`: its API client, sign-in methods and
    /// session key.
    pub async fn new(settings: &Settings) -> anyhow::Result<Console> {
        let time_zone = i18n::time_zone(&settings.console.time_zone).with_context(|| {
            format!(
                "console.time_zone: `{}` is not an IANA time zone (such as Asia/Tokyo)",
                settings.console.time_zone
            )
        })?;
        let dev_issuer = match settings.profile {
            Profile::Development => Some(renkei_web::identity::dev_issuer(settings)?),
            Profile::Production => None,
        };
        let configured = settings.console.session_key.expose_secret();
        let key = if !configured.is_empty() {
            Key::derive_from(configured.as_bytes())
        } else if settings.profile == Profile::Production {
            anyhow::bail!(
                "console.session_key: the production profile needs a session key of at least 32 characters, the same on every console replica"
            );
        } else {
            Key::derive_from(&renkei_web::identity::key_file(
                &settings.data_dir,
                "console-session.key",
            )?)
        };
        let state = ConsoleState {
            api: api::Api::new(api::Routes::from_settings(&settings.console))?,
            dev_issuer,
            oidc: sign_in::oidc::Provider::from_settings(settings)?,
            verifier: Arc::new(TokenVerifier::from_settings(settings).await?),
            time_zone,
        };
        Ok(Console {
            state: web::Data::new(state),
            key,
            secure: settings.profile != Profile::Development,
        })
    }
}

#[async_trait::async_trait]
impl renkei_web::Service for Console {
    async fn start(
        settings: &Settings,
        _nats: async_nats::Client,
        _tasks: &mut tokio::task::JoinSet<()>,
        _cancel: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Console> {
        Console::new(settings).await
    }

    fn module(&self) -> Arc<dyn ServiceModule> {
        Arc::new(ConsoleModule {
            state: self.state.clone(),
            key: self.key.clone(),
            secure: self.secure,
        })
    }
}

struct ConsoleModule {
    state: web::Data<ConsoleState>,
    key: Key,
    secure: bool,
}

#[async_trait::async_trait]
impl ServiceModule for ConsoleModule {
    fn name(&self) -> &'static str {
        "console"
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        let sessions = SessionMiddleware::builder(CookieSessionStore::default(), self.key.clone())
            .cookie_name("renkei_console".into())
            .cookie_path("/console".into())
            .cookie_http_only(true)
            .cookie_secure(self.secure)
            .cookie_same_site(SameSite::Lax)
            .cookie_content_security(CookieContentSecurity::Private)
            .session_lifecycle(PersistentSession::default().session_ttl(CookieDuration::hours(8)))
            .build();
        cfg.service(
            web::scope("/console")
                .app_data(self.state.clone())
                .app_data(web::FormConfig::default().limit(64 * 1024))
                .wrap(sessions)
                .configure(pages::routes),
        );
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        // Pages, not API: nothing in `/openapi.json`.
        utoipa::openapi::OpenApiBuilder::new().build()
    }

    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The console served alone (its own binary, beside services that run
/// apart): no NATS, no database, only the services' API.
pub struct Alone {
    pub addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Alone {
    /// Starts the console on `http.listen`.
    pub async fn spawn(settings: &Settings) -> anyhow::Result<Alone> {
        use renkei_web::Service as _;
        let c = &settings.console;
        if c.api_url.is_empty()
            && [
                &c.registry_url,
                &c.demarcation_url,
                &c.contacts_url,
                &c.emergency_url,
            ]
            .iter()
            .any(|u| u.is_empty())
        {
            anyhow::bail!(
                "console.api_url: the console alone needs the services' address (console.api_url), or each service's (console.registry_url, console.demarcation_url, console.contacts_url, console.emergency_url)"
            );
        }
        let console = Console::new(settings).await?;
        let verifier = console.state.verifier.clone();
        let listener = std::net::TcpListener::bind(settings.listen_addr())
            .with_context(|| format!("http.listen: cannot bind {}", settings.http.listen))?;
        let addr = listener.local_addr()?;
        let server = renkei_web::serve(
            vec![console.module()],
            listener,
            &settings.http,
            &settings.rate_limit,
            verifier,
        )?;
        Ok(Alone {
            addr,
            handle: server.handle(),
            server: tokio::spawn(server),
        })
    }

    /// Stops accepting requests and lets those in flight finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        self.server.await??;
        Ok(())
    }
}
