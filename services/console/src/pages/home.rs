//! The start page and the viewer's preferences (language, time zone).

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Failure, ok, respond, safe_next, see_other};
use crate::i18n::{Lang, time_zone};
use crate::model::Incident;
use crate::session::{Ctx, SignedIn};
use crate::state::ConsoleState;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    ctx: &'a Ctx,
    open: Vec<Incident>,
}

pub async fn home(ctx: Ctx, state: web::Data<ConsoleState>) -> HttpResponse {
    let result = async {
        ctx.user()?;
        // Every open incident, however old: one list per open status.
        let paths: Vec<String> = ["declared", "triaged", "contained", "recovered"]
            .iter()
            .map(|status| format!("/v1/incidents?status={status}"))
            .collect();
        let lists = futures::future::try_join_all(
            paths.iter().map(|p| state.api.get_all::<Incident>(&ctx, p)),
        )
        .await?;
        let mut open: Vec<Incident> = lists.concat();
        open.sort_by_key(|i| std::cmp::Reverse(i.declared_at));
        ok(HomePage { ctx: &ctx, open })
    }
    .await;
    respond(&ctx, result)
}

#[derive(Deserialize)]
pub struct Preferences {
    #[serde(default)]
    csrf: String,
    lang: Option<String>,
    time_zone: Option<String>,
    next: Option<String>,
}

/// The language switch and the time-zone setting.
pub async fn preferences(ctx: Ctx, form: web::Form<Preferences>) -> HttpResponse {
    let result = (|| {
        ctx.check_csrf(&form.csrf)?;
        if let Some(code) = form.lang.as_deref() {
            let lang = Lang::parse(code).ok_or_else(|| {
                Failure::invalid("lang", ctx.t("preferences.bad_lang").into_owned())
            })?;
            ctx.choose_language(lang)?;
        }
        if let Some(name) = form.time_zone.as_deref() {
            let tz = time_zone(name.trim()).ok_or_else(|| {
                Failure::invalid("time_zone", ctx.t("preferences.bad_time_zone").into_owned())
            })?;
            ctx.choose_time_zone(tz)?;
        }
        Ok(see_other(&safe_next(form.next.as_deref())))
    })();
    respond(&ctx, result)
}
