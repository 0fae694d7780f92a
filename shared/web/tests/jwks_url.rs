//! The identity provider's keys fetched from a URL: a tiny local HTTP
//! server plays the provider's JWKS endpoint and counts its fetches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use renkei_settings::{OidcSettings, Settings};
use renkei_web::identity::{OidcVerifier, TokenVerifier};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Mutex;

const ISSUER: &str = "https://idp.test.renkei.invalid/realms/gov";
const JWKS: &str = include_str!("fixtures/test-only-jwks.json");
const RSA_A: &[u8] = include_bytes!("fixtures/test-only-rsa-a.key.pem");
const RSA_B: &[u8] = include_bytes!("fixtures/test-only-rsa-b.key.pem");

/// A JWKS endpoint that publishes the fixture keys named in `kids`.
struct Idp {
    url: String,
    kids: Arc<Mutex<Vec<&'static str>>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Idp {
    async fn start(kids: &[&'static str], delay: Duration) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/realms/gov/protocol/openid-connect/certs",
            listener.local_addr().expect("addr")
        );
        let kids = Arc::new(Mutex::new(kids.to_vec()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (published, counter) = (kids.clone(), fetches.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (published, counter) = (published.clone(), counter.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let body = jwks(&published.lock().await);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Idp {
            url,
            kids,
            fetches,
            task,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    async fn publish(&self, kids: &[&'static str]) {
        *self.kids.lock().await = kids.to_vec();
    }

    fn settings(&self, min_refresh_secs: u64) -> OidcSettings {
        let mut oidc = Settings::default().auth.oidc;
        oidc.issuer = ISSUER.into();
        oidc.audience = "renkei".into();
        oidc.jwks_url = self.url.clone();
        oidc.jwks_min_refresh_secs = min_refresh_secs;
        oidc
    }

    async fn verifier(&self, min_refresh_secs: u64) -> TokenVerifier {
        TokenVerifier::oidc(
            OidcVerifier::start(&self.settings(min_refresh_secs))
                .await
                .expect("verifier"),
        )
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn jwks(kids: &[&str]) -> String {
    let mut set: Value = serde_json::from_str(JWKS).expect("fixture");
    set["keys"]
        .as_array_mut()
        .expect("keys")
        .retain(|k| kids.contains(&k["kid"].as_str().unwrap_or_default()));
    set.to_string()
}

fn token(kid: &str, pem: &[u8]) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        &json!({
            "iss": ISSUER,
            "aud": "renkei",
            "sub": "alice",
            "org": uuid::Uuid::now_v7().to_string(),
            "roles": ["csirt"],
            "exp": now + 300,
        }),
        &EncodingKey::from_rsa_pem(pem).expect("test key"),
    )
    .expect("sign")
}

#[tokio::test]
async fn a_kid_not_in_the_set_fetches_the_keys_exactly_once_then_is_refused() {
    let idp = Idp::start(&["rsa-a"], Duration::ZERO).await;
    let verifier = idp.verifier(30).await;
    assert_eq!(idp.fetches(), 1, "keys loaded at start");
    verifier
        .verify(&token("rsa-a", RSA_A))
        .await
        .expect("a published key");
    assert_eq!(idp.fetches(), 1, "known keys are served from memory");

    let unknown = token("rsa-b", RSA_B);
    let refusal = verifier.verify(&unknown).await.expect_err("unknown kid");
    assert_eq!(
        refusal.detail,
        "the token is signed with a key the identity provider does not publish"
    );
    assert_eq!(idp.fetches(), 2, "one fetch for the unknown kid");

    // A flood of made-up key ids, some at once: no more fetches.
    let flood: Vec<String> = (0..32)
        .map(|i| token(&format!("random-{i}"), RSA_B))
        .collect();
    let results = futures::future::join_all(flood.iter().map(|t| verifier.verify(t))).await;
    assert!(results.iter().all(Result::is_err));
    assert_eq!(
        idp.fetches(),
        2,
        "jwks_min_refresh_secs keeps the provider from being hammered"
    );
}

#[tokio::test]
async fn concurrent_requests_for_an_unknown_kid_share_one_fetch() {
    let idp = Idp::start(&["rsa-a"], Duration::from_millis(200)).await;
    // No minimum interval: only the sharing keeps this to one fetch.
    let verifier = idp.verifier(0).await;
    assert_eq!(idp.fetches(), 1);
    idp.publish(&["rsa-a", "rsa-b"]).await;
    let tokens: Vec<String> = (0..16).map(|_| token("rsa-b", RSA_B)).collect();
    let results = futures::future::join_all(tokens.iter().map(|t| verifier.verify(t))).await;
    for result in results {
        result.expect("rsa-b is published now");
    }
    assert_eq!(idp.fetches(), 2, "sixteen requests, one fetch");
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch() {
    let idp = Idp::start(&["rsa-a"], Duration::ZERO).await;
    let verifier = idp.verifier(0).await;
    verifier
        .verify(&token("rsa-a", RSA_A))
        .await
        .expect("old key");
    idp.publish(&["rsa-a", "rsa-b"]).await;
    verifier
        .verify(&token("rsa-b", RSA_B))
        .await
        .expect("new key after a refetch");
    assert_eq!(idp.fetches(), 2);
    verifier
        .verify(&token("rsa-b", RSA_B))
        .await
        .expect("new key, from memory");
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn an_unreachable_identity_provider_answers_unavailable_without_being_hammered() {
    let idp = Idp::start(&["rsa-a"], Duration::ZERO).await;
    let mut settings = idp.settings(30);
    // A port where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    settings.jwks_url = format!("http://127.0.0.1:{port}/jwks.json");
    let verifier = TokenVerifier::oidc(
        OidcVerifier::start(&settings)
            .await
            .expect("a provider that is down does not stop the start"),
    );
    let oidc = verifier.oidc_verifier().expect("oidc");
    assert_eq!(oidc.jwks().fetches(), 1, "tried at start");
    for _ in 0..5 {
        let refusal = verifier
            .verify(&token("rsa-a", RSA_A))
            .await
            .expect_err("no keys");
        assert!(refusal.unavailable, "{refusal:?}");
    }
    assert_eq!(
        oidc.jwks().fetches(),
        2,
        "tried again by the first request, then at most once per jwks_min_refresh_secs"
    );
}
