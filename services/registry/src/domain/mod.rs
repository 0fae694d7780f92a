//! The registry's domain: organisations, systems and their lifecycle, links
//! and the incident categories they carry, and the graph that answers "where
//! can this incident spread?". No HTTP, database or NATS types here.

pub mod graph;
pub mod link;
pub mod organization;
pub mod system;

pub use graph::{GraphIndex, Reached, SystemNode};
pub use link::{Category, CategorySet, LinkKind};
pub use organization::OrgKind;
pub use system::{Lifecycle, Ratings, SystemKind};

pub(crate) use renkei_domain::parse_word;
pub use renkei_domain::{Invalid, valid_name};
