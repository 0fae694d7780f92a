//! Who is calling: bearer tokens (JWT) naming a person, an organisation and
//! roles.
//!
//! Two kinds of tokens, by profile:
//! - development: HS256 tokens signed with a key generated into the data
//!   directory on first start (`renkei token` mints them);
//! - the identity provider's OIDC access tokens (RS256, ES256, EdDSA),
//!   checked against its JWKS ([`oidc`], [`jwks`]) — the only ones a
//!   production installation accepts. A development installation with
//!   `auth.oidc` configured accepts both.
//!
//! Every request must carry one; the extractor answers 401 before any
//! handler runs. The refusal is kept in the request's extensions, and the
//! server logs it once with the other refusals (target `renkei::access`):
//! the route, the reason and what the token claimed (sub, iss, kid) — never
//! the token.

mod jwks;
mod oidc;

use std::path::Path;
use std::sync::Arc;

use actix_web::{FromRequest, HttpMessage as _, HttpRequest, dev::Payload, web};
use anyhow::Context as _;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

pub use jwks::{Jwks, JwksSource};
pub use oidc::OidcVerifier;

/// What a person may do, within their organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Installation administrator: manages organisations.
    Admin,
    /// Platform operator staff.
    Operator,
    /// Linked-system manager.
    Manager,
    Csirt,
    Ciso,
    /// The central coordinating body: reads everything.
    Central,
    /// Reads everything, changes nothing.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Operator,
        Role::Manager,
        Role::Csirt,
        Role::Ciso,
        Role::Central,
        Role::Auditor,
    ];

    /// Installation-wide roles that read everything (admin, the central
    /// body, auditors) may act without an organisation; every other role
    /// acts for one.
    pub fn needs_no_organisation(self) -> bool {
        matches!(self, Role::Admin | Role::Central | Role::Auditor)
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Manager => "manager",
            Role::Csirt => "csirt",
            Role::Ciso => "ciso",
            Role::Central => "central",
            Role::Auditor => "auditor",
        }
    }
}

/// The claims Renkei reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Organisation id; absent for an installation admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Uuid>,
    pub roles: Vec<Role>,
    pub exp: u64,
    pub iat: u64,
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    pub org: Option<Uuid>,
    pub roles: Vec<Role>,
}

impl Identity {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// Admin, central body and auditors read every object.
    pub fn reads_everything(&self) -> bool {
        self.has(Role::Admin) || self.has(Role::Central) || self.has(Role::Auditor)
    }

    /// Whether the caller belongs to `org` (and holds `role`, when given).
    pub fn acts_for(&self, org: Uuid, role: Option<Role>) -> bool {
        self.org == Some(org) && role.is_none_or(|r| self.has(r))
    }
}

/// Checks bearer tokens: development tokens (HS256, the data directory's
/// key), the identity provider's (OIDC), or both.
pub struct TokenVerifier {
    dev: Option<DevVerifier>,
    oidc: Option<OidcVerifier>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("development_tokens", &self.dev.is_some())
            .field("oidc", &self.oidc)
            .finish()
    }
}

/// Development tokens, exactly as `renkei token` signs them.
struct DevVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    /// Development tokens only.
    pub fn hs256(secret: &[u8]) -> TokenVerifier {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenVerifier {
            dev: Some(DevVerifier {
                key: DecodingKey::from_secret(secret),
                validation,
            }),
            oidc: None,
        }
    }

    /// The identity provider's tokens only.
    pub fn oidc(verifier: OidcVerifier) -> TokenVerifier {
        TokenVerifier {
            dev: None,
            oidc: Some(verifier),
        }
    }

    /// Development tokens too (a development installation with OIDC).
    pub fn with_dev_key(self, secret: &[u8]) -> TokenVerifier {
        TokenVerifier {
            dev: TokenVerifier::hs256(secret).dev,
            oidc: self.oidc,
        }
    }

    /// What the settings ask for. The development profile reads (or creates)
    /// the development key and adds the identity provider when `auth.oidc`
    /// names one; the production profile takes the identity provider's
    /// tokens only and never touches a development key.
    pub async fn from_settings(
        settings: &renkei_settings::Settings,
    ) -> anyhow::Result<TokenVerifier> {
        use secrecy::ExposeSecret as _;
        let oidc = if settings.auth.oidc.issuer.is_empty() {
            None
        } else {
            Some(OidcVerifier::start(&settings.auth.oidc).await?)
        };
        let verifier = TokenVerifier { dev: None, oidc };
        match settings.profile {
            renkei_settings::Profile::Development => {
                let key = dev_key(settings.auth.dev_key.expose_secret(), &settings.data_dir)?;
                Ok(verifier.with_dev_key(&key))
            }
            renkei_settings::Profile::Production if verifier.oidc.is_some() => Ok(verifier),
            renkei_settings::Profile::Production => {
                anyhow::bail!("auth.oidc.issuer: the production profile needs an identity provider")
            }
        }
    }

    /// The identity provider's side, when configured.
    pub fn oidc_verifier(&self) -> Option<&OidcVerifier> {
        self.oidc.as_ref()
    }

    /// Whether development (HS256) tokens are accepted.
    pub fn accepts_development_tokens(&self) -> bool {
        self.dev.is_some()
    }

    /// The caller `token` names, or why it is refused.
    pub async fn verify(&self, token: &str) -> Result<Identity, Refusal> {
        let subject_claim = self.oidc.as_ref().map_or("sub", |o| o.subject_claim());
        let seen = Unverified::read(token, subject_claim)?;
        match (seen.alg.as_str(), &self.dev, &self.oidc) {
            ("HS256", Some(dev), _) => dev.verify(token, &seen),
            ("HS256" | "HS384" | "HS512", None, _) => Err(seen.refuse(
                "shared-key (HS*) token; only the identity provider's are accepted",
                "tokens signed with a shared key are not accepted here; use one from the identity provider",
            )),
            (alg @ ("RS256" | "ES256" | "EdDSA"), _, Some(oidc)) => {
                let alg = match alg {
                    "RS256" => Algorithm::RS256,
                    "ES256" => Algorithm::ES256,
                    _ => Algorithm::EdDSA,
                };
                oidc.verify(token, alg, &seen).await
            }
            ("RS256" | "ES256" | "EdDSA", _, None) => Err(seen.refuse(
                "identity provider token, but no identity provider is configured",
                "this installation accepts only development tokens (renkei token)",
            )),
            (alg, _, _) => Err(seen.refuse(
                format!("alg `{}` is not accepted", loggable(alg)),
                format!(
                    "the token's algorithm is not accepted (only {})",
                    match (&self.dev, &self.oidc) {
                        (Some(_), Some(_)) => "HS256 development tokens, RS256, ES256 or EdDSA",
                        (Some(_), None) => "HS256 development tokens",
                        _ => "RS256, ES256 or EdDSA",
                    }
                ),
            )),
        }
    }
}

impl DevVerifier {
    fn verify(&self, token: &str, seen: &Unverified) -> Result<Identity, Refusal> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
                seen.refuse(
                    format!("development token: {:?}", e.kind()),
                    oidc::client_detail(e.kind()),
                )
            })?;
        let claims = data.claims;
        if claims.roles.is_empty() {
            return Err(seen.refuse(
                "development token without a role",
                "the token carries no role",
            ));
        }
        Ok(Identity {
            sub: claims.sub,
            org: claims.org,
            roles: claims.roles,
        })
    }
}

/// Why a bearer token was refused: `reason` for the log, `detail` for the
/// caller (useful, but naming no key material or configuration), and what
/// the token claimed before it was verified.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: String,
    pub detail: String,
    /// The identity provider's keys could not be loaded: 503, not 401.
    pub unavailable: bool,
    /// What the token claimed, when its header could be read.
    pub claimed: Option<Box<Claimed>>,
}

/// What a refused token claimed about itself (unverified; for the log).
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    pub alg: String,
    pub kid: Option<String>,
    pub sub: Option<String>,
    pub iss: Option<String>,
}

impl Refusal {
    pub fn kid(&self) -> Option<&str> {
        self.claimed.as_ref().and_then(|c| c.kid.as_deref())
    }

    pub fn sub(&self) -> Option<&str> {
        self.claimed.as_ref().and_then(|c| c.sub.as_deref())
    }

    pub fn iss(&self) -> Option<&str> {
        self.claimed.as_ref().and_then(|c| c.iss.as_deref())
    }

    pub fn alg(&self) -> Option<&str> {
        self.claimed.as_ref().map(|c| c.alg.as_str())
    }

    /// A refusal before any token was read (no header, not a JWT).
    fn plain(reason: &str, detail: &str) -> Refusal {
        Refusal {
            reason: reason.to_owned(),
            detail: detail.to_owned(),
            unavailable: false,
            claimed: None,
        }
    }

    fn unavailable(mut self) -> Refusal {
        self.unavailable = true;
        self
    }

    fn malformed(reason: &str) -> Refusal {
        Refusal::plain(reason, "the bearer token is not a JWT")
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        if refusal.unavailable {
            ApiError::Unavailable(refusal.detail)
        } else if refusal.claimed.is_some() {
            // A token was read: say which part of it failed.
            ApiError::Unauthenticated(format!("bearer token rejected: {}", refusal.detail))
        } else {
            ApiError::Unauthenticated(refusal.detail)
        }
    }
}

/// What a token says about itself before anything is verified: for choosing
/// the verifier and for the refusal log, never for access.
pub(crate) struct Unverified {
    alg: String,
    kid: Option<String>,
    sub: Option<String>,
    iss: Option<String>,
}

impl Unverified {
    fn read(token: &str, subject_claim: &str) -> Result<Unverified, Refusal> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::malformed("not three dot-separated parts"));
        };
        let json = |part: &str| -> Option<serde_json::Value> {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()?;
            serde_json::from_slice(&bytes).ok()
        };
        let header =
            json(header).ok_or_else(|| Refusal::malformed("header is not base64url JSON"))?;
        let payload =
            json(payload).ok_or_else(|| Refusal::malformed("payload is not base64url JSON"))?;
        let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(loggable);
        let Some(alg) = header.get("alg").and_then(|v| v.as_str()) else {
            return Err(Refusal::malformed("header has no alg"));
        };
        Ok(Unverified {
            alg: alg.to_owned(),
            kid: text(header.get("kid")),
            sub: text(oidc::claim(&payload, subject_claim)),
            iss: text(payload.get("iss")),
        })
    }

    pub(crate) fn refuse(&self, reason: impl Into<String>, detail: impl Into<String>) -> Refusal {
        Refusal {
            reason: reason.into(),
            detail: detail.into(),
            unavailable: false,
            claimed: Some(Box::new(Claimed {
                alg: loggable(&self.alg),
                kid: self.kid.clone(),
                sub: self.sub.clone(),
                iss: self.iss.clone(),
            })),
        }
    }
}

/// A value from an unverified token, fit for a log line: at most 128
/// characters, no control characters.
fn loggable(value: &str) -> String {
    value
        .chars()
        .take(128)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Signs development tokens.
pub struct TokenIssuer {
    key: EncodingKey,
}

impl TokenIssuer {
    pub fn hs256(secret: &[u8]) -> TokenIssuer {
        TokenIssuer {
            key: EncodingKey::from_secret(secret),
        }
    }

    pub fn issue(
        &self,
        sub: &str,
        org: Option<Uuid>,
        roles: &[Role],
        ttl_secs: u64,
    ) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            org,
            roles: roles.to_vec(),
            iat: now,
            exp: now + ttl_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .context("token could not be signed")
    }
}

/// The signer of development tokens (`renkei token`). The production
/// profile refuses: its tokens come from the identity provider, and it never
/// creates a development key.
pub fn dev_issuer(settings: &renkei_settings::Settings) -> anyhow::Result<TokenIssuer> {
    use secrecy::ExposeSecret as _;
    if settings.profile == renkei_settings::Profile::Production {
        anyhow::bail!(
            "this installation runs the production profile: it accepts only tokens from its identity provider ({}), so there are no development tokens to mint; get a token from the identity provider instead",
            settings.auth.oidc.issuer
        );
    }
    let key = dev_key(settings.auth.dev_key.expose_secret(), &settings.data_dir)?;
    Ok(TokenIssuer::hs256(&key))
}

/// The development signing key: the configured one, or the one in
/// `data_dir/dev-signing.key`, created (mode 0600) on first use.
pub fn dev_key(configured: &str, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    key_file(data_dir, "dev-signing.key")
}

/// The 32-byte key kept in hex in `data_dir/name`, created (random, mode
/// 0600) on first use: the development token key, the audit signing key.
/// Processes starting together on one data dir (the four services of a
/// local deployment) all get the one key the first of them made.
pub fn key_file(data_dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            hex::decode(text.trim()).with_context(|| format!("{} is not a hex key", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
            let key: [u8; 32] = rand::random();
            if place_private(&path, &hex::encode(key))? {
                Ok(key.to_vec())
            } else {
                // Another process placed its key first: that one is the key.
                key_file(data_dir, name)
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `text` whole to a file of its own (mode 0600), then links it in
/// at `path` only if nothing is there yet: readers never see a half-written
/// key. `false` when another process got there first.
#[cfg(unix)]
fn place_private(path: &Path, text: &str) -> anyhow::Result<bool> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let draft = path.with_extension(format!("{}.new", uuid::Uuid::now_v7().simple()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&draft)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    })();
    let placed = written.and_then(|()| std::fs::hard_link(&draft, path));
    let _ = std::fs::remove_file(&draft);
    match placed {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(not(unix))]
fn place_private(path: &Path, text: &str) -> anyhow::Result<bool> {
    use std::io::Write as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

impl FromRequest for Identity {
    type Error = ApiError;
    type Future = futures::future::LocalBoxFuture<'static, Result<Identity, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

/// The verified caller of `req`, checked once per request: the first call
/// (a middleware's, say) verifies the bearer token and keeps the identity in
/// the request's extensions; later calls read it from there. A refusal is
/// kept too, so later calls answer the same, and the server's refusal log
/// finds what the token claimed.
pub async fn authenticate(req: &HttpRequest) -> Result<Identity, ApiError> {
    if let Some(identity) = req.extensions().get::<Identity>() {
        return Ok(identity.clone());
    }
    if let Some(Refused(refusal)) = req.extensions().get::<Refused>() {
        return Err(refusal.clone().into());
    }
    let verifier = req
        .app_data::<web::Data<Arc<TokenVerifier>>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no token verifier configured")))?;
    match identify(req, &verifier).await {
        Ok(identity) => {
            tracing::Span::current().record("identity.sub", identity.sub.as_str());
            req.extensions_mut().insert(identity.clone());
            Ok(identity)
        }
        Err(refusal) => {
            req.extensions_mut().insert(Refused(refusal.clone()));
            Err(refusal.into())
        }
    }
}

/// A request's refusal, kept in its extensions.
#[derive(Clone)]
pub(crate) struct Refused(pub(crate) Refusal);

async fn identify(req: &HttpRequest, verifier: &TokenVerifier) -> Result<Identity, Refusal> {
    let refuse = Refusal::plain;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            refuse(
                "no Authorization header",
                "an Authorization: Bearer token is required",
            )
        })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            refuse(
                "Authorization header is not `Bearer <token>`",
                "the Authorization header must be `Bearer <token>`",
            )
        })?;
    verifier.verify(token.trim()).await
}

#[cfg(test)]
mod tests;
