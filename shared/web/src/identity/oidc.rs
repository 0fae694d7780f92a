//! OpenID Connect access tokens: signed by the identity provider with RS256,
//! ES256 or EdDSA, checked against its JWKS, its issuer, this installation's
//! audience and the clock (with `leeway_secs` of skew). Which claims carry
//! the person, the organisation and the roles is configured, as dotted paths
//! into nested claims (`realm_access.roles` for Keycloak).

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use renkei_settings::OidcSettings;
use serde_json::Value;
use uuid::Uuid;

use super::jwks::{Jwks, JwksSource, Lookup};
use super::{Identity, Refusal, Role, Unverified};

/// Verifies the identity provider's tokens.
#[derive(Debug)]
pub struct OidcVerifier {
    issuer: String,
    audience: String,
    leeway_secs: u64,
    claims: ClaimMap,
    jwks: Jwks,
}

/// Where Renkei finds its claims in a provider's token.
#[derive(Debug, Clone)]
pub(crate) struct ClaimMap {
    pub subject: String,
    pub organization: String,
    pub roles: String,
    pub role_prefix: String,
}

impl OidcVerifier {
    /// The verifier of `settings`, with its keys loaded. A JWKS file that
    /// cannot be read stops the start (a configuration error); a JWKS URL
    /// that does not answer is only logged: its keys are fetched on the
    /// first request instead.
    pub async fn start(settings: &OidcSettings) -> anyhow::Result<OidcVerifier> {
        let verifier = OidcVerifier::new(
            settings,
            Duration::from_secs(settings.jwks_refresh_secs),
            Duration::from_secs(settings.jwks_min_refresh_secs),
        );
        match (verifier.jwks.load().await, verifier.jwks.source()) {
            (Ok(_), _) => {}
            (Err(e), JwksSource::File(_)) => {
                return Err(e.context("auth.oidc.jwks_file: no usable keys"));
            }
            (Err(e), JwksSource::Url(_)) => {
                tracing::warn!(
                    target: "renkei::auth",
                    error = %format!("{e:#}"),
                    "auth.oidc.jwks_url: identity provider keys could not be loaded at start; trying again on the first request"
                );
            }
        }
        Ok(verifier)
    }

    /// A verifier whose keys are not loaded yet, with refresh intervals
    /// finer than the settings' seconds (tests).
    pub fn new(settings: &OidcSettings, refresh: Duration, min_refresh: Duration) -> OidcVerifier {
        let source = if settings.jwks_url.is_empty() {
            JwksSource::File(settings.jwks_file.clone().into())
        } else {
            JwksSource::Url(settings.jwks_url.clone())
        };
        OidcVerifier {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway_secs: settings.leeway_secs,
            claims: ClaimMap {
                subject: settings.subject_claim.clone(),
                organization: settings.organization_claim.clone(),
                roles: settings.roles_claim.clone(),
                role_prefix: settings.role_prefix.clone(),
            },
            jwks: Jwks::new(source, refresh, min_refresh),
        }
    }

    /// The provider's keys.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    pub(crate) fn subject_claim(&self) -> &str {
        &self.claims.subject
    }

    /// Checks `token` (whose header says `alg`) and maps its claims.
    pub(crate) async fn verify(
        &self,
        token: &str,
        alg: Algorithm,
        seen: &Unverified,
    ) -> Result<Identity, Refusal> {
        let key = match self.jwks.find(seen.kid.as_deref(), alg).await {
            Lookup::Found(key) => key,
            Lookup::WrongAlgorithm(key_alg) => {
                return Err(seen.refuse(
                    format!("header alg {alg:?} differs from its key's {key_alg:?}"),
                    "the token's algorithm is not the one of its signing key",
                ));
            }
            Lookup::Unknown { refetched } => {
                return Err(seen.refuse(
                    if refetched {
                        "unknown kid, also after fetching the provider's keys again"
                    } else {
                        "unknown kid (keys fetched moments ago; not fetched again)"
                    },
                    "the token is signed with a key the identity provider does not publish",
                ));
            }
            Lookup::Ambiguous => {
                return Err(seen.refuse(
                    "no kid, and the provider publishes several keys",
                    "the token names no signing key (kid)",
                ));
            }
            Lookup::Unavailable => {
                return Err(seen
                    .refuse(
                        "the identity provider's keys could not be loaded",
                        "the identity provider's keys are not available; try again later",
                    )
                    .unavailable());
            }
        };
        let mut validation = Validation::new(key.alg);
        validation.leeway = self.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|e| seen.refuse(format!("{:?}", e.kind()), client_detail(e.kind())))?;
        // Defence in depth: one issuer, exactly ours.
        if data.claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(seen.refuse(
                "iss is not the configured issuer",
                "the token was issued by another identity provider",
            ));
        }
        self.claims
            .identity(&data.claims)
            .map_err(|(reason, detail)| seen.refuse(reason, detail))
    }
}

/// What a client is told about a refused signature or claim.
pub(crate) fn client_detail(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token was issued by another identity provider".into(),
        ErrorKind::InvalidAudience => "the token is meant for another audience".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => {
            "the token's algorithm is not the one of its signing key".into()
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("the token has no `{}` claim", claim.escape_default())
        }
        _ => "the token could not be read".into(),
    }
}

/// A claim by name, or by a dotted path into nested objects. A claim whose
/// name itself holds dots (`https://renkei.example/roles`) is found first.
pub(crate) fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    path.split('.')
        .try_fold(claims, |value, part| value.get(part))
}

impl ClaimMap {
    /// The identity a verified token's claims describe, or why not: (reason
    /// for the log, detail for the client).
    pub(crate) fn identity(&self, claims: &Value) -> Result<Identity, (String, String)> {
        let sub = claim(claims, &self.subject)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                let why = format!("the token has no subject (claim `{}`)", self.subject);
                (why.clone(), why)
            })?;
        let roles = self.roles(claims);
        if roles.is_empty() {
            let why = format!(
                "the token carries no Renkei role (claim `{}`{})",
                self.roles,
                if self.role_prefix.is_empty() {
                    String::new()
                } else {
                    format!(", prefix `{}`", self.role_prefix)
                }
            );
            return Err((why.clone(), why));
        }
        let org = match claim(claims, &self.organization) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Uuid::parse_str(s).map_err(|_| {
                let why = format!(
                    "claim `{}` is not an organisation id (a UUID)",
                    self.organization
                );
                (why.clone(), why)
            })?),
            Some(_) => {
                let why = format!(
                    "claim `{}` is not an organisation id (a UUID)",
                    self.organization
                );
                return Err((why.clone(), why));
            }
        };
        if org.is_none() && !roles.iter().any(|r| r.needs_no_organisation()) {
            let why = format!(
                "the token carries no organisation (claim `{}`); only an admin, the central body or an auditor may have none",
                self.organization
            );
            return Err((why.clone(), why));
        }
        Ok(Identity {
            sub: sub.to_owned(),
            org,
            roles,
        })
    }

    /// Renkei's roles among the claim's: an array of strings or one
    /// space-separated string; with a prefix configured, only the names that
    /// carry it (stripped); names Renkei does not know are ignored.
    fn roles(&self, claims: &Value) -> Vec<Role> {
        let names: Vec<&str> = match claim(claims, &self.roles) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => s.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let mut roles = Vec::new();
        for name in names {
            let name = if self.role_prefix.is_empty() {
                Some(name)
            } else {
                name.strip_prefix(self.role_prefix.as_str())
            };
            if let Some(role) = name.and_then(Role::parse)
                && !roles.contains(&role)
            {
                roles.push(role);
            }
        }
        roles
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(roles: &str, prefix: &str) -> ClaimMap {
        ClaimMap {
            subject: "sub".into(),
            organization: "org".into(),
            roles: roles.into(),
            role_prefix: prefix.into(),
        }
    }

    #[test]
    fn nested_claim_paths_reach_into_objects_and_dotted_names_are_found_whole() {
        let claims = json!({
            "realm_access": {"roles": ["manager", "offline_access"]},
            "https://renkei.example/org": "x",
        });
        assert_eq!(
            claim(&claims, "realm_access.roles"),
            Some(&json!(["manager", "offline_access"]))
        );
        assert_eq!(
            claim(&claims, "https://renkei.example/org"),
            Some(&json!("x"))
        );
        assert_eq!(claim(&claims, "realm_access.missing"), None);
        assert_eq!(claim(&claims, "realm_access.roles.deeper"), None);
    }

    #[test]
    fn roles_come_as_an_array_or_a_space_separated_string_and_unknown_names_are_ignored() {
        let m = map("roles", "");
        assert_eq!(
            m.roles(&json!({"roles": ["ciso", "uma_authorization", "csirt", "ciso", 7]})),
            vec![Role::Ciso, Role::Csirt]
        );
        assert_eq!(
            m.roles(&json!({"roles": "openid  operator profile"})),
            vec![Role::Operator]
        );
        assert!(m.roles(&json!({"roles": {"admin": true}})).is_empty());
    }

    #[test]
    fn with_a_role_prefix_only_prefixed_names_count() {
        let m = map("groups", "renkei:");
        assert_eq!(
            m.roles(&json!({"groups": ["admin", "renkei:auditor", "other:manager"]})),
            vec![Role::Auditor]
        );
    }

    #[test]
    fn an_organisation_must_be_a_uuid_and_may_be_absent_only_for_installation_wide_roles() {
        let m = map("roles", "");
        let org = Uuid::now_v7();
        let id = m
            .identity(&json!({"sub": "a", "org": org.to_string(), "roles": ["manager"]}))
            .expect("valid");
        assert_eq!(id.org, Some(org));
        let admin = m
            .identity(&json!({"sub": "root", "roles": ["admin"]}))
            .expect("an admin needs no organisation");
        assert_eq!(admin.org, None);
        let auditor = m
            .identity(&json!({"sub": "kansa", "roles": ["auditor"]}))
            .expect("an installation-wide auditor needs no organisation");
        assert_eq!(auditor.org, None);
        let (_, detail) = m
            .identity(&json!({"sub": "a", "roles": ["manager"]}))
            .expect_err("no organisation");
        assert!(detail.contains("`org`"), "{detail}");
        let (_, detail) = m
            .identity(&json!({"sub": "a", "org": "ministry", "roles": ["manager"]}))
            .expect_err("not a uuid");
        assert!(detail.contains("not an organisation id"), "{detail}");
        let (_, detail) = m
            .identity(&json!({"sub": "a", "org": org.to_string(), "roles": ["viewer"]}))
            .expect_err("no known role");
        assert!(detail.contains("no Renkei role"), "{detail}");
        let (_, detail) = m
            .identity(&json!({"org": org.to_string(), "roles": ["ciso"]}))
            .expect_err("no subject");
        assert!(detail.contains("no subject"), "{detail}");
    }
}
