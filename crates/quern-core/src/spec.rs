//! The job spec: a whole job as data (serde), so the embedded runner, the CLI
//! and a future coordinator all read and ship the same description.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::code::{CodeHash, is_plain_file_name};
use crate::error::SpecError;
use crate::partition::Partitioner;

/// Default input split size: 64 MiB.
pub const DEFAULT_SPLIT_SIZE: u64 = 64 << 20;
/// Default map-side sort buffer: 64 MiB per map task.
pub const DEFAULT_SORT_BUFFER: u64 = 64 << 20;
/// Default attempts per task before the job fails.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// The smallest sort buffer accepted (tests use tiny ones to force spills).
const MIN_SORT_BUFFER: u64 = 1 << 10;
/// The most map tasks (input splits) one job may have. Each is a task in the
/// scheduler, a row in the coordinator's state and a map output on disk; a
/// tiny `--split-size` over a big input would otherwise plan millions.
pub const MAX_MAP_TASKS: u64 = 100_000;
/// The most reducers of one output, and of all outputs together: each is a
/// reduce task, a segment in every map output and an open file while maps
/// write map-only output.
pub const MAX_REDUCERS: u32 = 10_000;
/// The most attempts per task.
pub const MAX_ATTEMPTS: u32 = 100;

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
    /// Where map outputs go between the phases: `None` keeps them on the
    /// machines that wrote them (reduces fetch them worker to worker);
    /// `Some(location)` (an `s3://` prefix, or a path or `file://` URL on a
    /// file system every worker shares) has each map upload its output under
    /// a prefix of the job's own there, and reduces read it from there. Only
    /// the storage layer interprets it. (Specs stored before it existed
    /// have none.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<String>,
    /// How keys are split among each output's reducers: `None` takes the
    /// app's preference ([`crate::App::partitioner`]; hash unless the app
    /// says otherwise). (Specs stored before it existed have none.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioner: Option<Partitioner>,
    /// Files put into every attempt's working directory before its app
    /// code runs (streaming programs and their support files, WebAssembly
    /// modules): the name each gets there, and the SHA-256 of its bytes, by
    /// which whoever runs the attempt fetches it. The job's record of the
    /// code it ran. (Specs stored before it existed have none.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code: BTreeMap<String, CodeHash>,
}

/// The settings a submission (a REST body, a `MapReduceJob`, a chain's
/// step) may leave out, for [`JobSpec::tune`]: `None` keeps the spec's
/// value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tuning {
    /// Maximum bytes of one input split.
    pub split_size: Option<u64>,
    /// Bytes of one map task's sort buffer.
    pub sort_buffer: Option<u64>,
    /// Attempts per task before the job fails.
    pub max_attempts: Option<u32>,
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
            shuffle: None,
            partitioner: None,
            code: BTreeMap::new(),
        }
    }

    /// Lays a submission's optional settings over this spec: each one given
    /// replaces the spec's value, each one left out keeps it (the default,
    /// for a spec from [`JobSpec::new`]).
    pub fn tune(&mut self, tuning: Tuning) {
        let Tuning { split_size, sort_buffer, max_attempts } = tuning;
        self.split_size = split_size.unwrap_or(self.split_size);
        self.sort_buffer = sort_buffer.unwrap_or(self.sort_buffer);
        self.max_attempts = max_attempts.unwrap_or(self.max_attempts);
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
        if self.shuffle.as_deref().is_some_and(str::is_empty) {
            return bad("--shuffle", "must not be empty");
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
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(SpecError::BadField {
                field: "--max-attempts",
                message: format!("must be 1 to {MAX_ATTEMPTS} (got {})", self.max_attempts),
            });
        }
        if let Some(n) = self.reducers {
            check_reducers("--reducers", n)?;
        }
        if let Some(name) = self.code.keys().find(|name| !is_plain_file_name(name)) {
            return Err(SpecError::BadField {
                field: "--file",
                message: format!("{name:?} is not a plain file name for the attempt's directory"),
            });
        }
        let mut total = 0u64;
        for (name, &n) in &self.output_reducers {
            if n > MAX_REDUCERS {
                return Err(SpecError::BadField {
                    field: "--output-reducers",
                    message: format!("{name}: at most {MAX_REDUCERS} reducers (got {n})"),
                });
            }
            total += u64::from(n);
        }
        if total > u64::from(MAX_REDUCERS) {
            return Err(SpecError::BadField {
                field: "--output-reducers",
                message: format!("at most {MAX_REDUCERS} reducers in all outputs together (got {total})"),
            });
        }
        Ok(())
    }
}

/// Refuses more than [`MAX_REDUCERS`] reducers for one output.
pub(crate) fn check_reducers(field: &'static str, n: u32) -> Result<(), SpecError> {
    if n > MAX_REDUCERS {
        return Err(SpecError::BadField { field, message: format!("at most {MAX_REDUCERS} reducers (got {n})") });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_replaces_what_it_gives_and_keeps_the_rest() {
        let mut spec = JobSpec::new("wordcount", vec!["books/".into()], "out");
        spec.sort_buffer = 12345;
        spec.tune(Tuning { split_size: Some(1 << 20), sort_buffer: None, max_attempts: Some(7) });
        assert_eq!((spec.split_size, spec.sort_buffer, spec.max_attempts), (1 << 20, 12345, 7));
        spec.tune(Tuning::default());
        assert_eq!((spec.split_size, spec.sort_buffer, spec.max_attempts), (1 << 20, 12345, 7));
    }

    #[test]
    fn round_trips_through_json() {
        let mut spec = JobSpec::new("wordcount", vec!["books/".into()], "out");
        spec.reducers = Some(4);
        let json = serde_json::to_string(&spec).expect("serialise");
        let back: JobSpec = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, spec);
        spec.shuffle = Some("s3://bucket/shuffle".into());
        spec.partitioner = Some(Partitioner::TotalOrder);
        let json = serde_json::to_string(&spec).expect("serialise");
        assert!(json.contains(r#""partitioner":"total_order""#), "{json}");
        assert_eq!(serde_json::from_str::<JobSpec>(&json).expect("deserialise"), spec);
    }

    #[test]
    fn a_spec_stored_before_shuffle_existed_loads_without_one() {
        let old =
            r#"{"app":"wordcount","inputs":["in"],"output":"out","split_size":1,"sort_buffer":1024,"max_attempts":1}"#;
        let spec: JobSpec = serde_json::from_str(old).expect("an old spec");
        assert_eq!(spec.shuffle, None);
        assert_eq!(spec.partitioner, None);
        let empty = JobSpec { shuffle: Some(String::new()), ..spec };
        assert_eq!(empty.validate().err().map(|e| e.to_string()).as_deref(), Some("--shuffle: must not be empty"));
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

    #[test]
    fn validate_bounds_reducers_and_attempts() {
        let ok = JobSpec::new("wordcount", vec!["in".into()], "out");
        let message = |f: &dyn Fn(&mut JobSpec)| {
            let mut spec = ok.clone();
            f(&mut spec);
            spec.validate().err().map(|e| e.to_string())
        };
        assert_eq!(message(&|s| s.reducers = Some(MAX_REDUCERS)), None);
        assert_eq!(
            message(&|s| s.reducers = Some(20_000)).as_deref(),
            Some("--reducers: at most 10000 reducers (got 20000)")
        );
        assert_eq!(
            message(&|s| {
                s.output_reducers.insert("a".into(), 10_001);
            })
            .as_deref(),
            Some("--output-reducers: a: at most 10000 reducers (got 10001)")
        );
        assert_eq!(
            message(&|s| {
                s.output_reducers.insert("a".into(), 6_000);
                s.output_reducers.insert("b".into(), 6_000);
            })
            .as_deref(),
            Some("--output-reducers: at most 10000 reducers in all outputs together (got 12000)")
        );
        assert_eq!(message(&|s| s.max_attempts = 0).as_deref(), Some("--max-attempts: must be 1 to 100 (got 0)"));
        assert_eq!(message(&|s| s.max_attempts = 101).as_deref(), Some("--max-attempts: must be 1 to 100 (got 101)"));
        assert_eq!(message(&|s| s.max_attempts = 100), None);
    }
}
