//! A stand-in OpenID Connect provider on loopback, strict where the flow
//! must be: it hands out a code only with an S256 PKCE challenge, exchanges
//! the code once, only with the verifier that matches the challenge and the
//! same redirect URI, and signs the ID token (with the request's nonce)
//! and a Keycloak-like access token with the test-only RSA key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;
use uuid::Uuid;

const RSA_A: &[u8] = include_bytes!("../../shared/web/tests/fixtures/test-only-rsa-a.key.pem");
pub const JWKS: &str = include_str!("../../shared/web/tests/fixtures/test-only-jwks.json");
pub const CLIENT_ID: &str = "renkei-console";

/// Who signs in at the provider.
#[derive(Clone)]
pub struct Person {
    pub sub: String,
    pub org: Option<Uuid>,
    pub roles: Vec<String>,
}

struct Grant {
    challenge: String,
    redirect_uri: String,
    nonce: String,
}

#[derive(Default)]
struct Books {
    grants: HashMap<String, Grant>,
    /// Codes exchanged with the right verifier.
    exchanged: usize,
    /// Exchanges refused (bad verifier, reused code, other redirect).
    refused: usize,
}

pub struct Provider {
    pub url: String,
    books: Arc<Mutex<Books>>,
    handle: actix_web::dev::ServerHandle,
}

#[derive(Deserialize)]
struct Authorize {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    nonce: String,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    code_verifier: Option<String>,
}

fn sign(claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-a".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(RSA_A).expect("test-only key"),
    )
    .expect("sign")
}

impl Provider {
    pub async fn start(person: Person) -> Provider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let books: Arc<Mutex<Books>> = Arc::default();
        let (issuer, state) = (url.clone(), books.clone());
        let server = HttpServer::new(move || {
            let issuer = issuer.clone();
            let person = person.clone();
            App::new()
                .app_data(web::Data::new(state.clone()))
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to({
                        let issuer = issuer.clone();
                        move || {
                            let issuer = issuer.clone();
                            async move {
                                HttpResponse::Ok().json(json!({
                                    "issuer": issuer,
                                    "authorization_endpoint": format!("{issuer}/authorize"),
                                    "token_endpoint": format!("{issuer}/token"),
                                    "jwks_uri": format!("{issuer}/jwks"),
                                    "response_types_supported": ["code"],
                                    "subject_types_supported": ["public"],
                                    "id_token_signing_alg_values_supported": ["RS256"],
                                    "code_challenge_methods_supported": ["S256"],
                                }))
                            }
                        }
                    }),
                )
                .route(
                    "/jwks",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(JWKS)
                    }),
                )
                .route(
                    "/authorize",
                    web::get().to(
                        |q: web::Query<Authorize>, books: web::Data<Arc<Mutex<Books>>>| async move {
                            let pkce = q.code_challenge_method.as_deref() == Some("S256")
                                && q.code_challenge.as_ref().is_some_and(|c| c.len() >= 43);
                            if q.response_type != "code" || q.client_id != CLIENT_ID || !pkce {
                                return HttpResponse::BadRequest()
                                    .body("code flow with an S256 PKCE challenge only");
                            }
                            let code = Uuid::now_v7().simple().to_string();
                            books.lock().expect("books").grants.insert(
                                code.clone(),
                                Grant {
                                    challenge: q.code_challenge.clone().unwrap_or_default(),
                                    redirect_uri: q.redirect_uri.clone(),
                                    nonce: q.nonce.clone(),
                                },
                            );
                            let to = format!(
                                "{}?code={code}&state={}",
                                q.redirect_uri,
                                url::form_urlencoded::byte_serialize(q.state.as_bytes())
                                    .collect::<String>()
                            );
                            HttpResponse::Found()
                                .insert_header(("Location", to))
                                .finish()
                        },
                    ),
                )
                .route(
                    "/token",
                    web::post().to(
                        move |f: web::Form<TokenForm>, books: web::Data<Arc<Mutex<Books>>>| {
                            let (issuer, person) = (issuer.clone(), person.clone());
                            async move {
                                let mut books = books.lock().expect("books");
                                let grant = books.grants.remove(&f.code);
                                let verified = grant.as_ref().is_some_and(|g| {
                                    let sent = f.code_verifier.as_deref().unwrap_or_default();
                                    let digest = sha2::Sha256::digest(sent.as_bytes());
                                    let challenge =
                                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                                            .encode(digest);
                                    f.grant_type == "authorization_code"
                                        && challenge == g.challenge
                                        && f.redirect_uri == g.redirect_uri
                                });
                                let Some(grant) = grant.filter(|_| verified) else {
                                    books.refused += 1;
                                    return HttpResponse::BadRequest()
                                        .json(json!({"error": "invalid_grant"}));
                                };
                                books.exchanged += 1;
                                let now = jsonwebtoken::get_current_timestamp();
                                let id_token = sign(&json!({
                                    "iss": issuer, "aud": CLIENT_ID, "sub": person.sub,
                                    "iat": now, "exp": now + 300, "nonce": grant.nonce,
                                }));
                                let mut access = json!({
                                    "iss": issuer, "aud": ["renkei", "account"], "sub": person.sub,
                                    "iat": now, "exp": now + 300,
                                    "realm_access": {"roles": person.roles.iter()
                                        .map(|r| format!("renkei:{r}")).collect::<Vec<_>>()},
                                });
                                if let Some(org) = person.org {
                                    access["organization_id"] = org.to_string().into();
                                }
                                HttpResponse::Ok().json(json!({
                                    "access_token": sign(&access),
                                    "token_type": "Bearer",
                                    "expires_in": 300,
                                    "id_token": id_token,
                                }))
                            }
                        },
                    ),
                )
        })
        .listen(listener)
        .expect("listen")
        .workers(1)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Provider { url, books, handle }
    }

    /// (codes exchanged with the matching verifier, exchanges refused)
    pub fn exchanges(&self) -> (usize, usize) {
        let books = self.books.lock().expect("books");
        (books.exchanged, books.refused)
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}
