//! The contacts service's part of the audit record: contacts created by
//! managers, a notification opened by the service itself, and an
//! acknowledgement made through the public link, whose actor is the
//! contact who clicked it; each organisation reads its own, and the chain
//! in the service's database verifies.

mod common;

use std::time::Duration;

use common::*;
use renkei_testkit::token;
use renkei_web::Role;
use serde_json::Value;

fn entries(page: &Value) -> Vec<Value> {
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_acknowledgement_through_the_link_is_audited_as_the_contacts_and_read_by_its_organisation()
 {
    let app = spawn_app().await;
    let w = world(&app, 2).await;
    let contact_a = contact(&app, &w, 0, "csirt", "/a").await;
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
    let confirm = app.http.post(&path).send().await.expect("POST");
    assert_eq!(confirm.status(), 200);
    let n = notification_of(&app, &w, sent.incident_id).await;
    let notification = n["id"].as_str().expect("id").to_owned();

    // The auditor sees the service opening the notification, for both.
    let auditor = token(Role::Auditor, None);
    let (status, page) = app.get("/v1/audit?service=contacts", &auditor).await;
    assert_eq!(status, 200, "{page}");
    let all = entries(&page);
    let opened = all
        .iter()
        .find(|e| e["action"] == "notification.opened" && e["object_id"] == notification.as_str())
        .unwrap_or_else(|| panic!("the opening is audited: {page}"));
    assert_eq!(opened["actor_sub"], "service:contacts");
    assert_eq!(opened["actor_org"], Value::Null);
    assert_eq!(opened["detail"]["organizations"], 2);

    // A's manager sees the acknowledgement, made by A's contact through
    // the link; B's manager never sees it.
    let (_, page) = app.get("/v1/audit?service=contacts", &w.managers[0]).await;
    let ack = entries(&page)
        .into_iter()
        .find(|e| e["action"] == "notification.acknowledged")
        .unwrap_or_else(|| panic!("A reads its acknowledgement: {page}"));
    assert_eq!(ack["actor_sub"], format!("contact:{contact_a}"));
    assert_eq!(ack["actor_org"], w.orgs[0].to_string());
    assert_eq!(ack["actor_roles"], serde_json::json!(["contact"]));
    assert_eq!(ack["organization_id"], w.orgs[0].to_string());
    assert_eq!(ack["object_id"], notification.as_str());
    assert_eq!(ack["detail"]["via"], "link");
    let (_, page) = app.get("/v1/audit?service=contacts", &w.managers[1]).await;
    let seen_by_b = entries(&page);
    assert!(
        seen_by_b
            .iter()
            .all(|e| e["action"] != "notification.acknowledged"),
        "{page}"
    );
    assert!(
        seen_by_b
            .iter()
            .any(|e| e["action"] == "contact.created" && e["actor_org"] == w.orgs[1].to_string()),
        "B reads its own contact: {page}"
    );

    // The chain in the contacts database is intact.
    let db = renkei_store::Db::connect(
        &app.settings.database_url_for(renkei_contacts::SERVICE),
        renkei_contacts::SERVICE,
        1,
    )
    .await
    .expect("the contacts database");
    let verdict = renkei_audit::verify_database(&db.read, renkei_contacts::SERVICE, &[], &[])
        .await
        .expect("verified");
    assert!(verdict.intact(), "{verdict}");
    assert!(verdict.outcome.entries as usize >= all.len(), "{verdict}");
    app.stop().await;
}
