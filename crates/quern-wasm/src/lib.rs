//! quern's WebAssembly sandbox: a WASI command module (built for
//! `wasm32-wasip1`) run by wasmtime inside the attempt's process, on a
//! thread of its own, speaking through three pipes.
//!
//! What a module gets, and nothing else:
//! - stdin, stdout and stderr (OS pipes, so the streaming protocol's
//!   threads read and write them as they do a child process's);
//! - its arguments and the environment it is given;
//! - clocks and random numbers (WASI's, which change nothing outside);
//! - no preopened directory (so no file at all), no network, no other
//!   imports: a module importing anything but WASI preview 1 does not
//!   start.
//!
//! And two limits ([`Limits`]), which stop it with an error naming the
//! limit: linear memory (a growth past it fails, and a module that fails
//! after one was refused is reported as stopped at the limit) and CPU time
//! (its thread's, checked at every epoch tick, every
//! [`TICK`]).
//!
//! ```no_run
//! use std::io::{Read, Write};
//! let sandbox = quern_wasm::Sandbox::global()?;
//! let module = sandbox.load(std::path::Path::new("wc.wasm"))?;
//! let (mut run, mut stdio) = sandbox.start(&module, &["map".into()], &[], quern_wasm::Limits::default())?;
//! stdio.stdin.write_all(b"to be or not to be\n")?;
//! drop(stdio.stdin);
//! let mut out = String::new();
//! stdio.stdout.read_to_string(&mut out)?;
//! run.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Invariants
//! - One [`wasmtime::Engine`] per process ([`Sandbox::global`]), so a
//!   module is compiled once per process however many attempts run it;
//!   modules are cached by the SHA-256 of their bytes.
//! - A run never outlives its [`WasmRun`] by more than its pipes: dropped,
//!   it is interrupted at its next epoch check, and a read or write it is
//!   blocked in ends when the other side's pipe closes.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{PipeReader, PipeWriter};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmtime::{Config, Engine, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::cli::{InputFile, OutputFile};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

/// How often running modules are interrupted to check their CPU time and
/// whether they were stopped.
pub const TICK: Duration = Duration::from_millis(10);
/// The default memory limit: 256 MiB.
pub const DEFAULT_MEMORY: u64 = 256 << 20;
/// The default CPU time limit: 10 minutes (Hadoop's default task timeout).
pub const DEFAULT_CPU_TIME: Duration = Duration::from_secs(600);

/// What one run of a module may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of linear memory.
    pub memory: u64,
    /// CPU time of the thread running it (compiling is not counted).
    pub cpu_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory: DEFAULT_MEMORY, cpu_time: DEFAULT_CPU_TIME }
    }
}

/// Why a module could not be loaded or started.
#[derive(Debug, Error)]
pub enum WasmError {
    /// The file could not be read.
    #[error("cannot read the module {path}: {source}")]
    Read {
        /// The module's path.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The bytes are not a valid module, or it cannot be compiled.
    #[error("{path} is not a WebAssembly module quern can run: {message}")]
    Compile {
        /// The module's path.
        path: String,
        /// wasmtime's reason.
        message: String,
    },
    /// A valid module that is not a WASI command.
    #[error("{path} is not a WASI command: it exports no `_start` (build it as a binary for wasm32-wasip1)")]
    NotCommand {
        /// The module's path.
        path: String,
    },
    /// The engine could not be set up.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    /// No pipe or thread for the run.
    #[error("cannot start the module {name}: {source}")]
    Start {
        /// The module's name.
        name: String,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// How a run ended, when not with exit status 0.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WasmExit {
    /// It exited (`proc_exit`) with a status other than 0.
    #[error("ended with exit status: {0}")]
    Status(i32),
    /// It failed after a memory growth was refused.
    #[error("was stopped at its memory limit of {} MiB: it asked for {} MiB", limit >> 20, wanted.div_ceil(1 << 20))]
    MemoryLimit {
        /// The limit, in bytes.
        limit: u64,
        /// The size the refused growth asked for, in bytes.
        wanted: u64,
    },
    /// Its thread used more CPU time than allowed.
    #[error("was stopped at its CPU time limit of {}", humanize(*.0))]
    CpuTimeLimit(Duration),
    /// It trapped (unreachable, out of bounds, stack overflow, …), or could
    /// not be instantiated (an import WASI does not provide).
    #[error("trapped: {0}")]
    Trap(String),
    /// It was stopped by [`WasmRun::kill`].
    #[error("was stopped")]
    Killed,
}

fn humanize(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{:.3}s", d.as_secs_f64()) }
}

/// The SHA-256 of a module's bytes: its identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModuleHash([u8; 32]);

impl fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

/// A compiled module.
#[derive(Clone)]
pub struct WasmModule {
    name: String,
    hash: ModuleHash,
    module: Module,
}

impl WasmModule {
    /// The SHA-256 of its bytes.
    pub fn hash(&self) -> ModuleHash {
        self.hash
    }

    /// The file name it was loaded from (its `argv[0]`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for WasmModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmModule").field("name", &self.name).field("hash", &self.hash).finish_non_exhaustive()
    }
}

/// The process's engine, its WASI linker, and the modules compiled so far.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<Guest>,
    compiled: Mutex<HashMap<ModuleHash, Module>>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

/// The ends of a run's pipes that the caller holds.
#[derive(Debug)]
pub struct Stdio {
    /// The module's stdin: close it (drop) to end its input.
    pub stdin: PipeWriter,
    /// The module's stdout.
    pub stdout: PipeReader,
    /// The module's stderr.
    pub stderr: PipeReader,
}

/// What a store holds: the module's WASI context and its memory limit.
struct Guest {
    wasi: WasiP1Ctx,
    memory: MemoryLimit,
}

/// Refuses linear memory (and tables) past the limit, remembering the
/// first refusal so that the failure it causes is reported as the limit.
struct MemoryLimit {
    limit: u64,
    refused: Option<u64>,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let desired = desired as u64;
        if desired > self.limit {
            self.refused.get_or_insert(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // A table element is at least a pointer: count it against memory.
        Ok((desired as u64).saturating_mul(8) <= self.limit)
    }
}

/// The error an epoch check raises to stop a run.
#[derive(Debug, Error)]
enum Stop {
    #[error("the CPU time limit was reached")]
    CpuTime,
    #[error("the run was killed")]
    Killed,
}

static GLOBAL: OnceLock<Result<Sandbox, String>> = OnceLock::new();

impl Sandbox {
    /// The process's sandbox, set up on first use (with the thread that
    /// ticks its epochs).
    pub fn global() -> Result<&'static Sandbox, WasmError> {
        GLOBAL
            .get_or_init(|| Sandbox::new().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| WasmError::Engine(e.clone()))
    }

    fn new() -> Result<Sandbox, WasmError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| WasmError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |guest: &mut Guest| &mut guest.wasi)
            .map_err(|e| WasmError::Engine(e.to_string()))?;
        let ticking = engine.clone();
        thread::Builder::new()
            .name("quern-wasm-epoch".into())
            .spawn(move || {
                loop {
                    thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| WasmError::Engine(format!("no thread for the epoch ticks: {e}")))?;
        Ok(Sandbox { engine, linker, compiled: Mutex::new(HashMap::new()) })
    }

    /// Reads and compiles the module at `path` (once per process for the
    /// same bytes).
    pub fn load(&self, path: &Path) -> Result<WasmModule, WasmError> {
        let shown = path.display().to_string();
        let bytes = fs::read(path).map_err(|source| WasmError::Read { path: shown.clone(), source })?;
        let name = path.file_name().map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned());
        self.compile(&name, &shown, &bytes)
    }

    /// Compiles `bytes` (once per process for the same bytes); `name` is
    /// its `argv[0]`, `shown` how errors name it.
    pub fn compile(&self, name: &str, shown: &str, bytes: &[u8]) -> Result<WasmModule, WasmError> {
        let hash = ModuleHash(Sha256::digest(bytes).into());
        let cached = self.compiled.lock().ok().and_then(|c| c.get(&hash).cloned());
        let module = match cached {
            Some(module) => module,
            None => {
                let module = Module::new(&self.engine, bytes)
                    .map_err(|e| WasmError::Compile { path: shown.to_owned(), message: format!("{e:#}") })?;
                if module.get_export("_start").is_none() {
                    return Err(WasmError::NotCommand { path: shown.to_owned() });
                }
                if let Ok(mut compiled) = self.compiled.lock() {
                    compiled.insert(hash, module.clone());
                }
                module
            }
        };
        Ok(WasmModule { name: name.to_owned(), hash, module })
    }

    /// Starts `module` on a thread of its own with `args` after its name
    /// and `env` as its whole environment, within `limits`.
    pub fn start(
        &self,
        module: &WasmModule,
        args: &[String],
        env: &[(String, String)],
        limits: Limits,
    ) -> Result<(WasmRun, Stdio), WasmError> {
        let failed = |source| WasmError::Start { name: module.name.clone(), source };
        let (stdin_reader, stdin) = std::io::pipe().map_err(failed)?;
        let (stdout, stdout_writer) = std::io::pipe().map_err(failed)?;
        let (stderr, stderr_writer) = std::io::pipe().map_err(failed)?;
        let file = |fd: OwnedFd| File::from(fd);
        let mut argv = vec![module.name.clone()];
        argv.extend(args.iter().cloned());
        let wasi = WasiCtxBuilder::new()
            .stdin(InputFile::new(file(stdin_reader.into())))
            .stdout(OutputFile::new(file(stdout_writer.into())))
            .stderr(OutputFile::new(file(stderr_writer.into())))
            .args(&argv)
            .envs(env)
            .build_p1();
        let mut store =
            Store::new(&self.engine, Guest { wasi, memory: MemoryLimit { limit: limits.memory, refused: None } });
        store.limiter(|guest| &mut guest.memory);
        let killed = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&killed);
        let cpu_limit = limits.cpu_time;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if stop.load(Ordering::Relaxed) {
                return Err(wasmtime::Error::new(Stop::Killed));
            }
            if thread_cpu_time() > cpu_limit {
                return Err(wasmtime::Error::new(Stop::CpuTime));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        let linker = self.linker.clone();
        let compiled = module.module.clone();
        let stopped = Arc::clone(&killed);
        let thread = thread::Builder::new()
            .name(format!("quern-wasm-{}", module.name))
            .spawn(move || run(&linker, &compiled, store, limits, &stopped))
            .map_err(failed)?;
        Ok((WasmRun { thread: Some(thread), ended: None, killed }, Stdio { stdin, stdout, stderr }))
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map(Duration::from).unwrap_or_default()
}

/// Instantiates and runs a module's `_start` on the calling thread.
fn run(
    linker: &Linker<Guest>,
    module: &Module,
    mut store: Store<Guest>,
    limits: Limits,
    killed: &AtomicBool,
) -> Result<(), WasmExit> {
    let result = linker.instantiate(&mut store, module).and_then(|instance| {
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start.call(&mut store, ())
    });
    // Its pipes close with the store, whatever happened.
    let refused = store.data().memory.refused;
    drop(store);
    let error = match result {
        Ok(()) => return Ok(()),
        Err(error) => error,
    };
    let status = error.downcast_ref::<I32Exit>().map(|exit| exit.0);
    if status == Some(0) {
        return Ok(());
    }
    if let Some(wanted) = refused {
        return Err(WasmExit::MemoryLimit { limit: limits.memory, wanted });
    }
    if let Some(status) = status {
        return Err(WasmExit::Status(status));
    }
    match error.downcast_ref::<Stop>() {
        Some(Stop::CpuTime) => return Err(WasmExit::CpuTimeLimit(limits.cpu_time)),
        Some(Stop::Killed) => return Err(WasmExit::Killed),
        None if killed.load(Ordering::Relaxed) => return Err(WasmExit::Killed),
        None => {}
    }
    match error.downcast_ref::<Trap>() {
        Some(trap) => Err(WasmExit::Trap(trap.to_string())),
        None => Err(WasmExit::Trap(error.root_cause().to_string())),
    }
}

/// A running module.
#[derive(Debug)]
pub struct WasmRun {
    thread: Option<JoinHandle<Result<(), WasmExit>>>,
    ended: Option<Result<(), WasmExit>>,
    killed: Arc<AtomicBool>,
}

impl WasmRun {
    /// How it ended, if it has.
    pub fn try_wait(&mut self) -> Option<Result<(), WasmExit>> {
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            self.join();
        }
        self.ended.clone()
    }

    /// Waits for it to end.
    pub fn wait(&mut self) -> Result<(), WasmExit> {
        self.join();
        self.ended.clone().unwrap_or(Err(WasmExit::Killed))
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.ended =
                Some(thread.join().unwrap_or_else(|_| Err(WasmExit::Trap("the sandbox's thread panicked".into()))));
        }
    }

    /// Stops it at its next epoch check (within a [`TICK`] of running
    /// code); a read or write it is blocked in ends when the other end of
    /// its pipe is closed. Does not wait.
    pub fn kill(&mut self) {
        self.killed.store(true, Ordering::Relaxed);
    }
}

impl Drop for WasmRun {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Instant;

    use super::*;

    fn module(text: &str) -> WasmModule {
        let bytes = wat::parse_str(text).expect("valid text");
        Sandbox::global().expect("sandbox").compile("test.wasm", "test.wasm", &bytes).expect("compiles")
    }

    fn start(module: &WasmModule, limits: Limits) -> (WasmRun, Stdio) {
        Sandbox::global().expect("sandbox").start(module, &[], &[], limits).expect("starts")
    }

    const CAT: &str = r#"(module
      (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (loop $more
          (i32.store (i32.const 0) (i32.const 64))
          (i32.store (i32.const 4) (i32.const 4096))
          (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
          (if (i32.eqz (i32.load (i32.const 8))) (then (return)))
          (i32.store (i32.const 16) (i32.const 64))
          (i32.store (i32.const 20) (i32.load (i32.const 8)))
          (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
          (br $more))))"#;

    #[test]
    fn a_module_reads_stdin_and_writes_stdout_through_pipes() {
        let (mut run, mut stdio) = start(&module(CAT), Limits::default());
        let input: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let writer = {
            let input = input.clone();
            let mut stdin = stdio.stdin;
            thread::spawn(move || stdin.write_all(&input))
        };
        let mut out = Vec::new();
        stdio.stdout.read_to_end(&mut out).expect("read");
        writer.join().expect("writer").expect("written");
        assert_eq!(run.wait(), Ok(()));
        assert_eq!(out, input);
    }

    #[test]
    fn an_endless_loop_is_stopped_at_the_cpu_time_limit() {
        let looping = module(r#"(module (func (export "_start") (loop $l (br $l))))"#);
        let started = Instant::now();
        let (mut run, _stdio) = start(&looping, Limits { cpu_time: Duration::from_millis(300), ..Limits::default() });
        let ended = run.wait();
        assert_eq!(ended, Err(WasmExit::CpuTimeLimit(Duration::from_millis(300))));
        assert_eq!(ended.expect_err("stopped").to_string(), "was stopped at its CPU time limit of 0.300s");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    #[test]
    fn unbounded_allocation_is_stopped_at_the_memory_limit() {
        // Grows by 1 MiB until refused, then traps as an allocator would.
        let growing = module(
            r#"(module (memory 1)
                 (func (export "_start")
                   (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
                   unreachable))"#,
        );
        let (mut run, _stdio) = start(&growing, Limits { memory: 32 << 20, ..Limits::default() });
        let ended = run.wait().expect_err("stopped");
        assert!(matches!(ended, WasmExit::MemoryLimit { limit, .. } if limit == 32 << 20), "{ended:?}");
        assert!(ended.to_string().starts_with("was stopped at its memory limit of 32 MiB"), "{ended}");
    }

    #[test]
    fn a_module_has_no_file_to_open() {
        // path_open relative to fd 3, the first preopened directory there
        // would be, then exits with the errno it got (0 if it opened).
        let opening = module(
            r#"(module
                 (import "wasi_snapshot_preview1" "path_open"
                   (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
                 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                 (memory (export "memory") 1)
                 (data (i32.const 0) "etc/passwd")
                 (func (export "_start")
                   (call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 10)
                                           (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 64)))))"#,
        );
        let (mut run, _stdio) = start(&opening, Limits::default());
        // EBADF: there is no fd 3.
        assert_eq!(run.wait(), Err(WasmExit::Status(8)));
    }

    #[test]
    fn exit_statuses_traps_and_foreign_imports_are_reported() {
        let exit3 = module(
            r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                 (memory (export "memory") 1)
                 (func (export "_start") (call $exit (i32.const 3))))"#,
        );
        assert_eq!(start(&exit3, Limits::default()).0.wait(), Err(WasmExit::Status(3)));
        let trap = module(r#"(module (func (export "_start") unreachable))"#);
        let ended = start(&trap, Limits::default()).0.wait().expect_err("traps");
        assert!(matches!(&ended, WasmExit::Trap(m) if m.contains("unreachable")), "{ended:?}");
        let foreign = module(r#"(module (import "env" "socket" (func)) (func (export "_start")))"#);
        let ended = start(&foreign, Limits::default()).0.wait().expect_err("not linked");
        assert!(matches!(&ended, WasmExit::Trap(m) if m.contains("env::socket")), "{ended:?}");
    }

    #[test]
    fn a_module_without_start_or_not_wasm_is_refused_at_load() {
        let sandbox = Sandbox::global().expect("sandbox");
        let bytes = wat::parse_str("(module)").expect("valid");
        let err = sandbox.compile("lib.wasm", "lib.wasm", &bytes).expect_err("no _start");
        assert!(err.to_string().contains("lib.wasm is not a WASI command"), "{err}");
        let err = sandbox.compile("x.wasm", "x.wasm", b"#!/bin/sh\n").expect_err("not wasm");
        assert!(err.to_string().starts_with("x.wasm is not a WebAssembly module quern can run"), "{err}");
    }

    #[test]
    fn a_killed_run_stops_within_ticks() {
        let looping = module(r#"(module (func (export "_start") (loop $l (br $l))))"#);
        let (mut run, _stdio) = start(&looping, Limits::default());
        thread::sleep(Duration::from_millis(50));
        run.kill();
        let started = Instant::now();
        assert_eq!(run.wait(), Err(WasmExit::Killed));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
