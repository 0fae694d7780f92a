//! Events and queries of the registry service.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Event;
use crate::query::Query;
use crate::subjects;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganizationRegistered {
    pub organization_id: Uuid,
    pub name: String,
    pub kind: String,
    pub competent_org_id: Option<Uuid>,
}
impl Event for OrganizationRegistered {
    const SUBJECT: &'static str = subjects::REGISTRY_ORGANIZATION_REGISTERED;
}

/// An organisation renamed: what it is now, and which fields changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganizationUpdated {
    pub organization_id: Uuid,
    pub name: String,
    pub kind: String,
    pub competent_org_id: Option<Uuid>,
    pub changed: Vec<String>,
}
impl Event for OrganizationUpdated {
    const SUBJECT: &'static str = subjects::REGISTRY_ORGANIZATION_UPDATED;
}

/// A system as other services need to know it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSnapshot {
    pub system_id: Uuid,
    pub name: String,
    pub kind: String,
    pub owner_org_id: Uuid,
    /// The platform a linked system links to; a platform's own id.
    pub platform_id: Uuid,
    pub lifecycle: String,
    pub confidentiality: i16,
    pub integrity: i16,
    pub availability: i16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemRegistered {
    pub system: SystemSnapshot,
}
impl Event for SystemRegistered {
    const SUBJECT: &'static str = subjects::REGISTRY_SYSTEM_REGISTERED;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemUpdated {
    pub system: SystemSnapshot,
    /// Names of the fields the update changed.
    pub changed: Vec<String>,
}
impl Event for SystemUpdated {
    const SUBJECT: &'static str = subjects::REGISTRY_SYSTEM_UPDATED;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemLifecycleChanged {
    pub system_id: Uuid,
    pub platform_id: Uuid,
    pub owner_org_id: Uuid,
    pub from: String,
    pub to: String,
}
impl Event for SystemLifecycleChanged {
    const SUBJECT: &'static str = subjects::REGISTRY_SYSTEM_LIFECYCLE_CHANGED;
}

/// A linked system entered service: its owner accepted the common rules in
/// force (first activation) or it came back from suspension. Published
/// beside the `lifecycle_changed` event of the same move, for consumers that
/// only care about systems coming into service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemActivated {
    pub system_id: Uuid,
    pub platform_id: Uuid,
    pub owner_org_id: Uuid,
    /// The lifecycle it left: `pending_rules` or `suspended`.
    pub from: String,
}
impl Event for SystemActivated {
    const SUBJECT: &'static str = subjects::REGISTRY_SYSTEM_ACTIVATED;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSnapshot {
    pub link_id: Uuid,
    pub platform_id: Uuid,
    pub from_system_id: Uuid,
    pub to_system_id: Uuid,
    pub kind: String,
    pub propagates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkAdded {
    pub link: LinkSnapshot,
}
impl Event for LinkAdded {
    const SUBJECT: &'static str = subjects::REGISTRY_LINK_ADDED;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkRemoved {
    pub link: LinkSnapshot,
}
impl Event for LinkRemoved {
    const SUBJECT: &'static str = subjects::REGISTRY_LINK_REMOVED;
}

/// Which systems can an incident of `category` reach from `system_id`?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlastRadiusQuery {
    pub system_id: Uuid,
    pub category: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffectedSystem {
    pub system_id: Uuid,
    pub owner_org_id: Uuid,
    pub hops: u32,
    /// System ids from the origin to this system, both included.
    pub path: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlastRadius {
    pub origin: Uuid,
    pub platform_id: Uuid,
    pub category: String,
    pub affected: Vec<AffectedSystem>,
}

impl Query for BlastRadiusQuery {
    const SUBJECT: &'static str = subjects::QUERY_REGISTRY_BLAST_RADIUS;
    type Response = BlastRadius;
}

/// One system as the registry knows it now (for services whose own copy,
/// kept from events, may not have caught up yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemQuery {
    pub system_id: Uuid,
}

impl Query for SystemQuery {
    const SUBJECT: &'static str = subjects::QUERY_REGISTRY_SYSTEM;
    type Response = SystemSnapshot;
}

/// Every system on a platform (the platform itself and its linked systems,
/// whatever their lifecycle), as the registry knows them now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformSystemsQuery {
    pub platform_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformSystems {
    pub platform_id: Uuid,
    pub systems: Vec<SystemSnapshot>,
}

impl Query for PlatformSystemsQuery {
    const SUBJECT: &'static str = subjects::QUERY_REGISTRY_PLATFORM_SYSTEMS;
    type Response = PlatformSystems;
}
