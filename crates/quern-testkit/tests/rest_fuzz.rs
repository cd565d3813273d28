//! The REST API fuzzed from its own OpenAPI document by schemathesis
//! (PyPI; `.ci/run` installs it in `.ci/venv`), against a coordinator
//! process with a worker: no answer is a 5xx, and every answer matches the
//! document's schema.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::TOKEN;
use support::http::start_with_http;

fn schemathesis() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv/bin/schemathesis");
    assert!(
        venv.is_file(),
        "the API fuzz test needs schemathesis at {}: run `.ci/run`, or .ci/venv/bin/pip install schemathesis",
        venv.display()
    );
    venv
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    let schemathesis = schemathesis();
    // A worker is alive, so a submitted spec is planned (or refused) at once.
    let (c, api, files) = start_with_http(1, &[], Vec::new());
    let out = Command::new(schemathesis)
        .args(["run", &format!("http://{api}/api/v1/openapi.json"), "--url", &format!("http://{api}")])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        // Draining or deregistering the one worker would leave submissions
        // waiting for a planner (as they should) past the request timeout;
        // the API tests cover those calls.
        .args(["--exclude-path-regex", "^/api/v1/workers/[^/]+/(drain|deregister)$"])
        .args(["--max-time", "45", "--seed", "20261126", "--request-timeout", "20"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(files.path())
        .output()
        .expect("schemathesis");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems:\n{report}\n{}", c.logs());
}
