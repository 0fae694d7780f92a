//! Per-organisation rate limits: a token bucket per organisation (GCRA, the
//! `governor` crate), checked by a middleware before any handler runs, so a
//! request over the limit costs a token check and a 429 — no database, no
//! NATS.
//!
//! - A verified caller counts against its organisation's bucket; an
//!   installation admin without one against a bucket of its own (`sub`).
//! - A request without a valid token counts against a bucket of its peer
//!   address (an IPv6 peer by its /64), with the same quota, so a token-less
//!   flood cannot starve the server; it still gets its 401 from the handler.
//!   Behind a reverse proxy every token-less request shares the proxy's
//!   bucket.
//! - `/healthz`, `/readyz` and `/metrics` are never limited; `/openapi.json` and the
//!   public acknowledgement pages (`/ack/{token}`) only by peer address.
//!
//! Over the limit: a 429 problem with `Retry-After` (whole seconds, at least
//! 1), logged at debug; at most one warning a minute per bucket. The 429 is
//! sent when the bucket next holds a token, at most [`MAX_HOLD`] later: a
//! client that retries at once on each connection is slowed to the bucket's
//! pace instead of spending the server's CPU as fast as it can answer.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use renkei_settings::RateLimitSettings;
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::Identity;

/// Whose bucket a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// A verified caller's organisation.
    Organization(Uuid),
    /// A verified caller without an organisation (an installation admin).
    Person(String),
    /// A request without a valid token, by the peer's address.
    Peer(IpAddr),
}

impl Bucket {
    /// The bucket of a verified caller.
    pub fn of(identity: &Identity) -> Bucket {
        match identity.org {
            Some(org) => Bucket::Organization(org),
            None => Bucket::Person(identity.sub.clone()),
        }
    }

    /// The bucket of an unauthenticated peer: its IPv4 address, or the /64
    /// of its IPv6 address (one host usually holds a whole /64).
    pub fn peer(addr: Option<IpAddr>) -> Bucket {
        let addr = match addr {
            None => IpAddr::from([0, 0, 0, 0]),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
            },
            Some(v4) => v4,
        };
        Bucket::Peer(addr)
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bucket::Organization(org) => write!(f, "organization {org}"),
            Bucket::Person(sub) => write!(f, "subject {sub}"),
            Bucket::Peer(addr) => write!(f, "peer {addr}"),
        }
    }
}

/// A request over its bucket's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When the bucket holds a token again, in whole seconds (at least 1),
    /// for `Retry-After`.
    pub retry_after_secs: u64,
    /// Until the bucket holds a token again.
    pub wait: Duration,
    /// The first refusal of this bucket in a minute: worth a warning.
    pub warn: bool,
}

type Keyed<C> =
    RateLimiter<Bucket, DefaultKeyedStateStore<Bucket>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The longest a refusal is held before it is sent.
pub const MAX_HOLD: Duration = Duration::from_millis(100);

/// How often the buckets are swept of keys that are full again.
const SWEEP_EVERY: u64 = 4096;

/// The buckets of one server.
pub struct RateLimits<C: Clock = DefaultClock> {
    /// `None`: limits disabled (`rate_limit.per_second = 0`).
    buckets: Option<Keyed<C>>,
    /// One token a minute per bucket: the over-limit warning.
    warnings: Keyed<C>,
    checks: AtomicU64,
}

impl RateLimits<DefaultClock> {
    pub fn new(settings: &RateLimitSettings) -> RateLimits<DefaultClock> {
        RateLimits::with_clock(settings, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Buckets on `clock` (tests pass a fake one).
    pub fn with_clock(settings: &RateLimitSettings, clock: C) -> RateLimits<C> {
        let buckets = NonZeroU32::new(settings.per_second).map(|rate| {
            let burst = NonZeroU32::new(settings.burst).unwrap_or(rate);
            RateLimiter::new(
                Quota::per_second(rate).allow_burst(burst),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            )
        });
        let warnings = RateLimiter::new(
            Quota::per_minute(NonZeroU32::MIN),
            DefaultKeyedStateStore::default(),
            clock,
        );
        RateLimits {
            buckets,
            warnings,
            checks: AtomicU64::new(0),
        }
    }

    /// Whether any request can be refused.
    pub fn enabled(&self) -> bool {
        self.buckets.is_some()
    }

    /// Takes a token from `bucket`, or says when there will be one.
    pub fn check(&self, bucket: &Bucket) -> Result<(), Refused> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Keys whose bucket is full again are indistinguishable from new
            // ones: dropping them bounds memory under a spray of addresses.
            buckets.retain_recent();
            buckets.shrink_to_fit();
            self.warnings.retain_recent();
            self.warnings.shrink_to_fit();
        }
        buckets.check_key(bucket).map_err(|not_until| {
            let wait = not_until.wait_time_from(buckets.clock().now());
            Refused {
                retry_after_secs: whole_seconds(wait),
                wait,
                warn: self.warnings.check_key(bucket).is_ok(),
            }
        })
    }

    /// How many buckets are held (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.buckets.as_ref().map_or(0, |b| b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rounded up, at least 1: `Retry-After` has whole seconds, and 0 would
/// invite an immediate retry.
fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Paths never limited (probes and the metrics scrape).
fn unlimited(path: &str) -> bool {
    // Console pages are not counted themselves (behind a proxy they would
    // all share one address's bucket): every API call a page makes is,
    // against the signed-in user's organisation.
    matches!(path, "/healthz" | "/readyz" | "/metrics")
        || path.starts_with("/console/")
        || path == "/console"
}

/// Paths limited by peer address only, whoever calls them.
fn by_peer_only(path: &str) -> bool {
    path == "/openapi.json" || path.starts_with("/ack/")
}

/// The middleware: counts the request against its bucket and answers 429
/// when that is empty, before the handler (and its database work) runs.
pub(crate) async fn limit_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limits = req.app_data::<web::Data<RateLimits>>().cloned();
    let Some(limits) = limits.filter(|l| l.enabled() && !unlimited(req.path())) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let peer = || Bucket::peer(req.peer_addr().map(|a| a.ip()));
    let bucket = if by_peer_only(req.path()) {
        peer()
    } else {
        match crate::identity::authenticate(req.request()).await {
            Ok(identity) => Bucket::of(&identity),
            Err(_) => peer(),
        }
    };
    match limits.check(&bucket) {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(refused) => {
            if refused.warn {
                tracing::warn!(
                    target: "renkei::access",
                    bucket = %bucket,
                    retry_after_secs = refused.retry_after_secs,
                    "over the rate limit (more refusals of it this minute: debug)"
                );
            } else {
                // The route pattern, never the path: a path can hold a
                // secret (the token of an acknowledgement link).
                tracing::debug!(
                    target: "renkei::access",
                    bucket = %bucket,
                    method = %req.method(),
                    route = req.match_pattern().as_deref().unwrap_or("(no route)"),
                    "over the rate limit"
                );
            }
            let error = ApiError::TooManyRequests {
                retry_after_secs: refused.retry_after_secs,
            };
            tokio::time::sleep(refused.wait.min(MAX_HOLD)).await;
            Ok(req.error_response(error).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limits(per_second: u32, burst: u32) -> (RateLimits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let settings = RateLimitSettings { per_second, burst };
        (RateLimits::with_clock(&settings, clock.clone()), clock)
    }

    fn org() -> Bucket {
        Bucket::Organization(Uuid::now_v7())
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_retry_after() {
        let (limits, _) = limits(20, 100);
        let a = org();
        for i in 0..100 {
            assert_eq!(limits.check(&a), Ok(()), "request {i} of the burst");
        }
        let refused = limits.check(&a).expect_err("the 101st at once");
        assert_eq!(refused.retry_after_secs, 1);
        assert_eq!(
            refused.wait,
            Duration::from_millis(50),
            "one token per 50 ms"
        );
        assert!(refused.warn, "the first refusal warns");
        let again = limits.check(&a).expect_err("still over");
        assert!(!again.warn, "later refusals within a minute do not warn");
    }

    #[test]
    fn the_bucket_refills_at_the_sustained_rate() {
        let (limits, clock) = limits(20, 100);
        let a = org();
        for _ in 0..100 {
            limits.check(&a).expect("burst");
        }
        limits.check(&a).expect_err("empty");
        clock.advance(Duration::from_millis(50));
        assert_eq!(limits.check(&a), Ok(()), "one token every 50 ms");
        limits.check(&a).expect_err("and only one");
        clock.advance(Duration::from_secs(5));
        for i in 0..100 {
            assert_eq!(limits.check(&a), Ok(()), "full again after 5 s: {i}");
        }
        limits.check(&a).expect_err("but never above the burst");
    }

    #[test]
    fn a_long_wait_is_rounded_up_to_whole_seconds() {
        let (limits, _) = limits(1, 1);
        let a = org();
        limits.check(&a).expect("one");
        assert_eq!(limits.check(&a).map_err(|r| r.retry_after_secs), Err(1));
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn one_organisations_flood_does_not_touch_anothers_bucket() {
        let (limits, _) = limits(20, 100);
        let (a, b) = (org(), org());
        for _ in 0..10_000 {
            let _ = limits.check(&a);
        }
        limits.check(&a).expect_err("a is over its limit");
        for i in 0..100 {
            assert_eq!(limits.check(&b), Ok(()), "b's full burst: {i}");
        }
        let admin = Bucket::Person("admin-1".into());
        assert_eq!(limits.check(&admin), Ok(()));
        assert_eq!(
            limits.check(&Bucket::peer(Some("192.0.2.1".parse().expect("ip")))),
            Ok(())
        );
    }

    #[test]
    fn a_per_second_of_zero_disables_the_limits() {
        let (limits, _) = limits(0, 100);
        assert!(!limits.enabled());
        let a = org();
        for _ in 0..10_000 {
            assert_eq!(limits.check(&a), Ok(()));
        }
        assert!(limits.is_empty());
    }

    #[test]
    fn ipv6_peers_share_their_64_and_mapped_ipv4_is_ipv4() {
        let one = Bucket::peer(Some("2001:db8:1:2::1".parse().expect("ip")));
        let other = Bucket::peer(Some("2001:db8:1:2:ffff::9".parse().expect("ip")));
        let elsewhere = Bucket::peer(Some("2001:db8:1:3::1".parse().expect("ip")));
        assert_eq!(one, other);
        assert_ne!(one, elsewhere);
        assert_eq!(
            Bucket::peer(Some("::ffff:192.0.2.7".parse().expect("ip"))),
            Bucket::peer(Some("192.0.2.7".parse().expect("ip")))
        );
    }

    #[test]
    fn buckets_that_are_full_again_are_swept() {
        let (limits, clock) = limits(20, 100);
        for i in 0..1000u32 {
            let _ = limits.check(&Bucket::peer(Some(IpAddr::from(i.to_be_bytes()))));
        }
        assert!(limits.len() >= 1000);
        clock.advance(Duration::from_secs(60));
        for _ in 0..SWEEP_EVERY {
            let _ = limits.check(&Bucket::Person("steady".into()));
        }
        assert!(limits.len() < 10, "{} buckets left", limits.len());
    }
}
