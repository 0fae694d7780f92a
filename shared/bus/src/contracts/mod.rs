//! The payloads services exchange: events and query bodies. A service reads
//! another's data only through these.

pub mod contacts;
pub mod demarcation;
pub mod emergency;
pub mod registry;
