//! What the OpenAPI document says about answers every operation shares, so
//! each handler documents only its own: [`Conventions`] completes every
//! operation with the answers of the shared layers (401 from the identity
//! extractor, 400 from the body and query readers, 404 for an id that names
//! nothing, 413 from the body limit, 429 from the rate limits) and gives
//! every error answer its real body, an `application/problem+json`
//! [`Problem`]. [`PageOf`] describes list bodies.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Array, ArrayBuilder, Object, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{
    Content, OpenApi, Ref, RefOr, ResponseBuilder, Schema, header::HeaderBuilder,
};
use utoipa::{PartialSchema as _, ToSchema};

use crate::error::Problem;

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A list: `{items, next}`, `next` the cursor of the following page (`null`
/// on the last, and always for lists that come whole).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct PageOf<T: ToSchema> {
    pub items: Vec<T>,
    /// The cursor of the next page (`?cursor=`); `null` on the last page.
    pub next: Option<String>,
}

/// A string that is one of `all` (by `name`), for a field that holds a word
/// of a closed vocabulary: `#[schema(schema_with = kinds)]` with
/// `fn kinds() -> Object { one_of(&Kind::ALL, Kind::as_str) }`. The field
/// stays a `String`, so a word outside the vocabulary is refused by the
/// domain with a 400 naming the field and listing the words.
pub fn one_of<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(all.iter().map(|v| name(*v))))
        .build()
}

/// [`one_of`] for an optional field: the word, or `null`.
pub fn one_of_or_null<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(
            all.iter()
                .map(|v| serde_json::Value::from(name(*v)))
                .chain([serde_json::Value::Null]),
        ))
        .build()
}

/// An array of words of [`one_of`].
pub fn many_of<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Array {
    ArrayBuilder::new().items(one_of(all, name)).build()
}

/// A [`utoipa::Modify`] for every service's document: `modifiers(&Conventions)`.
#[derive(Debug, Clone, Copy)]
pub struct Conventions;

impl utoipa::Modify for Conventions {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components
            .schemas
            .entry(Problem::name().into_owned())
            .or_insert_with(Problem::schema);
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                complete(operation);
            }
            if let Some(post) = item.post.as_mut() {
                idempotency_key(post);
            }
        }
    }
}

fn complete(operation: &mut Operation) {
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let in_path = parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let in_query = parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let has_body = operation.request_body.is_some();
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let responses = &mut operation.responses.responses;
    let mut add = |status: u16, why: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(why).build()));
    };
    if has_body || in_query {
        add(
            400,
            "The body or a parameter is not acceptable; `field` names it",
        );
    }
    if secured {
        add(401, "No bearer token, or one that is not valid");
    }
    if in_path {
        add(404, "Nothing the caller may see has this id");
    }
    if has_body {
        add(413, "The body is larger than the configured limit");
    }
    add(
        429,
        "Over the organisation's rate limit; retry after `Retry-After` seconds",
    );
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let code: u16 = status.parse().unwrap_or(0);
        if code < 400 {
            continue;
        }
        // An error answer is a problem document, unless the handler
        // documents another kind of body (an HTML page).
        let json = response.content.shift_remove("application/json");
        if json.is_some() || response.content.is_empty() {
            let schema = json
                .and_then(|c| c.schema)
                .unwrap_or_else(|| RefOr::Ref(Ref::from_schema_name(Problem::name())));
            response
                .content
                .entry(PROBLEM_JSON.to_owned())
                .or_insert_with(|| Content::new(Some(schema)));
        }
        if response.description.is_empty() {
            response.description = default_description(code).to_owned();
        }
        let header = |name: &str, what: &str| {
            (
                name.to_owned(),
                HeaderBuilder::new()
                    .schema(Schema::from(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some(what))
                    .build(),
            )
        };
        match code {
            401 => {
                let (name, h) = header("WWW-Authenticate", "`Bearer`");
                response.headers.entry(name).or_insert(h);
            }
            429 => {
                let (name, h) = header("Retry-After", "Whole seconds to wait");
                response.headers.entry(name).or_insert(h);
            }
            _ => {}
        }
    }
}

/// A secured POST takes an `Idempotency-Key` ([`crate::idempotency`]).
fn idempotency_key(operation: &mut Operation) {
    if operation.security.as_ref().is_none_or(|s| s.is_empty()) {
        return;
    }
    let parameter = utoipa::openapi::path::ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(utoipa::openapi::Required::False)
        .description(Some(
            "Any unique string (1–255 visible ASCII characters) chosen by the client: a retry \
             with the same key gets the first answer again (`Idempotency-Replayed: true`) \
             instead of doing the request twice; kept 24 hours.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[!-~]+$")),
        ))
        .build();
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(parameter);
    let responses = &mut operation.responses.responses;
    for (status, why) in [
        (
            400,
            "The body, a parameter or the `Idempotency-Key` is not acceptable; `field` names it",
        ),
        (
            409,
            "In conflict with the current state, or the first request with this `Idempotency-Key` is still running",
        ),
        (422, "The `Idempotency-Key` was used for another request"),
    ] {
        responses.entry(status.to_string()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(why)
                    .content(
                        PROBLEM_JSON,
                        Content::new(Some(RefOr::Ref(Ref::from_schema_name(Problem::name())))),
                    )
                    .build(),
            )
        });
    }
}

fn default_description(status: u16) -> &'static str {
    match status {
        400 => "The body or a parameter is not acceptable; `field` names it",
        401 => "No bearer token, or one that is not valid",
        403 => "The caller may see this but not do it",
        404 => "Not there, or not the caller's to see",
        409 => "In conflict with the current state",
        413 => "The body is larger than the configured limit",
        422 => "Cannot be processed as asked",
        429 => "Over the rate limit",
        503 => "A service this depends on does not answer now",
        _ => "An error",
    }
}

/// A route without its parameters' names, `/v1/rules/{}`, so that actix's
/// pattern and the OpenAPI document's path of one route compare equal
/// whatever each calls its parameters.
pub fn route_shape(route: &str) -> String {
    let mut out = String::with_capacity(route.len());
    let mut inside = false;
    for c in route.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{}");
            }
            '}' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi as _;

    #[derive(Debug, ToSchema)]
    #[allow(dead_code)]
    struct Thing {
        id: uuid::Uuid,
    }

    #[utoipa::path(post, path = "/v1/things/{id}", request_body = Thing,
        params(("id" = uuid::Uuid, Path, description = "Thing id")),
        responses((status = 200, body = Thing), (status = 403), (status = 409, body = Problem)),
        security(("bearer" = [])))]
    #[allow(dead_code)]
    fn change_thing() {}

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(change_thing), modifiers(&Conventions))]
    struct Doc;

    #[test]
    fn every_error_answer_is_a_documented_problem() {
        let doc = serde_json::to_value(Doc::openapi()).expect("json");
        let responses = &doc["paths"]["/v1/things/{id}"]["post"]["responses"];
        for status in ["400", "401", "403", "404", "409", "413", "429"] {
            let content = &responses[status]["content"];
            assert_eq!(
                content[PROBLEM_JSON]["schema"]["$ref"], "#/components/schemas/Problem",
                "{status}: {responses}"
            );
            assert!(content.get("application/json").is_none(), "{status}");
            assert!(
                !responses[status]["description"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
            );
        }
        assert!(responses["429"]["headers"].get("Retry-After").is_some());
        assert!(
            responses["401"]["headers"]
                .get("WWW-Authenticate")
                .is_some()
        );
        assert!(doc["components"]["schemas"].get("Problem").is_some());
        assert_eq!(
            responses["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Thing"
        );
    }
}
