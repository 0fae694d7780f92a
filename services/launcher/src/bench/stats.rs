//! Figures and report rows: latencies are recorded in nanoseconds in an
//! [`hdrhistogram`] and summed up as median, p99 and max; throughputs are a
//! single rate. Every [`Row`] pairs a figure with its floor, measured in the
//! same run, and the ratio between the two.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in nanoseconds, 1 ns to 10 min, 3 significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000_000, 3)?)
}

/// Records `d` into `h`, saturating at the histogram's upper bound.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

/// What a figure measures, which decides how value and floor compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Nanoseconds; lower is better.
    Latency,
    /// Per second; higher is better.
    Throughput,
    /// KiB; lower is better.
    Memory,
}

/// One figure: median, p99 and max (for a throughput or a single
/// measurement the three are the same number), and how many samples.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub kind: Kind,
    pub median: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: u64,
}

impl Figure {
    /// A latency figure from a histogram of nanoseconds; `None` when empty.
    pub fn latency(h: &Histogram<u64>) -> Option<Figure> {
        (!h.is_empty()).then(|| Figure {
            kind: Kind::Latency,
            median: h.value_at_quantile(0.5) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            max: h.max() as f64,
            samples: h.len(),
        })
    }

    /// One duration measured once.
    pub fn once(d: Duration) -> Figure {
        let ns = d.as_nanos() as f64;
        Figure {
            kind: Kind::Latency,
            median: ns,
            p99: ns,
            max: ns,
            samples: 1,
        }
    }

    /// A rate per second: `count` things in `over`.
    pub fn rate(count: u64, over: Duration) -> Figure {
        let r = count as f64 / over.as_secs_f64().max(1e-9);
        Figure {
            kind: Kind::Throughput,
            median: r,
            p99: r,
            max: r,
            samples: count,
        }
    }

    /// Memory in KiB from samples (median, p99, max of the samples).
    pub fn memory(mut kib: Vec<u64>) -> Option<Figure> {
        if kib.is_empty() {
            return None;
        }
        kib.sort_unstable();
        let at = |q: f64| kib[((kib.len() - 1) as f64 * q).round() as usize] as f64;
        Some(Figure {
            kind: Kind::Memory,
            median: at(0.5),
            p99: at(0.99),
            max: at(1.0),
            samples: kib.len() as u64,
        })
    }

    /// `v` in this figure's unit, for people.
    pub fn show(&self, v: f64) -> String {
        match self.kind {
            Kind::Latency => fmt_ns(v),
            Kind::Throughput => format!("{}/s", fmt_count(v)),
            Kind::Memory => format!("{:.1} MiB", v / 1024.0),
        }
    }
}

/// One line of the report: a figure of the product and its floor.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario number and name, e.g. `2 GET by id`.
    pub scenario: String,
    /// What is measured.
    pub figure: String,
    pub value: Option<Figure>,
    /// What the floor is.
    pub floor_name: String,
    pub floor: Option<Figure>,
    /// How many times the floor's cost the value costs, on medians: value ÷
    /// floor for latencies, floor ÷ value for throughputs (above 1: slower
    /// than the floor).
    pub ratio: Option<f64>,
    /// A remark (sample sizes, skipped parts).
    pub note: String,
}

impl Row {
    /// A row; the ratio is computed from the medians.
    pub fn new(
        scenario: &str,
        figure: &str,
        value: Option<Figure>,
        floor_name: &str,
        floor: Option<Figure>,
        note: impl Into<String>,
    ) -> Row {
        let ratio = match (&value, &floor) {
            (Some(v), Some(f)) if v.median > 0.0 && f.median > 0.0 => Some(match v.kind {
                Kind::Throughput => f.median / v.median,
                Kind::Latency | Kind::Memory => v.median / f.median,
            }),
            _ => None,
        };
        Row {
            scenario: scenario.to_owned(),
            figure: figure.to_owned(),
            value,
            floor_name: floor_name.to_owned(),
            floor,
            ratio,
            note: note.into(),
        }
    }
}

/// Nanoseconds for people.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A count with thousands separated, rounded to a whole number.
pub fn fmt_count(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Resident memory of this process in KiB (`VmRSS` of `/proc/self/status`).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_read_as_times_the_floor_cost() {
        let slow = Figure::once(Duration::from_millis(10));
        let fast = Figure::once(Duration::from_millis(2));
        let row = Row::new("x", "y", Some(slow), "z", Some(fast), "");
        assert_eq!(row.ratio, Some(5.0));
        let few = Figure::rate(100, Duration::from_secs(1));
        let many = Figure::rate(1_000, Duration::from_secs(1));
        let row = Row::new("x", "y", Some(few), "z", Some(many), "");
        assert_eq!(row.ratio, Some(10.0));
        assert_eq!(fmt_count(1_234_567.0), "1,234,567");
    }
}
