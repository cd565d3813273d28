//! The lines an attempt process writes on its stdout: progress while it
//! runs, and its outcome last. One JSON object per line.
//!
//! ```text
//! {"progress":{"fraction":0.42,"records":12345}}
//! {"outcome":{"Succeeded":{"counters":{…},"map_output":{…}}}}
//! ```

use quern_engine::attempt::AttemptOutcome;
use serde_json::Value;

/// One line from an attempt process.
#[derive(Debug)]
pub enum Line {
    /// How far it is.
    Progress {
        /// Fraction of the input done, 0..1.
        fraction: f64,
        /// Records processed.
        records: u64,
    },
    /// How it ended.
    Outcome(AttemptOutcome),
}

/// A progress line.
pub fn progress_line(fraction: f64, records: u64) -> String {
    serde_json::json!({ "progress": { "fraction": fraction, "records": records } }).to_string()
}

/// The outcome line.
pub fn outcome_line(outcome: &AttemptOutcome) -> String {
    serde_json::json!({ "outcome": outcome }).to_string()
}

/// Parses a line; `None` for anything else (ignored).
pub fn parse_line(line: &str) -> Option<Line> {
    let v: Value = serde_json::from_str(line).ok()?;
    if let Some(p) = v.get("progress") {
        return Some(Line::Progress { fraction: p.get("fraction")?.as_f64()?, records: p.get("records")?.as_u64()? });
    }
    let o = v.get("outcome")?;
    serde_json::from_value(o.clone()).ok().map(Line::Outcome)
}
