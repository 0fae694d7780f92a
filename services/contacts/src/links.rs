//! Acknowledgement links: `/ack/<token>`, where the token names one delivery
//! and carries a MAC over it, so nothing needs storing and a guessed or
//! altered token is refused. Whoever holds a message's link acknowledges for
//! the organisation it was sent to.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use uuid::Uuid;

/// Bytes of MAC kept in a token (128 bits).
const TAG: usize = 16;

#[derive(Clone)]
pub struct AckLinks {
    key: Vec<u8>,
    /// Where people's browsers reach the service, without a trailing slash.
    base_url: String,
}

impl AckLinks {
    /// `secret` is the installation's signing key; links get a key of their
    /// own derived from it.
    pub fn new(secret: &[u8], base_url: &str) -> AckLinks {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(b"renkei contacts acknowledgement links v1");
        AckLinks {
            key: mac.finalize().into_bytes().to_vec(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    fn tag(&self, delivery_id: Uuid) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(delivery_id.as_bytes());
        mac.finalize().into_bytes()[..TAG].to_vec()
    }

    pub fn token(&self, delivery_id: Uuid) -> String {
        let mut raw = delivery_id.as_bytes().to_vec();
        raw.extend(self.tag(delivery_id));
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn url(&self, delivery_id: Uuid) -> String {
        format!("{}/ack/{}", self.base_url, self.token(delivery_id))
    }

    /// The delivery a token names, if the token is genuine.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        let raw = URL_SAFE_NO_PAD.decode(token.as_bytes()).ok()?;
        if raw.len() != 16 + TAG {
            return None;
        }
        let id = Uuid::from_slice(&raw[..16]).ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(id.as_bytes());
        mac.verify_truncated_left(&raw[16..]).ok()?;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_delivery_and_an_altered_one_is_refused() {
        let links = AckLinks::new(b"installation key", "http://127.0.0.1:8080/");
        let id = Uuid::now_v7();
        let token = links.token(id);
        assert_eq!(links.verify(&token), Some(id));
        assert!(links.url(id).starts_with("http://127.0.0.1:8080/ack/"));
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            links.verify(&String::from_utf8(forged).expect("ascii")),
            None
        );
        assert_eq!(links.verify("not-a-token"), None);
        let other = AckLinks::new(b"another installation", "http://x");
        assert_eq!(other.verify(&token), None);
    }
}
