//! Who may read and change what in the registry.
//!
//! - `admin` manages organisations and may do anything here;
//! - the platform operator (`operator` of the platform's owner) registers
//!   linked systems and links on its platform and moves their lifecycle;
//! - a linked system's owner (`manager`) edits its descriptive fields;
//! - members of a platform (its operator, owners of systems on it) read its
//!   systems and links; `central` and `auditor` read everything;
//! - to everyone else an object does not exist (404).

use renkei_web::{ApiError, Identity, Role};
use uuid::Uuid;

use crate::domain::{GraphIndex, SystemNode};

/// Reads of a platform's systems and links.
pub fn can_read_platform(who: &Identity, index: &GraphIndex, platform: Uuid) -> bool {
    who.reads_everything() || who.org.is_some_and(|org| index.is_member(org, platform))
}

/// Registering systems and links on `platform`, moving lifecycles.
pub fn operates_platform(who: &Identity, index: &GraphIndex, platform: Uuid) -> bool {
    who.is_admin()
        || index
            .system(platform)
            .is_some_and(|p| who.acts_for(p.owner_org_id, Some(Role::Operator)))
}

/// The system if `who` may read it, else a 404 that says nothing more.
pub fn readable(who: &Identity, index: &GraphIndex, system: Uuid) -> Result<SystemNode, ApiError> {
    match index.system(system) {
        Some(node) if can_read_platform(who, index, node.platform_id) => Ok(*node),
        _ => Err(ApiError::NotFound("system")),
    }
}

/// Editing a system's descriptive fields: its owner's manager, or the
/// platform operator.
pub fn can_describe(who: &Identity, index: &GraphIndex, node: &SystemNode) -> bool {
    operates_platform(who, index, node.platform_id)
        || who.acts_for(node.owner_org_id, Some(Role::Manager))
}
