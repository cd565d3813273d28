//! A job's plan: its input splits (one map task each), its outputs with
//! their reducer counts, the partition space they share, and how keys are
//! partitioned (with total order, each output's cut points). Plain data
//! (serde), so a client can plan a job and a coordinator can ship it: every
//! attempt partitions keys by the plan alone, the same way in every process.
//!
//! All outputs' partitions are numbered in one space, so a map task sorts and
//! spills once for every output: output `o`'s partition `p` is global
//! partition `first_partition(o) + p`. Each global partition is one reduce
//! task.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::SpecError;
use crate::partition::{AppPartitioner, Partitioner};
use crate::spec::{JobSpec, MAX_MAP_TASKS, MAX_REDUCERS, check_reducers};
use crate::total_order::CutPoints;

/// Refuses a job of more than [`MAX_MAP_TASKS`] map tasks, naming the count
/// and the split size that made it. Planners call it with the count before
/// they make the splits, so a huge plan is never built.
pub fn check_map_tasks(tasks: u64, split_size: u64) -> Result<(), SpecError> {
    if tasks > MAX_MAP_TASKS {
        return Err(SpecError::TooManyMapTasks { tasks, split_size, max: MAX_MAP_TASKS });
    }
    Ok(())
}

/// How an input file is compressed, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    /// Plain bytes; splittable.
    None,
    /// `.gz`.
    Gzip,
    /// `.zst`.
    Zstd,
}

impl Compression {
    /// The compression a file name (or an object key) implies.
    pub fn of(path: &std::path::Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// An input file: a local file or an object in an object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// Where it is, as `quern_storage::Location` writes a location: a local
    /// path (`/data/in.txt`, `books/a.txt`) or a URL (`s3://bucket/key`).
    /// Only the storage layer interprets it. (Plans stored before locations
    /// were URLs called it `path`.)
    #[serde(alias = "path")]
    pub location: String,
    /// Its name as records and messages show it.
    pub name: String,
    /// Its size in bytes (stored, before any decompression).
    pub len: u64,
    /// How it is compressed.
    pub compression: Compression,
}

/// A byte range of one input file: the unit of work of one map task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSplit {
    /// The file.
    pub file: InputFile,
    /// First byte.
    pub start: u64,
    /// One past the last byte; `None` for a whole (compressed or unsplittable)
    /// file.
    pub end: Option<u64>,
}

impl std::fmt::Display for InputSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.end {
            Some(end) => write!(f, "{} [bytes {}..{}]", self.file.name, self.start, end),
            None => write!(f, "{}", self.file.name),
        }
    }
}

impl InputSplit {
    /// Bytes of the file this split covers on disk (for progress).
    pub fn len(&self) -> u64 {
        self.end.unwrap_or(self.file.len) - self.start
    }

    /// Whether the split covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where one partition's records are in a run file (a map output): the
/// unit the shuffle moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Byte offset of the segment in the file.
    pub offset: u64,
    /// Compressed length in bytes (0: no records).
    pub len: u64,
    /// Records in the segment.
    pub records: u64,
    /// Uncompressed bytes of the encoded records.
    pub raw_len: u64,
}

/// One output of the job, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOutput {
    /// Directory name under the job output ("" for the single default
    /// output).
    pub name: String,
    /// Reducers (0: map-only).
    pub reducers: u32,
    /// Its first global partition.
    pub first_partition: u32,
    /// With total order ([`JobPlan::partitioner`]), the cut points its keys
    /// are partitioned by; `None` with hash partitioning and for a map-only
    /// output. (Plans stored before total order existed have none.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_points: Option<CutPoints>,
}

impl PlannedOutput {
    /// The partition (below `reducers`) of `key` by the output's cut points,
    /// or `None` when the app's [`App::partition`] decides (hash).
    pub fn cut_partition(&self, key: &[u8]) -> Option<u32> {
        self.cut_points.as_ref().map(|c| c.partition(key))
    }
}

/// What the job will run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPlan {
    /// One per map task.
    pub splits: Vec<InputSplit>,
    /// The app's outputs.
    pub outputs: Vec<PlannedOutput>,
    /// Global partitions: the sum of the outputs' reducers, and the number of
    /// reduce tasks.
    pub partitions: u32,
    /// Where this job's map outputs go, when the spec asks for a shuffle
    /// through storage ([`JobSpec::shuffle`]): a URL (`s3://…` or
    /// `file:///…`) under the spec's location that is this job's alone,
    /// fixed once by whoever plans the job. `None`: map outputs stay where
    /// they were written. (Plans stored before it existed have none.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<String>,
    /// How keys are partitioned: the spec's choice, else the app's. With
    /// [`Partitioner::TotalOrder`] every output with reducers has its
    /// [`PlannedOutput::cut_points`]. (Plans stored before it existed
    /// partition by hash.)
    #[serde(default)]
    pub partitioner: Partitioner,
}

impl JobPlan {
    /// Plans `spec` for `app` over `splits`: resolves each output's reducer
    /// count (the spec's per-output count, else the spec's count, else the
    /// app's default, else 1) and the partitioner (see
    /// [`JobPlan::partitioner_of`]), and checks the plan is within bounds
    /// (see [`JobPlan::check`]).
    ///
    /// With total order, every output with reducers gets empty cut points
    /// (all its keys in its first partition): whoever plans the job then
    /// replaces them with points chosen from a sample of the keys
    /// (`quern_engine::plan_job` does).
    pub fn new(spec: &JobSpec, app: &dyn App, splits: Vec<InputSplit>) -> Result<JobPlan, SpecError> {
        let partitioner = JobPlan::partitioner_of(spec, app)?;
        let decls = app.outputs();
        if decls.is_empty() {
            return Err(SpecError::BadField { field: "app", message: "declares no outputs".into() });
        }
        for name in spec.output_reducers.keys() {
            if !decls.iter().any(|d| &d.name == name) {
                let known: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
                return Err(SpecError::BadField {
                    field: "--output-reducers",
                    message: format!("the app has no output '{name}' (its outputs: {})", known.join(", ")),
                });
            }
        }
        let mut outputs = Vec::with_capacity(decls.len());
        let mut next = 0u32;
        for (i, d) in decls.iter().enumerate() {
            let valid_name = if decls.len() == 1 {
                d.name.is_empty() || is_dir_name(&d.name)
            } else {
                is_dir_name(&d.name) && !decls[..i].iter().any(|o| o.name == d.name)
            };
            if !valid_name {
                return Err(SpecError::BadField {
                    field: "app",
                    message: format!("output name '{}' must be a unique, plain directory name", d.name),
                });
            }
            let reducers =
                spec.output_reducers.get(&d.name).copied().or(spec.reducers).or(d.default_reducers).unwrap_or(1);
            check_reducers("--reducers", reducers)?;
            let cut_points = (partitioner == Partitioner::TotalOrder && reducers > 0).then(CutPoints::default);
            outputs.push(PlannedOutput { name: d.name.clone(), reducers, first_partition: next, cut_points });
            next = next.saturating_add(reducers);
        }
        let plan = JobPlan { splits, outputs, partitions: next, shuffle: None, partitioner };
        plan.check(spec)?;
        Ok(plan)
    }

    /// The partitioner of `spec` run by `app`: the spec's, else the app's
    /// preference. An app that partitions by its own
    /// [`App::partition`] ([`AppPartitioner::Own`]) refuses total order.
    pub fn partitioner_of(spec: &JobSpec, app: &dyn App) -> Result<Partitioner, SpecError> {
        match (app.partitioner(), spec.partitioner) {
            (AppPartitioner::Own, Some(Partitioner::TotalOrder)) => Err(SpecError::BadField {
                field: "--partitioner",
                message: format!("app '{}' partitions its keys itself, so it cannot be run with total order", spec.app),
            }),
            (AppPartitioner::Own, _) => Ok(Partitioner::Hash),
            (_, Some(chosen)) => Ok(chosen),
            (AppPartitioner::Preferred(preferred), None) => Ok(preferred),
        }
    }

    /// Checks the plan's sizes: at most [`MAX_MAP_TASKS`] map tasks, at most
    /// [`MAX_REDUCERS`] reducers per output and in all, and partitions that
    /// add up. A coordinator checks a submitted plan with this, as a client
    /// made it.
    pub fn check(&self, spec: &JobSpec) -> Result<(), SpecError> {
        check_map_tasks(self.splits.len() as u64, spec.split_size)?;
        let mut total = 0u64;
        for o in &self.outputs {
            check_reducers("--reducers", o.reducers)?;
            total += u64::from(o.reducers);
        }
        if total > u64::from(MAX_REDUCERS) {
            return Err(SpecError::BadField {
                field: "--reducers",
                message: format!("at most {MAX_REDUCERS} reducers in all outputs together (got {total})"),
            });
        }
        if total != u64::from(self.partitions) {
            return Err(SpecError::BadField {
                field: "plan",
                message: format!("{} partitions, but the outputs have {total} reducers", self.partitions),
            });
        }
        for o in &self.outputs {
            let bad = |message: String| SpecError::BadField {
                field: "plan",
                message: format!("output '{}': {message}", o.name),
            };
            let wanted = self.partitioner == Partitioner::TotalOrder && o.reducers > 0;
            match (&o.cut_points, wanted) {
                (Some(cuts), true) => cuts.check(o.reducers).map_err(bad)?,
                (None, false) => {}
                (Some(_), false) => return Err(bad("cut points, but it is not partitioned in total order".into())),
                (None, true) => return Err(bad("no cut points for its total order".into())),
            }
        }
        Ok(())
    }

    /// The output and local partition of global partition `p`.
    pub fn locate(&self, p: u32) -> (usize, u32) {
        let o = self
            .outputs
            .iter()
            .rposition(|o| o.reducers > 0 && o.first_partition <= p)
            .expect("invariant: every global partition belongs to an output");
        (o, p - self.outputs[o].first_partition)
    }

    /// The output global partition `p` belongs to.
    pub fn output_of_partition(&self, p: u32) -> usize {
        self.locate(p).0
    }
}

fn is_dir_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.starts_with(['_', '.']) && !name.contains(['/', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppError, MapContext, OutputDecl, Record};

    struct Two;
    impl App for Two {
        fn map(&self, _: &Record<'_>, _: &mut MapContext<'_>) -> Result<(), AppError> {
            Ok(())
        }
        fn outputs(&self) -> Vec<OutputDecl> {
            vec![OutputDecl::named("a").with_default_reducers(0), OutputDecl::named("b"), OutputDecl::named("c")]
        }
    }

    #[test]
    fn partitions_are_numbered_across_outputs() {
        let mut spec = JobSpec::new("two", vec!["x".into()], "out");
        spec.output_reducers.insert("b".into(), 3);
        spec.output_reducers.insert("c".into(), 2);
        let plan = JobPlan::new(&spec, &Two, vec![]).expect("plan");
        assert_eq!(plan.partitions, 5);
        assert_eq!(plan.outputs[0].reducers, 0);
        assert_eq!(plan.locate(0), (1, 0));
        assert_eq!(plan.locate(2), (1, 2));
        assert_eq!(plan.locate(3), (2, 0));
        assert_eq!(plan.locate(4), (2, 1));
        spec.output_reducers.insert("d".into(), 1);
        assert!(JobPlan::new(&spec, &Two, vec![]).is_err());
    }

    #[test]
    fn plans_are_bounded() {
        let mut spec = JobSpec::new("two", vec!["x".into()], "out");
        spec.output_reducers.insert("b".into(), 6_000);
        spec.output_reducers.insert("c".into(), 4_000);
        assert_eq!(JobPlan::new(&spec, &Two, vec![]).map(|p| p.partitions), Ok(10_000));
        spec.output_reducers.insert("c".into(), 4_001);
        assert_eq!(
            JobPlan::new(&spec, &Two, vec![]).map_err(|e| e.to_string()),
            Err("--reducers: at most 10000 reducers in all outputs together (got 10001)".into())
        );

        let file = InputFile { location: "in".into(), name: "in".into(), len: 200_000, compression: Compression::None };
        let split = InputSplit { file, start: 0, end: Some(1) };
        let spec = JobSpec { split_size: 1, ..JobSpec::new("two", vec!["in".into()], "out") };
        let ok = JobPlan::new(&spec, &Two, vec![split.clone(); 100_000]).expect("100000 maps");
        assert_eq!(ok.check(&spec), Ok(()));
        let e = JobPlan::new(&spec, &Two, vec![split; 100_001]).expect_err("100001 maps");
        assert_eq!(e, SpecError::TooManyMapTasks { tasks: 100_001, split_size: 1, max: 100_000 });
        assert_eq!(
            e.to_string(),
            "--split-size: the inputs make 100001 map tasks at 1 byte a split, and a job may have at most 100000: \
             raise --split-size"
        );

        let mut forged = ok.clone();
        forged.partitions = 7;
        assert!(forged.check(&spec).is_err(), "partitions that do not add up");
    }

    struct Own;
    impl App for Own {
        fn map(&self, _: &Record<'_>, _: &mut MapContext<'_>) -> Result<(), AppError> {
            Ok(())
        }
        fn partitioner(&self) -> AppPartitioner {
            AppPartitioner::Own
        }
    }

    struct PrefersTotalOrder;
    impl App for PrefersTotalOrder {
        fn map(&self, _: &Record<'_>, _: &mut MapContext<'_>) -> Result<(), AppError> {
            Ok(())
        }
        fn partitioner(&self) -> AppPartitioner {
            AppPartitioner::Preferred(Partitioner::TotalOrder)
        }
    }

    #[test]
    fn the_partitioner_is_the_spec_s_else_the_app_s_and_an_app_s_own_is_kept() {
        let mut spec = JobSpec::new("x", vec!["in".into()], "out");
        let of = |spec: &JobSpec, app: &dyn App| JobPlan::new(spec, app, vec![]).map(|p| p.partitioner);
        assert_eq!(of(&spec, &Two), Ok(Partitioner::Hash));
        assert_eq!(of(&spec, &PrefersTotalOrder), Ok(Partitioner::TotalOrder));
        assert_eq!(of(&spec, &Own), Ok(Partitioner::Hash));
        spec.partitioner = Some(Partitioner::Hash);
        assert_eq!(of(&spec, &PrefersTotalOrder), Ok(Partitioner::Hash));
        assert_eq!(of(&spec, &Own), Ok(Partitioner::Hash));
        spec.partitioner = Some(Partitioner::TotalOrder);
        assert_eq!(of(&spec, &Two), Ok(Partitioner::TotalOrder));
        assert_eq!(
            of(&spec, &Own).map_err(|e| e.to_string()),
            Err("--partitioner: app 'x' partitions its keys itself, so it cannot be run with total order".into())
        );
    }

    #[test]
    fn a_total_order_plan_has_cut_points_for_each_reduced_output_and_checks_them() {
        let mut spec = JobSpec::new("two", vec!["x".into()], "out");
        spec.partitioner = Some(Partitioner::TotalOrder);
        spec.output_reducers.insert("b".into(), 3);
        let plan = JobPlan::new(&spec, &Two, vec![]).expect("plan");
        let cuts: Vec<Option<usize>> = plan.outputs.iter().map(|o| o.cut_points.as_ref().map(CutPoints::len)).collect();
        assert_eq!(cuts, [None, Some(0), Some(0)], "map-only output 'a' has none");
        assert_eq!(plan.outputs[1].cut_partition(b"anything"), Some(0));

        let json = serde_json::to_string(&plan).expect("serialise");
        assert_eq!(serde_json::from_str::<JobPlan>(&json).expect("parse"), plan);

        let mut sampled = plan.clone();
        sampled.outputs[1].cut_points = Some(CutPoints::new(vec![b"f".to_vec(), b"m".to_vec()]).expect("cuts"));
        assert_eq!(sampled.check(&spec), Ok(()));
        assert_eq!(sampled.outputs[1].cut_partition(b"g"), Some(1));
        sampled.outputs[2].cut_points =
            Some(CutPoints::new(vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]).expect("cuts"));
        assert!(sampled.check(&spec).is_err(), "3 cut points for 3 reducers");
        let mut missing = plan.clone();
        missing.outputs[2].cut_points = None;
        assert!(missing.check(&spec).is_err(), "total order without cut points");
        let mut hashed = plan.clone();
        hashed.partitioner = Partitioner::Hash;
        assert!(hashed.check(&spec).is_err(), "cut points in a hash plan");
    }

    #[test]
    fn a_plan_stored_before_total_order_existed_partitions_by_hash() {
        let old = r#"{"splits":[],"outputs":[{"name":"","reducers":2,"first_partition":0}],"partitions":2}"#;
        let plan: JobPlan = serde_json::from_str(old).expect("an old plan");
        assert_eq!(plan.partitioner, Partitioner::Hash);
        assert_eq!(plan.outputs[0].cut_points, None);
        assert_eq!(plan.check(&JobSpec::new("x", vec!["in".into()], "out")), Ok(()));
    }
}
