//! The contacts service through its HTTP API and the bus, beside a real
//! registry, against a real nats-server, a real database (SQLite, or
//! PostgreSQL with RENKEI_TEST_DATABASE_URL), a real webhook receiver and a
//! real SMTP server on loopback. Alerts are published on JetStream exactly
//! as the emergency service publishes them.

mod common;

use std::time::Duration;

use common::*;
use renkei_bus::Event as _;
use renkei_bus::contracts::emergency::IncidentSpreadRisk;
use renkei_testkit::{MailSink, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn a_spread_alert_reaches_a_real_webhook_with_a_valid_signature() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    contact(&app, &w, 1, "csirt", "/agency1").await;
    let sent = alert(&w, &[1]);
    app.publish(&sent).await;

    let got = app
        .sink
        .wait_for("/agency1", 1, Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), 1, "one message to the one contact");
    let hit = &got[0];
    let timestamp: i64 = hit
        .header("x-renkei-timestamp")
        .and_then(|t| t.parse().ok())
        .expect("timestamp header");
    let signature = hit.header("x-renkei-signature").expect("signature header");
    assert!(renkei_contacts::channels::webhook::verify(
        "s3cret-for-tests",
        timestamp,
        &hit.body,
        signature
    ));
    assert!(!renkei_contacts::channels::webhook::verify(
        "another-secret",
        timestamp,
        &hit.body,
        signature
    ));
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    let body = hit.json();
    assert_eq!(body["incident_id"], json!(sent.incident_id));
    assert_eq!(body["organization_id"], json!(w.orgs[1]));
    assert_eq!(body["condition"], "emergency");
    assert!(
        body["title"]
            .as_str()
            .expect("title")
            .contains("Ransomware")
    );
    assert!(body["text"].as_str().expect("text").contains("/ack/"));
    assert_eq!(
        hit.header("x-renkei-delivery"),
        body["delivery_id"].as_str()
    );

    let n = notification_of(&app, &w, sent.incident_id).await;
    wait_until(Duration::from_secs(5), || async {
        let (_, n) = app
            .get(
                &format!("/v1/notifications/{}", n["id"].as_str().unwrap_or_default()),
                &w.operator,
            )
            .await;
        org_row(&n, w.orgs[1])["delivered"] == json!(true)
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_email_reaches_a_real_smtp_server() {
    let mail = MailSink::start().expect("smtp sink");
    let port = mail.port;
    let app = spawn_app_with(|s| {
        s.contacts.smtp.host = "127.0.0.1".into();
        s.contacts.smtp.port = port;
        s.contacts.smtp.tls = renkei_settings::SmtpTls::None;
        s.contacts.smtp.from = "renkei@platform.example".into();
    })
    .await;
    let w = world(&app, 1).await;
    app.create(
        "/v1/contacts",
        &w.managers[0],
        json!({"org_id": w.orgs[0], "name": "Duty officer", "role": "csirt",
               "availability": "emergency", "language": "en",
               "channels": [{"kind": "email", "address": "csirt@agency0.example"}]}),
    )
    .await;
    let sent = alert(&w, &[0]);
    app.publish(&sent).await;

    let got = mail.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "one mail");
    let m = &got[0];
    assert_eq!(m.to, vec!["csirt@agency0.example".to_owned()]);
    assert_eq!(m.from, "renkei@platform.example");
    assert!(
        m.data
            .contains("Subject: [EMERGENCY - may spread] Ransomware"),
        "{}",
        m.data
    );
    assert!(m.data.contains("/ack/"), "{}", m.data);
    let n = notification_of(&app, &w, sent.incident_id).await;
    let id = n["id"].as_str().expect("id").to_owned();
    wait_until(Duration::from_secs(5), || async {
        let (_, d) = app
            .get(&format!("/v1/notifications/{id}/deliveries"), &w.operator)
            .await;
        d["items"][0]["state"] == "delivered"
            && d["items"][0]["attempts"][0]["detail"]
                .as_str()
                .is_some_and(|s| s.starts_with("SMTP 250"))
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn what_is_not_acknowledged_in_time_goes_to_step_two() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    contact(&app, &w, 0, "csirt", "/csirt").await;
    contact(&app, &w, 0, "ciso", "/ciso").await;
    two_step_policy(&app, &w, 0, 1).await;
    let sent = alert(&w, &[0]);
    app.publish(&sent).await;

    let first = app
        .sink
        .wait_for("/csirt", 1, Duration::from_secs(10))
        .await;
    assert_eq!(first.len(), 1);
    assert!(app.sink.on("/ciso").is_empty(), "the CISO waits for step 2");
    let second = app.sink.wait_for("/ciso", 1, Duration::from_secs(10)).await;
    assert_eq!(second.len(), 1, "step 2 reached the CISO");
    let waited = second[0].at - first[0].at;
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "step 2 came after the step's wait, not {waited:?}"
    );
    assert_eq!(second[0].json()["step"], 2);
    let n = notification_of(&app, &w, sent.incident_id).await;
    assert_eq!(org_row(&n, w.orgs[0])["step"], 2);
    assert_eq!(app.sink.on("/csirt").len(), 1, "step 1 is not repeated");
    app.stop().await;
}

#[tokio::test]
async fn an_acknowledgement_just_before_the_wait_ends_stops_the_escalation() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    contact(&app, &w, 0, "csirt", "/csirt").await;
    contact(&app, &w, 0, "ciso", "/ciso").await;
    two_step_policy(&app, &w, 0, 2).await;
    let sent = alert(&w, &[0]);
    app.publish(&sent).await;
    app.sink
        .wait_for("/csirt", 1, Duration::from_secs(10))
        .await;
    let n = notification_of(&app, &w, sent.incident_id).await;
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(org_row(&n, w.orgs[0])["next_escalation_at"].clone())
            .expect("an escalation is scheduled");
    // Close to the end of the wait, with room for one HTTP round trip on a
    // loaded CI machine (50 ms was not always enough there).
    let ack_at = next - chrono::Duration::milliseconds(300);
    tokio::time::sleep(
        (ack_at - chrono::Utc::now())
            .to_std()
            .expect("in the future"),
    )
    .await;

    let csirt = token(Role::Csirt, Some(w.orgs[0]));
    let id = n["id"].as_str().expect("id");
    let (status, row) = app
        .post(&format!("/v1/notifications/{id}/ack"), &csirt, json!({}))
        .await;
    assert_eq!(status, 200, "{row}");
    assert!(
        chrono::Utc::now() < next,
        "the acknowledgement landed before the wait ended"
    );
    assert_eq!(row["state"], "acknowledged");
    assert_eq!(row["acknowledged_by"], "test-csirt");

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        app.sink.on("/ciso").is_empty(),
        "nothing after the acknowledgement"
    );
    let (_, n) = app
        .get(&format!("/v1/notifications/{id}"), &w.operator)
        .await;
    assert_eq!(n["state"], "acknowledged");
    assert_eq!(org_row(&n, w.orgs[0])["step"], 1);
    assert_eq!(org_row(&n, w.orgs[0])["next_escalation_at"], Value::Null);
    // A second acknowledgement changes nothing.
    let (status, again) = app
        .post(
            &format!("/v1/notifications/{id}/ack"),
            &w.managers[0],
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["acknowledged_by"], "test-csirt");
    app.stop().await;
}

#[tokio::test]
async fn no_retry_goes_out_after_an_acknowledgement() {
    let app = spawn_app_with(|s| {
        s.contacts.delivery.retry_base_ms = 1_000;
        s.contacts.delivery.retry_max_ms = 1_000;
    })
    .await;
    let w = world(&app, 1).await;
    app.sink.answer("/csirt", 503);
    contact(&app, &w, 0, "csirt", "/csirt").await;
    let sent = alert(&w, &[0]);
    app.publish(&sent).await;
    app.sink
        .wait_for("/csirt", 1, Duration::from_secs(10))
        .await;
    let n = notification_of(&app, &w, sent.incident_id).await;
    let id = n["id"].as_str().expect("id");
    let (status, _) = app
        .post(
            &format!("/v1/notifications/{id}/ack"),
            &w.managers[0],
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(app.sink.on("/csirt").len(), 1, "the retry was cancelled");
    let (_, d) = app
        .get(&format!("/v1/notifications/{id}/deliveries"), &w.operator)
        .await;
    assert_eq!(d["items"][0]["state"], "cancelled", "{d}");
    assert_eq!(d["items"][0]["attempts"].as_array().map(Vec::len), Some(1));
    app.stop().await;
}

#[tokio::test]
async fn a_restart_mid_wait_still_escalates_exactly_once() {
    let mut app = spawn_app().await;
    let w = world(&app, 1).await;
    contact(&app, &w, 0, "csirt", "/csirt").await;
    contact(&app, &w, 0, "ciso", "/ciso").await;
    two_step_policy(&app, &w, 0, 2).await;
    let sent = alert(&w, &[0]);
    app.publish(&sent).await;
    app.sink
        .wait_for("/csirt", 1, Duration::from_secs(10))
        .await;

    app.stop_contacts().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.restart_contacts().await;

    let second = app.sink.wait_for("/ciso", 1, Duration::from_secs(10)).await;
    assert_eq!(second.len(), 1, "the escalation happened after the restart");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.sink.on("/ciso").len(), 1, "and only once");
    assert_eq!(app.sink.on("/csirt").len(), 1, "step 1 was not sent again");
    app.stop().await;
}

#[tokio::test]
async fn opening_the_link_does_not_acknowledge_and_posting_it_does() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    contact(&app, &w, 0, "csirt", "/a").await;
    contact(&app, &w, 1, "csirt", "/b").await;
    let sent = alert(&w, &[0, 1]);
    app.publish(&sent).await;
    let got = app.sink.wait_for("/a", 1, Duration::from_secs(10)).await;
    let link = got[0].json()["ack_url"]
        .as_str()
        .expect("ack_url")
        .to_owned();
    let path = link
        .split_once("/ack/")
        .map(|(_, t)| format!("{}/ack/{t}", app.contacts))
        .expect("a link");

    let page = app.http.get(&path).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    assert!(html.contains("<form method=\"post\""), "{html}");
    let n = notification_of(&app, &w, sent.incident_id).await;
    assert_eq!(org_row(&n, w.orgs[0])["acknowledged_at"], Value::Null);

    let confirm = app.http.post(&path).send().await.expect("POST");
    assert_eq!(confirm.status(), 200);
    let id = n["id"].as_str().expect("id");
    let (_, n) = app
        .get(&format!("/v1/notifications/{id}"), &w.operator)
        .await;
    let a = org_row(&n, w.orgs[0]);
    assert_eq!(a["state"], "acknowledged");
    assert_eq!(a["acknowledged_via"], "link");
    assert!(
        a["acknowledged_by"]
            .as_str()
            .expect("by")
            .starts_with("contact:")
    );
    assert_eq!(
        org_row(&n, w.orgs[1])["acknowledged_at"],
        Value::Null,
        "B is still open"
    );
    assert_eq!(n["state"], "open");
    // Posting again is harmless; a forged link is not found.
    assert_eq!(
        app.http.post(&path).send().await.expect("POST").status(),
        200
    );
    let forged = format!("{}x", &path[..path.len() - 1]);
    assert_eq!(
        app.http.post(&forged).send().await.expect("POST").status(),
        404
    );
    // Agency B sees only its own row; A's acknowledgement is not its business.
    let (_, seen_by_b) = app
        .get(&format!("/v1/notifications/{id}"), &w.managers[1])
        .await;
    assert_eq!(seen_by_b["organizations"].as_array().map(Vec::len), Some(1));
    app.stop().await;
}

#[tokio::test]
async fn a_failing_webhook_is_retried_then_escalates() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    app.sink.answer("/csirt", 500);
    contact(&app, &w, 0, "csirt", "/csirt").await;
    contact(&app, &w, 0, "ciso", "/ciso").await;
    // A long wait: only the failures can move it on.
    two_step_policy(&app, &w, 0, 600).await;
    let sent = alert(&w, &[0]);
    app.publish(&sent).await;

    let second = app.sink.wait_for("/ciso", 1, Duration::from_secs(10)).await;
    assert_eq!(second.len(), 1, "the failing channel moved escalation on");
    assert_eq!(
        app.sink.on("/csirt").len(),
        3,
        "three attempts, then it gave up"
    );
    let n = notification_of(&app, &w, sent.incident_id).await;
    let id = n["id"].as_str().expect("id");
    let (_, d) = app
        .get(&format!("/v1/notifications/{id}/deliveries"), &w.operator)
        .await;
    let failed = d["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["address"].as_str().is_some_and(|a| a.ends_with("/csirt")))
        .expect("the CSIRT delivery");
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["last_error"], "HTTP 500");
    let attempts = failed["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|a| a["ok"] == false && a["detail"] == "HTTP 500")
    );
    app.stop().await;
}

#[tokio::test]
async fn contact_details_are_visible_only_to_their_organisation_and_the_operator() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    let a = contact(&app, &w, 0, "csirt", "/a").await;
    assert_eq!(
        app.get(&format!("/v1/contacts/{a}"), &w.managers[0])
            .await
            .0,
        200
    );
    assert_eq!(
        app.get(&format!("/v1/contacts/{a}"), &w.operator).await.0,
        200
    );
    assert_eq!(
        app.get(&format!("/v1/contacts/{a}"), &w.managers[1])
            .await
            .0,
        404
    );
    let auditor = token(Role::Auditor, None);
    assert_eq!(app.get(&format!("/v1/contacts/{a}"), &auditor).await.0, 404);
    let (_, list) = app.get("/v1/contacts", &w.managers[1]).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    let (status, shown) = app.get(&format!("/v1/contacts/{a}"), &w.operator).await;
    assert_eq!(status, 200);
    assert_eq!(shown["channels"][0]["secret_set"], true);
    assert!(
        shown["channels"][0].get("secret").is_none(),
        "secrets never leave"
    );

    // B cannot add to, change or remove A's contacts.
    let (status, _) = app
        .post(
            "/v1/contacts",
            &w.managers[1],
            json!({"org_id": w.orgs[0], "name": "Intruder", "role": "csirt", "availability": "both",
                   "channels": [webhook(&app, "/x")]}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/contacts/{a}"),
            &w.managers[1],
            None,
        )
        .await;
    assert_eq!(status, 404);
    // The operator reads but does not manage.
    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/contacts/{a}"),
            &w.operator,
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(status, 403);
    // The owner does; a webhook sent back without its secret keeps it.
    let (status, changed) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/contacts/{a}"),
            &w.managers[0],
            Some(json!({"name": "Renamed", "channels": [{"kind": "webhook", "url": format!("{}/a", app.sink.url)}]})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Renamed");
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/contacts/{a}"),
            &w.managers[0],
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        app.get(&format!("/v1/contacts/{a}"), &w.managers[0])
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    let base = json!({"org_id": w.orgs[0], "name": "Duty", "role": "csirt", "availability": "both",
                      "channels": [webhook(&app, "/x")]});
    let cases = [
        (
            "channels[0].url",
            json!({"channels": [{"kind": "webhook", "url": "not a url", "secret": "s3cret-xyz"}]}),
        ),
        (
            "channels[0].secret",
            json!({"channels": [{"kind": "webhook", "url": "http://x.example/h"}]}),
        ),
        (
            "channels[0].address",
            json!({"channels": [{"kind": "email", "address": "nobody"}]}),
        ),
        ("channels[0].kind", json!({"channels": [{"kind": "pager"}]})),
        ("channels", json!({"channels": []})),
        ("role", json!({"role": "boss"})),
        ("availability", json!({"availability": "sometimes"})),
        ("time_zone", json!({"time_zone": "Mars/Olympus"})),
        ("language", json!({"language": "fr"})),
        ("name", json!({"name": "  "})),
        ("system_id", json!({"system_id": Uuid::now_v7()})),
    ];
    for (field, change) in cases {
        let mut body = base.clone();
        for (k, v) in change.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (status, problem) = app.post("/v1/contacts", &w.managers[0], body).await;
        assert_eq!(status, 400, "{field}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let (_, list) = app.get("/v1/contacts", &w.managers[0]).await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(0),
        "nothing stored"
    );

    let policy = format!("/v1/organizations/{}/escalation-policy", w.orgs[0]);
    for (field, body) in [
        (
            "steps[0].wait_seconds",
            json!({"steps": [{"targets": [{"kind": "available"}], "wait_seconds": 0}]}),
        ),
        (
            "steps[0].targets[0].role",
            json!({"steps": [{"targets": [{"kind": "role", "role": "king"}], "wait_seconds": 5}]}),
        ),
        (
            "steps[0].targets[0].contact_id",
            json!({"steps": [{"targets": [{"kind": "contact", "contact_id": Uuid::now_v7()}], "wait_seconds": 5}]}),
        ),
        ("steps", json!({"steps": []})),
    ] {
        let (status, problem) = app.put(&policy, &w.managers[0], body).await;
        assert_eq!(status, 400, "{field}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let (_, p) = app.get(&policy, &w.managers[0]).await;
    assert_eq!(p["default"], true, "still the default policy");

    let (status, problem) = app
        .post(
            "/v1/drills",
            &w.operator,
            json!({"platform_id": w.platform, "repeat_every_hours": 0}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].clone()),
        (400, json!("repeat_every_hours"))
    );
    let map = format!("/v1/platforms/{}/cooperation-map", w.platform);
    let (status, problem) = app
        .put(
            &map,
            &w.operator,
            json!({"ordinary": [], "emergency": [
            {"from": w.op_org, "to": Uuid::now_v7(), "what": "alerts"}]}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].clone()),
        (400, json!("emergency[0].to"))
    );
    let (status, problem) = app.get("/v1/notifications?state=lost", &w.operator).await;
    assert_eq!((status, problem["field"].clone()), (400, json!("state")));
    app.stop().await;
}

#[tokio::test]
async fn a_drill_reports_who_acknowledged_how_fast_and_who_bounced() {
    let app = spawn_app().await;
    let w = world(&app, 3).await;
    contact(&app, &w, 0, "csirt", "/a").await;
    app.sink.answer("/b", 404);
    let b = contact(&app, &w, 1, "csirt", "/b").await;
    let c = contact(&app, &w, 2, "csirt", "/c").await;

    let (status, drill) = app
        .post(
            "/v1/drills",
            &w.operator,
            json!({"platform_id": w.platform}),
        )
        .await;
    assert_eq!(status, 201, "{drill}");
    let id = drill["id"].as_str().expect("id").to_owned();
    let got = app.sink.wait_for("/a", 1, Duration::from_secs(10)).await;
    app.sink.wait_for("/c", 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json()["subject"], "contacts.drill.started");
    let link = got[0].json()["ack_url"].as_str().expect("link").to_owned();
    let path = format!(
        "{}/ack/{}",
        app.contacts,
        link.rsplit('/').next().expect("token")
    );
    assert_eq!(
        app.http.post(&path).send().await.expect("POST").status(),
        200
    );

    let report = poll(Duration::from_secs(10), || async {
        let (_, d) = app.get(&format!("/v1/drills/{id}"), &w.operator).await;
        // Every outcome recorded: B's bounce and C's delivery.
        let settled = d["report"][0]["organizations"].as_array().is_some_and(|o| {
            let has = |org: Uuid, list: &str| {
                o.iter().any(|r| {
                    r["org_id"] == json!(org) && r[list].as_array().is_some_and(|b| !b.is_empty())
                })
            };
            has(w.orgs[1], "bounced") && has(w.orgs[2], "never_answered")
        });
        settled.then_some(d)
    })
    .await;
    let run = &report["report"][0];
    let row = |org: Uuid| {
        run["organizations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["org_id"] == json!(org))
            .cloned()
            .expect("row")
    };
    let a = row(w.orgs[0]);
    assert_eq!(a["state"], "acknowledged");
    assert!(a["seconds_to_acknowledge"].as_f64().expect("latency") < 10.0);
    assert_eq!(row(w.orgs[1])["bounced"], json!([b]));
    assert_eq!(row(w.orgs[2])["never_answered"], json!([c]));
    assert_eq!(
        row(w.op_org)["state"],
        "unacknowledged",
        "the operator has no contacts"
    );
    let (_, list) = app.get("/v1/drills", &w.operator).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get(&format!("/v1/drills/{id}"), &w.managers[0]).await.0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_or_repeated_alert_notifies_each_organisation_once() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    contact(&app, &w, 0, "csirt", "/a").await;
    contact(&app, &w, 1, "csirt", "/b").await;
    let first = alert(&w, &[0]);
    let envelope = app.publish(&first).await;
    app.sink.wait_for("/a", 1, Duration::from_secs(10)).await;
    // The same event again under a new message id (a replay past the
    // de-duplication window), then a re-assessment that adds agency 1.
    let client = async_nats::connect(app.nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    js.publish(
        IncidentSpreadRisk::SUBJECT,
        serde_json::to_vec(&envelope).expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    let mut wider = first.clone();
    wider.at_risk = alert(&w, &[0, 1]).at_risk;
    app.publish(&wider).await;
    app.sink.wait_for("/b", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.sink.on("/a").len(), 1, "agency 0 was told once");
    assert_eq!(app.sink.on("/b").len(), 1);
    let (_, list) = app
        .get(
            "/v1/notifications?subject=emergency.incident.spread_risk",
            &w.operator,
        )
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
    app.stop().await;
}

#[tokio::test]
async fn the_cooperation_map_defaults_to_the_platform_and_is_changed_by_its_operator() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    let path = format!("/v1/platforms/{}/cooperation-map", w.platform);
    let (status, map) = app.get(&path, &w.managers[1]).await;
    assert_eq!(status, 200, "{map}");
    assert_eq!(map["source"], "default");
    assert_eq!(map["ordinary"].as_array().map(Vec::len), Some(4));
    assert_eq!(map["organizations"][w.orgs[0].to_string()], "Agency 0");

    let body = json!({"ordinary": [{"from": w.op_org, "to": w.orgs[0], "what": "rule proposals"}],
                      "emergency": [{"from": w.orgs[0], "to": w.op_org, "what": "incident reports"}],
                      "base_version": 0});
    let (status, _) = app.put(&path, &w.managers[0], body.clone()).await;
    assert_eq!(status, 403, "only the operator changes it");
    let (status, saved) = app.put(&path, &w.operator, body.clone()).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        (saved["source"].clone(), saved["version"].clone()),
        (json!("saved"), json!(1))
    );
    let (status, _) = app.put(&path, &w.operator, body).await;
    assert_eq!(status, 409, "a stale base version");

    let stranger = token(Role::Manager, Some(Uuid::now_v7()));
    assert_eq!(app.get(&path, &stranger).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn after_the_last_step_and_its_repeat_the_operator_is_told() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    contact(&app, &w, 0, "csirt", "/csirt").await;
    // The platform operator's own duty officer.
    app.create(
        "/v1/contacts",
        &w.operator,
        json!({"org_id": w.op_org, "name": "Platform duty", "role": "operator_on_duty",
               "availability": "emergency", "channels": [webhook(&app, "/operator")]}),
    )
    .await;
    let (status, _) = app
        .put(
            &format!("/v1/organizations/{}/escalation-policy", w.orgs[0]),
            &w.managers[0],
            json!({"steps": [{"targets": [{"kind": "role", "role": "csirt"}], "wait_seconds": 1}],
                   "repeat": 1}),
        )
        .await;
    assert_eq!(status, 200);
    let sent = alert(&w, &[0]);
    app.publish(&sent).await;

    let told = app
        .sink
        .wait_for("/operator", 1, Duration::from_secs(10))
        .await;
    assert_eq!(told.len(), 1, "the operator heard of the silence");
    let body = told[0].json();
    assert_eq!(body["subject"], "contacts.notification.exhausted");
    assert!(body["title"].as_str().expect("title").contains("Agency 0"));
    assert_eq!(
        app.sink.on("/csirt").len(),
        2,
        "the step, then its one repeat"
    );
    let n = notification_of(&app, &w, sent.incident_id).await;
    assert_eq!(n["state"], "unacknowledged");
    let row = org_row(&n, w.orgs[0]);
    assert_eq!(row["state"], "unacknowledged");
    assert_eq!(row["next_escalation_at"], Value::Null);
    // A late acknowledgement is still recorded.
    let id = n["id"].as_str().expect("id");
    let (status, late) = app
        .post(
            &format!("/v1/notifications/{id}/ack"),
            &w.managers[0],
            json!({}),
        )
        .await;
    assert_eq!(
        (status, late["state"].clone()),
        (200, json!("acknowledged"))
    );
    let (_, n) = app
        .get(&format!("/v1/notifications/{id}"), &w.operator)
        .await;
    assert_eq!(n["state"], "acknowledged");
    app.stop().await;
}

#[tokio::test]
async fn an_organisation_with_nobody_to_tell_is_reported_at_once() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    contact(&app, &w, 1, "csirt", "/b").await;
    let sent = alert(&w, &[0, 1]);
    app.publish(&sent).await;
    app.sink.wait_for("/b", 1, Duration::from_secs(10)).await;
    let id = notification_of(&app, &w, sent.incident_id).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The delivery is recorded just after the receiver answered.
    let n = poll(Duration::from_secs(5), || async {
        let (_, n) = app
            .get(&format!("/v1/notifications/{id}"), &w.operator)
            .await;
        (org_row(&n, w.orgs[1])["state"] == "delivered").then_some(n)
    })
    .await;
    assert_eq!(
        org_row(&n, w.orgs[0])["state"],
        "unacknowledged",
        "agency 0 has no contacts"
    );
    assert_eq!(n["state"], "open", "agency 1 is still being escalated");
    // The operator has a notice about agency 0 (its own contacts are none,
    // so that one is unacknowledged too, and goes no further).
    let (_, list) = app
        .get(
            "/v1/notifications?subject=contacts.notification.exhausted",
            &w.operator,
        )
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(
        org_row(&list["items"][0], w.op_org)["state"],
        "unacknowledged"
    );
    app.stop().await;
}

#[tokio::test]
async fn readers_of_everything_see_outcomes_but_not_contact_details() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    contact(&app, &w, 0, "csirt", "/a").await;
    let sent = alert(&w, &[0]);
    app.publish(&sent).await;
    app.sink.wait_for("/a", 1, Duration::from_secs(10)).await;
    let id = notification_of(&app, &w, sent.incident_id).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let auditor = token(Role::Auditor, Some(Uuid::now_v7()));
    let (status, d) = app
        .get(&format!("/v1/notifications/{id}/deliveries"), &auditor)
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        d["items"][0]["address"], "",
        "no webhook URL for the auditor"
    );
    assert_eq!(d["items"][0]["contact_name"], "");
    let (_, d) = app
        .get(&format!("/v1/notifications/{id}/deliveries"), &w.operator)
        .await;
    assert!(
        d["items"][0]["address"]
            .as_str()
            .expect("address")
            .ends_with("/a")
    );
    // An auditor changes nothing, acknowledgements included.
    let (status, _) = app
        .post(&format!("/v1/notifications/{id}/ack"), &auditor, json!({}))
        .await;
    assert_eq!(status, 403);
    // Which other organisations were told is not a member's business.
    let (status, _) = app
        .get(
            &format!("/v1/notifications?org_id={}", w.orgs[0]),
            &w.managers[1],
        )
        .await;
    assert_eq!(status, 403);
    let (_, mine) = app.get("/v1/notifications", &w.managers[1]).await;
    assert_eq!(
        mine["items"].as_array().map(Vec::len),
        Some(0),
        "agency 1 was not told"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_repeating_drill_is_scheduled_and_can_be_stopped() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    contact(&app, &w, 0, "csirt", "/a").await;
    let (status, drill) = app
        .post(
            "/v1/drills",
            &w.operator,
            json!({"platform_id": w.platform, "repeat_every_hours": 24}),
        )
        .await;
    assert_eq!(status, 201, "{drill}");
    assert_eq!(drill["runs"], 1);
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(drill["next_run_at"].clone()).expect("a next run");
    let in_a_day = chrono::Utc::now() + chrono::Duration::hours(24);
    assert!((next - in_a_day).num_seconds().abs() < 60, "{next}");
    let id = drill["id"].as_str().expect("id");
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/drills/{id}"),
            &w.managers[0],
            None,
        )
        .await;
    assert_eq!(status, 404, "only the operator sees and stops it");
    let (status, stopped) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/drills/{id}"),
            &w.operator,
            None,
        )
        .await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["next_run_at"], Value::Null);
    assert_eq!(stopped["runs"], 1, "its run and report stay");
    app.stop().await;
}

#[tokio::test]
async fn two_replicas_share_the_work_and_send_every_message_once() {
    let mut app = spawn_app().await;
    let agencies = 20;
    let w = world(&app, agencies).await;
    for i in 0..agencies {
        contact(&app, &w, i, "csirt", &format!("/{i}/csirt")).await;
        contact(&app, &w, i, "ciso", &format!("/{i}/ciso")).await;
        two_step_policy(&app, &w, i, 1).await;
    }
    // A second replica on the same database and the same durable consumers.
    let replica = renkei_contacts::Contacts::spawn(&app.settings, "contacts-replica")
        .await
        .expect("replica");
    app.running.push(replica);
    let all: Vec<usize> = (0..agencies).collect();
    app.publish(&alert(&w, &all)).await;
    app.publish(&alert(&w, &all)).await;

    for i in 0..agencies {
        let got = app
            .sink
            .wait_for(&format!("/{i}/ciso"), 2, Duration::from_secs(15))
            .await;
        assert_eq!(got.len(), 2, "agency {i}: step 2 of both alerts");
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for i in 0..agencies {
        for role in ["csirt", "ciso"] {
            let got = app.sink.on(&format!("/{i}/{role}"));
            assert_eq!(got.len(), 2, "agency {i} {role}: once per alert, {got:?}");
            let ids: std::collections::HashSet<_> = got
                .iter()
                .filter_map(|r| r.header("x-renkei-delivery").map(str::to_owned))
                .collect();
            assert_eq!(ids.len(), 2, "two different deliveries");
        }
    }
    app.stop().await;
}
