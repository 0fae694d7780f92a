//! The emergency HTTP API under `/v1`: the routes and the OpenAPI document.
//! Each resource's handlers live in their own module; `common` holds what
//! several of them share.

mod advisories;
mod common;
pub mod dto;
mod incidents;
mod messages;
mod playbooks;
mod reports;
mod tasks;

use actix_web::web;
use renkei_web::openapi::Conventions;
use utoipa::OpenApi;

use crate::domain::Review;
use crate::domain::report::{AffectedLine, ReportContent, TimelineLine};
use dto::*;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/incidents", web::post().to(incidents::declare))
        .route("/v1/incidents", web::get().to(incidents::list_incidents))
        .route("/v1/incidents/{id}", web::get().to(incidents::get_incident))
        .route(
            "/v1/incidents/{id}/status",
            web::post().to(incidents::change_status),
        )
        .route(
            "/v1/incidents/{id}/timeline",
            web::get().to(incidents::get_timeline),
        )
        .route("/v1/incidents/{id}/tasks", web::get().to(tasks::list_tasks))
        .route("/v1/tasks/{id}", web::patch().to(tasks::change_task))
        .route(
            "/v1/platforms/{platform_id}/playbooks",
            web::post().to(playbooks::create_playbook),
        )
        .route(
            "/v1/platforms/{platform_id}/playbooks",
            web::get().to(playbooks::list_playbooks),
        )
        .route("/v1/playbooks/{id}", web::get().to(playbooks::get_playbook))
        .route(
            "/v1/playbooks/{id}",
            web::put().to(playbooks::update_playbook),
        )
        .route(
            "/v1/incidents/{id}/reports",
            web::post().to(reports::create_report),
        )
        .route(
            "/v1/incidents/{id}/reports",
            web::get().to(reports::list_incident_reports),
        )
        .route("/v1/reports", web::get().to(reports::list_reports))
        .route("/v1/reports/{id}", web::get().to(reports::get_report))
        .route("/v1/reports/{id}", web::patch().to(reports::edit_report))
        .route(
            "/v1/reports/{id}/file",
            web::post().to(reports::file_report),
        )
        .route(
            "/v1/incidents/{id}/review",
            web::put().to(incidents::put_review),
        )
        .route(
            "/v1/incidents/{id}/messages",
            web::post().to(messages::post_message),
        )
        .route(
            "/v1/incidents/{id}/messages",
            web::get().to(messages::list_messages),
        )
        .route("/v1/advisories", web::post().to(advisories::issue_advisory))
        .route("/v1/advisories", web::get().to(advisories::list_advisories))
        .route(
            "/v1/advisories/{id}",
            web::get().to(advisories::get_advisory),
        )
        .configure(renkei_audit::http::routes::<crate::service::EmergencyState>);
}

#[derive(OpenApi)]
#[openapi(
    paths(
        incidents::declare,
        incidents::list_incidents,
        incidents::get_incident,
        incidents::change_status,
        incidents::get_timeline,
        tasks::list_tasks,
        tasks::change_task,
        playbooks::create_playbook,
        playbooks::list_playbooks,
        playbooks::get_playbook,
        playbooks::update_playbook,
        reports::create_report,
        reports::list_incident_reports,
        reports::list_reports,
        reports::get_report,
        reports::edit_report,
        reports::file_report,
        incidents::put_review,
        messages::post_message,
        messages::list_messages,
        advisories::issue_advisory,
        advisories::list_advisories,
        advisories::get_advisory
    ),
    components(schemas(DeclareIncident, AffectedView, IncidentView, StatusChange, TimelineEntry,
                       TaskView, TaskChange, CreatePlaybook, UpdatePlaybook, PlaybookView,
                       crate::domain::PlaybookStep, CreateReport, EditReport, ReportView,
                       ReportContent, AffectedLine, TimelineLine, Review,
                       crate::domain::ReviewAction, PostMessage, RecipientView, MessageView,
                       IssueAdvisory, ConfirmationView, AdvisoryView,
                       renkei_web::error::Problem)),
    tags((name = "emergency", description = "Incidents, spread alerts, playbooks, coordination, advisories and reports")),
    modifiers(&Conventions)
)]
pub struct ApiDoc;

/// Paging parameters, for the documentation.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct PageParamsDoc {
    limit: Option<String>,
    cursor: Option<String>,
}
