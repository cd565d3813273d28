//! Scheduler scale: 1,000 simulated workers with 2 slots each heartbeat and
//! poll a coordinator's `Cluster` in rounds of simulated 100 ms; every
//! attempt handed out finishes by the next round. No data moves. Prints
//! assignments per second (of wall time spent in the coordinator's
//! decisions) and the process's peak memory.
//!
//! Usage: `scheduler-scale [WORKERS] [TASKS] [--store | --state URL]`
//! (defaults 1000 100000). With `--store` (a SQLite state in a temporary
//! directory) or `--state URL` (`sqlite://…`, `postgres://…`), the simulated
//! workers instead call the coordinator's application layer
//! (`CoordinatorHandle`) concurrently, one task each, polling and reporting
//! as fast as they are answered, and every effect is stored before its call
//! returns, as in the real coordinator (concurrent calls share
//! transactions).

use std::time::Instant;

use quern_coordinator::cluster::{Cluster, NewJob, Outcome, Policy, ReportedIndex, Segment};
use quern_coordinator::store::StoredWorker;
use quern_core::{Compression, Counters, InputFile, InputSplit, JobPlan, JobSpec, PlannedOutput};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let workers = numbers.first().copied().unwrap_or(1000);
    let tasks = numbers.get(1).copied().unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let state = match args.iter().position(|a| a == "--state") {
        Some(i) => Some(args.get(i + 1).ok_or("--state needs a URL")?.clone()),
        None if args.iter().any(|a| a == "--store") => {
            Some(format!("sqlite://{}", dir.path().join("state.db").display()))
        }
        None => None,
    };
    match state {
        Some(url) => with_store(&url, workers, tasks, dir.path()),
        None => decisions_only(workers, tasks, dir.path()),
    }
}

/// The job every run schedules: `tasks - 10` maps of one split each and 10
/// reduces.
fn sim_job(tasks: usize, dir: &std::path::Path) -> Result<(JobSpec, JobPlan), Box<dyn std::error::Error>> {
    let reducers = 10usize;
    let maps = tasks - reducers;
    let output = dir.join("out");
    let spec = JobSpec::new("sim", vec!["sim".into()], output.display().to_string());
    let input = dir.join("sim.txt");
    std::fs::write(&input, "sim\n")?;
    let file = InputFile {
        location: input.display().to_string(),
        name: "sim".into(),
        len: 1 << 20,
        compression: Compression::None,
    };
    let plan = JobPlan {
        splits: (0..maps).map(|_| InputSplit { file: file.clone(), start: 0, end: Some(1 << 20) }).collect(),
        outputs: vec![PlannedOutput {
            name: String::new(),
            reducers: reducers as u32,
            first_partition: 0,
            cut_points: None,
        }],
        partitions: reducers as u32,
        shuffle: None,
        partitioner: Default::default(),
    };
    Ok((spec, plan))
}

fn with_store(
    url: &str,
    workers: usize,
    tasks: usize,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use quern_coordinator::{CoordinatorHandle, Registration};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let store = quern_coordinator::store::open(url).await?;
        let handle = CoordinatorHandle::with_store(
            store,
            quern_storage::Storage::default(),
            Policy::with_timeouts(600_000, 600_000, false),
            1000,
        )
        .await?;
        for w in 0..workers {
            handle
                .register(Registration {
                    worker_id: format!("w{w:04}").into(),
                    host: "sim".into(),
                    shuffle_address: format!("http://sim-{w}:1"),
                    slots: 2,
                    apps: vec![quern_core::AppInfo::named("sim")],
                    version: "sim".into(),
                    held_jobs: vec![],
                })
                .await?;
        }
        let (spec, plan) = sim_job(tasks, dir)?;
        // Play the worker that plans the job.
        let submission = tokio::spawn({
            let handle = handle.clone();
            async move { handle.submit(spec, 0).await }
        });
        let mut plan = Some(plan);
        while !submission.is_finished() {
            for request in handle.heartbeat("w0000", &[]).await?.plans {
                if let Some(plan) = plan.take() {
                    handle.report_plan("w0000", request.ticket, quern_coordinator::PlanAnswer::Planned(plan)).await;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let id = submission.await??;
        // Idle workers learn that the job ended from the event stream, not
        // by asking (which would measure the job view, not scheduling).
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut events = handle.events();
        let watcher = tokio::spawn({
            let ended = ended.clone();
            async move {
                while let Ok(event) = events.recv().await {
                    if matches!(event, quern_coordinator::Event::Job { id: j, state } if j == id && state.is_terminal())
                    {
                        ended.store(true, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
            }
        });
        let started = Instant::now();
        let mut sims = Vec::new();
        for w in 0..workers {
            let handle = handle.clone();
            let ended = ended.clone();
            sims.push(tokio::spawn(async move {
                let worker = format!("w{w:04}");
                let segments = vec![Segment { offset: 0, len: 100, records: 10, raw_len: 120 }; 10];
                let mut assigned = 0u64;
                loop {
                    let got = handle.poll(&worker, 2).await?.ok_or("the simulated worker was forgotten")?;
                    if got.is_empty() {
                        if ended.load(std::sync::atomic::Ordering::SeqCst) {
                            return Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(assigned);
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        continue;
                    }
                    assigned += got.len() as u64;
                    for a in got {
                        let map_output = (a.attempt.task.kind == quern_core::TaskKind::Map).then(|| ReportedIndex {
                            path: format!("/sim/{}", a.attempt).into(),
                            segments: segments.clone(),
                        });
                        let outcome =
                            Outcome::Succeeded { counters: Counters::default(), map_output, output_digest: None };
                        handle.report(&worker, id, a.attempt, outcome, Vec::new()).await?;
                    }
                }
            }));
        }
        let mut assignments = 0;
        for sim in sims {
            assignments += sim.await?.map_err(|e| e.to_string())?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        watcher.abort();
        let state = handle.job(id).await?.state;
        println!(
            "{workers} workers, {tasks} tasks, every effect stored in {}: job {state}, {assignments} assignments in \
             {elapsed:.2} s = {:.0} assignments/s; peak RSS {:.1} MiB",
            quern_coordinator::store::redact(url).split("://").next().unwrap_or("?"),
            assignments as f64 / elapsed,
            peak_rss_mib()
        );
        Ok(())
    })
}

fn decisions_only(workers: usize, tasks: usize, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let persist =
        |_effects: Vec<quern_coordinator::cluster::Effect>| -> Result<(), Box<dyn std::error::Error>> { Ok(()) };

    let mut cluster = Cluster::new(Policy::with_timeouts(10_000, 600_000, false));
    for w in 0..workers {
        let row = StoredWorker {
            id: format!("w{w:04}").into(),
            host: "sim".into(),
            shuffle_address: format!("http://sim-{w}:1"),
            slots: 2,
            apps: vec![quern_core::AppInfo::named("sim")],
            version: "sim".into(),
            state: quern_coordinator::state::WorkerState::Alive,
            admin: quern_coordinator::state::WorkerAdmin::Enabled,
            registered_at_ms: 0,
            last_heartbeat_ms: 0,
        };
        persist(cluster.register(row, 0))?;
    }
    let (spec, plan) = sim_job(tasks, dir)?;
    quern_storage::OutputCommitter::setup(std::path::Path::new(&spec.output))?;
    let (maps, reducers) = (plan.splits.len(), plan.partitions as usize);
    let id = quern_core::JobId(1);
    persist(cluster.add_job(
        NewJob { id, spec, plan, spec_json: "{}".into(), plan_json: "{}".into(), priority: 0, owner: String::new() },
        0,
    ))?;

    let segments = vec![Segment { offset: 0, len: 100, records: 10, raw_len: 120 }; reducers];
    let started = Instant::now();
    let mut assignments = 0u64;
    let mut now = 0i64;
    let mut in_flight: Vec<(String, quern_core::AttemptId)> = Vec::new();
    let mut rounds = 0;
    while cluster.job(id).is_some_and(|j| !j.phase.is_terminal()) {
        now += 100;
        rounds += 1;
        for (worker, attempt) in in_flight.drain(..) {
            let map_output = (attempt.task.kind == quern_core::TaskKind::Map)
                .then(|| ReportedIndex { path: format!("/sim/{attempt}").into(), segments: segments.clone() });
            let outcome = Outcome::Succeeded { counters: Counters::default(), map_output, output_digest: None };
            let (_, effects) = cluster.report(&worker, id, attempt, outcome, Vec::new(), now)?;
            persist(effects)?;
        }
        for w in 0..workers {
            let worker = format!("w{w:04}");
            cluster.heartbeat(&worker, &[], now);
            let (got, effects) = cluster.poll(&worker, 2, now)?;
            persist(effects)?;
            assignments += got.len() as u64;
            in_flight.extend(got.into_iter().map(|a| (worker.clone(), a.attempt)));
        }
        persist(cluster.tick(now))?;
        if rounds > 100_000 {
            return Err("the simulated job never finished".into());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{workers} workers, {tasks} tasks ({maps} maps, {reducers} reduces), decisions only: {assignments} assignments \
         in {elapsed:.2} s = {:.0} assignments/s over {rounds} rounds; peak RSS {:.1} MiB",
        assignments as f64 / elapsed,
        peak_rss_mib()
    );
    Ok(())
}
