//! The API's JSON: its own types (never the coordinator's or the store's),
//! so the wire format changes only on purpose, each described for the
//! OpenAPI document. States and outcomes are snake_case strings, times are
//! milliseconds since the epoch (0: not yet).

use std::collections::BTreeMap;

use quern_coordinator::state::JobPhase;
use quern_coordinator::{AttemptView, JobView, TaskView, WorkerView};
use quern_core::{Counters, PhaseProgress, TaskId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Submitted; no attempt has started.
    Pending,
    /// Attempts have started.
    Running,
    /// Its output is committed.
    Succeeded,
    /// It failed (see `error`).
    Failed,
    /// It was killed.
    Killed,
}

impl From<JobPhase> for JobState {
    fn from(p: JobPhase) -> JobState {
        match p {
            JobPhase::Pending => JobState::Pending,
            JobPhase::Running => JobState::Running,
            JobPhase::Succeeded => JobState::Succeeded,
            JobPhase::Failed => JobState::Failed,
            JobPhase::Killed => JobState::Killed,
        }
    }
}

/// How a job's keys are split among each output's reducers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// A hash of the key (FNV-1a, or the app's own): each part file is
    /// sorted.
    Hash,
    /// Ranges of keys cut where a sample of the input says: the part files
    /// concatenated in order are sorted.
    TotalOrder,
}

impl From<quern_core::Partitioner> for Partitioner {
    fn from(p: quern_core::Partitioner) -> Partitioner {
        match p {
            quern_core::Partitioner::Hash => Partitioner::Hash,
            quern_core::Partitioner::TotalOrder => Partitioner::TotalOrder,
        }
    }
}

impl From<Partitioner> for quern_core::Partitioner {
    fn from(p: Partitioner) -> quern_core::Partitioner {
        match p {
            Partitioner::Hash => quern_core::Partitioner::Hash,
            Partitioner::TotalOrder => quern_core::Partitioner::TotalOrder,
        }
    }
}

/// Tasks of one phase, by state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Progress {
    /// Tasks in the phase.
    pub total: u32,
    /// Waiting for a slot.
    pub pending: u32,
    /// Running now.
    pub running: u32,
    /// Committed.
    pub succeeded: u32,
    /// Failed for good.
    pub failed: u32,
}

impl From<PhaseProgress> for Progress {
    fn from(p: PhaseProgress) -> Progress {
        Progress { total: p.total, pending: p.pending, running: p.running, succeeded: p.succeeded, failed: p.failed }
    }
}

/// A job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    /// Its id.
    pub id: u64,
    /// Its app.
    pub app: String,
    /// The user who submitted it ("" for the cluster token's holder).
    pub owner: String,
    /// Its output location.
    pub output: String,
    /// Its state.
    pub state: JobState,
    /// The phase running: `map`, `reduce`, `commit` or `done`.
    pub phase: String,
    /// Map tasks by state.
    pub maps: Progress,
    /// Reduce tasks by state.
    pub reduces: Progress,
    /// Higher goes first.
    pub priority: i32,
    /// Bytes of input.
    pub input_bytes: u64,
    /// How its keys are partitioned, as planned.
    pub partitioner: Partitioner,
    /// When it was submitted.
    pub submitted_ms: i64,
    /// When its first attempt started.
    pub started_ms: i64,
    /// When it ended.
    pub finished_ms: i64,
    /// Why it failed ("" otherwise).
    pub error: String,
    /// The code files it ships: name in an attempt's directory → SHA-256.
    pub code: BTreeMap<String, String>,
}

impl From<JobView> for Job {
    fn from(j: JobView) -> Job {
        Job {
            id: j.id.0,
            app: j.app,
            owner: j.owner,
            output: j.output,
            state: j.state.into(),
            phase: j.stage.to_owned(),
            maps: j.maps.into(),
            reduces: j.reduces.into(),
            priority: j.priority,
            input_bytes: j.input_bytes,
            partitioner: j.partitioner.into(),
            submitted_ms: j.submitted_ms,
            started_ms: j.started_ms,
            finished_ms: j.finished_ms,
            error: j.error,
            code: j.code.iter().map(|(name, hash)| (name.clone(), hash.to_string())).collect(),
        }
    }
}

/// A page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// Jobs matching the filter, over all pages.
    pub total: usize,
}

/// Which jobs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this user (`""`: submitted with the cluster token).
    pub owner: Option<String>,
    /// At most this many (1 to 1000; default 100).
    pub limit: Option<usize>,
    /// Skip this many (default 0).
    pub offset: Option<usize>,
}

/// A job to run: the spec alone; a worker that has the app plans it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// The app (as `GET /api/v1/apps` lists them).
    pub app: String,
    /// The app's parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Input locations: paths, directories, globs, `s3://` URLs.
    pub inputs: Vec<String>,
    /// Where the output goes (must not exist): a path, an `s3://` URL, or
    /// a relative name, which goes under the coordinator's file area
    /// (`…/outputs/NAME`).
    pub output: String,
    /// Reducers (default: the app's).
    pub reducers: Option<u32>,
    /// Bytes per split (default 64 MiB).
    pub split_size: Option<u64>,
    /// Sort buffer bytes per map task (default 64 MiB).
    pub sort_buffer: Option<u64>,
    /// Attempts per task before the job fails (default 4).
    pub max_attempts: Option<u32>,
    /// Skip records whose map call panics instead of failing.
    #[serde(default)]
    pub skip_bad_records: bool,
    /// Shuffle map outputs through this location (an `s3://` prefix).
    pub shuffle: Option<String>,
    /// How keys are split among each output's reducers (default: the
    /// app's choice; `sort` prefers `total_order`, the others `hash`).
    pub partitioner: Option<Partitioner>,
    /// Higher goes first (default 0).
    #[serde(default)]
    pub priority: i32,
    /// Code files put into each attempt's directory (a WebAssembly module,
    /// a streaming program, a support file): name → SHA-256 of a file
    /// stored with `POST /api/v1/code`.
    #[serde(default)]
    pub code: BTreeMap<String, String>,
}

/// A job's counters: the engine's and the app's, of committed attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobCounters {
    /// The engine's counters (records and bytes in and out, spills, …).
    #[schema(value_type = Object)]
    pub engine: serde_json::Value,
    /// The app's counters, by name.
    pub app: BTreeMap<String, u64>,
}

impl From<Counters> for JobCounters {
    fn from(c: Counters) -> JobCounters {
        // Plain numbers by name: they always serialize.
        JobCounters { engine: serde_json::to_value(c.engine).unwrap_or_default(), app: c.app }
    }
}

/// Something that happened to a job: a worker lost with its attempts, a
/// worker launched for it that never started.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobEvent {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// A CamelCase reason: `WorkerLost`, `WorkerNotStarted`, or the
    /// platform's own (Kubernetes' `OOMKilled`, `Evicted`, `ErrImagePull`,
    /// …).
    pub reason: String,
    /// What happened, for people.
    pub message: String,
}

impl From<quern_coordinator::cluster::JobEvent> for JobEvent {
    fn from(e: quern_coordinator::cluster::JobEvent) -> JobEvent {
        JobEvent { at_ms: e.at_ms, reason: e.reason, message: e.message }
    }
}

/// A task's state.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// No attempt runs, none committed.
    Pending,
    /// An attempt runs.
    Running,
    /// An attempt committed.
    Succeeded,
    /// It failed too often.
    Failed,
}

/// A task with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Task {
    /// Its name: `m-00003` or `r-00001`.
    pub task: String,
    /// Where it stands.
    pub state: TaskState,
    /// Its committed attempt's number.
    pub committed: Option<u32>,
    /// Its failed attempts.
    pub failures: u32,
    /// Its attempts, in order.
    pub attempts: Vec<Attempt>,
}

/// An attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    /// Its number (1, 2, …).
    pub attempt: u32,
    /// Where it ran.
    pub worker: String,
    /// How it ended: `succeeded`, `failed`, `lost`, … (`null`: running).
    pub outcome: Option<String>,
    /// Why it failed.
    pub error: String,
    /// When it started.
    pub started_ms: i64,
    /// When it ended (0: running).
    pub finished_ms: i64,
    /// Fraction of its input done.
    pub progress: f64,
    /// Records done (running attempts).
    pub records: u64,
}

/// `m-00003` / `r-00001`.
pub(crate) fn task_name(t: TaskId) -> String {
    format!("{t}")
}

impl From<AttemptView> for Attempt {
    fn from(a: AttemptView) -> Attempt {
        Attempt {
            attempt: a.attempt.attempt,
            worker: a.worker_id.to_string(),
            outcome: a.outcome.map(|o| o.as_str().to_owned()),
            error: a.error,
            started_ms: a.started_ms,
            finished_ms: a.finished_ms,
            progress: a.fraction,
            records: a.records,
        }
    }
}

impl From<TaskView> for Task {
    fn from(t: TaskView) -> Task {
        use quern_coordinator::TaskStatus as S;
        Task {
            task: task_name(t.task),
            state: match t.state {
                S::Pending => TaskState::Pending,
                S::Running => TaskState::Running,
                S::Succeeded => TaskState::Succeeded,
                S::Failed => TaskState::Failed,
            },
            committed: t.committed,
            failures: t.failures,
            attempts: t.attempts.into_iter().map(Into::into).collect(),
        }
    }
}

/// An attempt's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptLog {
    /// Its number.
    pub attempt: u32,
    /// Where it ran.
    pub worker: String,
    /// How it ended (`null`: running).
    pub outcome: Option<String>,
    /// Why it failed.
    pub error: String,
    /// Its stderr (the last 64 KiB), as text (invalid UTF-8 replaced).
    pub log: String,
}

/// A worker.
#[derive(Debug, Serialize, ToSchema)]
pub struct Worker {
    /// Its id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// `alive`, `draining` (finishes its attempts, gets no new ones),
    /// `blacklisted`, `lost` or `deregistered`.
    pub state: String,
    /// Attempts it runs at once.
    pub slots: u32,
    /// Attempts it runs now.
    pub running: u32,
    /// The apps it has.
    pub apps: Vec<String>,
    /// Its version.
    pub version: String,
    /// Its last heartbeat.
    pub last_heartbeat_ms: i64,
}

impl From<WorkerView> for Worker {
    fn from(w: WorkerView) -> Worker {
        let apps = w.row.app_names();
        Worker {
            id: w.row.id.to_string(),
            host: w.row.host,
            state: w.health.to_string(),
            slots: w.row.slots,
            running: w.running,
            apps,
            version: w.row.version,
            last_heartbeat_ms: w.row.last_heartbeat_ms,
        }
    }
}

/// An app the cluster's workers offer.
#[derive(Debug, Serialize, ToSchema)]
pub struct App {
    /// Its name.
    pub name: String,
    /// One line of help.
    pub about: String,
    /// The parameters a job gives it (`params` of a new job).
    pub params: Vec<AppParam>,
    /// Alive workers that have it.
    pub workers: usize,
}

/// A parameter an app takes.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppParam {
    /// Its name.
    pub name: String,
    /// One line of help.
    pub help: String,
    /// Whether every job must give it.
    pub required: bool,
}

impl App {
    /// `info` as offered by `workers` alive workers.
    pub fn new(info: quern_core::AppInfo, workers: usize) -> App {
        App {
            name: info.name,
            about: info.about,
            params: info
                .params
                .into_iter()
                .map(|p| AppParam { name: p.name, help: p.help, required: p.required })
                .collect(),
            workers,
        }
    }
}

/// The service's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// Alive workers.
    pub workers: usize,
}

/// The service's version.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    /// quern's version.
    pub version: String,
    /// The API's version.
    pub api: String,
}

/// Whether a kill stopped the job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Killed {
    /// False if the job had already ended (or was committing its output).
    pub killed: bool,
}

/// A change, as the event stream sends it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A job changed state.
    Job {
        /// The job.
        job: u64,
        /// Its new state.
        state: JobState,
    },
    /// A task's record changed.
    Task {
        /// The job.
        job: u64,
        /// The task.
        task: String,
        /// Its committed attempt.
        committed: Option<u32>,
        /// Its failed attempts.
        failures: u32,
    },
    /// An attempt started.
    AttemptStarted {
        /// The job.
        job: u64,
        /// The task.
        task: String,
        /// The attempt's number.
        attempt: u32,
        /// Where.
        worker: String,
    },
    /// An attempt ended.
    AttemptEnded {
        /// The job.
        job: u64,
        /// The task.
        task: String,
        /// The attempt's number.
        attempt: u32,
        /// How.
        outcome: String,
    },
    /// A worker registered or was lost.
    Worker {
        /// The worker.
        worker: String,
        /// `alive` or `lost`.
        state: String,
    },
    /// Something happened to a job that its tasks do not show: a worker
    /// lost, or one launched for it that cannot start.
    JobEvent {
        /// The job.
        job: u64,
        /// A CamelCase reason (Kubernetes' own, when it gave one:
        /// `OOMKilled`, `Evicted`, `ErrImagePull`, `Unschedulable`).
        reason: String,
        /// What happened.
        message: String,
    },
}

impl Event {
    /// The job the event is about, if any.
    pub fn job(&self) -> Option<u64> {
        match self {
            Event::Job { job, .. }
            | Event::Task { job, .. }
            | Event::AttemptStarted { job, .. }
            | Event::AttemptEnded { job, .. }
            | Event::JobEvent { job, .. } => Some(*job),
            Event::Worker { .. } => None,
        }
    }
}

impl From<quern_coordinator::Event> for Event {
    fn from(e: quern_coordinator::Event) -> Event {
        use quern_coordinator::Event as E;
        match e {
            E::Job { id, state } => Event::Job { job: id.0, state: state.into() },
            E::Task { job, task, committed, failures } => {
                Event::Task { job: job.0, task: task_name(task), committed, failures }
            }
            E::AttemptStarted { job, attempt, worker_id } => Event::AttemptStarted {
                job: job.0,
                task: task_name(attempt.task),
                attempt: attempt.attempt,
                worker: worker_id.to_string(),
            },
            E::AttemptEnded { job, attempt, end } => Event::AttemptEnded {
                job: job.0,
                task: task_name(attempt.task),
                attempt: attempt.attempt,
                outcome: end.as_str().to_owned(),
            },
            E::Worker { id, state } => Event::Worker { worker: id.to_string(), state: state.as_str().to_owned() },
            E::JobEvent { job, reason, message } => Event::JobEvent { job: job.0, reason, message },
        }
    }
}

/// The form of an upload (multipart/form-data).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // described for the OpenAPI document only
pub struct UploadForm {
    /// One or more files, each a part named `file` with a filename.
    #[schema(value_type = Vec<String>, format = Binary)]
    pub file: Vec<Vec<u8>>,
}

/// Files stored by an upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    /// Each file, in the order sent.
    pub files: Vec<UploadedFile>,
}

/// A stored code file.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredCode {
    /// The SHA-256 of its bytes (hex): how a job's `code` names it.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A stored upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedFile {
    /// Its name.
    pub name: String,
    /// Where it is: give it as a job input.
    pub location: String,
    /// Its size.
    pub bytes: u64,
}

/// A succeeded job's output files.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputList {
    /// The output's location.
    pub location: String,
    /// Its files (`_SUCCESS` and hidden files left out), in order.
    pub files: Vec<OutputFile>,
}

/// An output file.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputFile {
    /// Its name under the output (`part-r-00000`, `counts/part-r-00000`):
    /// `GET /api/v1/jobs/{id}/output/{name}` downloads it.
    pub name: String,
    /// Its size.
    pub bytes: u64,
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// Sees and steers everything: every job, users and workers.
    Admin,
    /// Sees and kills their own jobs.
    User,
}

impl From<UserRole> for quern_coordinator::state::Role {
    fn from(r: UserRole) -> quern_coordinator::state::Role {
        match r {
            UserRole::Admin => quern_coordinator::state::Role::Admin,
            UserRole::User => quern_coordinator::state::Role::User,
        }
    }
}

impl From<quern_coordinator::state::Role> for UserRole {
    fn from(r: quern_coordinator::state::Role) -> UserRole {
        match r {
            quern_coordinator::state::Role::Admin => UserRole::Admin,
            quern_coordinator::state::Role::User => UserRole::User,
        }
    }
}

/// A user (never their password).
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: UserRole,
    /// When they were added (ms since the epoch).
    pub created_ms: i64,
}

impl From<quern_coordinator::store::StoredUser> for User {
    fn from(u: quern_coordinator::store::StoredUser) -> User {
        User { name: u.name, role: u.role.into(), created_ms: u.created_at_ms }
    }
}

/// A user to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 64 letters, digits, '.', '_' or '-'.
    pub name: String,
    /// At least 8 characters.
    pub password: String,
    /// Their role.
    pub role: UserRole,
}

/// A new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// At least 8 characters.
    pub password: String,
}
