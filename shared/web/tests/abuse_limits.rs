//! The HTTP layer's abuse limits and refusal log, through a real server
//! (`renkei_web::serve` with every middleware) and a small module of routes:
//! per-organisation rate limits, the body limit, the string and nesting
//! backstops, the page cap, and the `renkei::access` log of refusals.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::{HttpResponse, web};
use renkei_settings::{RateLimitSettings, Settings};
use renkei_web::{
    ApiError, Identity, PageParams, Role, ServiceModule, TokenIssuer, TokenVerifier, ValidJson,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use uuid::Uuid;

const KEY: &[u8] = b"abuse-limits-test-key";

/// How many times a handler that takes a body ran.
#[derive(Default)]
struct Calls(AtomicUsize);

struct Things {
    calls: Arc<Calls>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct NewThing {
    name: String,
    #[serde(default)]
    notes: Vec<String>,
    #[serde(default)]
    extra: Option<Value>,
}

async fn list(who: Identity, page: web::Query<PageParams>) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    Ok(HttpResponse::Ok().json(json!({"sub": who.sub, "limit": page.limit})))
}

async fn create(
    _who: Identity,
    calls: web::Data<Arc<Calls>>,
    body: ValidJson<NewThing>,
) -> Result<HttpResponse, ApiError> {
    calls.0.fetch_add(1, Ordering::SeqCst);
    Ok(HttpResponse::Created().json(json!({"name": body.0.name})))
}

/// Only admins may delete; a thing of another organisation is hidden.
async fn delete(who: Identity, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if path.as_str() == "foreign" {
        return Err(ApiError::hidden(
            "thing",
            "it belongs to another organisation",
        ));
    }
    if !who.is_admin() {
        return Err(ApiError::Forbidden(
            "only an admin may delete things".into(),
        ));
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn ack(path: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().body(format!("acknowledged {path}"))
}

#[async_trait::async_trait]
impl ServiceModule for Things {
    fn name(&self) -> &'static str {
        "things"
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.calls.clone()))
            .route("/v1/things", web::get().to(list))
            .route("/v1/things", web::post().to(create))
            .route("/v1/things/{id}", web::delete().to(delete))
            .route("/ack/{token}", web::get().to(ack));
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        utoipa::openapi::OpenApiBuilder::new().build()
    }

    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    http: reqwest::Client,
    calls: Arc<Calls>,
    handle: actix_web::dev::ServerHandle,
}

impl Server {
    async fn start(per_second: u32, burst: u32) -> Server {
        Server::start_with(per_second, burst, true).await
    }

    async fn start_with(per_second: u32, burst: u32, metrics: bool) -> Server {
        capture_logs();
        let mut settings = Settings::default();
        settings.http.workers = 1;
        settings.http.metrics = metrics;
        settings.rate_limit = RateLimitSettings { per_second, burst };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let calls = Arc::new(Calls::default());
        let server = renkei_web::serve(
            vec![Arc::new(Things {
                calls: calls.clone(),
            })],
            listener,
            &settings.http,
            &settings.rate_limit,
            Arc::new(TokenVerifier::hs256(KEY)),
        )
        .expect("server");
        let handle = server.handle();
        tokio::spawn(server);
        Server {
            base: format!("http://{addr}"),
            addr,
            http: reqwest::Client::new(),
            calls,
            handle,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

fn token(sub: &str, org: Option<Uuid>, role: Role) -> String {
    TokenIssuer::hs256(KEY)
        .issue(sub, org, &[role], 600)
        .expect("token")
}

/// Every log line of this test binary (the server runs on its own worker
/// threads, so the subscriber is global), as JSON.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buffer
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured log lines that mention `needle`.
fn log_lines(needle: &str) -> Vec<Value> {
    let logs = capture_logs();
    let text = String::from_utf8(logs.lock().expect("log buffer").clone()).expect("utf-8 logs");
    text.lines()
        .filter(|l| l.contains(needle))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect()
}

async fn problem(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

#[tokio::test]
async fn an_organisation_over_its_burst_gets_a_429_problem_with_retry_after_and_others_do_not() {
    let server = Server::start(1, 3).await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let token_a = token("flooder", Some(a), Role::Manager);
    let token_b = token("bystander", Some(b), Role::Manager);
    for i in 0..3 {
        let status = server.get("/v1/things", Some(&token_a)).await.status();
        assert_eq!(status, 200, "request {i} of the burst");
    }
    // The next is refused, unless a slow machine took a second over the
    // burst and the bucket earned a token back meanwhile.
    let mut refused = server.get("/v1/things", Some(&token_a)).await;
    for _ in 0..5 {
        if refused.status() == 429 {
            break;
        }
        refused = server.get("/v1/things", Some(&token_a)).await;
    }
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a whole-seconds Retry-After");
    assert!(retry_after >= 1);
    let (status, content_type, body) = problem(refused).await;
    assert_eq!(status, 429);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["type"], "urn:renkei:problem:rate_limited");
    assert_eq!(body["title"], "Too many requests");
    assert_eq!(body["status"], 429);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("retry in"))
    );
    // Another member of A shares its organisation's bucket…
    let colleague = token("colleague", Some(a), Role::Csirt);
    assert_eq!(
        server.get("/v1/things", Some(&colleague)).await.status(),
        429
    );
    // …another organisation has a bucket of its own, and probes are free.
    for _ in 0..3 {
        assert_eq!(server.get("/v1/things", Some(&token_b)).await.status(), 200);
    }
    for _ in 0..20 {
        assert_eq!(server.get("/healthz", None).await.status(), 200);
        assert_eq!(server.get("/readyz", None).await.status(), 200);
    }
    server.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_count_against_their_address_not_an_organisation() {
    let server = Server::start(1, 3).await;
    let org = Uuid::now_v7();
    let member = token("member", Some(org), Role::Manager);
    // Token-less and forged-token requests, and the public ack pages, share
    // the peer's bucket: 401s until it is empty, then 429s.
    assert_eq!(server.get("/v1/things", None).await.status(), 401);
    assert_eq!(
        server
            .get("/v1/things", Some("forged.token.here"))
            .await
            .status(),
        401
    );
    let link = format!("/ack/link-secret-{}", Uuid::now_v7());
    assert_eq!(server.get(&link, None).await.status(), 200);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(server.get("/v1/things", None).await.status().as_u16());
        statuses.push(server.get(&link, None).await.status().as_u16());
    }
    assert_eq!(statuses[..2], [429, 429], "{statuses:?}");
    assert!(!statuses.contains(&401), "{statuses:?}");
    // The organisation behind the same address is not touched.
    for _ in 0..3 {
        assert_eq!(server.get("/v1/things", Some(&member)).await.status(), 200);
    }
    server.stop().await;
    // Refusals of the link are logged by route, never by its secret path.
    assert!(log_lines(&link).is_empty(), "{:#?}", log_lines(&link));
}

#[tokio::test]
async fn a_per_second_of_zero_turns_the_limits_off() {
    let server = Server::start(0, 100).await;
    let t = token("busy", Some(Uuid::now_v7()), Role::Manager);
    for _ in 0..150 {
        assert_eq!(server.get("/v1/things", Some(&t)).await.status(), 200);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_flood_is_warned_about_once_and_otherwise_logged_at_debug() {
    let server = Server::start(1, 1).await;
    let org = Uuid::now_v7();
    let t = token("flood-logger", Some(org), Role::Manager);
    assert_eq!(server.get("/v1/things", Some(&t)).await.status(), 200);
    let mut refused = 0;
    for _ in 0..30 {
        if server.get("/v1/things", Some(&t)).await.status() == 429 {
            refused += 1;
        }
    }
    server.stop().await;
    // Nearly all are refused (a slow machine may earn a token back or two).
    assert!(refused >= 25, "{refused} of 30 refused");
    let lines = log_lines(&org.to_string());
    let level = |l: &&Value| l["level"].as_str().map(str::to_owned);
    let warns = lines
        .iter()
        .filter(|l| level(l).as_deref() == Some("WARN"))
        .count();
    let debugs = lines
        .iter()
        .filter(|l| level(l).as_deref() == Some("DEBUG"))
        .count();
    assert_eq!(warns, 1, "{lines:#?}");
    assert_eq!(debugs, refused - 1);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem_with_or_without_content_length() {
    let server = Server::start(0, 0).await;
    let t = token("big-bodies", Some(Uuid::now_v7()), Role::Manager);
    let three_mib = format!(r#"{{"name":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let response = server
        .http
        .post(format!("{}/v1/things", server.base))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body(three_mib.clone())
        .send()
        .await
        .expect("request");
    let (status, content_type, body) = problem(response).await;
    assert_eq!(status, 413);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["error"], "payload_too_large");

    // The same body chunked, without Content-Length.
    let raw = chunked_post(server.addr, "/v1/things", &t, three_mib.as_bytes()).await;
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("application/problem+json"), "{raw}");
    assert!(raw.contains("payload_too_large"), "{raw}");
    assert_eq!(server.calls.0.load(Ordering::SeqCst), 0, "no handler ran");
    server.stop().await;
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a raw connection and
/// returns what the server answered (it may answer and close before the
/// whole body is sent).
async fn chunked_post(addr: std::net::SocketAddr, path: &str, token: &str, body: &[u8]) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let mut request = Vec::new();
    write!(
        request,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .expect("head");
    for chunk in body.chunks(64 * 1024) {
        write!(request, "{:x}\r\n", chunk.len()).expect("chunk head");
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let writer = tokio::spawn(async move {
        // The server may stop reading once it has refused: ignore that.
        let _ = write.write_all(&request).await;
        let _ = write.shutdown().await;
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        read.read_to_end(&mut answer),
    )
    .await;
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_string_over_the_cap_is_a_400_naming_the_field_before_the_handler_runs() {
    let server = Server::start(0, 0).await;
    let t = token("long-strings", Some(Uuid::now_v7()), Role::Manager);
    let post = |body: String| {
        server
            .http
            .post(format!("{}/v1/things", server.base))
            .bearer_auth(&t)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let long = "y".repeat(renkei_web::json::MAX_STRING_BYTES + 1);
    let (status, _, body) = problem(
        post(format!(r#"{{"name":"ok","notes":["fine","{long}"]}}"#))
            .await
            .expect("request"),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("notes[1]")));
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let (status, _, body) = problem(
        post(format!(r#"{{"name":"ok","extra":{{"x":{deep}}}}}"#))
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("extra.x[0]")),
        "{body}"
    );
    assert_eq!(server.calls.0.load(Ordering::SeqCst), 0, "no handler ran");
    let (status, _, _) = problem(
        post(r#"{"name":"ok","notes":["fine"]}"#.into())
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(server.calls.0.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_page_larger_than_the_cap_is_served_capped_and_a_bad_one_names_limit() {
    let server = Server::start(0, 0).await;
    let t = token("pager", Some(Uuid::now_v7()), Role::Manager);
    let (status, _, body) = problem(server.get("/v1/things?limit=100000", Some(&t)).await).await;
    assert_eq!((status, body["limit"].as_u64()), (200, Some(1000)));
    for bad in ["0", "-5", "many"] {
        let (status, _, body) = problem(
            server
                .get(&format!("/v1/things?limit={bad}"), Some(&t))
                .await,
        )
        .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("limit")),
            "{bad}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_refusal_is_logged_once_with_identity_route_and_reason_but_never_the_token() {
    let server = Server::start(0, 0).await;
    let org = Uuid::now_v7();
    let sub = format!("refused-{org}");
    let t = token(&sub, Some(org), Role::Manager);
    // Every request carries the subject as its request id, which the
    // request's span (and so each log line) carries: the 401's line is found
    // by it although the caller is unknown.
    let delete = |path: String, token: Option<String>| {
        let mut req = server
            .http
            .delete(format!("{}{path}", server.base))
            .header("x-request-id", sub.as_str());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    // 403: a manager may not delete.
    let status = delete("/v1/things/mine".into(), Some(t.clone()))
        .await
        .expect("request")
        .status();
    assert_eq!(status, 403);
    // 404 hiding another organisation's thing: looks like any 404.
    let (status, _, body) = problem(
        delete("/v1/things/foreign".into(), Some(t.clone()))
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (404, Some("thing not found"))
    );
    // 401: a token signed with another key; its subject must not be trusted.
    let forged = TokenIssuer::hs256(b"another key")
        .issue(&sub, Some(org), &[Role::Admin], 600)
        .expect("token");
    let status = delete("/v1/things/mine".into(), Some(forged.clone()))
        .await
        .expect("request")
        .status();
    assert_eq!(status, 401);
    server.stop().await;

    let lines = log_lines(&sub);
    let refusals: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "renkei::access")
        .collect();
    assert_eq!(refusals.len(), 3, "one line per refusal: {refusals:#?}");
    let warnings = lines.iter().filter(|l| l["level"] == "WARN").count();
    assert_eq!(
        warnings, 3,
        "no other warning repeats a refusal: {lines:#?}"
    );
    let forbidden = refusals
        .iter()
        .find(|l| l["fields"]["status"] == 403)
        .expect("the 403 line");
    assert_eq!(forbidden["level"], "WARN");
    assert_eq!(forbidden["fields"]["sub"], sub.as_str());
    assert_eq!(forbidden["fields"]["org"], org.to_string().as_str());
    assert_eq!(forbidden["fields"]["roles"], "manager");
    assert_eq!(forbidden["fields"]["method"], "DELETE");
    assert_eq!(forbidden["fields"]["route"], "/v1/things/{id}");
    assert_eq!(
        forbidden["fields"]["reason"],
        "only an admin may delete things"
    );
    let hidden = refusals
        .iter()
        .find(|l| l["fields"]["status"] == 404)
        .expect("the hidden 404 line");
    assert_eq!(
        hidden["fields"]["reason"],
        "it belongs to another organisation"
    );
    assert_eq!(hidden["fields"]["sub"], sub.as_str());
    // The 401 line carries no identity: the token's claims are not trusted.
    let unauthenticated = refusals
        .iter()
        .find(|l| l["fields"]["status"] == 401)
        .expect("the 401 line");
    assert!(unauthenticated["fields"].get("sub").is_none());
    assert_eq!(unauthenticated["fields"]["claimed_sub"], sub.as_str());
    assert!(
        unauthenticated["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("bearer token rejected"))
    );
    let everything =
        String::from_utf8(capture_logs().lock().expect("log buffer").clone()).expect("utf-8 logs");
    for secret in [&t, &forged] {
        assert!(!everything.contains(secret.as_str()), "a token was logged");
        let signature = secret.rsplit('.').next().expect("a signature");
        assert!(
            !everything.contains(signature),
            "a token's signature was logged"
        );
    }
}

#[tokio::test]
async fn metrics_are_never_limited_and_absent_when_switched_off() {
    let server = Server::start_with(1, 1, true).await;
    let mut text = String::new();
    for _ in 0..5 {
        let answer = server.get("/metrics", None).await;
        assert_eq!(answer.status(), 200, "a scrape is never limited");
        text = answer.text().await.expect("text");
    }
    // The earlier scrapes were measured.
    assert!(
        text.contains("route=\"/metrics\""),
        "the scrapes are in the request histogram: {text}"
    );
    server.handle.stop(true).await;
    let off = Server::start_with(1, 1, false).await;
    assert_eq!(off.get("/metrics", None).await.status(), 404);
    off.handle.stop(true).await;
}
