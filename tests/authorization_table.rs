//! The authorisation table as data: complete (one answer per route, role
//! and relation, for every route the services serve), published from the
//! data, and backed by request bodies that refuse fields they do not know
//! (so a server-controlled field sent by a client is named and refused).
//! `tests/authorization.rs` walks the same table against the running
//! services.

#[path = "authz/table.rs"]
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use table::{ANSWERS, RELATIONS, ROLES, SERVICES};

#[test]
fn the_table_gives_one_answer_per_route_role_and_relation() {
    let rows = table::load();
    let mut problems = Vec::new();
    let mut seen: BTreeMap<(String, String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    for r in &rows {
        let at = format!(
            "line {} ({} as {} / {})",
            r.line,
            r.route(),
            r.role,
            r.relation
        );
        if !SERVICES.contains(&r.service.as_str()) {
            problems.push(format!("{at}: unknown service {}", r.service));
        }
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&r.method.as_str()) {
            problems.push(format!("{at}: unknown method {}", r.method));
        }
        if !r.path.starts_with('/') {
            problems.push(format!("{at}: the path must start with /"));
        }
        if !ROLES.contains(&r.role.as_str()) {
            problems.push(format!("{at}: unknown role {}", r.role));
        }
        if !RELATIONS.contains(&r.relation.as_str()) {
            problems.push(format!("{at}: unknown relation {}", r.relation));
        }
        if !ANSWERS.contains(&r.answer.as_str()) {
            problems.push(format!(
                "{at}: answer {} is not one of {ANSWERS:?}",
                r.answer
            ));
        }
        if !["A", "O"].contains(&r.owned_by.as_str()) {
            problems.push(format!("{at}: owned_by must be A or O"));
        }
        if r.object.trim().is_empty() || r.note.trim().is_empty() {
            problems.push(format!("{at}: object and note must be filled in"));
        }
        if r.is_collection() && r.method != "GET" {
            problems.push(format!("{at}: only a GET lists"));
        }
        let cell = (r.role.clone(), r.relation.clone());
        if !seen
            .entry((r.service.clone(), r.method.clone(), r.path.clone()))
            .or_default()
            .insert(cell)
        {
            problems.push(format!("{at}: a second row for the same role and relation"));
        }
    }
    for (service, method, path, rs) in table::routes(&rows) {
        if rs.len() != ROLES.len() * RELATIONS.len() {
            problems.push(format!(
                "{service} {method} {path}: {} rows, not one per role and relation ({})",
                rs.len(),
                ROLES.len() * RELATIONS.len()
            ));
        }
        let objects: BTreeSet<_> = rs.iter().map(|r| (&r.object, &r.owned_by)).collect();
        if objects.len() != 1 {
            problems.push(format!(
                "{service} {method} {path}: one object and owner per route, not {objects:?}"
            ));
        }
        let collection: BTreeSet<bool> = rs.iter().map(|r| r.is_collection()).collect();
        if collection.len() != 1 {
            problems.push(format!(
                "{service} {method} {path}: a collection answers listed/hidden in every row it \
                 allows"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/authorization.csv:\n{}",
        problems.join("\n")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `(METHOD, path)` a service's sources register with
/// `.route("…", web::method()…)`, and those of a shared crate whose routes
/// it adds with `.configure(renkei_<crate>::…)`.
fn served_routes(service: &str) -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    rust_files(
        &table::root().join("services").join(service).join("src"),
        &mut files,
    );
    let mut shared = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (at, _) in text.match_indices(".configure(renkei_") {
            let name: String = text[at + ".configure(renkei_".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            shared.insert(name);
        }
    }
    for name in shared {
        rust_files(
            &table::root().join("shared").join(name).join("src"),
            &mut files,
        );
    }
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (at, _) in text.match_indices(".route(") {
            let rest = &text[at + ".route(".len()..];
            let Some(open) = rest.find('"') else { continue };
            let Some(len) = rest[open + 1..].find('"') else {
                continue;
            };
            let path = &rest[open + 1..open + 1 + len];
            let after = &rest[open + 1 + len..];
            let Some(web) = after.find("web::") else {
                continue;
            };
            let method: String = after[web + "web::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            if path.starts_with('/') && !method.is_empty() {
                routes.insert((method.to_uppercase(), table::normalise(path)));
            }
        }
    }
    routes
}

#[test]
fn the_table_names_every_route_the_services_serve() {
    let rows = table::load();
    let mut problems = Vec::new();
    for service in SERVICES {
        let served = served_routes(service);
        assert!(
            !served.is_empty(),
            "no routes found in services/{service}/src"
        );
        let listed = table::listed(&rows, service);
        for (method, path) in served.difference(&listed) {
            problems.push(format!(
                "{service} serves {method} {path}, which the table does not answer for"
            ));
        }
        for (method, path) in listed.difference(&served) {
            problems.push(format!(
                "the table answers for {service} {method} {path}, which the service does not serve"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/authorization.csv and the services' routes differ:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_published_table_is_generated_from_the_data() {
    let rows = table::load();
    let rendered = table::render_markdown(&rows);
    let path = table::markdown_path();
    if std::env::var_os("RENKEI_WRITE_DOCS").is_some() {
        std::fs::write(&path, &rendered).expect("docs/authorization.md written");
        return;
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == rendered,
        "docs/authorization.md is not what docs/authorization.csv says; regenerate it with\n  \
         RENKEI_WRITE_DOCS=1 cargo test -p renkei-flows --test authorization_table"
    );
}

/// `struct Name` definitions of a crate's sources: name → (attributes
/// before it, its body between braces).
fn structs(files: &[PathBuf]) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (at, _) in text.match_indices("struct ") {
            let rest = &text[at + "struct ".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let Some(open) = rest.find(['{', ';', '(']) else {
                continue;
            };
            if !rest[open..].starts_with('{') || name.is_empty() {
                continue;
            }
            let Some(close) = rest[open..].find("\n}") else {
                continue;
            };
            let body = rest[open + 1..open + close].to_owned();
            // The attributes: the lines right above, up to a blank line or `}`.
            let before = &text[..at];
            let attributes: Vec<&str> = before
                .lines()
                .rev()
                .skip(1)
                .take_while(|l| {
                    let l = l.trim();
                    l.starts_with("#[") || l.starts_with("///") || l.starts_with("//")
                })
                .collect();
            out.insert(name, (attributes.join("\n"), body));
        }
    }
    out
}

/// The type names a struct's fields mention.
fn field_types(body: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in body.lines() {
        let line = line.trim();
        if line.starts_with("//") || line.starts_with("#[") {
            continue;
        }
        let Some((_, ty)) = line.split_once(':') else {
            continue;
        };
        let mut word = String::new();
        for c in ty.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                if word.chars().next().is_some_and(|f| f.is_ascii_uppercase()) {
                    names.insert(std::mem::take(&mut word));
                }
                word.clear();
            }
        }
    }
    names
}

#[test]
fn every_request_body_refuses_unknown_fields() {
    let mut problems = Vec::new();
    for service in SERVICES {
        let mut files = Vec::new();
        rust_files(
            &table::root().join("services").join(service).join("src"),
            &mut files,
        );
        let defined = structs(&files);
        let mut todo: Vec<String> = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for extractor in ["ValidJson<", "OptionalJson<"] {
                for (at, _) in text.match_indices(extractor) {
                    let name: String = text[at + extractor.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && name != "T" {
                        todo.push(name);
                    }
                }
            }
        }
        assert!(!todo.is_empty(), "no request bodies found in {service}");
        let mut checked = BTreeSet::new();
        while let Some(name) = todo.pop() {
            if !checked.insert(name.clone()) {
                continue;
            }
            let Some((attributes, body)) = defined.get(&name) else {
                // Not a struct of this crate (an enum, a std or shared type).
                continue;
            };
            if !attributes.contains("deny_unknown_fields") {
                problems.push(format!(
                    "{service}: request body type {name} lacks #[serde(deny_unknown_fields)]"
                ));
            }
            todo.extend(field_types(body));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_quoted_field_may_hold_commas_and_quotes() {
    assert_eq!(
        table::split_csv(r#"a,"b, ""c""",d"#),
        vec!["a".to_owned(), r#"b, "c""#.to_owned(), "d".to_owned()]
    );
    let rows = table::parse(
        "service,method,path,object,owned_by,role,relation,answer,note\n\
         registry,GET,/v1/x,\"one, two\",A,admin,own,200,why\n",
    )
    .expect("parsed");
    assert_eq!(rows[0].object, "one, two");
    assert!(table::parse("service,method\n").is_err());
}
