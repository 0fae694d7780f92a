//! A JSON body extractor whose every error is a problem naming the field.

use std::future::Future;
use std::pin::Pin;

use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `web::Json`, but malformed input, a wrong type, an unknown or missing
/// field each answer 400 with `field` set, and an oversized body 413.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        let bytes = web::Bytes::from_request(req, payload);
        let body_limit = req.app_data::<BodyLimit>().map_or(1024 * 1024, |l| l.0);
        Box::pin(async move {
            let bytes = bytes
                .await
                .map_err(|e| match e.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => ApiError::PayloadTooLarge { limit: body_limit },
                    _ if e.as_response_error().status_code()
                        == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE =>
                    {
                        ApiError::PayloadTooLarge { limit: body_limit }
                    }
                    _ => ApiError::Malformed {
                        detail: format!("request body could not be read: {e}"),
                        field: None,
                    },
                })?;
            if !content_type_ok {
                return Err(ApiError::Malformed {
                    detail: "Content-Type must be application/json".into(),
                    field: None,
                });
            }
            parse(&bytes).map(ValidJson)
        })
    }
}

/// A JSON body that may be left out entirely (`POST …/propose` with or
/// without options): an empty body is `None`; anything else is read like
/// [`ValidJson`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let empty = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
            || (req
                .headers()
                .get(actix_web::http::header::CONTENT_LENGTH)
                .is_none()
                && req
                    .headers()
                    .get(actix_web::http::header::TRANSFER_ENCODING)
                    .is_none());
        if empty {
            return Box::pin(async { Ok(OptionalJson(None)) });
        }
        let inner = ValidJson::<T>::from_request(req, payload);
        Box::pin(async move { inner.await.map(|ValidJson(v)| OptionalJson(Some(v))) })
    }
}

/// The configured body limit, for the 413 message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Deserialises `bytes`, naming the field at fault on failure.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        // serde names unknown and missing fields only in its message.
        let named = backticked(&message).filter(|_| {
            message.starts_with("unknown field") || message.starts_with("missing field")
        });
        let field = match (named, path.as_str()) {
            (Some(name), "." | "") => Some(name.to_owned()),
            (Some(name), p) if p == name || p.ends_with(&format!(".{name}")) => Some(p.to_owned()),
            (Some(name), parent) => Some(format!("{parent}.{name}")),
            (None, "." | "") => None,
            (None, p) => Some(p.to_owned()),
        };
        if inner.is_syntax() || inner.is_eof() {
            ApiError::Malformed {
                detail: format!("body is not valid JSON: {message}"),
                field,
            }
        } else {
            match field {
                Some(field) => ApiError::InvalidField {
                    field,
                    detail: message,
                },
                None => ApiError::Malformed {
                    detail: message,
                    field: None,
                },
            }
        }
    })
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        confidentiality: u8,
    }

    fn field_of(json: &str) -> Option<String> {
        match parse::<Body>(json.as_bytes()) {
            Err(ApiError::InvalidField { field, .. }) => Some(field),
            Err(ApiError::Malformed { field, .. }) => field,
            _ => None,
        }
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        assert_eq!(
            field_of(r#"{"name":"x","confidentiality":"high"}"#).as_deref(),
            Some("confidentiality")
        );
    }

    #[test]
    fn an_unknown_field_is_named() {
        assert_eq!(
            field_of(r#"{"name":"x","confidentiality":1,"lifecycle":"active"}"#).as_deref(),
            Some("lifecycle")
        );
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(
            field_of(r#"{"confidentiality":1}"#).as_deref(),
            Some("name")
        );
    }

    #[test]
    fn broken_json_is_malformed() {
        assert!(matches!(
            parse::<Body>(b"{not json"),
            Err(ApiError::Malformed { .. })
        ));
    }
}
