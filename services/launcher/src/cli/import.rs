//! `renkei import FILE`: a platform's organisations, systems and links from
//! a YAML or CSV file, validated whole before anything is written, and
//! idempotent on re-run (what already exists is counted, never duplicated).
//!
//! YAML:
//!
//! ```yaml
//! organizations:
//!   - {name: Digital Agency, kind: platform_operator}
//! systems:
//!   - {name: Gov Cloud, kind: platform, owner: Digital Agency,
//!      confidentiality: 3, integrity: 2, availability: 2}
//!   - {name: Records, owner: Agency A, platform: Gov Cloud, ...}
//! links:
//!   - {from: Records, to: Payroll, kind: network, propagates: [malware]}
//! ```
//!
//! CSV: one file, a `type` column (`organization`, `system` or `link`) and
//! the union of the other columns; `propagates` separated by `;` or `|`.
//!
//! Organisations are matched by name (unique in the registry), platforms by
//! name, linked systems by name on their platform, links by from/to.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::{Client, output};

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// A .yaml/.yml or .csv file.
    pub file: PathBuf,
    /// Validate against the deployment and say what would be created;
    /// write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

const ORG_KINDS: &[&str] = &[
    "platform_operator",
    "government_agency",
    "incorporated_administrative_agency",
    "designated_corporation",
    "central_body",
];
const LINK_KINDS: &[&str] = &[
    "network",
    "data_flow",
    "identity",
    "shared_infrastructure",
    "operations",
];
const CATEGORIES: &[&str] = &[
    "malware",
    "unauthorized_access",
    "data_leak",
    "denial_of_service",
    "outage",
    "other",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Organization,
    System,
    Link,
}

impl Section {
    fn allowed(self) -> &'static [&'static str] {
        match self {
            Section::Organization => &["name", "kind"],
            Section::System => &[
                "name",
                "kind",
                "owner",
                "platform",
                "confidentiality",
                "integrity",
                "availability",
                "description",
            ],
            Section::Link => &["from", "to", "kind", "propagates"],
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Section::Organization => "organization",
            Section::System => "system",
            Section::Link => "link",
        }
    }
}

#[derive(Debug, Clone)]
enum FieldValue {
    Text(String),
    List(Vec<String>),
    Bad(&'static str),
}

#[derive(Debug, Clone)]
struct Field {
    value: FieldValue,
    line: usize,
}

#[derive(Debug, Clone)]
struct RawItem {
    section: Section,
    line: usize,
    fields: BTreeMap<String, Field>,
}

/// One error of the file, on its line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

fn problem(line: usize, message: impl Into<String>) -> Problem {
    Problem {
        line,
        message: message.into(),
    }
}

// ---- YAML ------------------------------------------------------------------

/// Where a top-level section and each of its block items start (1-based
/// lines), and the lines each item spans; found by scanning the text, since
/// a parsed YAML value carries no positions.
struct SectionLines {
    line: usize,
    items: Vec<(usize, usize)>,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn section_lines(lines: &[&str], key: &str) -> Option<SectionLines> {
    let start = lines.iter().position(|l| {
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })?;
    let mut dash_indent = None;
    let mut starts = Vec::new();
    let mut end = lines.len();
    for (j, l) in lines.iter().enumerate().skip(start + 1) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if indent_of(l) == 0 && !t.starts_with('-') {
            end = j;
            break;
        }
        let is_dash = t == "-" || t.starts_with("- ");
        match dash_indent {
            None if is_dash => {
                dash_indent = Some(indent_of(l));
                starts.push(j);
            }
            Some(d) if is_dash && indent_of(l) == d => starts.push(j),
            _ => {}
        }
    }
    let items = starts
        .iter()
        .enumerate()
        .map(|(n, &s)| (s + 1, starts.get(n + 1).copied().unwrap_or(end)))
        .collect();
    Some(SectionLines {
        line: start + 1,
        items,
    })
}

/// The line of `key:` inside an item (lines `from`..`to`, 1-based start).
fn key_line(lines: &[&str], from: usize, to: usize, key: &str) -> Option<usize> {
    (from - 1..to.min(lines.len()))
        .find(|&j| {
            let t = lines[j].trim_start();
            let t = t.strip_prefix('-').map_or(t, str::trim_start);
            let t = t.strip_prefix('{').map_or(t, str::trim_start);
            t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|j| j + 1)
}

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_yaml(text: &str) -> (Vec<RawItem>, Vec<Problem>) {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let doc: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e.location().map_or(1, |l| l.line());
            problems.push(problem(line, format!("not valid YAML: {e}")));
            return (items, problems);
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let serde_yaml_ng::Value::Mapping(top) = doc else {
        problems.push(problem(
            1,
            "the file is one mapping with `organizations`, `systems` and `links`",
        ));
        return (items, problems);
    };
    for (key, value) in &top {
        let key = scalar(key).unwrap_or_default();
        let section = match key.as_str() {
            "organizations" | "organisations" => Section::Organization,
            "systems" => Section::System,
            "links" => Section::Link,
            other => {
                let line = section_lines(&lines, other).map_or(1, |s| s.line);
                problems.push(problem(
                    line,
                    format!("unknown section `{other}`: use organizations, systems and links"),
                ));
                continue;
            }
        };
        let place = section_lines(&lines, &key);
        let section_line = place.as_ref().map_or(1, |p| p.line);
        let list = match value {
            serde_yaml_ng::Value::Sequence(list) => list,
            serde_yaml_ng::Value::Null => continue,
            _ => {
                problems.push(problem(section_line, format!("`{key}` is not a list")));
                continue;
            }
        };
        // Block items map to their `- ` lines; flow lists to the section.
        let spans: Vec<(usize, usize)> = match &place {
            Some(p) if p.items.len() == list.len() => p.items.clone(),
            _ => vec![(section_line, section_line + 1); list.len()],
        };
        for (entry, &(from, to)) in list.iter().zip(&spans) {
            let serde_yaml_ng::Value::Mapping(map) = entry else {
                problems.push(problem(
                    from,
                    format!("a {} is a mapping of fields", section.noun()),
                ));
                continue;
            };
            let mut fields = BTreeMap::new();
            for (k, v) in map {
                let name = scalar(k).unwrap_or_default();
                let line = key_line(&lines, from, to, &name).unwrap_or(from);
                let value = match v {
                    serde_yaml_ng::Value::Sequence(seq) => {
                        match seq.iter().map(scalar).collect::<Option<Vec<_>>>() {
                            Some(list) => FieldValue::List(list),
                            None => FieldValue::Bad("a list of words"),
                        }
                    }
                    serde_yaml_ng::Value::Null => continue,
                    other => match scalar(other) {
                        Some(s) => FieldValue::Text(s),
                        None => FieldValue::Bad("a single value"),
                    },
                };
                fields.insert(name, Field { value, line });
            }
            items.push(RawItem {
                section,
                line: from,
                fields,
            });
        }
    }
    (items, problems)
}

// ---- CSV -------------------------------------------------------------------

/// The 1-based line of the record read from a byte offset: the csv
/// crate's own line count skips blank lines, and its offset is where it
/// started reading (before blank and comment lines it skipped).
fn line_at(text: &str, byte: u64) -> usize {
    let bytes = text.as_bytes();
    let mut at = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
    loop {
        match bytes.get(at) {
            Some(b'\n' | b'\r') => at += 1,
            Some(b'#') => {
                while bytes.get(at).is_some_and(|&b| b != b'\n') {
                    at += 1;
                }
            }
            _ => break,
        }
    }
    bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1
}

fn parse_csv(text: &str) -> (Vec<RawItem>, Vec<Problem>) {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.to_ascii_lowercase()).collect(),
        Err(e) => {
            problems.push(problem(1, format!("not valid CSV: {e}")));
            return (items, problems);
        }
    };
    let known: HashSet<&str> = [Section::Organization, Section::System, Section::Link]
        .iter()
        .flat_map(|s| s.allowed().iter().copied())
        .chain(["type"])
        .collect();
    for h in &headers {
        if !known.contains(h.as_str()) {
            problems.push(problem(1, format!("unknown column `{h}`")));
        }
    }
    if !headers.iter().any(|h| h == "type") {
        problems.push(problem(
            1,
            "no `type` column (organization, system or link on each line)",
        ));
        return (items, problems);
    }
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(1, |p| line_at(text, p.byte()));
                problems.push(problem(line, format!("not valid CSV: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(1, |p| line_at(text, p.byte()));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != headers.len() {
            problems.push(problem(
                line,
                format!(
                    "{} fields where the header has {}",
                    record.len(),
                    headers.len()
                ),
            ));
            continue;
        }
        let mut section = None;
        let mut type_given = false;
        let mut fields = BTreeMap::new();
        for (h, cell) in headers.iter().zip(record.iter()) {
            if cell.is_empty() {
                continue;
            }
            if h == "type" {
                type_given = true;
                section = match cell.to_ascii_lowercase().as_str() {
                    "organization" | "organisation" | "org" => Some(Section::Organization),
                    "system" => Some(Section::System),
                    "link" => Some(Section::Link),
                    other => {
                        problems.push(problem(
                            line,
                            format!("type `{other}`: use organization, system or link"),
                        ));
                        None
                    }
                };
                continue;
            }
            let value = if h == "propagates" {
                FieldValue::List(
                    cell.split([';', '|', ',', ' '])
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            } else {
                FieldValue::Text(cell.to_owned())
            };
            fields.insert(h.clone(), Field { value, line });
        }
        match section {
            Some(section) => items.push(RawItem {
                section,
                line,
                fields,
            }),
            None if !type_given => {
                problems.push(problem(line, "no type (organization, system or link)"));
            }
            // A type that is not one was reported above.
            None => {}
        }
    }
    (items, problems)
}

// ---- the deployment as it is -----------------------------------------------

#[derive(Debug, Clone)]
struct KnownSystem {
    id: uuid::Uuid,
    name: String,
    kind: String,
    platform_id: uuid::Uuid,
}

struct World {
    /// Organisations by name: (id, kind).
    orgs: HashMap<String, (uuid::Uuid, String)>,
    systems: Vec<KnownSystem>,
    links: HashSet<(uuid::Uuid, uuid::Uuid)>,
}

fn uuid_of(v: &Value) -> uuid::Uuid {
    v.as_str()
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .unwrap_or_default()
}

async fn world(client: &Client) -> anyhow::Result<World> {
    let orgs = client
        .list_all("/v1/organizations")
        .await?
        .into_iter()
        .map(|o| {
            (
                output::text(&o["name"]),
                (uuid_of(&o["id"]), output::text(&o["kind"])),
            )
        })
        .collect();
    let systems = client
        .list_all("/v1/systems")
        .await?
        .into_iter()
        .map(|s| KnownSystem {
            id: uuid_of(&s["id"]),
            name: output::text(&s["name"]),
            kind: output::text(&s["kind"]),
            platform_id: uuid_of(&s["platform_id"]),
        })
        .collect();
    let links = client
        .list_all("/v1/links")
        .await?
        .into_iter()
        .map(|l| (uuid_of(&l["from_system_id"]), uuid_of(&l["to_system_id"])))
        .collect();
    Ok(World {
        orgs,
        systems,
        links,
    })
}

impl World {
    fn platform_name(&self, id: uuid::Uuid) -> String {
        self.systems
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| id.to_string())
    }
}

// ---- validation --------------------------------------------------------------

/// A system as the import knows it: its name, and the name of its platform
/// (its own for a platform).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SystemKey {
    platform: String,
    name: String,
}

#[derive(Debug)]
struct OrgPlan {
    line: usize,
    name: String,
    kind: String,
    exists: bool,
}

#[derive(Debug)]
struct SystemPlan {
    line: usize,
    key: SystemKey,
    kind: String,
    owner: String,
    ratings: (i64, i64, i64),
    description: Option<String>,
    exists: Option<uuid::Uuid>,
}

#[derive(Debug)]
struct LinkPlan {
    line: usize,
    from: SystemKey,
    to: SystemKey,
    kind: String,
    propagates: Vec<String>,
}

#[derive(Debug, Default)]
struct Plan {
    orgs: Vec<OrgPlan>,
    systems: Vec<SystemPlan>,
    links: Vec<LinkPlan>,
}

struct Reader<'a> {
    item: &'a RawItem,
    problems: &'a mut Vec<Problem>,
}

impl Reader<'_> {
    fn line_of(&self, key: &str) -> usize {
        self.item.fields.get(key).map_or(self.item.line, |f| f.line)
    }

    fn text(&mut self, key: &str, required: bool) -> Option<String> {
        match self.item.fields.get(key) {
            Some(Field {
                value: FieldValue::Text(s),
                line,
            }) => {
                let s = s.trim().to_owned();
                if s.is_empty() {
                    self.problems
                        .push(problem(*line, format!("`{key}` is empty")));
                    None
                } else if s.chars().count() > 200 && key != "description" {
                    self.problems.push(problem(
                        *line,
                        format!("`{key}` is longer than 200 characters"),
                    ));
                    None
                } else {
                    Some(s)
                }
            }
            Some(Field { line, .. }) => {
                self.problems
                    .push(problem(*line, format!("`{key}` must be a single value")));
                None
            }
            None => {
                if required {
                    self.problems.push(problem(
                        self.item.line,
                        format!("{} without `{key}`", self.item.section.noun()),
                    ));
                }
                None
            }
        }
    }

    fn one_of(&mut self, key: &str, allowed: &[&str]) -> Option<String> {
        let value = self.text(key, true)?;
        if allowed.contains(&value.as_str()) {
            Some(value)
        } else {
            let line = self.line_of(key);
            self.problems.push(problem(
                line,
                format!("{key} `{value}` is not one of {}", allowed.join(", ")),
            ));
            None
        }
    }

    fn rating(&mut self, key: &str, max: i64) -> Option<i64> {
        let value = self.text(key, true)?;
        match value.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                let line = self.line_of(key);
                self.problems.push(problem(
                    line,
                    format!("{key} `{value}` must be a whole number from 1 to {max}"),
                ));
                None
            }
        }
    }

    fn list(&mut self, key: &str) -> Option<Vec<String>> {
        match self.item.fields.get(key) {
            Some(Field {
                value: FieldValue::List(l),
                ..
            }) => Some(l.clone()),
            Some(Field {
                value: FieldValue::Text(s),
                ..
            }) => Some(
                s.split([',', ';', '|', ' '])
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            Some(Field {
                value: FieldValue::Bad(what),
                line,
            }) => {
                self.problems
                    .push(problem(*line, format!("`{key}` must be {what}")));
                None
            }
            None => Some(Vec::new()),
        }
    }

    fn unknown_fields(&mut self) {
        let allowed = self.item.section.allowed();
        for (k, f) in &self.item.fields {
            if !allowed.contains(&k.as_str()) {
                self.problems.push(problem(
                    f.line,
                    format!(
                        "unknown field `{k}` for a {} (use {})",
                        self.item.section.noun(),
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
}

fn validate(items: &[RawItem], world: &World, problems: &mut Vec<Problem>) -> Plan {
    let mut plan = Plan::default();
    // Organisations.
    let mut org_lines: HashMap<String, usize> = HashMap::new();
    let mut org_kinds: HashMap<String, String> = world
        .orgs
        .iter()
        .map(|(n, (_, k))| (n.clone(), k.clone()))
        .collect();
    for item in items.iter().filter(|i| i.section == Section::Organization) {
        let mut r = Reader { item, problems };
        r.unknown_fields();
        let name = r.text("name", true);
        let kind = r.one_of("kind", ORG_KINDS);
        let (Some(name), Some(kind)) = (name, kind) else {
            continue;
        };
        if let Some(first) = org_lines.get(&name) {
            problems.push(problem(
                item.line,
                format!("organisation `{name}` is already on line {first}"),
            ));
            continue;
        }
        org_lines.insert(name.clone(), item.line);
        let exists = match world.orgs.get(&name) {
            Some((_, existing)) if *existing != kind => {
                problems.push(problem(
                    item.line,
                    format!(
                        "organisation `{name}` is already registered as a {existing}, not a {kind}"
                    ),
                ));
                continue;
            }
            Some(_) => true,
            None => false,
        };
        org_kinds.insert(name.clone(), kind.clone());
        plan.orgs.push(OrgPlan {
            line: item.line,
            name,
            kind,
            exists,
        });
    }

    // Platforms first (linked systems name them), then linked systems.
    let file_platforms: HashSet<String> = items
        .iter()
        .filter(|i| i.section == Section::System)
        .filter(|i| system_kind(i) == "platform")
        .filter_map(|i| match i.fields.get("name").map(|f| &f.value) {
            Some(FieldValue::Text(n)) => Some(n.trim().to_owned()),
            _ => None,
        })
        .collect();
    let mut system_lines: HashMap<SystemKey, usize> = HashMap::new();
    let mut systems: Vec<&RawItem> = items
        .iter()
        .filter(|i| i.section == Section::System)
        .collect();
    systems.sort_by_key(|i| (system_kind(i) != "platform", i.line));
    for item in systems {
        let mut r = Reader { item, problems };
        r.unknown_fields();
        let kind = system_kind(item);
        if kind != "platform" && kind != "linked" {
            let line = r.line_of("kind");
            r.problems.push(problem(
                line,
                format!("kind `{kind}` is not one of platform, linked"),
            ));
        }
        let name = r.text("name", true);
        let owner = r.text("owner", true);
        let platform = r.text("platform", kind == "linked");
        let c = r.rating("confidentiality", 3);
        let i = r.rating("integrity", 2);
        let a = r.rating("availability", 2);
        let description = r.text("description", false);
        let owner_line = r.line_of("owner");
        let platform_line = r.line_of("platform");
        if let Some(owner) = &owner {
            match org_kinds.get(owner) {
                None => problems.push(problem(
                    owner_line,
                    format!("owner `{owner}` names no organisation in the file or the deployment"),
                )),
                Some(k) if kind == "platform" && k != "platform_operator" => {
                    problems.push(problem(
                        owner_line,
                        format!("a platform is owned by a platform_operator; `{owner}` is a {k}"),
                    ))
                }
                Some(_) => {}
            }
        }
        let (Some(name), Some(owner), Some(c), Some(i), Some(a)) = (name, owner, c, i, a) else {
            continue;
        };
        let (key, exists) = if kind == "platform" {
            if platform.is_some() {
                problems.push(problem(
                    platform_line,
                    "a platform is not on another platform: leave `platform` out",
                ));
                continue;
            }
            let existing: Vec<&KnownSystem> = world
                .systems
                .iter()
                .filter(|s| s.kind == "platform" && s.name == name)
                .collect();
            (
                SystemKey {
                    platform: name.clone(),
                    name: name.clone(),
                },
                existing.first().map(|s| s.id),
            )
        } else {
            let Some(platform) = platform else { continue };
            let in_world: Vec<&KnownSystem> = world
                .systems
                .iter()
                .filter(|s| s.kind == "platform" && s.name == platform)
                .collect();
            let exists = if file_platforms.contains(&platform) {
                in_world.first().and_then(|p| {
                    world
                        .systems
                        .iter()
                        .find(|s| s.kind == "linked" && s.name == name && s.platform_id == p.id)
                        .map(|s| s.id)
                })
            } else {
                match in_world.as_slice() {
                    [] => {
                        problems.push(problem(
                            platform_line,
                            format!("platform `{platform}` names no platform in the file or the deployment"),
                        ));
                        continue;
                    }
                    [p] => world
                        .systems
                        .iter()
                        .find(|s| s.kind == "linked" && s.name == name && s.platform_id == p.id)
                        .map(|s| s.id),
                    more => {
                        problems.push(problem(
                            platform_line,
                            format!(
                                "platform `{platform}` is ambiguous: {} platforms have that name",
                                more.len()
                            ),
                        ));
                        continue;
                    }
                }
            };
            (
                SystemKey {
                    platform,
                    name: name.clone(),
                },
                exists,
            )
        };
        if let Some(first) = system_lines.get(&key) {
            problems.push(problem(
                item.line,
                format!(
                    "system `{}` on `{}` is already on line {first}",
                    key.name, key.platform
                ),
            ));
            continue;
        }
        system_lines.insert(key.clone(), item.line);
        plan.systems.push(SystemPlan {
            line: item.line,
            key,
            kind: kind.clone(),
            owner,
            ratings: (c, i, a),
            description,
            exists,
        });
    }

    // Links: ends by system name, among the file's and the deployment's.
    let mut candidates: HashMap<String, HashSet<SystemKey>> = HashMap::new();
    for s in &plan.systems {
        candidates
            .entry(s.key.name.clone())
            .or_default()
            .insert(s.key.clone());
    }
    for s in &world.systems {
        let platform = if s.kind == "platform" {
            s.name.clone()
        } else {
            world.platform_name(s.platform_id)
        };
        candidates
            .entry(s.name.clone())
            .or_default()
            .insert(SystemKey {
                platform,
                name: s.name.clone(),
            });
    }
    let mut link_lines: HashMap<(SystemKey, SystemKey), usize> = HashMap::new();
    for item in items.iter().filter(|i| i.section == Section::Link) {
        let mut r = Reader { item, problems };
        r.unknown_fields();
        let from = r.text("from", true);
        let to = r.text("to", true);
        let kind = r.one_of("kind", LINK_KINDS);
        let propagates = r.list("propagates");
        let from_line = r.line_of("from");
        let to_line = r.line_of("to");
        let propagates_line = r.line_of("propagates");
        let resolve = |name: &Option<String>, line: usize, problems: &mut Vec<Problem>| {
            let name = name.as_ref()?;
            match candidates.get(name).map(|c| c.iter().collect::<Vec<_>>()) {
                None => {
                    problems.push(problem(
                        line,
                        format!("system `{name}` is in neither the file nor the deployment"),
                    ));
                    None
                }
                Some(found) if found.len() == 1 => Some(found[0].clone()),
                Some(found) => {
                    problems.push(problem(
                        line,
                        format!(
                            "system `{name}` is ambiguous: {} systems have that name",
                            found.len()
                        ),
                    ));
                    None
                }
            }
        };
        let from = resolve(&from, from_line, problems);
        let to = resolve(&to, to_line, problems);
        if let Some(p) = &propagates {
            for c in p {
                if !CATEGORIES.contains(&c.as_str()) {
                    problems.push(problem(
                        propagates_line,
                        format!("propagates `{c}` is not one of {}", CATEGORIES.join(", ")),
                    ));
                }
            }
        }
        let (Some(from), Some(to), Some(kind), Some(propagates)) = (from, to, kind, propagates)
        else {
            continue;
        };
        if from == to {
            problems.push(problem(to_line, "a link joins two different systems"));
            continue;
        }
        if from.platform != to.platform {
            problems.push(problem(
                to_line,
                format!(
                    "`{}` is on platform `{}` and `{}` on `{}`: links stay within one platform",
                    from.name, from.platform, to.name, to.platform
                ),
            ));
            continue;
        }
        let pair = (from.clone(), to.clone());
        if let Some(first) = link_lines.get(&pair) {
            problems.push(problem(
                item.line,
                format!(
                    "the link from `{}` to `{}` is already on line {first}",
                    from.name, to.name
                ),
            ));
            continue;
        }
        link_lines.insert(pair, item.line);
        plan.links.push(LinkPlan {
            line: item.line,
            from,
            to,
            kind,
            propagates,
        });
    }
    plan
}

fn system_kind(item: &RawItem) -> String {
    match item.fields.get("kind").map(|f| &f.value) {
        Some(FieldValue::Text(k)) => k.trim().to_owned(),
        _ if item.fields.contains_key("platform") => "linked".to_owned(),
        _ => "platform".to_owned(),
    }
}

// ---- writing -----------------------------------------------------------------

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    created: usize,
    existing: usize,
}

#[derive(Debug, Default)]
struct Summary {
    organizations: Count,
    systems: Count,
    links: Count,
}

impl Summary {
    fn to_json(&self, file: &Path, dry_run: bool) -> Value {
        let c = |c: Count| json!({"created": c.created, "already_there": c.existing});
        json!({
            "file": file.display().to_string(),
            "dry_run": dry_run,
            "organizations": c(self.organizations),
            "systems": c(self.systems),
            "links": c(self.links),
        })
    }
}

fn progress(total: usize, hidden: bool) -> ProgressBar {
    if hidden || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} {wide_msg}") {
        bar.set_style(style);
    }
    bar
}

async fn write(
    client: &Client,
    plan: &Plan,
    world: &World,
    bar: &ProgressBar,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut org_ids: HashMap<String, uuid::Uuid> = world
        .orgs
        .iter()
        .map(|(n, (id, _))| (n.clone(), *id))
        .collect();
    for o in &plan.orgs {
        bar.set_message(format!("organisation {}", o.name));
        if o.exists {
            summary.organizations.existing += 1;
        } else {
            let made = client
                .post("/v1/organizations", json!({"name": o.name, "kind": o.kind}))
                .await
                .with_context(|| format!("line {}: organisation `{}`", o.line, o.name))?;
            org_ids.insert(o.name.clone(), uuid_of(&made["id"]));
            summary.organizations.created += 1;
        }
        bar.inc(1);
    }
    let mut system_ids: HashMap<SystemKey, uuid::Uuid> = HashMap::new();
    for s in &world.systems {
        let platform = if s.kind == "platform" {
            s.name.clone()
        } else {
            world.platform_name(s.platform_id)
        };
        system_ids.insert(
            SystemKey {
                platform,
                name: s.name.clone(),
            },
            s.id,
        );
    }
    for s in &plan.systems {
        bar.set_message(format!("system {}", s.key.name));
        if let Some(id) = s.exists {
            system_ids.insert(s.key.clone(), id);
            summary.systems.existing += 1;
        } else {
            let owner = org_ids
                .get(&s.owner)
                .with_context(|| format!("line {}: owner `{}` has no id", s.line, s.owner))?;
            let mut body = json!({
                "name": s.key.name, "kind": s.kind, "owner_org_id": owner,
                "confidentiality": s.ratings.0, "integrity": s.ratings.1,
                "availability": s.ratings.2,
            });
            if s.kind == "linked" {
                let platform = system_ids
                    .get(&SystemKey {
                        platform: s.key.platform.clone(),
                        name: s.key.platform.clone(),
                    })
                    .with_context(|| {
                        format!("line {}: platform `{}` has no id", s.line, s.key.platform)
                    })?;
                body["platform_id"] = json!(platform);
            }
            if let Some(d) = &s.description {
                body["description"] = json!(d);
            }
            let made = client
                .post("/v1/systems", body)
                .await
                .with_context(|| format!("line {}: system `{}`", s.line, s.key.name))?;
            system_ids.insert(s.key.clone(), uuid_of(&made["id"]));
            summary.systems.created += 1;
        }
        bar.inc(1);
    }
    for l in &plan.links {
        bar.set_message(format!("link {} → {}", l.from.name, l.to.name));
        let (Some(from), Some(to)) = (system_ids.get(&l.from), system_ids.get(&l.to)) else {
            anyhow::bail!("line {}: a system of this link has no id", l.line);
        };
        if world.links.contains(&(*from, *to)) {
            summary.links.existing += 1;
        } else {
            client
                .post(
                    "/v1/links",
                    json!({"from_system_id": from, "to_system_id": to,
                           "kind": l.kind, "propagates": l.propagates}),
                )
                .await
                .with_context(|| {
                    format!("line {}: link `{}` → `{}`", l.line, l.from.name, l.to.name)
                })?;
            summary.links.created += 1;
        }
        bar.inc(1);
    }
    Ok(summary)
}

fn would(plan: &Plan, world: &World) -> Summary {
    let count = |existing: usize, total: usize| Count {
        created: total - existing,
        existing,
    };
    let known: HashSet<(String, String)> = plan
        .systems
        .iter()
        .filter(|s| s.exists.is_some())
        .map(|s| (s.key.platform.clone(), s.key.name.clone()))
        .collect();
    let ids: HashMap<(String, String), uuid::Uuid> = plan
        .systems
        .iter()
        .filter_map(|s| {
            s.exists
                .map(|id| ((s.key.platform.clone(), s.key.name.clone()), id))
        })
        .chain(world.systems.iter().map(|s| {
            let platform = if s.kind == "platform" {
                s.name.clone()
            } else {
                world.platform_name(s.platform_id)
            };
            ((platform, s.name.clone()), s.id)
        }))
        .collect();
    let links_existing = plan
        .links
        .iter()
        .filter(|l| {
            let f = ids.get(&(l.from.platform.clone(), l.from.name.clone()));
            let t = ids.get(&(l.to.platform.clone(), l.to.name.clone()));
            matches!((f, t), (Some(f), Some(t)) if world.links.contains(&(*f, *t)))
        })
        .count();
    Summary {
        organizations: count(
            plan.orgs.iter().filter(|o| o.exists).count(),
            plan.orgs.len(),
        ),
        systems: count(known.len(), plan.systems.len()),
        links: count(links_existing, plan.links.len()),
    }
}

/// The file's items and its errors, YAML or CSV by extension.
fn parse(path: &Path, text: &str) -> anyhow::Result<(Vec<RawItem>, Vec<Problem>)> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "yaml" | "yml" => Ok(parse_yaml(text)),
        "csv" => Ok(parse_csv(text)),
        _ => anyhow::bail!("{}: give a .yaml, .yml or .csv file", path.display()),
    }
}

pub async fn run(client: &Client, args: ImportArgs) -> anyhow::Result<()> {
    let path = &args.file;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (items, mut problems) = parse(path, &text)?;
    let world = world(client).await?;
    let plan = validate(&items, &world, &mut problems);
    if !problems.is_empty() {
        problems.sort();
        if client.json {
            output::json(&json!({
                "file": path.display().to_string(),
                "errors": problems.iter().map(|p| json!({"line": p.line, "message": p.message})).collect::<Vec<_>>(),
            }));
        }
        for p in &problems {
            output::note(&format!("{}:{}: {}", path.display(), p.line, p.message));
        }
        anyhow::bail!(
            "{} error{} in {}: nothing was written",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            path.display()
        );
    }
    let summary = if args.dry_run {
        would(&plan, &world)
    } else {
        let total = plan.orgs.len() + plan.systems.len() + plan.links.len();
        let bar = progress(total, client.json);
        let written = write(client, &plan, &world, &bar).await;
        bar.finish_and_clear();
        written?
    };
    if client.json {
        output::json(&summary.to_json(path, args.dry_run));
        return Ok(());
    }
    let (created, there) = if args.dry_run {
        ("would be created", "already there")
    } else {
        ("created", "already there")
    };
    let row = |what: &str, c: Count| {
        vec![
            what.to_owned(),
            c.created.to_string(),
            c.existing.to_string(),
        ]
    };
    output::table(
        &["", created, there],
        vec![
            row("organisations", summary.organizations),
            row("systems", summary.systems),
            row("links", summary.links),
        ],
    );
    let new = summary.organizations.created + summary.systems.created + summary.links.created;
    let old = summary.organizations.existing + summary.systems.existing + summary.links.existing;
    output::line(&format!(
        "{}{}: {new} {created}, {old} {there}",
        if args.dry_run {
            "dry run of "
        } else {
            "imported "
        },
        path.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_items_keep_their_lines() {
        let text = "organizations:\n  - name: A\n    kind: government_agency\n\n  - name: B\n    kind: nope\nlinks:\n- from: x\n  to: y\n";
        let (items, problems) = parse_yaml(text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].line, 2);
        assert_eq!(items[1].line, 5);
        assert_eq!(items[1].fields["kind"].line, 6);
        assert_eq!(items[2].line, 8);
        assert_eq!(items[2].fields["to"].line, 9);
    }

    #[test]
    fn csv_rows_keep_their_lines() {
        let text = "type,name,kind,from,to,propagates\norganization,A,government_agency,,,\n\n# a comment\nlink,,network,x,y,malware;outage\n";
        let (items, problems) = parse_csv(text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(items[0].line, 2);
        assert_eq!(items[1].line, 5);
        assert!(
            matches!(&items[1].fields["propagates"].value, FieldValue::List(l) if l.len() == 2)
        );
    }
}
