//! Wordcount as a WebAssembly module: `quern run --mapper "wasm-wordcount.wasm
//! map" --combiner "wasm-wordcount.wasm combine" --reducer
//! "wasm-wordcount.wasm reduce"` gives what the built-in `wordcount` gives.
//!
//! Build: `cargo build --release --target wasm32-wasip1 -p wasm-wordcount`.

use std::collections::HashMap;

use quern_guest::{Emitter, Mapper, Values};

/// The words of the whole split with their counts, each emitted once when
/// the split is done (in-mapper combining, as the built-in wordcount's
/// table does): a split of millions of words sends one line per distinct
/// word through the pipe.
#[derive(Default)]
struct WordCounts(HashMap<String, u64>);

impl Mapper for WordCounts {
    fn map(&mut self, line: &[u8], _: &mut Emitter<'_>) -> quern_guest::Result {
        quern_words::for_each_word(line, |word| match self.0.get_mut(word) {
            Some(count) => *count += 1,
            None => {
                self.0.insert(word.to_owned(), 1);
            }
        });
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter<'_>) -> quern_guest::Result {
        for (word, count) in self.0.drain() {
            out.emit(word.as_bytes(), count.to_string().as_bytes());
        }
        Ok(())
    }
}

/// A word's total count (also the combiner: a sum of sums is the sum).
fn reduce(word: &[u8], counts: &mut Values<'_>, out: &mut Emitter) -> quern_guest::Result {
    let mut total = 0u64;
    while let Some(count) = counts.next() {
        total += quern_guest::parse_u64(count)?;
    }
    out.emit(word, total.to_string().as_bytes());
    Ok(())
}

quern_guest::main!(map = WordCounts::default(), reduce = reduce, combine = reduce);
