//! Black-box tests of what the `quern` binary refuses before any work starts
//! (exit code 2, nothing created) and of how it reports errors:
//! - an error's cause is printed once;

use std::fs;
use std::time::Duration;

use assert_cmd::Command;

fn quern() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quern"));
    cmd.env_remove("RUST_LOG").env_remove("QUERN_TOKEN").env_remove("QUERN_COORDINATOR");
    // A server that wrongly starts must fail the test, not hang it.
    cmd.timeout(Duration::from_secs(20));
    cmd
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_cause_of_an_error_is_printed_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, "a b c\n").expect("write");
    let file = tmp.path().join("file");
    fs::write(&file, "a regular file").expect("write");
    // An output under a regular file: its parent cannot be created.
    for (output, cause) in [(file.join("out"), "File exists"), (file.join("sub").join("out"), "Not a directory")] {
        let result = quern()
            .args(["run", "--app", "wordcount", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .output()
            .expect("run");
        let stderr = stderr_of(&result);
        assert!(!result.status.success());
        assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
        assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("{}", output.parent().expect("parent").display())), "{stderr}");
    }
}
