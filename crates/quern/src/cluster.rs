//! The cluster commands: `coordinator`, `worker`, `submit`, `jobs`,
//! `status`, `kill`, `workers`, `logs`. Each builds its own tokio runtime;
//! `--coordinator` and `--token` also come from `QUERN_COORDINATOR` and
//! `QUERN_TOKEN`, and for the client commands from the login `quern login`
//! saved (`crate::login`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use quern_core::AppRegistry;
use quern_proto as pb;
use serde_json::json;

use crate::cli::JobArgs;

/// An exit status chosen by a cluster command (for example 2 when the
/// coordinator refused a submission).
#[derive(Debug)]
pub(crate) struct ExitStatus(pub(crate) u8);

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for ExitStatus {}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("not a duration like 10s or 500ms: {e}"))
}

#[derive(Args)]
pub(crate) struct ConnectArgs {
    /// The coordinator, as http://host:port.
    #[arg(long, env = "QUERN_COORDINATOR", default_value = crate::login::DEFAULT_COORDINATOR)]
    coordinator: String,
    /// The cluster token (not empty).
    #[arg(long, env = "QUERN_TOKEN", hide_env_values = true, value_parser = crate::cli::parse_token)]
    token: String,
}

/// What a client command (`submit`, `jobs`, …) needs to reach the
/// coordinator: where it is, the token, and how long to wait for it.
#[derive(Args)]
pub(crate) struct ClientArgs {
    /// The coordinator, as http://host:port. Default: the one `quern
    /// login` saved, or http://127.0.0.1:7070.
    #[arg(long, env = "QUERN_COORDINATOR")]
    coordinator: Option<String>,
    /// The cluster token (an admin's rights). Default: the user's token
    /// `quern login` saved.
    #[arg(long, env = "QUERN_TOKEN", hide_env_values = true, value_parser = crate::cli::parse_token)]
    token: Option<String>,
    /// How long to wait for the coordinator to connect and answer, per call.
    #[arg(long, env = "QUERN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

#[cfg(feature = "coordinator")]
#[derive(Args)]
pub(crate) struct CoordinatorArgs {
    /// Address to listen on (port 0: any free port; see --address-file).
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Once listening, write the address actually bound (like
    /// 127.0.0.1:41234, and a newline) to this file, atomically (a
    /// temporary file renamed into place): how a script or test that asked
    /// for port 0 learns the port, without a race.
    #[arg(long, value_name = "PATH")]
    address_file: Option<PathBuf>,
    /// Directory for the coordinator's own files (the default state database).
    #[arg(long, default_value = ".")]
    data_dir: PathBuf,
    /// Where the coordinator keeps its state: sqlite://PATH or
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (PostgreSQL, for
    /// shared deployments). Default: sqlite://DATA_DIR/quern.db.
    #[arg(long, env = "QUERN_STATE", hide_env_values = true)]
    state: Option<String>,
    /// The cluster token workers and clients must present (not empty).
    #[arg(long, env = "QUERN_TOKEN", hide_env_values = true, value_parser = crate::cli::parse_token)]
    token: String,
    /// A worker without a heartbeat this long is lost.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    worker_timeout: Duration,
    /// An attempt without progress this long has hung and is retried.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    task_timeout: Duration,
    /// How often workers heartbeat.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    heartbeat: Duration,
    /// Do not launch backup attempts for stragglers.
    #[arg(long)]
    no_speculation: bool,
    /// A job stops using a worker on which attempts of this many of its
    /// tasks failed (while another worker can run it).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    blacklist_task_failures: u32,
    /// A worker that this many jobs stopped using is excluded from every
    /// job for --blacklist-expiry (while another worker can run them).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    blacklist_jobs: u32,
    /// How long a failed attempt counts against its worker, and how long a
    /// worker stays excluded from the cluster.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    blacklist_expiry: Duration,
    /// How long the intermediate data of an ended job (its map outputs on
    /// the workers) is kept, for inspection, before the workers delete it
    /// (0s: at once).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    retention: Duration,
    /// How the coordinator reaches S3 for `s3://` outputs (it claims,
    /// commits and cleans them up): the `AWS_*` variables, and this.
    #[command(flatten)]
    s3: crate::cli::S3Args,
    /// Also serve the REST API (`/api/v1`, with its OpenAPI document at
    /// `/api/v1/openapi.json`) on this address (port 0: any free port; see
    /// --http-address-file). Callers present the cluster token.
    #[arg(long, value_name = "ADDRESS")]
    http: Option<SocketAddr>,
    /// Once the REST API listens, write the address it bound to this file
    /// (like --address-file).
    #[arg(long, value_name = "PATH", requires = "http")]
    http_address_file: Option<PathBuf>,
    /// How long a REST API login's token is valid.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    token_lifetime: Duration,
    /// The key that signs REST API tokens (at least 32 bytes). Default:
    /// DATA_DIR/api-signing.key, created with a random key if missing.
    #[arg(long, value_name = "PATH")]
    signing_key: Option<PathBuf>,
    /// Where the REST API keeps uploaded files (FILES/uploads/USER/…) and
    /// the outputs a job names relatively (FILES/outputs/NAME): a directory
    /// the workers share, or an s3:// prefix. Default: DATA_DIR/files.
    #[arg(long, value_name = "LOCATION")]
    files: Option<String>,
    /// The most bytes one upload request may carry (413 beyond).
    #[arg(long, default_value = "1GiB", value_parser = crate::cli::parse_size)]
    max_upload: u64,
    #[command(flatten)]
    launch: crate::launcher::LauncherArgs,
}

/// `coordinator`'s arguments in a build without it: anything, so that the
/// answer is [`NO_COORDINATOR`] rather than a complaint about an argument.
#[cfg(not(feature = "coordinator"))]
#[derive(Args)]
#[command(disable_help_flag = true)]
pub(crate) struct NoCoordinatorArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<std::ffi::OsString>,
}

/// What `coordinator` says in a build without it (an app's own binary,
/// built from `quern` without its `coordinator` feature). Compiled in
/// every build, so that its test runs where CI builds the coordinator.
#[cfg_attr(feature = "coordinator", allow(dead_code))]
pub(crate) const NO_COORDINATOR: &str = concat!(
    "this program was built without quern's coordinator (the `coordinator` feature of the quern crate, ",
    "which brings its state stores: sqlx, SQLite, PostgreSQL). The coordinator runs no app code, so the `quern` ",
    "binary of the same version (",
    env!("CARGO_PKG_VERSION"),
    ") serves as this program's coordinator: `cargo install quern --version ",
    env!("CARGO_PKG_VERSION"),
    "`, or `cargo run -p quern -- coordinator …` in quern's repository. Or build this program with it: ",
    "`quern = { version = \"",
    env!("CARGO_PKG_VERSION"),
    "\", features = [\"coordinator\"] }` in its Cargo.toml. This program's `worker`, `submit` and other ",
    "commands work with either."
);

#[derive(Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Attempts run at once.
    #[arg(long, default_value_t = 2)]
    slots: u32,
    /// Scratch directory: map outputs, fetched segments, attempt logs.
    #[arg(long)]
    work_dir: PathBuf,
    /// Address of this worker's shuffle service (port 0: any free port). The
    /// port actually bound is the one the worker advertises to the
    /// coordinator (`quern workers` shows it) and logs.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Host name other workers reach this one by.
    #[arg(long)]
    advertise: Option<String>,
    /// This worker's id (default: host, process id, start time).
    #[arg(long)]
    id: Option<String>,
    /// Exit when the coordinator has been unreachable this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    coordinator_timeout: Duration,
    /// On SIGTERM, how long running attempts may take to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// With a free slot, how often to ask for work anyway. The coordinator
    /// nudges workers the moment work may be waiting; this is the fallback
    /// while the nudge stream is down.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    poll_interval: Duration,
    /// Offer the `streaming` app, whose jobs run commands of the
    /// submitter's choosing on this machine as this worker's user. Without
    /// it, the coordinator sends this worker no streaming job.
    #[arg(long)]
    allow_exec: bool,
    /// How attempts and planning reach S3 for `s3://` inputs and outputs:
    /// the `AWS_*` variables, and this.
    #[command(flatten)]
    s3: crate::cli::S3Args,
}

#[derive(Args)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    job: JobArgs,
    /// Higher-priority jobs get free slots first.
    #[arg(long, default_value_t = 0)]
    priority: i32,
    /// Follow the job until it ends; exit 0 only if it succeeded.
    #[arg(long)]
    wait: bool,
    /// With --wait: how long to keep retrying while the coordinator does
    /// not answer (it may be restarting) before giving up.
    #[arg(long, default_value = "2m", value_parser = parse_duration, requires = "wait")]
    wait_retry: Duration,
}

#[derive(Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ResumeArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The chain's id (its first job's), or any of its jobs' ids.
    job: u64,
    /// Follow the chain until it ends; exit 0 only if it succeeded.
    #[arg(long)]
    wait: bool,
}

#[derive(Args)]
pub(crate) struct JobRefArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The job id.
    job: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct LogsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The job id.
    job: u64,
    /// Only this task's attempts (m-00003, r-1, …).
    #[arg(long)]
    task: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

type Client = pb::coordinator_client::CoordinatorClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, pb::TokenAttach>,
>;

/// Why a call to the coordinator got no answer, or what the answer was.
#[derive(Debug)]
enum CallError {
    /// No connection could be made in time: the request was not sent.
    Connect(Option<String>),
    /// No answer within the deadline: the request may have been served.
    TimedOut,
    /// The connection broke before the answer: the request may have been
    /// served.
    Broken(String),
    /// The coordinator answered with an error.
    Answered(tonic::Status),
}

impl CallError {
    /// A failed call or stream as the coordinator's error, or as the
    /// transport's when no answer came.
    fn from_status(s: tonic::Status) -> CallError {
        if !from_transport(&s) {
            return CallError::Answered(s);
        }
        // The channel reconnects by itself after a broken connection, and
        // that can fail like a first connection.
        if source_chain(&s).any(|e| e.is::<tonic::ConnectError>()) {
            return CallError::Connect(Some(causes(&s)));
        }
        CallError::Broken(causes(&s))
    }

    /// The coordinator did not answer (it is down, frozen, restarting or
    /// unreachable); trying again later may work.
    fn no_answer(&self) -> bool {
        !matches!(self, CallError::Answered(_))
    }

    /// Whether the coordinator may have received and served the request.
    fn maybe_served(&self) -> bool {
        !matches!(self, CallError::Connect(_))
    }
}

/// An error and its sources, outermost first.
fn source_chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// An error and its sources as one line, without repeats.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in source_chain(e) {
        // A status displays all its fields; its message is the part for people.
        let text = e.downcast_ref::<tonic::Status>().map_or_else(|| e.to_string(), |s| s.message().to_owned());
        // tonic's wrapper says nothing its sources do not.
        if !text.is_empty() && text != "transport error" && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Whether a failed call's status was made on this side because the
/// transport failed (no connection, connection broken, cancelled), not
/// sent by the coordinator. The coordinator never answers with these codes,
/// and a status that came over the wire has no source error.
fn from_transport(s: &tonic::Status) -> bool {
    matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded)
        || std::error::Error::source(s).is_some()
}

/// One client command's line to the coordinator: connects on first use,
/// bounds the connection and each call by `timeout`, reconnects after a
/// call that got no answer, and says which coordinator did not answer
/// which call within how long.
pub(crate) struct CoordinatorConnection {
    address: String,
    endpoint: tonic::transport::Endpoint,
    token: pb::TokenAttach,
    timeout: Duration,
    client: Option<Client>,
}

impl CoordinatorConnection {
    pub(crate) fn new(args: &ClientArgs) -> anyhow::Result<CoordinatorConnection> {
        let credentials = crate::login::Credentials::resolve(args.coordinator.clone(), args.token.clone())?;
        let address = credentials.coordinator;
        let token = pb::TokenAttach::new(&credentials.token).map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        let endpoint = tonic::transport::Endpoint::from_shared(address.clone())
            .with_context(|| format!("coordinator address {address}"))?;
        Ok(CoordinatorConnection { address, endpoint, token, timeout: args.timeout, client: None })
    }

    /// Makes one call (`f` given a client), connecting first if needed,
    /// all within `timeout`.
    async fn try_call<T, F, Fut>(&mut self, f: F) -> Result<T, CallError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let client = match &self.client {
            Some(client) => client.clone(),
            None => {
                let channel = match tokio::time::timeout_at(deadline, self.endpoint.connect()).await {
                    Err(_elapsed) => return Err(CallError::Connect(None)),
                    Ok(Err(e)) => return Err(CallError::Connect(Some(causes(&e)))),
                    Ok(Ok(channel)) => channel,
                };
                let client = pb::coordinator_client::CoordinatorClient::with_interceptor(channel, self.token.clone())
                    .max_decoding_message_size(pb::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(pb::MAX_MESSAGE_BYTES);
                self.client = Some(client.clone());
                client
            }
        };
        let result = match tokio::time::timeout_at(deadline, f(client)).await {
            Err(_elapsed) => Err(CallError::TimedOut),
            Ok(Ok(response)) => return Ok(response.into_inner()),
            Ok(Err(s)) => match CallError::from_status(s) {
                e @ CallError::Answered(_) => return Err(e),
                e => Err(e),
            },
        };
        self.forget_connection();
        result
    }

    /// A connected client, for calls that stream.
    pub(crate) async fn client(&mut self) -> anyhow::Result<Client> {
        if self.client.is_none() {
            let channel = tokio::time::timeout(self.timeout, self.endpoint.connect())
                .await
                .map_err(|_| anyhow::anyhow!("could not connect to the coordinator at {}", self.address))?
                .with_context(|| format!("connecting to the coordinator at {}", self.address))?;
            let client = pb::coordinator_client::CoordinatorClient::with_interceptor(channel, self.token.clone())
                .max_decoding_message_size(pb::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(pb::MAX_MESSAGE_BYTES);
            self.client = Some(client);
        }
        self.client.clone().ok_or_else(|| anyhow::anyhow!("no connection to the coordinator"))
    }

    /// Starts afresh at the next call rather than wait on a connection
    /// that may be dead.
    fn forget_connection(&mut self) {
        self.client = None;
    }

    /// Like `try_call`, with the failure explained for `call` (the
    /// command's name).
    pub(crate) async fn call<T, F, Fut>(&mut self, call: &str, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.try_call(f).await.map_err(|e| self.error(call, e))
    }

    /// What went wrong with `call` (the command's name), for a person:
    /// which coordinator, which call, how long.
    fn describe(&self, call: &str, e: &CallError) -> String {
        let within = humantime::format_duration(self.timeout);
        let address = &self.address;
        match e {
            CallError::Answered(s) => s.message().to_owned(),
            CallError::Connect(None) => {
                format!("could not connect to the coordinator at {address} for `{call}` within {within}")
            }
            CallError::Connect(Some(cause)) => {
                format!("could not connect to the coordinator at {address} for `{call}`: {cause}")
            }
            CallError::TimedOut => format!("the coordinator at {address} did not answer `{call}` within {within}"),
            CallError::Broken(cause) => format!("the coordinator at {address} did not answer `{call}`: {cause}"),
        }
    }

    /// `describe`, as the error a command ends with: a refused request
    /// exits 2 (it was wrong), everything else 1.
    fn error(&self, call: &str, e: CallError) -> anyhow::Error {
        match e {
            CallError::Answered(s) if refusal(&s) => anyhow::Error::new(ExitStatus(2)).context(s.message().to_owned()),
            // Not the coordinator's own words: say who answered.
            CallError::Answered(s) if s.code() == tonic::Code::Unknown => anyhow::anyhow!(
                "the server at {} answered `{call}` with: {}; is it a quern coordinator?",
                self.address,
                s.message()
            ),
            CallError::Answered(s) => {
                anyhow::anyhow!("the coordinator at {} could not serve `{call}`: {}", self.address, s.message())
            }
            e => anyhow::anyhow!("{}; is it running and reachable?", self.describe(call, &e)),
        }
    }
}

/// Whether the coordinator refused the request as wrong (bad request,
/// unknown app, existing output, no such job).
fn refusal(s: &tonic::Status) -> bool {
    matches!(s.code(), tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition | tonic::Code::NotFound)
}

#[cfg(feature = "coordinator")]
pub(crate) fn coordinator(args: CoordinatorArgs) -> anyhow::Result<()> {
    let state = args.state.unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("quern.db").display()));
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let shown = quern_coordinator::store::redact(&state);
    let key_path = args.signing_key.clone().unwrap_or_else(|| args.data_dir.join("api-signing.key"));
    let token = args.token.clone();
    let config = quern_coordinator::CoordinatorConfig {
        state_url: state,
        token: args.token,
        policy: quern_coordinator::Policy {
            worker_timeout_ms: args.worker_timeout.as_millis() as i64,
            task_timeout_ms: args.task_timeout.as_millis() as i64,
            speculation: !args.no_speculation,
            blacklist_task_failures: args.blacklist_task_failures,
            blacklist_jobs: args.blacklist_jobs,
            blacklist_expiry_ms: args.blacklist_expiry.as_millis() as i64,
            retention_ms: args.retention.as_millis() as i64,
        },
        heartbeat_interval: args.heartbeat,
        storage: args.s3.storage(),
        signing_key: crate::users::signing_key(&key_path)?,
        token_lifetime: args.token_lifetime,
        code: None,
    };
    let data_dir = std::path::absolute(&args.data_dir)
        .with_context(|| format!("resolving --data-dir {}", args.data_dir.display()))?;
    let files_root = args.files.clone().unwrap_or_else(|| data_dir.join("files").display().to_string());
    let files = quern_api::FileArea::new(&files_root, data_dir.join("tmp").join("uploads"), args.max_upload)
        .with_context(|| format!("--files {files_root}"))?;
    // Code files jobs ship live beside the uploads, by hash.
    let code_root = quern_storage::Location::parse(&files_root)
        .map(|root| root.join("code").to_string())
        .with_context(|| format!("--files {files_root}"))?;
    let code = quern_coordinator::CodeStore::new(
        args.s3.storage(),
        &code_root,
        data_dir.join("tmp").join("code"),
        args.max_upload,
    )
    .with_context(|| format!("--files {files_root}"))?;
    let config = quern_coordinator::CoordinatorConfig { code: Some(code), ..config };
    runtime()?.block_on(async move {
        let coordinator =
            quern_coordinator::Coordinator::open(config).await.with_context(|| format!("opening {shown}"))?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let bound = listener.local_addr().with_context(|| format!("reading the address bound for {}", args.listen))?;
        // One signal stops both servers.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let http = match args.http {
            None => None,
            Some(address) => {
                let http = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("listening on --http {address}"))?;
                let http_bound =
                    http.local_addr().with_context(|| format!("reading the address bound for {address}"))?;
                if let Some(path) = &args.http_address_file {
                    write_address_file("--http-address-file", path, http_bound)?;
                }
                tracing::info!(http = %http_bound, "REST API listening");
                let router = quern_api::router(coordinator.handle(), coordinator.access(), files.clone());
                Some(tokio::spawn(quern_api::serve(http, router, until_stopped(stopped.clone()))))
            }
        };
        if let Some((launcher, policy)) = args.launch.launcher(bound, &data_dir, &token).await? {
            let (control, requests) = quern_coordinator::launch::LaunchControl::new(launcher.describe());
            coordinator.handle().set_launcher(control);
            let handle = coordinator.handle();
            tokio::spawn(quern_coordinator::launch::run_launcher(
                handle,
                launcher,
                policy,
                requests,
                until_stopped(stopped.clone()),
            ));
        }
        if let Some(path) = &args.address_file {
            write_address_file("--address-file", path, bound)?;
        }
        tracing::info!(listen = %bound, state = %shown, "coordinator ready");
        coordinator.serve(listener, until_stopped(stopped)).await?;
        if let Some(http) = http {
            http.await.context("the REST API server")?.context("serving the REST API")?;
        }
        tracing::info!("coordinator stopped");
        Ok(())
    })
}

/// Writes `address` and a newline to `path` atomically: into a temporary
/// file beside it, then renamed over it, so a reader sees no file or the
/// whole address, never a part of it.
#[cfg(feature = "coordinator")]
fn write_address_file(flag: &str, path: &Path, address: SocketAddr) -> anyhow::Result<()> {
    let name = path.file_name().with_context(|| format!("{flag} {}: not a file name", path.display()))?;
    let mut temporary = name.to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary);
    std::fs::write(&temporary, format!("{address}\n"))
        .and_then(|()| std::fs::rename(&temporary, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
        .with_context(|| format!("writing the address to {flag} {}", path.display()))
}

pub(crate) fn worker(args: WorkerArgs, apps: &AppRegistry) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this program, to start attempts with")?;
    let config = quern_worker::WorkerConfig {
        coordinator: args.connect.coordinator,
        token: args.connect.token,
        slots: args.slots.max(1),
        work_dir: args.work_dir,
        listen: args.listen,
        advertise_host: args.advertise,
        worker_id: args.id,
        apps: apps.apps().filter(|a| args.allow_exec || a.name != quern_streaming::APP).cloned().collect(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        coordinator_timeout: args.coordinator_timeout,
        drain_timeout: args.drain_timeout,
        poll_interval: args.poll_interval,
        task_command: [vec![exe.clone().into_os_string(), "task".into()], args.s3.to_args()].concat(),
        plan_command: [vec![exe.into_os_string(), "plan".into()], args.s3.to_args()].concat(),
        storage: args.s3.storage(),
    };
    runtime()?.block_on(async move {
        match quern_worker::run(config, shutdown_signal()).await {
            // The coordinator went away for good: the end of this worker's
            // job, not a failure of it.
            Err(e @ quern_worker::Error::CoordinatorGone(_)) => tracing::warn!("{e}"),
            other => other?,
        }
        tracing::info!("worker stopped");
        Ok(())
    })
}

fn absolute(p: &str) -> anyhow::Result<String> {
    Ok(std::path::absolute(Path::new(p)).with_context(|| format!("resolving {p}"))?.display().to_string())
}

/// The planning process a worker starts for the coordinator: reads a
/// `JobSpec` (JSON) on stdin, builds its app from the parameters, plans it,
/// and writes one `PlanOutcome` (JSON) on stdout.
pub(crate) fn plan_process(
    apps: &AppRegistry,
    storage: &quern_storage::Storage,
    code_dir: Option<&Path>,
) -> anyhow::Result<()> {
    use std::io::Read;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("reading the spec on stdin")?;
    let spec: quern_core::JobSpec = serde_json::from_str(&input).context("the spec on stdin")?;
    let outcome = match apps.build(&spec.app, &spec.params) {
        Ok(app) => {
            let code = quern_engine::JobCode { files: &spec.code, dir: code_dir };
            quern_engine::PlanOutcome::of(quern_engine::plan_job(&spec, &*app, storage, code))
        }
        Err(e) => quern_engine::PlanOutcome::Refused(e.to_string()),
    };
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

/// Submits a job as its spec alone: a worker that has the app plans it, so
/// this client needs neither the app nor the inputs (only a spec's local
/// paths are made absolute, since the cluster resolves them elsewhere).
pub(crate) fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    if let Some(file) = args.job.job.clone() {
        return submit_chain(args, &file);
    }
    let (mut spec, shipped) = args.job.into_spec()?;
    // Workers and the coordinator resolve paths from their own directories:
    // send absolute local paths (URLs are sent as they are).
    absolute_locations(std::iter::once(&mut spec.output).chain(spec.inputs.iter_mut()).chain(spec.shuffle.as_mut()))?;
    spec.validate()?;
    let request = pb::SubmitJobRequest { spec_json: serde_json::to_string(&spec)?, priority: args.priority };
    let mut coordinator = CoordinatorConnection::new(&args.client)?;
    runtime()?.block_on(async move {
        upload_code(&mut coordinator, &shipped).await?;
        // Never retried: a SubmitJob that got no answer may have created a
        // job, and a second one would create another.
        let submitted = coordinator.try_call(|mut c| async move { c.submit_job(request).await }).await;
        let streaming = spec.app == quern_streaming::APP;
        let id = match submitted {
            Ok(response) => response.job_id,
            Err(CallError::Answered(s)) if streaming && s.message().contains("no worker offers") => {
                let hint = "a worker offers streaming jobs only when started with `quern worker --allow-exec`";
                return Err(anyhow::Error::new(ExitStatus(2)).context(format!("{}; {hint}", s.message())));
            }
            Err(e @ CallError::Answered(_)) => return Err(coordinator.error("submit", e)),
            Err(e) => {
                let note = if e.maybe_served() {
                    "The job may still have been created: see `quern jobs` before submitting again."
                } else {
                    "No job was created."
                };
                bail!("{}; is it running and reachable? {note}", coordinator.describe("submit", &e));
            }
        };
        println!("{id}");
        if !args.wait {
            return Ok(());
        }
        follow(&mut coordinator, id, args.wait_retry).await
    })
}

/// Makes each local path among `locations` absolute (workers and the
/// coordinator resolve paths from their own directories); URLs stay as
/// they are.
fn absolute_locations<'a>(locations: impl Iterator<Item = &'a mut String>) -> anyhow::Result<()> {
    for location in locations {
        let parsed = quern_storage::Location::parse(location).map_err(quern_engine::Error::from)?;
        if let Some(path) = parsed.as_local() {
            *location = absolute(&path.display().to_string())?;
        }
    }
    Ok(())
}

/// `submit --job FILE`: the chain's local paths made absolute, submitted
/// whole; the coordinator submits each step when the one before succeeds.
fn submit_chain(args: SubmitArgs, file: &Path) -> anyhow::Result<()> {
    let (mut chain, shipped) = crate::shipped::read_job_file(file)?;
    absolute_locations(chain.inputs.iter_mut().chain([&mut chain.output]).chain(chain.shuffle.as_mut()))?;
    chain.validate()?;
    let request = pb::SubmitChainRequest { chain_json: serde_json::to_string(&chain)?, priority: args.priority };
    let mut coordinator = CoordinatorConnection::new(&args.client)?;
    runtime()?.block_on(async move {
        upload_code(&mut coordinator, &shipped).await?;
        // Never retried, as a job's submission.
        let id = match coordinator.try_call(|mut c| async move { c.submit_chain(request).await }).await {
            Ok(response) => response.job_id,
            Err(e @ CallError::Answered(_)) => return Err(coordinator.error("submit", e)),
            Err(e) => bail!("{}; see `quern jobs` before submitting again", coordinator.describe("submit", &e)),
        };
        println!("{id}");
        if args.wait { follow_chain(&mut coordinator, id).await } else { Ok(()) }
    })
}

/// `resume ID`: the failed chain again from its failed step.
pub(crate) fn resume(args: ResumeArgs) -> anyhow::Result<()> {
    let mut coordinator = CoordinatorConnection::new(&args.client)?;
    runtime()?.block_on(async move {
        let request = pb::GetChainRequest { job_id: args.job };
        let chain = coordinator.call("resume", |mut c| async move { c.resume_chain(request).await }).await?;
        let step = chain.step_jobs.iter().rposition(|&j| j != 0).unwrap_or(0);
        println!("chain {} resumed at step {} (job {})", chain.chain_id, step + 1, chain.step_jobs[step]);
        if args.wait { follow_chain(&mut coordinator, chain.chain_id).await } else { Ok(()) }
    })
}

/// Follows a chain until it ends, saying when each step's job starts.
async fn follow_chain(coordinator: &mut CoordinatorConnection, id: u64) -> anyhow::Result<()> {
    let mut seen = Vec::new();
    loop {
        let request = pb::GetChainRequest { job_id: id };
        let chain = coordinator.call("submit", |mut c| async move { c.get_chain(request).await }).await?;
        if chain.step_jobs != seen {
            for (i, job) in chain.step_jobs.iter().enumerate().filter(|(i, j)| **j != 0 && seen.get(*i) != Some(*j)) {
                tracing::warn!("chain {id}: step {}/{} is job {job}", i + 1, chain.step_jobs.len());
            }
            seen = chain.step_jobs.clone();
        }
        match chain.state.as_str() {
            "succeeded" => {
                tracing::warn!("chain {id} succeeded");
                return Ok(());
            }
            "failed" => bail!("chain {id} failed: {}; resume it with `quern resume {id}`", chain.error),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Uploads the job's code files the coordinator does not have yet.
async fn upload_code(
    coordinator: &mut CoordinatorConnection,
    files: &[crate::shipped::LocalCode],
) -> anyhow::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let sha256 = files.iter().map(|f| f.hash.to_string()).collect();
    let missing = coordinator
        .call("submit", |mut c| async move { c.missing_code(pb::MissingCodeRequest { sha256 }).await })
        .await?;
    for file in files.iter().filter(|f| missing.sha256.contains(&f.hash.to_string())) {
        let chunks = crate::shipped::upload_chunks(file)?;
        let stored = coordinator
            .call("submit", |mut c| async move { c.put_code(tokio_stream::iter(chunks)).await })
            .await
            .with_context(|| format!("uploading {}", file.path.display()))?;
        tracing::info!(file = %file.path.display(), sha256 = stored.sha256, bytes = stored.size, "code file uploaded");
    }
    Ok(())
}

/// Waits before the next try while the coordinator does not answer:
/// 250 ms, doubling to 2 s.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Follows a job until it ends: a bar on a terminal, log lines otherwise.
/// While the coordinator does not answer (it may be restarting), retries
/// with backoff for up to `retry_for`, then gives up.
async fn follow(coordinator: &mut CoordinatorConnection, id: u64, retry_for: Duration) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(1);
        let style = indicatif::ProgressStyle::with_template("{prefix:>6} [{bar:30}] {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar
    });
    let say = |message: String| match &bar {
        Some(bar) => bar.suspend(|| tracing::warn!("{message}")),
        None => tracing::warn!("{message}"),
    };
    let mut last_line = String::new();
    // Since when the coordinator has not answered, and the next wait.
    let mut outage: Option<(std::time::Instant, Duration)> = None;
    // The job's status as it changes (`WatchJob`), open while it works.
    let mut watch: Option<tonic::Streaming<pb::JobStatus>> = None;
    // The coordinator sends the status at least every 5 s: longer silence
    // is a connection that died without closing.
    let silence = coordinator.timeout + Duration::from_secs(5);
    loop {
        let next = match watch.as_mut() {
            None => {
                match coordinator
                    .try_call(|mut c| async move { c.watch_job(pb::GetJobRequest { job_id: id }).await })
                    .await
                {
                    Ok(stream) => {
                        watch = Some(stream);
                        continue;
                    }
                    Err(e) => Err(e),
                }
            }
            Some(stream) => match tokio::time::timeout(silence, stream.message()).await {
                Ok(Ok(Some(job))) => Ok(job),
                // It ends a watch before the job ends only when it stops.
                Ok(Ok(None)) => Err(CallError::Broken("the coordinator is stopping".into())),
                Ok(Err(s)) => Err(CallError::from_status(s)),
                Err(_elapsed) => Err(CallError::TimedOut),
            },
        };
        let job = match next {
            Ok(job) => job,
            Err(e) if e.no_answer() => {
                watch = None;
                coordinator.forget_connection();
                let (since, wait) = outage.get_or_insert_with(|| {
                    say(format!(
                        "{}; retrying for up to {} (--wait-retry)",
                        coordinator.describe("status", &e),
                        humantime::format_duration(retry_for)
                    ));
                    (std::time::Instant::now(), RETRY_FIRST)
                });
                let left = retry_for.saturating_sub(since.elapsed());
                if left.is_zero() {
                    bail!(
                        "gave up following job {id} after {} of retries (--wait-retry): {}; is it running and \
                         reachable? The job may still be running: see `quern status {id}` once it is back.",
                        humantime::format_duration(retry_for),
                        coordinator.describe("status", &e)
                    );
                }
                let pause = (*wait).min(left);
                *wait = (*wait * 2).min(RETRY_MAX);
                tokio::time::sleep(pause).await;
                continue;
            }
            Err(e) => return Err(coordinator.error("status", e)),
        };
        if let Some((since, _)) = outage.take() {
            say(format!(
                "the coordinator at {} answers again after {:.1}s; following job {id}",
                coordinator.address,
                since.elapsed().as_secs_f64()
            ));
        }
        let maps = job.maps.unwrap_or_default();
        let reduces = job.reduces.unwrap_or_default();
        let (prefix, counts) = if job.phase == "reduce" { ("reduce", reduces) } else { ("map", maps) };
        let line = format!("{}/{} tasks, {} running", counts.succeeded, counts.total, counts.running);
        match &bar {
            Some(bar) => {
                bar.set_message(line.clone());
                bar.set_length(u64::from(counts.total.max(1)));
                bar.set_position(u64::from(counts.succeeded));
                bar.set_prefix(prefix);
            }
            None if line != last_line => tracing::info!("job {id}: {prefix} {line}"),
            None => {}
        }
        last_line = line;
        if matches!(job.state.as_str(), "succeeded" | "failed" | "killed") {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            print_status(&job);
            if job.state == "succeeded" {
                return Ok(());
            }
            return Err(anyhow::Error::new(ExitStatus(1)).context(format!("job {id} {}: {}", job.state, job.error)));
        }
    }
}

fn when(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

fn elapsed(job: &pb::JobStatus) -> String {
    if job.started_at_ms == 0 {
        return "-".into();
    }
    let end = if job.finished_at_ms > 0 { job.finished_at_ms } else { crate::cluster::now_ms() };
    format!("{:.1}s", (end - job.started_at_ms).max(0) as f64 / 1000.0)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn counts_json(c: Option<pb::PhaseCounts>) -> serde_json::Value {
    let c = c.unwrap_or_default();
    json!({ "total": c.total, "pending": c.pending, "running": c.running, "succeeded": c.succeeded, "failed": c.failed })
}

fn job_json(job: &pb::JobStatus) -> serde_json::Value {
    json!({
        "id": job.job_id,
        "app": job.app,
        "owner": job.owner,
        "output": job.output,
        "state": job.state,
        "phase": job.phase,
        "error": job.error,
        "priority": job.priority,
        "maps": counts_json(job.maps),
        "reduces": counts_json(job.reduces),
        "counters": serde_json::from_str::<serde_json::Value>(&job.counters_json).unwrap_or_default(),
        "input_bytes": job.input_bytes,
        "code": job.code,
        "submitted_at_ms": job.submitted_at_ms,
        "started_at_ms": job.started_at_ms,
        "finished_at_ms": job.finished_at_ms,
        "running": job.running.iter().map(|r| json!({
            "attempt": r.attempt.as_ref().map(attempt_name).unwrap_or_default(),
            "worker": r.worker_id,
            "fraction": r.fraction,
            "records": r.records,
            "started_at_ms": r.started_at_ms,
        })).collect::<Vec<_>>(),
        "events": job.events.iter().map(|e| json!({
            "at_ms": e.at_ms, "reason": e.reason, "message": e.message,
        })).collect::<Vec<_>>(),
    })
}

/// `m-00003#2` for an attempt.
fn attempt_name(r: &pb::AttemptRef) -> String {
    r.decode().map_or_else(|e| format!("(bad attempt: {e})"), |(_, a)| a.to_string())
}

fn print_status(job: &pb::JobStatus) {
    let line = |name: &str, c: Option<pb::PhaseCounts>| {
        let c = c.unwrap_or_default();
        println!(
            "  {name:<8} {}/{} succeeded, {} running, {} pending, {} failed",
            c.succeeded, c.total, c.running, c.pending, c.failed
        );
    };
    println!("job {}: {} ({}), app {}, priority {}", job.job_id, job.state, job.phase, job.app, job.priority);
    if !job.owner.is_empty() {
        println!("  owner    {}", job.owner);
    }
    println!("  output   {}", job.output);
    if !job.error.is_empty() {
        println!("  error    {}", job.error);
    }
    line("maps", job.maps);
    line("reduces", job.reduces);
    for r in &job.running {
        let name = r.attempt.as_ref().map(attempt_name).unwrap_or_default();
        println!("    {name:<12} {:>5.1}%  {:>10} records  on {}", r.fraction * 100.0, r.records, r.worker_id);
    }
    println!(
        "  submitted {}  started {}  finished {}  elapsed {}",
        when(job.submitted_at_ms),
        when(job.started_at_ms),
        when(job.finished_at_ms),
        elapsed(job)
    );
    if !job.events.is_empty() {
        println!("  events:");
        for e in &job.events {
            println!("    {}  {:<18} {}", when(e.at_ms), e.reason, e.message);
        }
    }
    if let Ok(counters) = serde_json::from_str::<quern_core::Counters>(&job.counters_json) {
        println!("  counters:");
        for (name, value) in counters.engine.iter() {
            println!("    {name:<24} {value:>14}");
        }
        for (name, value) in &counters.app {
            println!("    {name:<24} {value:>14}");
        }
    }
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(crate) fn jobs(args: ListArgs) -> anyhow::Result<()> {
    let mut coordinator = CoordinatorConnection::new(&args.client)?;
    runtime()?.block_on(async move {
        let jobs =
            coordinator.call("jobs", |mut c| async move { c.list_jobs(pb::ListJobsRequest {}).await }).await?.jobs;
        if args.json {
            return print_json(&serde_json::Value::Array(jobs.iter().map(job_json).collect()));
        }
        println!(
            "{:>5}  {:<9}  {:<6}  {:<14}  {:<10}  {:>11}  {:>11}  {:>8}  OUTPUT",
            "ID", "STATE", "PHASE", "APP", "OWNER", "MAPS", "REDUCES", "ELAPSED"
        );
        for j in &jobs {
            let c = |p: Option<pb::PhaseCounts>| {
                let p = p.unwrap_or_default();
                format!("{}/{}", p.succeeded, p.total)
            };
            println!(
                "{:>5}  {:<9}  {:<6}  {:<14}  {:<10}  {:>11}  {:>11}  {:>8}  {}",
                j.job_id,
                j.state,
                j.phase,
                j.app,
                if j.owner.is_empty() { "-" } else { &j.owner },
                c(j.maps),
                c(j.reduces),
                elapsed(j),
                j.output
            );
        }
        Ok(())
    })
}

pub(crate) fn status(args: JobRefArgs) -> anyhow::Result<()> {
    let mut coordinator = CoordinatorConnection::new(&args.client)?;
    runtime()?.block_on(async move {
        let request = pb::GetJobRequest { job_id: args.job };
        let job = coordinator.call("status", |mut c| async move { c.get_job(request).await }).await?;
        if args.json {
            return print_json(&job_json(&job));
        }
        print_status(&job);
        Ok(())
    })
}

pub(crate) fn kill(args: JobRefArgs) -> anyhow::Result<()> {
    let mut coordinator = CoordinatorConnection::new(&args.client)?;
    runtime()?.block_on(async move {
        let request = pb::KillJobRequest { job_id: args.job };
        let killed = coordinator.call("kill", |mut c| async move { c.kill_job(request).await }).await?.killed;
        if args.json {
            return print_json(&json!({ "id": args.job, "killed": killed }));
        }
        if killed {
            println!("job {} killed", args.job);
            Ok(())
        } else {
            bail!("job {} had already ended", args.job)
        }
    })
}

/// `quern workers`: the list, or an admin's `add` and `remove` on a
/// coordinator that launches workers.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct WorkersArgs {
    #[command(subcommand)]
    action: Option<WorkersAction>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(clap::Subcommand)]
enum WorkersAction {
    /// Launch workers now on a coordinator started with --launcher (pods
    /// or processes), kept until removed (admins; within --max-workers).
    Add {
        /// How many.
        #[arg(value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Drain a worker the coordinator launched and stop its pod or process
    /// (admins); its running attempts may finish within its grace period.
    Remove {
        /// The worker's id (`quern workers` lists them).
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub(crate) fn workers_command(args: WorkersArgs) -> anyhow::Result<()> {
    match args.action {
        None => workers(args.list),
        Some(WorkersAction::Add { count, client }) => {
            let mut coordinator = CoordinatorConnection::new(&client)?;
            runtime()?.block_on(async move {
                let request = pb::LaunchWorkersRequest { count };
                let ids = coordinator
                    .call("workers add", |mut c| async move { c.launch_workers(request).await })
                    .await?
                    .worker_ids;
                for id in &ids {
                    println!("{id}");
                }
                if (ids.len() as u32) < count {
                    eprintln!("launched {} of {count}: the coordinator's --max-workers was reached", ids.len());
                }
                Ok(())
            })
        }
        Some(WorkersAction::Remove { id, client }) => {
            let mut coordinator = CoordinatorConnection::new(&client)?;
            runtime()?.block_on(async move {
                let request = pb::RemoveWorkerRequest { worker_id: id.clone() };
                coordinator.call("workers remove", |mut c| async move { c.remove_worker(request).await }).await?;
                println!("worker {id} drained and stopped");
                Ok(())
            })
        }
    }
}

pub(crate) fn workers(args: ListArgs) -> anyhow::Result<()> {
    let mut coordinator = CoordinatorConnection::new(&args.client)?;
    runtime()?.block_on(async move {
        let request = pb::ListWorkersRequest {};
        let workers = coordinator.call("workers", |mut c| async move { c.list_workers(request).await }).await?.workers;
        if args.json {
            let list = workers
                .iter()
                .map(|w| {
                    json!({
                        "id": w.worker_id, "host": w.host, "shuffle_address": w.shuffle_address,
                        "slots": w.slots, "running": w.running, "apps": w.apps, "version": w.version,
                        "state": w.state, "last_heartbeat_ms": w.last_heartbeat_ms,
                        "blacklisted_until_ms": w.blacklisted_until_ms, "excluded_by_jobs": w.excluded_by_jobs,
                    })
                })
                .collect();
            return print_json(&serde_json::Value::Array(list));
        }
        println!(
            "{:<36}  {:<11}  {:>5}  {:>7}  {:<20}  {:<20}  APPS",
            "ID", "STATE", "SLOTS", "RUNNING", "LAST HEARTBEAT", "EXCLUDED"
        );
        for w in &workers {
            // Why no job, or some jobs, use it: the cluster-wide blacklist
            // (until when), or the jobs whose tasks kept failing there.
            let excluded = if w.blacklisted_until_ms > 0 {
                format!("until {}", when(w.blacklisted_until_ms))
            } else if !w.excluded_by_jobs.is_empty() {
                let jobs: Vec<String> = w.excluded_by_jobs.iter().map(u64::to_string).collect();
                format!("by job {}", jobs.join(","))
            } else {
                "-".to_owned()
            };
            println!(
                "{:<36}  {:<11}  {:>5}  {:>7}  {:<20}  {:<20}  {}",
                w.worker_id,
                w.state,
                w.slots,
                w.running,
                when(w.last_heartbeat_ms),
                excluded,
                w.apps.join(",")
            );
        }
        Ok(())
    })
}

pub(crate) fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let mut coordinator = CoordinatorConnection::new(&args.client)?;
    runtime()?.block_on(async move {
        let request = pb::GetLogsRequest { job_id: args.job, task: args.task.unwrap_or_default() };
        let attempts = coordinator.call("logs", |mut c| async move { c.get_logs(request).await }).await?.attempts;
        let name = |a: &pb::AttemptLog| a.attempt.as_ref().map(attempt_name).unwrap_or_default();
        if args.json {
            let list = attempts
                .iter()
                .map(|a| {
                    json!({
                        "attempt": name(a), "worker": a.worker_id, "outcome": a.outcome, "error": a.error,
                        "log": String::from_utf8_lossy(&a.log), "started_at_ms": a.started_at_ms,
                        "finished_at_ms": a.finished_at_ms, "output_digest": a.output_digest,
                    })
                })
                .collect();
            return print_json(&serde_json::Value::Array(list));
        }
        for a in &attempts {
            let error = if a.error.is_empty() { String::new() } else { format!(": {}", a.error) };
            let digest =
                if a.output_digest.is_empty() { String::new() } else { format!(" (output {})", a.output_digest) };
            println!("== {} on {}: {}{digest}{error}", name(a), a.worker_id, a.outcome);
            let log = String::from_utf8_lossy(&a.log);
            if !log.trim().is_empty() {
                println!("{}", log.trim_end());
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod no_coordinator_tests {
    #[test]
    fn an_app_binary_without_the_coordinator_says_how_to_get_one() {
        let answer = super::NO_COORDINATOR;
        assert!(answer.contains(r#"features = ["coordinator"]"#), "{answer}");
        assert!(answer.contains(concat!("cargo install quern --version ", env!("CARGO_PKG_VERSION"))), "{answer}");
    }
}
