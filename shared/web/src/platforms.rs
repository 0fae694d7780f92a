//! Who may read and who operates a platform, the same way in every service
//! that keeps a copy of the registry (`renkei_bus::registry_copy`):
//!
//! - the platform's operator (an `operator` of its owner) and an admin
//!   operate it;
//! - its members (the operator's organisation, owners of systems on it)
//!   read it, and so do `central`, `auditor` and `admin`;
//! - to everyone else it does not exist (404).

use std::time::Duration;

use renkei_bus::registry_copy::{self, LookupError, system};
use renkei_store::Db;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::error::{ApiError, db};
use crate::identity::{Identity, Role};

/// A service's view of platforms: its registry copy, and the registry to
/// read through when an event has not arrived yet.
pub struct Platforms<'a> {
    pub db: &'a Db,
    pub nats: &'a async_nats::Client,
    /// How long a read-through query may take.
    pub timeout: Duration,
}

/// Whether `who` operates `platform`.
pub fn operates(who: &Identity, platform: &system::Model) -> bool {
    who.is_admin() || who.acts_for(platform.owner_org_id, Some(Role::Operator))
}

impl Platforms<'_> {
    /// The platform, from the copy or read through from the registry.
    pub async fn find(&self, platform_id: Uuid) -> Result<Option<system::Model>, ApiError> {
        registry_copy::find_platform(self.db, self.nats, platform_id, self.timeout)
            .await
            .map_err(|e| match e {
                LookupError::Db(e) => db(e),
                LookupError::Unavailable(why) => ApiError::Unavailable(why),
            })
    }

    /// Whether `who` may read `platform`.
    pub async fn readable_by(
        &self,
        who: &Identity,
        platform: &system::Model,
    ) -> Result<bool, ApiError> {
        if who.reads_everything() || operates(who, platform) {
            return Ok(true);
        }
        let Some(org) = who.org else {
            return Ok(false);
        };
        if org == platform.owner_org_id {
            return Ok(true);
        }
        let owned = system::Entity::find()
            .filter(system::Column::PlatformId.eq(platform.id))
            .filter(system::Column::OwnerOrgId.eq(org))
            .count(&self.db.read)
            .await
            .map_err(db)?;
        Ok(owned > 0)
    }

    /// The platform if `who` may read it, else a 404 that says nothing more
    /// (one hiding a platform that is there goes to the refusal log).
    pub async fn readable(
        &self,
        who: &Identity,
        platform_id: Uuid,
    ) -> Result<system::Model, ApiError> {
        match self.find(platform_id).await? {
            Some(p) if self.readable_by(who, &p).await? => Ok(p),
            Some(_) => Err(ApiError::hidden(
                "platform",
                "the caller is not a member of the platform",
            )),
            None => Err(ApiError::NotFound("platform")),
        }
    }

    /// The platform if `who` operates it: 404 when unreadable, 403 when only
    /// read.
    pub async fn operated(
        &self,
        who: &Identity,
        platform_id: Uuid,
        action: &str,
    ) -> Result<system::Model, ApiError> {
        let platform = self.readable(who, platform_id).await?;
        if operates(who, &platform) {
            Ok(platform)
        } else {
            Err(ApiError::Forbidden(format!(
                "only the platform operator {action}"
            )))
        }
    }
}
