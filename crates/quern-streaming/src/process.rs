//! One streaming process, started for one attempt: its stdin fed by a
//! writer thread in large chunks, its stdout read by a reader thread and
//! handed back as complete lines, the tail of its stderr kept for the
//! error message.
//!
//! Every channel is bounded, and the attempt's thread never waits on one
//! thing while the process waits on another: it hands the writer at most
//! [`IN_FLIGHT`] chunks, and when it has no credit left it waits for
//! events, which are both the writer's credits and the reader's lines. So
//! a process that writes much more than it reads, or stops reading until
//! its output is taken, cannot deadlock the attempt, and memory stays
//! bounded.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use quern_core::AppError;

use crate::command::CommandLine;

/// Bytes of input handed to the writer at once, and of output handed back.
const CHUNK: usize = 64 << 10;
/// Input chunks the writer may hold before the attempt waits.
const IN_FLIGHT: usize = 4;
/// Events (output chunks, credits) waiting for the attempt's thread.
const EVENTS: usize = 16;
/// Bytes of stderr kept for an error message.
const STDERR_TAIL: usize = 2 << 10;
/// How often a wait for the process looks at the attempt's cancel flag.
const CANCEL_CHECK: Duration = Duration::from_millis(100);
/// How long a failed process may take to exit on its own before it is
/// stopped.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// Where what a process writes goes: its output pairs, and the counters it
/// reports on stderr, as Hadoop streaming's
/// `reporter:counter:GROUP,COUNTER,AMOUNT` lines (counted as
/// `GROUP.COUNTER`).
pub(crate) trait Output {
    /// One output line's key and value.
    fn pair(&mut self, key: &[u8], value: &[u8]);
    /// `n` more of the counter `name`.
    fn count(&mut self, name: &str, n: u64);
}

/// What the helper threads tell the attempt's thread.
enum Event {
    /// Complete lines of stdout (the stream's last line may lack its `\n`).
    Output(Vec<u8>),
    /// The writer wrote a chunk: one more may be handed to it.
    Written,
    /// The writer could not write: the process stopped reading.
    WriteFailed(io::Error),
    /// The writer closed stdin and ended.
    InputClosed,
    /// stdout ended, or could not be read.
    OutputEnded(io::Result<()>),
    /// A counter line on stderr.
    Counter(String, u64),
}

/// A running streaming process.
pub(crate) struct Process<'s> {
    command: CommandLine,
    /// The attempt's cancel flag, checked while waiting.
    cancel: &'s AtomicBool,
    running: Running,
    input: Option<Sender<Vec<u8>>>,
    events: Receiver<Event>,
    /// Chunks the writer may still be handed.
    credits: usize,
    /// Input not yet handed to the writer.
    pending: Vec<u8>,
    write_error: Option<io::Error>,
    read_error: Option<io::Error>,
    input_closed: bool,
    output_ended: bool,
    /// The stderr reader, and the tail it has read so far.
    stderr: (JoinHandle<()>, Arc<Mutex<Vec<u8>>>),
}

impl<'s> Process<'s> {
    /// Starts `command` in `dir`, with `env` added to quern's environment;
    /// waits give up when `cancel` is set. A program without a `/` that
    /// names a file in `dir` (one shipped with `--file`) is that file;
    /// others are looked up in `PATH`.
    pub(crate) fn start(
        command: &CommandLine,
        dir: &Path,
        env: &[(String, String)],
        cancel: &'s AtomicBool,
    ) -> Result<Process<'s>, AppError> {
        let program = command.program();
        let shipped = dir.join(program);
        let mut cmd =
            if !program.contains('/') && shipped.is_file() { Command::new(shipped) } else { Command::new(program) };
        cmd.args(command.args())
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| AppError::new(format!("cannot start {command}: {e}")))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(AppError::new(format!("cannot start {command}: its pipes were not opened")));
        };
        Process::with_pipes(command, Running::Os(child), (stdin, stdout, stderr), cancel)
    }

    /// Starts `module` (the program of `command`) in the sandbox, with
    /// `command`'s other words as its arguments and `env` as its whole
    /// environment, within `limits`.
    #[cfg(feature = "wasm")]
    pub(crate) fn start_wasm(
        command: &CommandLine,
        module: &quern_wasm::WasmModule,
        env: &[(String, String)],
        limits: quern_wasm::Limits,
        cancel: &'s AtomicBool,
    ) -> Result<Process<'s>, AppError> {
        let sandbox = quern_wasm::Sandbox::global().map_err(|e| AppError::permanent(e.to_string()))?;
        let (run, stdio) = sandbox
            .start(module, command.args(), env, limits)
            .map_err(|e| AppError::new(format!("cannot start {command}: {e}")))?;
        Process::with_pipes(command, Running::Wasm(run), (stdio.stdin, stdio.stdout, stdio.stderr), cancel)
    }

    /// The process around what `running` is, once its pipes have threads.
    fn with_pipes(
        command: &CommandLine,
        mut running: Running,
        (stdin, stdout, stderr): (impl Write + Send + 'static, impl Read + Send + 'static, impl Read + Send + 'static),
        cancel: &'s AtomicBool,
    ) -> Result<Process<'s>, AppError> {
        let (events_tx, events) = mpsc::sync_channel(EVENTS);
        let (input, input_rx) = mpsc::channel();
        let started = spawn_writer(stdin, input_rx, events_tx.clone())
            .and_then(|_| spawn_reader(stdout, events_tx.clone()))
            .and_then(|_| {
                let tail = Arc::new(Mutex::new(Vec::new()));
                let kept = Arc::clone(&tail);
                let reader = thread::Builder::new()
                    .name("quern-stream-err".into())
                    .spawn(move || read_stderr(stderr, &kept, &events_tx));
                reader.map(|reader| (reader, tail))
            });
        let stderr = match started {
            Ok(stderr) => stderr,
            Err(e) => {
                running.stop();
                return Err(AppError::new(format!("cannot start {command}: no thread for its pipes: {e}")));
            }
        };
        Ok(Process {
            command: command.clone(),
            cancel,
            running,
            input: Some(input),
            events,
            credits: IN_FLIGHT,
            pending: Vec::with_capacity(CHUNK + 1024),
            write_error: None,
            read_error: None,
            input_closed: false,
            output_ended: false,
            stderr,
        })
    }

    /// Queues `parts` (together, a line or more) for the process's stdin,
    /// and hands `out` each output line's key and value that is ready.
    pub(crate) fn write(&mut self, parts: &[&[u8]], out: &mut dyn Output) -> Result<(), AppError> {
        for part in parts {
            self.pending.extend_from_slice(part);
        }
        if self.pending.len() >= CHUNK { self.hand_over(out) } else { Ok(()) }
    }

    /// Hands the pending input to the writer, waiting for a credit (and
    /// taking output meanwhile) if need be.
    fn hand_over(&mut self, out: &mut dyn Output) -> Result<(), AppError> {
        while let Ok(event) = self.events.try_recv() {
            self.handle(event, out);
        }
        while self.credits == 0 && self.write_error.is_none() {
            match self.next_event()? {
                Some(event) => self.handle(event, out),
                None => break,
            }
        }
        if let Some(e) = self.write_error.take() {
            return Err(self.failure(&format!("stopped reading its input ({e})")));
        }
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK + 1024));
        let sent = self.input.as_ref().is_some_and(|input| input.send(chunk).is_ok());
        if !sent {
            return Err(self.failure("stopped reading its input"));
        }
        self.credits -= 1;
        Ok(())
    }

    /// Closes the process's stdin after the pending input, hands `out`
    /// the rest of its output, and waits for it to exit: an error unless
    /// it read everything and exited with status 0.
    pub(crate) fn finish(mut self, out: &mut dyn Output) -> Result<(), AppError> {
        if !self.pending.is_empty() {
            self.hand_over(out)?;
        }
        self.input = None;
        while !(self.input_closed && self.output_ended) {
            match self.next_event()? {
                Some(event) => self.handle(event, out),
                None => break,
            }
        }
        // Counter lines it wrote last, while its stderr is read to the end.
        let grace = Instant::now() + EXIT_GRACE;
        while !self.stderr.0.is_finished() && Instant::now() < grace {
            if let Ok(event) = self.events.recv_timeout(Duration::from_millis(10)) {
                self.handle(event, out);
            }
        }
        while let Ok(event) = self.events.try_recv() {
            self.handle(event, out);
        }
        if let Some(e) = self.write_error.take() {
            return Err(self.failure(&format!("stopped reading its input ({e})")));
        }
        if let Err(ended) =
            self.running.wait().map_err(|e| AppError::new(format!("waiting for {}: {e}", self.command)))?
        {
            return Err(self.failure(&ended));
        }
        if let Some(e) = self.read_error.take() {
            return Err(self.failure(&format!("its output could not be read ({e})")));
        }
        Ok(())
    }

    /// The next event, waiting for it; `None` when the helper threads are
    /// gone; an error when the attempt is cancelled meanwhile.
    fn next_event(&mut self) -> Result<Option<Event>, AppError> {
        loop {
            match self.events.recv_timeout(CANCEL_CHECK) {
                Ok(event) => return Ok(Some(event)),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) if self.cancel.load(Ordering::Relaxed) => {
                    return Err(AppError::new(format!("{} was stopped: the attempt was cancelled", self.command)));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn handle(&mut self, event: Event, out: &mut dyn Output) {
        match event {
            Event::Output(lines) => emit_lines(&lines, out),
            Event::Counter(name, n) => out.count(&name, n),
            Event::Written => self.credits += 1,
            Event::WriteFailed(e) => self.write_error = Some(e),
            Event::InputClosed => self.input_closed = true,
            Event::OutputEnded(result) => {
                self.output_ended = true;
                self.read_error = result.err();
            }
        }
    }

    /// The error for a process that failed: what happened, how it ended
    /// (it is stopped if it has not), and the tail of its stderr.
    fn failure(&mut self, what: &str) -> AppError {
        // A process that stopped reading is usually on its way out: its
        // exit status says more than a kill would.
        let grace = Instant::now() + EXIT_GRACE;
        while self.running.try_wait().is_none() && Instant::now() < grace {
            thread::sleep(Duration::from_millis(10));
        }
        let what = match self.running.try_wait() {
            // `what` already says how it ended.
            Some(Err(ended)) if ended == what => what.to_owned(),
            // How it ended comes first: a limit or a crash is why it
            // stopped reading or writing.
            Some(Err(ended)) => format!("{ended}; so it {what}"),
            Some(Ok(())) => format!("{what}; it ended with exit status: 0"),
            None => {
                self.running.stop();
                format!("{what}; it was stopped")
            }
        };
        // Stopped or ended, its stderr is closed and the reader ends, unless
        // something the process started still holds it: wait a little only.
        let (reader, tail) = &self.stderr;
        let grace = Instant::now() + EXIT_GRACE;
        while !reader.is_finished() && Instant::now() < grace {
            thread::sleep(Duration::from_millis(10));
        }
        let tail = tail.lock().map(|t| t.clone()).unwrap_or_default();
        let tail = String::from_utf8_lossy(&tail);
        let tail = tail.trim_end();
        if tail.is_empty() {
            AppError::new(format!("{} {what}; its stderr was empty", self.command))
        } else {
            AppError::new(format!("{} {what}; its stderr ends:\n{tail}", self.command))
        }
    }
}

impl Drop for Process<'_> {
    /// A process whose attempt ended without [`Process::finish`] (failed
    /// or cancelled) is stopped; its threads end with its pipes.
    fn drop(&mut self) {
        if self.running.try_wait().is_none() {
            self.running.stop();
        }
    }
}

/// What runs a streaming command: a child process, or a module in the
/// sandbox.
enum Running {
    Os(Child),
    #[cfg(feature = "wasm")]
    Wasm(quern_wasm::WasmRun),
}

impl Running {
    /// How it ended, if it has: `Err` says how, when not with status 0
    /// ("ended with exit status: 1", "was stopped at its memory limit …").
    fn try_wait(&mut self) -> Option<Result<(), String>> {
        match self {
            Running::Os(child) => match child.try_wait() {
                Ok(Some(status)) => Some(os_ending(status)),
                Ok(None) => None,
                Err(e) => Some(Err(format!("could not be waited for ({e})"))),
            },
            #[cfg(feature = "wasm")]
            Running::Wasm(run) => run.try_wait().map(|ended| ended.map_err(|e| wasm_ending(&e))),
        }
    }

    /// Waits for it to end.
    fn wait(&mut self) -> io::Result<Result<(), String>> {
        match self {
            Running::Os(child) => child.wait().map(os_ending),
            #[cfg(feature = "wasm")]
            Running::Wasm(run) => Ok(run.wait().map_err(|e| wasm_ending(&e))),
        }
    }

    /// Stops it: a process is killed and reaped; a module is stopped at its
    /// next epoch check, or when its pipes close.
    fn stop(&mut self) {
        match self {
            Running::Os(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            #[cfg(feature = "wasm")]
            Running::Wasm(run) => run.kill(),
        }
    }
}

fn os_ending(status: std::process::ExitStatus) -> Result<(), String> {
    if status.success() { Ok(()) } else { Err(format!("ended with {status}")) }
}

/// How a module ended, naming the flag behind a limit it reached.
#[cfg(feature = "wasm")]
fn wasm_ending(ended: &quern_wasm::WasmExit) -> String {
    use quern_wasm::WasmExit;
    match ended {
        WasmExit::MemoryLimit { .. } => format!("{ended} (--wasm-memory)"),
        WasmExit::CpuTimeLimit(_) => format!("{ended} (--wasm-cpu-time)"),
        WasmExit::Status(_) => format!("{ended} (a module runs sandboxed: no files, no network)"),
        WasmExit::Trap(_) | WasmExit::Killed => ended.to_string(),
    }
}

/// Splits `lines` into lines, and each at its first TAB into key and value
/// (a line without a TAB is all key).
fn emit_lines(lines: &[u8], out: &mut dyn Output) {
    let lines = lines.strip_suffix(b"\n").unwrap_or(lines);
    for line in lines.split(|&b| b == b'\n') {
        match line.iter().position(|&b| b == b'\t') {
            Some(tab) => out.pair(&line[..tab], &line[tab + 1..]),
            None => out.pair(line, b""),
        }
    }
}

fn spawn_writer(
    mut stdin: impl Write + Send + 'static,
    chunks: Receiver<Vec<u8>>,
    events: SyncSender<Event>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name("quern-stream-in".into()).spawn(move || {
        for chunk in chunks {
            if let Err(e) = stdin.write_all(&chunk) {
                let _ = events.send(Event::WriteFailed(e));
                break;
            }
            if events.send(Event::Written).is_err() {
                return;
            }
        }
        drop(stdin);
        let _ = events.send(Event::InputClosed);
    })
}

fn spawn_reader(stdout: impl Read + Send + 'static, events: SyncSender<Event>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name("quern-stream-out".into()).spawn(move || {
        let mut out = BufReader::with_capacity(CHUNK, stdout);
        let mut lines = Vec::with_capacity(2 * CHUNK);
        loop {
            let available = match out.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = events.send(Event::OutputEnded(Err(e)));
                    return;
                }
            };
            if available.is_empty() {
                if !lines.is_empty() {
                    let _ = events.send(Event::Output(lines));
                }
                let _ = events.send(Event::OutputEnded(Ok(())));
                return;
            }
            lines.extend_from_slice(available);
            let read = available.len();
            out.consume(read);
            if lines.len() >= CHUNK
                && let Some(last) = lines.iter().rposition(|&b| b == b'\n')
            {
                let rest = lines.split_off(last + 1);
                if events.send(Event::Output(std::mem::replace(&mut lines, rest))).is_err() {
                    return;
                }
            }
        }
    })
}

/// Reads `stderr` to its end, a line at a time: counter lines become
/// events, status lines are dropped, and the others go on to quern's own
/// stderr (the attempt's log) and into `tail`, which keeps the last
/// [`STDERR_TAIL`] bytes.
fn read_stderr(stderr: impl Read, tail: &Mutex<Vec<u8>>, events: &SyncSender<Event>) {
    let mut stderr = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match stderr.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some((name, n)) = reporter_counter(&line) {
            if events.send(Event::Counter(name, n)).is_err() {
                return;
            }
            continue;
        }
        if line.starts_with(b"reporter:status:") {
            continue;
        }
        let _ = io::stderr().lock().write_all(&line);
        let Ok(mut tail) = tail.lock() else { return };
        tail.extend_from_slice(&line);
        if tail.len() > STDERR_TAIL {
            let excess = tail.len() - STDERR_TAIL;
            tail.drain(..excess);
        }
    }
}

/// The counter of a `reporter:counter:GROUP,COUNTER,AMOUNT` line, as
/// `GROUP.COUNTER` and a non-negative amount.
fn reporter_counter(line: &[u8]) -> Option<(String, u64)> {
    let line = std::str::from_utf8(line).ok()?.trim_end_matches(['\n', '\r']);
    let mut fields = line.strip_prefix("reporter:counter:")?.splitn(3, ',');
    let (group, counter, amount) = (fields.next()?, fields.next()?, fields.next()?);
    Some((format!("{group}.{counter}"), amount.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a process wrote: pairs and counters.
    #[derive(Default)]
    struct Written {
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        counters: Vec<(String, u64)>,
    }

    impl Output for Written {
        fn pair(&mut self, key: &[u8], value: &[u8]) {
            self.pairs.push((key.to_vec(), value.to_vec()));
        }

        fn count(&mut self, name: &str, n: u64) {
            self.counters.push((name.to_owned(), n));
        }
    }

    fn start<'s>(command: &str, dir: &Path, cancel: &'s AtomicBool) -> Process<'s> {
        Process::start(&CommandLine::parse(command).expect("a command"), dir, &[], cancel).expect("started")
    }

    #[test]
    fn output_lines_split_at_the_first_tab_and_a_line_without_one_is_all_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cancel = AtomicBool::new(false);
        let mut p = start("cat", dir.path(), &cancel);
        let mut out = Written::default();
        p.write(&[b"a\tb\tc\n", b"no tab\n", b"\t\n"], &mut out).expect("write");
        // More than a pipe holds, so the writer and the reader both wait
        // on the process at some point.
        let line = [b'x'; 1000];
        for _ in 0..1000 {
            p.write(&[&line, b"\n"], &mut out).expect("write");
        }
        p.write(&[b"last without a newline"], &mut out).expect("write");
        p.finish(&mut out).expect("cat succeeds");
        let got = out.pairs;
        assert_eq!(got.len(), 1004);
        assert_eq!(got[0], (b"a".to_vec(), b"b\tc".to_vec()));
        assert_eq!(got[1], (b"no tab".to_vec(), Vec::new()));
        assert_eq!(got[2], (Vec::new(), Vec::new()));
        assert_eq!(got[1003], (b"last without a newline".to_vec(), Vec::new()));
    }

    #[test]
    fn a_wait_gives_up_when_the_attempt_is_cancelled_and_the_process_is_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cancel = Arc::new(AtomicBool::new(false));
        let p = start("sleep 600", dir.path(), &cancel);
        let Running::Os(child) = &p.running else { panic!("a process") };
        let pid = child.id();
        let flag = Arc::clone(&cancel);
        let setter = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        let err = p.finish(&mut Written::default()).expect_err("cancelled");
        setter.join().expect("setter");
        assert!(err.message().contains("`sleep 600` was stopped: the attempt was cancelled"), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        // Dropped with the error: the process is gone.
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "sleep {pid} outlived its session");
    }

    #[test]
    fn a_failure_is_reported_promptly_when_something_it_started_holds_its_stderr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cancel = AtomicBool::new(false);
        let p = start("sh -c 'echo boom >&2; sleep 30 >/dev/null & exit 1'", dir.path(), &cancel);
        let started = Instant::now();
        let err = p.finish(&mut Written::default()).expect_err("exit 1");
        assert!(err.message().contains("exit status: 1") && err.message().contains("boom"), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?} for the background sleep", started.elapsed());
    }

    #[test]
    fn counter_lines_on_stderr_are_counted_and_other_lines_kept_for_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cancel = AtomicBool::new(false);
        let mut p = start(
            "sh -c 'cat >/dev/null; echo reporter:counter:words,seen,5 >&2; echo reporter:status:half >&2; \
             echo reporter:counter:words,seen,2 >&2; echo reporter:counter:bad,amount,-1 >&2; exit 4'",
            dir.path(),
            &cancel,
        );
        let mut out = Written::default();
        p.write(&[b"x\n"], &mut out).expect("write");
        let err = p.finish(&mut out).expect_err("exit 4");
        let tail = err.message().split_once("its stderr ends:").map(|(_, tail)| tail).unwrap_or_default();
        assert_eq!(tail.trim(), "reporter:counter:bad,amount,-1", "not a counter, so kept; status dropped: {err:?}");
        assert_eq!(out.counters, [("words.seen".to_owned(), 5), ("words.seen".to_owned(), 2)]);
    }
}
