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

/// The four services, as the console reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Registry,
    Demarcation,
    Contacts,
    Emergency,
}

/// The service that answers `path` (the paths of `docs/authorization.csv`;
/// the audit routes, which every service has, are not the console's).
pub fn owner_of(path: &str) -> Owner {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["ack", ..] => Owner::Contacts,
        ["v1", "organizations", _, "escalation-policy", ..] => Owner::Contacts,
        ["v1", "organizations" | "systems" | "links", ..] => Owner::Registry,
        ["v1", "platforms", _, "cooperation-map", ..] => Owner::Contacts,
        ["v1", "platforms", _, "playbooks", ..] => Owner::Emergency,
        ["v1", "platforms", _, "rules" | "matrix", ..] => Owner::Demarcation,
        ["v1", "controls" | "rules", ..] => Owner::Demarcation,
        ["v1", "contacts" | "drills" | "notifications", ..] => Owner::Contacts,
        _ => Owner::Emergency,
    }
}

/// Where each service is: one address for all (`renkei up`, a gateway),
/// or one per service.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// `console.api_url`; `None`: the server the console is mounted on.
    all: Option<String>,
    registry: Option<String>,
    demarcation: Option<String>,
    contacts: Option<String>,
    emergency: Option<String>,
}

fn url(raw: &str) -> Option<String> {
    (!raw.is_empty()).then(|| raw.trim_end_matches('/').to_owned())
}

impl Routes {
    pub fn from_settings(console: &renkei_settings::ConsoleSettings) -> Routes {
        Routes {
            all: url(&console.api_url),
            registry: url(&console.registry_url),
            demarcation: url(&console.demarcation_url),
            contacts: url(&console.contacts_url),
            emergency: url(&console.emergency_url),
        }
    }

    /// The base URL for `path`, for a request that reached the console at
    /// `local`.
    pub fn base_for(&self, path: &str, local: &str) -> String {
        let own = match owner_of(path) {
            Owner::Registry => &self.registry,
            Owner::Demarcation => &self.demarcation,
            Owner::Contacts => &self.contacts,
            Owner::Emergency => &self.emergency,
        };
        own.clone()
            .or_else(|| self.all.clone())
            .unwrap_or_else(|| local.to_owned())
    }
}

/// The HTTP client to the API.
pub struct Api {
    http: reqwest::Client,
    routes: Routes,
}

impl Api {
    pub fn new(routes: Routes) -> anyhow::Result<Api> {
        Ok(Api {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(15))
                .build()?,
            routes,
        })
    }

    /// This server, as the API of `renkei up` (the console is mounted
    /// beside the services).
    pub fn local(local: std::net::SocketAddr) -> String {
        format!("http://{local}")
    }

    /// `GET path` as the signed-in user.
    pub async fn get<T: DeserializeOwned>(&self, ctx: &Ctx, path: &str) -> Result<T, Failure> {
        self.call(ctx, reqwest::Method::GET, path, None::<&()>)
            .await
    }

    /// Every item of a paged list: `path` (with its filters) page after
    /// page, following `next`, up to `MAX_PAGES` pages of 1000.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        path: &str,
    ) -> Result<Vec<T>, Failure> {
        const MAX_PAGES: usize = 100;
        let join = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page_path = match &cursor {
                None => format!("{path}{join}limit=1000"),
                Some(c) => format!("{path}{join}limit=1000&cursor={}", crate::pages::encode(c)),
            };
            let page: crate::model::Page<T> = self.get(ctx, &page_path).await?;
            items.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(items)
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
        let url = format!("{}{path}", self.routes.base_for(path, &ctx.api_base));
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
                Failure::NotUnderstood
            });
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            ctx.sign_out();
            return Err(Failure::SignedOut {
                next: ctx.back.clone(),
            });
        }
        let problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
        Err(Failure::Refused {
            status: status.as_u16(),
            problem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_four_services_goes_to_its_owner() {
        let table = include_str!("../../../docs/authorization.csv");
        let mut checked = 0;
        for line in table.lines().skip(1) {
            let mut fields = line.split(',');
            let (Some(service), Some(_method), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if path.starts_with("/v1/audit") {
                continue;
            }
            let wanted = match service {
                "registry" => Owner::Registry,
                "demarcation" => Owner::Demarcation,
                "contacts" => Owner::Contacts,
                "emergency" => Owner::Emergency,
                other => panic!("unknown service {other}"),
            };
            let concrete = path
                .replace("{id}", "0190b5a0-0000-7000-8000-000000000001")
                .replace("{org_id}", "0190b5a0-0000-7000-8000-000000000002")
                .replace("{platform_id}", "0190b5a0-0000-7000-8000-000000000003")
                .replace("{version_id}", "0190b5a0-0000-7000-8000-000000000004")
                .replace("{token}", "abc");
            assert_eq!(owner_of(&format!("{concrete}?limit=5")), wanted, "{path}");
            checked += 1;
        }
        assert!(checked > 1000, "only {checked} rows");
    }

    #[test]
    fn a_service_of_its_own_wins_over_the_common_address() {
        let routes = Routes {
            all: Some("http://gateway".into()),
            contacts: Some("http://contacts:8080".into()),
            ..Routes::default()
        };
        assert_eq!(
            routes.base_for("/v1/contacts", "http://me"),
            "http://contacts:8080"
        );
        assert_eq!(
            routes.base_for("/v1/incidents", "http://me"),
            "http://gateway"
        );
        assert_eq!(
            Routes::default().base_for("/v1/incidents", "http://me"),
            "http://me"
        );
    }
}
