//! A JSON body extractor whose every error is a problem naming the field.
//!
//! Besides the body limit (413), every body is held to two backstops before
//! it reaches a handler: no string value or key longer than
//! [`MAX_STRING_BYTES`] and no nesting deeper than [`MAX_DEPTH`], each a 400
//! naming the field's path. Domains bound their own fields far tighter; these
//! catch the fields they do not.

use std::future::Future;
use std::pin::Pin;

use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::de::{self, DeserializeOwned, DeserializeSeed as _};

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

/// The longest string value (or object key) a body may hold, in bytes once
/// decoded.
pub const MAX_STRING_BYTES: usize = 64 * 1024;

/// The deepest nesting of objects and arrays a body may have.
pub const MAX_DEPTH: usize = 32;

/// Deserialises `bytes`, naming the field at fault on failure.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_bounds(bytes)?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        // serde names unknown and missing fields only in its message.
        let named = backticked(&message).filter(|_| {
            message.starts_with("unknown field")
                || message.starts_with("missing field")
                || message.starts_with("duplicate field")
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

/// Refuses a string longer than [`MAX_STRING_BYTES`] or nesting deeper than
/// [`MAX_DEPTH`], naming the path. Only a body that could break a bound
/// (longer than the string cap, or nested too deep by a quick scan) is walked;
/// a body that is not JSON is left for the parser to report.
fn check_bounds(bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.len() <= MAX_STRING_BYTES && nesting(bytes) <= MAX_DEPTH {
        return Ok(());
    }
    let mut walk = Walk::default();
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    if (Check {
        walk: &mut walk,
        depth: 0,
    })
    .deserialize(de)
    .is_ok()
    {
        return Ok(());
    }
    let Some(breach) = walk.breach else {
        return Ok(());
    };
    let path = walk.path_string();
    let detail = match breach {
        Breach::LongString => format!("is longer than {MAX_STRING_BYTES} bytes"),
        Breach::LongKey => format!("has a key longer than {MAX_STRING_BYTES} bytes"),
        Breach::TooDeep => format!("nests deeper than {MAX_DEPTH} levels"),
    };
    Err(if walk.path.is_empty() {
        ApiError::Malformed {
            detail: format!("body {detail}"),
            field: None,
        }
    } else {
        ApiError::InvalidField {
            field: path,
            detail,
        }
    })
}

/// The deepest nesting of `[` and `{` outside strings (a quick scan, no
/// validation).
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Clone, Copy)]
enum Breach {
    LongString,
    LongKey,
    TooDeep,
}

/// Where the walk is, and what it found.
#[derive(Default)]
struct Walk {
    path: Vec<Segment>,
    breach: Option<Breach>,
}

impl Walk {
    /// The path as serde_path_to_error writes it: `a.b[0].c`.
    fn path_string(&self) -> String {
        let mut out = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    fn breach<E: de::Error>(&mut self, breach: Breach) -> E {
        self.breach = Some(breach);
        E::custom("bound exceeded")
    }
}

/// Visits any JSON value without keeping it, stopping at the first breach.
struct Check<'a> {
    walk: &'a mut Walk,
    /// Containers around the value.
    depth: usize,
}

impl<'de> de::DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if v.len() > MAX_STRING_BYTES {
            return Err(self.walk.breach(Breach::LongString));
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(self.walk.breach(Breach::TooDeep));
        }
        let mut index = 0;
        loop {
            self.walk.path.push(Segment::Index(index));
            let more = seq
                .next_element_seed(Check {
                    walk: &mut *self.walk,
                    depth: self.depth + 1,
                })?
                .is_some();
            self.walk.path.pop();
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(self.walk.breach(Breach::TooDeep));
        }
        while let Some(key) = map.next_key::<String>()? {
            if key.len() > MAX_STRING_BYTES {
                return Err(self.walk.breach(Breach::LongKey));
            }
            self.walk.path.push(Segment::Key(key));
            map.next_value_seed(Check {
                walk: &mut *self.walk,
                depth: self.depth + 1,
            })?;
            self.walk.path.pop();
        }
        Ok(())
    }
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
    fn a_field_given_twice_is_named() {
        assert_eq!(
            field_of(r#"{"name":"x","name":"y","confidentiality":1}"#).as_deref(),
            Some("name")
        );
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(
            field_of(r#"{"confidentiality":1}"#).as_deref(),
            Some("name")
        );
    }

    fn long(n: usize) -> String {
        "x".repeat(n)
    }

    #[test]
    fn a_string_over_the_cap_is_refused_naming_its_path() {
        let body = format!(
            r#"{{"name":"ok","confidentiality":1,"extra":{{"notes":["short","{}"]}}}}"#,
            long(MAX_STRING_BYTES + 1)
        );
        match parse::<serde_json::Value>(body.as_bytes()) {
            Err(ApiError::InvalidField { field, detail }) => {
                assert_eq!(field, "extra.notes[1]");
                assert!(detail.contains("65536 bytes"), "{detail}");
            }
            other => panic!("expected a refusal naming the field, got {other:?}"),
        }
        // Before the body type sees it: the unknown field would be named otherwise.
        assert!(matches!(
            parse::<Body>(body.as_bytes()),
            Err(ApiError::InvalidField { ref field, .. }) if field == "extra.notes[1]"
        ));
    }

    #[test]
    fn a_string_at_the_cap_is_accepted_and_escapes_count_decoded() {
        let at_cap = format!(
            r#"{{"name":"{}","confidentiality":1}}"#,
            long(MAX_STRING_BYTES)
        );
        assert_eq!(
            parse::<Body>(at_cap.as_bytes())
                .expect("at the cap")
                .name
                .len(),
            MAX_STRING_BYTES
        );
        // 40,000 escaped newlines are 80,000 bytes sent but 40,000 decoded.
        let escaped = format!(
            r#"{{"name":"{}","confidentiality":1}}"#,
            "\\n".repeat(40_000)
        );
        assert!(parse::<Body>(escaped.as_bytes()).is_ok());
    }

    #[test]
    fn a_long_key_is_refused() {
        let body = format!(r#"{{"a":{{"{}":1}}}}"#, long(MAX_STRING_BYTES + 1));
        match parse::<serde_json::Value>(body.as_bytes()) {
            Err(ApiError::InvalidField { field, detail }) => {
                assert_eq!(field, "a");
                assert!(detail.contains("key"), "{detail}");
            }
            other => panic!("expected a refusal naming the object, got {other:?}"),
        }
    }

    #[test]
    fn nesting_deeper_than_the_cap_is_refused_naming_its_path() {
        let deep = |levels: usize| format!("{}{}", r#"{"a":["#.repeat(levels), "]}".repeat(levels));
        // 16 × {"a":[ … is 32 levels: accepted.
        assert!(parse::<serde_json::Value>(deep(16).as_bytes()).is_ok());
        match parse::<serde_json::Value>(deep(17).as_bytes()) {
            Err(ApiError::InvalidField { field, detail }) => {
                assert!(field.starts_with("a[0].a[0]."), "{field}");
                assert!(detail.contains("32 levels"), "{detail}");
            }
            other => panic!("expected a refusal naming the path, got {other:?}"),
        }
        // Far deeper than serde_json's own recursion limit: still ours.
        assert!(matches!(
            parse::<serde_json::Value>(deep(500).as_bytes()),
            Err(ApiError::InvalidField { .. })
        ));
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_nesting() {
        let body = format!(
            r#"{{"name":"{}\"]","confidentiality":1}}"#,
            "[{".repeat(100)
        );
        assert_eq!(nesting(body.as_bytes()), 1);
        assert!(parse::<Body>(body.as_bytes()).is_ok());
    }

    #[test]
    fn broken_json_is_malformed() {
        assert!(matches!(
            parse::<Body>(b"{not json"),
            Err(ApiError::Malformed { .. })
        ));
    }
}
