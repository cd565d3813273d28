//! The Kubernetes manifests: what `quern k8s render` prints and what
//! `kubectl kustomize deploy/overlays/…` builds are the same objects, pass
//! `kubernetes-validate --strict` against the Kubernetes API schemas, and
//! equal the golden files (`QUERN_UPDATE_GOLDEN=1` rewrites them after an
//! intended change); `MapReduceJob`s are checked against the CRD's schema.
//!
//! No API server runs here: the schemas are the next best thing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use quern_kube::{DeploySettings, StorageLayout};
use serde_json::Value;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const SIGNING_KEY: &[u8] = b"signing-key-of-the-manifest-tests";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn venv_tool(name: &str) -> PathBuf {
    let path = repo().join(".ci/venv/bin").join(name);
    assert!(
        path.is_file(),
        "the manifest tests need {name} at {}: run `.ci/run`, or .ci/venv/bin/pip install kubernetes-validate",
        path.display()
    );
    path
}

fn settings(storage: StorageLayout) -> DeploySettings {
    let mut settings = DeploySettings::new("localhost/quern:0.1.0", TOKEN, SIGNING_KEY.to_vec());
    settings.storage = storage;
    settings
}

fn volume() -> DeploySettings {
    settings(StorageLayout::Volume { size: "20Gi".to_owned(), class: None })
}

fn s3() -> DeploySettings {
    settings(StorageLayout::External {
        files: "s3://quern/files".to_owned(),
        s3_secret: "quern-s3".to_owned(),
        state_secret: "quern-postgres".to_owned(),
    })
}

fn rendered(settings: &DeploySettings) -> String {
    quern_kube::to_yaml(&quern_kube::render(settings).expect("renders")).expect("prints")
}

/// A YAML stream's objects by kind and name.
fn objects(yaml: &str) -> BTreeMap<(String, String), Value> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(yaml).expect("the stream parses");
    docs.into_iter()
        .map(|d| {
            let kind = d["kind"].as_str().expect("kind").to_owned();
            let name = d["metadata"]["name"].as_str().expect("name").to_owned();
            ((kind, name), d)
        })
        .collect()
}

/// `kubectl kustomize` of an overlay, in a copy of `deploy/` holding the
/// token files a user creates.
fn kustomized(overlay: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Command::new("cp").arg("-r").arg(repo().join("deploy")).arg(dir.path()).status().expect("cp");
    assert!(status.success());
    std::fs::write(dir.path().join("deploy/base/token"), TOKEN).expect("token");
    std::fs::write(dir.path().join("deploy/base/signing-key"), SIGNING_KEY).expect("key");
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path().join("deploy/overlays").join(overlay))
        .output()
        .expect("the manifest tests need kubectl (for `kubectl kustomize`): run `.ci/run`");
    assert!(out.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn the_kustomize_overlays_build_what_render_prints() {
    for (overlay, settings) in [("single-node", volume()), ("s3-postgres", s3())] {
        let from_render = objects(&rendered(&settings));
        let from_kustomize = objects(&kustomized(overlay));
        let names = |m: &BTreeMap<(String, String), Value>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&from_render), names(&from_kustomize), "{overlay}: the same objects");
        for (key, object) in &from_render {
            assert_eq!(object, &from_kustomize[key], "{overlay}: {key:?} differs between render and kustomize");
        }
    }
}

#[test]
fn every_manifest_passes_kubernetes_validate_strict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for (name, yaml) in [
        ("render-volume.yaml", rendered(&volume())),
        ("render-s3.yaml", rendered(&s3())),
        ("kustomize-single-node.yaml", kustomized("single-node")),
        ("kustomize-s3-postgres.yaml", kustomized("s3-postgres")),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, yaml).expect("write");
        files.push(path);
    }
    // The worker pod template the coordinator reads is a Pod manifest too.
    for settings in [volume(), s3()] {
        let objects = objects(&rendered(&settings));
        let template =
            objects[&("ConfigMap".to_owned(), "quern-worker-template".to_owned())]["data"]["worker-pod.yaml"]
                .as_str()
                .expect("the template")
                .to_owned();
        let path = dir.path().join(format!("worker-pod-{}.yaml", files.len()));
        // Validation needs a name; the launcher gives each pod its own.
        std::fs::write(&path, template.replacen("metadata:\n", "metadata:\n  name: quern-worker-x\n", 1))
            .expect("write");
        files.push(path);
    }
    let out = Command::new(venv_tool("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .args(&files)
        .output()
        .expect("runs kubernetes-validate");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubernetes-validate --strict failed:\n{report}");
    assert!(!report.contains("WARN") && !report.contains("ERROR"), "{report}");
    // Every object was checked (one line each), not skipped.
    let checked = report.lines().filter(|l| l.contains("passed for resource")).count();
    assert_eq!(checked, 15 + 14 + 15 + 14 + 2, "{report}");
}

#[test]
fn render_equals_the_golden_files() {
    let golden = repo().join("crates/quern-testkit/tests/golden");
    for (name, settings) in [("render-volume.yaml", volume()), ("render-s3.yaml", s3())] {
        let now = rendered(&settings);
        let path = golden.join(name);
        if std::env::var_os("QUERN_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&golden).expect("mkdir");
            std::fs::write(&path, &now).expect("write golden");
            continue;
        }
        let before = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            before == now,
            "{name} changed: if you meant it, run QUERN_UPDATE_GOLDEN=1 cargo nextest run -p quern-testkit --test k8s_manifests \
             and commit the file (and update deploy/ to match)"
        );
    }
}

/// Checks a `MapReduceJob` against the CRD's OpenAPI schema with Python's
/// jsonschema (installed with schemathesis): Kubernetes' structural
/// schemas are JSON schemas plus `x-kubernetes-*` keys, which it ignores.
fn check_against_crd(resource: &Value) -> Result<(), String> {
    let crd = quern_kube::crd_manifest().expect("crd").value;
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("schema.json"), schema.to_string()).expect("write");
    std::fs::write(dir.path().join("resource.json"), resource.to_string()).expect("write");
    // Kubernetes also refuses a field a structural schema does not name
    // (kubectl's strict field validation): checked by `unknown`, beside
    // the type meta and metadata every object has.
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1])); resource = json.load(open(sys.argv[2]))\n\
        errors = [('/'.join(map(str, e.path)) + ': ' + e.message) for e in jsonschema.Draft4Validator(schema).iter_errors(resource)]\n\
        def unknown(s, v, at):\n\
        \x20   if isinstance(v, dict) and 'properties' in s and 'additionalProperties' not in s and not s.get('x-kubernetes-preserve-unknown-fields'):\n\
        \x20       errors.extend(at + k + ': unknown field' for k in v if k not in s['properties'])\n\
        \x20       [unknown(s['properties'][k], x, at + k + '/') for k, x in v.items() if k in s['properties']]\n\
        \x20   elif isinstance(v, list) and 'items' in s:\n\
        \x20       [unknown(s['items'], x, at + str(i) + '/') for i, x in enumerate(v)]\n\
        unknown(schema, {k: v for k, v in resource.items() if k not in ('apiVersion', 'kind', 'metadata')}, '')\n\
        [print(e) for e in sorted(errors)]\n\
        sys.exit(1 if errors else 0)\n";
    let out = Command::new(venv_tool("python"))
        .args(["-c", script])
        .arg(dir.path().join("schema.json"))
        .arg(dir.path().join("resource.json"))
        .output()
        .expect("runs python");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

#[test]
fn the_example_jobs_fit_the_crd_and_become_quern_jobs() {
    let dir = repo().join("examples/k8s");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/k8s") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for doc in serde_saphyr::from_str_multiple::<Value, Vec<Value>>(&text).expect("parses") {
            if doc["kind"] != "MapReduceJob" {
                continue;
            }
            check_against_crd(&doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let job: quern_kube::MapReduceJob = serde_json::from_value(doc).expect("the operator reads it");
            job.spec.to_job_spec().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 2, "examples/k8s holds MapReduceJobs");
}

#[test]
fn the_crd_schema_refuses_what_the_operator_cannot_read() {
    let good = serde_json::json!({
        "apiVersion": "quern.dev/v1alpha1", "kind": "MapReduceJob",
        "metadata": {"name": "wc"},
        "spec": {"app": "wordcount", "inputs": ["/data/books"], "output": "/data/out/wc", "reducers": 2}
    });
    check_against_crd(&good).expect("a plain job fits");
    let mut unknown = good.clone();
    unknown["spec"]["reducer"] = 2.into();
    let err = check_against_crd(&unknown).expect_err("an unknown field is refused");
    assert!(err.contains("reducer"), "{err}");
    let mut negative = good.clone();
    negative["spec"]["reducers"] = (-1).into();
    assert!(check_against_crd(&negative).is_err(), "reducers is unsigned");
    let mut no_output = good;
    no_output["spec"].as_object_mut().expect("object").remove("output");
    let err = check_against_crd(&no_output).expect_err("output is required");
    assert!(err.contains("output"), "{err}");
}

#[test]
fn quern_k8s_render_names_a_bad_setting_and_makes_a_new_token_each_time() {
    let run = |args: &[&str]| {
        assert_cmd::Command::cargo_bin("quern-testkit").expect("binary").arg("k8s").args(args).output().expect("runs")
    };
    let bad = run(&["render", "--namespace", "Not_A_Label"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--namespace") && err.contains("Not_A_Label"), "{err}");
    let bad = run(&["render", "--worker-memory", "lots"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--worker-memory"));
    let bad = run(&["render", "--storage", "s3"]);
    assert_eq!(bad.status.code(), Some(2), "--files is required with s3");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--files"));

    let first = run(&["render"]);
    let second = run(&["render"]);
    assert!(first.status.success() && second.status.success());
    let (first, second) =
        (objects(&String::from_utf8_lossy(&first.stdout)), objects(&String::from_utf8_lossy(&second.stdout)));
    let secret = ("Secret".to_owned(), "quern-token".to_owned());
    assert_ne!(first[&secret]["data"]["token"], second[&secret]["data"]["token"], "a fresh token each time");
    for key in first.keys().filter(|k| **k != secret) {
        assert_eq!(first[key], second[key], "{key:?} does not depend on the token");
    }
    let crd = run(&["crd"]);
    assert!(crd.status.success());
    let crd = objects(&String::from_utf8_lossy(&crd.stdout));
    assert_eq!(crd.keys().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["CustomResourceDefinition"]);
}

#[test]
fn the_coordinator_and_the_operator_take_the_arguments_their_deployments_give_them() {
    for (settings, deployment) in
        [(volume(), "quern-coordinator"), (s3(), "quern-coordinator"), (volume(), "quern-operator")]
    {
        let objects = objects(&rendered(&settings));
        let deployment = &objects[&("Deployment".to_owned(), deployment.to_owned())];
        let args: Vec<String> =
            serde_json::from_value(deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone())
                .expect("args");
        // Every flag parses (clap refuses an unknown one before `--help`).
        let out = assert_cmd::Command::cargo_bin("quern-testkit")
            .expect("binary")
            .args(&args)
            .arg("--help")
            .output()
            .expect("runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
