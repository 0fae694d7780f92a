//! Cold restart of everything (SIGKILL all): fault test 6 of issue 8.
//!
//! Agencies A, B and C have linked systems on the platform; A's system is
//! linked to B's by a link carrying malware (C's carries data leaks only).
//! B's escalation policy tells its CSIRT first and its CISO when nobody has
//! acknowledged after a short wait; A's initial report is due a few seconds
//! after a declaration (`emergency.initial_report_due_secs_severe`). A
//! malware incident is declared on A; B's CSIRT (and the operator and the
//! central body) are alerted; nobody acknowledges. Once every delivery of
//! that alert is recorded, every service process and the nats-server are
//! SIGKILLed together, before B's second step and A's report deadline are
//! due. Then NATS and the four services are started again.
//!
//! What must hold, and is checked against what the webhook receiver and the
//! APIs saw:
//! - the four services answer `/readyz` with 200 within 10 s of the restart
//!   (the figure is printed);
//! - B's CISO receives the step-2 escalation of the spread alert exactly
//!   once (one request, one delivery id), not before its due time (the
//!   `next_escalation_at` contacts showed before the crash) and promptly
//!   once due;
//! - A's CISO receives the initial-report-overdue escalation exactly once,
//!   not before the report's due time, and promptly;
//! - nothing received before the crash is received again (no delivery id
//!   repeated, no second delivery id for any (incident, receiver) pair), and
//!   after the restart nothing arrives but those two escalations;
//! - emergency's incident view shows the report escalated and B at step 2,
//!   its timeline one `escalated` entry (B, step 2) and one
//!   `report_overdue` entry; contacts shows B at step 2.
//!
//! Two timings: the deadlines fall due after everything is back (the
//! timers stored before the crash resume), and the deadlines fall due while
//! everything is down (they fire once, promptly, after the restart).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use renkei_testkit::processes::SERVICES;
use renkei_testkit::{Received, call};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::world::{Org, READY_WITHIN, World, id_at};

/// Everything answers `/readyz` this soon after a cold restart (issue 8).
const COLD_READY_WITHIN: Duration = Duration::from_secs(10);
/// A deadline that is due is acted on (escalated, delivered, received)
/// this soon after it is due, or after the services are ready when it fell
/// due while they were down: the timers' own latency, an event through
/// NATS to contacts, a webhook delivery, on a loaded two-core machine.
const PROMPTLY: Duration = Duration::from_secs(5);
/// After the last expected escalation, how long to keep watching for a
/// duplicate.
const SETTLE: Duration = Duration::from_secs(3);
/// Waits for things that happen at once (alerts, consumers catching up).
const STEP: Duration = Duration::from_secs(20);

/// The two cold-restart tests each run 8 processes on a two-core machine:
/// one at a time, so that neither's ready time measures the other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The scene at the moment of the crash.
struct Scene {
    a: Org,
    b: Org,
    incident: Uuid,
    /// The spread alert's notification (contacts).
    notification: Uuid,
    /// When B's second step is due (contacts' `next_escalation_at`).
    step2_due: DateTime<Utc>,
    /// When A's initial report is due (emergency's `report_due_at`).
    report_due: DateTime<Utc>,
    /// Everything the receiver got before the crash.
    before: Vec<Received>,
    /// The test's clock, to place `Received::at` on the wall clock.
    anchor: (Instant, DateTime<Utc>),
}

impl Scene {
    fn spread_topic(&self) -> String {
        format!("incident/{}/spread_risk", self.incident)
    }

    fn report_topic(&self) -> String {
        format!("report/{}/initial", self.incident)
    }

    /// The wall-clock time a request was received at.
    fn wall(&self, at: Instant) -> DateTime<Utc> {
        let (instant, utc) = self.anchor;
        utc + chrono::Duration::from_std(at.saturating_duration_since(instant)).unwrap_or_default()
    }
}

fn topic_of(r: &Received) -> String {
    r.json()["topic"].as_str().unwrap_or_default().to_owned()
}

fn delivery_of(r: &Received) -> String {
    r.header("x-renkei-delivery").unwrap_or_default().to_owned()
}

fn describe(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| {
            let body = r.json();
            format!(
                "{} {} step {} delivery {}",
                r.path,
                body["topic"].as_str().unwrap_or("?"),
                body["step"],
                delivery_of(r)
            )
        })
        .collect()
}

fn time_at(v: &Value, what: &str) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("{what}: expected a timestamp, saw {v}"))
}

async fn put(w: &World, service: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(
        &w.http,
        reqwest::Method::PUT,
        &format!("{}{path}", w.url(service)),
        Some(token),
        Some(body),
    )
    .await
}

/// Polls `GET path` on `service` until `check` holds; the last answer.
async fn until(
    w: &World,
    service: &str,
    path: &str,
    token: &str,
    within: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = w.get(service, path, token).await;
        if status == 200 && check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "expected {what} within {within:?} (GET {service} {path}); last saw {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Requests on `path` about `topic`.
fn about(w: &World, path: &str, topic: &str) -> Vec<Received> {
    w.sink
        .on(path)
        .into_iter()
        .filter(|r| topic_of(r) == topic)
        .collect()
}

async fn wait_about(w: &World, path: &str, topic: &str, within: Duration) -> Vec<Received> {
    let deadline = Instant::now() + within;
    loop {
        let got = about(w, path, topic);
        if !got.is_empty() || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGKILLs the four services and the nats-server, together.
fn kill_everything(w: &mut World) {
    w.services.kill_all();
    w.nats.kill();
}

/// Starts the nats-server and the four services again; how long until
/// every one answered `/readyz` with 200, and when that was.
async fn cold_start(w: &mut World) -> (Duration, Instant) {
    let started = Instant::now();
    w.nats
        .restart()
        .await
        .expect("the nats-server starts again");
    for service in SERVICES {
        w.services.start_one(service, &[]);
    }
    w.services.wait_ready(READY_WITHIN).await;
    let ready = Instant::now();
    (ready - started, ready)
}

/// Sets up the scene and waits until B's CSIRT got the spread alert and
/// every delivery of it is recorded; nobody acknowledges.
async fn prepare(w: &World, first_step_wait: u32) -> Scene {
    let a = w.org("Agency A", "government_agency", true).await;
    let b = w.org("Agency B", "government_agency", true).await;
    let c = w.org("Agency C", "government_agency", true).await;
    w.link(a.system(), b.system(), &["malware"]).await;
    w.link(c.system(), w.platform, &["data_leak"]).await;
    // B: its CSIRT first; its CISO when nobody acknowledged in time.
    let policy = json!({"steps": [
        {"targets": [{"kind": "role", "role": "csirt"}], "wait_seconds": first_step_wait},
        {"targets": [{"kind": "role", "role": "ciso"}], "wait_seconds": 3600}],
        "repeat": 0});
    let path = format!("/v1/organizations/{}/escalation-policy", b.id);
    let deadline = Instant::now() + STEP;
    loop {
        let (status, body) = put(w, "contacts", &path, &b.manager, policy.clone()).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected B's escalation policy to be accepted (200), saw {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.wait_known(3).await;

    let anchor = (Instant::now(), Utc::now());
    let (url, token, body) = w.declaration(&a, "Worm on the records server");
    let (status, incident) = call(
        &w.http,
        reqwest::Method::POST,
        &url,
        Some(&token),
        Some(body),
    )
    .await;
    assert_eq!(
        status, 201,
        "expected the declaration to be created: {incident}"
    );
    let incident = id_at(&incident["id"]);
    let spread = format!("incident/{incident}/spread_risk");
    let alerted = wait_about(w, &b.csirt(), &spread, STEP).await;
    assert_eq!(
        alerted.len(),
        1,
        "expected B's CSIRT to get the spread alert (step 1) once; saw {:?}",
        describe(&alerted)
    );
    assert_eq!(
        alerted[0].json()["step"],
        json!(1),
        "expected B's CSIRT alert at step 1"
    );
    let notification = id_at(&alerted[0].json()["notification_id"]);

    // Every delivery of the alert recorded as delivered by contacts, and
    // received: the crash cuts no delivery short, so any repeat is a bug.
    let deliveries = until(
        w,
        "contacts",
        &format!("/v1/notifications/{notification}/deliveries"),
        &w.admin,
        STEP,
        "every delivery of the spread alert recorded as delivered",
        |d| {
            d["items"].as_array().is_some_and(|items| {
                !items.is_empty() && items.iter().all(|i| i["state"] == "delivered")
            })
        },
    )
    .await;
    let recorded: HashSet<String> = deliveries["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("a delivery id").to_owned())
        .collect();
    let received: HashSet<String> = w
        .sink
        .since(0)
        .iter()
        .filter(|r| topic_of(r) == spread)
        .map(delivery_of)
        .collect();
    assert_eq!(
        received, recorded,
        "expected the receiver to have got exactly the deliveries contacts recorded"
    );

    let seen = until(
        w,
        "contacts",
        &format!("/v1/notifications/{notification}"),
        &w.admin,
        STEP,
        "B delivered at step 1 with its next step timed",
        |n| {
            n["organizations"].as_array().is_some_and(|orgs| {
                orgs.iter().any(|o| {
                    o["org_id"] == json!(b.id)
                        && o["step"] == json!(1)
                        && o["delivered"] == json!(true)
                        && o["next_escalation_at"].is_string()
                })
            })
        },
    )
    .await;
    let b_row = seen["organizations"]
        .as_array()
        .expect("organizations")
        .iter()
        .find(|o| o["org_id"] == json!(b.id))
        .expect("B's row")
        .clone();
    let step2_due = time_at(&b_row["next_escalation_at"], "B's next_escalation_at");
    // Emergency has taken in the delivery (the matrix shows B delivered).
    let view = until(
        w,
        "emergency",
        &format!("/v1/incidents/{incident}"),
        &a.manager,
        STEP,
        "the incident showing B's alert delivered at step 1",
        |i| {
            i["affected"].as_array().is_some_and(|rows| {
                rows.iter().any(|r| {
                    r["org_id"] == json!(b.id)
                        && r["delivered"] == json!(true)
                        && r["escalation_step"] == json!(1)
                })
            })
        },
    )
    .await;
    let report_due = time_at(&view["report_due_at"], "the incident's report_due_at");
    assert_eq!(
        view["report_escalated"],
        json!(false),
        "expected the report not escalated yet: {view}"
    );
    Scene {
        a,
        b,
        incident,
        notification,
        step2_due,
        report_due,
        before: w.sink.since(0),
        anchor,
    }
}

/// One escalation received after the restart: exactly one request with a
/// delivery id never seen before, at the step expected, sent not before its
/// due time and received no later than `by`.
fn check_escalation(
    scene: &Scene,
    what: &str,
    got: &[Received],
    step: u32,
    due: DateTime<Utc>,
    by: DateTime<Utc>,
    ready_at: DateTime<Utc>,
) {
    assert_eq!(
        got.len(),
        1,
        "expected {what} received exactly once; saw {:?}",
        describe(got)
    );
    let r = &got[0];
    let body = r.json();
    assert_eq!(
        body["step"],
        json!(step),
        "expected {what} at escalation step {step}; saw {body}"
    );
    let id = delivery_of(r);
    assert!(
        !id.is_empty() && !scene.before.iter().any(|b| delivery_of(b) == id),
        "expected {what} to be a new delivery; its id {id:?} was received before the crash"
    );
    let sent = time_at(&body["sent_at"], "sent_at");
    assert!(
        sent >= due,
        "expected {what} not before its due time {due}; it was sent at {sent}"
    );
    let arrived = scene.wall(r.at);
    assert!(
        arrived <= by,
        "expected {what} by {by} (due {due}); it arrived at {arrived}"
    );
    eprintln!(
        "{what}: due {due}, sent {sent} ({} ms after due), received {arrived} ({} ms after \
         every service was ready)",
        (sent - due).num_milliseconds(),
        (arrived - ready_at).num_milliseconds()
    );
}

/// Crash, restart, check. `down_until`: keep everything down until then.
async fn crash_and_check(w: &mut World, scene: &Scene, down_until: Option<DateTime<Utc>>) {
    let now = Utc::now();
    assert!(
        now < scene.step2_due && now < scene.report_due,
        "expected the crash before B's step 2 ({}) and A's report deadline ({}); it is {now} \
         already (the machine is too slow for this test's timings)",
        scene.step2_due,
        scene.report_due
    );
    eprintln!(
        "crash {} ms before B's step 2 and {} ms before A's report deadline",
        (scene.step2_due - now).num_milliseconds(),
        (scene.report_due - now).num_milliseconds()
    );
    kill_everything(w);
    if let Some(until) = down_until {
        let left = (until - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(left).await;
        let now = Utc::now();
        assert!(
            now > scene.step2_due && now > scene.report_due,
            "expected both deadlines to have passed while everything was down"
        );
    }
    let (took, ready) = cold_start(w).await;
    let ready_at = scene.wall(ready);
    eprintln!(
        "cold restart (nats-server and four services): ready in {} ms",
        took.as_millis()
    );
    assert!(
        took <= COLD_READY_WITHIN,
        "expected every service ready (/readyz 200) within {COLD_READY_WITHIN:?} of a cold \
         restart; took {took:?}"
    );

    // Nothing due may have happened before the restart (it was all down).
    let promptly = chrono::Duration::from_std(PROMPTLY).expect("a duration");
    let step2_by = scene.step2_due.max(ready_at) + promptly;
    let report_by = scene.report_due.max(ready_at) + promptly;
    let wait_until = step2_by.max(report_by) + chrono::Duration::seconds(1);
    let within = (wait_until - Utc::now()).to_std().unwrap_or_default();
    let spread = scene.spread_topic();
    let report = scene.report_topic();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline
        && (about(w, &scene.b.ciso(), &spread).is_empty()
            || about(w, &scene.a.ciso(), &report).is_empty())
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(SETTLE).await;

    check_escalation(
        scene,
        "B's CISO's step-2 escalation of the spread alert",
        &about(w, &scene.b.ciso(), &spread),
        2,
        scene.step2_due,
        step2_by,
        ready_at,
    );
    check_escalation(
        scene,
        "A's CISO's initial-report-overdue escalation",
        &about(w, &scene.a.ciso(), &report),
        1,
        scene.report_due,
        report_by,
        ready_at,
    );

    // What the receiver got after the crash: those two, nothing else.
    let after = w.sink.since(scene.before.len());
    let expected: HashSet<(String, String)> = [
        (scene.b.ciso(), spread.clone()),
        (scene.a.ciso(), report.clone()),
    ]
    .into();
    let seen: Vec<(String, String)> = after
        .iter()
        .map(|r| (r.path.clone(), topic_of(r)))
        .collect();
    assert_eq!(
        seen.iter().cloned().collect::<HashSet<_>>(),
        expected,
        "expected after the restart only B's CISO's step 2 and A's CISO's report escalation; \
         saw {:?}",
        describe(&after)
    );
    assert_eq!(
        seen.len(),
        2,
        "expected two requests after the restart; saw {:?}",
        describe(&after)
    );
    let before_ids: HashSet<String> = scene.before.iter().map(delivery_of).collect();
    let repeated: Vec<String> = after
        .iter()
        .filter(|r| before_ids.contains(&delivery_of(r)))
        .map(|r| format!("{} {}", r.path, delivery_of(r)))
        .collect();
    assert!(
        repeated.is_empty(),
        "expected no delivery received before the crash to be received again; repeated: {repeated:?}"
    );

    // Per (incident, receiver): one delivery id, one request.
    let alerts = w.alerts();
    assert!(
        alerts.doubled().is_empty(),
        "expected one delivery id per (incident, receiver); doubled: {:?}",
        alerts.doubled()
    );
    assert_eq!(
        alerts.resent(),
        0,
        "expected no spread alert received twice; by receiver: {:?}",
        alerts.by_pair
    );
    let b_csirt = alerts
        .by_pair
        .get(&(scene.incident, scene.b.csirt()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        b_csirt.len(),
        1,
        "expected B's CSIRT to hold exactly one spread-alert delivery; saw {b_csirt:?}"
    );

    // Emergency: the report escalated once, B at step 2 once.
    let path = format!("/v1/incidents/{}", scene.incident);
    let view = until(
        w,
        "emergency",
        &path,
        &scene.a.manager,
        STEP,
        "the report escalated and B at step 2",
        |i| {
            i["report_escalated"] == json!(true)
                && i["affected"].as_array().is_some_and(|rows| {
                    rows.iter().any(|r| {
                        r["org_id"] == json!(scene.b.id) && r["escalation_step"] == json!(2)
                    })
                })
        },
    )
    .await;
    let b_row = view["affected"]
        .as_array()
        .expect("affected")
        .iter()
        .find(|r| r["org_id"] == json!(scene.b.id))
        .expect("B affected")
        .clone();
    assert_eq!(
        (b_row["delivered"].clone(), b_row["acknowledged"].clone()),
        (json!(true), json!(false)),
        "expected B delivered and not acknowledged: {b_row}"
    );
    let timeline = until(
        w,
        "emergency",
        &format!("{path}/timeline"),
        &scene.a.manager,
        STEP,
        "the timeline showing the escalation and the overdue report",
        |t| {
            t["items"].as_array().is_some_and(|items| {
                items.iter().any(|e| e["kind"] == "escalated")
                    && items.iter().any(|e| e["kind"] == "report_overdue")
            })
        },
    )
    .await;
    let items = timeline["items"].as_array().expect("items");
    let mut kinds: HashMap<&str, Vec<&Value>> = HashMap::new();
    for e in items {
        kinds
            .entry(e["kind"].as_str().unwrap_or_default())
            .or_default()
            .push(e);
    }
    let escalated = kinds.get("escalated").cloned().unwrap_or_default();
    assert_eq!(
        escalated.len(),
        1,
        "expected one `escalated` timeline entry; saw {escalated:?}"
    );
    assert_eq!(
        (
            escalated[0]["org_id"].clone(),
            escalated[0]["detail"]["step"].clone()
        ),
        (json!(scene.b.id), json!(2)),
        "expected the escalation to be B's, to step 2: {}",
        escalated[0]
    );
    let overdue = kinds.get("report_overdue").cloned().unwrap_or_default();
    assert_eq!(
        overdue.len(),
        1,
        "expected one `report_overdue` timeline entry; saw {overdue:?}"
    );
    assert_eq!(
        overdue[0]["org_id"],
        json!(scene.a.id),
        "expected the overdue report to be A's: {}",
        overdue[0]
    );
    assert_eq!(
        kinds.get("declared").map(Vec::len),
        Some(1),
        "expected one `declared` entry: {timeline}"
    );

    // Contacts: B at step 2 of round 0, its next step an hour on.
    let n = until(
        w,
        "contacts",
        &format!("/v1/notifications/{}", scene.notification),
        &w.admin,
        STEP,
        "B at step 2",
        |n| {
            n["organizations"].as_array().is_some_and(|orgs| {
                orgs.iter()
                    .any(|o| o["org_id"] == json!(scene.b.id) && o["step"] == json!(2))
            })
        },
    )
    .await;
    let b_row = n["organizations"]
        .as_array()
        .expect("organizations")
        .iter()
        .find(|o| o["org_id"] == json!(scene.b.id))
        .expect("B")
        .clone();
    assert_eq!(
        (b_row["round"].clone(), b_row["acknowledged_at"].clone()),
        (json!(0), Value::Null),
        "expected B in round 0, unacknowledged: {b_row}"
    );
    let next = time_at(
        &b_row["next_escalation_at"],
        "B's next_escalation_at after step 2",
    );
    assert!(
        next >= scene.step2_due + chrono::Duration::seconds(3600),
        "expected B's next step an hour after step 2 was due ({}); saw {next}",
        scene.step2_due
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_cold_restart_of_everything_pending_escalations_and_report_deadlines_resume() {
    let _one = ONE_AT_A_TIME.lock().await;
    // Due 14 s (B's step 2) and 16 s (A's report) after the declaration:
    // after the crash (about 2 s in) and after the services are back.
    let mut w = World::start(&[("RENKEI_EMERGENCY__INITIAL_REPORT_DUE_SECS_SEVERE", "16")]).await;
    let scene = prepare(&w, 14).await;
    crash_and_check(&mut w, &scene, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deadlines_that_fell_due_while_everything_was_down_fire_once_promptly_after_a_cold_restart()
{
    let _one = ONE_AT_A_TIME.lock().await;
    // Due 6 s and 7 s after the declaration; everything stays down until
    // both are 2 s overdue.
    let mut w = World::start(&[("RENKEI_EMERGENCY__INITIAL_REPORT_DUE_SECS_SEVERE", "7")]).await;
    let scene = prepare(&w, 6).await;
    let down_until = scene.step2_due.max(scene.report_due) + chrono::Duration::seconds(2);
    crash_and_check(&mut w, &scene, Some(down_until)).await;
}
