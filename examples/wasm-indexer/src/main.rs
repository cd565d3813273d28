//! The inverted index as a WebAssembly module: `quern run --mapper
//! "wasm-indexer.wasm map" --combiner "wasm-indexer.wasm combine" --reducer
//! "wasm-indexer.wasm reduce"` gives what the built-in `indexer` gives:
//! each word and the sorted, comma-joined base names of the files that
//! contain it.
//!
//! Build: `cargo build --release --target wasm32-wasip1 -p wasm-indexer`.

use std::collections::BTreeSet;
use std::path::Path;

use quern_guest::{Emitter, Values};

/// Each word of the line, with the base name of the split's file (from
/// the environment quern sets).
fn map(line: &[u8], out: &mut Emitter) -> quern_guest::Result {
    let file = quern_guest::input_file().ok_or("mapreduce_map_input_file is not set")?;
    let name = Path::new(&file).file_name().map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
    quern_words::for_each_word(line, |word| out.emit(word.as_bytes(), name.as_bytes()));
    Ok(())
}

/// The union of a word's file names, sorted and comma-joined (also the
/// combiner: a union of unions is the union).
fn reduce(word: &[u8], names: &mut Values<'_>, out: &mut Emitter) -> quern_guest::Result {
    let mut union = BTreeSet::new();
    while let Some(value) = names.next() {
        for name in value.split(|&b| b == b',') {
            if !union.contains(name) {
                union.insert(name.to_vec());
            }
        }
    }
    out.emit(word, &union.into_iter().collect::<Vec<_>>().join(&b","[..]));
    Ok(())
}

quern_guest::main!(map = map, reduce = reduce, combine = reduce);
