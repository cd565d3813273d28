//! Multi-step jobs through the `quern` binary (`run --job FILE`): each
//! step reads the one before's output, the example chain gives the top
//! words of the native wordcount, and a chain that failed resumes from its
//! failed step without running the earlier ones again.

mod support;

use std::fs;
use std::path::Path;

use support::*;

/// Writes a job file for `steps` (JSON) from `input` into `output`.
fn job_file(dir: &Path, input: &Path, output: &Path, steps: &str) -> std::path::PathBuf {
    let file = dir.join("job.json");
    let text = format!(
        r#"{{"inputs": [{input:?}], "output": {output:?}, "steps": {steps}}}"#,
        input = input.display().to_string(),
        output = output.display().to_string()
    );
    fs::write(&file, text).expect("write the job file");
    file
}

/// The `n` words with the largest counts in `wordcount`'s output,
/// largest first, ties by word, as `word<TAB>count` lines.
fn top_of(wordcount: &Path, n: usize) -> String {
    let mut counts: Vec<(u64, String)> = sorted_lines(wordcount)
        .iter()
        .map(|line| {
            let (word, count) = line.split_once('\t').expect("word<TAB>count");
            (count.parse().expect("a count"), word.to_owned())
        })
        .collect();
    counts.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    counts.iter().take(n).map(|(c, w)| format!("{w}\t{c}\n")).collect()
}

/// The built-in wordcount of the Gutenberg books, into `out`.
fn native_wordcount(out: &Path) {
    quern()
        .args(["run", "--quiet", "--app", "wordcount", "--input"])
        .arg(gutenberg())
        .arg("--output")
        .arg(out)
        .assert()
        .success();
}

/// Every line of `dir`'s part files, sorted.
fn sorted_lines(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = parts(dir)
        .iter()
        .flat_map(|(_, b)| String::from_utf8_lossy(b).lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_example_chain_gives_the_top_words_of_the_wordcount_and_removes_its_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (native, out) = (dir.path().join("native"), dir.path().join("top"));
    native_wordcount(&native);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/chains/top-words.json");
    let steps: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(example).expect("the example")).expect("JSON");
    let file = job_file(dir.path(), &gutenberg(), &out, &steps["steps"].to_string());
    let run = quern().args(["run", "--job"]).arg(&file).output().expect("run quern");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("step 1/2 wordcount: succeeded") && stdout.contains("step 2/2 top: succeeded"), "{stdout}");
    let top = parts(&out);
    assert_eq!(top.len(), 1, "one reducer");
    assert_eq!(String::from_utf8_lossy(&top[0].1), top_of(&native, 10));
    assert!(!dir.path().join("top.steps").exists(), "the steps' outputs go once the chain succeeded");
}

#[test]
fn a_failed_chain_resumes_from_its_failed_step_keeping_the_earlier_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let ready = dir.path().join("ready");
    // The second step fails until `ready` exists.
    let steps = format!(
        r#"[{{"app": "wordcount", "reducers": 2}},
           {{"app": "streaming", "params": {{"mapper": "sh -c 'test -e {} && cat'"}}, "max_attempts": 1}}]"#,
        ready.display()
    );
    let file = job_file(dir.path(), &gutenberg(), &out, &steps);
    let failed = quern().args(["run", "--quiet", "--job"]).arg(&file).output().expect("run quern");
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{err}");
    assert!(err.contains("step 2 of 2 (streaming) failed") && err.contains("--resume"), "{err}");
    assert!(!out.exists(), "no output that looks complete");
    let kept = sorted_lines(&dir.path().join("out.steps/step-1"));

    // Run again without --resume: refused, naming what is in the way.
    let again = quern().args(["run", "--quiet", "--job"]).arg(&file).output().expect("run quern");
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{err}");
    assert!(err.contains("out.steps holds the steps of an earlier run") && err.contains("--resume"), "{err}");

    fs::write(&ready, "").expect("make step 2 work");
    let resumed = quern().args(["run", "--job"]).arg(&file).arg("--resume").output().expect("run quern");
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(stdout.contains("step 1/2 wordcount: kept from the earlier run"), "{stdout}");
    assert!(stdout.contains("step 2/2 streaming: succeeded"), "{stdout}");
    // Map-only `cat`: the same pairs as step 1's, in map-output files.
    assert_eq!(sorted_lines(&out), kept);
    assert!(!dir.path().join("out.steps").exists());
}

#[test]
fn a_job_file_that_does_not_parse_or_has_a_bad_step_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let file = job_file(dir.path(), &gutenberg(), &out, r#"[{"app": "wordcount", "reducer": 2}]"#);
    let run = quern().args(["run", "--job"]).arg(&file).output().expect("run quern");
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains("job.json") && err.contains("unknown field `reducer`"), "{err}");

    let file = job_file(dir.path(), &gutenberg(), &out, r#"[{"app": "wordcount"}, {"app": "top", "max_attempts": 0}]"#);
    let run = quern().args(["run", "--job"]).arg(&file).output().expect("run quern");
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains("step 2: --max-attempts"), "{err}");
    assert!(!out.exists() && !dir.path().join("out.steps").exists(), "nothing was created");
}

#[test]
fn a_steps_files_are_shipped_into_its_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (native, out) = (dir.path().join("native"), dir.path().join("out"));
    native_wordcount(&native);
    let script = dir.path().join("swap.sh");
    fs::write(&script, "awk -F'\\t' '{ print $2 \"\\t\" $1 }'\n").expect("write the script");
    let steps = format!(
        r#"[{{"app": "wordcount"}}, {{"app": "streaming", "params": {{"mapper": "sh swap.sh"}}, "files": [{:?}]}}]"#,
        script.display().to_string()
    );
    let file = job_file(dir.path(), &gutenberg(), &out, &steps);
    // The script is read from the attempt's directory, not from here.
    let run = quern().args(["run", "--quiet", "--job"]).arg(&file).current_dir("/").output().expect("run quern");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let mut swapped: Vec<String> = sorted_lines(&native)
        .iter()
        .map(|l| l.split_once('\t').map(|(w, c)| format!("{c}\t{w}")).expect("word<TAB>count"))
        .collect();
    swapped.sort();
    assert_eq!(sorted_lines(&out), swapped);
}
