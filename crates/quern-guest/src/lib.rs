//! Write a quern job's map, combine and reduce in Rust, and run them as a
//! sandboxed WebAssembly module (`--mapper "wc.wasm map"`) or as a plain
//! streaming program: a few functions and one [`main!`] line.
//!
//! ```no_run
//! use quern_guest::{Emitter, Values};
//!
//! fn map(line: &[u8], out: &mut Emitter) -> quern_guest::Result {
//!     for word in line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
//!         out.emit(word, b"1");
//!     }
//!     Ok(())
//! }
//!
//! fn reduce(word: &[u8], counts: &mut Values<'_>, out: &mut Emitter) -> quern_guest::Result {
//!     let mut total = 0u64;
//!     while let Some(count) = counts.next() {
//!         total += quern_guest::parse_u64(count)?;
//!     }
//!     out.emit(word, total.to_string().as_bytes());
//!     Ok(())
//! }
//!
//! quern_guest::main!(map = map, reduce = reduce, combine = reduce);
//! ```
//!
//! A map with state over its whole split (Hadoop's `Mapper` with its
//! `cleanup`) implements [`Mapper`]: `map` for each line, then `finish`,
//! which may still emit; `main!(map = Counts::default(), …)` runs it. That
//! is how a module combines in the mapper, as the built-in wordcount does.
//!
//! Built with `cargo build --release --target wasm32-wasip1`, the binary
//! `target/wasm32-wasip1/release/NAME.wasm` is the module; its first
//! argument says which function runs (`map`, `combine` or `reduce`).
//!
//! The protocol is Hadoop streaming's, as quern speaks it:
//! - `map` is called with each line of the split (without its `\n`);
//! - `combine` and `reduce` are called once per key, in key order, with
//!   the key's values ([`Values`]), from `key<TAB>value` lines;
//! - [`Emitter::emit`] writes `key<TAB>value` lines, buffered in 64 KiB
//!   blocks; [`Emitter::count`] adds to a job counter (a
//!   `reporter:counter:` line on stderr);
//! - an error returned by a function, or a failed write, is printed on
//!   stderr, naming the line, and the program exits with status 1, which
//!   fails the attempt.
//!
//! # Invariants
//! - Depends on nothing but `std`: it builds for `wasm32-wasip1`, and the
//!   same code runs natively (and is tested natively).

use std::env;
use std::error::Error;
use std::fmt;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

/// What a map, combine or reduce function returns: `?` works on any error.
pub type Result = std::result::Result<(), Box<dyn Error + Send + Sync>>;

/// A map over a split's lines, with state: `map` for each line (without
/// its `\n`), then `finish` once after the last, where it may still emit.
/// A plain function `fn(&[u8], &mut Emitter) -> Result` is a mapper.
pub trait Mapper {
    /// Maps one line.
    fn map(&mut self, line: &[u8], out: &mut Emitter<'_>) -> Result;

    /// Called once after the last line.
    fn finish(&mut self, out: &mut Emitter<'_>) -> Result {
        let _ = out;
        Ok(())
    }
}

impl<F: FnMut(&[u8], &mut Emitter<'_>) -> Result> Mapper for F {
    fn map(&mut self, line: &[u8], out: &mut Emitter<'_>) -> Result {
        self(line, out)
    }
}

/// Makes the program's mapper (what `main!(map = …)` is given).
pub type MapFn = fn() -> Box<dyn Mapper>;
/// A combine or reduce function: one key, its values, and where to emit.
pub type ReduceFn = fn(&[u8], &mut Values<'_>, &mut Emitter) -> Result;

/// Bytes read and written at once.
const BUFFER: usize = 64 << 10;

/// The program's entry: `main!(map = m, reduce = r, combine = c)`, each
/// part optional but at least one, in that order; `m` is a function or a
/// [`Mapper`] value. Defines `fn main`, which runs the step its first
/// argument names.
#[macro_export]
macro_rules! main {
    ($(map = $map:expr)? $(, reduce = $reduce:path)? $(, combine = $combine:path)? $(,)?) => {
        fn main() -> ::std::process::ExitCode {
            $crate::main_with($crate::Steps {
                map: None $(.or(Some((|| Box::new($map) as Box<dyn $crate::Mapper>) as $crate::MapFn)))?,
                reduce: None $(.or(Some($reduce as $crate::ReduceFn)))?,
                combine: None $(.or(Some($combine as $crate::ReduceFn)))?,
            })
        }
    };
}

/// The functions a program offers; see [`main!`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Steps {
    /// Run by `PROGRAM map`.
    pub map: Option<MapFn>,
    /// Run by `PROGRAM reduce`.
    pub reduce: Option<ReduceFn>,
    /// Run by `PROGRAM combine`.
    pub combine: Option<ReduceFn>,
}

/// Runs the step named by the first argument over stdin and stdout; what
/// [`main!`]'s `main` does.
pub fn main_with(steps: Steps) -> ExitCode {
    let role = env::args().nth(1).unwrap_or_default();
    let stdin = BufReader::with_capacity(BUFFER, io::stdin().lock());
    let stdout = io::stdout().lock();
    let ran = match (role.as_str(), steps) {
        ("map", Steps { map: Some(mapper), .. }) => run_map(stdin, stdout, &mut *mapper()),
        ("reduce", Steps { reduce: Some(reduce), .. }) => run_reduce(stdin, stdout, reduce),
        ("combine", Steps { combine: Some(combine), .. }) => run_reduce(stdin, stdout, combine),
        _ => {
            let offered: Vec<&str> = [
                ("map", steps.map.is_some()),
                ("reduce", steps.reduce.is_some()),
                ("combine", steps.combine.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, offered)| offered.then_some(name))
            .collect();
            eprintln!("usage: PROGRAM {}  (got {role:?})", offered.join("|"));
            return ExitCode::from(2);
        }
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{role}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a step failed: where, and what went wrong.
#[derive(Debug)]
pub enum StepError {
    /// Reading stdin or writing stdout failed.
    Io(io::Error),
    /// The function returned an error on the given input line (1-based).
    Function {
        /// The input line it was called on (for a reduce, the key's first).
        line: u64,
        /// Its error.
        error: Box<dyn Error + Send + Sync>,
    },
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Io(e) => write!(f, "{e}"),
            StepError::Function { line, error } => write!(f, "input line {line}: {error}"),
        }
    }
}

impl Error for StepError {}

impl From<io::Error> for StepError {
    fn from(e: io::Error) -> Self {
        StepError::Io(e)
    }
}

/// Where a function's pairs go: `key<TAB>value` lines on the output.
pub struct Emitter<'w> {
    out: BufWriter<Box<dyn Write + 'w>>,
    error: Option<io::Error>,
}

impl fmt::Debug for Emitter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter").finish_non_exhaustive()
    }
}

impl<'w> Emitter<'w> {
    fn new(out: impl Write + 'w) -> Emitter<'w> {
        Emitter { out: BufWriter::with_capacity(BUFFER, Box::new(out)), error: None }
    }

    /// Emits one pair. A key must hold no TAB or newline and a value no
    /// newline, or the line will be read back differently.
    pub fn emit(&mut self, key: &[u8], value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let written = self
            .out
            .write_all(key)
            .and_then(|()| self.out.write_all(b"\t"))
            .and_then(|()| self.out.write_all(value))
            .and_then(|()| self.out.write_all(b"\n"));
        if let Err(e) = written {
            self.error = Some(e);
        }
    }

    /// Adds `n` to the job's counter `GROUP.COUNTER`.
    pub fn count(&mut self, group: &str, counter: &str, n: u64) {
        eprintln!("reporter:counter:{group},{counter},{n}");
    }

    fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

/// Parses a decimal count, such as a wordcount's values.
pub fn parse_u64(value: &[u8]) -> std::result::Result<u64, Box<dyn Error + Send + Sync>> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{:?} is not a decimal count", String::from_utf8_lossy(value)).into())
}

/// The value of the environment variable quern sets for a map: the input
/// file of the split, as the job named it.
pub fn input_file() -> Option<String> {
    env::var("mapreduce_map_input_file").ok()
}

/// Calls `mapper` with each line of `input` (without its `\n`), then
/// finishes it; its pairs are written to `output`.
pub fn run_map(
    mut input: impl BufRead,
    output: impl Write,
    mapper: &mut dyn Mapper,
) -> std::result::Result<(), StepError> {
    let mut out = Emitter::new(output);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        mapper.map(text, &mut out).map_err(|error| StepError::Function { line: number, error })?;
    }
    mapper.finish(&mut out).map_err(|error| StepError::Function { line: number, error })?;
    Ok(out.finish()?)
}

/// Calls `reduce` once per key of `input`'s `key<TAB>value` lines (equal
/// keys adjacent), with the key's values; its pairs are written to
/// `output`.
pub fn run_reduce(input: impl BufRead, output: impl Write, reduce: ReduceFn) -> std::result::Result<(), StepError> {
    let mut out = Emitter::new(output);
    let mut lines = Lines { input, line: Vec::new(), number: 0, present: false, error: None };
    lines.advance();
    let mut key = Vec::new();
    while lines.present {
        key.clear();
        key.extend_from_slice(lines.key());
        let first = lines.number;
        let mut values = Values { lines: &mut lines, key: &key, state: Group::First };
        reduce(&key, &mut values, &mut out).map_err(|error| StepError::Function { line: first, error })?;
        // The values it did not take.
        while values.next().is_some() {}
        if let Some(e) = lines.error.take() {
            return Err(e.into());
        }
    }
    Ok(out.finish()?)
}

/// The input lines of a combine or reduce, one looked ahead.
struct Lines<R> {
    input: R,
    /// The current line, without its `\n`.
    line: Vec<u8>,
    number: u64,
    present: bool,
    error: Option<io::Error>,
}

/// What [`Values`] reads from: [`Lines`] over any reader.
trait Grouped {
    fn advance(&mut self);
    fn present(&self) -> bool;
    fn key(&self) -> &[u8];
    fn value(&self) -> &[u8];
}

impl<R: BufRead> Grouped for Lines<R> {
    fn present(&self) -> bool {
        self.present
    }

    fn advance(&mut self) {
        self.line.clear();
        self.present = match self.input.read_until(b'\n', &mut self.line) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => {
                self.error = Some(e);
                false
            }
        };
        if self.present {
            self.number += 1;
            if self.line.last() == Some(&b'\n') {
                self.line.pop();
            }
        }
    }

    fn key(&self) -> &[u8] {
        self.line.split(|&b| b == b'\t').next().unwrap_or_default()
    }

    fn value(&self) -> &[u8] {
        match self.line.iter().position(|&b| b == b'\t') {
            Some(tab) => &self.line[tab + 1..],
            None => b"",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    First,
    More,
    Done,
}

/// One key's values, read as they are asked for.
pub struct Values<'a> {
    lines: &'a mut (dyn Grouped + 'a),
    key: &'a [u8],
    state: Group,
}

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Values").field("key", &String::from_utf8_lossy(self.key)).finish_non_exhaustive()
    }
}

impl Values<'_> {
    /// The next value of the key, or `None` after its last.
    #[allow(clippy::should_implement_trait)] // a lending iterator: the value borrows the reader
    pub fn next(&mut self) -> Option<&[u8]> {
        match self.state {
            Group::Done => return None,
            Group::First => self.state = Group::More,
            Group::More => {
                self.lines.advance();
                if !self.lines.present() || self.lines.key() != self.key {
                    self.state = Group::Done;
                    return None;
                }
            }
        }
        Some(self.lines.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &[u8], out: &mut Emitter) -> Result {
        for word in line.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            out.emit(word, b"1");
        }
        Ok(())
    }

    fn sum(key: &[u8], values: &mut Values<'_>, out: &mut Emitter) -> Result {
        let mut total = 0;
        while let Some(v) = values.next() {
            total += parse_u64(v)?;
        }
        out.emit(key, total.to_string().as_bytes());
        Ok(())
    }

    fn first_only(key: &[u8], values: &mut Values<'_>, out: &mut Emitter) -> Result {
        let first = values.next().unwrap_or_default().to_vec();
        out.emit(key, &first);
        Ok(())
    }

    #[test]
    fn map_gets_each_line_and_emits_tab_separated_pairs() {
        let mut out = Vec::new();
        run_map(&b"a b\n\nb c"[..], &mut out, &mut words).expect("maps");
        assert_eq!(out, b"a\t1\nb\t1\nb\t1\nc\t1\n");
    }

    /// Counts lines, and emits the count at the end.
    #[derive(Default)]
    struct LineCount(u64);

    impl Mapper for LineCount {
        fn map(&mut self, _: &[u8], _: &mut Emitter<'_>) -> Result {
            self.0 += 1;
            Ok(())
        }

        fn finish(&mut self, out: &mut Emitter<'_>) -> Result {
            out.emit(b"lines", self.0.to_string().as_bytes());
            Ok(())
        }
    }

    #[test]
    fn a_mapper_keeps_state_over_the_split_and_emits_when_it_finishes() {
        let mut out = Vec::new();
        run_map(&b"a\nb\nc\n"[..], &mut out, &mut LineCount::default()).expect("maps");
        assert_eq!(out, b"lines\t3\n");
    }

    #[test]
    fn reduce_groups_adjacent_keys_and_skips_values_not_taken() {
        let input = b"a\t1\na\t2\nb\t5\nc\nc\t\nd\t1\td\n";
        let mut out = Vec::new();
        run_reduce(&input[..], &mut out, sum).expect_err("c's value is empty: not a count");
        let mut out2 = Vec::new();
        run_reduce(&input[..], &mut out2, first_only).expect("reduces");
        assert_eq!(out2, b"a\t1\nb\t5\nc\t\nd\t1\td\n");
        out.clear();
        run_reduce(&b"a\t1\na\t2\nb\t5\n"[..], &mut out, sum).expect("reduces");
        assert_eq!(out, b"a\t3\nb\t5\n");
    }

    #[test]
    fn an_error_names_the_input_line() {
        let mut out = Vec::new();
        let err = run_reduce(&b"a\t1\nb\tx\nb\t1\n"[..], &mut out, sum).expect_err("x");
        assert_eq!(err.to_string(), "input line 2: \"x\" is not a decimal count");
    }
}
