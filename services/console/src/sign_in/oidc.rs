//! Single sign-on: the OpenID Connect authorization-code flow with PKCE
//! against `auth.oidc.issuer`. The provider's metadata is discovered on
//! the first sign-in (and again after a failure), the ID token is checked
//! (signature, issuer, audience, nonce), and the access token, which the
//! services verify themselves, is what the console calls the API with.

use actix_web::{HttpResponse, web};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse as _,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::pages::{Failure, respond, safe_next, see_other};
use crate::session::{Ctx, PENDING, PendingSignIn};
use crate::state::ConsoleState;

/// The identity provider this console signs people in through.
pub struct Provider {
    issuer: String,
    client_id: String,
    client_secret: SecretString,
    redirect_url: String,
    scopes: Vec<String>,
    http: openidconnect::reqwest::Client,
    metadata: tokio::sync::RwLock<Option<CoreProviderMetadata>>,
}

impl Provider {
    /// The provider of `settings`, or `None` when single sign-on is not
    /// configured (`console.oidc_client_id` or `auth.oidc.issuer` empty).
    pub fn from_settings(settings: &renkei_settings::Settings) -> anyhow::Result<Option<Provider>> {
        let console = &settings.console;
        if console.oidc_client_id.is_empty() || settings.auth.oidc.issuer.is_empty() {
            return Ok(None);
        }
        let public = if console.public_url.is_empty() {
            settings.public_url()
        } else {
            console.public_url.trim_end_matches('/').to_owned()
        };
        let http = openidconnect::reqwest::ClientBuilder::new()
            // The provider's answers are read, never followed (SSRF).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Some(Provider {
            issuer: settings.auth.oidc.issuer.clone(),
            client_id: console.oidc_client_id.clone(),
            client_secret: console.oidc_client_secret.clone(),
            redirect_url: format!("{public}/console/sign-in/callback"),
            scopes: console.oidc_scopes.clone(),
            http,
            metadata: tokio::sync::RwLock::new(None),
        }))
    }

    async fn metadata(&self) -> anyhow::Result<CoreProviderMetadata> {
        if let Some(known) = self.metadata.read().await.as_ref() {
            return Ok(known.clone());
        }
        let discovered =
            CoreProviderMetadata::discover_async(IssuerUrl::new(self.issuer.clone())?, &self.http)
                .await
                .map_err(|e| anyhow::anyhow!("discovery at {} failed: {e}", self.issuer))?;
        *self.metadata.write().await = Some(discovered.clone());
        Ok(discovered)
    }

    /// This console as the provider's client, its endpoints discovered.
    async fn client(
        &self,
    ) -> Result<
        CoreClient<
            EndpointSet,
            EndpointNotSet,
            EndpointNotSet,
            EndpointNotSet,
            EndpointMaybeSet,
            EndpointMaybeSet,
        >,
        Failure,
    > {
        let metadata = self.metadata().await.map_err(unavailable)?;
        let secret = self.client_secret.expose_secret();
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.clone()),
            (!secret.is_empty()).then(|| ClientSecret::new(secret.to_owned())),
        )
        .set_redirect_uri(RedirectUrl::new(self.redirect_url.clone()).map_err(unavailable)?))
    }

    async fn forget_metadata(&self) {
        *self.metadata.write().await = None;
    }
}

fn unavailable(e: impl std::fmt::Display) -> Failure {
    tracing::warn!(target: "renkei::console", error = %e, "identity provider sign-in failed");
    Failure::Unavailable
}

#[derive(Deserialize)]
pub struct Begin {
    next: Option<String>,
}

/// To the identity provider, with a fresh state, nonce and PKCE challenge
/// kept in the session.
pub async fn begin(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    query: web::Query<Begin>,
) -> HttpResponse {
    let result = async {
        let provider = state.oidc.as_ref().ok_or_else(|| {
            Failure::invalid("sign_in", ctx.t("sign_in.sso_disabled").into_owned())
        })?;
        let client = provider.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &provider.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state_token, nonce) = request.set_pkce_challenge(challenge).url();
        ctx.session
            .insert(
                PENDING,
                PendingSignIn {
                    state: state_token.secret().clone(),
                    nonce: nonce.secret().clone(),
                    pkce_verifier: verifier.secret().clone(),
                    next: safe_next(query.next.as_deref()),
                },
            )
            .map_err(Failure::session)?;
        Ok(see_other(url.as_str()))
    }
    .await;
    respond(&ctx, result)
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Back from the identity provider: the state must be the one this
/// session sent, the code is exchanged with the PKCE verifier, the ID
/// token's nonce must match, and the access token must be one the services
/// accept.
pub async fn finish(
    ctx: Ctx,
    state: web::Data<ConsoleState>,
    query: web::Query<Callback>,
) -> HttpResponse {
    let result = async {
        let provider = state.oidc.as_ref().ok_or_else(|| {
            Failure::invalid("sign_in", ctx.t("sign_in.sso_disabled").into_owned())
        })?;
        let pending: PendingSignIn = ctx
            .session
            .remove_as(PENDING)
            .and_then(Result::ok)
            .ok_or_else(|| Failure::invalid("state", ctx.t("sign_in.no_pending").into_owned()))?;
        if let Some(error) = &query.error {
            let detail = query.error_description.clone().unwrap_or_default();
            return Err(Failure::invalid("error", format!("{error}: {detail}")));
        }
        let sent_state = query.state.as_deref().unwrap_or_default();
        {
            use subtle::ConstantTimeEq as _;
            if !bool::from(sent_state.as_bytes().ct_eq(pending.state.as_bytes())) {
                return Err(Failure::invalid(
                    "state",
                    ctx.t("sign_in.bad_state").into_owned(),
                ));
            }
        }
        let code = query
            .code
            .clone()
            .ok_or_else(|| Failure::invalid("code", ctx.t("sign_in.no_code").into_owned()))?;
        let client = provider.client().await?;
        let exchange = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(unavailable)?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&provider.http)
            .await;
        let tokens = match exchange {
            Ok(tokens) => tokens,
            Err(e) => {
                // Keys or endpoints may have moved: discover again next time.
                provider.forget_metadata().await;
                return Err(unavailable(format!("code exchange: {e}")));
            }
        };
        let id_token = tokens
            .id_token()
            .ok_or_else(|| unavailable("the provider sent no ID token"))?;
        if let Err(e) = id_token.claims(&client.id_token_verifier(), &Nonce::new(pending.nonce)) {
            // The provider may have rotated its keys: discover them again
            // for the next sign-in.
            provider.forget_metadata().await;
            return Err(Failure::invalid("id_token", e.to_string()));
        }
        let lifetime = tokens.expires_in().map_or(300, |d| d.as_secs().max(1));
        let access = tokens.access_token().secret().clone();
        let user = super::signed_in(&ctx, &state, access, lifetime).await?;
        ctx.sign_in(user)?;
        Ok(see_other(&pending.next))
    }
    .await;
    respond(&ctx, result)
}
