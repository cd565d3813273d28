//! The app builds as an app outside quern's workspace would: without quern's
//! coordinator. `cargo tree` lists what the app compiles (its normal
//! dependencies, resolved for this package alone, as `cargo build -p
//! jsonl-totals` or an outside app's build resolves them); none of the
//! coordinator's stack may be among them. (`.ci/run` also runs the binary
//! so built, to see what its `coordinator` command says.)

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn the_app_compiles_no_coordinator_and_no_database() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "jsonl-totals", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .args(["--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let packages: BTreeSet<&str> = stdout.lines().filter_map(|l| l.split_whitespace().next()).collect();
    // The tree is the app's real one: its binary has the worker and the engine.
    for needed in ["jsonl-totals", "quern", "quern-core", "quern-engine", "quern-worker", "tonic"] {
        assert!(packages.contains(needed), "{needed} missing from the tree: {packages:?}");
    }
    let coordinator: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| *p == "quern-coordinator" || p.starts_with("sqlx") || p.contains("sqlite"))
        .collect();
    assert!(
        coordinator.is_empty(),
        "an app depends on quern without its `coordinator` feature, yet builds {coordinator:?}:\n{stdout}"
    );
}
