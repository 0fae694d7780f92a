//! HTTP conventions every Renkei service shares.
//!
//! - [`error`]: one error type, rendered as RFC 9457 problem details.
//! - [`identity`]: bearer tokens, roles and the identity extractor.
//! - [`json`]: a JSON body extractor whose errors name the field at fault,
//!   with backstop bounds on string lengths and nesting.
//! - [`limits`]: per-organisation rate limits (429 with `Retry-After`).
//! - `/metrics`: Prometheus text, with a request histogram by service,
//!   route and status.
//! - [`pagination`]: capped, cursor-based pages.
//! - [`server`]: the HTTP server shared by a service binary and `renkei up`:
//!   health, readiness, OpenAPI, request ids, body limits, rate limits and
//!   the log of refused requests (target `renkei::access`).

pub mod error;
pub mod idempotency;
pub mod identity;
pub mod json;
pub mod limits;
mod metrics;
pub mod openapi;
pub mod pagination;
pub mod platforms;
pub mod server;

pub use error::ApiError;
pub use identity::{Identity, Role, TokenIssuer, TokenVerifier};
pub use json::{OptionalJson, ValidJson};
pub use pagination::{Page, PageParams, Paginated};
pub use server::{
    Module, Readiness, Running, Runtime, Service, ServiceModule, nats_ready, run_alone, serve,
    spawn_alone,
};
