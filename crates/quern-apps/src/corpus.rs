//! A deterministic text corpus for demos and benchmarks: words drawn from a
//! Zipf distribution over a made-up vocabulary, in lines of 6 to 16 words.
//!
//! The same (size, files, seed) always gives the same bytes, on every
//! machine, so benchmark figures and demo output can be compared.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_distr::Zipf;
use rand_pcg::Pcg64;

/// Words in the vocabulary.
const VOCABULARY: usize = 50_000;
/// The Zipf exponent: about that of English text.
const EXPONENT: f64 = 1.07;

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "ba", "de", "fu", "go", "hi", "ja", "qu", "xe", "yo", "wa",
    "pe", "an", "el", "in", "or", "um", "st", "th", "ch", "sh", "br",
];

/// The vocabulary: word `i` is spelled from the syllables of `i`, so words
/// are distinct and short words are the frequent ones.
fn vocabulary() -> Vec<String> {
    (0..VOCABULARY)
        .map(|mut i| {
            let mut w = String::new();
            loop {
                w.push_str(SYLLABLES[i % SYLLABLES.len()]);
                i /= SYLLABLES.len();
                if i == 0 {
                    break;
                }
                i -= 1;
            }
            w
        })
        .collect()
}

/// Writes about `total_bytes` of text into `files` files `part-NNNN.txt`
/// under `dir` (created if needed); returns their paths.
pub fn generate(dir: &Path, total_bytes: u64, files: u32, seed: u64) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let words = vocabulary();
    let mut rng = Pcg64::seed_from_u64(seed);
    let zipf = Zipf::new(VOCABULARY as f64, EXPONENT).map_err(io::Error::other)?;
    let files = files.max(1);
    let per_file = total_bytes / u64::from(files);
    let mut paths = Vec::with_capacity(files as usize);
    for f in 0..files {
        let path = dir.join(format!("part-{f:04}.txt"));
        let mut out = BufWriter::with_capacity(1 << 16, File::create(&path)?);
        let target = if f + 1 == files { total_bytes - per_file * u64::from(files - 1) } else { per_file };
        let mut written = 0u64;
        let mut line = String::with_capacity(160);
        while written < target {
            line.clear();
            let n = rng.random_range(6..=16);
            for i in 0..n {
                if i > 0 {
                    line.push(' ');
                }
                let k = rng.sample(zipf) as usize;
                let word = &words[k.clamp(1, VOCABULARY) - 1];
                if i == 0 {
                    let mut cs = word.chars();
                    if let Some(c) = cs.next() {
                        line.extend(c.to_uppercase());
                        line.push_str(cs.as_str());
                    }
                } else {
                    line.push_str(word);
                }
            }
            line.push_str(".\n");
            let take = (target - written).min(line.len() as u64) as usize;
            out.write_all(&line.as_bytes()[..take])?;
            written += take as u64;
        }
        out.flush()?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_sizes_add_up() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let pa = generate(a.path(), 10_000, 3, 7).expect("generate");
        let pb = generate(b.path(), 10_000, 3, 7).expect("generate");
        let total: u64 = pa.iter().map(|p| std::fs::metadata(p).expect("stat").len()).sum();
        assert_eq!(total, 10_000);
        for (x, y) in pa.iter().zip(&pb) {
            assert_eq!(std::fs::read(x).expect("read"), std::fs::read(y).expect("read"));
        }
        let other = tempfile::tempdir().expect("tempdir");
        let pc = generate(other.path(), 10_000, 3, 8).expect("generate");
        assert_ne!(std::fs::read(&pa[0]).expect("read"), std::fs::read(&pc[0]).expect("read"));
    }
}
