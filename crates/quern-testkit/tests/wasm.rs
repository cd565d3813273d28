//! WebAssembly jobs, embedded: the Rust modules of
//! `examples/wasm-wordcount` and `examples/wasm-indexer` give the native
//! apps' part files byte for byte; modules that loop forever, allocate
//! without bound or try to open a file fail the job with an error naming
//! the limit, leaving no output that looks complete.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::*;

/// Runs the built-in `app` and the module `package` (map, combine and
/// reduce) over the Gutenberg books with 2 reducers and a small sort
/// buffer (several spills, each combined by the module), and asserts that
/// their part files are the same, byte for byte.
fn assert_wasm_equals_native(app: &str, package: &str) {
    let module = wasm_module(package).display().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let (native, wasm) = (dir.path().join("native"), dir.path().join("wasm"));
    embedded(app, &gutenberg(), &native, &["--reducers", "2"]);
    let ran = Command::new(BIN)
        .args(["run", "--quiet", "--reducers", "2", "--sort-buffer", "4MiB", "--input"])
        .arg(gutenberg())
        .arg("--output")
        .arg(&wasm)
        .args(["--mapper", &format!("{module} map")])
        .args(["--combiner", &format!("{module} combine")])
        .args(["--reducer", &format!("{module} reduce")])
        .status()
        .expect("run quern");
    assert!(ran.success());
    let (native, wasm) = (parts(&native), parts(&wasm));
    assert_eq!(wasm.len(), 2, "two reducers");
    assert!(!wasm[0].1.is_empty());
    assert!(wasm == native, "the module's output differs from the native {app}'s");
}

#[test]
fn wasm_wordcount_equals_the_native_wordcount_byte_for_byte() {
    assert_wasm_equals_native("wordcount", "wasm-wordcount");
}

#[test]
fn wasm_indexer_equals_the_native_indexer_byte_for_byte() {
    assert_wasm_equals_native("indexer", "wasm-indexer");
}

/// Writes the module given as text to `dir/name` and runs it as the mapper
/// of a job over one small file, with `limits` flags and one attempt per
/// task; returns its stderr, having checked the job failed without output
/// that looks complete.
fn failing(dir: &Path, name: &str, text: &str, limits: &[&str]) -> String {
    let module = dir.join(name);
    write_module(&module, text);
    let input = dir.join("in.txt");
    fs::write(&input, "one line\n").expect("write input");
    let out = dir.join(format!("out-{name}"));
    let output = Command::new(BIN)
        .args(["run", "--quiet", "--max-attempts", "1", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .arg("--mapper")
        .arg(format!("{} map", module.display()))
        .args(limits)
        .output()
        .expect("run quern");
    assert!(!output.status.success(), "{name} must fail the job");
    assert!(!out.join("_SUCCESS").exists(), "no output that looks complete");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn modules_that_loop_allocate_without_bound_or_open_files_fail_naming_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");

    let err = failing(
        dir.path(),
        "spin.wasm",
        r#"(module (func (export "_start") (loop $l (br $l))))"#,
        &["--wasm-cpu-time", "500ms"],
    );
    assert!(err.contains("`spin.wasm map` was stopped at its CPU time limit of 0.500s (--wasm-cpu-time)"), "{err}");

    let grow = r#"(module (memory 1)
        (func (export "_start")
          (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
          unreachable))"#;
    let err = failing(dir.path(), "grow.wasm", grow, &["--wasm-memory", "64MiB"]);
    assert!(err.contains("`grow.wasm map` was stopped at its memory limit of 64 MiB"), "{err}");
    assert!(err.contains("it asked for 65 MiB (--wasm-memory)"), "{err}");

    // Opens `/etc/passwd` through the first preopened directory there would
    // be (fd 3), and exits with the errno it got.
    let open = r#"(module
        (import "wasi_snapshot_preview1" "path_open"
          (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "etc/passwd")
        (func (export "_start")
          (call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 10)
                                  (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 64)))))"#;
    let err = failing(dir.path(), "open.wasm", open, &[]);
    assert!(
        err.contains("`open.wasm map` ended with exit status: 8 (a module runs sandboxed: no files, no network)"),
        "{err}"
    );

    let err = failing(dir.path(), "lib.wasm", "(module)", &[]);
    assert!(err.contains("lib.wasm is not a WASI command"), "{err}");
}

#[test]
fn a_chain_step_may_run_a_module_given_by_path() {
    let module = wasm_module("wasm-wordcount").display().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, first_step: &str| {
        let out = dir.path().join(name).display().to_string();
        let text = format!(
            r#"{{"inputs": [{:?}], "output": {out:?}, "steps": [{first_step}, {{"app": "top", "params": {{"n": "25"}}}}]}}"#,
            gutenberg().display().to_string()
        );
        let file = dir.path().join(format!("{name}.json"));
        fs::write(&file, text).expect("write the job file");
        file
    };
    let wasm_step = format!(
        r#"{{"app": "wasm", "params": {{"mapper": "{module} map", "combiner": "{module} combine", "reducer": "{module} reduce"}}, "reducers": 2}}"#
    );
    for (name, step) in [("native", r#"{"app": "wordcount", "reducers": 2}"#), ("wasm", wasm_step.as_str())] {
        let status = Command::new(BIN).args(["run", "--quiet", "--job"]).arg(write(name, step)).status().expect("run");
        assert!(status.success(), "{name}");
    }
    assert_eq!(parts(&dir.path().join("wasm")), parts(&dir.path().join("native")));
}
