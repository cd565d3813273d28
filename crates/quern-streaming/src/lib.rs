//! Streaming apps: a job's mapper and reducer as executables in any
//! language, speaking Hadoop streaming's protocol over pipes.
//!
//! The `streaming` app ([`register`]) starts its mapper once per map
//! attempt, its combiner once per map spill and its reducer once per reduce
//! attempt (sessions: [`quern_core::MapSession`],
//! [`quern_core::CombineSession`], [`quern_core::ReduceSession`]), in the
//! attempt's working directory:
//!
//! - the mapper reads its split's lines on stdin, each followed by `\n`;
//! - the combiner (over a spill) and the reducer read `key<TAB>value`
//!   lines, sorted by key bytes, so that a key's values are adjacent;
//! - both write lines on stdout, each split at its first TAB into key and
//!   value (a line without a TAB is all key);
//! - without a reducer the job is map-only, unless it asks for reducers,
//!   which then write the sorted pairs as they are (the identity reduce);
//! - the environment adds what Hadoop streaming's scripts read (the split's
//!   file, the task and attempt ids, …) and the job's `cmdenv` pairs; the
//!   job's code files ([`quern_core::JobSpec::code`], `--file`) are in the
//!   working directory, where a program named like one of them is that
//!   file.
//!
//! A process that cannot be started, exits with a status other than 0, is
//! killed, or stops reading its input fails the attempt, with the tail of
//! its stderr in the error; the job's retries apply as to any app.
//!
//! ```
//! let mut apps = quern_core::AppRegistry::new();
//! quern_streaming::register(&mut apps);
//! let params = [("mapper".to_owned(), "tr -s ' ' '\\n'".to_owned())].into();
//! assert!(apps.build("streaming", &params).is_ok());
//! ```
//!
//! A command whose program is a `.wasm` file runs that module (a WASI
//! command) in quern's sandbox ([`quern_wasm`], feature `wasm`) instead of
//! as a process: same protocol, its other words as its arguments, the
//! streaming variables as its whole environment, no files and no network,
//! within a memory and a CPU time limit ([`WASM_MEMORY`],
//! [`WASM_CPU_TIME`]). The `wasm` app ([`WASM_APP`]) is the same app with
//! every command a module: workers run it without `--allow-exec`.
//!
//! # Invariants
//! - Depends on `quern-core`, and with the `wasm` feature on `quern-wasm`:
//!   the engine runs a streaming job as it runs any app, through the app
//!   API.
//! - A process lives no longer than its attempt: one dropped unfinished is
//!   killed.

mod command;
mod env;
mod process;

use std::sync::Arc;
use std::time::Duration;

use quern_core::{
    App, AppError, AppRegistry, AttemptInfo, CombineOutput, CombineSession, Combiner, MapContext, MapSession,
    OutputDecl, ParamSpec, Params, Record, ReduceContext, ReduceSession, SpecError, Values,
};

pub use command::{CommandError, CommandLine};

use crate::env::streaming_env;
use crate::process::{Output, Process};

/// The app's name in a registry.
pub const APP: &str = "streaming";
/// The parameter holding the mapper's command.
pub const MAPPER: &str = "mapper";
/// The parameter holding the combiner's command.
pub const COMBINER: &str = "combiner";
/// The parameter holding the reducer's command.
pub const REDUCER: &str = "reducer";
/// The parameter holding the `NAME=VALUE` pairs added to the environment,
/// one per line.
pub const CMDENV: &str = "cmdenv";
/// The name of the app whose commands are all WebAssembly modules, which
/// every worker runs (no `--allow-exec`); registered with the `wasm`
/// feature.
pub const WASM_APP: &str = "wasm";
/// The parameter holding a module's memory limit, in bytes.
pub const WASM_MEMORY: &str = "wasm_memory";
/// The parameter holding a module's CPU time limit, in seconds.
pub const WASM_CPU_TIME: &str = "wasm_cpu_time";
/// The default memory limit of a module: 256 MiB.
pub const DEFAULT_WASM_MEMORY: u64 = 256 << 20;
/// The default CPU time limit of one run of a module: 10 minutes.
pub const DEFAULT_WASM_CPU_TIME: Duration = Duration::from_secs(600);

/// Registers the `streaming` app, and with the `wasm` feature the `wasm`
/// app (the same, with every command a module).
pub fn register(apps: &mut AppRegistry) {
    apps.register(
        APP,
        "Hadoop streaming: the mapper and reducer are commands reading and writing TAB-separated lines",
        params(),
        |params| Ok(Arc::new(StreamingApp::from_params(params)?)),
    );
    #[cfg(feature = "wasm")]
    apps.register(
        WASM_APP,
        "streaming with WebAssembly modules (WASI commands) run in quern's sandbox: no files, no network",
        params(),
        |params| {
            let app = StreamingApp::from_params(params)?;
            if let Some((param, command)) = app.commands().find(|(_, c)| !is_wasm(c)) {
                return Err(SpecError::BadParam {
                    param: param.to_owned(),
                    message: format!("{command} is not a .wasm module: the wasm app runs modules only"),
                });
            }
            Ok(Arc::new(app))
        },
    );
}

fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::required(MAPPER, "the mapper's command, split into words as a shell would (no shell is run)"),
        ParamSpec::optional(COMBINER, "the combiner's command, run over each sorted map spill"),
        ParamSpec::optional(
            REDUCER,
            "the reducer's command; without it the job is map-only unless it asks for reducers",
        ),
        ParamSpec::optional(CMDENV, "NAME=VALUE pairs added to the commands' environment, one per line"),
        ParamSpec::optional(WASM_MEMORY, "a WebAssembly module's memory limit, in bytes (default 256 MiB)"),
        ParamSpec::optional(WASM_CPU_TIME, "a WebAssembly module's CPU time limit per run, in seconds (default 600)"),
    ]
}

/// Whether `command` runs a WebAssembly module: its program is a `.wasm`
/// file.
pub fn is_wasm(command: &CommandLine) -> bool {
    command.program().ends_with(".wasm")
}

/// A streaming job's code: commands, environment and module limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingApp {
    /// The mapper.
    pub mapper: CommandLine,
    /// The combiner, if any.
    pub combiner: Option<CommandLine>,
    /// The reducer, if any.
    pub reducer: Option<CommandLine>,
    /// Added to the commands' environment.
    pub cmdenv: Vec<(String, String)>,
    /// A module's memory limit, in bytes.
    pub wasm_memory: u64,
    /// A module's CPU time limit, per run.
    pub wasm_cpu_time: Duration,
}

impl StreamingApp {
    /// The app from its parameters ([`MAPPER`], [`COMBINER`], [`REDUCER`],
    /// [`CMDENV`], [`WASM_MEMORY`], [`WASM_CPU_TIME`]); an error names the
    /// parameter.
    pub fn from_params(params: &Params) -> Result<StreamingApp, SpecError> {
        let command = |name: &str, text: &str| {
            CommandLine::parse(text).map_err(|e| SpecError::BadParam { param: name.to_owned(), message: e.to_string() })
        };
        let mapper = command(MAPPER, params.require(MAPPER)?)?;
        let combiner = params.get(COMBINER).map(|text| command(COMBINER, text)).transpose()?;
        let reducer = params.get(REDUCER).map(|text| command(REDUCER, text)).transpose()?;
        let mut cmdenv = Vec::new();
        for pair in params.get(CMDENV).unwrap_or_default().lines().filter(|l| !l.is_empty()) {
            let Some((name, value)) = pair.split_once('=').filter(|(name, _)| !name.is_empty()) else {
                return Err(SpecError::BadParam {
                    param: CMDENV.to_owned(),
                    message: format!("{pair:?} is not NAME=VALUE"),
                });
            };
            cmdenv.push((name.to_owned(), value.to_owned()));
        }
        let wasm_memory = match params.get(WASM_MEMORY) {
            None => DEFAULT_WASM_MEMORY,
            Some(text) => text.trim().parse().ok().filter(|&n| n >= 1 << 16).ok_or_else(|| SpecError::BadParam {
                param: WASM_MEMORY.to_owned(),
                message: format!("{text:?} is not a number of bytes of at least 64 KiB"),
            })?,
        };
        let wasm_cpu_time = match params.get(WASM_CPU_TIME) {
            None => DEFAULT_WASM_CPU_TIME,
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| SpecError::BadParam {
                    param: WASM_CPU_TIME.to_owned(),
                    message: format!("{text:?} is not a positive number of seconds"),
                })?,
        };
        Ok(StreamingApp { mapper, combiner, reducer, cmdenv, wasm_memory, wasm_cpu_time })
    }

    /// The commands, each with the parameter that holds it.
    pub fn commands(&self) -> impl Iterator<Item = (&'static str, &CommandLine)> {
        [(MAPPER, Some(&self.mapper)), (COMBINER, self.combiner.as_ref()), (REDUCER, self.reducer.as_ref())]
            .into_iter()
            .filter_map(|(param, command)| command.map(|c| (param, c)))
    }

    /// Starts `command` in the attempt's directory (where the job's code
    /// files are): a `.wasm` program in the sandbox, any other as a
    /// process.
    fn start<'s>(&self, command: &CommandLine, attempt: &AttemptInfo<'s>) -> Result<Process<'s>, AppError> {
        let env = streaming_env(attempt, &self.cmdenv);
        if is_wasm(command) {
            return self.start_wasm(command, attempt, &env);
        }
        Process::start(command, attempt.work_dir, &env, attempt.cancel)
    }

    #[cfg(feature = "wasm")]
    fn start_wasm<'s>(
        &self,
        command: &CommandLine,
        attempt: &AttemptInfo<'s>,
        env: &[(String, String)],
    ) -> Result<Process<'s>, AppError> {
        let program = command.program();
        let shipped = attempt.work_dir.join(program);
        let path =
            if !program.contains('/') && shipped.is_file() { shipped } else { std::path::PathBuf::from(program) };
        let sandbox = quern_wasm::Sandbox::global().map_err(|e| AppError::permanent(e.to_string()))?;
        let module = sandbox.load(&path).map_err(|e| match e {
            quern_wasm::WasmError::Read { .. } => AppError::new(format!("cannot start {command}: {e}")),
            e => AppError::permanent(format!("cannot start {command}: {e}")),
        })?;
        let limits = quern_wasm::Limits { memory: self.wasm_memory, cpu_time: self.wasm_cpu_time };
        Process::start_wasm(command, &module, env, limits, attempt.cancel)
    }

    #[cfg(not(feature = "wasm"))]
    fn start_wasm<'s>(
        &self,
        command: &CommandLine,
        _: &AttemptInfo<'s>,
        _: &[(String, String)],
    ) -> Result<Process<'s>, AppError> {
        Err(AppError::permanent(format!(
            "cannot start {command}: this quern was built without WebAssembly support (cargo feature `wasm`)"
        )))
    }
}

impl App for StreamingApp {
    /// Never called: the mapper runs in the attempt's session.
    fn map(&self, _: &Record<'_>, _: &mut MapContext<'_>) -> Result<(), AppError> {
        Err(AppError::permanent("a streaming map runs as a session of its attempt, not record by record"))
    }

    fn combiner(&self) -> Option<&dyn Combiner> {
        self.combiner.as_ref().map(|_| self as &dyn Combiner)
    }

    fn outputs(&self) -> Vec<OutputDecl> {
        let output = OutputDecl::default_output();
        vec![if self.reducer.is_some() { output } else { output.with_default_reducers(0) }]
    }

    fn map_session<'s>(&'s self, attempt: &AttemptInfo<'s>) -> Result<Option<Box<dyn MapSession + 's>>, AppError> {
        Ok(Some(Box::new(MapProcess(self.start(&self.mapper, attempt)?))))
    }

    fn reduce_session<'s>(
        &'s self,
        attempt: &AttemptInfo<'s>,
    ) -> Result<Option<Box<dyn ReduceSession + 's>>, AppError> {
        match &self.reducer {
            Some(reducer) => Ok(Some(Box::new(ReduceProcess(self.start(reducer, attempt)?)))),
            // The identity reduce: `App::reduce`'s default.
            None => Ok(None),
        }
    }
}

/// The combiner runs over whole spills: one process per spill (and
/// reduced output), fed the spill's sorted `key<TAB>value` lines.
impl Combiner for StreamingApp {
    /// Never called: the combiner runs over whole spills.
    fn combine(&self, _: usize, _: &[u8], _: &mut Values<'_>, _: &mut CombineOutput<'_>) -> Result<(), AppError> {
        Err(AppError::permanent("a streaming combiner runs over whole spills, not key by key"))
    }

    fn combines_spills(&self) -> bool {
        true
    }

    fn spill_session<'s>(&'s self, attempt: &AttemptInfo<'s>) -> Result<Box<dyn CombineSession + 's>, AppError> {
        let Some(combiner) = &self.combiner else {
            return Err(AppError::permanent("this streaming job has no combiner"));
        };
        Ok(Box::new(CombineProcess(self.start(combiner, attempt)?)))
    }
}

/// The combiner of one spill.
struct CombineProcess<'s>(Process<'s>);

impl CombineSession for CombineProcess<'_> {
    fn combine(
        &mut self,
        key: &[u8],
        values: &mut Values<'_>,
        out: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), AppError> {
        while let Some(value) = values.next() {
            self.0.write(&[key, b"\t", value, b"\n"], &mut Pairs(out))?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, out: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), AppError> {
        self.0.finish(&mut Pairs(out))
    }
}

/// A combiner's output: its pairs. A combiner's counter lines are not
/// kept (a spill has no counters of its own).
struct Pairs<'a, 'b>(&'a mut (dyn FnMut(&[u8], &[u8]) + 'b));

impl Output for Pairs<'_, '_> {
    fn pair(&mut self, key: &[u8], value: &[u8]) {
        (self.0)(key, value);
    }

    fn count(&mut self, _: &str, _: u64) {}
}

impl Output for MapContext<'_> {
    fn pair(&mut self, key: &[u8], value: &[u8]) {
        self.emit(key, value);
    }

    fn count(&mut self, name: &str, n: u64) {
        MapContext::count(self, name, n);
    }
}

impl Output for ReduceContext<'_> {
    fn pair(&mut self, key: &[u8], value: &[u8]) {
        self.emit(key, value);
    }

    fn count(&mut self, name: &str, n: u64) {
        ReduceContext::count(self, name, n);
    }
}

/// The mapper of one attempt.
struct MapProcess<'s>(Process<'s>);

impl MapSession for MapProcess<'_> {
    fn map(&mut self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        self.0.write(&[record.data, b"\n"], ctx)
    }

    fn finish(self: Box<Self>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        self.0.finish(ctx)
    }
}

/// The reducer of one attempt.
struct ReduceProcess<'s>(Process<'s>);

impl ReduceSession for ReduceProcess<'_> {
    fn reduce(&mut self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        while let Some(value) = values.next() {
            self.0.write(&[key, b"\t", value, b"\n"], ctx)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        self.0.finish(ctx)
    }
}
