//! The `MapReduceJob` custom resource: a job submitted with `kubectl apply`.
//!
//! Group `quern.dev`, version `v1alpha1` (the fields may still change; a
//! `v1` will be served beside it when they settle). The
//! `CustomResourceDefinition` is generated from these types
//! ([`crate::crd_manifest`], `quern k8s crd`), so the schema the API server
//! checks and the types the operator reads cannot drift apart.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use quern_core::{JobSpec, Tuning};
use serde::{Deserialize, Serialize};

use crate::error::SpecError;

/// The API group of quern's resources.
pub const GROUP: &str = "quern.dev";
/// The version of the `MapReduceJob` resource.
pub const VERSION: &str = "v1alpha1";

/// What a `MapReduceJob` asks for: the job, as `quern submit` takes it.
///
/// The spec cannot change once applied (the job it started cannot follow
/// it): delete the resource and apply a new one.
// Each printer column repeats `type_` and `priority`: not a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "quern.dev",
    version = "v1alpha1",
    kind = "MapReduceJob",
    plural = "mapreducejobs",
    shortname = "mrj",
    category = "quern",
    namespaced,
    status = "MapReduceJobStatus",
    doc = "A quern MapReduce job: its spec is what `quern submit` takes, its status what `quern job` shows.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Progress", type_ = "string", json_path = ".status.progress"),
    printcolumn(name = "Job", type_ = "integer", json_path = ".status.jobId", priority = "1"),
    printcolumn(name = "Output", type_ = "string", json_path = ".status.output", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("self == oldSelf").message("a MapReduceJob's spec cannot change: delete it and apply a new one"),
    validation = Rule::new("has(self.app) != has(self.streaming)").message("give either app or streaming, not both")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MapReduceJobSpec {
    /// A built-in or registered app (`quern apps`): wordcount, indexer,
    /// grep, sort, top, or your own. Either this or `streaming`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Hadoop streaming commands instead of an app. Workers must be
    /// started with `--allow-exec` unless every command is a WebAssembly
    /// module shipped in `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<StreamingCommands>,
    /// The app's parameters (`quern apps` lists them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Input locations: `s3://` URLs, or paths on a volume every worker
    /// mounts.
    #[x_kube(validation = Rule::new("size(self) > 0").message("at least one input is required"))]
    pub inputs: Vec<String>,
    /// Where the output goes; it must not exist yet.
    #[x_kube(validation = Rule::new("self != ''").message("must not be empty"))]
    pub output: String,
    /// Reducers (default: the app's; 0 for a map-only job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reducers: Option<u32>,
    /// Higher goes first (default 0).
    #[serde(default)]
    pub priority: i32,
    /// Bytes per input split (default 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_size: Option<u64>,
    /// Sort buffer bytes per map task (default 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_buffer: Option<u64>,
    /// Attempts per task before the job fails (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Skip records whose map call panics instead of failing.
    #[serde(default)]
    pub skip_bad_records: bool,
    /// Shuffle map outputs through this location (an `s3://` prefix)
    /// rather than worker to worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<String>,
    /// Code files put into each attempt's directory: name → SHA-256 of a
    /// file stored on the coordinator (`POST /api/v1/code`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code: BTreeMap<String, String>,
}

/// Hadoop streaming's commands, as `quern submit --mapper … --reducer …`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamingCommands {
    /// The mapper's command line (split into words as a shell would; no
    /// shell runs). A program ending in `.wasm` runs in the sandbox.
    pub mapper: String,
    /// The reducer's command line; none for a map-only job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reducer: Option<String>,
    /// The combiner's command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combiner: Option<String>,
    /// Environment variables for the commands.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// Where a `MapReduceJob` is, as the operator last saw its job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MapReduceJobStatus {
    /// Pending, Running, Succeeded, Failed or Killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<JobResourcePhase>,
    /// The coordinator's id of the job this resource started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    /// Progress in one line, for `kubectl get`: `maps 12/40`,
    /// `reduces 3/8`, `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// The map tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maps: Option<PhaseProgress>,
    /// The reduce tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduces: Option<PhaseProgress>,
    /// The job's counters (engine and app), of committed attempts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
    /// Where the output is, once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Why the job failed, or why it could not be submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Submitted`, `Complete` and `Failed`, Kubernetes style.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<JobCondition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A `MapReduceJob`'s phase.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum JobResourcePhase {
    /// Accepted by the operator; no task has run yet (or the coordinator
    /// has not accepted it yet).
    Pending,
    /// Tasks run.
    Running,
    /// The output is committed.
    Succeeded,
    /// The job failed, or the coordinator refused it.
    Failed,
    /// The job was killed.
    Killed,
}

impl JobResourcePhase {
    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Killed)
    }
}

/// One phase's tasks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseProgress {
    /// Tasks in the phase.
    pub total: u32,
    /// Committed.
    pub succeeded: u32,
    /// With an attempt running.
    pub running: u32,
}

/// A condition, as Kubernetes' `metav1.Condition` has it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCondition {
    /// `Submitted`, `Complete` or `Failed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// What happened, for people.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation it was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl MapReduceJobSpec {
    /// The quern job this resource asks for. Streaming commands become the
    /// streaming app's parameters, as `quern submit` makes them.
    pub fn to_job_spec(&self) -> Result<JobSpec, SpecError> {
        let (app, mut params) = match (&self.app, &self.streaming) {
            (Some(app), None) => (app.clone(), self.params.clone()),
            (None, Some(streaming)) => {
                let mut params = self.params.clone();
                let mut all_wasm = true;
                for (param, command) in [
                    (quern_streaming::MAPPER, Some(&streaming.mapper)),
                    (quern_streaming::REDUCER, streaming.reducer.as_ref()),
                    (quern_streaming::COMBINER, streaming.combiner.as_ref()),
                ] {
                    let Some(command) = command else { continue };
                    let parsed = quern_streaming::CommandLine::parse(command)
                        .map_err(|e| SpecError::Field { field: "spec.streaming", message: format!("{param}: {e}") })?;
                    all_wasm &= quern_streaming::is_wasm(&parsed);
                    params.insert(param.to_owned(), command.clone());
                }
                let app = if all_wasm { quern_streaming::WASM_APP } else { quern_streaming::APP };
                (app.to_owned(), params)
            }
            _ => {
                return Err(SpecError::Field {
                    field: "spec",
                    message: "give either app or streaming, not both".to_owned(),
                });
            }
        };
        if let Some(streaming) = &self.streaming
            && !streaming.env.is_empty()
        {
            let mut pairs = Vec::new();
            for (name, value) in &streaming.env {
                if name.is_empty() || name.contains('=') || name.contains('\n') || value.contains('\n') {
                    return Err(SpecError::Field {
                        field: "spec.streaming.env",
                        message: format!(
                            "{name:?}: a name must be non-empty without `=`, and neither may hold a newline"
                        ),
                    });
                }
                pairs.push(format!("{name}={value}"));
            }
            params.insert(quern_streaming::CMDENV.to_owned(), pairs.join("\n"));
        }
        // A pod has no working directory of the user's: paths are absolute.
        for (field, location) in
            self.inputs.iter().map(|i| ("spec.inputs", i)).chain(std::iter::once(("spec.output", &self.output)))
        {
            if !location.is_empty() && !location.starts_with('/') && !location.contains("://") {
                return Err(SpecError::Field {
                    field,
                    message: format!("{location:?}: give an absolute path (on a volume the workers mount) or a URL"),
                });
            }
        }
        let mut spec = JobSpec::new(app, self.inputs.clone(), self.output.clone());
        spec.params = params;
        spec.reducers = self.reducers;
        spec.tune(Tuning {
            split_size: self.split_size,
            sort_buffer: self.sort_buffer,
            max_attempts: self.max_attempts,
        });
        spec.skip_bad_records = self.skip_bad_records;
        spec.shuffle = self.shuffle.clone();
        for (name, hash) in &self.code {
            let hash =
                hash.parse().map_err(|e| SpecError::Field { field: "spec.code", message: format!("{name}: {e}") })?;
            spec.code.insert(name.clone(), hash);
        }
        spec.validate().map_err(|e| SpecError::Field { field: "spec", message: e.to_string() })?;
        Ok(spec)
    }
}
