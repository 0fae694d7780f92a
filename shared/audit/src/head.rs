//! Signed chain heads: `{service, seq, hash, at}` signed with the
//! installation's Ed25519 key, published for every organisation to keep,
//! and checked by the verifier. Pure: no NATS or database types.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::chain::{self, Problem};

/// A chain head as published on `audit.head.<service>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    /// registry, demarcation, contacts or emergency.
    pub service: String,
    /// The number of the last entry when it was signed.
    pub seq: i64,
    /// That entry's hash (hex SHA-256).
    pub hash: String,
    /// When it was signed (whole microseconds).
    pub at: DateTime<Utc>,
    /// The Ed25519 public key that signed it (hex), for convenience: a
    /// verifier trusts the key it was given, never this one.
    pub public_key: String,
    /// Ed25519 signature (hex) of the head's canonical bytes.
    pub signature: String,
}

/// The bytes that are signed.
fn message(service: &str, seq: i64, hash: &str, at: DateTime<Utc>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"renkei.audit.head.v1\n");
    for text in [service, hash] {
        out.extend_from_slice(&(text.len() as u64).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&at.timestamp_micros().to_be_bytes());
    out
}

/// A signing key from its 32-byte seed.
pub fn signing_key(seed: &[u8]) -> Result<SigningKey, String> {
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| format!("an Ed25519 seed is 32 bytes, not {}", seed.len()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A public key from hex.
pub fn public_key(hex_text: &str) -> Result<VerifyingKey, String> {
    let bytes = hex::decode(hex_text.trim()).map_err(|e| format!("not hex: {e}"))?;
    let bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("an Ed25519 public key is 32 bytes, not {}", bytes.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

/// A public key as hex.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

impl SignedHead {
    /// Signs `service`'s head `(seq, hash)` as of `at`.
    pub fn sign(
        key: &SigningKey,
        service: &str,
        seq: i64,
        hash: &str,
        at: DateTime<Utc>,
    ) -> SignedHead {
        let at = chain::timestamp(at);
        let signature = key.sign(&message(service, seq, hash, at));
        SignedHead {
            service: service.to_owned(),
            seq,
            hash: hash.to_owned(),
            at,
            public_key: public_key_hex(&key.verifying_key()),
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Checks the signature against the trusted key; `Err` says why not.
    pub fn verify(&self, trusted: &VerifyingKey) -> Result<(), String> {
        if !self
            .public_key
            .eq_ignore_ascii_case(&public_key_hex(trusted))
        {
            return Err(format!(
                "is signed by another key ({}), not the installation's",
                self.public_key
            ));
        }
        let bytes = hex::decode(&self.signature).map_err(|_| "has a signature that is not hex")?;
        let signature =
            Signature::from_slice(&bytes).map_err(|_| "has a malformed signature".to_owned())?;
        trusted
            .verify_strict(
                &message(&self.service, self.seq, &self.hash, self.at),
                &signature,
            )
            .map_err(|_| {
                "has a signature that does not match its content (forged or altered)".into()
            })
    }
}

/// Heads from a file: JSON lines, a JSON array, or the `{"items": […]}`
/// that `GET /v1/audit/heads` answers.
pub fn parse_heads(text: &str) -> Result<Vec<SignedHead>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed)
            .map_err(|e| format!("not a JSON array of heads: {e}"));
    }
    if trimmed.starts_with('{')
        && let Ok(page) = serde_json::from_str::<serde_json::Value>(trimmed)
        && let Some(items) = page.get("items")
    {
        return serde_json::from_value(items.clone())
            .map_err(|e| format!("`items` is not a list of heads: {e}"));
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| format!("line {}: not a head: {e}", i + 1))
        })
        .collect()
}

/// `service`'s heads among `heads`, each checked against the trusted key
/// it names (an installation whose services were given different keys
/// trusts each of them): the `(seq, hash)` pairs to hold the chain to, or
/// the first forged one.
pub fn trusted_heads(
    service: &str,
    heads: &[SignedHead],
    trusted: &[VerifyingKey],
) -> Result<Vec<(i64, String)>, Problem> {
    let mut out = Vec::new();
    for head in heads.iter().filter(|h| h.service == service) {
        let checked = match trusted
            .iter()
            .find(|k| head.public_key.eq_ignore_ascii_case(&public_key_hex(k)))
        {
            Some(key) => head.verify(key),
            None => Err(format!(
                "is signed by another key ({}), not one of the installation's",
                head.public_key
            )),
        };
        checked.map_err(|reason| Problem::ForgedHead {
            seq: head.seq,
            reason,
        })?;
        out.push((head.seq, head.hash.clone()));
    }
    // Two signed heads for one number must agree.
    out.sort();
    out.dedup();
    if let Some(pair) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Problem::ForgedHead {
            seq: pair[0].0,
            reason: "has two different signed hashes".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32])
    }

    #[test]
    fn a_signed_head_verifies_after_a_json_round_trip() {
        let k = key(7);
        let head = SignedHead::sign(&k, "registry", 42, &"ab".repeat(32), Utc::now());
        let text = serde_json::to_string(&head).expect("json");
        let back: SignedHead = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, head);
        back.verify(&k.verifying_key()).expect("valid");
        assert_eq!(public_key(&head.public_key), Ok(k.verifying_key()));
    }

    #[test]
    fn an_altered_head_is_refused() {
        let k = key(7);
        let head = SignedHead::sign(&k, "registry", 42, &"ab".repeat(32), Utc::now());
        let trusted = k.verifying_key();
        let mut moved = head.clone();
        moved.seq = 41;
        assert!(moved.verify(&trusted).is_err());
        let mut rehashed = head.clone();
        rehashed.hash = "cd".repeat(32);
        assert!(rehashed.verify(&trusted).is_err());
        let mut other_service = head.clone();
        other_service.service = "contacts".into();
        assert!(other_service.verify(&trusted).is_err());
        let mut later = head.clone();
        later.at += chrono::Duration::seconds(1);
        assert!(later.verify(&trusted).is_err());
        let mut garbage = head;
        garbage.signature = "zz".into();
        assert!(garbage.verify(&trusted).is_err());
    }

    #[test]
    fn a_head_forged_with_another_key_is_refused_even_if_it_names_that_key() {
        let forger = key(9);
        let forged = SignedHead::sign(&forger, "registry", 42, &"ab".repeat(32), Utc::now());
        let err = forged
            .verify(&key(7).verifying_key())
            .expect_err("another key");
        assert!(err.contains("another key"), "{err}");
        // Claiming the trusted key does not help either.
        let mut claiming = forged;
        claiming.public_key = public_key_hex(&key(7).verifying_key());
        let err = claiming
            .verify(&key(7).verifying_key())
            .expect_err("bad signature");
        assert!(err.contains("forged or altered"), "{err}");
    }

    #[test]
    fn heads_are_read_as_json_lines_an_array_or_a_page() {
        let k = key(1);
        let heads = vec![
            SignedHead::sign(&k, "registry", 1, &"01".repeat(32), Utc::now()),
            SignedHead::sign(&k, "contacts", 2, &"02".repeat(32), Utc::now()),
        ];
        let lines = heads
            .iter()
            .map(|h| serde_json::to_string(h).expect("json"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(parse_heads(&format!("{lines}\n\n")), Ok(heads.clone()));
        let array = serde_json::to_string(&heads).expect("json");
        assert_eq!(parse_heads(&array), Ok(heads.clone()));
        let page = serde_json::json!({ "items": heads }).to_string();
        assert_eq!(parse_heads(&page), Ok(heads));
        let err = parse_heads("{\"service\": 1}\n").expect_err("not a head");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn only_the_services_own_heads_are_held_to_and_a_forged_one_is_named() {
        let k = key(3);
        let trusted = k.verifying_key();
        let heads = vec![
            SignedHead::sign(&k, "registry", 3, &"03".repeat(32), Utc::now()),
            SignedHead::sign(&k, "contacts", 9, &"09".repeat(32), Utc::now()),
            SignedHead::sign(&k, "registry", 3, &"03".repeat(32), Utc::now()),
        ];
        assert_eq!(
            trusted_heads("registry", &heads, &[trusted]),
            Ok(vec![(3, "03".repeat(32))])
        );
        let mut forged = heads.clone();
        forged[2].hash = "ff".repeat(32);
        let problem = trusted_heads("registry", &forged, &[trusted]).expect_err("forged");
        assert!(
            matches!(problem, Problem::ForgedHead { seq: 3, .. }),
            "{problem}"
        );
        let mut twice = heads;
        twice.push(SignedHead::sign(
            &k,
            "registry",
            3,
            &"04".repeat(32),
            Utc::now(),
        ));
        assert!(trusted_heads("registry", &twice, &[trusted]).is_err());
        // A key the verifier was not given is not trusted, another given one is.
        let other = SigningKey::from_bytes(&[4; 32]);
        let by_other = vec![SignedHead::sign(
            &other,
            "registry",
            3,
            &"03".repeat(32),
            Utc::now(),
        )];
        assert!(trusted_heads("registry", &by_other, &[trusted]).is_err());
        assert_eq!(
            trusted_heads("registry", &by_other, &[trusted, other.verifying_key()]),
            Ok(vec![(3, "03".repeat(32))])
        );
    }
}
