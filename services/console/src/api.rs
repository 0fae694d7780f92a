//! The four services' public API, called with the signed-in user's token:
//! the console sees exactly what its user may read, no more.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::pages::Failure;
use crate::session::Ctx;

/// A problem the API answered (RFC 9457), as the console shows it.
#[derive(Debug, Clone, serde::Deserialize, Default)]
pub struct Problem {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub field: Option<String>,
}

/// The HTTP client to the API.
pub struct Api {
    http: reqwest::Client,
    /// `console.api_url`; `None`: the server the console is mounted on.
    configured: Option<String>,
}

impl Api {
    pub fn new(configured: &str) -> anyhow::Result<Api> {
        Ok(Api {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(15))
                .build()?,
            configured: (!configured.is_empty())
                .then(|| configured.trim_end_matches('/').to_owned()),
        })
    }

    /// Where the API is for a request that reached the console at `local`.
    pub fn base(&self, local: std::net::SocketAddr) -> String {
        match &self.configured {
            Some(url) => url.clone(),
            None => format!("http://{local}"),
        }
    }

    /// `GET path` as the signed-in user.
    pub async fn get<T: DeserializeOwned>(&self, ctx: &Ctx, path: &str) -> Result<T, Failure> {
        self.call(ctx, reqwest::Method::GET, path, None::<&()>)
            .await
    }

    /// `method path` with a JSON body as the signed-in user.
    pub async fn send<T: DeserializeOwned, B: Serialize>(
        &self,
        ctx: &Ctx,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        self.call(ctx, method, path, Some(body)).await
    }

    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        ctx: &Ctx,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Failure> {
        let user = ctx.user()?;
        let url = format!("{}{path}", ctx.api_base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&user.token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            tracing::warn!(target: "renkei::console", %method, path, error = %e, "API unreachable");
            Failure::Unavailable
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|_| Failure::Unavailable)?;
        if status.is_success() {
            let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(text).map_err(|e| {
                tracing::error!(target: "renkei::console", %method, path, error = %e, "API answer not understood");
                Failure::Unavailable
            });
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            ctx.sign_out();
            return Err(Failure::SignedOut {
                next: ctx.here.clone(),
            });
        }
        let problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
        Err(Failure::Refused {
            status: status.as_u16(),
            problem,
        })
    }
}
