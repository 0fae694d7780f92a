//! The linked-system registry: organisations, the common platform and the
//! systems linked to it, the links between them, and the blast radius of an
//! incident over those links.
//!
//! - [`domain`]: pure types and rules (lifecycle, ratings, the graph index);
//! - [`access`]: who may read and change what;
//! - [`store`]: tables, migrations, loading the index;
//! - [`events`]: what is published, consumed and answered over NATS;
//! - [`http`]: the `/v1` API;
//! - [`replica`]: this replica's index kept in step with the others';
//! - [`service`]: wiring it all into a running service;
//! - [`synthetic`]: a generated platform for the blast-radius benchmarks.

pub mod access;
pub mod domain;
pub mod events;
pub mod http;
pub mod replica;
pub mod service;
pub mod store;
pub mod synthetic;

pub use service::{Registry, SERVICE};
