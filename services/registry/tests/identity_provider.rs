//! A production installation: the registry started with `profile =
//! production` and an identity provider (its JWKS in a file) serves the
//! provider's tokens and refuses development ones. The provider is played by
//! the test-only keys in `shared/web/tests/fixtures`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use renkei_settings::Profile;
use renkei_testkit::{NatsServer, TestDb};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

const ISSUER: &str = "https://idp.test.renkei.invalid/realms/gov";
const RSA_A: &[u8] = include_bytes!("../../../shared/web/tests/fixtures/test-only-rsa-a.key.pem");

/// An access token as a Keycloak-like provider issues it.
fn idp_token(sub: &str, org: Option<Uuid>, roles: &[&str]) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({
        "iss": ISSUER,
        "aud": ["renkei", "account"],
        "sub": sub,
        "realm_access": {"roles": roles.iter().map(|r| format!("renkei:{r}")).collect::<Vec<_>>()},
        "iat": now,
        "exp": now + 300,
    });
    if let Some(org) = org {
        claims["organization_id"] = org.to_string().into();
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-a".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(RSA_A).expect("test-only key"),
    )
    .expect("sign")
}

#[tokio::test]
async fn a_production_service_serves_identity_provider_tokens_and_refuses_development_ones() {
    renkei_testkit::init_tracing();
    let nats = NatsServer::start().await.expect("nats-server");
    let db = TestDb::fresh().await.expect("database");
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut settings = renkei_testkit::settings(&nats.url(), &db.url, data_dir.clone());
    settings.profile = Profile::Production;
    settings.auth.dev_key = String::new().into();
    let oidc = &mut settings.auth.oidc;
    oidc.issuer = ISSUER.into();
    oidc.audience = "renkei".into();
    oidc.jwks_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/web/tests/fixtures/test-only-jwks.json"
    )
    .into();
    oidc.organization_claim = "organization_id".into();
    oidc.roles_claim = "realm_access.roles".into();
    oidc.role_prefix = "renkei:".into();
    settings
        .validate()
        .expect("a valid production configuration");

    let running = renkei_registry::Registry::spawn(&settings, "registry-idp-test")
        .await
        .expect("registry");
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: String, body: Option<Value>| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move { renkei_testkit::call(&http, method, &url, Some(&token), body).await }
    };

    let admin = idp_token("root@idp", None, &["admin"]);
    let (status, org) = call(
        reqwest::Method::POST,
        "/v1/organizations",
        admin,
        Some(json!({"name": "Digital Agency", "kind": "government_agency"})),
    )
    .await;
    assert_eq!(status, 201, "{org}");
    let org_id: Uuid = org["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("organisation id");

    let manager = idp_token("tanaka@idp", Some(org_id), &["manager"]);
    let (status, body) = call(
        reqwest::Method::GET,
        &format!("/v1/organizations/{org_id}"),
        manager,
        None,
    )
    .await;
    assert_eq!(
        (status, &body["name"]),
        (200, &json!("Digital Agency")),
        "{body}"
    );

    let dev = renkei_testkit::token(Role::Admin, None);
    let (status, body) = call(reqwest::Method::GET, "/v1/organizations", dev, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("shared key")),
        "{body}"
    );

    assert!(
        !data_dir.join("dev-signing.key").exists(),
        "the production profile never creates a development key"
    );
    running.stop().await.expect("stop");
}
