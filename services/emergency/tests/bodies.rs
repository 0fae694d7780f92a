//! Every request body of the emergency API, read the way its handlers read
//! them (`renkei_web::json`) and then put through the domain checks the
//! handlers apply before touching the database: every body the published
//! schema allows parses; arbitrary and hostile objects parse or are refused
//! with a 4xx naming the field, never a panic (see `renkei_testkit::bodies`).

use chrono::Utc;
use renkei_emergency::domain::{
    Category, MessageKind, ReportKind, Review, Severity, Status, TaskState, Tlp, Urgency,
    valid_advisory, valid_name, valid_steps, valid_text,
};
use renkei_emergency::http::dto::{
    CreatePlaybook, CreateReport, DeclareIncident, EditReport, IssueAdvisory, PostMessage,
    StatusChange, TaskChange, UpdatePlaybook,
};
use renkei_testkit::bodies::check_then;
use renkei_web::error::invalid;

#[test]
fn a_declaration_parses_or_is_refused_naming_the_field() {
    check_then::<DeclareIncident>(|body| {
        Category::parse("category", &body.category).map_err(invalid)?;
        Severity::new("severity", body.severity).map_err(invalid)?;
        Tlp::parse("tlp", &body.tlp).map_err(invalid)?;
        valid_text("summary", &body.summary, 5_000, true).map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn a_status_change_parses_or_is_refused_naming_the_field() {
    check_then::<StatusChange>(|body| {
        Status::parse("to", &body.to).map_err(invalid)?;
        valid_text("reason", &body.reason, 2_000, true).map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn a_task_change_parses_or_is_refused_naming_the_field() {
    check_then::<TaskChange>(|body| {
        TaskState::parse("state", &body.state).map_err(invalid)?;
        if let Some(reason) = &body.reason {
            valid_text("reason", reason, 2_000, false).map_err(invalid)?;
        }
        Ok(())
    });
}

#[test]
fn a_playbook_parses_or_is_refused_naming_the_field() {
    check_then::<CreatePlaybook>(|body| {
        Category::parse("category", &body.category).map_err(invalid)?;
        valid_name("title", &body.title, 300).map_err(invalid)?;
        valid_steps(body.steps).map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn a_playbook_edit_parses_or_is_refused_naming_the_field() {
    check_then::<UpdatePlaybook>(|body| {
        valid_name("title", &body.title, 300).map_err(invalid)?;
        valid_steps(body.steps).map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn a_report_parses_or_is_refused_naming_the_field() {
    check_then::<CreateReport>(|body| {
        ReportKind::parse("kind", &body.kind).map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn a_report_edit_parses_or_is_refused_naming_the_field() {
    check_then::<EditReport>(|body| {
        for (field, text) in [
            ("what_happened", &body.what_happened),
            ("measures_taken", &body.measures_taken),
            ("notes", &body.notes),
        ] {
            if let Some(text) = text {
                valid_text(field, text, 20_000, false).map_err(invalid)?;
            }
        }
        Ok(())
    });
}

#[test]
fn a_message_parses_or_is_refused_naming_the_field() {
    check_then::<PostMessage>(|body| {
        MessageKind::parse("kind", &body.kind).map_err(invalid)?;
        valid_text("text", &body.text, 10_000, true).map_err(invalid)?;
        if let Some(urgency) = &body.urgency {
            Urgency::parse("urgency", urgency).map_err(invalid)?;
        }
        if let Some(tlp) = &body.tlp {
            Tlp::parse("tlp", tlp).map_err(invalid)?;
        }
        Ok(())
    });
}

#[test]
fn an_advisory_parses_or_is_refused_naming_the_field() {
    check_then::<IssueAdvisory>(|body| {
        valid_name("title", &body.title, 300).map_err(invalid)?;
        valid_text("text", &body.text, 20_000, true).map_err(invalid)?;
        Tlp::parse("tlp", &body.tlp).map_err(invalid)?;
        Severity::new("severity", body.severity).map_err(invalid)?;
        valid_advisory(body.act_by, Utc::now()).map_err(invalid)?;
        Ok(())
    });
}

#[test]
fn a_review_parses_or_is_refused_naming_the_field() {
    check_then::<Review>(|body| {
        // Actions are owned by participants: none here, so any action is
        // refused naming its owner.
        body.valid(&[]).map_err(invalid)?;
        Ok(())
    });
}
