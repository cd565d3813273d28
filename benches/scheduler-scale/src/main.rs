//! Scheduler scale: 1,000 simulated workers with 2 slots each heartbeat and
//! poll a coordinator's `Cluster` in rounds of simulated 100 ms; every
//! attempt handed out finishes by the next round. No data moves. Prints
//! assignments per second (of wall time spent in the coordinator's
//! decisions) and the process's peak memory.
//!
//! Usage: `scheduler-scale [WORKERS] [TASKS] [--store]` (defaults 1000
//! 100000). With `--store`, every effect is also written to a SQLite state
//! database, as the real coordinator does.

use std::time::Instant;

use quern_coordinator::cluster::{Cluster, NewJob, Outcome, Policy, ReportedIndex, Segment};
use quern_coordinator::store::{JobRow, Store, WorkerRow};
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
    let with_store = args.iter().any(|a| a == "--store");
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let workers = numbers.first().copied().unwrap_or(1000);
    let tasks = numbers.get(1).copied().unwrap_or(100_000);
    let reducers = 10usize;
    let maps = tasks - reducers;

    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let store = if with_store {
        Some(runtime.block_on(Store::open(&format!("sqlite://{}", dir.path().join("state.db").display())))?)
    } else {
        None
    };
    let persist = |effects: Vec<quern_coordinator::cluster::Effect>| -> Result<(), Box<dyn std::error::Error>> {
        if let Some(store) = &store {
            runtime.block_on(store.apply_all(effects))?;
        }
        Ok(())
    };

    let mut cluster = Cluster::new(Policy::with_timeouts(10_000, 600_000, false));
    for w in 0..workers {
        let row = WorkerRow {
            id: format!("w{w:04}"),
            host: "sim".into(),
            shuffle_address: format!("http://sim-{w}:1"),
            slots: 2,
            apps: vec!["sim".into()],
            version: "sim".into(),
            state: quern_coordinator::state::WorkerState::Alive,
            registered_at_ms: 0,
            last_heartbeat_ms: 0,
        };
        persist(cluster.register(row, 0))?;
    }
    let output = dir.path().join("out");
    quern_storage::OutputCommitter::setup(&output)?;
    let spec = JobSpec::new("sim", vec!["sim".into()], output.display().to_string());
    let file = InputFile { location: "sim".into(), name: "sim".into(), len: 1 << 20, compression: Compression::None };
    let plan = JobPlan {
        splits: (0..maps).map(|_| InputSplit { file: file.clone(), start: 0, end: Some(1 << 20) }).collect(),
        outputs: vec![PlannedOutput { name: String::new(), reducers: reducers as u32, first_partition: 0 }],
        partitions: reducers as u32,
    };
    let id = match &store {
        Some(store) => runtime.block_on(store.insert_job(&JobRow {
            id: 0,
            app: "sim".into(),
            spec_json: "{}".into(),
            plan_json: "{}".into(),
            priority: 0,
            state: quern_coordinator::state::JobPhase::Pending,
            error: String::new(),
            counters_json: "{}".into(),
            submitted_at_ms: 0,
            started_at_ms: 0,
            finished_at_ms: 0,
        }))?,
        None => 1,
    };
    persist(
        cluster.add_job(NewJob { id, spec, plan, spec_json: "{}".into(), plan_json: "{}".into(), priority: 0 }, 0),
    )?;

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
            let outcome = Outcome::Succeeded { counters: Counters::default(), map_output };
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
        "{workers} workers, {tasks} tasks ({maps} maps, {reducers} reduces){}: {assignments} assignments in {elapsed:.2} s \
         = {:.0} assignments/s over {rounds} rounds; peak RSS {:.1} MiB",
        if with_store { ", with the SQLite store" } else { "" },
        assignments as f64 / elapsed,
        peak_rss_mib()
    );
    Ok(())
}
