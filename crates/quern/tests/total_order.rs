//! Black-box tests of total order: `quern run --app sort` (total order by
//! default) against the real GNU `sort` with `LC_ALL=C`, the reducers'
//! shares on even and on skewed keys, and `--partitioner` for other apps.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as Std;

use predicates::prelude::*;
use support::*;

/// A deterministic stream of numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn text(&mut self, alphabet: &[u8], n: usize) -> Vec<u8> {
        (0..n).map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize]).collect()
    }
}

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const VALUE_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `n` TeraSort-like lines of 100 bytes, as `gen_sortdata.py` makes them:
/// a 10-character key, a TAB, 88 characters and `\n`.
fn terasort_lines(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 100);
    for _ in 0..n {
        out.extend(rng.text(KEY_ALPHABET, 10));
        out.push(b'\t');
        out.extend(rng.text(VALUE_ALPHABET, 88));
        out.push(b'\n');
    }
    out
}

/// GNU sort's output for `files`, bytewise (`LC_ALL=C`).
fn gnu_sort(files: &[PathBuf]) -> Vec<u8> {
    let out = Std::new("sort").env("LC_ALL", "C").args(files).output().expect("GNU sort runs");
    assert!(out.status.success(), "sort failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The part files `part-r-*` of `out`, in order.
fn part_files(out: &Path) -> Vec<Vec<u8>> {
    assert!(out.join("_SUCCESS").exists(), "{} has no _SUCCESS", out.display());
    let mut names: Vec<PathBuf> = fs::read_dir(out)
        .expect("output")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-r-")))
        .collect();
    names.sort();
    names.iter().map(|p| fs::read(p).expect("part file")).collect()
}

fn lines_in(part: &[u8]) -> usize {
    part.iter().filter(|&&b| b == b'\n').count()
}

/// Runs `sort` over `inputs` with `reducers` and more arguments; returns its
/// part files.
fn run_sort(inputs: &[PathBuf], out: &Path, reducers: u32, extra: &[&str]) -> Vec<Vec<u8>> {
    quern()
        .args(["run", "--app", "sort", "--quiet", "--reducers", &reducers.to_string(), "--input"])
        .args(inputs)
        .arg("--output")
        .arg(out)
        .args(extra)
        .assert()
        .success();
    part_files(out)
}

#[test]
fn sort_in_total_order_by_default_equals_gnu_sort_with_every_reducer_getting_its_share() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(10);
    // Over 4 MiB in all, so the plan samples places rather than reading
    // everything; one odd file with CRLF lines, duplicates, empty lines,
    // TABs and no final newline.
    let mut inputs = Vec::new();
    for (i, n) in [(0, 24_000), (1, 20_000), (2, 4_000)] {
        let path = tmp.path().join(format!("part-{i:05}.txt"));
        fs::write(&path, terasort_lines(&mut rng, n)).expect("write");
        inputs.push(path);
    }
    let odd = tmp.path().join("odd.txt");
    fs::write(&odd, "zz\r\nb\ttab\n\nb\ttab\n\r\nA\r\nzz\r\nlast line without newline").expect("write");
    inputs.push(odd);

    let out = tmp.path().join("sorted");
    let parts = run_sort(&inputs, &out, 4, &["--split-size", "512KiB", "--sort-buffer", "256KiB"]);
    assert_eq!(parts.len(), 4);
    assert!(parts.concat() == gnu_sort(&inputs), "part-r-* concatenated differ from LC_ALL=C sort's output");
    let total: usize = parts.iter().map(|p| lines_in(p)).sum();
    assert_eq!(total, 48_000 + 8);
    for (r, part) in parts.iter().enumerate() {
        let (n, share) = (lines_in(part), total / 4);
        assert!(n * 4 >= share * 3 && n * 4 <= share * 5, "reducer {r} got {n} lines of {total}; its share is {share}");
    }
}

#[test]
fn skewed_keys_leave_no_reducer_more_than_twice_its_share() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(11);
    // 60,000 lines of 100 bytes (over 4 MiB: the plan samples): three hot
    // lines (15%, 10%, 5%), 400 lukewarm ones 25 times each (about 17%),
    // and the rest unique; shuffled.
    let line = |rng: &mut Rng, key: &[u8]| {
        let mut l = key.to_vec();
        l.push(b'\t');
        l.extend(rng.text(VALUE_ALPHABET, 99 - l.len()));
        l
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for (hot, copies) in [(&b"hot one"[..], 9_000), (b"Hot two", 6_000), (b"hot three", 3_000)] {
        let hot = line(&mut rng, hot);
        lines.extend(std::iter::repeat_n(hot, copies));
    }
    for _ in 0..400 {
        let key = rng.text(KEY_ALPHABET, 6);
        let warm = line(&mut rng, &key);
        lines.extend(std::iter::repeat_n(warm, 25));
    }
    while lines.len() < 60_000 {
        let key = rng.text(KEY_ALPHABET, 10);
        lines.push(line(&mut rng, &key));
    }
    for i in (1..lines.len()).rev() {
        lines.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let input = tmp.path().join("skewed.txt");
    fs::write(&input, lines.iter().flat_map(|l| l.iter().chain(b"\n")).copied().collect::<Vec<u8>>()).expect("write");

    for reducers in [3u32, 10] {
        let out = tmp.path().join(format!("sorted-{reducers}"));
        let parts = run_sort(
            std::slice::from_ref(&input),
            &out,
            reducers,
            &["--split-size", "256KiB", "--sort-buffer", "128KiB"],
        );
        assert!(parts.concat() == gnu_sort(std::slice::from_ref(&input)), "{reducers} reducers: not GNU sort's output");
        let sizes: Vec<usize> = parts.iter().map(|p| lines_in(p)).collect();
        let share = 60_000 / reducers as usize;
        assert!(sizes.iter().all(|&n| n > 0 && n <= 2 * share), "{reducers} reducers, share {share}: {sizes:?}");
    }
}

#[test]
fn any_app_runs_in_total_order_and_sort_runs_by_hash_when_asked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(12);
    let input = tmp.path().join("words.txt");
    let mut text = String::new();
    for i in 0..20_000u64 {
        let word = String::from_utf8(rng.text(b"abcdefghij", 1 + (i % 5) as usize)).expect("ascii");
        text.push_str(&word);
        text.push(if i % 7 == 0 { '\n' } else { ' ' });
    }
    fs::write(&input, &text).expect("write");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for w in text.split_whitespace() {
        *expected.entry(w.to_owned()).or_default() += 1;
    }

    let out = tmp.path().join("counts");
    quern()
        .args(["run", "--app", "wordcount", "--quiet", "--partitioner", "total-order", "--reducers", "3"])
        .args(["--split-size", "16KiB", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .assert()
        .success();
    let parts = part_files(&out);
    assert!(parts.iter().all(|p| lines_in(p) > 0), "every reducer has words");
    let all = String::from_utf8(parts.concat()).expect("utf-8");
    let got: Vec<(String, u64)> = all
        .lines()
        .map(|l| l.split_once('\t').map(|(k, v)| (k.to_owned(), v.parse().expect("count"))).expect("key<TAB>value"))
        .collect();
    assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "the concatenation is sorted and complete");

    let lines = tmp.path().join("lines.txt");
    fs::write(&lines, terasort_lines(&mut rng, 3_000)).expect("write");
    let out = tmp.path().join("hashed");
    let parts = run_sort(std::slice::from_ref(&lines), &out, 3, &["--partitioner", "hash"]);
    for (r, part) in parts.iter().enumerate() {
        for line in part.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert_eq!(quern::partition(line, 3), r as u32, "by hash, a line is in its FNV-1a partition");
        }
    }
    let mut all: Vec<&[u8]> = parts.iter().flat_map(|p| p.split(|&b| b == b'\n').filter(|l| !l.is_empty())).collect();
    assert!(!all.is_sorted(), "by hash, the concatenation is not one sorted file");
    all.sort();
    assert_eq!(
        all.concat(),
        gnu_sort(std::slice::from_ref(&lines)).split(|&b| b == b'\n').collect::<Vec<_>>().concat()
    );

    quern()
        .args(["run", "--app", "sort", "--partitioner", "range", "--input"])
        .arg(&lines)
        .arg("--output")
        .arg(tmp.path().join("never"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("total-order"));
}
