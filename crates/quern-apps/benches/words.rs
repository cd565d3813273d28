//! Microbenchmarks of the word splitter, on deterministic text shaped like
//! `gen_corpus.py`'s (`../shared/bench`): words drawn by Zipf's law
//! (exponent 1.0) over 200,000 made-up words, lines of 5 to 20 words,
//! capitalised sentence starts, some Title-case and UPPER-case words,
//! punctuation, numbers, and a few UTF-8 curly quotes.
//!
//! - `words/for_each_word`: [`quern_apps::for_each_word`] over the text,
//!   line by line as a map task reads it;
//! - `words/wordcount_map`: [`quern_apps::WordCount`]'s `map` over the same
//!   lines, emitting into a sink that only counts: the splitter plus the
//!   path from a word to the engine's `emit`.
//!
//! `cargo bench -p quern-apps --bench words` runs them; `-- --test` runs
//! each once (a check, not a measurement).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quern_apps::{WordCount, for_each_word};
use quern_core::{App, Counters, MapContext, MapSink, Record};

/// Bytes of text.
const TEXT_BYTES: usize = 8 << 20;
/// Distinct words to draw from, and the Zipf exponent (`gen_corpus.py`'s).
const VOCABULARY: usize = 200_000;
const ZIPF_EXPONENT: f64 = 1.0;

/// A small deterministic generator (SplitMix64): the same text on every
/// machine, without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The vocabulary, most frequent first: word `i` is spelled from the
/// syllables of `i`, so words are distinct and frequent words are short.
fn vocabulary() -> Vec<String> {
    const SYLLABLES: [&str; 30] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "ba", "de", "fu", "go", "hi", "ja", "qu", "xe", "yo",
        "wa", "pe", "an", "el", "in", "or", "um", "st", "th", "ch", "sh", "br",
    ];
    (0..VOCABULARY)
        .map(|mut i| {
            let mut w = String::new();
            loop {
                w.push_str(SYLLABLES[i % SYLLABLES.len()]);
                i /= SYLLABLES.len();
                if i == 0 {
                    break w;
                }
                i -= 1;
            }
        })
        .collect()
}

/// Picks one of `choices` by its probability, or `""` with the rest.
fn pick(rng: &mut SplitMix, choices: &[(&'static str, f64)]) -> &'static str {
    let mut u = rng.unit();
    for &(text, p) in choices {
        if u < p {
            return text;
        }
        u -= p;
    }
    ""
}

/// About [`TEXT_BYTES`] of book-like text, cut at a line end.
fn text() -> Vec<u8> {
    const BEFORE: [(&str, f64); 4] = [("\"", 0.008), ("(", 0.002), ("\u{201c}", 0.001), ("'", 0.001)];
    const AFTER: [(&str, f64); 10] = [
        (",", 0.060),
        (".", 0.040),
        (";", 0.006),
        ("!", 0.004),
        ("?", 0.005),
        ("'s", 0.008),
        ("\u{2019}s", 0.001),
        (".\"", 0.004),
        (")", 0.002),
        ("\u{201d}", 0.001),
    ];
    const NUMBERS: [&str; 8] = ["1", "12", "100", "1850", "1914", "III", "2nd", "0.5"];
    let vocabulary = vocabulary();
    let mut cdf = Vec::with_capacity(VOCABULARY);
    let mut total = 0.0;
    for r in 1..=VOCABULARY {
        total += 1.0 / (r as f64).powf(ZIPF_EXPONENT);
        cdf.push(total);
    }
    let mut rng = SplitMix(6584);
    let mut text = String::with_capacity(TEXT_BYTES + 256);
    let mut capital = true;
    while text.len() < TEXT_BYTES {
        let words = 5 + rng.below(16);
        for i in 0..words {
            text.push_str(pick(&mut rng, &BEFORE));
            let u = rng.unit() * total;
            let word = &vocabulary[cdf.partition_point(|&c| c <= u).min(VOCABULARY - 1)];
            let case = rng.unit();
            if rng.unit() < 0.003 {
                text.push_str(NUMBERS[rng.below(NUMBERS.len())]);
            } else if case > 0.997 {
                text.push_str(&word.to_uppercase());
            } else if capital || case < 0.03 {
                text.push_str(&word[..1].to_uppercase());
                text.push_str(&word[1..]);
            } else {
                text.push_str(word);
            }
            let after = pick(&mut rng, &AFTER);
            text.push_str(after);
            capital = matches!(after, "." | "!" | "?" | ".\"");
            text.push(if i + 1 == words { '\n' } else { ' ' });
        }
    }
    text.into_bytes()
}

/// A sink that counts what it is given.
struct Count(usize);

impl MapSink for Count {
    fn emit(&mut self, _: usize, key: &[u8], value: &[u8]) {
        self.0 += key.len() + value.len();
    }
}

fn words(c: &mut Criterion) {
    let text = text();
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let mut group = c.benchmark_group("words");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(20);
    let size = format!("{}MiB", TEXT_BYTES >> 20);
    group.bench_function(format!("for_each_word/{size}"), |b| {
        b.iter(|| {
            let mut letters = 0;
            for line in &lines {
                for_each_word(line, |w| letters += black_box(w).len());
            }
            letters
        });
    });
    group.bench_function(format!("wordcount_map/{size}"), |b| {
        b.iter(|| {
            let mut sink = Count(0);
            let mut counters = Counters::default();
            let mut offset = 0;
            for line in &lines {
                let record = Record { source: "bench", offset, line: None, data: line };
                WordCount.map(&record, &mut MapContext::new(&mut sink, &mut counters)).expect("map");
                offset += line.len() as u64 + 1;
            }
            sink.0
        });
    });
    group.finish();
}

criterion_group!(benches, words);
criterion_main!(benches);
