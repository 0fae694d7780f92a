//! The whole product (four services and the console, as `renkei up` runs
//! them) on a NATS server and a database of its own, with a platform: an
//! operator, agencies A, B and C each with a linked system and a CSIRT on a
//! webhook, links A → platform → B (malware spreads that way; C is linked
//! to nothing), and common rules proposed to every agency.

use std::time::Duration;

use renkei_testkit::{NatsServer, TestDb, WebhookSink, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

pub struct Agency {
    pub id: Uuid,
    pub system: Uuid,
}

pub struct World {
    pub base: String,
    pub http: reqwest::Client,
    pub operator: String,
    pub op_org: Uuid,
    pub platform: Uuid,
    pub rules: Uuid,
    pub agencies: Vec<Agency>,
    pub sink: WebhookSink,
    running: Option<renkei_web::Running>,
    _nats: NatsServer,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl World {
    /// The product in the production profile (tokens from an identity
    /// provider only), with no platform: development tokens cannot make one.
    pub async fn start_production(tune: impl FnOnce(&mut renkei_settings::Settings)) -> World {
        World::product(|s| {
            s.profile = renkei_settings::Profile::Production;
            s.auth.dev_key = String::new().into();
            tune(s);
        })
        .await
    }

    /// The product with the platform described above.
    pub async fn start(tune: impl FnOnce(&mut renkei_settings::Settings)) -> World {
        let mut world = World::product(tune).await;
        world.build_platform().await;
        world
    }

    async fn product(tune: impl FnOnce(&mut renkei_settings::Settings)) -> World {
        renkei_testkit::init_tracing();
        let nats = NatsServer::start().await.expect("nats-server");
        let db = TestDb::fresh().await.expect("database");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
        settings.contacts.delivery.retry_base_ms = 100;
        settings.contacts.delivery.retry_max_ms = 500;
        tune(&mut settings);
        let running = renkei_launcher::start(&settings, "console-test")
            .await
            .expect("the product starts");
        World {
            base: format!("http://{}", running.addr),
            http: reqwest::Client::new(),
            operator: String::new(),
            op_org: Uuid::nil(),
            platform: Uuid::nil(),
            rules: Uuid::nil(),
            agencies: Vec::new(),
            sink: WebhookSink::start().await.expect("webhook sink"),
            running: Some(running),
            _nats: nats,
            _db: db,
            _dir: dir,
        }
    }

    /// `method path` on the API with `token`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        renkei_testkit::call(
            &self.http,
            method,
            &format!("{}{path}", self.base),
            Some(token),
            body,
        )
        .await
    }

    /// `POST path` that must answer 201: the id it made.
    async fn create(&self, path: &str, token: &str, body: Value) -> Uuid {
        let (status, body) = self
            .call(reqwest::Method::POST, path, token, Some(body))
            .await;
        assert_eq!(status, 201, "{path}: {body}");
        body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("an id")
    }

    async fn build_platform(&mut self) {
        let admin = token(Role::Admin, None);
        self.op_org = self
            .create(
                "/v1/organizations",
                &admin,
                json!({"name": "Platform Operations Office", "kind": "platform_operator"}),
            )
            .await;
        self.operator = token(Role::Operator, Some(self.op_org));
        let operator = self.operator.clone();
        self.platform = self
            .create(
                "/v1/systems",
                &operator,
                json!({"name": "Government Common Platform", "kind": "platform",
                       "owner_org_id": self.op_org, "confidentiality": 3, "integrity": 2, "availability": 2}),
            )
            .await;
        for name in ["Agency A", "Agency B", "Agency C"] {
            let id = self
                .create(
                    "/v1/organizations",
                    &admin,
                    json!({"name": name, "kind": "government_agency"}),
                )
                .await;
            let system = self
                .create(
                    "/v1/systems",
                    &operator,
                    json!({"name": format!("{name} records"), "kind": "linked",
                           "owner_org_id": id, "platform_id": self.platform,
                           "confidentiality": 2, "integrity": 2, "availability": 1}),
                )
                .await;
            let manager = token(Role::Manager, Some(id));
            self.create(
                "/v1/contacts",
                &manager,
                json!({"org_id": id, "name": format!("{name} CSIRT"), "role": "csirt",
                       "availability": "both",
                       "channels": [{"kind": "webhook", "url": format!("{}/{id}/csirt", self.sink.url),
                                     "secret": "console-test-secret-0123"}]}),
            )
            .await;
            self.agencies.push(Agency { id, system });
        }
        let links = [
            (self.agencies[0].system, self.platform),
            (self.platform, self.agencies[1].system),
        ];
        for (from, to) in links {
            self.create(
                "/v1/links",
                &operator,
                json!({"from_system_id": from, "to_system_id": to, "kind": "network",
                       "propagates": ["malware"]}),
            )
            .await;
        }
        // A responsibility matrix in scope of two controls: the first
        // fully assigned, the second with no accountable organisation.
        let (a, b, c) = (
            self.agencies[0].id,
            self.agencies[1].id,
            self.agencies[2].id,
        );
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/platforms/{}/matrix", self.platform),
                &operator,
                Some(json!({
                    "controls": ["organization-management", "information-handling"],
                    "assignments": [
                        {"control": "organization-management", "organization_id": self.op_org, "role": "accountable"},
                        {"control": "organization-management", "organization_id": a, "role": "responsible"},
                        {"control": "organization-management", "organization_id": b, "role": "responsible"},
                        {"control": "organization-management", "organization_id": c, "role": "responsible"},
                        {"control": "information-handling", "organization_id": b, "role": "responsible"},
                        {"control": "information-handling", "organization_id": a, "role": "consulted"}
                    ],
                    "classes": []
                })),
            )
            .await;
        assert_eq!(status, 200, "matrix: {body}");
        self.rules = self
            .create(
                &format!("/v1/platforms/{}/rules", self.platform),
                &operator,
                json!({"title": "Common rules of the Government Common Platform",
                       "rules": [
                           {"id": "R1", "title": "Incident reporting",
                            "text": "Report every security incident to the platform operator within one hour.",
                            "controls": []},
                           {"id": "R2", "title": "Access review",
                            "text": "Review the accounts of your linked system every quarter.",
                            "controls": []}]}),
            )
            .await;
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/rules/{}/propose", self.rules),
                &operator,
                None,
            )
            .await;
        assert_eq!(status, 200, "propose: {body}");
        // Demarcation learns the agencies' systems over NATS: every agency
        // is a party once it has.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, consensus) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/rules/{}/consensus", self.rules),
                    &operator,
                    None,
                )
                .await;
            if consensus["required"].as_array().map_or(0, Vec::len) >= 3 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "rules not proposed to the three agencies: {consensus}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(mut self) {
        self.sink.stop().await;
        if let Some(running) = self.running.take() {
            running.stop().await.expect("stop");
        }
    }
}
