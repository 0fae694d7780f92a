//! The identity provider's published signing keys (a JWKS), kept in memory.
//!
//! Keys come from a URL or a file. They are loaded at start, fetched again
//! when older than `jwks_refresh_secs` (by the first request that notices;
//! the others go on with the keys they have) and at once when a token names
//! a key id the set does not hold — at most once per `jwks_min_refresh_secs`,
//! so a flood of made-up key ids cannot hammer the provider, and requests
//! that wait meanwhile share that one fetch.
//!
//! Only asymmetric signing keys are taken: RSA (RS256), P-256 (ES256) and
//! Ed25519 (EdDSA). Each key's algorithm follows from its type and curve and
//! must agree with its `alg` when it names one; a symmetric (`oct`) key is
//! never taken from a JWKS.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// The largest JWKS document accepted from a provider.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where the keys are published.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// `https://idp/…/jwks.json`.
    Url(String),
    /// A file holding the set (air-gapped installations).
    File(PathBuf),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::Url(url) => f.write_str(url),
            JwksSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One usable signing key.
pub(crate) struct SigningKey {
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// The keys as of one fetch.
struct KeySet {
    keys: Vec<Arc<SigningKey>>,
    /// When these keys were fetched; `None` before the first good fetch.
    loaded_at: Option<Instant>,
    /// Bumped by every good fetch, so a request that waited for someone
    /// else's fetch can tell that it happened.
    generation: u64,
}

/// What a lookup found.
pub(crate) enum Lookup {
    Found(Arc<SigningKey>),
    /// The set holds this key id, but not for the token's algorithm.
    WrongAlgorithm(Algorithm),
    /// No such key; `refetched` tells whether the set was fetched again for it.
    Unknown {
        refetched: bool,
    },
    /// The token names no key id and the set holds more than one key.
    Ambiguous,
    /// No keys were ever loaded: the provider could not be reached.
    Unavailable,
}

/// The provider's keys, shared by every request.
pub struct Jwks {
    source: JwksSource,
    client: reqwest::Client,
    refresh: Duration,
    min_refresh: Duration,
    current: RwLock<Arc<KeySet>>,
    /// Held while fetching; holds the time of the last attempt (good or not).
    fetching: tokio::sync::Mutex<Option<Instant>>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("source", &self.source)
            .field("refresh", &self.refresh)
            .field("min_refresh", &self.min_refresh)
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// An empty set; [`Jwks::load`] fetches the keys.
    pub fn new(source: JwksSource, refresh: Duration, min_refresh: Duration) -> Jwks {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("renkei/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Jwks {
            source,
            client,
            refresh,
            min_refresh,
            current: RwLock::new(Arc::new(KeySet {
                keys: Vec::new(),
                loaded_at: None,
                generation: 0,
            })),
            fetching: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// Fetches the keys now (at start), whatever the limits say. This load
    /// does not count against `min_refresh`: a key id unknown right after
    /// the start (or a provider that was down at the start) is fetched once
    /// at once.
    pub async fn load(&self) -> anyhow::Result<usize> {
        let _fetching = self.fetching.lock().await;
        self.fetch().await
    }

    /// How many fetches were attempted (for tests and diagnostics).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Where the keys come from.
    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The key that verifies a token with header `alg` and `kid`.
    pub(crate) async fn find(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        let mut set = self.snapshot();
        if set.loaded_at.is_some_and(|at| at.elapsed() >= self.refresh) {
            // Stale: one request fetches, the others use the keys they have.
            if let Ok(mut last_attempt) = self.fetching.try_lock() {
                if self.snapshot().generation == set.generation
                    && self.may_fetch(*last_attempt)
                    && let Err(e) = self.fetch_locked(&mut last_attempt).await
                {
                    tracing::warn!(
                        target: "renkei::auth",
                        source = %self.source,
                        error = %format!("{e:#}"),
                        "identity provider keys could not be refreshed; keeping the ones held"
                    );
                }
                set = self.snapshot();
            }
        }
        let found = set.lookup(kid, alg);
        if !matches!(found, Lookup::Unknown { .. } | Lookup::Unavailable) {
            return found;
        }
        // An unknown key id: fetch at once, once for everyone waiting, and
        // not more often than `min_refresh`.
        let seen = set.generation;
        let mut last_attempt = self.fetching.lock().await;
        let now = self.snapshot();
        if now.generation != seen {
            return now.lookup(kid, alg);
        }
        if !self.may_fetch(*last_attempt) {
            return now.lookup(kid, alg);
        }
        if let Err(e) = self.fetch_locked(&mut last_attempt).await {
            tracing::warn!(
                target: "renkei::auth",
                source = %self.source,
                error = %format!("{e:#}"),
                "identity provider keys could not be fetched"
            );
            return now.lookup(kid, alg);
        }
        match self.snapshot().lookup(kid, alg) {
            Lookup::Unknown { .. } => Lookup::Unknown { refetched: true },
            other => other,
        }
    }

    fn may_fetch(&self, last_attempt: Option<Instant>) -> bool {
        last_attempt.is_none_or(|at| at.elapsed() >= self.min_refresh)
    }

    /// Fetches and installs the keys, noting the attempt; the caller holds
    /// `fetching`.
    async fn fetch_locked(&self, last_attempt: &mut Option<Instant>) -> anyhow::Result<usize> {
        *last_attempt = Some(Instant::now());
        self.fetch().await
    }

    /// Fetches and installs the keys; the caller holds `fetching`.
    async fn fetch(&self) -> anyhow::Result<usize> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let bytes = self.read_source().await?;
        let keys = parse(&bytes).with_context(|| format!("JWKS at {}", self.source))?;
        let count = keys.len();
        let mut current = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let generation = current.generation + 1;
        *current = Arc::new(KeySet {
            keys,
            loaded_at: Some(Instant::now()),
            generation,
        });
        drop(current);
        tracing::debug!(target: "renkei::auth", source = %self.source, keys = count, "identity provider keys loaded");
        Ok(count)
    }

    async fn read_source(&self) -> anyhow::Result<Vec<u8>> {
        match &self.source {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read {}", path.display())),
            JwksSource::Url(url) => {
                let mut response = self
                    .client
                    .get(url)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {url}"))?;
                let status = response.status();
                if !status.is_success() {
                    anyhow::bail!("{url} answered {status}");
                }
                if response
                    .content_length()
                    .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
                {
                    anyhow::bail!("{url} sent more than {MAX_JWKS_BYTES} bytes");
                }
                let mut body = Vec::new();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .with_context(|| format!("reading {url}"))?
                {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        anyhow::bail!("{url} sent more than {MAX_JWKS_BYTES} bytes");
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            }
        }
    }
}

impl KeySet {
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        if self.loaded_at.is_none() {
            return Lookup::Unavailable;
        }
        let candidates: Vec<&Arc<SigningKey>> = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None if self.keys.len() == 1 => self.keys.iter().collect(),
            None if self.keys.is_empty() => Vec::new(),
            None => return Lookup::Ambiguous,
        };
        if candidates.is_empty() {
            return Lookup::Unknown { refetched: false };
        }
        match candidates.iter().find(|k| k.alg == alg) {
            Some(key) => Lookup::Found(Arc::clone(key)),
            None => Lookup::WrongAlgorithm(candidates[0].alg),
        }
    }
}

/// The usable signing keys of a JWKS document. Keys this product cannot or
/// must not use (encryption keys, symmetric keys, other algorithms, keys it
/// cannot parse) are skipped, each with a debug line; a set left with no
/// usable key is an error.
pub(crate) fn parse(bytes: &[u8]) -> anyhow::Result<Vec<Arc<SigningKey>>> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet =
        serde_json::from_slice(bytes).context("not a JWKS (a JSON {\"keys\": […]})")?;
    let total = raw.keys.len();
    let mut keys = Vec::new();
    for value in raw.keys {
        let kid = value
            .get("kid")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_owned();
        match serde_json::from_value::<Jwk>(value)
            .map_err(|e| format!("not a key this product reads: {e}"))
            .and_then(|jwk| signing_key(&jwk))
        {
            Ok(key) => keys.push(Arc::new(key)),
            Err(why) => {
                tracing::debug!(target: "renkei::auth", kid = %kid, why = %why, "JWKS key skipped");
            }
        }
    }
    if keys.is_empty() {
        anyhow::bail!("none of its {total} keys is an RS256, ES256 or EdDSA signing key");
    }
    Ok(keys)
}

/// The key and its one algorithm, or why it is not taken.
fn signing_key(jwk: &Jwk) -> Result<SigningKey, String> {
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return Err("not a signing key (`use` is not `sig`)".into());
    }
    let (alg, named) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            return Err(format!(
                "EC curve {:?} is not accepted (P-256 only)",
                ec.curve
            ));
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            (Algorithm::EdDSA, KeyAlgorithm::EdDSA)
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            return Err(format!(
                "OKP curve {:?} is not accepted (Ed25519 only)",
                okp.curve
            ));
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys are never taken from a JWKS".into());
        }
    };
    if let Some(declared) = jwk.common.key_algorithm
        && declared != named
    {
        return Err(format!(
            "`alg` {declared} is not accepted for this key type (only {named})"
        ));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unreadable key: {e}"))?;
    Ok(SigningKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = include_str!("../../tests/fixtures/test-only-jwks.json");

    fn set_with(extra: serde_json::Value) -> Vec<u8> {
        let mut set: serde_json::Value = serde_json::from_str(SET).expect("fixture");
        set["keys"].as_array_mut().expect("keys").push(extra);
        serde_json::to_vec(&set).expect("json")
    }

    #[test]
    fn each_key_gets_the_algorithm_of_its_type_and_curve() {
        let keys = parse(SET.as_bytes()).expect("fixture parses");
        let algs: Vec<(Option<&str>, Algorithm)> =
            keys.iter().map(|k| (k.kid.as_deref(), k.alg)).collect();
        assert_eq!(
            algs,
            vec![
                (Some("rsa-a"), Algorithm::RS256),
                (Some("rsa-b"), Algorithm::RS256),
                (Some("ec-1"), Algorithm::ES256),
                (Some("ed-1"), Algorithm::EdDSA),
            ]
        );
    }

    #[test]
    fn symmetric_encryption_and_unknown_keys_are_skipped_not_fatal() {
        let bytes = set_with(serde_json::json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}));
        let bytes = {
            let mut set: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            let keys = set["keys"].as_array_mut().expect("keys");
            let mut enc = keys[0].clone();
            enc["kid"] = "enc-1".into();
            enc["use"] = "enc".into();
            enc["alg"] = "RSA-OAEP".into();
            keys.push(enc);
            keys.push(serde_json::json!({"kty": "OKP", "kid": "x", "crv": "X25519", "x": "AAAA"}));
            keys.push(serde_json::json!({"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"}));
            serde_json::to_vec(&set).expect("json")
        };
        let kids: Vec<String> = parse(&bytes)
            .expect("parses")
            .iter()
            .filter_map(|k| k.kid.clone())
            .collect();
        assert_eq!(kids, ["rsa-a", "rsa-b", "ec-1", "ed-1"]);
    }

    #[test]
    fn a_key_whose_alg_disagrees_with_its_type_is_skipped() {
        let mut set: serde_json::Value = serde_json::from_str(SET).expect("fixture");
        set["keys"][0]["alg"] = "ES256".into();
        set["keys"][1]["alg"] = "RS512".into();
        let kids: Vec<String> = parse(&serde_json::to_vec(&set).expect("json"))
            .expect("parses")
            .iter()
            .filter_map(|k| k.kid.clone())
            .collect();
        assert_eq!(kids, ["ec-1", "ed-1"]);
    }

    #[test]
    fn a_set_without_a_usable_key_is_an_error() {
        let err = parse(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("RS256, ES256 or EdDSA"), "{err}");
        assert!(parse(b"<html>").is_err());
    }
}
