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

/// A database failure: 500, its cause logged once.
pub fn db(e: sea_orm::DbErr) -> ApiError {
    ApiError::Internal(anyhow::Error::new(e))
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
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A dependency (database, NATS, another service) is not available now.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; its cause chain is logged once.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            detail: detail.into(),
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
            ApiError::NotFound(_) => "not_found",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::Malformed { .. } => "malformed_request",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "Authentication required",
            ApiError::Forbidden(_) => "Not allowed",
            ApiError::NotFound(_) => "Not found",
            ApiError::InvalidField { .. } => "Invalid field",
            ApiError::Malformed { .. } => "Malformed request",
            ApiError::Conflict { .. } => "Conflict with the current state",
            ApiError::PayloadTooLarge { .. } => "Payload too large",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// The problem body, for this error.
    pub fn problem(&self) -> Problem {
        let field = match self {
            ApiError::InvalidField { field, .. } => Some(field.clone()),
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
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::InvalidField { .. } | ApiError::Malformed { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "request failed")
            }
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
    fn internal_errors_do_not_leak_their_cause() {
        let (status, json) = body(ApiError::Internal(anyhow::anyhow!("password=hunter2")));
        assert_eq!(status, 500);
        assert!(!json.to_string().contains("hunter2"));
    }
}
