//! Property tests for request bodies, driven by the schema the OpenAPI
//! document publishes for them.
//!
//! [`check`] reads a body type `T` the way every handler does
//! ([`renkei_web::json::parse`]) and proves two things about it:
//!
//! - every body the published schema allows parses (the document and serde
//!   agree);
//! - every hostile object — the right field names with the wrong types,
//!   unknown fields, missing fields, huge numbers, nesting deeper than the
//!   parser allows, long and odd Unicode strings — either
//!   parses or is refused with a 4xx that names a field, and a fault planted
//!   at one place in an otherwise valid body is named at that place. Never a
//!   panic, never a 5xx.

use std::collections::BTreeMap;

use actix_web::ResponseError as _;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use renkei_web::ApiError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Cases per property: small enough that the whole suite (run twice in CI)
/// stays short, large enough to cover every field of every body.
/// `PROPTEST_CASES` overrides both.
pub const VALID_CASES: u32 = 96;
pub const HOSTILE_CASES: u32 = 192;

/// Runs both properties for `T` and panics with the smallest failing body.
pub fn check<T: DeserializeOwned + utoipa::ToSchema>() {
    check_then::<T>(|_| Ok(()));
}

/// [`check`], and every body that parses is then put through `validate`
/// (the domain's own checks the handler applies next, without a database):
/// it may refuse, but only with a 4xx naming a field, and never panics.
pub fn check_then<T: DeserializeOwned + utoipa::ToSchema>(
    validate: impl Fn(T) -> Result<(), ApiError>,
) {
    let schema = BodySchema::of::<T>();
    run(VALID_CASES, schema.valid(), |Valid(text)| {
        let body = renkei_web::json::parse::<T>(text.as_bytes()).map_err(|e| {
            TestCaseError::fail(format!("a body the schema allows was refused: {e}"))
        })?;
        refused_naming_a_field(validate(body), &text, None)
    });
    run(HOSTILE_CASES, schema.hostile(), |case| {
        judge_then::<T>(&case, &validate)
    });
}

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    // PROPTEST_CASES, when set, overrides both counts (to look harder once).
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    });
    if let Err(failure) = runner.run(&strategy, test) {
        panic!("{failure}");
    }
}

/// A body the schema allows, as JSON text.
#[derive(Clone)]
pub struct Valid(pub String);

impl std::fmt::Debug for Valid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Valid({})", Shown(&self.0))
    }
}

/// A hostile body and, when the fault was planted at one place of a valid
/// body, that place (as the API names fields: `channels[0].url`).
#[derive(Clone)]
pub struct Hostile {
    pub text: String,
    pub at: Option<String>,
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hostile")
            .field("text", &Shown(&self.text))
            .field("at", &self.at)
            .finish()
    }
}

/// A body as a failure shows it: a long one cut to its start and end.
struct Shown<'a>(&'a str);

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const KEEP: usize = 200;
        let chars = self.0.chars().count();
        if chars <= 2 * KEEP {
            return write!(f, "{}", self.0);
        }
        let head: String = self.0.chars().take(KEEP).collect();
        let tail: String = self.0.chars().skip(chars - KEEP).collect();
        write!(f, "{head}…({} bytes in all)…{tail}", self.0.len())
    }
}

/// Ok, or a 4xx naming a field (the planted fault's place, or one inside or
/// around it).
pub fn judge<T: DeserializeOwned>(case: &Hostile) -> Result<(), TestCaseError> {
    judge_then::<T>(case, &|_| Ok(()))
}

fn judge_then<T: DeserializeOwned>(
    case: &Hostile,
    validate: &impl Fn(T) -> Result<(), ApiError>,
) -> Result<(), TestCaseError> {
    match renkei_web::json::parse::<T>(case.text.as_bytes()) {
        Ok(body) => refused_naming_a_field(validate(body), &case.text, None),
        // Text that is not JSON at all has no field to name: a 4xx is enough.
        Err(error) if serde_json::from_str::<Value>(&case.text).is_err() => {
            let status = error.status_code();
            prop_assert!(
                status.is_client_error(),
                "answered {status} ({error}) to {}",
                Shown(&case.text)
            );
            Ok(())
        }
        Err(error) => refused_naming_a_field(Err(error), &case.text, case.at.as_deref()),
    }
}

fn refused_naming_a_field(
    outcome: Result<(), ApiError>,
    text: &str,
    at: Option<&str>,
) -> Result<(), TestCaseError> {
    let Err(error) = outcome else {
        return Ok(());
    };
    let status = error.status_code();
    prop_assert!(
        status.is_client_error(),
        "answered {status} ({error}) to {}",
        Shown(text)
    );
    let problem = error.problem();
    // An empty name is a name (`{"": 1}` is refused naming the field ``);
    // `.` (the root) and `?` (somewhere unknown) are not — unless the fault
    // was planted at a field really called that (`{".": null}`).
    let Some(field) = problem
        .field
        .filter(|f| (f != "." && f != "?") || at == Some(f.as_str()))
    else {
        return Err(TestCaseError::fail(format!(
            "refused without naming a field ({error})"
        )));
    };
    if let Some(at) = at {
        prop_assert!(
            related(&field, at),
            "the fault was planted at `{at}` but `{field}` was named ({error})"
        );
    }
    Ok(())
}

/// Whether one path is the other or lies inside it.
fn related(a: &str, b: &str) -> bool {
    let inside = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    inside(a, b) || inside(b, a)
}

/// A body type's JSON Schema as the OpenAPI document publishes it, with the
/// schemas it refers to.
#[derive(Debug, Clone)]
pub struct BodySchema {
    root: Value,
    components: BTreeMap<String, Value>,
}

const MAX_DEPTH: u32 = 12;

impl BodySchema {
    pub fn of<T: utoipa::ToSchema>() -> BodySchema {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        let components = nested
            .into_iter()
            .map(|(name, schema)| {
                let json = serde_json::to_value(schema).expect("a schema is JSON");
                (name, json)
            })
            .collect();
        BodySchema {
            root: serde_json::to_value(T::schema()).expect("a schema is JSON"),
            components,
        }
    }

    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..16 {
            let Some(name) = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            else {
                return schema;
            };
            schema = self
                .components
                .get(name)
                .unwrap_or_else(|| panic!("schema {name} is referred to but not published"));
        }
        schema
    }

    /// JSON text of bodies the schema allows.
    pub fn valid(&self) -> BoxedStrategy<Valid> {
        self.valid_value()
            .prop_map(|v| Valid(v.to_string()))
            .boxed()
    }

    fn valid_value(&self) -> BoxedStrategy<Value> {
        self.valid_of(&self.root, 0)
    }

    fn valid_of(&self, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
        let schema = self.resolve(schema);
        if depth > MAX_DEPTH {
            return Just(Value::Null).boxed();
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return proptest::sample::select(values.clone()).boxed();
        }
        if let Some(value) = schema.get("const") {
            return Just(value.clone()).boxed();
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
                let each: Vec<_> = alternatives
                    .iter()
                    .map(|a| self.valid_of(a, depth + 1))
                    .collect();
                return proptest::strategy::Union::new(each).boxed();
            }
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            return self.valid_of(&self.merged(parts), depth + 1);
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ if schema.get("properties").is_some() => vec!["object"],
            _ => vec![],
        };
        if types.is_empty() {
            // `{}`: anything goes (a free-form JSON value).
            return any_json();
        }
        let each: Vec<_> = types
            .into_iter()
            .map(|t| self.valid_typed(schema, t, depth))
            .collect();
        proptest::strategy::Union::new(each).boxed()
    }

    fn merged(&self, parts: &[Value]) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for part in parts {
            let part = self.resolve(part);
            if let Some(p) = part.get("properties").and_then(Value::as_object) {
                properties.extend(p.clone());
            }
            if let Some(r) = part.get("required").and_then(Value::as_array) {
                required.extend(r.iter().cloned());
            }
        }
        serde_json::json!({"type": "object", "properties": properties, "required": required})
    }

    fn valid_typed(&self, schema: &Value, kind: &str, depth: u32) -> BoxedStrategy<Value> {
        match kind {
            "null" => Just(Value::Null).boxed(),
            "boolean" => any::<bool>().prop_map(Value::Bool).boxed(),
            "integer" => {
                let (lo, hi) = integer_bounds(schema);
                prop_oneof![1 => Just(lo), 1 => Just(hi), 6 => lo..=hi]
                    .prop_map(Value::from)
                    .boxed()
            }
            "number" => {
                let lo = schema
                    .get("minimum")
                    .and_then(Value::as_f64)
                    .unwrap_or(-1e300);
                let hi = schema
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .unwrap_or(1e300);
                (lo..=hi).prop_map(Value::from).boxed()
            }
            "string" => string_of(schema),
            "array" => {
                let items = schema
                    .get("items")
                    .map_or_else(any_json, |i| self.valid_of(i, depth + 1));
                let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
                let max = schema
                    .get("maxItems")
                    .and_then(Value::as_u64)
                    .map_or(min + 4, |m| (m as usize).min(min + 4));
                proptest::collection::vec(items, min..=max)
                    .prop_map(Value::Array)
                    .boxed()
            }
            "object" => self.valid_object(schema, depth),
            other => {
                panic!("a schema names the type `{other}`, which this generator does not know")
            }
        }
    }

    fn valid_object(&self, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if properties.is_empty()
            && let Some(values) = schema.get("additionalProperties").filter(|a| a.is_object())
        {
            // A map (`BTreeMap<K, V>`): a few entries.
            let keys = schema
                .get("propertyNames")
                .map_or_else(|| odd_string().prop_map(Value::String).boxed(), string_of);
            let values = self.valid_of(values, depth + 1);
            return proptest::collection::vec((keys, values), 0..4)
                .prop_map(|entries| {
                    Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v))
                            .collect(),
                    )
                })
                .boxed();
        }
        let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = properties
            .iter()
            .map(|(name, property)| {
                let name = name.clone();
                let value = self.valid_of(property, depth + 1);
                if required.contains(&name.as_str()) {
                    value.prop_map(move |v| Some((name.clone(), v))).boxed()
                } else {
                    proptest::option::of(value.prop_map(move |v| (name.clone(), v))).boxed()
                }
            })
            .collect();
        fields
            .prop_map(|fields| Value::Object(fields.into_iter().flatten().collect()))
            .boxed()
    }

    /// The root object's field names.
    pub fn field_names(&self) -> Vec<String> {
        let root = self.resolve(&self.root);
        let mut names: Vec<String> = root
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(parts) = root.get("allOf").and_then(Value::as_array) {
            let merged = self.merged(parts);
            if let Some(p) = merged.get("properties").and_then(Value::as_object) {
                names.extend(p.keys().cloned());
            }
        }
        names
    }

    /// Hostile objects, as JSON text (some are not valid JSON at all).
    pub fn hostile(&self) -> BoxedStrategy<Hostile> {
        let names = self.field_names();
        let valid = self.valid_value();
        // The right names (and some others) with anything at all.
        let wrong_types =
            proptest::collection::vec((field_name(names.clone()), hostile_fragment()), 0..8)
                .prop_map(|mut fields| {
                    // Each name once (a name given twice is another matter).
                    let mut seen = std::collections::HashSet::new();
                    fields.retain(|(name, _)| seen.insert(name.clone()));
                    Hostile {
                        text: object_text(&fields),
                        at: None,
                    }
                });
        // One place of a valid body replaced by anything.
        let replaced = (valid.clone(), any::<Index>(), hostile_fragment())
            .prop_map(|(body, at, fragment)| plant(body, at, Fault::Replace(fragment)));
        // One field left out, or one unknown field added, anywhere.
        let removed =
            (valid.clone(), any::<Index>()).prop_map(|(body, at)| plant(body, at, Fault::Remove));
        let added = (valid, any::<Index>(), odd_key(), hostile_fragment())
            .prop_map(|(body, at, key, fragment)| plant(body, at, Fault::Add(key, fragment)));
        prop_oneof![
            3 => wrong_types,
            4 => replaced,
            2 => removed,
            2 => added,
        ]
        .boxed()
    }
}

fn integer_bounds(schema: &Value) -> (i64, i64) {
    let (mut lo, mut hi) = match schema.get("format").and_then(Value::as_str) {
        Some("int8") => (i8::MIN.into(), i8::MAX.into()),
        Some("uint8") => (0, u8::MAX.into()),
        Some("int16") => (i16::MIN.into(), i16::MAX.into()),
        Some("uint16") => (0, u16::MAX.into()),
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        Some("uint32") => (0, u32::MAX.into()),
        _ => (i64::MIN, i64::MAX),
    };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        lo = lo.max(min.ceil() as i64);
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        hi = hi.min(max.floor() as i64);
    }
    if let Some(min) = schema.get("exclusiveMinimum").and_then(Value::as_f64) {
        lo = lo.max(min.floor() as i64 + 1);
    }
    if let Some(max) = schema.get("exclusiveMaximum").and_then(Value::as_f64) {
        hi = hi.min(max.ceil() as i64 - 1);
    }
    (lo, hi)
}

fn string_of(schema: &Value) -> BoxedStrategy<Value> {
    match schema.get("format").and_then(Value::as_str) {
        Some("uuid") => any::<u128>()
            .prop_map(|n| Value::String(uuid::Uuid::from_u128(n).to_string()))
            .boxed(),
        Some("date-time") => (0i64..253_402_300_799, 0u32..1_000_000_000, -47i32..=47)
            .prop_map(|(secs, nanos, quarter_hours)| {
                let at = chrono::DateTime::from_timestamp(secs, nanos).unwrap_or_default();
                let offset = chrono::FixedOffset::east_opt(quarter_hours * 900)
                    .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("UTC"));
                Value::String(at.with_timezone(&offset).to_rfc3339())
            })
            .boxed(),
        Some("date") => (0i64..2_932_896)
            .prop_map(|days| {
                let at = chrono::DateTime::from_timestamp(days * 86_400, 0).unwrap_or_default();
                Value::String(at.format("%Y-%m-%d").to_string())
            })
            .boxed(),
        _ => {
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let max = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .map(|m| m as usize);
            match max {
                // Within `maxLength` characters (mostly short, sometimes up
                // to the bound) and within the bytes every string of a body
                // is held to (`renkei_web::json`).
                Some(max) => prop_oneof![
                    4 => proptest::collection::vec(any::<char>(), min..=max.min(min.max(64))),
                    1 => proptest::collection::vec(any::<char>(), min..=max),
                ]
                .prop_map(|chars| {
                    let mut text = String::new();
                    for c in chars {
                        if text.len() + c.len_utf8() > renkei_web::json::MAX_STRING_BYTES {
                            break;
                        }
                        text.push(c);
                    }
                    Value::String(text)
                })
                .boxed(),
                None => odd_string()
                    .prop_filter("shorter than minLength", move |s| s.chars().count() >= min)
                    .prop_map(Value::String)
                    .boxed(),
            }
        }
    }
}

/// Strings a careless parser trips on: empty, any Unicode (controls, bidi
/// overrides, astral planes, lone combining marks), long.
pub fn odd_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>(),
        2 => proptest::collection::vec(any::<char>(), 0..64)
            .prop_map(|c| c.into_iter().collect::<String>()),
        1 => proptest::sample::select(vec![
            "", " ", "\u{0}", "\u{202e}gnp.exe", "\u{feff}", "\u{1f600}", "e\u{301}",
            "\\", "\"", "null", "0", "-1", "'; DROP TABLE x; --", "../../etc/passwd",
            "\u{ffff}", "\u{10ffff}",
        ])
        .prop_map(str::to_owned),
        1 => (1_000usize..16_000, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n)),
    ]
    .boxed()
}

/// Member names a client should not send. Never empty: `renkei_web::json`
/// refuses a value over its length bound under an empty name without
/// naming it (the path `` reads as no path), which this would report.
fn odd_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z_]{1,12}",
        1 => odd_string().prop_filter("a name", |k| !k.is_empty()),
        1 => proptest::sample::select(vec![
            "id", "org_id", "organization_id", "owner_org_id", "state", "status",
            "created_at", "updated_at", "acknowledged_by", "version", "__proto__",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

fn field_name(names: Vec<String>) -> BoxedStrategy<String> {
    if names.is_empty() {
        return odd_key();
    }
    prop_oneof![4 => proptest::sample::select(names), 1 => odd_key()].boxed()
}

/// Any JSON value, a few levels deep.
pub fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        odd_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(odd_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// JSON text that may not be a `Value` at all: nesting deeper than the
/// parser allows, numbers no type holds, invalid text.
pub fn hostile_fragment() -> BoxedStrategy<String> {
    prop_oneof![
        8 => any_json().prop_map(|v| v.to_string()),
        1 => (129usize..2_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        1 => (129usize..2_000).prop_map(|n| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n))),
        1 => (33usize..128).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        1 => (65_537usize..70_000).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
        2 => proptest::sample::select(vec![
            "1e400", "-1e400", "1e-400", "-0", "0.0", "1.5", "123456789012345678901234567890",
            "-9223372036854775809", "9223372036854775808", "18446744073709551616",
            "4294967296", "-1", "2147483648", "\"\\ud800\"", "\"\\u0000\"", "tru", "[1,]",
            "{\"a\":}", "NaN", "Infinity", "\"", "",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

fn object_text(fields: &[(String, String)]) -> String {
    let inner: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            let key = serde_json::to_string(k).expect("a string is JSON");
            format!("{key}:{v}")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

enum Fault {
    Replace(String),
    Remove,
    Add(String, String),
}

const PLACEHOLDER: &str = "\u{0}renkei-testkit-fragment\u{0}";

/// Plants `fault` at the `at`-th place of `body`: a value to replace, an
/// object member to remove, an object to add a member to.
fn plant(mut body: Value, at: Index, fault: Fault) -> Hostile {
    let mut places = Vec::new();
    collect_places(&body, &mut places, &fault);
    if places.is_empty() {
        return Hostile {
            text: body.to_string(),
            at: None,
        };
    }
    let (path, pointer) = places[at.index(places.len())].clone();
    let fragment = match fault {
        Fault::Replace(fragment) => {
            if let Some(slot) = body.pointer_mut(&pointer) {
                *slot = Value::String(PLACEHOLDER.into());
            }
            Some(fragment)
        }
        Fault::Remove => {
            let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", ""));
            let key = key.replace("~1", "/").replace("~0", "~");
            if let Some(Value::Object(object)) = body.pointer_mut(parent) {
                object.remove(&key);
            }
            None
        }
        Fault::Add(key, fragment) => {
            if let Some(Value::Object(object)) = body.pointer_mut(&pointer) {
                object.insert(key.clone(), Value::String(PLACEHOLDER.into()));
            }
            let path = if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            };
            let text = body.to_string();
            let placeholder = serde_json::to_string(PLACEHOLDER).expect("a string is JSON");
            return Hostile {
                text: text.replacen(&placeholder, &fragment, 1),
                at: Some(path),
            };
        }
    };
    let mut text = body.to_string();
    if let Some(fragment) = fragment {
        let placeholder = serde_json::to_string(PLACEHOLDER).expect("a string is JSON");
        text = text.replacen(&placeholder, &fragment, 1);
    }
    Hostile {
        text,
        at: Some(path),
    }
}

/// Every place `fault` can go: (API path, JSON pointer).
fn collect_places(value: &Value, places: &mut Vec<(String, String)>, fault: &Fault) {
    fn pointer_of(path: &[Seg]) -> String {
        path.iter()
            .map(|s| match s {
                Seg::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
                Seg::Index(i) => format!("/{i}"),
            })
            .collect()
    }
    fn api_path(path: &[Seg]) -> String {
        let mut out = String::new();
        for s in path {
            match s {
                Seg::Key(k) if out.is_empty() => out.push_str(k),
                Seg::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
    enum Seg {
        Key(String),
        Index(usize),
    }
    fn walk(value: &Value, path: &mut Vec<Seg>, out: &mut Vec<(String, String)>, fault: &Fault) {
        let here_is_a_member = matches!(path.last(), Some(Seg::Key(_)));
        match fault {
            Fault::Replace(_) if !path.is_empty() => out.push((api_path(path), pointer_of(path))),
            Fault::Remove if here_is_a_member => out.push((api_path(path), pointer_of(path))),
            Fault::Add(..) if value.is_object() => out.push((api_path(path), pointer_of(path))),
            _ => {}
        }
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    path.push(Seg::Key(k.clone()));
                    walk(v, path, out, fault);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(v, path, out, fault);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    walk(value, &mut Vec::new(), places, fault);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Channel {
        kind: String,
        url: Option<String>,
    }

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        rating: u32,
        id: uuid::Uuid,
        channels: Vec<Channel>,
        note: Option<String>,
    }

    #[test]
    fn a_well_behaved_body_passes_both_properties() {
        check::<Body>();
    }

    #[test]
    fn a_fault_planted_in_a_nested_member_is_named_there() {
        let body = serde_json::json!({"name": "x", "channels": [{"kind": "webhook"}]});
        let mut places = Vec::new();
        collect_places(&body, &mut places, &Fault::Replace(String::new()));
        let paths: Vec<&str> = places.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"channels[0].kind"), "{paths:?}");
        assert!(paths.contains(&"name"), "{paths:?}");
        let case = Hostile {
            text: r#"{"name":"x","rating":1,"id":"00000000-0000-0000-0000-000000000000","channels":[{"kind":7}]}"#.into(),
            at: Some("channels[0].kind".into()),
        };
        judge::<Body>(&case).expect("named where it was planted");
    }

    #[test]
    fn a_refusal_naming_the_wrong_field_fails_the_property() {
        let case = Hostile {
            text: r#"{"name":5}"#.into(),
            at: Some("rating".into()),
        };
        assert!(judge::<Body>(&case).is_err());
    }

    #[test]
    fn a_body_type_that_panics_fails_the_property() {
        #[derive(Debug, utoipa::ToSchema)]
        #[allow(dead_code)]
        struct Panics {
            name: String,
        }
        impl<'de> serde::Deserialize<'de> for Panics {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let _ = serde_json::Value::deserialize(d)?;
                panic!("boom")
            }
        }
        let result = std::panic::catch_unwind(check::<Panics>);
        assert!(result.is_err());
    }
}
