//! Wordcount as a WebAssembly module: `quern run --mapper "wasm-wordcount.wasm
//! map" --combiner "wasm-wordcount.wasm combine" --reducer
//! "wasm-wordcount.wasm reduce"` gives what the built-in `wordcount` gives.
//!
//! Build: `cargo build --release --target wasm32-wasip1 -p wasm-wordcount`.

use quern_guest::{Emitter, Values};

/// Each word of the line, once.
fn map(line: &[u8], out: &mut Emitter) -> quern_guest::Result {
    quern_words::for_each_word(line, |word| out.emit(word.as_bytes(), b"1"));
    Ok(())
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

quern_guest::main!(map = map, reduce = reduce, combine = reduce);
