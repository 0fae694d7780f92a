//! What the CLI prints: tables for people, the API's JSON for scripts.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

#[allow(clippy::print_stdout)]
pub fn line(text: &str) {
    println!("{text}");
}

#[allow(clippy::print_stderr)]
pub fn note(text: &str) {
    eprintln!("{text}");
}

/// The API's JSON as it came, pretty-printed.
pub fn json(value: &Value) {
    line(&serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

/// A table with these headers and rows.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    line(&table.to_string());
}

/// One object as a two-column table of the given fields.
pub fn record(value: &Value, fields: &[&str]) {
    let rows = fields
        .iter()
        .map(|f| {
            let cell = if f.ends_with("_at") {
                when(&value[*f])
            } else {
                text(&value[*f])
            };
            vec![(*f).to_owned(), cell]
        })
        .collect();
    table(&["field", "value"], rows);
}

/// A JSON value as a cell: strings bare, null empty, lists joined.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A timestamp cut to the second, in the API's UTC.
pub fn when(value: &Value) -> String {
    match value.as_str() {
        Some(s) => {
            let s = s.split('.').next().unwrap_or(s).trim_end_matches('Z');
            format!("{}Z", s.replacen('T', " ", 1))
        }
        None => String::new(),
    }
}

/// How a command prints what the API answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tables for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
    /// Only the id (of each item of a list), for shell variables.
    Id,
}

/// The answer as the caller asked: JSON, ids, or the table `render` prints.
pub fn show(format: Format, value: &Value, render: impl FnOnce(&Value)) {
    match format {
        Format::Json => json(value),
        Format::Id => match value {
            Value::Array(items) => items.iter().for_each(|i| line(&text(&i["id"]))),
            one => line(&text(&one["id"])),
        },
        Format::Table => render(value),
    }
}
