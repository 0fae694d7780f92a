//! What the console keeps for a browser, in its signed and encrypted
//! session cookie (`HttpOnly`, `SameSite=Lax`, `Secure` outside
//! development): who is signed in and with which token, the form token
//! against cross-site requests, the chosen language and time zone, and a
//! sign-in under way at the identity provider.

use actix_session::Session;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, dev::Payload};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::i18n::{Lang, format_time, time_zone};
use crate::pages::Failure;
use crate::state::ConsoleState;

/// The signed-in user: the token the console calls the API with, and what
/// the identity it carries says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedIn {
    pub token: String,
    pub sub: String,
    pub org: Option<Uuid>,
    pub org_name: Option<String>,
    pub roles: Vec<String>,
    /// Seconds since the epoch when the token stops being accepted.
    pub expires_at: u64,
}

impl SignedIn {
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn has_org(&self) -> bool {
        self.org.is_some()
    }
}

/// A sign-in under way at the identity provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next: String,
}

const USER: &str = "user";
const CSRF: &str = "csrf";
const LANG: &str = "lang";
const TIME_ZONE: &str = "tz";
pub const PENDING: &str = "oidc";

/// What every page needs: the viewer, their language and time zone, and
/// the form token of their session.
pub struct Ctx {
    pub lang: Lang,
    pub tz: chrono_tz::Tz,
    pub csrf: String,
    pub user: Option<SignedIn>,
    /// The path and query of this page, for "come back here" links.
    pub here: String,
    pub session: Session,
    /// This server's own address: the API when the console is mounted
    /// beside the services (see [`crate::api::Routes`]).
    pub api_base: String,
    pub dev_sign_in: bool,
    pub oidc_sign_in: bool,
    /// Calling as someone else ([`Ctx::as_user`]): a refusal of that token
    /// never signs the visitor out.
    pub borrowed: bool,
    /// The page a refused form goes back to (the form's own page, from the
    /// same-origin `Referer`), for signing in again.
    pub back: String,
}

impl Ctx {
    pub fn t(&self, key: &str) -> std::borrow::Cow<'static, str> {
        self.lang.t(key)
    }

    /// The text of `prefix.value` (`status.declared`, `tlp.amber_strict`):
    /// the words for a value the API sends as a code.
    pub fn tk(
        &self,
        prefix: &str,
        value: impl std::fmt::Display,
    ) -> std::borrow::Cow<'static, str> {
        self.lang.t(&format!("{prefix}.{value}").replace('+', "_"))
    }

    pub fn when(&self, at: &chrono::DateTime<chrono::Utc>) -> String {
        format_time(at, self.tz)
    }

    pub fn when_opt(&self, at: &Option<chrono::DateTime<chrono::Utc>>) -> String {
        at.as_ref()
            .map(|a| self.when(a))
            .unwrap_or_else(|| "—".into())
    }

    pub fn tz_name(&self) -> &'static str {
        self.tz.name()
    }

    /// This viewer calling the API as `user` instead (sign-in's own reads).
    pub fn as_user(&self, user: SignedIn) -> Ctx {
        Ctx {
            lang: self.lang,
            tz: self.tz,
            csrf: self.csrf.clone(),
            user: Some(user),
            here: self.here.clone(),
            session: self.session.clone(),
            api_base: self.api_base.clone(),
            dev_sign_in: self.dev_sign_in,
            oidc_sign_in: self.oidc_sign_in,
            borrowed: true,
            back: self.back.clone(),
        }
    }

    /// The signed-in user, or a redirect to the sign-in page (and back to
    /// this page, or for a form to the page it was on).
    pub fn user(&self) -> Result<&SignedIn, Failure> {
        self.user.as_ref().ok_or(Failure::SignedOut {
            next: self.back.clone(),
        })
    }

    /// A signed-in user's form: signed in first (an expired session goes
    /// to sign in again, not to a refusal), then the form's token.
    pub fn check_form(&self, sent: &str) -> Result<&SignedIn, Failure> {
        let user = self.user()?;
        self.check_csrf(sent)?;
        Ok(user)
    }

    pub fn has(&self, role: &str) -> bool {
        self.user.as_ref().is_some_and(|u| u.has(role))
    }

    /// Whether `org` is the viewer's organisation.
    pub fn is_own_org(&self, org: &Uuid) -> bool {
        self.user.as_ref().and_then(|u| u.org).as_ref() == Some(org)
    }

    /// Admin or operator: the platform's keepers.
    pub fn operates(&self) -> bool {
        self.has("admin") || self.has("operator")
    }

    /// The form's token must be this session's: a form posted from another
    /// site (or replayed without it) changes nothing.
    pub fn check_csrf(&self, sent: &str) -> Result<(), Failure> {
        use subtle::ConstantTimeEq as _;
        if !sent.is_empty() && bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(Failure::Csrf)
        }
    }

    pub fn sign_in(&self, user: SignedIn) -> Result<(), Failure> {
        // A new session id on sign-in: a cookie planted before it is useless.
        self.session.renew();
        self.session.insert(USER, user).map_err(Failure::session)?;
        // And a new form token with it.
        self.session
            .insert(CSRF, new_token())
            .map_err(Failure::session)
    }

    /// Forgets who is signed in (and the form token with them), keeps
    /// the language and time zone, under a new session id.
    pub fn sign_out(&self) {
        if self.borrowed {
            return;
        }
        let _ = self.session.remove(USER);
        let _ = self.session.remove(PENDING);
        let _ = self.session.insert(CSRF, new_token());
        self.session.renew();
    }

    pub fn choose_language(&self, lang: Lang) -> Result<(), Failure> {
        self.session
            .insert(LANG, lang.code())
            .map_err(Failure::session)
    }

    pub fn choose_time_zone(&self, tz: chrono_tz::Tz) -> Result<(), Failure> {
        self.session
            .insert(TIME_ZONE, tz.name())
            .map_err(Failure::session)
    }
}

/// 32 random bytes in hex: form tokens, sign-in state and nonce.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl FromRequest for Ctx {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Ctx, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        std::future::ready(ctx(req, payload))
    }
}

fn ctx(req: &HttpRequest, payload: &mut Payload) -> Result<Ctx, actix_web::Error> {
    let session = Session::from_request(req, payload).into_inner()?;
    let state = req
        .app_data::<actix_web::web::Data<ConsoleState>>()
        .ok_or_else(|| actix_web::error::ErrorInternalServerError("console state missing"))?;
    let chosen = session
        .get::<String>(LANG)
        .ok()
        .flatten()
        .and_then(|l| Lang::parse(&l));
    let lang = chosen.unwrap_or_else(|| {
        Lang::negotiate(
            req.headers()
                .get(actix_web::http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        )
    });
    let tz = session
        .get::<String>(TIME_ZONE)
        .ok()
        .flatten()
        .and_then(|z| time_zone(&z))
        .unwrap_or(state.time_zone);
    let csrf = match session.get::<String>(CSRF).ok().flatten() {
        Some(token) => token,
        None => {
            let token = new_token();
            session.insert(CSRF, &token)?;
            token
        }
    };
    let now = now_secs();
    let user = session
        .get::<SignedIn>(USER)
        .ok()
        .flatten()
        .filter(|u| u.expires_at > now);
    let here = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/console".to_owned(), |p| p.as_str().to_owned());
    let back = if req.method() == actix_web::http::Method::GET {
        here.clone()
    } else {
        // A form's page: the same-origin Referer's path, else the start.
        let referer = req
            .headers()
            .get(actix_web::http::header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.parse::<actix_web::http::Uri>().ok())
            .filter(|u| u.authority().map(|a| a.as_str()) == Some(req.connection_info().host()))
            .and_then(|u| u.path_and_query().map(|p| p.as_str().to_owned()));
        crate::pages::safe_next(referer.as_deref())
    };
    // Extensions are how the error page learns the viewer's language.
    req.extensions_mut().insert(lang);
    Ok(Ctx {
        lang,
        tz,
        csrf,
        user,
        here,
        session,
        api_base: crate::api::Api::local(req.app_config().local_addr()),
        dev_sign_in: state.dev_issuer.is_some(),
        oidc_sign_in: state.oidc.is_some(),
        borrowed: false,
        back,
    })
}

/// Seconds since the epoch, as session lifetimes are kept.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
