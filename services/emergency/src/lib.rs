//! Emergency procedures: an incident on one linked system, the organisations
//! it may spread to alerted within seconds, their acknowledgements, the
//! playbook's tasks with owners from the responsibility matrix,
//! coordination messages, advisories in ordinary times, reports to the
//! central body, the timeline and the post-incident review.
//!
//! - [`domain`]: incidents, TLP disclosure, playbooks, tasks, messages,
//!   advisories, reports, reviews (no HTTP, database or NATS types);
//! - [`assessment`]: the spread assessment (the registry's blast radius)
//!   and who is newly at risk;
//! - [`deadlines`]: the worker that re-assesses and escalates what is overdue;
//! - [`access`]: who may read and change an incident;
//! - [`store`]: tables, migrations, queries;
//! - [`events`]: what is consumed over NATS;
//! - [`http`]: the `/v1` API;
//! - [`service`]: wiring it all into a running service.

pub mod access;
pub mod assessment;
pub mod deadlines;
pub mod domain;
pub mod events;
pub mod http;
pub mod service;
pub mod store;

pub use service::{Emergency, SERVICE};
