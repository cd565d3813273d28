//! `quern replay JOB TASK`: one task of a cluster job, run again on this
//! machine, in this process, on one thread (a debugger's breakpoint in the
//! app's `map` or `reduce` is hit), from what the coordinator recorded:
//! the job's spec and plan (the task's split, the cut points), and its code
//! files by hash. It says whether the output's digest equals the one
//! recorded for the task's committed attempt, or how the task fails.
//!
//! A map is run from its split. A reduce needs its partition of every map's
//! output: the job's maps are run again here first (they are deterministic,
//! and the workers' copies may be gone).

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Args;
use quern_core::{AppRegistry, AttemptId, JobPlan, JobSpec, TaskId, TaskKind};
use quern_engine::attempt::{AttemptOutcome, AttemptProgress, AttemptRequest, run_attempt};
use quern_engine::merge::RunSegment;
use quern_proto as pb;
use serde_json::json;

use crate::cluster::{ClientArgs, CoordinatorConnection, runtime};

/// `replay`'s arguments.
#[derive(Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The job's id.
    job: u64,
    /// The task: `m-00003` (a map) or `r-00001` (a reduce, by its global
    /// partition).
    task: String,
    /// Keep the replay's output and scratch directory (its path is
    /// printed) instead of removing them.
    #[arg(long)]
    keep: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// What the coordinator recorded of the job and the task.
struct Recorded {
    spec: JobSpec,
    plan: JobPlan,
    /// The committed attempt's digest, its name, and where it ran (the
    /// worker and its quern version).
    committed: Option<(String, String, String)>,
}

pub(crate) fn replay(apps: &AppRegistry, args: ReplayArgs) -> anyhow::Result<()> {
    let task: TaskId = args.task.parse().map_err(|e| crate::cli::Refused(format!("{}: {e}", args.task)))?;
    let scratch = tempfile::Builder::new().prefix("quern-replay-").tempdir().context("a scratch directory")?;
    let code_dir = scratch.path().join("code");
    let mut coordinator = CoordinatorConnection::new(&args.client)?;
    let recorded = runtime()?.block_on(async {
        let recorded = fetch(&mut coordinator, args.job, task).await?;
        // The job's code files, by hash, as a worker fetches them.
        if !recorded.spec.code.is_empty() {
            let client = coordinator.client().await?;
            quern_worker::CodeCache::new(code_dir.clone())
                .ensure(&recorded.spec.code, &client)
                .await
                .map_err(anyhow::Error::msg)?;
        }
        anyhow::Ok(recorded)
    })?;
    let Recorded { mut spec, mut plan, committed } = recorded;
    let app = apps.build(&spec.app, &spec.params).with_context(|| {
        format!("building app '{}' (this binary must have it, as the workers that ran the job did)", spec.app)
    })?;
    // Outputs go to scratch, never to the job's output or shuffle prefix.
    let output = scratch.path().join("output");
    spec.output = output.display().to_string();
    plan.shuffle = None;
    let storage = quern_storage::Storage::default();
    storage.setup_output(&spec.output).with_context(|| format!("setting up {}", spec.output))?;
    let code_dir = (!spec.code.is_empty()).then_some(code_dir);
    let run = |task: TaskId, runs: Vec<RunSegment>| {
        let request = AttemptRequest {
            spec: spec.clone(),
            plan: plan.clone(),
            attempt: AttemptId { task, attempt: 1 },
            work_dir: scratch.path().join("work").join(task.to_string()),
            runs,
            merge_factor: quern_engine::DEFAULT_MERGE_FACTOR,
            code_dir: code_dir.clone(),
        };
        run_attempt(&request, &*app, &storage, &AttemptProgress::default(), &AtomicBool::new(false))
    };
    let outcome = match task.kind {
        TaskKind::Map => run(task, Vec::new()),
        TaskKind::Reduce => {
            let mut runs = Vec::new();
            for index in 0..plan.splits.len() as u32 {
                let map = TaskId { kind: TaskKind::Map, index };
                match run(map, Vec::new()) {
                    AttemptOutcome::Succeeded { map_output: Some(out), .. } => {
                        runs.push(RunSegment { path: out.path.clone(), segment: out.segments[task.index as usize] })
                    }
                    AttemptOutcome::Succeeded { map_output: None, .. } => {}
                    AttemptOutcome::Failed { message, .. } => {
                        anyhow::bail!("the reduce's input: map {map} failed here: {message}")
                    }
                }
            }
            run(task, runs)
        }
    };
    report(&args, task, &outcome, committed.as_ref(), &scratch.path().join("output"))?;
    if args.keep {
        let kept = scratch.keep();
        eprintln!("quern: the replay's output and scratch are in {}", kept.display());
    }
    match (&outcome, committed) {
        (AttemptOutcome::Succeeded { output_digest: Some(d), .. }, Some((recorded, _, _))) if *d == recorded => Ok(()),
        (AttemptOutcome::Succeeded { .. }, None) => Ok(()),
        _ => {
            Err(anyhow::Error::new(crate::cluster::ExitStatus(1)).context("the replay differs from the recorded task"))
        }
    }
}

/// The job's spec and plan, and the task's committed attempt, from the
/// coordinator.
async fn fetch(coordinator: &mut CoordinatorConnection, job: u64, task: TaskId) -> anyhow::Result<Recorded> {
    let request = pb::GetJobPlanRequest { job_id: job };
    let answer = coordinator
        .call("replay", |mut c| async move { c.get_job_plan(request).await })
        .await
        .context("replay reads the job's plan with a worker's call: it takes the cluster token")?;
    let spec: JobSpec = serde_json::from_str(&answer.spec_json).context("the job's spec")?;
    let plan: JobPlan = serde_json::from_str(&answer.plan_json).context("the job's plan")?;
    let exists = match task.kind {
        TaskKind::Map => (task.index as usize) < plan.splits.len(),
        TaskKind::Reduce => task.index < plan.partitions,
    };
    if !exists {
        return Err(crate::cli::Refused(format!("job {job} has no task {task}")).into());
    }
    let request = pb::GetLogsRequest { job_id: job, task: task.to_string() };
    let attempts = coordinator.call("replay", |mut c| async move { c.get_logs(request).await }).await?.attempts;
    let committed = attempts.iter().find(|a| a.outcome == "succeeded");
    // The code of a built-in or compiled-in app is the binary: say which
    // version ran the task, and whether it is this one.
    let workers = coordinator
        .call("replay", |mut c| async move { c.list_workers(pb::ListWorkersRequest {}).await })
        .await?
        .workers;
    let committed = committed.map(|a| {
        let name = a.attempt.as_ref().map(|r| format!("{}#{}", task, r.attempt)).unwrap_or_default();
        let version = workers.iter().find(|w| w.worker_id == a.worker_id).map(|w| w.version.clone());
        let worker = match version {
            Some(v) if v == env!("CARGO_PKG_VERSION") => format!("{} (quern {v}, as here)", a.worker_id),
            Some(v) => format!("{} (quern {v}; this is quern {})", a.worker_id, env!("CARGO_PKG_VERSION")),
            None => a.worker_id.clone(),
        };
        (a.output_digest.clone(), name, worker)
    });
    Ok(Recorded { spec, plan, committed })
}

fn report(
    args: &ReplayArgs,
    task: TaskId,
    outcome: &AttemptOutcome,
    committed: Option<&(String, String, String)>,
    output: &Path,
) -> anyhow::Result<()> {
    let (digest, error) = match outcome {
        AttemptOutcome::Succeeded { output_digest, .. } => (output_digest.clone().unwrap_or_default(), None),
        AttemptOutcome::Failed { message, .. } => (String::new(), Some(message.clone())),
    };
    let same = committed.is_some_and(|(recorded, _, _)| !recorded.is_empty() && *recorded == digest);
    if args.json {
        let value = json!({
            "job": args.job,
            "task": task.to_string(),
            "succeeded": error.is_none(),
            "error": error,
            "output_digest": digest,
            "recorded_digest": committed.map(|c| c.0.clone()),
            "recorded_attempt": committed.map(|c| c.1.clone()),
            "recorded_worker": committed.map(|c| c.2.clone()),
            "same": same,
        });
        println!("{value}");
        return Ok(());
    }
    match (&error, committed) {
        (Some(error), _) => println!("task {task} of job {} failed here: {error}", args.job),
        (None, Some((recorded, attempt, worker))) => {
            let verdict = if same { "the same" } else { "DIFFERENT" };
            println!("task {task} of job {}: output digest {digest}", args.job);
            println!("recorded for {attempt} on {worker}: {recorded}: {verdict}");
        }
        (None, None) => {
            println!("task {task} of job {}: output digest {digest} (no committed attempt to compare with)", args.job)
        }
    }
    if args.keep {
        println!("output: {}", output.display());
    }
    Ok(())
}
