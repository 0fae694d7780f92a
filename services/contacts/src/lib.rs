//! Cooperation contacts: every organisation's contacts and escalation path,
//! the platform's cooperation map, and notifications that reach a person
//! (provably, across restarts) until someone acknowledges.
//!
//! - [`domain`]: contacts, channels, policies, the cooperation map, states,
//!   the wording of messages (no HTTP, database or NATS types);
//! - [`escalation`]: the steps that change notifications, each in one
//!   transaction with its events;
//! - [`delivery`]: the dispatcher (sends, retries) and the timer (steps,
//!   scheduled drills);
//! - [`channels`]: one adapter per kind of channel (webhook, email);
//! - [`links`]: acknowledgement links;
//! - [`drills`]: contact drills and their reports;
//! - [`access`]: who may read and change what;
//! - [`store`]: tables, migrations, queries;
//! - [`events`]: what is consumed over NATS;
//! - [`http`]: the `/v1` API and the `/ack` pages;
//! - [`service`]: wiring it all into a running service.

pub mod access;
pub mod channels;
pub mod delivery;
pub mod domain;
pub mod drills;
pub mod escalation;
pub mod events;
pub mod http;
pub mod links;
pub mod service;
pub mod store;

pub use service::{Contacts, SERVICE};
