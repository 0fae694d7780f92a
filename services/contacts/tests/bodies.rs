//! Every request body of the contacts API, read the way its handlers read
//! them (`renkei_web::json`) and then put through the domain checks the
//! handlers apply before touching the database: every body the published
//! schema allows parses; arbitrary and hostile objects parse or are refused
//! with a 4xx naming the field, never a panic (see `renkei_testkit::bodies`).

use renkei_contacts::domain::contact::{parse_time_zone, valid_channels, valid_contact_name};
use renkei_contacts::domain::{Availability, Channel, ContactRole, Language};
use renkei_contacts::http::dto::{
    AckBody, ChannelBody, CreateContact, CreateDrill, PutCooperationMap, PutPolicy, UpdateContact,
};
use renkei_domain::Invalid;
use renkei_testkit::bodies::{check, check_then};
use renkei_web::error::invalid;

fn channels(bodies: &[ChannelBody]) -> Result<Vec<Channel>, Invalid> {
    let channels = bodies
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Channel::new(
                &format!("channels[{i}]"),
                &c.kind,
                c.url.as_deref(),
                c.secret.as_deref(),
                c.address.as_deref(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    valid_channels(channels)
}

#[test]
fn a_contact_body_parses_or_is_refused_naming_the_field() {
    check_then::<CreateContact>(|body| {
        valid_contact_name(&body.name).map_err(invalid)?;
        ContactRole::parse("role", &body.role).map_err(invalid)?;
        Availability::parse("availability", &body.availability).map_err(invalid)?;
        channels(&body.channels).map_err(invalid)?;
        parse_time_zone(body.time_zone.as_deref().unwrap_or("Asia/Tokyo")).map_err(invalid)?;
        Language::parse("language", body.language.as_deref().unwrap_or("ja")).map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn a_contact_update_parses_or_is_refused_naming_the_field() {
    check_then::<UpdateContact>(|body| {
        if let Some(name) = &body.name {
            valid_contact_name(name).map_err(invalid)?;
        }
        if let Some(role) = &body.role {
            ContactRole::parse("role", role).map_err(invalid)?;
        }
        if let Some(availability) = &body.availability {
            Availability::parse("availability", availability).map_err(invalid)?;
        }
        if let Some(list) = &body.channels {
            channels(list).map_err(invalid)?;
        }
        if let Some(zone) = &body.time_zone {
            parse_time_zone(zone).map_err(invalid)?;
        }
        if let Some(language) = &body.language {
            Language::parse("language", language).map_err(invalid)?;
        }
        Ok(())
    });
}

#[test]
fn an_escalation_policy_parses_or_is_refused_naming_the_field() {
    check_then::<PutPolicy>(|body| {
        for (i, step) in body.steps.iter().enumerate() {
            for (j, target) in step.targets.iter().enumerate() {
                if let Some(role) = &target.role {
                    ContactRole::parse(&format!("steps[{i}].targets[{j}].role"), role)
                        .map_err(invalid)?;
                }
            }
        }
        Ok(())
    });
}

#[test]
fn a_cooperation_map_parses_or_is_refused_naming_the_field() {
    check::<PutCooperationMap>();
}

#[test]
fn an_acknowledgement_parses_or_is_refused_naming_the_field() {
    check::<AckBody>();
}

#[test]
fn a_drill_parses_or_is_refused_naming_the_field() {
    check::<CreateDrill>();
}
