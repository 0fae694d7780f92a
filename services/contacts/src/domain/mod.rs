//! The contacts domain: contacts and their channels, escalation policies,
//! the cooperation map, notification states and what messages say. No HTTP,
//! database or NATS types.

pub mod contact;
pub mod cooperation;
pub mod message;
pub mod notification;
pub mod policy;
pub mod tlp;

pub use contact::{Availability, Channel, Condition, ContactRole, Language};
pub use cooperation::{CooperationMap, Members};
pub use message::{Answer, Detail, Notice, ReachedSystem};
pub use notification::{DeliveryState, NotificationState, OrgState};
pub use policy::{Candidate, Policy, Position, Step, Target};
pub use tlp::Tlp;
