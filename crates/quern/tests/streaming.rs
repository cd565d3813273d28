//! Streaming jobs through the `quern` binary (`--mapper`, `--reducer`,
//! `--cmdenv`, `--file`): the Python wordcount of `examples/streaming`
//! gives the native wordcount's part files byte for byte; map-only and
//! identity-reduce jobs; the environment Hadoop streaming's scripts read;
//! and commands that fail, crash, cannot start or stop reading fail the
//! job with their stderr's tail, leaving no output that looks complete.

mod support;

use std::fs;
use std::path::Path;

use support::*;

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/streaming").join(name).display().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The part files of the native wordcount of the Gutenberg books with 2
/// reducers, run under `dir`.
fn native_wordcount(dir: &Path) -> Parts {
    let native = dir.join("native");
    quern()
        .args(["run", "--quiet", "--app", "wordcount", "--reducers", "2", "--input"])
        .arg(gutenberg())
        .arg("--output")
        .arg(&native)
        .assert()
        .success();
    parts(&native)
}

#[test]
fn python_streaming_wordcount_equals_the_native_wordcount_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let streamed = dir.path().join("streamed");
    let input = gutenberg().display().to_string();
    quern()
        .args(["run", "--quiet", "--reducers", "2", "--input", &input, "--output"])
        .arg(&streamed)
        .args(["--mapper", "python3 mapper.py", "--reducer", "python3 reducer.py"])
        .args(["--file", &example("mapper.py"), "--file", &example("reducer.py")])
        .assert()
        .success();
    let (native, streamed) = (native_wordcount(dir.path()), parts(&streamed));
    assert_eq!(streamed.len(), 2, "two reducers: part-r-00000 and part-r-00001");
    assert!(streamed.iter().all(|(name, _)| name.starts_with("part-r-")));
    assert_eq!(streamed, native);
}

#[test]
fn a_python_combiner_runs_over_each_spill_and_the_output_stays_the_native_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (streamed, stats) = (dir.path().join("streamed"), dir.path().join("stats"));
    let input = gutenberg().display().to_string();
    // A small sort buffer: several spills per map, each combined.
    quern()
        .args(["run", "--quiet", "--reducers", "2", "--sort-buffer", "2MiB", "--input", &input, "--output"])
        .arg(&streamed)
        .args(["--mapper", "python3 mapper.py", "--combiner", "python3 reducer.py", "--reducer", "python3 reducer.py"])
        .args(["--file", &example("mapper.py"), "--file", &example("reducer.py"), "--stats-json"])
        .arg(&stats)
        .assert()
        .success();
    assert_eq!(parts(&streamed), native_wordcount(dir.path()));
    let stats: serde_json::Value = serde_json::from_slice(&fs::read(&stats).expect("stats")).expect("json");
    let counters = &stats["counters"];
    let (spills, inputs, outputs) = (
        counters["spills"].as_u64().expect("spills"),
        counters["combine_input_records"].as_u64().expect("combine inputs"),
        counters["combine_output_records"].as_u64().expect("combine outputs"),
    );
    assert!(spills > stats["map_tasks"].as_u64().expect("maps"), "several spills per map: {counters}");
    assert_eq!(inputs, counters["map_output_records"].as_u64().expect("map outputs"), "{counters}");
    assert!(outputs > 0 && outputs * 3 < inputs, "the combiner combined: {counters}");
}

#[test]
fn reporter_counter_lines_on_stderr_become_the_jobs_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    fs::write(&input, "a\nb\nc\n").expect("write input");
    let (out, stats) = (dir.path().join("out"), dir.path().join("stats.json"));
    // Each line counted by the mapper, and once more by the reducer.
    let mapper = "awk '{ print $1; print \"reporter:counter:lines,mapped,1\" > \"/dev/stderr\" }'";
    let reducer = "sh -c 'cat; echo reporter:counter:lines,reduced,10 >&2'";
    quern()
        .args(["run", "--quiet", "--reducers", "1", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .args(["--mapper", mapper, "--reducer", reducer, "--stats-json"])
        .arg(&stats)
        .assert()
        .success();
    let stats: serde_json::Value = serde_json::from_slice(&fs::read(&stats).expect("stats")).expect("json");
    assert_eq!(stats["app_counters"]["lines.mapped"], 3, "{stats}");
    assert_eq!(stats["app_counters"]["lines.reduced"], 10, "{stats}");
    assert_eq!(text(&parts(&out)[0].1), "a\nb\nc\n", "an empty value is written as the key alone");
}

#[test]
fn a_mapper_alone_is_map_only_and_reducers_make_the_identity_reduce() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    fs::write(&input, "b 2\na 1\nc 3\n").expect("write input");
    let run = |out: &str, extra: &[&str]| {
        let out = dir.path().join(out);
        quern()
            .args(["run", "--quiet", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&out)
            .args(["--mapper", "tr ' ' '\\t'"])
            .args(extra)
            .assert()
            .success();
        parts(&out)
    };
    let map_only = run("map-only", &[]);
    assert_eq!(map_only, [("part-m-00000".to_owned(), b"b\t2\na\t1\nc\t3\n".to_vec())]);
    let sorted = run("sorted", &["--reducers", "1"]);
    assert_eq!(sorted, [("part-r-00000".to_owned(), b"a\t1\nb\t2\nc\t3\n".to_vec())]);
}

#[test]
fn a_streaming_job_in_total_order_is_sampled_through_its_mapper_and_splits_evenly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("lines.txt");
    // Keys the mapper makes: the second field of each line, so that the
    // sample must come from the mapper's output, not from the input.
    let mut x = 7u64;
    let mut lines: Vec<String> = (0..40_000)
        .map(|i| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            format!("{i} k{:016x}", x >> 8)
        })
        .collect();
    fs::write(&input, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write input");
    let out = dir.path().join("out");
    quern()
        .args(["run", "--quiet", "--reducers", "3", "--partitioner", "total-order", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .args(["--mapper", "awk '{ print $2 \"\\t\" $1 }'"])
        .assert()
        .success();
    let parts = parts(&out);
    assert_eq!(parts.len(), 3);
    for (name, bytes) in &parts {
        let n = bytes.iter().filter(|&&b| b == b'\n').count();
        assert!(n < 2 * 40_000 / 3, "{name} has {n} of 40,000 lines: more than twice its share");
    }
    let all: String = parts.iter().map(|(_, bytes)| text(bytes)).collect();
    lines.sort_by(|a, b| a.split(' ').nth(1).cmp(&b.split(' ').nth(1)));
    let expected: String =
        lines.iter().map(|l| l.split_once(' ').map(|(n, k)| format!("{k}\t{n}\n")).unwrap_or_default()).collect();
    assert_eq!(all, expected, "the parts in order are the mapper's pairs sorted by key");
}

#[test]
fn commands_see_hadoop_streamings_variables_cmdenv_and_shipped_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    fs::write(&input, "line\n").expect("write input");
    let script = dir.path().join("show.sh");
    fs::write(
        &script,
        "read -r line\nprintf '%s\\t%s %s %s %s %s\\n' \"$line\" \"$map_input_file\" \"$mapreduce_task_attempt_id\" \
         \"$mapreduce_task_ismap\" \"$GREETING\" \"$(cat note.txt)\"\n",
    )
    .expect("write script");
    let note = dir.path().join("note.txt");
    fs::write(&note, "shipped").expect("write note");
    let out = dir.path().join("out");
    quern()
        .args(["run", "--quiet", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .args(["--mapper", "sh show.sh", "--cmdenv", "GREETING=hello"])
        .arg("--file")
        .arg(&script)
        .arg("--file")
        .arg(&note)
        .assert()
        .success();
    let got = text(&parts(&out)[0].1);
    assert_eq!(got, format!("line\t{} m-00000#1 true hello shipped\n", input.display()));
}

/// Runs a streaming job over the Gutenberg books that must fail, with one
/// attempt per task; returns its stderr, having checked that the output
/// does not look complete.
fn failing(mapper: &str, reducer: Option<&str>) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let mut cmd = quern();
    cmd.args(["run", "--quiet", "--max-attempts", "1", "--input"])
        .arg(gutenberg())
        .arg("--output")
        .arg(&out)
        .args(["--mapper", mapper]);
    if let Some(reducer) = reducer {
        cmd.args(["--reducer", reducer]);
    }
    let output = cmd.output().expect("run quern");
    assert!(!output.status.success(), "the job must fail: {mapper} / {reducer:?}");
    assert!(!out.join("_SUCCESS").exists(), "no output that looks complete");
    text(&output.stderr)
}

#[test]
fn a_command_that_fails_crashes_cannot_start_or_stops_reading_fails_the_job_saying_so() {
    let err = failing("sh -c 'echo no dictionary here >&2; exit 3'", None);
    assert!(err.contains("exit status: 3") && err.contains("no dictionary here"), "{err}");
    assert!(err.contains("`sh -c 'echo no dictionary here >&2; exit 3'`"), "names the command: {err}");

    let err = failing("sh -c 'kill -SEGV $$'", None);
    assert!(err.contains("SIGSEGV"), "{err}");

    let err = failing("quern-no-such-program --flag", None);
    assert!(err.contains("cannot start `quern-no-such-program --flag`"), "{err}");

    // Reads one line of its input, then exits while the rest is written.
    let err = failing("cat", Some("head -n 1"));
    assert!(err.contains("`head -n 1` stopped reading its input"), "{err}");

    // Output the reducer cannot read fails the reducer, with its traceback.
    let reducer = format!("python3 {}", example("reducer.py"));
    let err = failing("sh -c 'cat >/dev/null; printf \"word\\tnot-a-count\\n\"'", Some(&reducer));
    assert!(err.contains("ValueError") && err.contains("not-a-count") && err.contains("reducer.py"), "{err}");

    let err = failing("cat 'unclosed", None);
    assert!(err.contains("a quote is not closed"), "{err}");
}
