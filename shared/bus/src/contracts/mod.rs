//! The payloads services exchange: events and query bodies. A service reads
//! another's data only through these.

pub mod demarcation;
pub mod registry;
