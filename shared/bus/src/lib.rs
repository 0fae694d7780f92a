//! Events and queries between Renkei services, over NATS, with nothing lost.
//!
//! - [`envelope`]: the one shape every event travels in.
//! - [`subjects`]: every subject, stream and query name, in one place.
//! - [`contracts`]: the payloads services exchange (their published language).
//! - [`outbox`]: events are written in the same transaction as the change they
//!   describe and relayed to JetStream with `Nats-Msg-Id` = event id.
//! - [`consumer`]: durable consumers that record handled event ids in the same
//!   transaction as their effect, and ack only after it commits.
//! - [`metrics`]: outbox backlog and consumer lag for `/metrics`.
//! - [`query`]: typed request/reply with timeouts.
//! - [`nats`]: connecting and declaring streams, safe at every start.
//! - [`service`]: what every service opens at start (database, streams, relay).
//! - [`faults`]: fault points the fault-injection suite arms (`FAILPOINTS`).

pub mod consumer;
pub mod contracts;
pub mod envelope;
pub mod faults;
pub mod headers;
pub mod metrics;
pub mod migrations;
pub mod nats;
pub mod outbox;
pub mod query;
pub mod registry_copy;
pub mod service;
pub mod subjects;
pub mod worker;

pub use consumer::{ConsumerSpec, EventHandler, HandlerError};
pub use envelope::{Envelope, Event};
pub use outbox::{Outbox, Relay};
pub use query::{Query, QueryError, QueryFailure};
