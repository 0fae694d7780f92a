//! The bench's report, as `report.json` (everything, machine-readable) and
//! `report.md` (the same for people: the machine, the versions, the
//! settings, and one table row per figure with its floor and the ratio).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use super::machine::{Machine, Versions};
use super::stats::{Figure, Row};

/// Everything one run found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// When the run started (UTC, RFC 3339).
    pub started_at: String,
    /// Wall time of the whole run in seconds.
    pub took_secs: f64,
    /// The command line.
    pub command: String,
    pub machine: Machine,
    pub versions: Versions,
    /// Sizes, seeds and durations, by name.
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub rows: Vec<Row>,
    /// Remarks: what was generated, what was skipped and why.
    pub notes: Vec<String>,
}

impl Report {
    /// Writes `report.json` and `report.md` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let json = dir.join("report.json");
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", json.display()))?;
        let md = dir.join("report.md");
        std::fs::write(&md, self.markdown())
            .with_context(|| format!("cannot write {}", md.display()))?;
        Ok(())
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# renkei bench report\n");
        let _ = writeln!(
            s,
            "`{}`, started {}, took {:.0} s\n",
            self.command, self.started_at, self.took_secs
        );
        let m = &self.machine;
        let _ = writeln!(
            s,
            "- machine: {} ({} cores), {} MiB memory, Linux {}",
            m.cpu, m.cores, m.memory_mib, m.kernel
        );
        let v = &self.versions;
        let _ = writeln!(
            s,
            "- versions: renkei {}, {}, nats-server {}, product database {}, floor database {}",
            v.renkei,
            v.rustc,
            or_dash(&v.nats_server),
            or_dash(&v.database),
            or_dash(&v.postgres_floor)
        );
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("{k} {}", v.to_string().trim_matches('"')))
            .collect();
        let _ = writeln!(s, "- settings: {}\n", settings.join(", "));
        s.push_str(&self.table());
        if !self.notes.is_empty() {
            s.push('\n');
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    /// The table of figures: value, floor and ratio per row.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str("| scenario | figure | median | p99 | max | floor | floor median | floor p99 | floor max | ratio | note |\n");
        s.push_str("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|\n");
        for r in &self.rows {
            let (m, p, x) = cells(r.value.as_ref());
            let (fm, fp, fx) = cells(r.floor.as_ref());
            let ratio = r.ratio.map_or_else(|| "–".to_owned(), fmt_ratio);
            let _ = writeln!(
                s,
                "| {} | {} | {m} | {p} | {x} | {} | {fm} | {fp} | {fx} | {ratio} | {} |",
                r.scenario, r.figure, r.floor_name, r.note
            );
        }
        s.push_str("\nratio: how many times the floor's cost the product's figure costs, on medians (value ÷ floor for times and memory, floor ÷ value for rates; below 1× is faster than the floor). For a rate the three columns hold the one rate measured.\n");
        s
    }
}

/// A ratio for people: whole above 10×, and for far below 1× also how many
/// times faster than the floor.
fn fmt_ratio(q: f64) -> String {
    if q >= 10.0 {
        format!("{q:.0}×")
    } else if q >= 0.1 {
        format!("{q:.2}×")
    } else {
        format!("{q:.3}× ({:.0}× faster)", 1.0 / q)
    }
}

fn cells(f: Option<&Figure>) -> (String, String, String) {
    match f {
        Some(f) => (f.show(f.median), f.show(f.p99), f.show(f.max)),
        None => ("–".into(), "–".into(), "–".into()),
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "–" } else { s }
}
