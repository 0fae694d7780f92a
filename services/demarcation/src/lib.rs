//! Responsibility demarcation and common rules: the control catalogue, the
//! RACI matrix of each platform with its gap analysis, and common-rules
//! versions that come into force only on full consensus.
//!
//! - [`domain`]: pure types and rules (matrix, gaps, versions, consensus,
//!   the exported document);
//! - [`consensus`]: the steps that change versions, each in one transaction
//!   with the events it causes;
//! - [`access`]: who may read and change what;
//! - [`store`]: tables, migrations, queries;
//! - [`events`]: what is consumed, answered and scheduled over NATS;
//! - [`http`]: the `/v1` API;
//! - [`service`]: wiring it all into a running service.

pub mod access;
pub mod consensus;
pub mod domain;
pub mod events;
pub mod http;
pub mod service;
pub mod store;

pub use service::{Demarcation, SERVICE};
