//! Every request body of the demarcation API, read the way its handlers read
//! them (`renkei_web::json`) and then put through the domain checks the
//! handlers apply before touching the database: every body the published
//! schema allows parses; arbitrary and hostile objects parse or are refused
//! with a 4xx naming the field, never a panic (see `renkei_testkit::bodies`).

use std::collections::HashSet;

use chrono::Utc;
use renkei_demarcation::domain::rules::{Cooperation, Decision, Rule, RulesContent};
use renkei_demarcation::domain::{RaciRole, ResponsibilityClass, valid_control_id, valid_name};
use renkei_demarcation::http::dto::{
    CreateControl, CreateRules, DecisionBody, ProposeBody, PutMatrix, RuleBody, UpdateRules,
};
use renkei_testkit::bodies::check_then;
use renkei_web::error::invalid;

fn content(title: String, rules: Vec<RuleBody>, measures: Vec<String>) -> RulesContent {
    RulesContent {
        title,
        rules: rules
            .into_iter()
            .map(|r| Rule {
                id: r.id.trim().to_owned(),
                title: r.title.trim().to_owned(),
                text: r.text.trim().to_owned(),
                controls: r.controls,
            })
            .collect(),
        cooperation: Cooperation::default(),
        emergency_measures: measures,
    }
}

#[test]
fn a_control_body_parses_or_is_refused_naming_the_field() {
    check_then::<CreateControl>(|body| {
        valid_control_id("id", &body.id).map_err(invalid)?;
        for (field, title) in [("title_ja", &body.title_ja), ("title_en", &body.title_en)] {
            if let Some(title) = title {
                valid_name(field, title, 300).map_err(invalid)?;
            }
        }
        if let Some(area) = &body.area {
            valid_control_id("area", area).map_err(invalid)?;
        }
        Ok(())
    });
}

#[test]
fn a_matrix_body_parses_or_is_refused_naming_the_field() {
    check_then::<PutMatrix>(|body| {
        for (i, a) in body.assignments.iter().enumerate() {
            RaciRole::parse(&format!("assignments[{i}].role"), &a.role).map_err(invalid)?;
        }
        for (i, c) in body.classes.iter().enumerate() {
            ResponsibilityClass::parse(&format!("classes[{i}].class"), &c.class)
                .map_err(invalid)?;
        }
        Ok(())
    });
}

#[test]
fn a_rules_draft_parses_or_is_refused_naming_the_field() {
    check_then::<CreateRules>(|body| {
        let title = body.title.unwrap_or_else(|| "Common rules".into());
        content(
            title,
            body.rules,
            body.emergency_measures.unwrap_or_default(),
        )
        .validate(&HashSet::new())
        .map_err(invalid)
    });
}

#[test]
fn a_rules_edit_parses_or_is_refused_naming_the_field() {
    check_then::<UpdateRules>(|body| {
        let title = body.title.unwrap_or_else(|| "Common rules".into());
        let rules = body.rules.unwrap_or_else(|| {
            vec![RuleBody {
                id: "r-1".into(),
                title: "Kept".into(),
                text: "Kept".into(),
                controls: vec![],
            }]
        });
        content(title, rules, body.emergency_measures.unwrap_or_default())
            .validate(&HashSet::new())
            .map_err(invalid)
    });
}

#[test]
fn a_proposal_parses_or_is_refused_naming_the_field() {
    check_then::<ProposeBody>(|body| {
        if let Some(at) = body.respond_by {
            renkei_demarcation::domain::rules::check_deadline(Utc::now(), at).map_err(invalid)?;
        }
        Ok(())
    });
}

#[test]
fn a_decision_parses_or_is_refused_naming_the_field() {
    check_then::<DecisionBody>(|body| {
        Decision::parse("decision", &body.decision).map_err(invalid)?;
        Ok(())
    });
}
