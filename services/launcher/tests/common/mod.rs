//! The whole product in the test process, as `renkei up` runs it: the four
//! services under one address (`renkei_launcher::start`), on a nats-server
//! and a database of the test's own (SQLite files in the data dir, or a
//! PostgreSQL schema each when `RENKEI_TEST_DATABASE_URL` says so).

// Shared by several test targets; each uses a part.
#![allow(dead_code)]

use renkei_testkit::{NatsServer, TestDb};

pub struct Product {
    pub url: String,
    pub http: reqwest::Client,
    pub settings: renkei_settings::Settings,
    pub running: Option<renkei_web::Running>,
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub nats: NatsServer,
}

impl Product {
    /// Starts the product; `tune` adjusts the test settings first.
    pub async fn start(name: &str, tune: impl FnOnce(&mut renkei_settings::Settings)) -> Product {
        renkei_testkit::init_tracing();
        let nats = NatsServer::start().await.expect("nats-server");
        let db = TestDb::fresh().await.expect("database");
        let dir = tempfile::tempdir().expect("data dir");
        let url = if db.is_postgres() {
            db.url.clone()
        } else {
            String::new()
        };
        let mut settings = renkei_testkit::settings(&nats.url(), &url, dir.path().to_path_buf());
        tune(&mut settings);
        let running = renkei_launcher::start(&settings, name)
            .await
            .expect("the product: four services under one address");
        Product {
            url: format!("http://{}", running.addr),
            http: reqwest::Client::new(),
            settings,
            running: Some(running),
            db,
            dir,
            nats,
        }
    }
}
