//! The job spec: a whole job as data (serde), so the embedded runner, the CLI
//! and a future coordinator all read and ship the same description.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::SpecError;

/// Default input split size: 64 MiB.
pub const DEFAULT_SPLIT_SIZE: u64 = 64 << 20;
/// Default map-side sort buffer: 64 MiB per map task.
pub const DEFAULT_SORT_BUFFER: u64 = 64 << 20;
/// Default attempts per task before the job fails.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// The smallest sort buffer accepted (tests use tiny ones to force spills).
const MIN_SORT_BUFFER: u64 = 1 << 10;

/// A job: which app, with which parameters, over which inputs, into which
/// output, cut and buffered how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The registered app's name.
    pub app: String,
    /// The app's parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Input files, directories (walked recursively) and glob patterns.
    pub inputs: Vec<String>,
    /// The output directory; must not exist yet.
    pub output: String,
    /// Reducers for every output that has no entry in `output_reducers`;
    /// `None` takes the app's default (or 1). `Some(0)`: map-only.
    #[serde(default)]
    pub reducers: Option<u32>,
    /// Reducers per named output.
    #[serde(default)]
    pub output_reducers: BTreeMap<String, u32>,
    /// Maximum bytes of one input split.
    pub split_size: u64,
    /// Bytes of one map task's sort buffer.
    pub sort_buffer: u64,
    /// Attempts per task before the job fails.
    pub max_attempts: u32,
    /// Skip (and count) records whose map call panics instead of failing.
    #[serde(default)]
    pub skip_bad_records: bool,
}

impl JobSpec {
    /// A spec with the defaults for everything but app, inputs and output.
    pub fn new(app: impl Into<String>, inputs: Vec<String>, output: impl Into<String>) -> Self {
        JobSpec {
            app: app.into(),
            params: BTreeMap::new(),
            inputs,
            output: output.into(),
            reducers: None,
            output_reducers: BTreeMap::new(),
            split_size: DEFAULT_SPLIT_SIZE,
            sort_buffer: DEFAULT_SORT_BUFFER,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            skip_bad_records: false,
        }
    }

    /// Checks the fields that do not depend on the file system or the app.
    pub fn validate(&self) -> Result<(), SpecError> {
        let bad = |field, message: &str| Err(SpecError::BadField { field, message: message.to_owned() });
        if self.inputs.is_empty() {
            return bad("--input", "at least one input is required");
        }
        if self.output.is_empty() {
            return bad("--output", "must not be empty");
        }
        if self.split_size == 0 {
            return bad("--split-size", "must be at least 1 byte");
        }
        if self.sort_buffer < MIN_SORT_BUFFER {
            return bad("--sort-buffer", "must be at least 1 KiB");
        }
        if self.sort_buffer > u64::from(u32::MAX) {
            return bad("--sort-buffer", "must be below 4 GiB");
        }
        if self.max_attempts == 0 {
            return bad("--max-attempts", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let mut spec = JobSpec::new("wordcount", vec!["books/".into()], "out");
        spec.reducers = Some(4);
        let json = serde_json::to_string(&spec).expect("serialise");
        let back: JobSpec = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, spec);
    }

    #[test]
    fn validate_names_the_field() {
        let mut spec = JobSpec::new("wordcount", vec!["in".into()], "out");
        spec.sort_buffer = 10;
        assert_eq!(
            spec.validate().err().map(|e| e.to_string()).as_deref(),
            Some("--sort-buffer: must be at least 1 KiB")
        );
        spec.sort_buffer = DEFAULT_SORT_BUFFER;
        spec.inputs.clear();
        assert!(spec.validate().is_err());
    }
}
