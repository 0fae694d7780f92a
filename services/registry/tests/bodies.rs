//! Every request body of the registry API, read the way its handlers read
//! them (`renkei_web::json`) and then put through the domain checks the
//! handlers apply before touching the database: every body the published
//! schema allows parses; arbitrary and hostile objects parse or are refused
//! with a 4xx naming the field, never a panic (see `renkei_testkit::bodies`).

use renkei_registry::domain::{self, CategorySet, LinkKind, OrgKind, Ratings, SystemKind};
use renkei_registry::http::dto::{
    ChangeLifecycle, CreateLink, CreateOrganization, CreateSystem, UpdateOrganization, UpdateSystem,
};
use renkei_testkit::bodies::check_then;
use renkei_web::ApiError;
use renkei_web::error::invalid;

#[test]
fn an_organisation_body_parses_or_is_refused_naming_the_field() {
    check_then::<CreateOrganization>(|body| {
        domain::valid_name("name", &body.name, 200).map_err(invalid)?;
        OrgKind::parse("kind", &body.kind).map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn an_organisation_rename_parses_or_is_refused_naming_the_field() {
    check_then::<UpdateOrganization>(|body| {
        if let Some(field) = body.server_controlled_field() {
            return Err(ApiError::invalid(field, "is set by the server"));
        }
        if let Some(name) = &body.name {
            domain::valid_name("name", name, 200).map_err(invalid)?;
        }
        Ok(())
    });
}

#[test]
fn a_system_body_parses_or_is_refused_naming_the_field() {
    check_then::<CreateSystem>(|body| {
        domain::valid_name("name", &body.name, 200).map_err(invalid)?;
        SystemKind::parse("kind", &body.kind).map_err(invalid)?;
        Ratings::new(body.confidentiality, body.integrity, body.availability).map_err(invalid)?;
        domain::system::valid_description(body.description.as_deref().unwrap_or(""))
            .map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn a_system_update_parses_or_is_refused_naming_the_field() {
    check_then::<UpdateSystem>(|body| {
        if let Some(field) = body.server_controlled_field() {
            return Err(ApiError::invalid(field, "is set by the server"));
        }
        if let Some(name) = &body.name {
            domain::valid_name("name", name, 200).map_err(invalid)?;
        }
        if let Some(description) = &body.description {
            domain::system::valid_description(description).map_err(invalid)?;
        }
        Ratings::new(
            body.confidentiality.unwrap_or(1),
            body.integrity.unwrap_or(1),
            body.availability.unwrap_or(1),
        )
        .map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn a_lifecycle_change_parses_or_is_refused_naming_the_field() {
    check_then::<ChangeLifecycle>(|body| {
        domain::Lifecycle::parse("to", &body.to).map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn a_link_body_parses_or_is_refused_naming_the_field() {
    check_then::<CreateLink>(|body| {
        LinkKind::parse("kind", &body.kind).map_err(invalid)?;
        CategorySet::parse("propagates", &body.propagates).map_err(invalid)?;
        Ok(())
    });
}
