//! One error type for every HTTP API, rendered as `application/problem+json`
//! (RFC 9457) with the extension members `error` (a stable snake_case code)
//! and `field` (the input at fault, when there is one).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// A broken input rule of a domain: 400 naming the field.
pub fn invalid(e: renkei_domain::Invalid) -> ApiError {
    ApiError::invalid(e.field, e.reason)
}

/// What a client is told while the database cannot be reached.
pub const DATABASE_UNAVAILABLE: &str = "the database is not reachable now; try again shortly";

/// A database failure, its cause logged once: a 503 with
/// [`DATABASE_UNAVAILABLE`] when the database cannot be reached now (down,
/// restarting, the connection lost, no connection within the pool's acquire
/// timeout: see [`renkei_store::is_unreachable`]), else a 500.
pub fn db(e: sea_orm::DbErr) -> ApiError {
    if renkei_store::is_unreachable(&e) {
        database_unavailable(&e)
    } else {
        ApiError::Internal(anyhow::Error::new(e))
    }
}

fn database_unavailable(cause: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %cause, "database not reachable");
    ApiError::Unavailable(DATABASE_UNAVAILABLE.to_owned())
}

/// An unexpected failure is a 500, unless a database error in its chain
/// says the database cannot be reached: then it is the same 503 as [`db`].
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        let unreachable = e
            .chain()
            .filter_map(|c| c.downcast_ref::<sea_orm::DbErr>())
            .any(renkei_store::is_unreachable);
        if unreachable {
            database_unavailable(&format_args!("{e:#}"))
        } else {
            ApiError::Internal(e)
        }
    }
}

/// A path segment that must be an id. A malformed id cannot name anything:
/// the same 404 as a missing one.
pub fn path_id(raw: &str, what: &'static str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(what))
}

/// An optional id in a query string (`?org_id=`): a bad one is a 400
/// naming the parameter.
pub fn query_id(field: &'static str, raw: &Option<String>) -> Result<Option<uuid::Uuid>, ApiError> {
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => uuid::Uuid::parse_str(v)
            .map(Some)
            .map_err(|_| ApiError::invalid(field, "is not a valid id")),
    }
}

/// Everything an API can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or an invalid bearer token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may see the object but not do this to it.
    #[error("{0}")]
    Forbidden(String),
    /// Not there, or not the caller's to see: the two look the same.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// There, but not the caller's to see: answers exactly like
    /// [`ApiError::NotFound`], and `reason` goes to the refusal log only.
    #[error("{what} not found")]
    Hidden { what: &'static str, reason: String },
    /// A field has a value that is not acceptable.
    #[error("{field}: {detail}")]
    InvalidField { field: String, detail: String },
    /// The body or query cannot be read at all.
    #[error("{detail}")]
    Malformed {
        detail: String,
        field: Option<String>,
    },
    /// The request conflicts with the current state.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// Well-formed, but it cannot be carried out as asked (an
    /// `Idempotency-Key` reused for another request): 422 naming the field.
    #[error("{field}: {detail}")]
    Unprocessable { field: String, detail: String },
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The caller's organisation (or, without a token, its address) is over
    /// its rate limit: 429 with `Retry-After`.
    #[error("too many requests; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// A dependency (database, NATS, another service) is not available now.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; its cause chain is logged once.
    #[error("internal error")]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// A 404 that hides an object the caller may not see; `reason` (why it
    /// is hidden) is logged as a refusal, never sent.
    pub fn hidden(what: &'static str, reason: impl Into<String>) -> Self {
        ApiError::Hidden {
            what,
            reason: reason.into(),
        }
    }

    /// The 404 of an object reached through this one (a playbook through
    /// its platform): missing stays missing and hidden stays hidden, with
    /// its reason; any other answer (a 503, say) is kept.
    pub fn not_found_as(self, what: &'static str) -> Self {
        match self {
            ApiError::NotFound(_) => ApiError::NotFound(what),
            ApiError::Hidden { reason, .. } => ApiError::Hidden { what, reason },
            other => other,
        }
    }

    /// A refusal of the caller (401, 403, or a 404 hiding an object), which
    /// the server logs with the identity, route and reason.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ApiError::Unauthenticated(_) | ApiError::Forbidden(_) | ApiError::Hidden { .. }
        )
    }

    /// Why the request was refused, for the access log: the detail sent,
    /// or for a hidden object the reason kept from the caller.
    pub fn reason(&self) -> String {
        match self {
            ApiError::Hidden { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) | ApiError::Hidden { .. } => "not_found",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::Malformed { .. } => "malformed_request",
            ApiError::Conflict { code, .. } => code,
            ApiError::Unprocessable { .. } => "unprocessable",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "Authentication required",
            ApiError::Forbidden(_) => "Not allowed",
            ApiError::NotFound(_) | ApiError::Hidden { .. } => "Not found",
            ApiError::InvalidField { .. } => "Invalid field",
            ApiError::Malformed { .. } => "Malformed request",
            ApiError::Conflict { .. } => "Conflict with the current state",
            ApiError::Unprocessable { .. } => "Unprocessable request",
            ApiError::PayloadTooLarge { .. } => "Payload too large",
            ApiError::TooManyRequests { .. } => "Too many requests",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// The problem body, for this error.
    pub fn problem(&self) -> Problem {
        let field = match self {
            ApiError::InvalidField { field, .. } | ApiError::Unprocessable { field, .. } => {
                Some(field.clone())
            }
            ApiError::Malformed { field, .. } => field.clone(),
            _ => None,
        };
        let status = self.status_code();
        Problem {
            problem_type: format!("urn:renkei:problem:{}", self.code()),
            title: self.title(),
            status: status.as_u16(),
            detail: self.to_string(),
            error: self.code(),
            field,
            trace_id: renkei_telemetry::trace_id(&tracing::Span::current()),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable snake_case code.
    pub error: &'static str,
    /// The input at fault, as a dotted path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The W3C trace id of the request, to find it in the traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::Hidden { .. } => StatusCode::NOT_FOUND,
            ApiError::InvalidField { .. } | ApiError::Malformed { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "request failed")
            }
            // Logged with its cause where it was made.
            ApiError::Unavailable(why) if why == DATABASE_UNAVAILABLE => {}
            ApiError::Unavailable(why) => tracing::warn!(reason = %why, "dependency unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if matches!(self, ApiError::Unauthenticated(_)) {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, (*retry_after_secs).max(1).to_string()));
        }
        response.json(self.problem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody as _;

    fn body(err: ApiError) -> (u16, serde_json::Value) {
        let response = err.error_response();
        let status = response.status().as_u16();
        let bytes = response.into_body().try_into_bytes().expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[test]
    fn invalid_field_is_a_400_problem_naming_the_field() {
        let (status, json) = body(ApiError::invalid("confidentiality", "must be 1 to 3"));
        assert_eq!(status, 400);
        assert_eq!(json["error"], "invalid_field");
        assert_eq!(json["field"], "confidentiality");
        assert_eq!(json["status"], 400);
        assert_eq!(json["type"], "urn:renkei:problem:invalid_field");
        assert!(
            json["detail"]
                .as_str()
                .expect("detail")
                .contains("must be 1 to 3")
        );
    }

    #[test]
    fn conflict_carries_its_own_code() {
        let (status, json) = body(ApiError::conflict("illegal_transition", "retired is final"));
        assert_eq!(status, 409);
        assert_eq!(json["error"], "illegal_transition");
        assert!(json.get("field").is_none());
    }

    #[test]
    fn too_many_requests_is_a_429_problem_with_retry_after() {
        let response = ApiError::TooManyRequests {
            retry_after_secs: 3,
        }
        .error_response();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("3")
        );
        let (_, json) = body(ApiError::TooManyRequests {
            retry_after_secs: 3,
        });
        assert_eq!(json["type"], "urn:renkei:problem:rate_limited");
        assert_eq!(json["title"], "Too many requests");
        assert!(json["detail"].as_str().expect("detail").contains("3 s"));
    }

    #[test]
    fn a_hidden_object_answers_exactly_like_a_missing_one() {
        let (hidden_status, hidden) = body(ApiError::hidden("system", "another platform's"));
        let (missing_status, missing) = body(ApiError::NotFound("system"));
        assert_eq!((hidden_status, hidden), (missing_status, missing));
        assert_eq!(
            ApiError::hidden("system", "another platform's").reason(),
            "another platform's"
        );
        assert!(ApiError::hidden("system", "x").is_refusal());
        assert!(!ApiError::NotFound("system").is_refusal());
        let through = ApiError::hidden("platform", "not a member").not_found_as("playbook");
        assert_eq!(through.to_string(), "playbook not found");
        assert_eq!(through.reason(), "not a member");
        assert!(through.is_refusal());
        assert!(
            !ApiError::NotFound("platform")
                .not_found_as("playbook")
                .is_refusal()
        );
        assert!(matches!(
            ApiError::Unavailable("registry".into()).not_found_as("playbook"),
            ApiError::Unavailable(_)
        ));
    }

    #[test]
    fn an_unreachable_database_is_a_503_saying_so_and_a_bad_statement_a_500() {
        let refused = || sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        let (status, json) = body(db(refused()));
        assert_eq!(status, 503);
        assert_eq!(json["error"], "unavailable");
        assert_eq!(json["detail"], DATABASE_UNAVAILABLE);
        // Through anyhow (`?` in a handler) too, with context around it.
        let wrapped = anyhow::Error::new(refused()).context("loading the incident");
        let (status, json) = body(ApiError::from(wrapped));
        assert_eq!(status, 503);
        assert_eq!(json["detail"], DATABASE_UNAVAILABLE);
        let (status, json) = body(db(sea_orm::DbErr::Custom("syntax".into())));
        assert_eq!(status, 500);
        assert_eq!(json["error"], "internal");
        let (status, _) = body(ApiError::from(anyhow::anyhow!("a bug")));
        assert_eq!(status, 500);
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let (status, json) = body(ApiError::Internal(anyhow::anyhow!("password=hunter2")));
        assert_eq!(status, 500);
        assert!(!json.to_string().contains("hunter2"));
    }
}
