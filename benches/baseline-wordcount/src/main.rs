//! A straightforward hand-written word count: two threads, each reading
//! every other file whole, counting words (maximal runs of alphabetic
//! characters, lowercased, after lossy UTF-8 decoding, as quern's wordcount
//! does) in a `HashMap`; the maps are merged and written sorted as
//! `word<TAB>count` lines.
//!
//! Usage: `baseline-wordcount OUTPUT_FILE INPUT_FILE...`

use std::collections::HashMap;
use std::io::{BufWriter, Write};

fn count(files: &[String]) -> std::io::Result<HashMap<String, u64>> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for f in files {
        let bytes = std::fs::read(f)?;
        let text = String::from_utf8_lossy(&bytes);
        for word in text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
            let word = word.to_lowercase();
            match counts.get_mut(&word) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(word, 1);
                }
            }
        }
    }
    Ok(counts)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let output = args.next().ok_or("usage: baseline-wordcount OUTPUT_FILE INPUT_FILE...")?;
    let inputs: Vec<String> = args.collect();
    let halves: [Vec<String>; 2] =
        [inputs.iter().step_by(2).cloned().collect(), inputs.iter().skip(1).step_by(2).cloned().collect()];
    let mut total: HashMap<String, u64> = HashMap::new();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = halves.iter().map(|h| s.spawn(move || count(h))).collect();
        handles.into_iter().map(|h| h.join().map_err(|_| "a counting thread panicked")).collect::<Vec<_>>()
    });
    for r in results {
        for (w, n) in r?? {
            *total.entry(w).or_insert(0) += n;
        }
    }
    let mut words: Vec<(String, u64)> = total.into_iter().collect();
    words.sort_unstable();
    let mut out = BufWriter::new(std::fs::File::create(&output)?);
    for (w, n) in words {
        writeln!(out, "{w}\t{n}")?;
    }
    out.flush()?;
    Ok(())
}
