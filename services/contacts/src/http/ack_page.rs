//! The pages behind the link in every message. `GET /ack/{token}` only
//! shows what the message is about and a button (mail scanners open links;
//! opening must not acknowledge); `POST /ack/{token}` acknowledges for the
//! organisation the message went to. Both in Japanese and English; no
//! bearer token: the link itself is the proof. Advisories are confirmed
//! rather than acknowledged, and a message that asked for nothing is
//! marked as read; the wording follows.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use html_escape::encode_text as esc;
use renkei_store::json::from_column;
use renkei_web::ApiError;
use renkei_web::error::db;
use sea_orm::EntityTrait;

use crate::domain::{Answer, Language, Notice, OrgState};
use crate::escalation::{self, Acknowledgement};
use crate::service::ContactsState;
use crate::store::{delivery, notification, recipient};

type State = web::Data<ContactsState>;

/// What a link leads to.
struct Found {
    delivery: delivery::Model,
    recipient: recipient::Model,
    notice: Notice,
    answer: Answer,
}

async fn find(state: &ContactsState, token: &str) -> Result<Option<Found>, ApiError> {
    let Some(id) = state.links.verify(token) else {
        return Ok(None);
    };
    let conn = &state.db.read;
    let Some(d) = delivery::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db)?
    else {
        return Ok(None);
    };
    let Some(r) = recipient::Entity::find_by_id(d.recipient_id)
        .one(conn)
        .await
        .map_err(db)?
    else {
        return Ok(None);
    };
    let Some(n) = notification::Entity::find_by_id(d.notification_id)
        .one(conn)
        .await
        .map_err(db)?
    else {
        return Ok(None);
    };
    let notice: Notice = from_column("notice", &n.notice).map_err(db)?;
    let answer = notice.answer(n.ack_required);
    Ok(Some(Found {
        delivery: d,
        recipient: r,
        notice,
        answer,
    }))
}

fn page(status: actix_web::http::StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(format!(
            "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em;line-height:1.6}}\
             button{{font-size:1.2em;padding:.5em 1.5em}}.en{{color:#555}}</style></head><body>{body}</body></html>",
            esc(title)
        ))
}

fn not_found() -> HttpResponse {
    page(
        actix_web::http::StatusCode::NOT_FOUND,
        "リンクが無効です / Invalid link",
        "<h1>リンクが無効です</h1><p class=\"en\">This acknowledgement link is not valid.</p>",
    )
}

fn acknowledged_line(r: &recipient::Model, answer: Answer) -> String {
    let at = r
        .acknowledged_at
        .map(|t| {
            t.with_timezone(&chrono_tz::Asia::Tokyo)
                .format("%Y-%m-%d %H:%M:%S JST")
                .to_string()
        })
        .unwrap_or_default();
    format!(
        "<p>{ja}（{at}、{by}）。</p><p class=\"en\">{en} at {at} by {by}.</p>",
        ja = esc(answer.recorded(Language::Ja)),
        en = esc(answer.recorded(Language::En)),
        at = esc(&at),
        by = esc(r.acknowledged_by.as_deref().unwrap_or("-"))
    )
}

#[utoipa::path(get, path = "/ack/{token}", tag = "contacts",
    params(("token" = String, Path, description = "The token of a message's link")),
    responses((status = 200, description = "An HTML page with a button; nothing is acknowledged", content_type = "text/html", body = String),
              (status = 404, description = "Not a valid link: an HTML page", content_type = "text/html", body = String)))]
#[tracing::instrument(skip_all)]
pub async fn show(state: State, token: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let Some(found) = find(&state, &token).await? else {
        return Ok(not_found());
    };
    let ja = found.notice.title(Language::Ja);
    let en = found.notice.title(Language::En);
    let answer = found.answer;
    let status = if found.recipient.state == OrgState::Acknowledged.as_str() {
        acknowledged_line(&found.recipient, answer)
    } else {
        format!(
            "<form method=\"post\"><button type=\"submit\">{}</button></form>\
             <p>{}</p><p class=\"en\">{}</p>",
            esc(answer.button()),
            esc(answer.explain(Language::Ja)),
            esc(answer.explain(Language::En))
        )
    };
    Ok(page(
        actix_web::http::StatusCode::OK,
        &ja,
        &format!(
            "<h1>{}</h1><p class=\"en\">{}</p><p>宛先 / To: {}</p>{status}",
            esc(&ja),
            esc(&en),
            esc(&found.delivery.contact_name)
        ),
    ))
}

#[utoipa::path(post, path = "/ack/{token}", tag = "contacts",
    params(("token" = String, Path, description = "The token of a message's link")),
    responses((status = 200, description = "Acknowledged (or already acknowledged): an HTML page", content_type = "text/html", body = String),
              (status = 404, description = "Not a valid link: an HTML page", content_type = "text/html", body = String)))]
#[tracing::instrument(skip_all)]
pub async fn confirm(state: State, token: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let Some(found) = find(&state, &token).await? else {
        return Ok(not_found());
    };
    let by = renkei_audit::Actor::contact(found.delivery.contact_id, found.recipient.org_id);
    let outcome =
        escalation::acknowledge_now(&state.db, &state.outbox, found.recipient.id, &by, "link")
            .await
            .map_err(db)?;
    let answer = found.answer;
    let (headline, r) = match outcome {
        Some(Acknowledgement::Recorded(r)) => (
            format!(
                "<h1>{}</h1><p class=\"en\">{}</p>",
                esc(answer.done(Language::Ja)),
                esc(answer.done(Language::En))
            ),
            r,
        ),
        Some(Acknowledgement::Already(r)) => (
            format!(
                "<h1>{}</h1>",
                esc(&format!(
                    "{} / {}",
                    answer.recorded(Language::Ja),
                    answer.recorded(Language::En)
                ))
            ),
            r,
        ),
        None => return Ok(not_found()),
    };
    Ok(page(
        actix_web::http::StatusCode::OK,
        &format!(
            "{} / {}",
            answer.recorded(Language::Ja),
            answer.recorded(Language::En)
        ),
        &format!(
            "{headline}<p>{}</p>{}",
            esc(&found.notice.title(Language::Ja)),
            acknowledged_line(&r, answer)
        ),
    ))
}
