//! `/metrics` and the HTTP request histogram.
//!
//! Every request is counted under the service that owns its route (found in
//! the services' OpenAPI documents, so `renkei up`, which serves all four
//! under one address, still labels each request with its own service), its
//! method, its route pattern (never the path: paths carry ids and the
//! tokens of acknowledgement links) and its status.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use renkei_telemetry::metrics;

use crate::openapi::route_shape as shape;

/// Which service serves each `(METHOD, route)`.
pub(crate) struct RouteOwners {
    owners: HashMap<(String, String), &'static str>,
    /// For routes of the server itself (`/healthz`, `/metrics`…): the one
    /// service of a service's binary, `renkei` for the whole product.
    server: &'static str,
    /// Whether requests are measured (`http.metrics`).
    pub(crate) measured: bool,
}

impl RouteOwners {
    /// From each service's OpenAPI document.
    pub(crate) fn of(
        documents: &[(&'static str, utoipa::openapi::OpenApi)],
        measured: bool,
    ) -> RouteOwners {
        let mut owners = HashMap::new();
        for (service, document) in documents {
            for (path, item) in &document.paths.paths {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ];
                for (method, _) in methods.iter().filter(|(_, served)| *served) {
                    owners.insert((method.to_string(), shape(path)), *service);
                }
            }
        }
        let server = match documents {
            [(one, _)] => *one,
            _ => "renkei",
        };
        RouteOwners {
            owners,
            server,
            measured,
        }
    }

    pub(crate) fn owner(&self, method: &str, route: &str) -> &'static str {
        self.owners
            .get(&(method.to_owned(), shape(route)))
            .copied()
            .unwrap_or(self.server)
    }

    /// Counts one answered request.
    pub(crate) fn record(&self, method: &str, route: Option<&str>, status: u16, took: Duration) {
        let route = route.unwrap_or("(no route)");
        metrics::histogram!(
            metrics::HTTP_REQUEST_DURATION,
            "service" => self.owner(method, route),
            "method" => method.to_owned(),
            "route" => route.to_owned(),
            "status" => status.to_string(),
        )
        .record(took.as_secs_f64());
    }
}

/// `GET /metrics`: what each service measures of its state now (backlogs,
/// open incidents…), then everything recorded, in the Prometheus text
/// format. Like the probes, it needs no token: scrape it from inside the
/// deployment's network, not through the public entrance.
pub(crate) async fn serve_metrics(modules: web::Data<crate::server::Modules>) -> HttpResponse {
    for module in &modules.0 {
        module.observe().await;
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics::render())
}

#[cfg(test)]
mod tests {
    use crate::openapi::route_shape as shape;

    #[test]
    fn a_route_is_compared_without_its_parameter_names() {
        assert_eq!(shape("/v1/rules/{version_id}"), "/v1/rules/{}");
        assert_eq!(shape("/v1/rules/{id}"), shape("/v1/rules/{version_id}"));
        assert_eq!(shape("/healthz"), "/healthz");
    }
}
