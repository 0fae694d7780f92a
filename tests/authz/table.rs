//! The product's authorisation table, `docs/authorization.csv`: one row per
//! route × role × relation with the answer expected, read by the tests and
//! published as `docs/authorization.md` (rendered here).

// Shared by two test targets; each uses a part.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The roles of a token, in the table's order.
pub const ROLES: [&str; 7] = [
    "admin", "operator", "manager", "csirt", "ciso", "central", "auditor",
];

/// How the caller's organisation stands to the object.
pub const RELATIONS: [&str; 3] = ["own", "platform", "other"];

/// The answers a row may expect: a status, or for a collection whether the
/// reference object is in it (`listed`) or not (`hidden`), both with 200.
pub const ANSWERS: [&str; 8] = ["200", "201", "204", "400", "403", "404", "listed", "hidden"];

/// The services, in the order the table is published.
pub const SERVICES: [&str; 4] = ["registry", "demarcation", "contacts", "emergency"];

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub service: String,
    pub method: String,
    pub path: String,
    /// What the route acts on in the walk's world.
    pub object: String,
    /// `A` (a member organisation) or `O` (the platform's operator).
    pub owned_by: String,
    pub role: String,
    pub relation: String,
    pub answer: String,
    pub note: String,
    /// Line in the file, for messages.
    pub line: usize,
}

impl Row {
    /// `METHOD /path`.
    pub fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Whether the answer says what a collection holds.
    pub fn is_collection(&self) -> bool {
        matches!(self.answer.as_str(), "listed" | "hidden")
    }

    /// Whether the row expects the call to succeed (and change something,
    /// for a method that changes things).
    pub fn succeeds(&self) -> bool {
        self.answer.starts_with('2') || self.is_collection()
    }
}

/// The repository root (the flows crate lives in `tests/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

pub fn csv_path() -> PathBuf {
    root().join("docs").join("authorization.csv")
}

pub fn markdown_path() -> PathBuf {
    root().join("docs").join("authorization.md")
}

pub const HEADER: [&str; 9] = [
    "service", "method", "path", "object", "owned_by", "role", "relation", "answer", "note",
];

/// Splits one CSV line (RFC 4180 quoting, no line breaks inside fields).
pub fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The table, or a message naming the first line that cannot be read.
pub fn parse(text: &str) -> Result<Vec<Row>, String> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| split_csv(l))
        .ok_or("the table is empty")?;
    if header != HEADER {
        return Err(format!("the header must be {}", HEADER.join(",")));
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f = split_csv(line);
        let [
            service,
            method,
            path,
            object,
            owned_by,
            role,
            relation,
            answer,
            note,
        ]: [String; 9] = f
            .try_into()
            .map_err(|f: Vec<String>| format!("line {}: {} fields, not 9", i + 1, f.len()))?;
        rows.push(Row {
            service,
            method,
            path,
            object,
            owned_by,
            role,
            relation,
            answer,
            note,
            line: i + 1,
        });
    }
    Ok(rows)
}

/// Paths compared without parameter names: `/v1/rules/{}`.
pub fn normalise(path: &str) -> String {
    renkei_web::openapi::route_shape(path)
}

/// The `(METHOD, normalised path)` of every route the table answers for
/// in `service`.
pub fn listed(rows: &[Row], service: &str) -> BTreeSet<(String, String)> {
    rows.iter()
        .filter(|r| r.service == service)
        .map(|r| (r.method.clone(), normalise(&r.path)))
        .collect()
}

/// The table as the repository holds it.
pub fn load() -> Vec<Row> {
    let text = std::fs::read_to_string(csv_path()).expect("docs/authorization.csv is readable");
    parse(&text).unwrap_or_else(|e| panic!("docs/authorization.csv: {e}"))
}

/// Whose caller a relation means, for an object owned by `owned_by` (`A`, a
/// member, or `O`, the platform operator): the letter of the organisation
/// the walk's world gives the caller's token.
pub fn caller_org(owned_by: &str, role: &str, relation: &str) -> &'static str {
    match (relation, owned_by, role) {
        ("own", "O", _) => "O",
        ("own", _, _) => "A",
        ("platform", "A", "operator") => "O",
        ("platform", _, _) => "B",
        (_, _, "operator") => "X",
        _ => "C",
    }
}

/// Routes in the table's order, each with its rows.
pub fn routes(rows: &[Row]) -> Vec<(String, String, String, Vec<&Row>)> {
    let mut out: Vec<(String, String, String, Vec<&Row>)> = Vec::new();
    for row in rows {
        match out
            .iter_mut()
            .find(|(s, m, p, _)| *s == row.service && *m == row.method && *p == row.path)
        {
            Some((_, _, _, rs)) => rs.push(row),
            None => out.push((
                row.service.clone(),
                row.method.clone(),
                row.path.clone(),
                vec![row],
            )),
        }
    }
    out
}

fn short(answer: &str) -> &str {
    match answer {
        "listed" => "✓",
        "hidden" => "–",
        other => other,
    }
}

/// `docs/authorization.md`, generated from the rows.
pub fn render_markdown(rows: &[Row]) -> String {
    let mut md = String::new();
    md.push_str(
        "<!-- Generated from docs/authorization.csv; do not edit by hand. Regenerate with:\n     \
         RENKEI_WRITE_DOCS=1 cargo test -p renkei-flows --test authorization_table -->\n\n",
    );
    md.push_str("# Authorisation table\n\n");
    md.push_str(
        "Every route of the four services, for every role a token may carry, called \
         from three places, and the answer it gives. The data is \
         [`authorization.csv`](authorization.csv) (one row per route × role × relation, \
         with a note); `tests/authorization.rs` starts the four services against a real \
         NATS server and a real database (SQLite, and PostgreSQL in `tests/run`), builds \
         the world below and calls every row, failing on any answer that differs.\n\n",
    );
    md.push_str("## The world the table is walked in\n\n");
    md.push_str(
        "- Platform **P1**, operated by organisation **O** (`platform_operator`), with \
         the member organisations **A** and **B** (government agencies owning linked \
         systems on P1).\n\
         - Platform **P2**, operated by **X**, with the member **C**.\n\
         - A central body **Z** (`central_body`).\n\
         - Each route acts on one reference object (the *object* column): most belong to \
         member **A** (its systems, contacts, incidents…), the platform-wide ones \
         (matrix, rules, playbooks, cooperation map, drills, advisories) to **O**.\n\n",
    );
    md.push_str("## Relations\n\n");
    md.push_str(
        "A token carries one role and one organisation. The relation says which \
         organisation:\n\n\
         | object owned by | own | platform | other |\n\
         |---|---|---|---|\n\
         | a member (A) | A | B, but O (the platform operator) for the `operator` role | C, but X (another platform's operator) for the `operator` role |\n\
         | the operator (O) | O | B | C, but X for the `operator` role |\n\n\
         So *own* is the object's own organisation, *platform* another organisation on \
         the same common platform (for the `operator` role of a member's object: the \
         platform operator itself), *other* an organisation on another platform. \
         `admin`, `central` and `auditor` read everything whatever their \
         organisation; where a route acts on behalf of an organisation (messages, \
         acknowledgements, advisories) theirs still counts.\n\n",
    );
    md.push_str("## Answers\n\n");
    md.push_str(
        "- `200`, `201`, `204`: allowed (the walk calls these on a fresh object when the \
         call changes it).\n\
         - `403`: the caller may see the object but not do this.\n\
         - `404`: the object does not exist for the caller (its existence is not \
         disclosed).\n\
         - `400`: a body field names an object the caller cannot see (the field is named, \
         as for any bad input).\n\
         - Collections: `✓` the reference object is listed, `–` it is not (both 200).\n\
         - Cells read own · platform · other.\n\n",
    );
    for service in SERVICES {
        let service_routes: Vec<_> = routes(rows)
            .into_iter()
            .filter(|(s, _, _, _)| s == service)
            .collect();
        if service_routes.is_empty() {
            continue;
        }
        md.push_str(&format!("## {service}\n\n"));
        md.push_str("| route | object (owned by) |");
        for role in ROLES {
            md.push_str(&format!(" {role} |"));
        }
        md.push_str("\n|---|---|");
        for _ in ROLES {
            md.push_str("---|");
        }
        md.push('\n');
        for (_, method, path, rs) in &service_routes {
            let owned_by = rs.first().map_or("", |r| r.owned_by.as_str());
            let object = rs.first().map_or("", |r| r.object.as_str());
            md.push_str(&format!("| `{method} {path}` | {object} ({owned_by}) |"));
            for role in ROLES {
                let cell: Vec<&str> = RELATIONS
                    .iter()
                    .map(|rel| {
                        rs.iter()
                            .find(|r| r.role == role && r.relation == *rel)
                            .map_or("?", |r| short(&r.answer))
                    })
                    .collect();
                md.push_str(&format!(" {} |", cell.join(" · ")));
            }
            md.push('\n');
        }
        md.push_str("\nWhy:\n\n");
        for (_, method, path, rs) in &service_routes {
            let mut why: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for r in rs {
                let who = format!(
                    "{}@{}",
                    r.role,
                    caller_org(&r.owned_by, &r.role, &r.relation)
                );
                why.entry(format!("{} — {}", short(&r.answer), r.note))
                    .or_default()
                    .push(who);
            }
            md.push_str(&format!("- `{method} {path}`:"));
            let parts: Vec<String> = why
                .into_iter()
                .map(|(answer, who)| format!(" {answer} ({})", who.join(", ")))
                .collect();
            md.push_str(&parts.join(";"));
            md.push('\n');
        }
        md.push('\n');
    }
    md
}
