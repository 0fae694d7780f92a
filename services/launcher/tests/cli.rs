//! The operator CLI against a running product: the four services in one
//! process under one address (as `renkei up` runs them), and the built
//! `renkei` binary called with `--url`/`--token` as an operator would.
//! SQLite by default, PostgreSQL with RENKEI_TEST_DATABASE_URL.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use renkei_testkit::{NatsServer, TestDb, call, token};
use renkei_web::Role;
use serde_json::Value;
use uuid::Uuid;

struct App {
    url: String,
    http: reqwest::Client,
    running: Option<renkei_web::Running>,
    dir: tempfile::TempDir,
    _db: TestDb,
    _nats: NatsServer,
}

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self, what: &str) -> Run {
        assert_eq!(
            self.code, 0,
            "{what} failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

impl App {
    async fn start() -> App {
        let p = common::Product::start("cli-test", |_| {}).await;
        App {
            url: p.url,
            http: p.http,
            running: p.running,
            dir: p.dir,
            _db: p.db,
            _nats: p.nats,
        }
    }

    async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("stops cleanly");
        }
    }

    /// `renkei ARGS --url … --token TOKEN`, with no CLI config or
    /// RENKEI_URL/RENKEI_TOKEN from the environment.
    async fn renkei(&self, who: &str, args: &[&str]) -> Run {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_renkei"))
            .args(args)
            .args(["--url", &self.url, "--token", who])
            .env_remove("RENKEI_URL")
            .env_remove("RENKEI_TOKEN")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", self.dir.path())
            .output()
            .await
            .expect("renkei runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn get(&self, path: &str, who: &str) -> (u16, Value) {
        call(
            &self.http,
            reqwest::Method::GET,
            &format!("{}{path}", self.url),
            Some(who),
            None,
        )
        .await
    }

    /// Every item of a list (one page of 1000 is enough here).
    async fn list(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, page) = self.get(&format!("{path}{sep}limit=1000"), &admin()).await;
        assert_eq!(status, 200, "GET {path}: {page}");
        assert!(page["next"].is_null());
        page["items"].as_array().expect("items").clone()
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("written");
        path
    }
}

fn admin() -> String {
    token(Role::Admin, None)
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn id_named(items: &[Value], name: &str) -> Uuid {
    let found: Vec<&Value> = items.iter().filter(|i| i["name"] == name).collect();
    assert_eq!(found.len(), 1, "exactly one `{name}` in {items:?}");
    Uuid::parse_str(found[0]["id"].as_str().expect("id")).expect("uuid")
}

const PLATFORM_YAML: &str = "\
# A common platform and two agencies linked to it.
organizations:
  - name: Digital Agency
    kind: platform_operator
  - name: Agency A
    kind: government_agency
  - name: Agency B
    kind: government_agency

systems:
  - name: Gov Cloud
    kind: platform
    owner: Digital Agency
    confidentiality: 3
    integrity: 2
    availability: 2
  - name: Records
    owner: Agency A
    platform: Gov Cloud
    confidentiality: 2
    integrity: 2
    availability: 1
    description: The records server
  - name: Payroll
    kind: linked
    owner: Agency B
    platform: Gov Cloud
    confidentiality: 2
    integrity: 1
    availability: 1

links:
  - from: Records
    to: Payroll
    kind: network
    propagates: [malware, data_leak]
  - from: Gov Cloud
    to: Records
    kind: shared_infrastructure
    propagates:
      - outage
";

/// Imports the demo platform as an admin; the ids of what it made.
struct Platform {
    operator: Uuid,
    a: Uuid,
    b: Uuid,
    platform: Uuid,
    records: Uuid,
    payroll: Uuid,
}

async fn import_platform(app: &App) -> (Platform, Run) {
    let file = app.file("platform.yaml", PLATFORM_YAML);
    let run = app
        .renkei(&admin(), &["import", arg(&file)])
        .await
        .ok("import");
    let orgs = app.list("/v1/organizations").await;
    let systems = app.list("/v1/systems").await;
    let platform = Platform {
        operator: id_named(&orgs, "Digital Agency"),
        a: id_named(&orgs, "Agency A"),
        b: id_named(&orgs, "Agency B"),
        platform: id_named(&systems, "Gov Cloud"),
        records: id_named(&systems, "Records"),
        payroll: id_named(&systems, "Payroll"),
    };
    (platform, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_validates_everything_first_is_idempotent_and_reads_csv() {
    let mut app = App::start().await;

    // The first import creates everything, in dependency order.
    let (p, first) = import_platform(&app).await;
    assert!(
        first.stdout.contains("8 created, 0 already there"),
        "{}",
        first.stdout
    );
    let orgs = app.list("/v1/organizations").await;
    assert_eq!(orgs.len(), 3, "{orgs:?}");
    let kinds: Vec<(&str, &str)> = orgs
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap_or(""),
                o["kind"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(kinds.contains(&("Digital Agency", "platform_operator")));
    assert!(kinds.contains(&("Agency B", "government_agency")));
    let systems = app.list("/v1/systems").await;
    assert_eq!(systems.len(), 3);
    let records = systems
        .iter()
        .find(|s| s["name"] == "Records")
        .expect("Records");
    assert_eq!(records["owner_org_id"], p.a.to_string());
    assert_eq!(records["platform_id"], p.platform.to_string());
    assert_eq!(records["kind"], "linked");
    assert_eq!(records["confidentiality"], 2);
    assert_eq!(records["description"], "The records server");
    let payroll = systems
        .iter()
        .find(|s| s["name"] == "Payroll")
        .expect("Payroll");
    assert_eq!(payroll["owner_org_id"], p.b.to_string());
    let platform = systems
        .iter()
        .find(|s| s["name"] == "Gov Cloud")
        .expect("platform");
    assert_eq!(platform["kind"], "platform");
    assert_eq!(platform["owner_org_id"], p.operator.to_string());
    let links = app.list("/v1/links").await;
    assert_eq!(links.len(), 2, "{links:?}");
    let spread = links
        .iter()
        .find(|l| l["from_system_id"] == p.records.to_string())
        .expect("Records → Payroll");
    assert_eq!(spread["to_system_id"], p.payroll.to_string());
    assert_eq!(spread["kind"], "network");
    assert_eq!(
        spread["propagates"],
        serde_json::json!(["malware", "data_leak"])
    );

    // Again: nothing is duplicated, and the summary says so.
    let file = app.file("platform.yaml", PLATFORM_YAML);
    let again = app
        .renkei(&admin(), &["import", arg(&file)])
        .await
        .ok("re-import");
    assert!(
        again.stdout.contains("0 created, 8 already there"),
        "{}",
        again.stdout
    );
    let summary = app
        .renkei(&admin(), &["import", arg(&file), "--json"])
        .await
        .ok("re-import --json")
        .json();
    for (section, n) in [("organizations", 3), ("systems", 3), ("links", 2)] {
        assert_eq!(summary[section]["created"], 0, "{summary}");
        assert_eq!(summary[section]["already_there"], n, "{summary}");
    }
    assert_eq!(app.list("/v1/organizations").await.len(), 3);
    assert_eq!(app.list("/v1/systems").await.len(), 3);
    assert_eq!(app.list("/v1/links").await.len(), 2);

    // Two errors: both reported with their lines, and nothing written, not
    // even the valid organisation before them.
    let bad = app.file(
        "bad.yaml",
        "organizations:\n  - name: Agency C\n    kind: government_agency\n  - name: Ministry D\n    kind: ministry\nlinks:\n  - from: Records\n    to: Nowhere\n    kind: network\n    propagates: [malware]\n",
    );
    let refused = app.renkei(&admin(), &["import", arg(&bad)]).await;
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    let bad_path = arg(&bad);
    assert!(
        refused
            .stderr
            .contains(&format!("{bad_path}:5: kind `ministry` is not one of")),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains(&format!("{bad_path}:8: system `Nowhere` is in neither")),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("2 errors") && refused.stderr.contains("nothing was written"),
        "{}",
        refused.stderr
    );
    let orgs = app.list("/v1/organizations").await;
    assert_eq!(orgs.len(), 3, "nothing written: {orgs:?}");
    assert!(!orgs.iter().any(|o| o["name"] == "Agency C"));

    // CSV: a second platform whose linked system belongs to an organisation
    // that already exists (Agency A), then a link on it.
    let csv = app.file(
        "second.csv",
        "type,name,kind,owner,platform,confidentiality,integrity,availability,from,to,propagates\n\
         organization,Prefecture Ops,platform_operator,,,,,,,,\n\
         system,Local Cloud,platform,Prefecture Ops,,2,2,2,,,\n\
         system,Branch Office,linked,Agency A,Local Cloud,1,1,1,,,\n\
         link,,network,,,,,,Local Cloud,Branch Office,malware;outage\n",
    );
    let dry = app
        .renkei(&admin(), &["import", arg(&csv), "--dry-run"])
        .await
        .ok("dry run");
    assert!(
        dry.stdout.contains("4 would be created, 0 already there"),
        "{}",
        dry.stdout
    );
    assert_eq!(app.list("/v1/organizations").await.len(), 3);
    let imported = app
        .renkei(&admin(), &["import", arg(&csv)])
        .await
        .ok("CSV import");
    assert!(
        imported.stdout.contains("4 created, 0 already there"),
        "{}",
        imported.stdout
    );
    let orgs = app.list("/v1/organizations").await;
    let systems = app.list("/v1/systems").await;
    let ops = id_named(&orgs, "Prefecture Ops");
    let local = id_named(&systems, "Local Cloud");
    let branch = id_named(&systems, "Branch Office");
    let branch = systems
        .iter()
        .find(|s| s["id"] == branch.to_string())
        .expect("branch");
    assert_eq!(branch["platform_id"], local.to_string());
    assert_eq!(branch["owner_org_id"], p.a.to_string());
    let local_links = app.list(&format!("/v1/links?platform_id={local}")).await;
    assert_eq!(local_links.len(), 1);
    assert_eq!(local_links[0]["from_system_id"], local.to_string());
    assert_eq!(
        local_links[0]["propagates"],
        serde_json::json!(["malware", "outage"])
    );
    let local_platform = systems
        .iter()
        .find(|s| s["id"] == local.to_string())
        .expect("local");
    assert_eq!(local_platform["owner_org_id"], ops.to_string());

    // A CSV with errors names its lines too.
    let bad_csv = app.file(
        "bad.csv",
        "type,name,kind,owner,platform,confidentiality,integrity,availability\n\
         \n\
         # blank and comment lines keep the numbering\n\
         system,Annex,linked,Agency Z,Local Cloud,1,1,1\n\
         system,Annex 2,linked,Agency A,Local Cloud,9,1,1\n",
    );
    let refused = app.renkei(&admin(), &["import", arg(&bad_csv)]).await;
    assert_ne!(refused.code, 0);
    let p2 = arg(&bad_csv);
    assert!(
        refused
            .stderr
            .contains(&format!("{p2}:4: owner `Agency Z` names no organisation")),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains(&format!("{p2}:5: confidentiality `9` must be")),
        "{}",
        refused.stderr
    );
    assert_eq!(app.list("/v1/systems").await.len(), 5);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_as_tables_and_json_and_refusals_exit_non_zero() {
    let mut app = App::start().await;
    let (p, _) = import_platform(&app).await;

    let listed = app
        .renkei(&admin(), &["org", "list", "--json"])
        .await
        .ok("org list --json")
        .json();
    let names: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(names.len(), 3);
    for name in ["Digital Agency", "Agency A", "Agency B"] {
        assert!(names.contains(&name), "{names:?}");
    }

    let table = app
        .renkei(&admin(), &["org", "list"])
        .await
        .ok("org list")
        .stdout;
    for name in [
        "Digital Agency",
        "Agency A",
        "Agency B",
        "platform_operator",
    ] {
        assert!(table.contains(name), "{table}");
    }
    assert!(table.contains(&p.a.to_string()), "{table}");

    // Systems and links as a member of the platform sees them, with names.
    let manager_a = token(Role::Manager, Some(p.a));
    let systems = app
        .renkei(
            &manager_a,
            &["system", "list", "--platform", &p.platform.to_string()],
        )
        .await
        .ok("system list")
        .stdout;
    for cell in [
        "Records",
        "Payroll",
        "Gov Cloud",
        "Agency B",
        "pending_rules",
    ] {
        assert!(systems.contains(cell), "{systems}");
    }
    let links = app
        .renkei(&manager_a, &["link", "list"])
        .await
        .ok("link list")
        .stdout;
    assert!(
        links.contains("Records") && links.contains("Payroll"),
        "{links}"
    );
    assert!(links.contains("malware, data_leak"), "{links}");
    let shown = app
        .renkei(
            &manager_a,
            &["system", "show", &p.records.to_string(), "--json"],
        )
        .await
        .ok("system show")
        .json();
    assert_eq!(shown["name"], "Records");

    // The operator changes a system and registers a link through the CLI.
    let operator = token(Role::Operator, Some(p.operator));
    let updated = app
        .renkei(
            &operator,
            &[
                "system",
                "update",
                &p.payroll.to_string(),
                "--availability",
                "2",
                "--json",
            ],
        )
        .await
        .ok("system update")
        .json();
    assert_eq!(updated["availability"], 2);
    let link = app
        .renkei(
            &operator,
            &[
                "link",
                "register",
                "--from",
                &p.payroll.to_string(),
                "--to",
                &p.records.to_string(),
                "--kind",
                "data_flow",
                "--propagates",
                "data_leak,malware",
                "--json",
            ],
        )
        .await
        .ok("link register")
        .json();
    assert_eq!(link["from_system_id"], p.payroll.to_string());
    assert_eq!(app.list("/v1/links").await.len(), 3);

    // Refused: the API's own words, the field, a non-zero exit.
    let refused = app
        .renkei(
            &manager_a,
            &[
                "org",
                "register",
                "--name",
                "Agency Q",
                "--kind",
                "government_agency",
            ],
        )
        .await;
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("only an installation admin registers organisations"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("403"), "{}", refused.stderr);
    let invalid = app
        .renkei(
            &admin(),
            &[
                "org", "register", "--name", "Agency Q", "--kind", "ministry",
            ],
        )
        .await;
    assert_ne!(invalid.code, 0);
    assert!(
        invalid.stderr.contains("(field `kind`)"),
        "{}",
        invalid.stderr
    );
    assert_eq!(app.list("/v1/organizations").await.len(), 3);

    // The admin renames an organisation; a manager may not.
    let a = p.a.to_string();
    let renamed = app
        .renkei(
            &admin(),
            &[
                "org",
                "update",
                &a,
                "--name",
                "Agency A (renamed)",
                "--json",
            ],
        )
        .await
        .ok("org update")
        .json();
    assert_eq!(renamed["name"], "Agency A (renamed)");
    let (_, read) = app.get(&format!("/v1/organizations/{a}"), &admin()).await;
    assert_eq!(read["name"], "Agency A (renamed)");
    let refused = app
        .renkei(&manager_a, &["org", "update", &a, "--name", "Mine"])
        .await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("403"), "{}", refused.stderr);

    // A wrong token: 401 with the API's detail.
    let (status, problem) = app.get("/v1/organizations", "not-a-token").await;
    assert_eq!(status, 401);
    let detail = problem["detail"].as_str().expect("a detail");
    let wrong = app.renkei("not-a-token", &["org", "list"]).await;
    assert_ne!(wrong.code, 0);
    assert!(wrong.stderr.contains("401"), "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains(detail),
        "{detail} in {}",
        wrong.stderr
    );
    assert!(wrong.stdout.is_empty(), "{}", wrong.stdout);

    // Token and URL from a config file instead of flags.
    let config = app.file(
        "cli.toml",
        &format!("url = \"{}\"\ntoken = \"{}\"\n", app.url, admin()),
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_renkei"))
        .args(["org", "list", "--json", "--cli-config", arg(&config)])
        .env_remove("RENKEI_URL")
        .env_remove("RENKEI_TOKEN")
        .output()
        .await
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_file: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(from_file.as_array().map(Vec::len), Some(3));
    app.stop().await;
}

const RULES_YAML: &str = "\
title: Common rules of Gov Cloud
rules:
  - id: R1
    title: Patch within 30 days
    text: Every linked system applies security patches within 30 days.
  - id: R2
    title: Report incidents
    text: Incidents are reported to the platform operator within one hour.
";

/// Polls `renkei … --json` until `done` holds (30 s at most).
async fn until(app: &App, who: &str, args: &[&str], done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..120 {
        let run = app.renkei(who, args).await;
        if run.code == 0 {
            last = run.json();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("never happened: renkei {args:?}; last: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_consensus_and_a_spread_alert_through_the_cli() {
    let mut app = App::start().await;
    let (p, _) = import_platform(&app).await;
    let operator = token(Role::Operator, Some(p.operator));
    let manager_a = token(Role::Manager, Some(p.a));
    let manager_b = token(Role::Manager, Some(p.b));

    // Rules: drafted from a file, proposed, accepted by A; B is silent.
    let rules = app.file("rules.yaml", RULES_YAML);
    let draft = app
        .renkei(
            &operator,
            &[
                "rules",
                "draft",
                "--platform",
                &p.platform.to_string(),
                "--file",
                arg(&rules),
                "--json",
            ],
        )
        .await
        .ok("rules draft")
        .json();
    assert_eq!(draft["state"], "draft");
    assert_eq!(draft["rules"][1]["id"], "R2");
    let version = draft["id"].as_str().expect("id").to_owned();
    app.renkei(&operator, &["rules", "propose", &version])
        .await
        .ok("rules propose");
    let accepted = app
        .renkei(&manager_a, &["rules", "accept", &version])
        .await
        .ok("rules accept");
    assert!(accepted.stdout.contains("proposed"), "{}", accepted.stdout);
    let board = app
        .renkei(&operator, &["rules", "status", &version])
        .await
        .ok("rules status")
        .stdout;
    assert!(
        board.contains("2 required: 1 accepted, 0 objected, 1 silent"),
        "{board}"
    );
    let row_a = board
        .lines()
        .find(|l| l.contains("Agency A"))
        .expect("A's row");
    assert!(row_a.contains("accepted"), "{board}");
    let row_b = board
        .lines()
        .find(|l| l.contains("Agency B"))
        .expect("B's row");
    assert!(row_b.contains("silent"), "{board}");
    assert!(board.contains("deadline 20"), "{board}");

    // B objects, then withdraws and accepts: the version comes into force.
    let objected = app
        .renkei(
            &manager_b,
            &[
                "rules",
                "object",
                &version,
                "--reason",
                "R1 is too strict for payroll",
            ],
        )
        .await
        .ok("rules object");
    assert!(objected.stdout.contains("object"), "{}", objected.stdout);
    let c = app
        .renkei(&operator, &["rules", "status", &version, "--json"])
        .await
        .ok("status --json")
        .json();
    assert_eq!(c["objected"], serde_json::json!([p.b.to_string()]));
    app.renkei(&manager_b, &["rules", "withdraw-objection", &version])
        .await
        .ok("withdraw objection");
    app.renkei(&manager_b, &["rules", "accept", &version])
        .await
        .ok("B accepts");
    let c = app
        .renkei(&operator, &["rules", "status", &version, "--json"])
        .await
        .ok("status --json")
        .json();
    assert_eq!(c["state"], "in_force", "{c}");
    assert_eq!(c["accepted"].as_array().map(Vec::len), Some(2), "{c}");

    // A contact for B, through the CLI.
    let contact = app
        .renkei(
            &manager_b,
            &[
                "contact",
                "add",
                "--org",
                &p.b.to_string(),
                "--name",
                "B duty desk",
                "--role",
                "csirt",
                "--availability",
                "both",
                "--email",
                "duty@b.example",
                "--json",
            ],
        )
        .await
        .ok("contact add")
        .json();
    assert_eq!(contact["channels"][0]["address"], "duty@b.example");
    let listed = app
        .renkei(&manager_b, &["contact", "list", "--org", &p.b.to_string()])
        .await
        .ok("contact list")
        .stdout;
    assert!(listed.contains("B duty desk"), "{listed}");

    // An incident on A's Records spreads to B's Payroll over the link.
    let csirt_a = token(Role::Csirt, Some(p.a));
    let declared = app
        .renkei(
            &csirt_a,
            &[
                "incident",
                "declare",
                "--system",
                &p.records.to_string(),
                "--category",
                "malware",
                "--severity",
                "2",
                "--tlp",
                "amber",
                "--summary",
                "Ransomware on the records server",
                "--json",
            ],
        )
        .await
        .ok("incident declare")
        .json();
    assert_eq!(declared["status"], "declared");
    let incident = declared["id"].as_str().expect("id").to_owned();
    let status = app
        .renkei(&csirt_a, &["incident", "status", &incident])
        .await
        .ok("incident status")
        .stdout;
    assert!(
        status.contains("Records") && status.contains("declared"),
        "{status}"
    );
    let spread = until(
        &app,
        &csirt_a,
        &["incident", "status", &incident, "--json"],
        |i| {
            i["affected"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["org_id"] == p.b.to_string()))
        },
    )
    .await;
    assert_eq!(spread["affected"][0]["org_name"], "Agency B", "{spread}");
    let table = app
        .renkei(&csirt_a, &["incident", "status", &incident])
        .await
        .ok("status table")
        .stdout;
    assert!(table.contains("Agency B"), "{table}");
    let timeline = app
        .renkei(&csirt_a, &["incident", "timeline", &incident])
        .await
        .ok("timeline")
        .stdout;
    assert!(timeline.contains("declared"), "{timeline}");
    let listed = app
        .renkei(&operator, &["incident", "list"])
        .await
        .ok("incident list")
        .stdout;
    assert!(listed.contains(&incident), "{listed}");

    // B acknowledges its alert with the CLI; the incident shows it.
    let mut acknowledged = None;
    for _ in 0..120 {
        let run = app
            .renkei(&manager_b, &["incident", "acknowledge", &incident])
            .await;
        if run.code == 0 {
            acknowledged = Some(run);
            break;
        }
        assert!(run.stderr.contains("no spread alert"), "{}", run.stderr);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let acknowledged = acknowledged.expect("B's alert came");
    assert!(
        acknowledged.stdout.contains("acknowledged"),
        "{}",
        acknowledged.stdout
    );
    let after = until(
        &app,
        &csirt_a,
        &["incident", "status", &incident, "--json"],
        |i| i["affected"][0]["acknowledged"] == true,
    )
    .await;
    assert_eq!(after["affected"][0]["org_id"], p.b.to_string());
    // A was not alerted: it has nothing to acknowledge.
    let nothing = app
        .renkei(&manager_a, &["incident", "acknowledge", &incident])
        .await;
    assert_ne!(nothing.code, 0);

    // The initial report, written and filed.
    let filed = app
        .renkei(
            &csirt_a,
            &[
                "incident", "report", &incident, "--kind", "initial", "--file", "--json",
            ],
        )
        .await
        .ok("incident report")
        .json();
    assert_eq!(filed["state"], "filed", "{filed}");
    assert_eq!(filed["kind"], "initial");
    app.renkei(&csirt_a, &["incident", "tasks", &incident])
        .await
        .ok("tasks");

    // A drill on the platform.
    let drill = app
        .renkei(
            &operator,
            &[
                "drill",
                "start",
                "--platform",
                &p.platform.to_string(),
                "--json",
            ],
        )
        .await
        .ok("drill start")
        .json();
    let drills = app
        .renkei(&operator, &["drill", "list", "--json"])
        .await
        .ok("drill list")
        .json();
    assert!(
        drills
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x["id"] == drill["id"])),
        "{drills}"
    );
    app.stop().await;
}

/// The README's five-minute demo, as shipped (`docs/demo/demo.sh`, with its
/// platform and rules files), run against the product: it must finish,
/// Agency B's CSIRT must receive the spread alert (signed with the demo's
/// secret), and the incident must show B acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_demo_runs_end_to_end() {
    let mut app = App::start().await;
    let hooks = renkei_testkit::WebhookSink::start()
        .await
        .expect("webhook receiver");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/demo/demo.sh");
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .env("RENKEI", env!("CARGO_BIN_EXE_renkei"))
        .env("RENKEI_URL", &app.url)
        .env("DEMO_WEBHOOK", &hooks.url)
        .env("DEMO_DATA_DIR", app.dir.path())
        // The product under test signs with the test key; `renkei token`
        // reads it from the settings like `renkei up`'s development key.
        .env("RENKEI_AUTH__DEV_KEY", renkei_testkit::TEST_KEY)
        .env_remove("RENKEI_TOKEN")
        .env("HOME", app.dir.path())
        .output()
        .await
        .expect("bash runs the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{stderr}");
    eprintln!("the demo ran in {:.1} s", started.elapsed().as_secs_f64());
    for shown in [
        "Agency A",
        "Agency B",
        "acknowledged",
        "in_force",
        "Ransomware",
    ] {
        assert!(stdout.contains(shown), "{shown} not shown:\n{stdout}");
    }

    let alerts = hooks.on("/agency-b");
    let alert = alerts
        .iter()
        .find(|r| {
            r.json()["topic"]
                .as_str()
                .is_some_and(|t| t.ends_with("spread_risk"))
        })
        .unwrap_or_else(|| panic!("Agency B's CSIRT got no spread alert: {alerts:?}"));
    let timestamp: i64 = alert
        .header("x-renkei-timestamp")
        .and_then(|t| t.parse().ok())
        .expect("a timestamp");
    assert!(renkei_contacts::channels::webhook::verify(
        "demo-webhook-secret",
        timestamp,
        &alert.body,
        alert.header("x-renkei-signature").unwrap_or_default(),
    ));
    let incidents = app.list("/v1/incidents").await;
    assert_eq!(incidents.len(), 1);
    let (_, incident) = app
        .get(
            &format!(
                "/v1/incidents/{}",
                incidents[0]["id"].as_str().unwrap_or_default()
            ),
            &admin(),
        )
        .await;
    let b_acknowledged = incident["affected"].as_array().is_some_and(|rows| {
        rows.iter()
            .any(|r| r["org_name"] == "Agency B" && r["acknowledged"] == true)
    });
    assert!(b_acknowledged, "{incident}");
    hooks.stop().await;
    app.stop().await;
}
