//! The emergency domain: what an incident is and how it moves, what each
//! organisation may see of it, playbooks and their tasks, coordination
//! messages, advisories, reports and the post-incident review. Free of
//! HTTP, database and NATS types.

pub mod coordination;
pub mod disclosure;
pub mod incident;
pub mod playbook;
pub mod report;
pub mod review;

pub use coordination::{MessageKind, Urgency, valid_advisory};
pub use disclosure::{Disclosure, Relation};
pub use incident::{Severity, Status, StatusRefused, Tlp};
pub use playbook::{PlaybookStep, TaskRefused, TaskState, valid_steps};
pub use renkei_domain::{Category, Invalid, parse_word, valid_name, valid_text};
pub use report::{ReportContent, ReportKind};
pub use review::{Review, ReviewAction};
