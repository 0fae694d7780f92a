//! The emergency service's events turned into messages to people: spread
//! risk with each organisation's own systems and paths, coordination
//! messages, advisories, missed deadlines and filed reports; and the TLP
//! marking honoured throughout. Against a real nats-server, a real database
//! (SQLite, or PostgreSQL with RENKEI_TEST_DATABASE_URL), a real registry
//! and a real webhook receiver; each event is published on JetStream as
//! the emergency service publishes it.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use renkei_bus::contracts::emergency::{
    AdvisoryIssued, DeadlineMissed, IncidentSpreadRisk, IncidentStatusChanged, MessagePosted,
    Overdue, ReportFiled,
};
use renkei_bus::subjects;
use renkei_bus::{Envelope, Event as _};
use renkei_testkit::{Received, token};
use renkei_web::Role;
use serde_json::{Value, json};
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(10);

fn text(hit: &Received) -> String {
    hit.json()["text"].as_str().expect("text").to_owned()
}

fn title(hit: &Received) -> String {
    hit.json()["title"].as_str().expect("title").to_owned()
}

/// The link of a message, on the service under test.
fn ack_path(app: &TestApp, hit: &Received) -> String {
    let link = hit.json()["ack_url"].as_str().expect("ack_url").to_owned();
    let (_, token) = link.split_once("/ack/").expect("a link");
    format!("{}/ack/{token}", app.contacts)
}

fn message(w: &World, to: &[usize], ack_required: bool) -> MessagePosted {
    MessagePosted {
        message_id: Uuid::now_v7(),
        incident_id: Uuid::now_v7(),
        platform_id: w.platform,
        incident_title: "Ransomware on the records system".into(),
        kind: "request".into(),
        text: "Block outbound SMB from your records system now.".into(),
        tlp: "amber".into(),
        urgency: "emergency".into(),
        ack_required,
        from_organization_id: w.orgs[0],
        to: to.iter().map(|i| w.orgs[*i]).collect(),
    }
}

/// Publishes a coordination message on its incident's own subject, as the
/// emergency service does (its type stays `emergency.message.posted`).
async fn post_message(app: &TestApp, m: &MessagePosted) -> Envelope {
    let mut envelope =
        Envelope::new("emergency", Some(m.from_organization_id), m).expect("envelope");
    envelope.subject = subjects::incident_messages(m.incident_id);
    app.publish_envelope(&envelope).await;
    envelope
}

/// The notification about `topic`, once made, as the operator sees it.
async fn notification_about(app: &TestApp, w: &World, subject: &str, topic: &str) -> Value {
    poll(WITHIN, || async {
        let (_, list) = app
            .get(&format!("/v1/notifications?subject={subject}"), &w.operator)
            .await;
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["topic"] == topic)
            .cloned()
    })
    .await
}

#[tokio::test]
async fn a_coordination_message_reaches_each_addressed_organisation_with_its_text() {
    let app = spawn_app().await;
    let w = world(&app, 3).await;
    contact(&app, &w, 0, "csirt", "/0").await;
    contact(&app, &w, 1, "csirt", "/1").await;
    contact(&app, &w, 2, "csirt", "/2").await;
    let m = message(&w, &[1, 2], true);
    let envelope = post_message(&app, &m).await;
    assert_eq!(
        envelope.subject,
        format!("emergency.messages.{}", m.incident_id)
    );

    let topic = format!("incident/{}/message/{}", m.incident_id, m.message_id);
    for (i, path) in [(1, "/1"), (2, "/2")] {
        let got = app.sink.wait_for(path, 1, WITHIN).await;
        assert_eq!(got.len(), 1, "agency {i} was told once");
        let body = got[0].json();
        assert_eq!(body["subject"], "emergency.message.posted");
        assert_eq!(body["topic"], topic.as_str());
        assert_eq!(body["incident_id"], json!(m.incident_id));
        assert_eq!(body["organization_id"], json!(w.orgs[i]));
        assert_eq!(body["condition"], "emergency", "an urgent message");
        assert_eq!(body["ack_required"], true);
        assert_eq!(body["tlp"], "TLP:AMBER");
        let said = text(&got[0]);
        assert!(said.contains(&m.text), "{said}");
        assert!(said.contains("Agency 0"), "the sender is named: {said}");
        assert!(said.starts_with("TLP:AMBER — "), "{said}");
        assert!(title(&got[0]).contains("Ransomware on the records system"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.sink.on("/0").is_empty(), "agency 0 was not addressed");
    let n = notification_about(&app, &w, "emergency.message.posted", &topic).await;
    assert_eq!(n["incident_id"], json!(m.incident_id));
    assert_eq!(n["organizations"].as_array().map(Vec::len), Some(2));
    app.stop().await;
}

#[tokio::test]
async fn a_message_asking_no_acknowledgement_is_told_once_and_never_escalated() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    contact(&app, &w, 0, "csirt", "/csirt").await;
    contact(&app, &w, 0, "ciso", "/ciso").await;
    // Step 2 would come after a second, were the message escalated.
    two_step_policy(&app, &w, 0, 1).await;
    let mut m = message(&w, &[0], false);
    m.urgency = "ordinary".into();
    post_message(&app, &m).await;

    let got = app.sink.wait_for("/csirt", 1, WITHIN).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["condition"], "ordinary");
    assert_eq!(got[0].json()["ack_required"], false);
    let said = text(&got[0]);
    assert!(said.contains(&m.text), "{said}");
    assert!(said.contains("受領確認は不要です"), "{said}");
    let topic = format!("incident/{}/message/{}", m.incident_id, m.message_id);
    let delivered = app
        .contacts_event(subjects::CONTACTS_NOTIFICATION_DELIVERED, WITHIN, |e| {
            e.payload["topic"] == topic.as_str()
        })
        .await;
    assert_eq!(delivered.payload["organization_id"], json!(w.orgs[0]));
    assert_eq!(delivered.payload["step"], 1);

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(app.sink.on("/ciso").is_empty(), "no second step");
    assert_eq!(app.sink.on("/csirt").len(), 1, "and no repeat");
    let n = notification_about(&app, &w, "emergency.message.posted", &topic).await;
    assert_eq!(n["state"], "informed", "{n}");
    let row = org_row(&n, w.orgs[0]);
    assert_eq!(row["state"], "informed");
    assert_eq!(row["next_escalation_at"], Value::Null);
    assert_eq!(row["step"], 1);
    let escalated = app
        .events(subjects::CONTACTS_STREAM.name)
        .await
        .into_iter()
        .filter(|e| {
            e.subject == subjects::CONTACTS_NOTIFICATION_ESCALATED
                || e.subject == subjects::CONTACTS_NOTIFICATION_EXHAUSTED
        })
        .count();
    assert_eq!(escalated, 0, "neither escalated nor exhausted");
    app.stop().await;
}

#[tokio::test]
async fn an_advisory_reaches_the_ordinary_contacts_and_confirming_it_is_announced() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    contact_with(&app, &w, 0, "system_manager", "ordinary", "/0/office").await;
    contact_with(&app, &w, 0, "csirt", "emergency", "/0/night").await;
    contact_with(&app, &w, 1, "system_manager", "ordinary", "/1/office").await;
    let act_by = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let advisory = AdvisoryIssued {
        advisory_id: Uuid::now_v7(),
        platform_id: Some(w.platform),
        title: "OpenSSL flaw in the gateway library".into(),
        text: "Update the gateway library to 3.4.1.".into(),
        tlp: "green".into(),
        severity: "high".into(),
        act_by: Some(act_by),
        issued_by: w.op_org,
        organizations: vec![w.orgs[0], w.orgs[1]],
    };
    app.publish(&advisory).await;

    let got = app.sink.wait_for("/0/office", 1, WITHIN).await;
    assert_eq!(got.len(), 1, "the ordinary contact");
    app.sink.wait_for("/1/office", 1, WITHIN).await;
    let body = got[0].json();
    assert_eq!(body["condition"], "ordinary");
    assert_eq!(body["topic"], format!("advisory/{}", advisory.advisory_id));
    assert_eq!(body["incident_id"], Value::Null);
    assert_eq!(body["platform_id"], json!(w.platform));
    let said = text(&got[0]);
    assert!(said.contains(&advisory.text), "{said}");
    assert!(
        said.contains("2026-12-01 18:00 JST"),
        "act by, in JST: {said}"
    );
    assert!(
        said.contains("対応確認"),
        "confirm, not acknowledge: {said}"
    );
    assert!(said.starts_with("TLP:GREEN"), "{said}");
    assert!(title(&got[0]).starts_with("【注意喚起】OpenSSL flaw"));

    let link = ack_path(&app, &got[0]);
    let page = app.http.get(&link).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    assert!(html.contains("Confirm"), "{html}");
    let confirmed = app.http.post(&link).send().await.expect("POST");
    assert_eq!(confirmed.status(), 200);
    let html = confirmed.text().await.expect("page");
    assert!(html.contains("対応を確認しました"), "{html}");

    let topic = format!("advisory/{}", advisory.advisory_id);
    let event = app
        .contacts_event(subjects::CONTACTS_NOTIFICATION_ACKNOWLEDGED, WITHIN, |e| {
            e.payload["topic"] == topic.as_str()
        })
        .await;
    assert_eq!(event.payload["organization_id"], json!(w.orgs[0]));
    assert_eq!(event.payload["via"], "link");
    assert_eq!(event.payload["subject"], "emergency.advisory.issued");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.sink.on("/0/night").is_empty(),
        "an emergency-only contact hears of no advisory"
    );
    app.stop().await;
}

fn task_overdue(w: &World, i: usize, to_role: Option<&str>) -> DeadlineMissed {
    let task_id = Uuid::now_v7();
    DeadlineMissed {
        topic: format!("task/{task_id}"),
        platform_id: Some(w.platform),
        organization_id: w.orgs[i],
        to_role: to_role.map(str::to_owned),
        overdue: Overdue::Task {
            task_id,
            incident_id: Uuid::now_v7(),
            incident_title: "Ransomware on the records system".into(),
            task_title: "Isolate the file server".into(),
            control: "RS.MI-1".into(),
            due_at: Utc::now() - chrono::Duration::minutes(5),
        },
    }
}

#[tokio::test]
async fn a_missed_deadline_reaches_the_ciso_first_then_the_organisations_own_path() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    contact(&app, &w, 0, "csirt", "/0/csirt").await;
    contact(&app, &w, 0, "ciso", "/0/ciso").await;
    two_step_policy(&app, &w, 0, 1).await;
    // Agency 1 has no CISO: its own policy tells it all the same.
    contact(&app, &w, 1, "csirt", "/1/csirt").await;
    let missed = task_overdue(&w, 0, Some("ciso"));
    app.publish(&missed).await;
    app.publish(&task_overdue(&w, 1, Some("ciso"))).await;

    let first = app.sink.wait_for("/0/ciso", 1, WITHIN).await;
    assert_eq!(first.len(), 1, "the CISO first");
    assert!(
        app.sink.on("/0/csirt").is_empty(),
        "the CSIRT is the organisation's own first step, after the CISO's"
    );
    let body = first[0].json();
    assert_eq!(body["step"], 1);
    assert_eq!(body["condition"], "emergency");
    assert_eq!(body["topic"], missed.topic.as_str());
    assert!(
        title(&first[0]).starts_with("【期限超過】"),
        "{}",
        title(&first[0])
    );
    let said = text(&first[0]);
    assert!(said.contains("Isolate the file server"), "{said}");
    // Not acknowledged: on to the organisation's own policy.
    let then = app.sink.wait_for("/0/csirt", 1, WITHIN).await;
    assert_eq!(then.len(), 1);
    assert_eq!(then[0].json()["step"], 2);

    let other = app.sink.wait_for("/1/csirt", 1, WITHIN).await;
    assert_eq!(other.len(), 1, "no CISO: straight to its own first step");
    assert_eq!(other[0].json()["step"], 2);
    app.stop().await;
}

#[tokio::test]
async fn a_red_incident_reaches_only_the_csirt_and_names_nothing() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    contact(&app, &w, 1, "csirt", "/csirt").await;
    contact(&app, &w, 1, "system_manager", "/manager").await;
    let mut sent = alert(&w, &[1]);
    sent.tlp = "red".into();
    sent.at_risk[0].paths = Vec::new();
    app.publish(&sent).await;

    let got = app.sink.wait_for("/csirt", 1, WITHIN).await;
    assert_eq!(got.len(), 1, "the CSIRT is told");
    let body = got[0].json();
    assert_eq!(body["tlp"], "TLP:RED");
    assert_eq!(
        body["topic"],
        format!("incident/{}/spread_risk", sent.incident_id)
    );
    let (said, heading) = (text(&got[0]), title(&got[0]));
    for secret in [
        "Ransomware",
        "records system",
        "Agency 0 records",
        "Agency 1 records",
        "malware",
    ] {
        assert!(!said.contains(secret), "{secret} in {said}");
        assert!(!heading.contains(secret), "{secret} in {heading}");
    }
    assert!(said.starts_with("TLP:RED — "), "{said}");
    assert!(
        said.contains("Common Platform") && said.contains("/ack/"),
        "{said}"
    );
    assert!(said.contains("緊急"), "the severity: {said}");
    assert!(said.contains("Renkei"), "{said}");

    // What follows on the incident is just as bare.
    app.publish(&IncidentStatusChanged {
        incident_id: sent.incident_id,
        platform_id: w.platform,
        title: sent.title.clone(),
        severity: "critical".into(),
        from: "declared".into(),
        to: "contained".into(),
        notify: vec![w.orgs[1]],
        tlp: "red".into(),
    })
    .await;
    let update = app.sink.wait_for("/csirt", 2, WITHIN).await;
    assert_eq!(update.len(), 2);
    assert!(
        !text(&update[1]).contains("Ransomware"),
        "{}",
        text(&update[1])
    );
    assert!(!title(&update[1]).contains("Ransomware"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        app.sink.on("/manager").is_empty(),
        "a system manager is not told of a red incident"
    );
    app.stop().await;
}

#[tokio::test]
async fn amber_strict_reaches_the_organisations_own_people_but_not_its_liaison() {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    contact(&app, &w, 1, "system_manager", "/manager").await;
    contact(&app, &w, 1, "liaison", "/liaison").await;
    let mut sent = alert(&w, &[1]);
    sent.tlp = "amber+strict".into();
    app.publish(&sent).await;

    let got = app.sink.wait_for("/manager", 1, WITHIN).await;
    assert_eq!(got.len(), 1);
    let said = text(&got[0]);
    assert!(
        said.starts_with("TLP:AMBER+STRICT — 組織内限り\n"),
        "{said}"
    );
    assert!(
        said.contains("Ransomware"),
        "amber+strict keeps the detail: {said}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(app.sink.on("/liaison").is_empty(), "no liaison");
    app.stop().await;
}

#[tokio::test]
async fn each_organisation_at_risk_reads_its_own_systems_and_paths_and_the_informed_none() {
    let app = spawn_app().await;
    let w = world(&app, 3).await;
    contact(&app, &w, 1, "csirt", "/1").await;
    contact(&app, &w, 2, "csirt", "/2").await;
    app.create(
        "/v1/contacts",
        &w.operator,
        json!({"org_id": w.op_org, "name": "Platform duty", "role": "operator_on_duty",
               "availability": "emergency", "channels": [webhook(&app, "/operator")]}),
    )
    .await;
    let mut sent: IncidentSpreadRisk = alert(&w, &[1, 2]);
    sent.informed = vec![w.op_org];
    app.publish(&sent).await;

    let one = text(&app.sink.wait_for("/1", 1, WITHIN).await[0]);
    let two = text(&app.sink.wait_for("/2", 1, WITHIN).await[0]);
    let told = text(&app.sink.wait_for("/operator", 1, WITHIN).await[0]);
    assert!(one.starts_with("TLP:AMBER — "), "{one}");
    assert!(
        one.contains("- Agency 1 records: Agency 0 records → Common Platform → Agency 1 records"),
        "{one}"
    );
    assert!(!one.contains("Agency 2 records"), "not another's: {one}");
    assert!(
        two.contains("- Agency 2 records: Agency 0 records → Common Platform → Agency 2 records"),
        "{two}"
    );
    assert!(!two.contains("Agency 1 records"), "not another's: {two}");
    assert!(told.contains("連携"), "told for coordination: {told}");
    assert!(
        !told.contains("Agency 1 records") && !told.contains("Agency 2 records"),
        "{told}"
    );
    // One notification, on the topic the emergency service reads back.
    let topic = format!("incident/{}/spread_risk", sent.incident_id);
    let n = notification_about(&app, &w, IncidentSpreadRisk::SUBJECT, &topic).await;
    assert_eq!(n["organizations"].as_array().map(Vec::len), Some(3), "{n}");
    app.stop().await;
}

#[tokio::test]
async fn a_filed_report_reaches_the_central_body_as_an_emergency() {
    let app = spawn_app().await;
    let w = world(&app, 1).await;
    let central = app
        .create(
            "/v1/organizations",
            &w.admin,
            json!({"name": "National Centre", "kind": "central_body"}),
        )
        .await;
    let manager = token(Role::Manager, Some(central));
    // Contacts can be added once the contacts service knows the body.
    poll(WITHIN, || async {
        let (status, _) = app
            .post(
                "/v1/contacts",
                &manager,
                json!({"org_id": central, "name": "Centre duty", "role": "csirt",
                       "availability": "both", "channels": [webhook(&app, "/centre")]}),
            )
            .await;
        (status == 201).then_some(())
    })
    .await;
    let report = ReportFiled {
        report_id: Uuid::now_v7(),
        incident_id: Uuid::now_v7(),
        platform_id: w.platform,
        incident_title: "Ransomware on the records system".into(),
        kind: "initial".into(),
        tlp: "amber".into(),
        filed_by: w.orgs[0],
        notify: vec![central],
    };
    app.publish(&report).await;

    let got = app.sink.wait_for("/centre", 1, WITHIN).await;
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    assert_eq!(body["condition"], "emergency");
    assert_eq!(
        body["topic"],
        format!(
            "incident/{}/report/{}/filed",
            report.incident_id, report.report_id
        )
    );
    assert_eq!(body["incident_id"], json!(report.incident_id));
    let said = text(&got[0]);
    assert!(
        said.contains("Agency 0") && said.contains("第一報"),
        "{said}"
    );
    assert!(title(&got[0]).starts_with("【報告提出】"));
    app.stop().await;
}
