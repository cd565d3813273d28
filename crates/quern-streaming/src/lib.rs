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
//!   job's `file`s are copied into the working directory first.
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
//! # Invariants
//! - Depends on `quern-core` only: the engine runs a streaming job as it
//!   runs any app, through the app API.
//! - A process lives no longer than its attempt: one dropped unfinished is
//!   killed.

mod command;
mod env;
mod process;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
/// The parameter holding the files copied into each attempt's working
/// directory, one path per line.
pub const FILES: &str = "file";

/// Registers the `streaming` app.
pub fn register(apps: &mut AppRegistry) {
    apps.register(
        APP,
        "Hadoop streaming: the mapper and reducer are commands reading and writing TAB-separated lines",
        vec![
            ParamSpec::required(MAPPER, "the mapper's command, split into words as a shell would (no shell is run)"),
            ParamSpec::optional(COMBINER, "the combiner's command, run over each sorted map spill"),
            ParamSpec::optional(
                REDUCER,
                "the reducer's command; without it the job is map-only unless it asks for reducers",
            ),
            ParamSpec::optional(CMDENV, "NAME=VALUE pairs added to the commands' environment, one per line"),
            ParamSpec::optional(FILES, "files copied into every attempt's working directory, one path per line"),
        ],
        |params| Ok(Arc::new(StreamingApp::from_params(params)?)),
    );
}

/// A streaming job's code: commands, environment and shipped files.
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
    /// Copied into every attempt's working directory.
    pub files: Vec<PathBuf>,
}

impl StreamingApp {
    /// The app from its parameters ([`MAPPER`], [`COMBINER`], [`REDUCER`],
    /// [`CMDENV`], [`FILES`]); an error names the parameter.
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
        let files =
            params.get(FILES).unwrap_or_default().lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect();
        Ok(StreamingApp { mapper, combiner, reducer, cmdenv, files })
    }

    /// Copies the shipped files into `dir` and starts `command` there.
    fn start<'s>(&self, command: &CommandLine, attempt: &AttemptInfo<'s>) -> Result<Process<'s>, AppError> {
        ship(&self.files, attempt.work_dir)?;
        Process::start(command, attempt.work_dir, &streaming_env(attempt, &self.cmdenv), attempt.cancel)
    }
}

/// Copies each of `files` into `dir`, under its own name.
fn ship(files: &[PathBuf], dir: &Path) -> Result<(), AppError> {
    for file in files {
        let Some(name) = file.file_name() else {
            return Err(AppError::permanent(format!("cannot ship {}: it names no file", file.display())));
        };
        fs::copy(file, dir.join(name))
            .map_err(|e| AppError::new(format!("cannot ship {} into the attempt's directory: {e}", file.display())))?;
    }
    Ok(())
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
