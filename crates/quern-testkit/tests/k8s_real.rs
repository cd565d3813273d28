//! The whole Kubernetes flow against a real cluster: `quern k8s render`
//! applied to a fresh namespace, a corpus generated onto the data volume by
//! a one-off pod, a `MapReduceJob` run to `Succeeded` by the operator on
//! worker pods the coordinator launches, then the namespace deleted.
//!
//! Ignored by default, since no API server can run on quern's development
//! machines. With a cluster (kind, minikube, any) and the image loaded into
//! it (docs/kubernetes.md, steps 1 and 2):
//!
//! ```sh
//! QUERN_KUBECONFIG=~/.kube/config QUERN_IMAGE=localhost/quern:0.1.0 \
//!   cargo nextest run -p quern-testkit --test k8s_real --run-ignored only --no-capture
//! ```

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// Deletes the test's namespace however the test ends.
struct Namespace {
    kubeconfig: String,
    name: String,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args(["--kubeconfig", &self.kubeconfig, "delete", "namespace", &self.name, "--wait=false"])
            .output();
    }
}

#[test]
#[ignore = "needs a real cluster: set QUERN_KUBECONFIG and QUERN_IMAGE, run with --run-ignored only"]
fn a_mapreducejob_runs_on_a_real_cluster() {
    let kubeconfig = std::env::var("QUERN_KUBECONFIG")
        .expect("QUERN_KUBECONFIG: the kubeconfig of a cluster this test may create a namespace in");
    let image = std::env::var("QUERN_IMAGE").expect("QUERN_IMAGE: the quern image, loaded into the cluster");
    let namespace = format!("quern-e2e-{}", std::process::id());
    let _cleanup = Namespace { kubeconfig: kubeconfig.clone(), name: namespace.clone() };
    let kubectl = || {
        let mut c = Command::new("kubectl");
        c.args(["--kubeconfig", &kubeconfig, "-n", &namespace]);
        c
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = run_ok(
        "quern k8s render",
        Command::new(BIN).args([
            "k8s",
            "render",
            "--namespace",
            &namespace,
            "--image",
            &image,
            "--volume-size",
            "1Gi",
            "--max-workers",
            "2",
            "--worker-cpu",
            "250m",
            "--worker-memory",
            "512Mi",
        ]),
    );
    let path = dir.path().join("quern.yaml");
    std::fs::write(&path, &manifests.stdout).expect("write");
    run_ok("kubectl apply", kubectl().arg("apply").arg("-f").arg(&path));
    for deployment in ["quern-coordinator", "quern-operator"] {
        run_ok(
            &format!("{deployment} to be available"),
            kubectl().args(["rollout", "status", &format!("deployment/{deployment}"), "--timeout=300s"]),
        );
    }

    // A corpus on the data volume, written by the image itself.
    let generator = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gen-corpus"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532, "runAsNonRoot": true},
            "containers": [{"name": "gen", "image": image, "imagePullPolicy": "IfNotPresent",
                "args": ["gen-corpus", "--size", "16MiB", "/data/books"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "quern-data"}}]
        }
    });
    let path = dir.path().join("gen.json");
    std::fs::write(&path, generator.to_string()).expect("write");
    run_ok("the corpus pod", kubectl().arg("apply").arg("-f").arg(&path));
    run_ok(
        "the corpus to be written",
        kubectl().args(["wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/gen-corpus", "--timeout=300s"]),
    );

    let job = format!(
        "apiVersion: quern.dev/v1alpha1\nkind: MapReduceJob\nmetadata:\n  name: wordcount\n  namespace: {namespace}\n\
         spec:\n  app: wordcount\n  inputs: [/data/books]\n  output: /data/out/wordcount\n  reducers: 2\n"
    );
    let path = dir.path().join("job.yaml");
    std::fs::write(&path, job).expect("write");
    run_ok("kubectl apply the MapReduceJob", kubectl().arg("apply").arg("-f").arg(&path));
    let started = Instant::now();
    loop {
        let out = run_ok(
            "kubectl get mapreducejob",
            kubectl().args(["get", "mapreducejob", "wordcount", "-o", "jsonpath={.status.phase}"]),
        );
        let phase = String::from_utf8_lossy(&out.stdout).into_owned();
        if phase == "Succeeded" {
            break;
        }
        assert!(phase != "Failed" && phase != "Killed", "the job ended {phase}");
        assert!(started.elapsed() < Duration::from_secs(600), "not done in 10 minutes: {phase}");
        std::thread::sleep(Duration::from_secs(2));
    }
    let status = run_ok("the status", kubectl().args(["get", "mapreducejob", "wordcount", "-o", "json"]));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["status"]["progress"], "done");
    assert_eq!(status["status"]["output"], "/data/out/wordcount");
    let workers = run_ok(
        "the worker pods",
        kubectl().args(["get", "pods", "-l", "app.kubernetes.io/component=worker", "-o", "name"]),
    );
    println!("worker pods now: {}", String::from_utf8_lossy(&workers.stdout).trim());
}
