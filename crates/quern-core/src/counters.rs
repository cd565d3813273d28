//! Counters: the engine's built-in ones as plain fields (cheap to bump on the
//! hot path) and the app's own by name.
//!
//! An attempt counts into its own [`Counters`]; the runner adds them to the
//! job's only when the attempt commits, so retried work is not counted twice.
//! `failed_attempts` and `skipped_records` are the exceptions that describe
//! the retries themselves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The engine's built-in counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineCounters {
    /// Bytes read from input (uncompressed).
    pub input_bytes: u64,
    /// Records produced by the input format.
    pub input_records: u64,
    /// Pairs emitted by map.
    pub map_output_records: u64,
    /// Key and value bytes emitted by map.
    pub map_output_bytes: u64,
    /// Records written to spill runs (counted again per merge pass).
    pub spilled_records: u64,
    /// Number of spill runs written by map tasks.
    pub spills: u64,
    /// Values fed to the combiner.
    pub combine_input_records: u64,
    /// Values the combiner emitted.
    pub combine_output_records: u64,
    /// Distinct keys reduced.
    pub reduce_input_groups: u64,
    /// Values reduced.
    pub reduce_input_records: u64,
    /// Records written to the job output.
    pub output_records: u64,
    /// Bytes written to the job output.
    pub output_bytes: u64,
    /// Attempts that failed (and were retried or failed the job).
    pub failed_attempts: u64,
    /// Records whose map call panicked and were skipped.
    pub skipped_records: u64,
}

impl EngineCounters {
    /// Adds every field of `other` to `self`.
    pub fn add(&mut self, other: &EngineCounters) {
        self.input_bytes += other.input_bytes;
        self.input_records += other.input_records;
        self.map_output_records += other.map_output_records;
        self.map_output_bytes += other.map_output_bytes;
        self.spilled_records += other.spilled_records;
        self.spills += other.spills;
        self.combine_input_records += other.combine_input_records;
        self.combine_output_records += other.combine_output_records;
        self.reduce_input_groups += other.reduce_input_groups;
        self.reduce_input_records += other.reduce_input_records;
        self.output_records += other.output_records;
        self.output_bytes += other.output_bytes;
        self.failed_attempts += other.failed_attempts;
        self.skipped_records += other.skipped_records;
    }

    /// The counters as (name, value) pairs, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("input_bytes", self.input_bytes),
            ("input_records", self.input_records),
            ("map_output_records", self.map_output_records),
            ("map_output_bytes", self.map_output_bytes),
            ("spilled_records", self.spilled_records),
            ("spills", self.spills),
            ("combine_input_records", self.combine_input_records),
            ("combine_output_records", self.combine_output_records),
            ("reduce_input_groups", self.reduce_input_groups),
            ("reduce_input_records", self.reduce_input_records),
            ("output_records", self.output_records),
            ("output_bytes", self.output_bytes),
            ("failed_attempts", self.failed_attempts),
            ("skipped_records", self.skipped_records),
        ]
        .into_iter()
    }
}

/// Built-in and user counters of an attempt or a job.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The engine's counters.
    pub engine: EngineCounters,
    /// The app's counters, by name.
    pub app: BTreeMap<String, u64>,
}

impl Counters {
    /// Adds `n` to the app counter `name`.
    pub fn add_app(&mut self, name: &str, n: u64) {
        match self.app.get_mut(name) {
            Some(v) => *v += n,
            None => {
                self.app.insert(name.to_owned(), n);
            }
        }
    }

    /// Adds all of `other` to `self`.
    pub fn merge(&mut self, other: &Counters) {
        self.engine.add(&other.engine);
        for (name, n) in &other.app {
            self.add_app(name, *n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_engine_and_app_counters() {
        let mut a = Counters::default();
        a.engine.input_records = 2;
        a.add_app("x", 1);
        let mut b = Counters::default();
        b.engine.input_records = 3;
        b.add_app("x", 4);
        b.add_app("y", 5);
        a.merge(&b);
        assert_eq!(a.engine.input_records, 5);
        assert_eq!(a.app.get("x"), Some(&5));
        assert_eq!(a.app.get("y"), Some(&5));
        assert_eq!(a.engine.iter().count(), 14);
    }
}
