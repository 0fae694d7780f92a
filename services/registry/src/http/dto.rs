//! Request and response bodies of the registry API (snake_case JSON).

use chrono::{DateTime, Utc};
use renkei_web::openapi::{many_of, one_of};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{Array, Object};
use uuid::Uuid;

use crate::domain::{Category, Lifecycle, LinkKind, OrgKind, SystemKind};
use crate::store::{link, organization, system};

// The closed vocabularies of request fields, for the OpenAPI document.
fn org_kinds() -> Object {
    one_of(&OrgKind::ALL, OrgKind::as_str)
}
fn system_kinds() -> Object {
    one_of(&SystemKind::ALL, SystemKind::as_str)
}
fn lifecycles() -> Object {
    one_of(&Lifecycle::ALL, Lifecycle::as_str)
}
fn link_kinds() -> Object {
    one_of(&LinkKind::ALL, LinkKind::as_str)
}
fn categories() -> Array {
    many_of(&Category::ALL, Category::as_str)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// `platform_operator`, `government_agency`, `incorporated_administrative_agency`,
    /// `designated_corporation` or `central_body`.
    #[schema(schema_with = org_kinds)]
    pub kind: String,
    /// Required for incorporated administrative agencies and designated corporations.
    pub competent_org_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub competent_org_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<organization::Model> for Organization {
    fn from(m: organization::Model) -> Self {
        Organization {
            id: m.id,
            name: m.name,
            kind: m.kind,
            competent_org_id: m.competent_org_id,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSystem {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// `platform` or `linked`.
    #[schema(schema_with = system_kinds)]
    pub kind: String,
    pub owner_org_id: Uuid,
    /// Required for a linked system; absent for a platform.
    pub platform_id: Option<Uuid>,
    /// 1 to 3.
    #[schema(minimum = 1, maximum = 3)]
    pub confidentiality: i64,
    /// 1 to 2.
    #[schema(minimum = 1, maximum = 2)]
    pub integrity: i64,
    /// 1 to 2.
    #[schema(minimum = 1, maximum = 2)]
    pub availability: i64,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: Option<String>,
}

/// An organisation's name; the rest is server-controlled and refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    // Server-controlled: named here only to be refused with a clear message.
    #[schema(ignore)]
    pub id: Option<IgnoredAny>,
    #[schema(ignore)]
    pub kind: Option<IgnoredAny>,
    #[schema(ignore)]
    pub created_at: Option<IgnoredAny>,
}

impl UpdateOrganization {
    /// The first server-controlled field the body tried to set.
    pub fn server_controlled_field(&self) -> Option<&'static str> {
        [
            ("id", self.id.is_some()),
            ("kind", self.kind.is_some()),
            ("created_at", self.created_at.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }
}

/// Descriptive fields only; the rest is server-controlled and refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSystem {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 4000)]
    pub description: Option<String>,
    #[schema(minimum = 1, maximum = 3)]
    pub confidentiality: Option<i64>,
    #[schema(minimum = 1, maximum = 2)]
    pub integrity: Option<i64>,
    #[schema(minimum = 1, maximum = 2)]
    pub availability: Option<i64>,
    // Server-controlled: named here only to be refused with a clear message.
    #[schema(ignore)]
    pub id: Option<IgnoredAny>,
    #[schema(ignore)]
    pub kind: Option<IgnoredAny>,
    #[schema(ignore)]
    pub owner_org_id: Option<IgnoredAny>,
    #[schema(ignore)]
    pub platform_id: Option<IgnoredAny>,
    #[schema(ignore)]
    pub lifecycle: Option<IgnoredAny>,
    #[schema(ignore)]
    pub created_at: Option<IgnoredAny>,
    #[schema(ignore)]
    pub updated_at: Option<IgnoredAny>,
}

impl UpdateSystem {
    /// The first server-controlled field the body tried to set.
    pub fn server_controlled_field(&self) -> Option<&'static str> {
        [
            ("id", self.id.is_some()),
            ("kind", self.kind.is_some()),
            ("owner_org_id", self.owner_org_id.is_some()),
            ("platform_id", self.platform_id.is_some()),
            ("lifecycle", self.lifecycle.is_some()),
            ("created_at", self.created_at.is_some()),
            ("updated_at", self.updated_at.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct System {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub owner_org_id: Uuid,
    pub platform_id: Uuid,
    pub confidentiality: i16,
    pub integrity: i16,
    pub availability: i16,
    pub description: String,
    /// `pending_rules`, `active`, `suspended` or `retired`.
    pub lifecycle: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<system::Model> for System {
    fn from(m: system::Model) -> Self {
        System {
            id: m.id,
            name: m.name,
            kind: m.kind,
            owner_org_id: m.owner_org_id,
            platform_id: m.platform_id,
            confidentiality: m.confidentiality,
            integrity: m.integrity,
            availability: m.availability,
            description: m.description,
            lifecycle: m.lifecycle,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeLifecycle {
    /// The lifecycle state to move to.
    #[schema(schema_with = lifecycles)]
    pub to: String,
    /// Why, for the record.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    pub from_system_id: Uuid,
    pub to_system_id: Uuid,
    /// `network`, `data_flow`, `identity`, `shared_infrastructure` or `operations`.
    #[schema(schema_with = link_kinds)]
    pub kind: String,
    /// Incident categories that can travel over the link.
    #[schema(schema_with = categories)]
    pub propagates: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Link {
    pub id: Uuid,
    pub platform_id: Uuid,
    pub from_system_id: Uuid,
    pub to_system_id: Uuid,
    pub kind: String,
    pub propagates: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl From<link::Model> for Link {
    fn from(m: link::Model) -> Self {
        Link {
            id: m.id,
            platform_id: m.platform_id,
            from_system_id: m.from_system_id,
            to_system_id: m.to_system_id,
            kind: m.kind,
            propagates: crate::domain::CategorySet::from_mask(m.propagates).names(),
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Affected {
    pub system_id: Uuid,
    pub owner_org_id: Uuid,
    pub hops: u32,
    /// System ids from the origin to this system, both included.
    pub path: Vec<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlastRadius {
    pub origin: Uuid,
    pub category: String,
    /// Nearest first.
    pub affected: Vec<Affected>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SystemFilter {
    pub platform_id: Option<String>,
    pub owner_org_id: Option<String>,
    pub lifecycle: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LinkFilter {
    pub platform_id: Option<String>,
    /// Links from or to this system.
    pub system_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CategoryParam {
    /// The incident category.
    pub category: Option<String>,
}
