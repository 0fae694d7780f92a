//! The console, tested in a real browser (Debian's headless Chromium
//! through chromedriver) against the whole product on real NATS and a real
//! database: a manager reads the proposed rules and accepts, and the
//! consensus board changes; an incident declared on one system reaches a
//! manager of an affected organisation, who acknowledges it from the
//! incident page; a manager cannot open another organisation's contacts;
//! the language switch shows Japanese. Every page is saved as a screenshot
//! (`target/console-screenshots`). Beside them, without a browser: a form
//! posted without its token is refused and changes nothing, bad input is
//! refused naming the field, and sign-in through an OpenID Connect
//! provider runs the code flow with PKCE and sets a `Secure` cookie.

mod browser;
mod idp;
mod visitor;
mod world;

use std::sync::LazyLock;
use std::time::Duration;

use browser::Browser;
use serde_json::Value;
use visitor::{Visitor, csrf_of};
use world::World;

/// One browser at a time: two cores run the product and Chromium.
static BROWSERS: LazyLock<tokio::sync::Semaphore> =
    LazyLock::new(|| tokio::sync::Semaphore::new(1));

const ARRIVES: Duration = Duration::from_secs(30);

/// Signs in on the development sign-in page as `role` of `org`.
async fn sign_in(b: &Browser, org: Option<uuid::Uuid>, role: &str, name: &str) {
    b.open("/console").await;
    assert!(
        b.url().await.contains("/console/sign-in"),
        "{}",
        b.url().await
    );
    b.choose("#org", &org.map(|o| o.to_string()).unwrap_or_default())
        .await;
    b.choose("#role", role).await;
    b.fill("#name", name).await;
    b.submit("#sign-in").await;
    let who = b.text("#who").await;
    assert!(who.contains(name), "signed in as {who}");
}

async fn sign_out(b: &Browser) {
    b.submit("header form[action='/console/sign-out'] button")
        .await;
    assert!(b.url().await.contains("/console/sign-in"));
}

/// Form controls without a label, on the page as it is.
async fn unlabelled_controls(b: &Browser) -> Vec<String> {
    let script = r#"
        return Array.from(document.querySelectorAll('input, select, textarea'))
          .filter(e => e.type !== 'hidden' && !e.labels.length && !e.getAttribute('aria-label'))
          .map(e => e.outerHTML);"#;
    let answer = b.driver.execute(script, vec![]).await.expect("script");
    serde_json::from_value(answer.json().clone()).expect("a list of controls")
}

#[tokio::test]
async fn a_manager_reads_the_proposed_rules_accepts_and_the_consensus_board_changes() {
    let _one = BROWSERS.acquire().await.expect("permit");
    let w = World::start(|_| {}).await;
    let (a, b_org) = (&w.agencies[0], &w.agencies[1]);
    let b = Browser::start(&w.base, "rules").await;
    b.open("/console").await;
    b.shot("sign-in").await;
    sign_in(&b, Some(a.id), "manager", "tanaka").await;

    b.open("/console/rules").await;
    let proposal = b.text("#proposal").await;
    assert!(
        proposal.contains("Incident reporting")
            && proposal.contains("Report every security incident to the platform operator"),
        "the proposal reads as a document: {proposal}"
    );
    assert_eq!(b.text("#accepted-count").await, "0");
    assert_eq!(b.text("#pending-count").await, "3");
    b.shot("proposal").await;

    b.click("#decision-accept").await;
    b.submit("#decide").await;
    assert_eq!(b.text("#accepted-count").await, "1", "{}", b.source().await);
    assert_eq!(b.text("#pending-count").await, "2");
    assert_eq!(b.text("#your-position").await, "Accepted");
    let row = b.text(&format!("tr[data-org='{}']", a.id)).await;
    assert!(row.contains("Accepted") && row.contains("tanaka"), "{row}");
    b.shot("accepted").await;

    // A second agency objects, with its reason, and the board shows it.
    sign_out(&b).await;
    sign_in(&b, Some(b_org.id), "manager", "suzuki").await;
    b.open("/console/rules").await;
    b.click("#decision-object").await;
    b.fill("#reason", "R2 needs our legal department's review")
        .await;
    b.submit("#decide").await;
    assert_eq!(b.text("#objected-count").await, "1");
    let row = b.text(&format!("tr[data-org='{}']", b_org.id)).await;
    assert!(
        row.contains("Objected") && row.contains("legal department"),
        "{row}"
    );
    b.shot("board").await;

    // What the API says is what the board showed.
    let (_, consensus) = w
        .call(
            reqwest::Method::GET,
            &format!("/v1/rules/{}/consensus", w.rules),
            &w.operator,
            None,
        )
        .await;
    assert_eq!(
        consensus["accepted"],
        serde_json::json!([a.id]),
        "{consensus}"
    );
    assert_eq!(
        consensus["objected"],
        serde_json::json!([b_org.id]),
        "{consensus}"
    );
    b.quit().await;
    w.stop().await;
}

#[tokio::test]
async fn a_manager_of_an_affected_organisation_sees_the_alert_and_acknowledges_it_from_the_incident_page()
 {
    let _one = BROWSERS.acquire().await.expect("permit");
    let w = World::start(|_| {}).await;
    let (a, b_org, c) = (&w.agencies[0], &w.agencies[1], &w.agencies[2]);
    let b = Browser::start(&w.base, "incident").await;

    // Agency A's manager declares an incident on A's system.
    sign_in(&b, Some(a.id), "manager", "tanaka").await;
    b.open("/console/incidents").await;
    b.choose("#d-system", &a.system.to_string()).await;
    b.choose("#d-category", "malware").await;
    b.choose("#d-severity", "2").await;
    b.choose("#d-tlp", "amber").await;
    b.fill("#d-summary", "Ransomware found on the records server")
        .await;
    b.shot("declare").await;
    b.submit("#declare-submit").await;
    assert!(
        b.url().await.contains("/console/incidents/"),
        "{}",
        b.url().await
    );
    let incident = b
        .url()
        .await
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(b.text("#tlp").await.starts_with("TLP:AMBER"));
    let affected = b.wait_for_text("#affected", "Agency B", ARRIVES).await;
    assert!(
        !affected.contains("Agency C"),
        "C is linked to nothing: {affected}"
    );
    b.shot("declared").await;

    // Agency B's manager sees the alert and acknowledges it.
    sign_out(&b).await;
    sign_in(&b, Some(b_org.id), "manager", "suzuki").await;
    b.open("/console/incidents").await;
    let list = b.text("#incidents").await;
    assert!(list.contains("Agency A records"), "{list}");
    b.shot("list").await;
    b.submit(&format!("a[href='/console/incidents/{incident}']"))
        .await;
    // The alert reaches B's CSIRT over NATS and its webhook: once it is
    // delivered, the acknowledge button is there.
    b.wait_for_text(&format!("tr[data-org='{}']", b_org.id), "Yes", ARRIVES)
        .await;
    let alert = b.text("#acknowledge-form").await;
    assert!(
        alert.contains("Your organisation has been alerted"),
        "{alert}"
    );
    b.shot("alerted").await;
    b.submit("#acknowledge").await;
    let row = format!("tr[data-org='{}'] td.ack", b_org.id);
    let acknowledged = b.wait_for_text(&row, "Yes", ARRIVES).await;
    assert!(acknowledged.contains("suzuki"), "{acknowledged}");
    assert!(
        b.driver
            .find(thirtyfour::By::Id("acknowledge"))
            .await
            .is_err(),
        "no second acknowledgement"
    );
    b.shot("acknowledged").await;

    // The open page follows the incident by itself: the operator triages
    // it, and the status changes with no reload.
    let (status, body) = w
        .call(
            reqwest::Method::POST,
            &format!("/v1/incidents/{incident}/status"),
            &w.operator,
            Some(serde_json::json!({"to": "triaged", "reason": "Scope confirmed by the operator"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    b.wait_live("#status", "Triaged", Duration::from_secs(30))
        .await;

    // The API agrees, and only B was alerted.
    let (_, view) = w
        .call(
            reqwest::Method::GET,
            &format!("/v1/incidents/{incident}"),
            &w.operator,
            None,
        )
        .await;
    let affected: Vec<&Value> = view["affected"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let row = affected
        .iter()
        .find(|r| r["org_id"] == b_org.id.to_string())
        .expect("B is affected");
    assert_eq!(row["acknowledged"], true, "{view}");
    assert!(affected.iter().all(|r| r["org_id"] != c.id.to_string()));
    assert!(
        !w.sink
            .wait_for(&format!("/{}/csirt", b_org.id), 1, ARRIVES)
            .await
            .is_empty()
    );
    b.quit().await;
    w.stop().await;
}

#[tokio::test]
async fn a_manager_keeps_their_contacts_and_escalation_policy_and_cannot_open_another_organisations()
 {
    let _one = BROWSERS.acquire().await.expect("permit");
    let w = World::start(|_| {}).await;
    let (a, b_org) = (&w.agencies[0], &w.agencies[1]);
    let b = Browser::start(&w.base, "contacts").await;
    sign_in(&b, Some(a.id), "manager", "tanaka").await;
    b.open("/console/contacts").await;
    assert_eq!(b.text("#org-name").await, "Agency A");
    assert!(b.text("#contacts").await.contains("Agency A CSIRT"));
    b.shot("own").await;

    // The organisation keeps its contacts and escalation policy current.
    b.fill("#c-name", "Yamada Hanako").await;
    b.choose("#c-role", "ciso").await;
    b.choose("#c-availability", "emergency").await;
    b.choose("#c-channel", "email").await;
    b.fill("#c-address", "ciso@agency-a.example.go.jp").await;
    b.submit("#add-contact-submit").await;
    assert!(b.text("#contacts").await.contains("Yamada Hanako"));
    let manager = renkei_testkit::token(renkei_web::Role::Manager, Some(a.id));
    let (_, contacts) = w
        .call(
            reqwest::Method::GET,
            &format!("/v1/contacts?org_id={}", a.id),
            &manager,
            None,
        )
        .await;
    let yamada = contacts["items"]
        .as_array()
        .and_then(|items| items.iter().find(|c| c["name"] == "Yamada Hanako"))
        .and_then(|c| c["id"].as_str())
        .expect("the new contact")
        .to_owned();
    b.choose("#step1", "role:csirt").await;
    b.fill("#wait1", "5").await;
    b.choose("#step2", &format!("contact:{yamada}")).await;
    b.fill("#wait2", "30").await;
    b.fill("#repeat", "2").await;
    b.submit("#save-policy").await;
    let policy = b.text("#policy").await;
    assert!(
        policy.contains("CSIRT") && policy.contains("Yamada Hanako"),
        "{policy}"
    );
    let (_, saved) = w
        .call(
            reqwest::Method::GET,
            &format!("/v1/organizations/{}/escalation-policy", a.id),
            &manager,
            None,
        )
        .await;
    assert_eq!(saved["repeat"], 2, "{saved}");
    assert_eq!(saved["steps"][0]["targets"][0]["role"], "csirt", "{saved}");
    assert_eq!(saved["steps"][0]["wait_seconds"], 300, "{saved}");
    assert_eq!(
        saved["steps"][1]["targets"][0]["contact_id"],
        yamada.as_str(),
        "{saved}"
    );
    b.shot("policy").await;
    // The first contact leaves the organisation: removed, and gone from
    // the API too.
    b.submit("button[aria-label='Remove: Agency A CSIRT']")
        .await;
    assert!(!b.text("#contacts").await.contains("Agency A CSIRT"));
    let (_, left) = w
        .call(
            reqwest::Method::GET,
            &format!("/v1/contacts?org_id={}", a.id),
            &manager,
            None,
        )
        .await;
    let names: Vec<&str> = left["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["Yamada Hanako"], "{left}");

    b.open(&format!("/console/organizations/{}/contacts", b_org.id))
        .await;
    let problem = b.text("#problem").await;
    assert!(problem.contains("404"), "{problem}");
    assert!(!b.source().await.contains("Agency B CSIRT"));
    b.shot("refused").await;

    // The same by status code.
    let mut v = Visitor::new(&w.base);
    let page = v.get("/console/sign-in").await;
    let csrf = csrf_of(&page.body);
    let org = a.id.to_string();
    let signed = v
        .post(
            "/console/sign-in",
            &[
                ("csrf", &csrf),
                ("org", &org),
                ("role", "manager"),
                ("name", "tanaka"),
            ],
        )
        .await;
    assert_eq!(signed.status, 303);
    let other = v
        .get(&format!("/console/organizations/{}/contacts", b_org.id))
        .await;
    assert_eq!(other.status, 404, "{}", other.body);
    assert!(!other.body.contains("Agency B CSIRT"));
    // A wait out of range (the browser's own check stops it; a hand-made
    // post gets past) is refused naming the field, and nothing changes.
    let own = v
        .get(&format!("/console/organizations/{}/contacts", a.id))
        .await;
    let token = csrf_of(&own.body);
    let refused = v
        .post(
            &format!("/console/organizations/{}/escalation-policy", a.id),
            &[("csrf", &token), ("step1", "role:csirt"), ("wait1", "0")],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains(">wait1<"), "{}", refused.body);
    let (_, unchanged) = w
        .call(
            reqwest::Method::GET,
            &format!("/v1/organizations/{}/escalation-policy", a.id),
            &manager,
            None,
        )
        .await;
    assert_eq!(unchanged, saved);
    b.quit().await;
    w.stop().await;
}

#[tokio::test]
async fn the_language_switch_shows_japanese() {
    let _one = BROWSERS.acquire().await.expect("permit");
    let w = World::start(|_| {}).await;
    let a = &w.agencies[0];
    let b = Browser::start(&w.base, "language").await;
    b.open("/console/sign-in").await;
    assert_eq!(b.text("h1").await, "Sign in");
    b.submit("#lang-ja").await;
    assert_eq!(b.text("h1").await, "サインイン");
    let html = b.find("html").await;
    assert_eq!(
        html.attr("lang").await.expect("lang").as_deref(),
        Some("ja")
    );
    b.shot("sign-in-ja").await;

    sign_in(&b, Some(a.id), "manager", "tanaka").await;
    b.open("/console/platform").await;
    assert_eq!(b.text("h1").await, "共通基盤");
    assert!(b.text("header nav").await.contains("インシデント"));
    assert!(b.text("#systems").await.contains("連携システム"));
    b.shot("platform-ja").await;
    b.open("/console/rules").await;
    assert!(
        b.text("#proposal").await.contains("回答期限")
            || b.text("#proposal").await.contains("合意状況")
    );
    b.shot("rules-ja").await;

    b.submit("#lang-en").await;
    assert_eq!(b.text("h1").await, "Common rules");
    b.quit().await;
    w.stop().await;
}

#[tokio::test]
async fn every_page_renders_with_labelled_controls_and_is_saved_as_a_screenshot() {
    let _one = BROWSERS.acquire().await.expect("permit");
    let w = World::start(|_| {}).await;
    let a = &w.agencies[0];
    let b = Browser::start(&w.base, "page").await;
    sign_in(&b, Some(w.op_org), "operator", "sato").await;
    let platform = format!(
        "/console/platform?platform={}&system={}&category=malware",
        w.platform, a.system
    );
    let pages = [
        ("home", "/console".to_owned()),
        ("platform", platform),
        ("rules", "/console/rules".to_owned()),
        ("matrix", "/console/matrix".to_owned()),
        ("contacts", "/console/contacts".to_owned()),
        ("incidents", "/console/incidents".to_owned()),
    ];
    for (name, path) in &pages {
        b.open(path).await;
        assert!(
            b.driver.find(thirtyfour::By::Id("problem")).await.is_err(),
            "{name}: {}",
            b.source().await
        );
        assert!(!b.text("h1").await.is_empty(), "{name} has a heading");
        let unlabelled = unlabelled_controls(&b).await;
        assert!(
            unlabelled.is_empty(),
            "{name}: controls without a label: {unlabelled:?}"
        );
        b.shot(name).await;
    }
    // The blast radius of malware on A's system: the platform, then B.
    b.open(&pages[1].1).await;
    assert_eq!(
        b.text("#radius-summary").await,
        "Systems it may spread to: 2"
    );
    let reached = b
        .driver
        .find_all(thirtyfour::By::Css("#graph g.reached"))
        .await
        .expect("nodes");
    assert_eq!(reached.len(), 2);
    let origin = b.find("#graph g.origin").await;
    assert_eq!(
        origin.attr("data-system").await.expect("attr"),
        Some(a.system.to_string())
    );
    // The matrix: R/A/C/I per organisation, the gaps marked.
    b.open("/console/matrix").await;
    assert!(b.text("#gap-summary").await.starts_with("Gaps"));
    let rows = b
        .driver
        .find_all(thirtyfour::By::Css("#matrix tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2, "the two controls in scope");
    let first = rows[0].text().await.expect("row");
    assert!(first.starts_with("organization-management"), "{first}");
    assert_eq!(
        rows[0].attr("class").await.expect("class"),
        None,
        "no gap: {first}"
    );
    let second = rows[1].text().await.expect("row");
    assert!(second.contains("no accountable organisation"), "{second}");
    let cells = rows[1]
        .find_all(thirtyfour::By::Css("td"))
        .await
        .expect("cells");
    let letters: Vec<String> = futures::future::join_all(cells.iter().map(|c| c.text()))
        .await
        .into_iter()
        .map(|t| t.unwrap_or_default())
        .collect();
    // Columns: Agency A, Agency B, Agency C, the operator, then the gaps.
    assert_eq!(&letters[..4], ["C", "R", "", ""], "{letters:?}");
    b.quit().await;
    w.stop().await;
}

#[tokio::test]
async fn a_form_posted_without_its_token_is_refused_and_changes_nothing() {
    let w = World::start(|_| {}).await;
    let a = &w.agencies[0];
    let mut v = Visitor::new(&w.base);
    let page = v.get("/console/sign-in").await;
    assert_eq!(page.status, 200);
    let first = csrf_of(&page.body);
    let org = a.id.to_string();
    // Sign-in itself needs the token.
    let refused = v
        .post(
            "/console/sign-in",
            &[("org", &org), ("role", "manager"), ("name", "tanaka")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains(">csrf<"), "{}", refused.body);
    let signed = v
        .post(
            "/console/sign-in",
            &[
                ("csrf", &first),
                ("org", &org),
                ("role", "manager"),
                ("name", "tanaka"),
            ],
        )
        .await;
    assert_eq!(
        (signed.status, signed.location.as_deref()),
        (303, Some("/console"))
    );
    let cookie = signed
        .set_cookie
        .iter()
        .find(|c| c.starts_with("renkei_console="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/console"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP in development: {cookie}"
    );

    let rules = v.get("/console/rules").await;
    let token = csrf_of(&rules.body);
    assert_ne!(token, first, "signing in gives a new form token");
    let decision = format!("/console/rules/{}/decision", w.rules);
    let mut stranger = Visitor::new(&w.base);
    let theirs = csrf_of(&stranger.get("/console/sign-in").await.body);
    for (case, form) in [
        ("no token", vec![("decision", "accept")]),
        (
            "another session's token",
            vec![("decision", "accept"), ("csrf", theirs.as_str())],
        ),
        (
            "this session's token from before signing in",
            vec![("decision", "accept"), ("csrf", first.as_str())],
        ),
        ("an empty token", vec![("decision", "accept"), ("csrf", "")]),
    ] {
        let answer = v.post(&decision, &form).await;
        assert_eq!(answer.status, 403, "{case}: {}", answer.body);
        assert!(
            answer.body.contains("problem-field") && answer.body.contains(">csrf<"),
            "{case}"
        );
    }
    async fn consensus(w: &World) -> Value {
        let path = format!("/v1/rules/{}/consensus", w.rules);
        w.call(reqwest::Method::GET, &path, &w.operator, None)
            .await
            .1
    }
    assert_eq!(
        consensus(&w).await["accepted"],
        serde_json::json!([]),
        "nothing changed"
    );

    // Bad input is refused naming the field, and changes nothing.
    let answer = v
        .post(&decision, &[("decision", "maybe"), ("csrf", &token)])
        .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains(">decision<"), "{}", answer.body);
    let answer = v
        .post(&decision, &[("decision", "object"), ("csrf", &token)])
        .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains(">reason<"), "{}", answer.body);
    let system = a.system.to_string();
    let declare = [
        ("csrf", token.as_str()),
        ("system_id", system.as_str()),
        ("category", "volcano"),
        ("severity", "2"),
        ("tlp", "amber"),
        ("summary", "Ransomware on the file server since 02:40"),
    ];
    let answer = v.post("/console/incidents", &declare).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body.contains(">category<"),
        "the API's field is shown: {}",
        answer.body
    );
    assert!(
        answer
            .body
            .contains(">Ransomware on the file server since 02:40</textarea>")
            && answer.body.contains("aria-invalid"),
        "the refused form keeps what was typed and marks the field: {}",
        answer.body
    );
    let answer = v
        .post(
            "/console/preferences",
            &[("csrf", &token), ("time_zone", "Mars/Olympus")],
        )
        .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains(">time_zone<"));
    let (_, incidents) = w
        .call(reqwest::Method::GET, "/v1/incidents", &w.operator, None)
        .await;
    assert_eq!(
        incidents["items"],
        serde_json::json!([]),
        "no incident was declared"
    );
    assert_eq!(consensus(&w).await["accepted"], serde_json::json!([]));

    // With its token the same form works.
    let answer = v
        .post(&decision, &[("decision", "accept"), ("csrf", &token)])
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(consensus(&w).await["accepted"], serde_json::json!([a.id]));

    // A form sent after the session ended goes to sign in, and back to the
    // page the form was on (not to a refusal).
    let mut expired = Visitor::new(&w.base);
    expired.referer = Some(format!("{}/console/rules?platform={}", w.base, w.platform));
    let answer = expired
        .post(&decision, &[("decision", "accept"), ("csrf", "x")])
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(
        answer.location,
        Some(format!(
            "/console/sign-in?next=%2Fconsole%2Frules%3Fplatform%3D{}",
            w.platform
        ))
    );

    // Signed out, the pages send you to sign in.
    let out = v.post("/console/sign-out", &[("csrf", &token)]).await;
    assert_eq!(out.status, 303);
    let home = v.get("/console/rules").await;
    assert_eq!(home.status, 303);
    assert_eq!(
        home.location.as_deref(),
        Some("/console/sign-in?next=%2Fconsole%2Frules")
    );
    w.stop().await;
}

#[tokio::test]
async fn pages_answer_in_the_language_the_browser_asks_for_and_dates_in_the_users_zone() {
    let w = World::start(|_| {}).await;
    let mut v = Visitor::new(&w.base);
    v.accept_language = Some("ja-JP,ja;q=0.9,en;q=0.5".into());
    let ja = v.get("/console/sign-in").await;
    assert!(ja.body.contains("<html lang=\"ja\">") && ja.body.contains("サインイン"));
    v.accept_language = Some("en-GB,en;q=0.9".into());
    let en = v.get("/console/sign-in").await;
    assert!(en.body.contains("<html lang=\"en\">") && en.body.contains("Sign in"));
    assert!(!en.body.contains("サインイン"));

    // Dates: in Tokyo time by default, in the user's zone once chosen.
    let csrf = csrf_of(&en.body);
    let org = w.agencies[1].id.to_string();
    v.post(
        "/console/sign-in",
        &[
            ("csrf", &csrf),
            ("org", &org),
            ("role", "manager"),
            ("name", "suzuki"),
        ],
    )
    .await;
    let rules = v.get("/console/rules").await;
    assert!(rules.body.contains("JST"), "respond-by in Tokyo time");
    let token = csrf_of(&rules.body);
    let set = v
        .post(
            "/console/preferences",
            &[
                ("csrf", &token),
                ("time_zone", "Europe/London"),
                ("next", "/console/rules"),
            ],
        )
        .await;
    assert_eq!(
        (set.status, set.location.as_deref()),
        (303, Some("/console/rules"))
    );
    let rules = v.get("/console/rules").await;
    assert!(
        rules.body.contains("GMT") && !rules.body.contains(" JST<"),
        "in London time now"
    );
    // Only back into the console.
    let away = v
        .post(
            "/console/preferences",
            &[
                ("csrf", &token),
                ("lang", "ja"),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(away.location.as_deref(), Some("/console"));
    w.stop().await;
}

#[tokio::test]
async fn sign_in_through_the_identity_provider_runs_the_code_flow_with_pkce_and_a_secure_cookie() {
    let provider = idp::Provider::start(idp::Person {
        sub: "yamada@idp".into(),
        org: None,
        roles: vec!["admin".into()],
    })
    .await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        probe.local_addr().expect("address").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let w = World::start_production(|s| {
        s.http.listen = format!("127.0.0.1:{port}");
        s.console.public_url = base.clone();
        s.console.oidc_client_id = idp::CLIENT_ID.into();
        s.console.oidc_client_secret = "console-client-secret".to_owned().into();
        s.console.session_key = "a-console-session-key-of-at-least-32-chars"
            .to_owned()
            .into();
        s.contacts.link_key = "a-link-key-for-acknowledgement-links".to_owned().into();
        let oidc = &mut s.auth.oidc;
        oidc.issuer = provider.url.clone();
        oidc.audience = "renkei".into();
        oidc.jwks_url = format!("{}/jwks", provider.url);
        oidc.organization_claim = "organization_id".into();
        oidc.roles_claim = "realm_access.roles".into();
        oidc.role_prefix = "renkei:".into();
    })
    .await;
    let mut v = Visitor::new(&base);
    let page = v.get("/console/sign-in").await;
    assert!(
        page.body.contains("id=\"sso\""),
        "single sign-on is offered"
    );
    assert!(
        !page.body.contains("dev-sign-in"),
        "no development sign-in in production"
    );

    let begin = v
        .get("/console/sign-in/oidc?next=%2Fconsole%2Fincidents")
        .await;
    assert_eq!(begin.status, 303, "{}", begin.body);
    let to_idp = begin.location.expect("to the provider");
    assert!(
        to_idp.starts_with(&format!("{}/authorize?", provider.url)),
        "{to_idp}"
    );
    for part in [
        "code_challenge=",
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "response_type=code",
    ] {
        assert!(to_idp.contains(part), "{part} missing: {to_idp}");
    }
    let back = v.get(&to_idp).await;
    let callback = back.location.expect("back to the console");
    assert!(
        callback.starts_with(&format!("{base}/console/sign-in/callback?code=")),
        "{callback}"
    );

    // The provider's refusal (the person said no) is shown, naming it.
    let begin = v.get("/console/sign-in/oidc").await;
    let state = begin
        .location
        .as_deref()
        .and_then(|l| l.split("state=").nth(1))
        .and_then(|s| s.split('&').next())
        .expect("a state")
        .to_owned();
    let denied = v
        .get(&format!(
            "/console/sign-in/callback?error=access_denied&error_description=no&state={state}"
        ))
        .await;
    assert_eq!(denied.status, 400, "{}", denied.body);
    assert!(denied.body.contains(">error<") && denied.body.contains("access_denied"));
    assert_eq!(provider.exchanges(), (0, 0), "no code was exchanged");

    // A callback whose state is not this session's is refused.
    let forged = callback.replace("state=", "state=forged");
    let mut stranger = Visitor::new(&base);
    stranger.cookie = v.cookie.clone();
    let refused = stranger.get(&forged).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains(">state<"));

    // Start again, and come back with this session's state.
    let begin = v
        .get("/console/sign-in/oidc?next=%2Fconsole%2Fincidents")
        .await;
    let back = v.get(&begin.location.expect("to the provider")).await;
    let callback = back.location.expect("back");
    let done = v.get(&callback).await;
    assert_eq!(
        (done.status, done.location.as_deref()),
        (303, Some("/console/incidents")),
        "{}",
        done.body
    );
    assert_eq!(
        provider.exchanges(),
        (1, 0),
        "one code exchanged, with the matching verifier"
    );
    let cookie = done
        .set_cookie
        .iter()
        .find(|c| c.starts_with("renkei_console="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/console"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let incidents = v.get("/console/incidents").await;
    assert_eq!(incidents.status, 200, "{}", incidents.body);
    assert!(
        incidents.body.contains("yamada@idp"),
        "signed in as the provider's person"
    );
    // The callback cannot be replayed.
    let replay = v.get(&callback).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    w.stop().await;
    provider.stop().await;
}

#[tokio::test]
async fn a_console_apart_from_the_services_reaches_each_at_its_own_address() {
    renkei_testkit::init_tracing();
    let nats = renkei_testkit::NatsServer::start()
        .await
        .expect("nats-server");
    let db = renkei_testkit::TestDb::fresh().await.expect("database");
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = renkei_testkit::settings(&nats.url(), &db.url, dir.path().to_path_buf());
    let registry = renkei_registry::Registry::spawn(&settings, "apart-registry")
        .await
        .expect("registry");
    let demarcation = renkei_demarcation::Demarcation::spawn(&settings, "apart-demarcation")
        .await
        .expect("demarcation");
    let contacts = renkei_contacts::Contacts::spawn(&settings, "apart-contacts")
        .await
        .expect("contacts");
    let emergency = renkei_emergency::Emergency::spawn(&settings, "apart-emergency")
        .await
        .expect("emergency");
    let at = |r: &renkei_web::Running| format!("http://{}", r.addr);
    let mut console_settings = settings.clone();
    console_settings.console.registry_url = at(&registry);
    console_settings.console.demarcation_url = at(&demarcation);
    console_settings.console.contacts_url = at(&contacts);
    console_settings.console.emergency_url = at(&emergency);
    let console = renkei_console::Alone::spawn(&console_settings)
        .await
        .expect("console");

    // An agency and its platform, made through the registry's own address.
    let http = reqwest::Client::new();
    let admin = renkei_testkit::token(renkei_web::Role::Admin, None);
    let (_, org) = renkei_testkit::call(
        &http,
        reqwest::Method::POST,
        &format!("{}/v1/organizations", at(&registry)),
        Some(&admin),
        Some(serde_json::json!({"name": "Digital Agency", "kind": "platform_operator"})),
    )
    .await;
    let org = org["id"].as_str().expect("organisation").to_owned();
    let operator = renkei_testkit::token(renkei_web::Role::Operator, org.parse().ok());
    let (status, _) = renkei_testkit::call(
        &http,
        reqwest::Method::POST,
        &format!("{}/v1/systems", at(&registry)),
        Some(&operator),
        Some(
            serde_json::json!({"name": "Shared Platform", "kind": "platform", "owner_org_id": org,
                                "confidentiality": 2, "integrity": 2, "availability": 2}),
        ),
    )
    .await;
    assert_eq!(status, 201);

    let mut v = Visitor::new(&format!("http://{}", console.addr));
    let page = v.get("/console/sign-in").await;
    assert!(
        page.body.contains("Digital Agency"),
        "organisations come from the registry"
    );
    let csrf = csrf_of(&page.body);
    v.post(
        "/console/sign-in",
        &[
            ("csrf", &csrf),
            ("org", &org),
            ("role", "operator"),
            ("name", "sato"),
        ],
    )
    .await;
    for (path, shows) in [
        ("/console/platform", "Shared Platform"),     // registry
        ("/console/rules", "No rules are proposed"),  // demarcation
        ("/console/matrix", "Responsibility matrix"), // demarcation
        ("/console/contacts", "Escalation policy"),   // contacts
        ("/console/incidents", "No incidents"),       // emergency
    ] {
        let answer = v.get(path).await;
        let answer = match answer.location.clone() {
            Some(to) if answer.status == 303 => v.get(&to).await,
            _ => answer,
        };
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(
            answer.body.contains(shows),
            "{path} shows {shows}: {}",
            answer.body
        );
    }
    console.stop().await.expect("console stops");
    for running in [registry, demarcation, contacts, emergency] {
        running.stop().await.expect("stop");
    }
}
