//! The apps that ship inside the `quern` binary, and the demo corpus.
//!
//! # Overview
//! - [`WordCount`]: word → number of occurrences.
//! - [`Indexer`]: word → sorted, comma-joined, unique base names of the files
//!   containing it.
//! - [`Grep`]: map-only; every line matching a regex, as
//!   `FILE:LINE<TAB>line`.
//! - [`Top`]: the `n` keys with the largest counts, from `KEY<TAB>COUNT`
//!   lines (a wordcount's output), largest first.
//! - [`Sort`]: every input line, sorted by bytes (identity map and reduce),
//!   in total order: its part files concatenated in order are sorted.
//! - [`builtin_registry`]: all of the above, by name, with their parameters.
//! - [`corpus`]: a deterministic Zipf-distributed text generator for demos
//!   and benchmarks.
//!
//! A *word* is a maximal run of characters for which `char::is_alphabetic`
//! holds, lowercased with `str::to_lowercase`; input that is not UTF-8 is
//! decoded lossily first.
//!
//! # Example
//! ```
//! use quern_core::{App, Counters, MapContext, MapSink, Record};
//! use quern_apps::WordCount;
//!
//! struct Pairs(Vec<(Vec<u8>, Vec<u8>)>);
//! impl MapSink for Pairs {
//!     fn emit(&mut self, _: usize, k: &[u8], v: &[u8]) { self.0.push((k.to_vec(), v.to_vec())) }
//! }
//! let mut pairs = Pairs(Vec::new());
//! let mut counters = Counters::default();
//! let record = Record { source: "f", offset: 0, line: None, data: "Call me Ishmael.".as_bytes() };
//! WordCount.map(&record, &mut MapContext::new(&mut pairs, &mut counters)).unwrap();
//! assert_eq!(pairs.0[2], (b"ishmael".to_vec(), b"1".to_vec()));
//! ```

pub mod corpus;
mod grep;
mod indexer;
mod sort;
mod top;
mod wordcount;

use std::sync::Arc;

use quern_core::{AppRegistry, ParamSpec};

pub use grep::Grep;
pub use indexer::Indexer;
pub use quern_words::for_each_word;
pub use sort::Sort;
pub use top::Top;
pub use wordcount::WordCount;

/// A registry of every built-in app.
pub fn builtin_registry() -> AppRegistry {
    let mut r = AppRegistry::new();
    r.register("wordcount", "counts each word (a run of letters, lowercased) in text input", vec![], |_| {
        Ok(Arc::new(WordCount))
    });
    r.register(
        "indexer",
        "inverted index: each word with the sorted, comma-joined base names of the files containing it",
        vec![],
        |_| Ok(Arc::new(Indexer)),
    );
    r.register(
        "grep",
        "map-only: every line matching a regex, as FILE:LINE<TAB>line",
        vec![ParamSpec::required("pattern", "the regular expression to search for (Rust regex syntax)")],
        |params| Ok(Arc::new(Grep::new(params.require("pattern")?)?)),
    );
    r.register(
        "top",
        "the n keys with the largest counts from KEY<TAB>COUNT lines (a wordcount's output), largest first",
        vec![ParamSpec::optional("n", "how many keys (default 10)")],
        |params| Ok(Arc::new(Top::new(params.get("n").unwrap_or("10"))?)),
    );
    r.register(
        "sort",
        "sorts input lines by bytes, in total order: the part files concatenated in order are sorted",
        vec![],
        |_| Ok(Arc::new(Sort)),
    );
    r
}
