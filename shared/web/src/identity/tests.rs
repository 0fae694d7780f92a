//! Development tokens, the identity provider's tokens (with the test-only
//! keys in `shared/web/tests/fixtures`), and what a refusal logs.

use std::sync::Mutex;
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use renkei_settings::{OidcSettings, Profile, Settings};
use serde_json::{Value, json};

use super::*;

const ISSUER: &str = "https://idp.test.renkei.invalid/realms/gov";
const AUDIENCE: &str = "renkei";
const JWKS: &str = include_str!("../../tests/fixtures/test-only-jwks.json");
const RSA_A: &[u8] = include_bytes!("../../tests/fixtures/test-only-rsa-a.key.pem");
const RSA_B: &[u8] = include_bytes!("../../tests/fixtures/test-only-rsa-b.key.pem");
const RSA_A_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/test-only-rsa-a.pub.pem");
const EC: &[u8] = include_bytes!("../../tests/fixtures/test-only-ec-p256.key.pem");
const ED: &[u8] = include_bytes!("../../tests/fixtures/test-only-ed25519.key.pem");

fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).expect("a sane clock")
}

/// A JWKS file holding the fixture keys with these ids.
fn jwks_file(dir: &tempfile::TempDir, kids: &[&str]) -> std::path::PathBuf {
    let mut set: Value = serde_json::from_str(JWKS).expect("fixture");
    set["keys"]
        .as_array_mut()
        .expect("keys")
        .retain(|k| kids.contains(&k["kid"].as_str().unwrap_or_default()));
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::to_vec(&set).expect("json")).expect("write jwks");
    path
}

fn oidc_settings(jwks: &std::path::Path) -> OidcSettings {
    let mut oidc = Settings::default().auth.oidc;
    oidc.issuer = ISSUER.into();
    oidc.audience = AUDIENCE.into();
    oidc.jwks_file = jwks.display().to_string();
    oidc
}

async fn provider(settings: &OidcSettings) -> TokenVerifier {
    TokenVerifier::oidc(OidcVerifier::start(settings).await.expect("keys load"))
}

/// The usual claims of an access token for a manager of `org`.
fn claims(org: Uuid) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "org": org.to_string(),
        "roles": ["manager"],
        "iat": now(),
        "exp": now() + 300,
    })
}

fn sign_with(alg: Algorithm, kid: &str, pem: &[u8], claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        other => panic!("no test key for {other:?}"),
    }
    .expect("test key");
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

fn sign(claims: &Value) -> String {
    sign_with(Algorithm::RS256, "rsa-a", RSA_A, claims)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn detail(result: Result<Identity, Refusal>) -> String {
    let refusal = result.expect_err("refused");
    assert!(!refusal.unavailable, "{refusal:?}");
    refusal.detail
}

#[tokio::test]
async fn a_development_token_round_trips_and_a_foreign_key_is_refused() {
    let issuer = TokenIssuer::hs256(b"one key");
    let org = Uuid::now_v7();
    let token = issuer
        .issue("mgr-1", Some(org), &[Role::Manager], 60)
        .expect("token");
    let id = TokenVerifier::hs256(b"one key")
        .verify(&token)
        .await
        .expect("valid");
    assert_eq!(
        id,
        Identity {
            sub: "mgr-1".into(),
            org: Some(org),
            roles: vec![Role::Manager]
        }
    );
    let refused = TokenVerifier::hs256(b"other key").verify(&token).await;
    assert!(detail(refused).contains("signature does not verify"));
}

#[tokio::test]
async fn an_expired_development_token_is_refused() {
    let issuer = TokenIssuer::hs256(b"k");
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: "x".into(),
        org: None,
        roles: vec![Role::Admin],
        iat: now - 7200,
        exp: now - 3600,
    };
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &issuer.key).expect("sign");
    let refused = TokenVerifier::hs256(b"k").verify(&token).await;
    assert!(detail(refused).contains("expired"));
}

#[test]
fn the_dev_key_is_created_once_and_then_reused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = dev_key("", dir.path()).expect("create");
    let second = dev_key("", dir.path()).expect("read");
    assert_eq!(first, second);
    assert_eq!(first.len(), 32);
}

#[tokio::test]
async fn valid_rs256_es256_and_eddsa_tokens_from_the_identity_provider_pass() {
    let dir = tempfile::tempdir().expect("temp dir");
    let verifier = provider(&oidc_settings(&jwks_file(&dir, &["rsa-a", "ec-1", "ed-1"]))).await;
    let org = Uuid::now_v7();
    for (alg, kid, pem) in [
        (Algorithm::RS256, "rsa-a", RSA_A),
        (Algorithm::ES256, "ec-1", EC),
        (Algorithm::EdDSA, "ed-1", ED),
    ] {
        let id = verifier
            .verify(&sign_with(alg, kid, pem, &claims(org)))
            .await
            .unwrap_or_else(|r| panic!("{alg:?} refused: {r:?}"));
        assert_eq!(
            id,
            Identity {
                sub: "alice".into(),
                org: Some(org),
                roles: vec![Role::Manager]
            }
        );
    }
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let verifier = provider(&oidc_settings(&jwks_file(&dir, &["rsa-a"]))).await;
    let mut c = claims(Uuid::now_v7());
    c["iss"] = "https://evil.example/realms/gov".into();
    let refusal = verifier.verify(&sign(&c)).await.expect_err("refused");
    assert_eq!(
        refusal.detail,
        "the token was issued by another identity provider"
    );
    assert_eq!(refusal.iss(), Some("https://evil.example/realms/gov"));
    c["iss"] = json!([ISSUER, "https://evil.example"]);
    assert!(verifier.verify(&sign(&c)).await.is_err());
    c.as_object_mut().expect("object").remove("iss");
    assert!(detail(verifier.verify(&sign(&c)).await).contains("`iss`"));
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let verifier = provider(&oidc_settings(&jwks_file(&dir, &["rsa-a"]))).await;
    let mut c = claims(Uuid::now_v7());
    c["aud"] = "account".into();
    assert_eq!(
        detail(verifier.verify(&sign(&c)).await),
        "the token is meant for another audience"
    );
    c["aud"] = json!(["account", AUDIENCE]);
    verifier
        .verify(&sign(&c))
        .await
        .expect("one of several audiences is ours");
    c.as_object_mut().expect("object").remove("aud");
    assert!(detail(verifier.verify(&sign(&c)).await).contains("`aud`"));
}

#[tokio::test]
async fn a_token_expired_beyond_the_leeway_is_refused_and_within_it_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = oidc_settings(&jwks_file(&dir, &["rsa-a"]));
    assert_eq!(settings.leeway_secs, 30);
    let verifier = provider(&settings).await;
    let mut c = claims(Uuid::now_v7());
    c["exp"] = (now() - 10).into();
    verifier
        .verify(&sign(&c))
        .await
        .expect("10 s past expiry is within the leeway");
    c["exp"] = (now() - 60).into();
    assert_eq!(
        detail(verifier.verify(&sign(&c)).await),
        "the token has expired"
    );
    c.as_object_mut().expect("object").remove("exp");
    assert!(detail(verifier.verify(&sign(&c)).await).contains("`exp`"));
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let verifier = provider(&oidc_settings(&jwks_file(&dir, &["rsa-a"]))).await;
    let mut c = claims(Uuid::now_v7());
    c["nbf"] = (now() + 120).into();
    assert_eq!(
        detail(verifier.verify(&sign(&c)).await),
        "the token is not valid yet (nbf)"
    );
    c["nbf"] = (now() + 10).into();
    verifier
        .verify(&sign(&c))
        .await
        .expect("10 s early is within the leeway");
}

#[tokio::test]
async fn a_forged_signature_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let verifier = provider(&oidc_settings(&jwks_file(&dir, &["rsa-a"]))).await;
    // Signed with another RSA key, claiming to be rsa-a.
    let forged = sign_with(Algorithm::RS256, "rsa-a", RSA_B, &claims(Uuid::now_v7()));
    let refusal = verifier.verify(&forged).await.expect_err("refused");
    assert_eq!(refusal.detail, "the token's signature does not verify");
    assert_eq!(refusal.kid(), Some("rsa-a"));
    assert_eq!(refusal.sub(), Some("alice"));
}

#[tokio::test]
async fn a_changed_claim_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let verifier = provider(&oidc_settings(&jwks_file(&dir, &["rsa-a"]))).await;
    let c = claims(Uuid::now_v7());
    let token = sign(&c);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut changed = c.clone();
    changed["roles"] = json!(["admin"]);
    parts[1] = b64(&serde_json::to_vec(&changed).expect("json"));
    assert_eq!(
        detail(verifier.verify(&parts.join(".")).await),
        "the token's signature does not verify"
    );
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let oidc = provider(&oidc_settings(&jwks_file(&dir, &["rsa-a"]))).await;
    let both = provider(&oidc_settings(&jwks_file(&dir, &["rsa-a"])))
        .await
        .with_dev_key(b"dev");
    let header = b64(br#"{"alg":"none","typ":"JWT","kid":"rsa-a"}"#);
    let payload = b64(&serde_json::to_vec(&claims(Uuid::now_v7())).expect("json"));
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        for verifier in [&oidc, &both] {
            let refusal = verifier.verify(&token).await.expect_err("refused");
            assert!(!refusal.unavailable);
            assert!(
                refusal.detail.contains("algorithm is not accepted")
                    || refusal.detail.contains("not a JWT"),
                "{refusal:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_providers_public_key_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = oidc_settings(&jwks_file(&dir, &["rsa-a"]));
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-a".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims(Uuid::now_v7()),
        &EncodingKey::from_secret(RSA_A_PUBLIC),
    )
    .expect("sign");
    let production = provider(&settings).await;
    assert!(
        detail(production.verify(&confused).await).contains("shared key"),
        "production takes no HS256 token at all"
    );
    let development = provider(&settings).await.with_dev_key(b"the dev key");
    assert_eq!(
        detail(development.verify(&confused).await),
        "the token's signature does not verify",
        "in development an HS256 token is checked against the dev key only"
    );
}

#[tokio::test]
async fn a_token_whose_algorithm_is_not_its_keys_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let verifier = provider(&oidc_settings(&jwks_file(&dir, &["rsa-a", "ec-1"]))).await;
    let c = claims(Uuid::now_v7());
    // A real EC signature, but naming the RSA key.
    let refusal = verifier
        .verify(&sign_with(Algorithm::ES256, "rsa-a", EC, &c))
        .await
        .expect_err("refused");
    assert_eq!(
        refusal.detail,
        "the token's algorithm is not the one of its signing key"
    );
    assert!(refusal.reason.contains("ES256") && refusal.reason.contains("RS256"));
    // An RSA algorithm the product does not take, on the right key.
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some("rsa-a".into());
    let rs384 = jsonwebtoken::encode(&header, &c, &EncodingKey::from_rsa_pem(RSA_A).expect("key"))
        .expect("sign");
    assert!(detail(verifier.verify(&rs384).await).contains("algorithm is not accepted"));
}

#[tokio::test]
async fn a_kid_not_in_the_set_is_fetched_once_then_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = oidc_settings(&jwks_file(&dir, &["rsa-a"]));
    let verifier = provider(&settings).await;
    let jwks = verifier.oidc_verifier().expect("oidc").jwks();
    assert_eq!(jwks.fetches(), 1, "loaded at start");
    let token = sign_with(Algorithm::RS256, "rsa-b", RSA_B, &claims(Uuid::now_v7()));
    let refusal = verifier.verify(&token).await.expect_err("refused");
    assert_eq!(
        refusal.detail,
        "the token is signed with a key the identity provider does not publish"
    );
    assert!(refusal.reason.contains("after fetching"), "{refusal:?}");
    assert_eq!(jwks.fetches(), 2, "one fetch for the unknown kid");
    for _ in 0..5 {
        verifier.verify(&token).await.expect_err("still refused");
    }
    assert_eq!(
        jwks.fetches(),
        2,
        "not fetched again within jwks_min_refresh_secs"
    );
}

#[tokio::test]
async fn a_jwks_file_is_read_again_for_a_new_kid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = oidc_settings(&jwks_file(&dir, &["rsa-a"]));
    settings.jwks_min_refresh_secs = 0;
    let verifier = provider(&settings).await;
    let token = sign_with(Algorithm::RS256, "rsa-b", RSA_B, &claims(Uuid::now_v7()));
    verifier
        .verify(&token)
        .await
        .expect_err("rsa-b not published yet");
    jwks_file(&dir, &["rsa-a", "rsa-b"]);
    verifier
        .verify(&token)
        .await
        .expect("rsa-b accepted once the file publishes it");
}

#[tokio::test]
async fn keys_older_than_the_refresh_interval_are_fetched_again_so_a_withdrawn_key_stops_working() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = oidc_settings(&jwks_file(&dir, &["rsa-a", "ec-1"]));
    let oidc = OidcVerifier::new(
        &settings,
        Duration::from_millis(200),
        Duration::from_millis(0),
    );
    oidc.jwks().load().await.expect("load");
    let verifier = TokenVerifier::oidc(oidc);
    let token = sign(&claims(Uuid::now_v7()));
    jwks_file(&dir, &["ec-1"]);
    verifier
        .verify(&token)
        .await
        .expect("the cached key still holds");
    let jwks = verifier.oidc_verifier().expect("oidc").jwks();
    assert_eq!(jwks.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    verifier
        .verify(&token)
        .await
        .expect_err("withdrawn once the keys are refreshed");
    assert!(jwks.fetches() >= 2);
}

#[tokio::test]
async fn a_missing_jwks_file_stops_the_start_naming_the_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = oidc_settings(&dir.path().join("nowhere.json"));
    let err = OidcVerifier::start(&settings)
        .await
        .expect_err("no keys, no start");
    assert!(
        format!("{err:#}").contains("auth.oidc.jwks_file"),
        "{err:#}"
    );
}

#[tokio::test]
async fn keycloak_style_nested_claims_and_a_role_prefix_are_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = oidc_settings(&jwks_file(&dir, &["ed-1"]));
    settings.subject_claim = "preferred_username".into();
    settings.organization_claim = "renkei.organization".into();
    settings.roles_claim = "realm_access.roles".into();
    settings.role_prefix = "renkei-".into();
    let verifier = provider(&settings).await;
    let org = Uuid::now_v7();
    let token = |roles: Value| {
        sign_with(
            Algorithm::EdDSA,
            "ed-1",
            ED,
            &json!({
                "iss": ISSUER,
                "aud": [AUDIENCE, "account"],
                "sub": "f3c1a0de-0000-4000-8000-000000000001",
                "preferred_username": "tanaka",
                "renkei": {"organization": org.to_string()},
                "realm_access": {"roles": roles},
                "exp": now() + 300,
            }),
        )
    };
    let id = verifier
        .verify(&token(json!([
            "offline_access",
            "renkei-ciso",
            "renkei-csirt",
            "admin"
        ])))
        .await
        .expect("valid");
    assert_eq!(
        id,
        Identity {
            sub: "tanaka".into(),
            org: Some(org),
            roles: vec![Role::Ciso, Role::Csirt],
        },
        "`admin` without the prefix belongs to another application"
    );
    let refusal = verifier
        .verify(&token(json!(["admin", "uma_authorization"])))
        .await
        .expect_err("no Renkei role");
    assert!(refusal.detail.contains("no Renkei role"), "{refusal:?}");
    assert_eq!(refusal.sub(), Some("tanaka"));
}

#[tokio::test]
async fn development_with_an_identity_provider_accepts_both_and_production_only_the_providers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings {
        data_dir: dir.path().join("data"),
        ..Settings::default()
    };
    settings.auth.oidc = oidc_settings(&jwks_file(&dir, &["rsa-a"]));
    let org = Uuid::now_v7();
    let idp_token = sign(&claims(org));

    let development = TokenVerifier::from_settings(&settings)
        .await
        .expect("development");
    let dev_token = dev_issuer(&settings)
        .expect("development mints tokens")
        .issue("dev-user", Some(org), &[Role::Operator], 60)
        .expect("token");
    assert!(development.accepts_development_tokens());
    development.verify(&dev_token).await.expect("dev token");
    development.verify(&idp_token).await.expect("idp token");

    let production_dir = dir.path().join("production");
    settings.profile = Profile::Production;
    settings.data_dir = production_dir.clone();
    let production = TokenVerifier::from_settings(&settings)
        .await
        .expect("production");
    assert!(!production.accepts_development_tokens());
    production.verify(&idp_token).await.expect("idp token");
    assert!(detail(production.verify(&dev_token).await).contains("shared key"));
    let err = dev_issuer(&settings)
        .err()
        .expect("production mints no development token");
    assert!(err.to_string().contains("production profile"), "{err}");
    assert!(
        !production_dir.join("dev-signing.key").exists(),
        "the production profile never creates a development key"
    );
}

#[tokio::test]
async fn development_without_an_identity_provider_refuses_provider_tokens_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let verifier = TokenVerifier::hs256(b"dev");
    jwks_file(&dir, &["rsa-a"]);
    assert_eq!(
        detail(verifier.verify(&sign(&claims(Uuid::now_v7()))).await),
        "this installation accepts only development tokens (renkei token)"
    );
    assert_eq!(
        detail(verifier.verify("not-a-token").await),
        "the bearer token is not a JWT"
    );
}

/// Log lines written while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends `request` through the server's layers (the rate limits, which
/// authenticate first, and the refusal log) to a route `route` whose handler
/// needs an identity: the status and every log line written meanwhile.
async fn through_the_server(
    request: actix_web::test::TestRequest,
    verifier: Arc<TokenVerifier>,
    route: &str,
) -> (u16, String) {
    use actix_web::middleware::from_fn;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let limits = crate::limits::RateLimits::new(&renkei_settings::RateLimitSettings {
        per_second: 1000,
        burst: 1000,
    });
    let app = actix_web::test::init_service(
        actix_web::App::new()
            .app_data(web::Data::new(verifier))
            .app_data(web::Data::new(limits))
            .wrap(from_fn(crate::limits::limit_requests))
            .wrap(from_fn(crate::server::trace_request))
            .route(
                route,
                web::to(|_: Identity| async { actix_web::HttpResponse::Ok().finish() }),
            ),
    )
    .await;
    let status = actix_web::test::call_service(&app, request.to_request())
        .await
        .status()
        .as_u16();
    let text = String::from_utf8(logs.0.lock().expect("log buffer").clone()).expect("utf-8");
    (status, text)
}

#[tokio::test]
async fn a_refusal_is_logged_with_route_reason_and_claims_but_never_the_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let verifier = Arc::new(provider(&oidc_settings(&jwks_file(&dir, &["rsa-a"]))).await);
    let forged = sign_with(Algorithm::RS256, "rsa-a", RSA_B, &claims(Uuid::now_v7()));
    let request = || {
        actix_web::test::TestRequest::get()
            .uri("/v1/systems/42")
            .insert_header(("Authorization", format!("Bearer {forged}")))
    };
    let req = request()
        .app_data(web::Data::new(verifier.clone()))
        .to_http_request();
    let err = authenticate(&req).await.expect_err("refused");
    assert!(matches!(err, ApiError::Unauthenticated(_)));
    let again = authenticate(&req).await.expect_err("still refused");
    assert_eq!(err.to_string(), again.to_string());

    // The rate limits authenticate, then the handler's extractor: one line.
    let (status, text) = through_the_server(request(), verifier, "/v1/systems/42").await;
    assert_eq!(status, 401);
    let refusals: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(refusals.len(), 1, "logged once per request:\n{text}");
    assert!(refusals[0].contains("request refused"), "{text}");
    let line = refusals[0];
    for expected in [
        "WARN",
        "renkei::access",
        "/v1/systems/42",
        "InvalidSignature",
        "kid=\"rsa-a\"",
        "claimed_sub=\"alice\"",
        ISSUER,
        "status=401",
    ] {
        assert!(line.contains(expected), "`{expected}` missing from {line}");
    }
    let signature = forged.rsplit('.').next().expect("signature");
    assert!(!text.contains(&forged), "the token was logged:\n{text}");
    assert!(
        !text.contains(signature),
        "the signature was logged:\n{text}"
    );
    assert!(
        !err.to_string().contains(signature),
        "the answer carries the signature"
    );
}

#[tokio::test]
async fn a_request_without_a_token_is_refused_and_logged() {
    let verifier = Arc::new(TokenVerifier::hs256(b"k"));
    let request = || actix_web::test::TestRequest::post().uri("/v1/organisations");
    let req = request()
        .app_data(web::Data::new(verifier.clone()))
        .to_http_request();
    let err = authenticate(&req).await.expect_err("refused");
    assert_eq!(
        err.to_string(),
        "an Authorization: Bearer token is required"
    );
    let (status, text) = through_the_server(request(), verifier, "/v1/organisations").await;
    assert_eq!(status, 401);
    assert!(
        text.contains("no Authorization header") && text.contains("/v1/organisations"),
        "{text}"
    );
}

#[test]
fn processes_creating_the_key_file_at_once_all_get_the_same_key() {
    let dir = tempfile::tempdir().expect("dir");
    let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| key_file(dir.path(), "race.key")))
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("thread").expect("a key, never an error"))
            .collect()
    });
    assert!(
        keys.iter().all(|k| k.len() == 32 && *k == keys[0]),
        "one key"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files, ["race.key"], "no drafts left behind");
}
