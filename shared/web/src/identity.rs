//! Who is calling: bearer tokens (JWT) with `sub`, `org` and `roles`.
//!
//! Development installations sign tokens with an HS256 key generated into the
//! data directory on first start (`renkei token` mints them). Every request
//! must carry one; the extractor answers 401 before any handler runs.

use std::path::Path;
use std::sync::Arc;

use actix_web::{FromRequest, HttpMessage as _, HttpRequest, dev::Payload, web};
use anyhow::Context as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

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

/// Checks token signatures.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn hs256(secret: &[u8]) -> TokenVerifier {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenVerifier {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| ApiError::Unauthenticated(format!("bearer token rejected: {e}")))?;
        let claims = data.claims;
        if claims.roles.is_empty() {
            return Err(ApiError::Unauthenticated(
                "bearer token carries no role".into(),
            ));
        }
        Ok(Identity {
            sub: claims.sub,
            org: claims.org,
            roles: claims.roles,
        })
    }
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

/// The development signing key: the configured one, or the one in
/// `data_dir/dev-signing.key`, created (mode 0600) on first use.
pub fn dev_key(configured: &str, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let path = data_dir.join("dev-signing.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            hex::decode(text.trim()).with_context(|| format!("{} is not a hex key", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
            let key: [u8; 32] = rand::random();
            write_private(&path, &hex::encode(key))?;
            Ok(key.to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot create {}", path.display()))
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
/// the request's extensions; later calls read it from there.
pub async fn authenticate(req: &HttpRequest) -> Result<Identity, ApiError> {
    if let Some(identity) = req.extensions().get::<Identity>() {
        return Ok(identity.clone());
    }
    let identity = identify(req)?;
    req.extensions_mut().insert(identity.clone());
    Ok(identity)
}

fn identify(req: &HttpRequest) -> Result<Identity, ApiError> {
    let verifier = req
        .app_data::<web::Data<Arc<TokenVerifier>>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no token verifier configured")))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated("an Authorization: Bearer token is required".into())
        })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            ApiError::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
        })?;
    let identity = verifier.verify(token.trim())?;
    tracing::Span::current().record("identity.sub", identity.sub.as_str());
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_foreign_key_is_refused() {
        let issuer = TokenIssuer::hs256(b"one key");
        let org = Uuid::now_v7();
        let token = issuer
            .issue("mgr-1", Some(org), &[Role::Manager], 60)
            .expect("token");
        let id = TokenVerifier::hs256(b"one key")
            .verify(&token)
            .expect("valid");
        assert_eq!(
            id,
            Identity {
                sub: "mgr-1".into(),
                org: Some(org),
                roles: vec![Role::Manager]
            }
        );
        assert!(matches!(
            TokenVerifier::hs256(b"other key").verify(&token),
            Err(ApiError::Unauthenticated(_))
        ));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let issuer = TokenIssuer::hs256(b"k");
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: "x".into(),
            org: None,
            roles: vec![Role::Admin],
            iat: now - 7200,
            exp: now - 3600,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &issuer.key)
            .expect("sign");
        assert!(TokenVerifier::hs256(b"k").verify(&token).is_err());
    }

    #[test]
    fn the_dev_key_is_created_once_and_then_reused() {
        let dir = std::env::temp_dir().join(format!("renkei-key-{}", Uuid::now_v7()));
        let first = dev_key("", &dir).expect("create");
        let second = dev_key("", &dir).expect("read");
        assert_eq!(first, second);
        assert_eq!(first.len(), 32);
        std::fs::remove_dir_all(dir).ok();
    }
}
