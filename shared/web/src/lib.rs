//! HTTP conventions every Renkei service shares.
//!
//! - [`error`]: one error type, rendered as RFC 9457 problem details.
//! - [`identity`]: bearer tokens, roles and the identity extractor.
//! - [`json`]: a JSON body extractor whose errors name the field at fault.
//! - [`pagination`]: capped, cursor-based pages.
//! - [`server`]: the HTTP server shared by a service binary and `renkei up`:
//!   health, readiness, OpenAPI, request ids, body limits.

pub mod error;
pub mod identity;
pub mod json;
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
