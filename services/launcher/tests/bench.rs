//! `renkei bench`, the built binary at small sizes, as an operator runs it:
//! it starts the product on its own nats-server, runs every scenario
//! against the floor it is compared with, and writes a report that says
//! so. SQLite by default, PostgreSQL with RENKEI_TEST_DATABASE_URL; the
//! blast radius's floor (a recursive CTE) always needs PostgreSQL, which
//! `tests/run` requires.

use std::path::Path;

use serde_json::Value;

#[test]
fn a_small_bench_runs_every_scenario_against_its_floor_and_writes_the_report() {
    let out = tempfile::tempdir().expect("report dir");
    let product_db = std::env::var("RENKEI_TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_renkei"));
    command
        .args(["bench", "--quick", "--seed", "7"])
        .args(["--systems", "2000", "--links", "10000", "--orgs", "20"])
        .args(["--duration", "1", "--events", "40", "--steady-secs", "1"])
        .args(["--burst", "5", "--connections", "4"])
        .arg("--out")
        .arg(out.path());
    // The product on PostgreSQL in that pass, else on SQLite; the CTE floor
    // on the bench's default, the machine's PostgreSQL.
    match &product_db {
        Some(url) => command.arg("--database-url").arg(url),
        None => command.arg("--sqlite"),
    };
    // The local nats-server the bench starts: the tests' one.
    if let Ok(server) = std::env::var("RENKEI_TEST_NATS_SERVER") {
        let dir = Path::new(&server).parent().expect("its directory");
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{}:{path}", dir.display()));
    }
    let done = command.output().expect("renkei bench runs");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        done.status.success(),
        "renkei bench failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&done.stdout)
    );

    let report: Value = serde_json::from_slice(
        &std::fs::read(out.path().join("report.json")).expect("report.json written"),
    )
    .expect("report.json is JSON");
    let markdown = std::fs::read_to_string(out.path().join("report.md")).expect("report.md");
    let rows = report["rows"].as_array().expect("rows");
    for scenario in [
        "1 blast radius",
        "2 GET by id",
        "3 events",
        "4 incident alert, steady",
        "4 incident alert, burst",
        "5 rules consensus",
        "6 cold start",
        "6 memory",
    ] {
        let of: Vec<&Value> = rows.iter().filter(|r| r["scenario"] == scenario).collect();
        assert!(!of.is_empty(), "no row for {scenario} in {report:#}");
        for row in of {
            let figure = &row["figure"];
            for (what, side) in [("value", &row["value"]), ("floor", &row["floor"])] {
                let median = side["median"].as_f64();
                assert!(
                    median.is_some_and(|m| m > 0.0),
                    "{scenario} / {figure}: no {what} measured ({row:#})"
                );
                assert!(
                    side["p99"].as_f64() >= median && side["max"].as_f64() >= side["p99"].as_f64(),
                    "{scenario} / {figure}: {what}'s median, p99 and max out of order ({row:#})"
                );
            }
            assert!(
                row["ratio"].as_f64().is_some_and(|r| r > 0.0),
                "{scenario} / {figure}: no ratio to its floor"
            );
            assert!(
                markdown.contains(&format!(
                    "| {scenario} | {} |",
                    figure.as_str().unwrap_or("")
                )),
                "{scenario} / {figure} not in report.md"
            );
        }
    }
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("checked against the index: 0 mismatches"),
        "every CTE answer agrees with the index: {notes}"
    );
    assert!(
        report["machine"]["cores"].as_u64().is_some_and(|c| c > 0),
        "the machine is described: {}",
        report["machine"]
    );
}
