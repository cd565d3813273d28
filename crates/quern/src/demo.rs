//! `quern demo`: generate a small corpus, count its words embedded, print the
//! top words and where the output is. A newcomer's first command.

use std::path::Path;

use anyhow::Context;
use quern_core::{AppRegistry, JobSpec};
use quern_engine::RunOptions;

/// Marks a directory as the demo's own, so re-running may replace its output.
const MARKER: &str = ".quern-demo";

pub(crate) fn run(apps: &AppRegistry, dir: &Path, size: u64, show_bar: bool) -> anyhow::Result<()> {
    let marker = dir.join(MARKER);
    if dir.exists() && !marker.exists() {
        anyhow::bail!("{} exists and is not a quern demo directory; pass --dir to choose another", dir.display());
    }
    let input = dir.join("input");
    let output = dir.join("output");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&marker, b"").with_context(|| format!("writing {}", marker.display()))?;
    if output.exists() {
        std::fs::remove_dir_all(&output).with_context(|| format!("removing the previous {}", output.display()))?;
    }
    if input.exists() {
        std::fs::remove_dir_all(&input).with_context(|| format!("removing the previous {}", input.display()))?;
    }
    let files = quern_apps::corpus::generate(&input, size, 8, 42).context("generating the demo corpus")?;
    println!(
        "generated {} of Zipf-distributed text in {} files under {}",
        bytesize::ByteSize(size).display().iec(),
        files.len(),
        input.display()
    );
    let mut spec = JobSpec::new("wordcount", vec![input.display().to_string()], output.display().to_string());
    spec.reducers = Some(4);
    spec.split_size = (size / 16).max(1 << 20);
    let report = crate::cli::run_with_progress(apps, &spec, RunOptions::default(), show_bar)?;

    let mut counts: Vec<(u64, String)> = Vec::new();
    for file in &report.files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for line in text.lines() {
            if let Some((word, n)) = line.split_once('\t') {
                counts.push((n.parse().with_context(|| format!("bad count in {}", file.display()))?, word.to_owned()));
            }
        }
    }
    counts.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    println!("\ntop words:");
    for (n, word) in counts.iter().take(10) {
        println!("  {word:<12} {n:>10}");
    }
    println!();
    crate::cli::print_summary(&report).context("printing the summary")?;
    println!("\nlook at the output: cat {}/part-r-*", output.display());
    Ok(())
}
