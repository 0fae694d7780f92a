//! `Idempotency-Key` on a creating POST, against the registry (the same
//! middleware serves every service): a retry with the same key gets the
//! first answer again and creates nothing more; the key reused for another
//! request is a 422 naming it; a retry while the first attempt runs is a
//! 409; a first attempt abandoned (its process died) is taken over; a bad
//! key is a 400 naming it. On SQLite and PostgreSQL (the keys live in the
//! service's database, so every replica sees them).

use renkei_testkit::{NatsServer, TestDb, token};
use renkei_web::Role;
use sea_orm::ConnectionTrait as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

struct App {
    base: String,
    http: reqwest::Client,
    settings: renkei_settings::Settings,
    running: Option<renkei_web::Running>,
    _nats: NatsServer,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl App {
    async fn start() -> App {
        renkei_testkit::init_tracing();
        let nats = NatsServer::start().await.expect("nats-server");
        let db = TestDb::fresh().await.expect("database");
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
        let running = renkei_registry::Registry::spawn(&settings, "idempotency-test")
            .await
            .expect("registry");
        App {
            base: format!("http://{}", running.addr),
            http: reqwest::Client::new(),
            settings,
            running: Some(running),
            _nats: nats,
            _db: db,
            _dir: dir,
        }
    }

    /// POST with `key`: status, the replay header, the body.
    async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Option<String>, Value) {
        let answer = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token(Role::Admin, None))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = answer.status().as_u16();
        let replayed = answer
            .headers()
            .get("idempotency-replayed")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = answer.json().await.unwrap_or(Value::Null);
        (status, replayed, body)
    }

    async fn organizations(&self) -> usize {
        let (_, page) = renkei_testkit::call(
            &self.http,
            reqwest::Method::GET,
            &format!("{}/v1/organizations?limit=1000", self.base),
            Some(&token(Role::Admin, None)),
            None,
        )
        .await;
        page["items"].as_array().map_or(0, Vec::len)
    }

    async fn sql(&self, statement: &str) {
        let db =
            renkei_store::Db::connect(&self.settings.database_url_for("registry"), "registry", 1)
                .await
                .expect("the registry's database");
        db.write.execute_unprepared(statement).await.expect("sql");
    }
}

/// The fingerprint the middleware keeps: SHA-256 of method, path and body.
fn fingerprint(path: &str, body: &Value) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("POST {path}\n"));
    hash.update(serde_json::to_vec(body).expect("json"));
    hex::encode(hash.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_is_answered_once_and_a_reused_key_is_refused() {
    let app = App::start().await;
    let path = "/v1/organizations";
    let body = json!({"name": "Agency K", "kind": "government_agency"});

    let (status, replayed, first) = app.post(path, "retry-1", &body).await;
    assert_eq!((status, replayed), (201, None), "{first}");
    let (status, replayed, again) = app.post(path, "retry-1", &body).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again, first, "the first answer, again");
    assert_eq!(app.organizations().await, 1, "created once");

    // Another request under the same key.
    let other = json!({"name": "Agency L", "kind": "government_agency"});
    let (status, _, problem) = app.post(path, "retry-1", &other).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("Idempotency-Key")),
        "{problem}"
    );
    assert_eq!(app.organizations().await, 1, "nothing created");

    // A refusal is kept and replayed too (the same name is taken).
    let (status, _, taken) = app.post(path, "retry-2", &body).await;
    assert_eq!(status, 409, "{taken}");
    let (status, replayed, _) = app.post(path, "retry-2", &body).await;
    assert_eq!((status, replayed.as_deref()), (409, Some("true")));

    // Keys are the caller's: another caller's same key is its own.
    let (status, _, bad) = app.post(path, &"k".repeat(300), &other).await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (400, Some("Idempotency-Key")),
        "{bad}"
    );
    assert_eq!(app.organizations().await, 1);

    // A first attempt still running: a retry is told so and runs nothing.
    let running = json!({"name": "Agency M", "kind": "government_agency"});
    let scope = "-:test-admin";
    app.sql(&format!(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at) VALUES ('{scope}', 'retry-3', '{}', CURRENT_TIMESTAMP)",
        fingerprint(path, &running)
    ))
    .await;
    let (status, _, busy) = app.post(path, "retry-3", &running).await;
    assert_eq!(
        (status, busy["error"].as_str()),
        (409, Some("idempotency_key_in_use")),
        "{busy}"
    );
    assert_eq!(app.organizations().await, 1);

    // One whose process died long ago is taken over by the retry.
    app.sql(&format!(
        "UPDATE idempotency_keys SET created_at = '{}' WHERE key = 'retry-3'",
        (chrono::Utc::now() - chrono::TimeDelta::minutes(5)).format("%Y-%m-%d %H:%M:%S%:z")
    ))
    .await;
    let (status, replayed, made) = app.post(path, "retry-3", &running).await;
    assert_eq!((status, replayed), (201, None), "{made}");
    assert_eq!(app.organizations().await, 2);

    // Documented on every secured POST.
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let parameters = doc["paths"]["/v1/organizations"]["post"]["parameters"].to_string();
    assert!(parameters.contains("Idempotency-Key"), "{parameters}");
    assert!(doc["paths"]["/v1/organizations"]["post"]["responses"]["422"].is_object());

    let mut app = app;
    if let Some(r) = app.running.take() {
        r.stop().await.expect("stops");
    }
}
