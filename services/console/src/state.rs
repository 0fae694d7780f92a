//! What every console handler shares.

use std::sync::Arc;

use renkei_web::{TokenIssuer, TokenVerifier};

use crate::api::Api;
use crate::sign_in::oidc::Provider;

pub struct ConsoleState {
    pub api: Api,
    /// Development sign-in (picks organisation and role), absent in the
    /// production profile.
    pub dev_issuer: Option<TokenIssuer>,
    /// Single sign-on through the identity provider, when configured.
    pub oidc: Option<Provider>,
    /// Reads who a token names, at sign-in.
    pub verifier: Arc<TokenVerifier>,
    pub time_zone: chrono_tz::Tz,
}

#[async_trait::async_trait]
impl renkei_web::Readiness for ConsoleState {
    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}
