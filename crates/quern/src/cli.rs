//! The command line: argument parsing (clap), logging setup, exit codes, and
//! the `run`, `apps`, `demo` and `gen-corpus` commands.
//!
//! Exit codes: 0 success; 1 the job failed; 2 the job was refused before any
//! work started (bad arguments, unknown app or parameter, missing or
//! unreadable input, existing output, a job too large to plan, an unwritable
//! `--stats-json`); 130 cancelled by Ctrl-C, SIGTERM or SIGHUP.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};
use quern_core::{AppRegistry, JobSpec, Partitioner};
use quern_engine::{Error as EngineError, JobReport, RunOptions};

use crate::progress::ProgressDisplay;
use crate::shipped::{LocalCode, Shipment};

/// Runs the quern command line with `apps` registered, returning the exit
/// code. This is the whole `quern` binary: call it from your own `main` to get
/// the same CLI with your apps.
pub fn main(apps: AppRegistry) -> ExitCode {
    let cli = Cli::parse();
    if cli.command.only_prints() {
        // `quern jobs | head` should end quietly when head does, like any
        // Unix tool, not panic on a closed pipe. Only for commands whose
        // work is printing: SIGPIPE's default action also kills a process
        // that writes to a socket its peer closed, so a server (or a job
        // running user code) must keep it ignored and see EPIPE instead.
        sigpipe::reset();
    }
    match run(cli, apps) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            if code != 130 {
                eprintln!("quern: error: {e:#}");
            } else {
                eprintln!("quern: cancelled; no output was committed");
            }
            ExitCode::from(code)
        }
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(code) = e.downcast_ref::<crate::cluster::ExitStatus>() {
        return code.0;
    }
    if e.downcast_ref::<Refused>().is_some() {
        return 2;
    }
    if let Some(chain) = e.downcast_ref::<quern_engine::ChainError>() {
        return match chain {
            quern_engine::ChainError::Step { cause: EngineError::Cancelled, .. } => 130,
            chain if chain.is_refusal() => 2,
            _ => 1,
        };
    }
    match e.downcast_ref::<EngineError>() {
        Some(EngineError::Cancelled) => 130,
        Some(err) if err.is_refusal() => 2,
        Some(_) => 1,
        None if e.downcast_ref::<quern_core::SpecError>().is_some() => 2,
        None => 1,
    }
}

#[derive(Parser)]
#[command(name = "quern", version, about = "MapReduce: count, index, join and sort piles of files", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job embedded in this process.
    Run(RunArgs),
    /// List the apps this binary knows.
    Apps,
    /// Generate a small corpus, count its words, show the top words.
    Demo(DemoArgs),
    /// Write a deterministic Zipf-distributed text corpus.
    GenCorpus(GenCorpusArgs),
    /// Run the cluster coordinator.
    #[cfg(feature = "coordinator")]
    Coordinator(Box<crate::cluster::CoordinatorArgs>),
    /// Run the cluster coordinator: not in this binary (run it to see how
    /// to get it).
    #[cfg(not(feature = "coordinator"))]
    Coordinator(crate::cluster::NoCoordinatorArgs),
    /// Manage the REST API's users (on the coordinator's host).
    #[cfg(feature = "coordinator")]
    User(crate::users::UserArgs),
    /// Run a worker that takes attempts from a coordinator.
    Worker(crate::cluster::WorkerArgs),
    /// Submit a job to a cluster.
    Submit(crate::cluster::SubmitArgs),
    /// List a cluster's jobs.
    Jobs(crate::cluster::ListArgs),
    /// Show one job: state, phase, tasks, counters, timings.
    Status(crate::cluster::JobRefArgs),
    /// Kill a running job.
    Kill(crate::cluster::JobRefArgs),
    /// Resume a failed multi-step job (`submit --job`) from its failed
    /// step, the earlier steps' outputs kept: give the id of the chain or
    /// of any of its jobs.
    Resume(crate::cluster::ResumeArgs),
    /// Run one task of a cluster job again on this machine, on one thread,
    /// from what the coordinator recorded (its split or the job's maps, its
    /// code files by hash), and say whether its output's digest is the one
    /// recorded, or how it fails. Takes the cluster token.
    Replay(crate::replay::ReplayArgs),
    /// List a cluster's workers; `workers add N` and `workers remove ID`
    /// launch and stop workers on a coordinator started with --launcher.
    Workers(crate::cluster::WorkersArgs),
    /// Deploy on Kubernetes: print the manifests, or the MapReduceJob CRD.
    #[cfg(feature = "kubernetes")]
    #[command(subcommand)]
    K8s(crate::k8s::K8sCommand),
    /// Deploy on Kubernetes: not in this binary (run it to see how to get
    /// it).
    #[cfg(not(feature = "kubernetes"))]
    K8s(crate::no_k8s::NoKubernetesArgs),
    /// Run the MapReduceJob operator: each resource in the namespace
    /// becomes a job on the coordinator, and its progress the resource's
    /// status (replicas elect one leader with a Lease).
    #[cfg(feature = "kubernetes")]
    Operator(crate::k8s::OperatorArgs),
    /// Run the MapReduceJob operator: not in this binary (run it to see how
    /// to get it).
    #[cfg(not(feature = "kubernetes"))]
    Operator(crate::no_k8s::NoKubernetesArgs),
    /// Log in to a coordinator as a user: the client commands then use
    /// that user's token (kept in ~/.config/quern/login.json).
    Login(crate::login::LoginArgs),
    /// Forget the saved login.
    Logout,
    /// Show the logs of a job's attempts.
    Logs(crate::cluster::LogsArgs),
    /// Run one attempt (what a worker starts; reads the attempt on stdin).
    #[command(hide = true)]
    Task(S3Args),
    /// Plan a submitted job (what a worker starts for the coordinator;
    /// reads the spec on stdin, writes the outcome on stdout).
    #[command(hide = true)]
    Plan(PlanArgs),
}

/// `plan`'s arguments.
#[derive(Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    s3: S3Args,
    /// The directory holding the job's code files by hash (the worker's
    /// cache), when it ships any.
    #[arg(long, value_name = "DIR")]
    code_dir: Option<PathBuf>,
}

impl Command {
    /// Whether the command's work is printing (listings, status, a corpus
    /// summary), so that a closed stdout may end it quietly with SIGPIPE.
    /// Not the servers (`coordinator`, `worker`, `task`), which a peer must
    /// never kill, nor `run`, which runs user code that may use sockets.
    fn only_prints(&self) -> bool {
        match self {
            Command::Apps
            | Command::Demo(_)
            | Command::GenCorpus(_)
            | Command::Submit(_)
            | Command::Jobs(_)
            | Command::Status(_)
            | Command::Kill(_)
            | Command::Resume(_)
            | Command::Workers(_)
            | Command::Login(_)
            | Command::Logout
            | Command::Logs(_)
            | Command::K8s(_) => true,
            #[cfg(feature = "coordinator")]
            Command::User(_) => true,
            Command::Run(_)
            | Command::Replay(_)
            | Command::Coordinator(_)
            | Command::Worker(_)
            | Command::Task(_)
            | Command::Operator(_)
            | Command::Plan(_) => false,
        }
    }
}

/// A command refused before any work started (exit code 2), for reasons
/// found by the CLI itself.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A path given as a job's `--input` or `--output`. Job specs travel as JSON
/// to a cluster, so paths must be UTF-8: one that is not is refused here,
/// named (lossily) rather than left to clap's anonymous "invalid UTF-8".
#[derive(Clone)]
struct Utf8Path;

impl clap::builder::TypedValueParser for Utf8Path {
    type Value = String;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<String, clap::Error> {
        match value.to_str() {
            Some(s) => Ok(s.to_owned()),
            None => {
                let option = arg.map_or_else(|| "a path".to_owned(), |a| format!("--{}", a.get_id()));
                let message = format!(
                    "{option} {}: the path is not valid UTF-8, which quern needs to describe a job; rename it\n",
                    Path::new(value).display()
                );
                Err(clap::Error::raw(clap::error::ErrorKind::InvalidUtf8, message).with_cmd(cmd))
            }
        }
    }
}

pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    s.trim().parse::<ByteSize>().map(|b| b.as_u64()).map_err(|e| format!("not a size like 64MiB: {e}"))
}

/// The cluster token: refused when empty, for servers and clients alike
/// (an empty token would let anyone in).
pub(crate) fn parse_token(s: &str) -> Result<String, String> {
    quern_proto::TokenCheck::new(s).map(|_| s.to_owned()).map_err(|e| e.to_string())
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

fn parse_reducers(s: &str) -> Result<(String, u32), String> {
    let (k, v) = parse_param(s)?;
    let n = v.parse().map_err(|_| format!("reducer count for {k} is not a number: {v:?}"))?;
    Ok((k, n))
}

/// What a job is: shared by `run` and `submit`.
#[derive(Args, Default)]
pub(crate) struct JobArgs {
    /// The app to run (see `quern apps`).
    #[arg(long, required_unless_present_any = ["mapper", "job"])]
    app: Option<String>,
    /// A multi-step job, instead of `--app`/`--mapper`, `--input` and
    /// `--output`: a JSON file with the first step's `inputs`, the last
    /// step's `output`, and `steps`, each a job without inputs or output
    /// (`app`, `params`, `reducers`, …, as the REST API's job spec) that
    /// reads the step before's output. The outputs of the steps before the
    /// last are kept in OUTPUT.steps until the last step succeeds.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["app", "mapper", "input", "output"])]
    pub(crate) job: Option<PathBuf>,
    /// With `--job`: continue the earlier, failed run of the same job file
    /// from its first step whose output is not complete.
    #[arg(long, requires = "job")]
    pub(crate) resume: bool,
    /// Hadoop streaming, instead of `--app`: the mapper's command, started
    /// once per map attempt in the attempt's directory, reading the split's
    /// lines on stdin and writing KEY<TAB>VALUE lines on stdout. Split into
    /// words as a shell would (no shell is run).
    #[arg(long, conflicts_with = "app", value_name = "COMMAND")]
    mapper: Option<String>,
    /// The combiner's command (with `--mapper`): run over each map spill,
    /// reading its KEY<TAB>VALUE lines sorted by key and writing combined
    /// ones, as the reducer does.
    #[arg(long, requires = "mapper", value_name = "COMMAND")]
    combiner: Option<String>,
    /// The reducer's command (with `--mapper`): reads KEY<TAB>VALUE lines
    /// sorted by key, writes the job's output lines. Without it the job is
    /// map-only, unless `--reducers N` asks for sorted output.
    #[arg(long, requires = "mapper", value_name = "COMMAND")]
    reducer: Option<String>,
    /// An environment variable for the streaming commands, as NAME=VALUE
    /// (repeatable; with `--mapper`).
    #[arg(long, requires = "mapper", value_parser = parse_param, value_name = "NAME=VALUE")]
    cmdenv: Vec<(String, String)>,
    /// A file copied into every attempt's directory, where the commands
    /// find it by its name (repeatable; with `--mapper`).
    #[arg(long = "file", requires = "mapper", value_parser = Utf8Path, value_name = "PATH")]
    files: Vec<String>,
    /// The memory limit of a WebAssembly module (a command whose program
    /// is a `.wasm` file), per run; default 256MiB.
    #[arg(long, requires = "mapper", value_parser = parse_size, value_name = "SIZE")]
    wasm_memory: Option<u64>,
    /// The CPU time limit of one run of a WebAssembly module (`30s`,
    /// `10m`); default 10m.
    #[arg(long, requires = "mapper", value_parser = humantime::parse_duration, value_name = "DURATION")]
    wasm_cpu_time: Option<std::time::Duration>,
    /// Input files, directories (read recursively) and glob patterns
    /// (UTF-8 paths).
    #[arg(long, required_unless_present = "job", num_args = 1.., value_parser = Utf8Path)]
    input: Vec<String>,
    /// Output directory (a UTF-8 path or file:// URL) that must not exist,
    /// or, for `run`, an S3 prefix (s3://BUCKET/PREFIX) with no object
    /// under it.
    #[arg(long, required_unless_present = "job", value_parser = Utf8Path)]
    output: Option<String>,
    /// Reducers (0: map-only; at most 10,000 per output and in all).
    /// Default: the app's choice, else 1.
    #[arg(long)]
    reducers: Option<u32>,
    /// Reducers of one named output, as NAME=N (repeatable; at most 10,000).
    #[arg(long = "output-reducers", value_parser = parse_reducers)]
    output_reducers: Vec<(String, u32)>,
    /// An app parameter, as NAME=VALUE (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Maximum bytes of an input split (one map task each; a job may have
    /// at most 100,000).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    split_size: u64,
    /// Memory for each map task's sort buffer (1 KiB to 4 GiB).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    sort_buffer: u64,
    /// Attempts per task before the job fails (1 to 100).
    #[arg(long, default_value_t = quern_core::DEFAULT_MAX_ATTEMPTS)]
    max_attempts: u32,
    /// Skip (and count) records whose map call panics.
    #[arg(long)]
    skip_bad_records: bool,
    /// Shuffle through storage: each map uploads its sorted, partitioned
    /// output under a prefix of the job's own below URL (s3://BUCKET/PREFIX,
    /// or a path or file:// URL on a file system every worker shares), and
    /// reduces read their segments from there with ranged GETs; `run`
    /// deletes the job's prefix when the job ends. For clusters whose
    /// workers cannot reach each other. Default: map outputs stay where they were written
    /// and reduces fetch them worker to worker.
    #[arg(long, value_name = "URL", value_parser = parse_shuffle)]
    shuffle: Option<String>,
    /// How keys are split among each output's reducers. Default: the
    /// app's choice (sort: total-order; the others: hash).
    #[arg(long, value_enum)]
    partitioner: Option<PartitionerArg>,
}

/// `--partitioner`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PartitionerArg {
    /// The FNV-1a hash of the key (or the app's own partition): each part
    /// file is sorted, their concatenation is not.
    Hash,
    /// Ranges of keys, cut where a sample of the input's keys says: the part
    /// files concatenated in order are sorted.
    TotalOrder,
}

impl From<PartitionerArg> for Partitioner {
    fn from(p: PartitionerArg) -> Partitioner {
        match p {
            PartitionerArg::Hash => Partitioner::Hash,
            PartitionerArg::TotalOrder => Partitioner::TotalOrder,
        }
    }
}

fn parse_shuffle(s: &str) -> Result<String, String> {
    quern_storage::Location::parse(s).map(|_| s.to_owned()).map_err(|e| e.to_string())
}

impl JobArgs {
    /// The job's spec, and the files it ships on this machine. A streaming
    /// job's `--file`s and `.wasm` programs become its code files, named
    /// in the spec by their hash (a program by its base name); a job whose
    /// every command is a module is a `wasm` job, which any worker runs.
    pub(crate) fn into_spec(self) -> anyhow::Result<(JobSpec, Vec<LocalCode>)> {
        let mut params = self.params.into_iter().collect::<BTreeMap<_, _>>();
        let mut shipped = Shipment::default();
        let app = match self.mapper {
            Some(mapper) => {
                for given in &self.files {
                    shipped.ship("--file", given)?;
                }
                let mut all_wasm = true;
                for (param, command) in [
                    (quern_streaming::MAPPER, Some(mapper)),
                    (quern_streaming::COMBINER, self.combiner),
                    (quern_streaming::REDUCER, self.reducer),
                ] {
                    let Some(command) = command else { continue };
                    let (command, wasm) = shipped.command(&format!("--{param}"), &command)?;
                    all_wasm &= wasm;
                    params.insert(param.to_owned(), command);
                }
                if !self.cmdenv.is_empty() {
                    let pairs: Vec<String> = self.cmdenv.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    params.insert(quern_streaming::CMDENV.to_owned(), pairs.join("\n"));
                }
                if let Some(bytes) = self.wasm_memory {
                    params.insert(quern_streaming::WASM_MEMORY.to_owned(), bytes.to_string());
                }
                if let Some(time) = self.wasm_cpu_time {
                    params.insert(quern_streaming::WASM_CPU_TIME.to_owned(), time.as_secs_f64().to_string());
                }
                if all_wasm && cfg!(feature = "wasm") { quern_streaming::WASM_APP } else { quern_streaming::APP }
                    .to_owned()
            }
            // clap requires one of the two.
            None => self.app.unwrap_or_default(),
        };
        // clap requires an output without `--job`, which has its own.
        let mut spec = JobSpec::new(app, self.input, self.output.unwrap_or_default());
        spec.params = params;
        spec.reducers = self.reducers;
        spec.output_reducers = self.output_reducers.into_iter().collect();
        spec.split_size = self.split_size;
        spec.sort_buffer = self.sort_buffer;
        spec.max_attempts = self.max_attempts;
        spec.skip_bad_records = self.skip_bad_records;
        spec.shuffle = self.shuffle;
        spec.partitioner = self.partitioner.map(Partitioner::from);
        spec.code = shipped.files.iter().map(|f| (f.name.clone(), f.hash)).collect();
        Ok((spec, shipped.files))
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Tasks run at once (1 to 1024). Default: the number of cores.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    parallelism: Option<u16>,
    /// Maximum sorted runs merged at once (2 to 1024).
    #[arg(long, default_value_t = quern_engine::DEFAULT_MERGE_FACTOR as u16, value_parser = clap::value_parser!(u16).range(2..=1024))]
    merge_factor: u16,
    /// Scratch directory for spills and map outputs. Default: the system's.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Write the job's counters and timings as JSON to this file (checked
    /// before the job starts; not written if the job fails).
    #[arg(long, conflicts_with = "job")]
    stats_json: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    s3: S3Args,
}

/// How to reach S3, beside the standard `AWS_*` variables.
#[derive(Args, Clone, Default)]
pub(crate) struct S3Args {
    /// S3-compatible endpoint for `s3://` inputs and outputs (overrides
    /// AWS_ENDPOINT_URL; buckets are then addressed path-style).
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub(crate) s3_endpoint: Option<String>,
}

impl S3Args {
    /// Storage configured from the `AWS_*` variables and these flags.
    pub(crate) fn storage(&self) -> quern_storage::Storage {
        storage_from_env(self.s3_endpoint.clone())
    }

    /// The flags again, for a child process.
    pub(crate) fn to_args(&self) -> Vec<std::ffi::OsString> {
        match &self.s3_endpoint {
            Some(url) => vec!["--s3-endpoint".into(), url.into()],
            None => Vec::new(),
        }
    }
}

fn parse_endpoint(s: &str) -> Result<String, String> {
    let scheme = s.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http" | "https") => Ok(s.to_owned()),
        _ => Err("expected an http:// or https:// URL".into()),
    }
}

/// Where a command reads inputs: S3 configured from the standard AWS
/// variables (see [`quern_storage::S3Options::ENV_VARS`]), `endpoint`
/// (`--s3-endpoint`) overriding theirs.
pub(crate) fn storage_from_env(endpoint: Option<String>) -> quern_storage::Storage {
    let mut s3 = quern_storage::S3Options::from_env_vars(|name| std::env::var(name).ok());
    if endpoint.is_some() {
        s3.endpoint = endpoint;
    }
    quern_storage::Storage::new(s3)
}

#[derive(Args)]
struct DemoArgs {
    /// Directory for the demo's input and output.
    #[arg(long, default_value = "quern-demo")]
    dir: PathBuf,
    /// Size of the generated corpus.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    size: u64,
}

#[derive(Args)]
struct GenCorpusArgs {
    /// Directory to write `part-NNNN.txt` files into.
    dir: PathBuf,
    /// Total size.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    size: u64,
    /// Number of files.
    #[arg(long, default_value_t = 16)]
    files: u32,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn run(cli: Cli, apps: AppRegistry) -> anyhow::Result<()> {
    match cli.command {
        Command::Task(s3) => {
            // The attempt process: its stdout is the protocol; logs and
            // panic messages go to stderr, which the worker keeps as the
            // attempt's log.
            init_logging(false);
            let code = quern_worker::attempt_process_main(&s3.storage(), |spec| {
                apps.build(&spec.app, &spec.params).map_err(|e| e.to_string())
            });
            if code == ExitCode::SUCCESS { Ok(()) } else { anyhow::bail!("the attempt request was unusable") }
        }
        Command::Plan(args) => {
            // The planning process: stdout carries its one answer. Sampling
            // for a total order runs `map`, whose panics leave a record out.
            init_logging(false);
            quiet_task_panics();
            crate::cluster::plan_process(&apps, &args.s3.storage(), args.code_dir.as_deref())
        }
        #[cfg(feature = "coordinator")]
        Command::Coordinator(args) => {
            init_logging(false);
            crate::cluster::coordinator(*args)
        }
        #[cfg(not(feature = "coordinator"))]
        Command::Coordinator(_) => Err(Refused(crate::cluster::NO_COORDINATOR.to_owned()).into()),
        #[cfg(feature = "coordinator")]
        Command::User(args) => crate::users::user(args),
        Command::Worker(args) => {
            init_logging(false);
            crate::cluster::worker(args, &apps)
        }
        Command::Submit(args) => {
            init_logging(true);
            crate::cluster::submit(args)
        }
        Command::Jobs(args) => crate::cluster::jobs(args),
        Command::Status(args) => crate::cluster::status(args),
        Command::Kill(args) => crate::cluster::kill(args),
        Command::Resume(args) => crate::cluster::resume(args),
        Command::Replay(args) => {
            init_logging(false);
            quiet_task_panics();
            crate::replay::replay(&apps, args)
        }
        Command::Workers(args) => crate::cluster::workers_command(args),
        Command::Logs(args) => crate::cluster::logs(args),
        Command::Login(args) => crate::login::login(args),
        Command::Logout => crate::login::logout(),
        #[cfg(feature = "kubernetes")]
        Command::K8s(command) => crate::k8s::k8s(command),
        #[cfg(feature = "kubernetes")]
        Command::Operator(args) => {
            init_logging(false);
            crate::k8s::operator(args)
        }
        #[cfg(not(feature = "kubernetes"))]
        Command::Operator(_) => Err(Refused(crate::no_k8s::NO_KUBERNETES.to_owned()).into()),
        #[cfg(not(feature = "kubernetes"))]
        Command::K8s(_) => Err(Refused(crate::no_k8s::NO_KUBERNETES.to_owned()).into()),
        Command::Apps => {
            init_logging(false);
            print_apps(&apps);
            Ok(())
        }
        Command::Run(args) if args.job.job.is_some() => run_chain_file(&apps, args),
        Command::Run(args) => {
            let quiet = args.quiet;
            // `_code` holds the job's code files until the job ends.
            let (spec, opts, stats, _code) = job_from_args(args)?;
            let show_bar = !quiet && std::io::stderr().is_terminal();
            init_logging(show_bar || quiet);
            // An unwritable stats file refuses the job before it starts,
            // rather than failing it after its output was committed.
            let stats = stats.map(|path| StatsFile::create(&path)).transpose()?;
            let report = run_with_progress(&apps, &spec, opts, show_bar)?;
            if let Some(stats) = stats {
                stats.write(&report)?;
            }
            if !quiet {
                // SIGPIPE stays ignored here (the job ran user code): a
                // closed stdout ends the summary quietly instead.
                match print_summary(&report) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    other => other.context("printing the summary")?,
                }
            }
            Ok(())
        }
        Command::Demo(args) => {
            let show_bar = std::io::stderr().is_terminal();
            init_logging(show_bar);
            crate::demo::run(&apps, &args.dir, args.size, show_bar)
        }
        Command::GenCorpus(args) => {
            init_logging(false);
            let files = quern_apps::corpus::generate(&args.dir, args.size, args.files, args.seed)
                .with_context(|| format!("writing corpus to {}", args.dir.display()))?;
            println!(
                "wrote {} in {} files to {}",
                ByteSize(args.size).display().iec(),
                files.len(),
                args.dir.display()
            );
            Ok(())
        }
    }
}

/// The embedded job, how to run it, where its stats go, and the directory
/// of its code files (removed when dropped).
type EmbeddedJob = (JobSpec, RunOptions, Option<PathBuf>, Option<tempfile::TempDir>);

fn job_from_args(mut args: RunArgs) -> anyhow::Result<EmbeddedJob> {
    let (spec, shipped) = std::mem::take(&mut args.job).into_spec()?;
    spec.validate()?;
    let code = code_dir(&args, &shipped)?;
    let opts = RunOptions { code_dir: code.as_ref().map(|dir| dir.path().to_path_buf()), ..run_options(&args) };
    Ok((spec, opts, args.stats_json, code))
}

/// A directory of the job's code files by hash, for an embedded run
/// (removed when dropped), under `--work-dir` where given; none when the
/// job ships none.
fn code_dir(args: &RunArgs, shipped: &[LocalCode]) -> anyhow::Result<Option<tempfile::TempDir>> {
    if shipped.is_empty() {
        return Ok(None);
    }
    let base = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("quern-code-")
        .tempdir_in(&base)
        .context("a directory for the job's code files")?;
    crate::shipped::put_in_dir(shipped, dir.path())?;
    Ok(Some(dir))
}

/// How `run` runs: parallelism, scratch, merge factor, storage.
fn run_options(args: &RunArgs) -> RunOptions {
    let mut opts = RunOptions {
        work_dir: args.work_dir.clone(),
        merge_factor: usize::from(args.merge_factor),
        storage: args.s3.storage(),
        ..RunOptions::default()
    };
    if let Some(p) = args.parallelism {
        opts.parallelism = usize::from(p);
    }
    opts
}

/// Runs `work` with Ctrl-C, SIGTERM and SIGHUP (ctrlc's `termination`
/// feature) wired to `opts`' cancellation (the job stops cleanly: no output
/// directory, no scratch left behind; a second signal exits at once), and
/// progress shown.
fn with_progress<T>(opts: &RunOptions, show_bar: bool, work: impl FnOnce() -> T) -> T {
    let cancel = opts.cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("quern: cancelling (Ctrl-C again to exit now)");
    });
    quiet_task_panics();
    let display = ProgressDisplay::start(opts.progress.clone(), show_bar);
    let result = work();
    display.finish();
    result
}

/// `quern run --job FILE`: reads the chain, and runs it with Ctrl-C wired
/// to cancellation and progress shown, then says how each step went.
fn run_chain_file(apps: &AppRegistry, args: RunArgs) -> anyhow::Result<()> {
    let Some(file) = args.job.job.clone() else { anyhow::bail!("--job is missing") };
    let (chain, shipped) = crate::shipped::read_job_file(&file)?;
    let code = code_dir(&args, &shipped)?;
    let show_bar = !args.quiet && std::io::stderr().is_terminal();
    init_logging(show_bar || args.quiet);
    let opts = RunOptions { code_dir: code.as_ref().map(|dir| dir.path().to_path_buf()), ..run_options(&args) };
    let outcome = with_progress(&opts, show_bar, || quern_engine::run_chain(&chain, apps, &opts, args.job.resume));
    let outcomes = outcome?;
    if !args.quiet {
        let mut out = std::io::stdout().lock();
        for (i, step) in outcomes.iter().enumerate() {
            let app = &chain.steps[i].app;
            let line = match step {
                quern_engine::StepOutcome::Ran(r) => format!(
                    "step {}/{} {app}: succeeded in {:.2}s, {} map tasks, {} reduce tasks",
                    i + 1,
                    outcomes.len(),
                    r.elapsed.as_secs_f64(),
                    r.map_tasks,
                    r.reduce_tasks
                ),
                quern_engine::StepOutcome::Kept { output } => {
                    format!("step {}/{} {app}: kept from the earlier run ({output})", i + 1, outcomes.len())
                }
            };
            match writeln!(out, "{line}") {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                other => other.context("printing the summary")?,
            }
        }
        let _ = writeln!(out, "output: {}", chain.output);
    }
    Ok(())
}

/// Builds the app, runs the job with Ctrl-C wired to cancellation, and shows
/// progress while it runs.
pub(crate) fn run_with_progress(
    apps: &AppRegistry,
    spec: &JobSpec,
    opts: RunOptions,
    show_bar: bool,
) -> anyhow::Result<JobReport> {
    let app = apps.build(&spec.app, &spec.params)?;
    Ok(with_progress(&opts, show_bar, || quern_engine::run_job(spec, Arc::clone(&app), &opts))?)
}

/// Panics in user code are caught and reported as attempt failures (with
/// their message), so the default hook's backtrace noise is kept for panics
/// elsewhere only.
fn quiet_task_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Slots run tasks; samplers run `map` while a total order is planned.
        let in_slot =
            std::thread::current().name().is_some_and(|n| n.starts_with("quern-slot") || n.starts_with("quern-sample"));
        if in_slot {
            tracing::debug!("task panicked: {info}");
        } else {
            default(info);
        }
    }));
}

pub(crate) fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn print_apps(apps: &AppRegistry) {
    let width = apps.apps().map(|a| a.name.len()).max().unwrap_or(0);
    for app in apps.apps() {
        println!("{:width$}  {}", app.name, app.about);
        for p in &app.params {
            let req = if p.required { "required" } else { "optional" };
            println!("{:width$}    --param {}=…  ({req}) {}", "", p.name, p.help);
        }
    }
}

/// The `--stats-json` file, created before the job runs. Dropped without
/// [`StatsFile::write`] (the job failed or was refused), it is removed if this
/// run created it, and left as it was otherwise.
struct StatsFile {
    path: PathBuf,
    file: Option<File>,
    created: bool,
}

impl StatsFile {
    fn create(path: &Path) -> anyhow::Result<StatsFile> {
        let existed = path.exists();
        // Not truncated yet: an existing file keeps its contents until the
        // job has succeeded.
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Refused(format!("--stats-json {}: cannot write the stats file: {e}", path.display())))?;
        Ok(StatsFile { path: path.to_owned(), file: Some(file), created: !existed })
    }

    fn write(mut self, report: &JobReport) -> anyhow::Result<()> {
        let Some(mut file) = self.file.take() else { return Ok(()) };
        self.created = false;
        let text = stats_json(report)?;
        file.set_len(0)
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.flush())
            .with_context(|| format!("writing stats to {}", self.path.display()))
    }
}

impl Drop for StatsFile {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn stats_json(report: &JobReport) -> anyhow::Result<String> {
    let json = serde_json::json!({
        "app": report.app,
        "output": report.output,
        "files": report.files,
        "map_tasks": report.map_tasks,
        "reduce_tasks": report.reduce_tasks,
        "elapsed_seconds": report.elapsed.as_secs_f64(),
        "counters": report.counters.engine,
        "app_counters": report.counters.app,
    });
    Ok(serde_json::to_string_pretty(&json).context("encoding stats")? + "\n")
}

/// Prints the end-of-job summary on stdout.
pub(crate) fn print_summary(report: &JobReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "job succeeded in {:.2}s: {} map tasks, {} reduce tasks",
        report.elapsed.as_secs_f64(),
        report.map_tasks,
        report.reduce_tasks
    )?;
    writeln!(out, "output: {} ({} files)", report.output.display(), report.files.len())?;
    writeln!(out, "counters:")?;
    for (name, value) in report.counters.engine.iter() {
        writeln!(out, "  {name:<24} {value:>14}")?;
    }
    if !report.counters.app.is_empty() {
        writeln!(out, "app counters:")?;
        for (name, value) in &report.counters.app {
            writeln!(out, "  {name:<24} {value:>14}")?;
        }
    }
    out.flush()
}
