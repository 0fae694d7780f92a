//! Scenarios 2 to 6 against the running product, each with its floor
//! measured in the same run:
//!
//! 2. `GET /v1/organizations/{id}` from many connections for a fixed time,
//!    against an actix-web hello world in this process (same client, same
//!    connections, same duration);
//! 3. events through outbox → JetStream → consumer: linked systems created
//!    through the API until the demarcation service's copy counts them all,
//!    and each POST (from sending it) to its `registry.system.registered`
//!    event on NATS, against raw JetStream async publishes of as many messages of the
//!    same size to a scratch stream on the same server;
//! 4. incident declared → the webhook of every affected organisation
//!    alerted, steady and burst, against the raw NATS request/reply round
//!    trip on the same server;
//! 5. rules proposed → in force, every organisation's manager accepting,
//!    against as many authenticated `GET /v1/rules/{id}` at the same
//!    concurrency;
//! 6. resident memory of this process at idle and under load (the cold
//!    start is timed when the product starts, see `platform::Local`);
//! 7. the console's incident page, signed in, from many browsers, against
//!    the API call it starts from (`GET /v1/incidents/{id}`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::StreamExt as _;
use indicatif::ProgressBar;
use renkei_bus::subjects;
use serde_json::{Value, json};
use uuid::Uuid;

use super::platform::{Api, Generated, SETUP_CONCURRENCY, WebhookSink, await_known, uuids_in};
use super::stats::{Figure, Row, histogram, record};

/// How long anything asynchronous may take before the scenario fails.
const PATIENCE: Duration = Duration::from_secs(600);

/// Scenario 2: `connections` clients hammering `GET /v1/organizations/{id}`
/// for `duration`, then the same against the hello world.
pub async fn get_by_id(
    api: &Api,
    token: &str,
    org: Uuid,
    hello: &str,
    connections: usize,
    duration: Duration,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Row>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let product_url = format!("{}/v1/organizations/{org}", api.base);
    let (status, body) = api.get(&format!("/v1/organizations/{org}"), token).await?;
    ensure!(status == 200, "GET organisation: {status} {body}");
    progress.set_message(format!(
        "GET by id: the product, {connections} connections, {} s",
        duration.as_secs()
    ));
    let (value_rate, value_lat, errors) =
        hammer(&client, &product_url, Some(token), connections, duration).await?;
    progress.set_message(format!(
        "GET by id: hello world, {connections} connections, {} s",
        duration.as_secs()
    ));
    let (floor_rate, floor_lat, _) =
        hammer(&client, &format!("{hello}/"), None, connections, duration).await?;
    let note = format!(
        "{connections} connections, {} s each{}",
        duration.as_secs(),
        if errors > 0 {
            format!("; {errors} non-200 answers from the product")
        } else {
            String::new()
        }
    );
    Ok(vec![
        Row::new(
            "2 GET by id",
            "requests/s",
            Some(value_rate),
            "actix-web hello world",
            Some(floor_rate),
            note.clone(),
        ),
        Row::new(
            "2 GET by id",
            "request latency",
            value_lat,
            "actix-web hello world",
            floor_lat,
            note,
        ),
    ])
}

/// `connections` tasks GETting `url` until `duration` is over: the rate of
/// 200 answers, their latency and the count of other answers.
async fn hammer(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<(Figure, Option<Figure>, u64)> {
    let auth = token.map(|t| ("authorization".to_owned(), format!("Bearer {t}")));
    hammer_with(client, url, auth, connections, duration).await
}

/// [`hammer`] with any one header (a bearer token, a session cookie).
async fn hammer_with(
    client: &reqwest::Client,
    url: &str,
    header: Option<(String, String)>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<(Figure, Option<Figure>, u64)> {
    let token = header.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
    // warm the connections up
    let warm: Vec<_> = (0..connections)
        .map(|_| one_get(client, url, token))
        .collect();
    futures::future::join_all(warm).await;
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, header) = (client.clone(), url.to_owned(), header.clone());
        tasks.spawn(async move {
            let mut h = histogram()?;
            let mut errors = 0u64;
            let header = header.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
            while Instant::now() < deadline {
                let t = Instant::now();
                if one_get(&client, &url, header).await {
                    record(&mut h, t.elapsed());
                } else {
                    errors += 1;
                }
            }
            anyhow::Ok((h, errors))
        });
    }
    let mut all = histogram()?;
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        let (h, e) = done??;
        all.add(&h)?;
        errors += e;
    }
    let took = started.elapsed();
    Ok((Figure::rate(all.len(), took), Figure::latency(&all), errors))
}

async fn one_get(client: &reqwest::Client, url: &str, header: Option<(&str, &str)>) -> bool {
    let mut req = client.get(url);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    match req.send().await {
        Ok(r) => {
            let ok = r.status().as_u16() == 200;
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

/// Scenario 7: the console's incident page, the page responders keep open
/// in an incident, signed in through the development sign-in as the
/// declaring organisation's manager, `connections` browsers for `duration`;
/// floor: `GET /v1/incidents/{id}`, the first of the four API calls the
/// page is built from (incident, tasks, timeline, organisation names).
pub async fn console_page(
    api: &Api,
    generated: &Generated,
    connections: usize,
    duration: Duration,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Row>> {
    let org = generated.orgs.first().context("no organisations")?;
    let incident = api
        .post(
            "/v1/incidents",
            &org.csirt,
            &json!({"system_id": org.system, "category": "malware", "severity": 2, "tlp": "amber",
                    "summary": "Bench incident for the console page", "detected_at": chrono::Utc::now()}),
            201,
        )
        .await?;
    let incident = super::platform::id(&incident)?;
    let cookie = console_sign_in(&api.base, org.id).await?;
    let page = format!("{}/console/incidents/{incident}", api.base);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    ensure!(
        one_get(&client, &page, Some(("cookie", cookie.as_str()))).await,
        "the console's incident page did not answer 200 when signed in"
    );
    progress.set_message(format!(
        "console: the incident page, {connections} browsers"
    ));
    let (page_rate, page_lat, errors) = hammer_with(
        &client,
        &page,
        Some(("cookie".into(), cookie.clone())),
        connections,
        duration,
    )
    .await?;
    progress.set_message(format!(
        "console: GET /v1/incidents/{{id}}, {connections} clients"
    ));
    let (api_rate, api_lat, _) = hammer(
        &client,
        &format!("{}/v1/incidents/{incident}", api.base),
        Some(&org.manager),
        connections,
        duration,
    )
    .await?;
    let note = format!(
        "{connections} connections, {} s each; the page makes 4 API calls{}",
        duration.as_secs(),
        if errors > 0 {
            format!("; {errors} non-200 answers")
        } else {
            String::new()
        }
    );
    Ok(vec![
        Row::new(
            "7 console incident page",
            "pages/s",
            Some(page_rate),
            "GET /v1/incidents/{id}",
            Some(api_rate),
            note.clone(),
        ),
        Row::new(
            "7 console incident page",
            "page latency",
            page_lat,
            "GET /v1/incidents/{id}",
            api_lat,
            note,
        ),
    ])
}

/// The console's session cookie of `org`'s manager, through the
/// development sign-in page.
async fn console_sign_in(base: &str, org: Uuid) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie_of = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .find(|c| c.starts_with("renkei_console="))
            .map(str::to_owned)
    };
    let page = client.get(format!("{base}/console/sign-in")).send().await?;
    let cookie = cookie_of(&page).context("no console session cookie")?;
    let html = page.text().await?;
    let marker = "name=\"csrf\" value=\"";
    let csrf = html
        .find(marker)
        .and_then(|at| html[at + marker.len()..].split('"').next())
        .context("no form token on the sign-in page")?;
    ensure!(
        html.contains("dev-sign-in"),
        "the console offers no development sign-in (production profile)"
    );
    let signed = client
        .post(format!("{base}/console/sign-in"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf),
            ("org", &org.to_string()),
            ("role", "manager"),
            ("name", "bench"),
        ])
        .send()
        .await?;
    ensure!(
        signed.status() == 303,
        "console sign-in answered {}",
        signed.status()
    );
    cookie_of(&signed).context("no session cookie after signing in")
}

/// Scenario 3: `count` linked systems created through the API (owned by the
/// first generated organisation) until demarcation counts them all; floor:
/// as many raw JetStream async publishes of the same size.
pub async fn events(
    api: &Api,
    nats: &async_nats::Client,
    g: &mut Generated,
    count: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Row>> {
    let owner = g.orgs.first().context("no organisations")?.id;
    let mut sub = nats.subscribe(subjects::REGISTRY_SYSTEM_REGISTERED).await?;
    nats.flush().await?;
    let seen: Seen = Arc::default();
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let at = Instant::now();
                if let Ok(v) = serde_json::from_slice::<Value>(&m.payload)
                    && let Ok(mut s) = seen.lock()
                {
                    uuids_in(&v, at, &mut s.0);
                    s.1 += 1;
                    s.2 += m.payload.len();
                }
            }
        })
    };
    progress.set_message(format!(
        "events: {count} systems through outbox → JetStream → demarcation"
    ));
    progress.set_length(count as u64);
    progress.set_position(0);
    let run = std::process::id();
    let started = Instant::now();
    let operator = g.operator.clone();
    let platform = g.platform;
    let made: Vec<anyhow::Result<(Uuid, Instant)>> = futures::stream::iter(0..count)
        .map(|i| {
            let operator = operator.clone();
            async move {
                let sent = Instant::now();
                let id = api
                    .create(
                        "/v1/systems",
                        &operator,
                        &json!({"name": format!("Bench {run} event system {i:06}"), "kind": "linked",
                                "owner_org_id": owner, "platform_id": platform,
                                "confidentiality": 1, "integrity": 1, "availability": 1}),
                    )
                    .await?;
                progress.inc(1);
                Ok((id, sent))
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let made = made.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    g.systems += count;
    let applied = await_known(api, g, PATIENCE).await?;
    let applied_in = applied - started;
    // the last events may still be on their way to the bench's subscription
    let wait = Instant::now();
    loop {
        let have = seen
            .lock()
            .map(|s| made.iter().filter(|(id, _)| s.0.contains_key(id)).count())
            .unwrap_or(0);
        if have == made.len() || wait.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    collector.abort();
    let (lat, events, bytes) = {
        let s = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("the event collector panicked"))?;
        let mut h = histogram()?;
        for (id, sent) in &made {
            if let Some(at) = s.0.get(id) {
                record(&mut h, at.saturating_duration_since(*sent));
            }
        }
        (h, s.1, s.2)
    };
    let size = bytes.checked_div(events).unwrap_or(512).max(1);

    progress.set_message(format!(
        "events: floor, {count} JetStream async publishes of {size} bytes"
    ));
    let js = async_nats::jetstream::new(nats.clone());
    let stream = format!("BENCH_FLOOR_{run}");
    let subject = format!("benchfloor.{run}.x");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("benchfloor.{run}.>")],
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let floor = async {
        // the rate: every message published at once, then every ack awaited
        let mut acks = Vec::with_capacity(count);
        let started = Instant::now();
        for _ in 0..count {
            acks.push(js.publish(subject.clone(), payload.clone()).await?);
        }
        for ack in acks {
            ack.await?;
        }
        let rate = Figure::rate(count as u64, started.elapsed());
        // the latency: publish → ack with as many in flight as POSTs above
        let times: Vec<anyhow::Result<Duration>> = futures::stream::iter(0..count)
            .map(|_| {
                let (js, subject, payload) = (&js, subject.clone(), payload.clone());
                async move {
                    let t = Instant::now();
                    js.publish(subject, payload).await?.await?;
                    Ok(t.elapsed())
                }
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect()
            .await;
        let mut h = histogram()?;
        for t in times {
            record(&mut h, t?);
        }
        anyhow::Ok((rate, h))
    }
    .await;
    js.delete_stream(&stream).await.ok();
    let (floor_rate, floor_lat) = floor?;
    let note = format!(
        "{count} systems, {SETUP_CONCURRENCY} POSTs in flight; events {size} bytes on average; {} of {count} events seen",
        lat.len()
    );
    Ok(vec![
        Row::new(
            "3 events",
            "created → applied by demarcation, events/s",
            Some(Figure::rate(count as u64, applied_in)),
            "raw JetStream async publish, same count and size",
            Some(floor_rate),
            note.clone(),
        ),
        Row::new(
            "3 events",
            "POST sent → event on NATS",
            Figure::latency(&lat),
            "JetStream publish → ack, as many in flight",
            Figure::latency(&floor_lat),
            note,
        ),
    ])
}

/// The floor of scenario 4: `n` request/reply round trips through an echo
/// responder on the same NATS server.
pub async fn nats_round_trip(
    nats: &async_nats::Client,
    n: usize,
) -> anyhow::Result<Option<Figure>> {
    let subject = format!("bench.{}.echo", std::process::id());
    let mut echo = nats.subscribe(subject.clone()).await?;
    let responder = nats.clone();
    let task = tokio::spawn(async move {
        while let Some(m) = echo.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, m.payload).await;
            }
        }
    });
    nats.flush().await?;
    let mut h = histogram()?;
    for _ in 0..n {
        let t = Instant::now();
        nats.request(subject.clone(), "ping".into()).await?;
        record(&mut h, t.elapsed());
    }
    task.abort();
    Ok(Figure::latency(&h))
}

/// What the event collector saw: each UUID's first arrival, the count of
/// events and their bytes.
type Seen = Arc<std::sync::Mutex<(HashMap<Uuid, Instant>, usize, usize)>>;

/// One declared incident: when its POST was sent, how long it took, how many
/// organisations must be alerted.
struct Declared {
    id: Uuid,
    sent: Instant,
    post: Duration,
    expected: usize,
}

/// Scenario 4: incidents declared on random members of the star groups,
/// `count` of them spread evenly over `over` (all at once when zero); the
/// time from sending each POST to the last affected organisation's webhook
/// (alerts can arrive before the POST's answer), and the POST itself.
#[allow(clippy::too_many_arguments)]
pub async fn incidents(
    api: &Api,
    g: &Generated,
    sink: &WebhookSink,
    phase: &str,
    count: usize,
    over: Duration,
    floor: Option<&Figure>,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Row>> {
    progress.set_message(format!(
        "incidents: {phase}, {count} in {:.0} s",
        over.as_secs_f64()
    ));
    progress.set_length(count as u64);
    progress.set_position(0);
    let members: Arc<Vec<(Uuid, String)>> = Arc::new(
        g.orgs
            .iter()
            .enumerate()
            .filter(|(j, _)| j % g.group != 0)
            .map(|(_, o)| (o.system, o.csirt.clone()))
            .collect(),
    );
    ensure!(
        !members.is_empty(),
        "no group members to declare incidents on"
    );
    let interval = if over.is_zero() {
        Duration::ZERO
    } else {
        over / count.max(1) as u32
    };
    let start = Instant::now();
    let mut handles = Vec::with_capacity(count);
    for k in 0..count {
        tokio::time::sleep_until((start + interval * k as u32).into()).await;
        let (api, members) = (api.clone(), members.clone());
        let progress = progress.clone();
        let phase = phase.to_owned();
        handles.push(tokio::spawn(async move {
            let (system, csirt) = &members[(k * 7_919 + 13) % members.len()];
            let t = Instant::now();
            let v = api
                .post(
                    "/v1/incidents",
                    csirt,
                    &json!({"system_id": system, "category": "malware", "severity": 2, "tlp": "amber",
                            "summary": format!("Bench incident {phase} {k}"), "detected_at": chrono::Utc::now()}),
                    201,
                )
                .await?;
            let returned = Instant::now();
            progress.inc(1);
            let expected = v["affected"].as_array().map_or(0, Vec::len);
            anyhow::Ok(Declared {
                id: super::platform::id(&v)?,
                sent: t,
                post: returned - t,
                expected,
            })
        }));
    }
    let mut declared = Vec::with_capacity(count);
    for h in handles {
        declared.push(h.await??);
    }
    let expected: HashMap<Uuid, usize> = declared.iter().map(|d| (d.id, d.expected)).collect();
    let total: usize = expected.values().sum();
    progress.set_message(format!("incidents: {phase}, waiting for {total} alerts"));
    let deadline = Instant::now() + PATIENCE;
    let last = loop {
        let mut got: HashMap<Uuid, (usize, Instant)> = HashMap::new();
        for d in sink.deliveries() {
            if let Some(i) = d.incident.filter(|i| expected.contains_key(i)) {
                let e = got.entry(i).or_insert((0, d.at));
                e.0 += 1;
                e.1 = e.1.max(d.at);
            }
        }
        if expected
            .iter()
            .all(|(i, n)| got.get(i).map_or(*n == 0, |(c, _)| c >= n))
        {
            break got;
        }
        let have: usize = got.values().map(|(c, _)| *c).sum();
        ensure!(
            Instant::now() < deadline,
            "{phase}: {have} of {total} alerts after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut alert = histogram()?;
    let mut post = histogram()?;
    for d in &declared {
        if let Some((_, at)) = last.get(&d.id) {
            record(&mut alert, at.saturating_duration_since(d.sent));
        }
        record(&mut post, d.post);
    }
    let note = format!(
        "{count} incidents, {total} organisations alerted ({:.1} per incident)",
        total as f64 / count.max(1) as f64
    );
    let scenario = format!("4 incident alert, {phase}");
    Ok(vec![
        Row::new(
            &scenario,
            "POST sent → last affected webhook",
            Figure::latency(&alert),
            "NATS request/reply round trip",
            floor.cloned(),
            note.clone(),
        ),
        Row::new(
            &scenario,
            "POST /v1/incidents",
            Figure::latency(&post),
            "NATS request/reply round trip",
            floor.cloned(),
            note,
        ),
    ])
}

/// Scenario 5: a rules version drafted, proposed, and accepted by every
/// organisation's manager (`concurrency` decisions in flight): proposal →
/// in force, and each decision; floor: as many `GET /v1/rules/{id}` by the
/// managers at the same concurrency.
pub async fn rules(
    api: &Api,
    g: &Generated,
    concurrency: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Row>> {
    let orgs = g.orgs.len();
    progress.set_message("rules: waiting for demarcation to know every system");
    await_known(api, g, PATIENCE).await?;
    let version = api
        .create(
            &format!("/v1/platforms/{}/rules", g.platform),
            &g.operator,
            &json!({"title": "Bench common rules",
                    "rules": [{"id": "R1", "title": "Incident reporting",
                               "text": "Report incidents on linked systems within one hour.",
                               "controls": []}]}),
        )
        .await?;
    progress.set_message(format!("rules: {orgs} organisations accept"));
    progress.set_length(orgs as u64);
    progress.set_position(0);
    let started = Instant::now();
    let json = api
        .post(
            &format!("/v1/rules/{version}/propose"),
            &g.operator,
            &json!({}),
            200,
        )
        .await?;
    ensure!(json["state"] == "proposed", "propose: {json}");
    let url = format!("/v1/rules/{version}/decisions");
    let results: Vec<anyhow::Result<Duration>> = futures::stream::iter(&g.orgs)
        .map(|o| {
            let url = &url;
            async move {
                let t = Instant::now();
                api.post(url, &o.manager, &json!({"decision": "accept"}), 201)
                    .await?;
                progress.inc(1);
                Ok(t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let consensus = format!("/v1/rules/{version}/consensus");
    let (status, json) = api.get(&consensus, &g.operator).await?;
    let in_force = started.elapsed();
    ensure!(
        status == 200 && json["state"] == "in_force",
        "after every decision: {status} state {}",
        json["state"]
    );
    let mut decisions = histogram()?;
    for r in results {
        record(&mut decisions, r?);
    }

    progress.set_message(format!("rules: floor, {orgs} GET /v1/rules/{{id}}"));
    progress.set_position(0);
    let get = format!("/v1/rules/{version}");
    let started = Instant::now();
    let results: Vec<anyhow::Result<Duration>> = futures::stream::iter(&g.orgs)
        .map(|o| {
            let get = &get;
            async move {
                let t = Instant::now();
                let (status, _) = api.get(get, &o.manager).await?;
                ensure!(status == 200, "GET rules: {status}");
                progress.inc(1);
                Ok(t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let reads = started.elapsed();
    let mut gets = histogram()?;
    for r in results {
        record(&mut gets, r?);
    }
    let note = format!("{orgs} organisations, {concurrency} decisions in flight");
    Ok(vec![
        Row::new(
            "5 rules consensus",
            "proposed → in force",
            Some(Figure::once(in_force)),
            "as many GET /v1/rules/{id}, same concurrency",
            Some(Figure::once(reads)),
            note.clone(),
        ),
        Row::new(
            "5 rules consensus",
            "one decision (POST accept)",
            Figure::latency(&decisions),
            "GET /v1/rules/{id}",
            Figure::latency(&gets),
            note,
        ),
    ])
}

/// Samples this process' resident memory every 100 ms until stopped.
pub struct RssSampler {
    samples: Arc<std::sync::Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start() -> RssSampler {
        let samples: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
        let s = samples.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if let (Some(kib), Ok(mut s)) = (super::stats::rss_kib(), s.lock()) {
                    s.push(kib);
                }
            }
        });
        RssSampler { samples, task }
    }

    /// Stops sampling: the samples in KiB.
    pub fn stop(self) -> Vec<u64> {
        self.task.abort();
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
