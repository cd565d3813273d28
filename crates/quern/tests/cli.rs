//! Black-box tests of the `quern` binary: every command, on generated data
//! and on the Gutenberg books in `../shared/data/gutenberg/`, compared with
//! answers computed here independently of the engine.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use predicates::prelude::*;
use support::*;

/// Every `key<TAB>value` line of every part file of `out` (and of its named
/// output directories), with the file it came from.
fn read_parts(out: &Path) -> Vec<(String, String)> {
    assert!(out.join("_SUCCESS").exists(), "{} has no _SUCCESS", out.display());
    assert!(!out.join("_temporary").exists(), "{} still has _temporary", out.display());
    let mut files: Vec<PathBuf> = walk(out).into_iter().filter(|p| file_name(p).starts_with("part-")).collect();
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).expect("read part file");
        for line in text.lines() {
            lines.push((file_name(&f), line.to_owned()));
        }
    }
    lines
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

fn file_name(p: &Path) -> String {
    p.file_name().expect("file name").to_string_lossy().into_owned()
}

/// Word counts computed the simple way, with the documented word rule.
fn expected_wordcount(files: &[PathBuf]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for f in files {
        let text = String::from_utf8_lossy(&fs::read(f).expect("read input")).into_owned();
        for w in text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
            *counts.entry(w.to_lowercase()).or_insert(0) += 1;
        }
    }
    counts
}

fn as_map(lines: &[(String, String)]) -> BTreeMap<String, u64> {
    lines
        .iter()
        .map(|(_, l)| {
            let (k, v) = l.split_once('\t').expect("key<TAB>value");
            (k.to_owned(), v.parse().expect("count"))
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v = walk(dir);
    v.sort();
    v
}

/// Each part file is sorted by key, and a key is in the partition the
/// documented FNV-1a rule says.
fn assert_sorted_and_partitioned(out: &Path, reducers: u32) {
    for f in walk(out).into_iter().filter(|p| file_name(p).starts_with("part-r-")) {
        let r: u32 = file_name(&f)["part-r-".len()..].parse().expect("partition number");
        let text = fs::read(&f).expect("read");
        let keys: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| l.split(|&b| b == b'\t').next().unwrap_or(l))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{} is not sorted", f.display());
        for k in keys {
            assert_eq!(quern::partition(k, reducers), r, "key {:?} in the wrong partition", String::from_utf8_lossy(k));
        }
    }
}

#[test]
fn wordcount_on_gutenberg_matches_a_simple_count() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let stats = tmp.path().join("stats.json");
    quern()
        .args(["run", "--app", "wordcount", "--reducers", "4", "--split-size", "100KiB", "--input"])
        .arg(gutenberg())
        .arg("--output")
        .arg(&out)
        .arg("--stats-json")
        .arg(&stats)
        .assert()
        .success()
        .stdout(predicate::str::contains("job succeeded"));
    let lines = read_parts(&out);
    assert_eq!(as_map(&lines), expected_wordcount(&files_in(&gutenberg())));
    assert_sorted_and_partitioned(&out, 4);
    let stats: serde_json::Value = serde_json::from_slice(&fs::read(&stats).expect("stats")).expect("json");
    let total: u64 = files_in(&gutenberg()).iter().map(|f| fs::metadata(f).expect("stat").len()).sum();
    assert_eq!(stats["counters"]["input_bytes"], total);
    assert_eq!(stats["counters"]["output_records"], lines.len() as u64);
    assert!(stats["map_tasks"].as_u64().expect("map_tasks") > 8, "100KiB splits cut the books");
}

#[test]
fn indexer_lists_the_files_containing_each_word() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a.txt");
    let b = tmp.path().join("b.txt");
    fs::write(&a, "The whale, the WHALE!\nand a ship").expect("write");
    fs::write(&b, "ship ahoy\nthe end").expect("write");
    let out = tmp.path().join("idx");
    quern().args(["run", "--app", "indexer", "--input"]).arg(&a).arg(&b).arg("--output").arg(&out).assert().success();
    let got: Vec<String> = read_parts(&out).into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        got,
        [
            "a\ta.txt",
            "ahoy\tb.txt",
            "and\ta.txt",
            "end\tb.txt",
            "ship\ta.txt,b.txt",
            "the\ta.txt,b.txt",
            "whale\ta.txt"
        ]
    );
}

#[test]
fn grep_is_map_only_and_names_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let books = gutenberg();
    let out = tmp.path().join("hits");
    quern()
        .args(["run", "--app", "grep", "--param", "pattern=whale|ship", "--split-size", "64KiB", "--input"])
        .arg(&books)
        .arg("--output")
        .arg(&out)
        .assert()
        .success();
    let mut expected = Vec::new();
    let re = regex_lite(&["whale", "ship"]);
    for f in files_in(&books) {
        let text = fs::read(&f).expect("read");
        for (i, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if re(line) {
                expected.push(format!("{}:{}\t{}", f.display(), i + 1, String::from_utf8_lossy(line)));
            }
        }
    }
    let lines = read_parts(&out);
    assert!(lines.iter().all(|(f, _)| f.starts_with("part-m-")), "map-only output is part-m-*");
    let got: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected, "every matching line, in input order");
}

fn regex_lite(words: &'static [&'static str]) -> impl Fn(&[u8]) -> bool {
    move |line| words.iter().any(|w| line.windows(w.len()).any(|win| win == w.as_bytes()))
}

#[test]
fn sort_with_tiny_buffers_spills_and_still_sorts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("lines.txt");
    let mut f = fs::File::create(&input).expect("create");
    let mut expected = Vec::new();
    let mut x: u64 = 12345;
    for _ in 0..20_000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let line = format!("{:016x}", x >> 11);
        writeln!(f, "{line}").expect("write");
        expected.push(line);
    }
    drop(f);
    expected.sort();
    let out = tmp.path().join("sorted");
    let stats = tmp.path().join("stats.json");
    let input_len = fs::metadata(&input).expect("stat").len();
    quern()
        .args(["run", "--app", "sort", "--reducers", "1", "--sort-buffer", "8KiB", "--merge-factor", "3", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .arg("--stats-json")
        .arg(&stats)
        .assert()
        .success();
    let got: Vec<String> = read_parts(&out).into_iter().map(|(_, l)| l).collect();
    assert_eq!(got, expected);
    let stats: serde_json::Value = serde_json::from_slice(&fs::read(&stats).expect("stats")).expect("json");
    let map_bytes = stats["counters"]["map_output_bytes"].as_u64().expect("bytes");
    assert!(map_bytes >= 8 * 8 * 1024, "intermediate data is at least 8x the sort buffer");
    assert!(map_bytes >= input_len - 20_000);
    assert!(stats["counters"]["spills"].as_u64().expect("spills") >= 8, "many spills: {stats}");
}

#[test]
fn existing_output_is_refused_with_exit_2_and_left_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    fs::write(out.join("precious.txt"), "keep me").expect("write");
    quern()
        .args(["run", "--app", "wordcount", "--input"])
        .arg(gutenberg())
        .arg("--output")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(fs::read_dir(&out).expect("read").count(), 1);
    assert_eq!(fs::read_to_string(out.join("precious.txt")).expect("read"), "keep me");
}

#[test]
fn bad_input_is_named_before_any_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--app".into(), "nope".into(), "--input".into(), "x".into()], "unknown app 'nope'"),
        (
            vec![
                "--app".into(),
                "wordcount".into(),
                "--input".into(),
                tmp.path().join("missing.txt").display().to_string(),
            ],
            "missing.txt: no such file or directory",
        ),
        (
            vec![
                "--app".into(),
                "wordcount".into(),
                "--input".into(),
                tmp.path().join("*.nothing").display().to_string(),
            ],
            "no file matches this pattern",
        ),
        (
            vec!["--app".into(), "wordcount".into(), "--param".into(), "x=1".into(), "--input".into(), "x".into()],
            "app 'wordcount' has no parameter 'x'",
        ),
        (vec!["--app".into(), "grep".into(), "--input".into(), "x".into()], "needs parameter 'pattern'"),
        (
            vec!["--app".into(), "grep".into(), "--param".into(), "pattern=(".into(), "--input".into(), "x".into()],
            "parameter 'pattern'",
        ),
        (
            vec![
                "--app".into(),
                "wordcount".into(),
                "--sort-buffer".into(),
                "lots".into(),
                "--input".into(),
                "x".into(),
            ],
            "--sort-buffer",
        ),
        (
            vec!["--app".into(), "wordcount".into(), "--split-size".into(), "0".into(), "--input".into(), "x".into()],
            "--split-size: must be at least 1 byte",
        ),
    ];
    for (args, message) in cases {
        quern()
            .arg("run")
            .args(&args)
            .arg("--output")
            .arg(&out)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
        assert!(!out.exists(), "a refused job creates no output ({args:?})");
    }
}

#[cfg(unix)]
#[test]
fn unreadable_input_is_named_before_any_work() {
    // A dangling link cannot be read, even by root (CI runs as root, so file
    // permissions would not do).
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("in");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("ok.txt"), "fine").expect("write");
    std::os::unix::fs::symlink(tmp.path().join("gone.txt"), dir.join("link.txt")).expect("symlink");
    let out = tmp.path().join("out");
    quern()
        .args(["run", "--app", "wordcount", "--input"])
        .arg(&dir)
        .arg("--output")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("link.txt"));
    assert!(!out.exists());
}

#[test]
fn corrupt_compressed_input_fails_the_job_and_leaves_no_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let broken = tmp.path().join("broken.gz");
    fs::write(&broken, "this is not gzip").expect("write");
    let out = tmp.path().join("out");
    quern()
        .args(["run", "--app", "wordcount", "--max-attempts", "2", "--input"])
        .arg(&broken)
        .arg("--output")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(
            // Corrupt data is not retried: another attempt would read the same bytes.
            predicate::str::contains("task m-00000 failed: input ")
                .and(predicate::str::contains("broken.gz"))
                .and(predicate::str::contains("corrupt gzip data")),
        );
    assert!(!out.exists(), "a failed job leaves no output");
}

#[test]
fn compressed_inputs_globs_and_hidden_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("in");
    fs::create_dir_all(dir.join("sub")).expect("mkdir");
    let text = "alpha beta\nbeta gamma\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).expect("gzip");
    fs::write(dir.join("a.txt.gz"), gz.finish().expect("gzip")).expect("write");
    fs::write(dir.join("sub/b.txt.zst"), zstd::encode_all(text.as_bytes(), 3).expect("zstd")).expect("write");
    fs::write(dir.join("c.txt"), text).expect("write");
    fs::write(dir.join(".hidden"), "hidden hidden").expect("write");
    fs::write(dir.join("_SUCCESS"), "").expect("write");
    let out = tmp.path().join("out");
    quern().args(["run", "--app", "wordcount", "--input"]).arg(&dir).arg("--output").arg(&out).assert().success();
    let counts = as_map(&read_parts(&out));
    assert_eq!(counts, BTreeMap::from([("alpha".into(), 3), ("beta".into(), 6), ("gamma".into(), 3)]));

    let out2 = tmp.path().join("out2");
    quern()
        .args(["run", "--app", "wordcount", "--input"])
        .arg(format!("{}/*.txt", dir.display()))
        .arg("--output")
        .arg(&out2)
        .assert()
        .success();
    assert_eq!(as_map(&read_parts(&out2)).get("beta"), Some(&2));
}

#[test]
fn empty_input_commits_empty_output_and_binary_input_is_processed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty.txt");
    fs::write(&empty, "").expect("write");
    let out = tmp.path().join("out");
    quern()
        .args(["run", "--app", "wordcount", "--reducers", "3", "--input"])
        .arg(&empty)
        .arg("--output")
        .arg(&out)
        .assert()
        .success();
    assert!(read_parts(&out).is_empty());
    assert_eq!(walk(&out).len(), 4, "three empty part files and _SUCCESS");

    let binary = tmp.path().join("blob.bin");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    fs::write(&binary, &bytes).expect("write");
    let out = tmp.path().join("out-bin");
    quern()
        .args(["run", "--app", "wordcount", "--split-size", "10KiB", "--input"])
        .arg(&binary)
        .arg("--output")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(as_map(&read_parts(&out)), expected_wordcount(&[binary]));
}

#[test]
fn apps_lists_every_builtin_with_help() {
    quern()
        .arg("apps")
        .assert()
        .success()
        .stdout(predicate::str::contains("wordcount"))
        .stdout(predicate::str::contains("indexer"))
        .stdout(predicate::str::contains("--param pattern="))
        .stdout(predicate::str::contains("sort"));
}

#[test]
fn demo_generates_counts_and_shows_top_words() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for _ in 0..2 {
        // Twice: the demo may be re-run in the same place.
        quern()
            .current_dir(tmp.path())
            .args(["demo", "--size", "2MiB"])
            .assert()
            .success()
            .stdout(predicate::str::contains("top words:"))
            .stdout(predicate::str::contains("quern-demo/output"));
    }
    let out = tmp.path().join("quern-demo/output");
    let counts = as_map(&read_parts(&out));
    assert_eq!(counts, expected_wordcount(&files_in(&tmp.path().join("quern-demo/input"))));
}

/// A coordinator child process, killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_coordinator_on_port_0_writes_the_address_it_bound_to_its_address_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("coordinator.address");
    let log = tmp.path().join("coordinator.log");
    let mut coordinator = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_quern"))
            .args(["coordinator", "--listen", "127.0.0.1:0", "--token", "t", "--address-file"])
            .arg(&file)
            .arg("--data-dir")
            .arg(tmp.path().join("state"))
            .env("RUST_LOG", "info")
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start a coordinator"),
    );
    let started = std::time::Instant::now();
    let text = loop {
        if let Ok(text) = fs::read_to_string(&file) {
            break text;
        }
        assert!(
            coordinator.0.try_wait().expect("try_wait").is_none(),
            "{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(started.elapsed().as_secs() < 30, "no address file after 30s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let address: std::net::SocketAddr =
        text.strip_suffix('\n').and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("not an address: {text:?}"));
    assert_eq!(address.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(address.port(), 0, "the file names the port bound, not the one asked for");
    // Written by a rename: no temporary file is left beside it.
    let mut names: Vec<String> =
        fs::read_dir(tmp.path()).expect("dir").map(|e| file_name(&e.expect("e").path())).collect();
    names.sort();
    assert_eq!(names, ["coordinator.address", "coordinator.log", "state"]);
    // It is the coordinator's address, and its log says so too.
    quern()
        .args(["jobs", "--token", "t", "--coordinator", &format!("http://{address}")])
        .assert()
        .success()
        .stdout(predicate::str::contains("STATE"));
    let logged = fs::read_to_string(&log).expect("log");
    assert!(logged.contains(&format!("listen={address}")), "{logged}");
    drop(coordinator);

    // An address file that cannot be written stops the coordinator, named.
    let bad = tmp.path().join("no-such-dir").join("address");
    quern()
        .args(["coordinator", "--listen", "127.0.0.1:0", "--token", "t", "--address-file"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(tmp.path().join("state"))
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("--address-file {}", bad.display())));
}
