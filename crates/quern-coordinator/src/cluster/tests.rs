//! Decision tests: the cluster driven by calls, without a network or a
//! database.

use std::path::Path;

use super::*;
use crate::storage_work::run_in_order;
use crate::store::{SavedJob, SavedState, StoredJob};
use quern_core::{Compression, InputFile, InputSplit, PlannedOutput};
use quern_storage::{OutputCommitter, Storage};

const POLICY: Policy = Policy::with_timeouts(1_000, 60_000, false);

fn worker(id: &str, apps: &[&str]) -> StoredWorker {
    StoredWorker {
        id: id.into(),
        host: "h".into(),
        shuffle_address: format!("http://{id}:1"),
        slots: 2,
        apps: apps.iter().map(|&a| quern_core::AppInfo::named(a)).collect(),
        version: "t".into(),
        state: WorkerState::Alive,
        admin: crate::state::WorkerAdmin::Enabled,
        registered_at_ms: 0,
        last_heartbeat_ms: 0,
    }
}

/// A job of `maps` maps and one reducer whose output is `out`.
fn job(id: u64, app: &str, maps: usize, priority: i32, out: &Path) -> NewJob {
    OutputCommitter::setup(out).expect("output");
    let spec = JobSpec::new(app, vec!["in".into()], out.display().to_string());
    let file = InputFile { location: "in".into(), name: "in".into(), len: 10, compression: Compression::None };
    let plan = JobPlan {
        splits: (0..maps).map(|_| InputSplit { file: file.clone(), start: 0, end: Some(10) }).collect(),
        outputs: vec![PlannedOutput { name: String::new(), reducers: 1, first_partition: 0, cut_points: None }],
        partitions: 1,
        shuffle: None,
        partitioner: Default::default(),
    };
    NewJob { id: JobId(id), spec, plan, spec_json: "{}".into(), plan_json: "{}".into(), priority, owner: String::new() }
}

fn succeeded(index: Option<ReportedIndex>) -> Outcome {
    Outcome::Succeeded { counters: Counters::default(), map_output: index, output_digest: None }
}

fn index(path: &str) -> Option<ReportedIndex> {
    Some(ReportedIndex { path: path.into(), segments: vec![Segment { offset: 0, len: 10, records: 1, raw_len: 12 }] })
}

/// Runs the output work the decisions so far queued, as the application
/// layer does once they are stored, and hands back what it found.
fn run_storage_work(c: &mut Cluster, now: i64) -> Vec<Effect> {
    let outcomes = run_in_order(&Storage::default(), c.take_storage_work());
    c.storage_done(outcomes, now)
}

fn poll_one(c: &mut Cluster, w: &str, now: i64) -> Option<Assignment> {
    c.poll(w, 1, now).expect("poll").0.pop()
}

/// Workers a and b and job 1 of two maps, m0 running on a, m1 on b.
fn two_maps_on_a_and_b(dir: &Path) -> (Cluster, Assignment, Assignment) {
    let mut c = Cluster::new(POLICY);
    c.register(worker("a", &["wc"]), 0);
    c.register(worker("b", &["wc"]), 0);
    c.add_job(job(1, "wc", 2, 0, &dir.join("out")), 0);
    let m0 = poll_one(&mut c, "a", 0).expect("m0");
    let m1 = poll_one(&mut c, "b", 0).expect("m1");
    (c, m0, m1)
}

#[test]
fn priority_first_then_the_job_with_fewest_running_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Cluster::new(POLICY);
    c.register(worker("w", &["wc"]), 0);
    c.add_job(job(1, "wc", 3, 0, &dir.path().join("a")), 0);
    c.add_job(job(2, "wc", 3, 0, &dir.path().join("b")), 0);
    c.add_job(job(3, "wc", 1, 9, &dir.path().join("c")), 0);
    let order: Vec<u64> = (0..5).filter_map(|_| poll_one(&mut c, "w", 1)).map(|a| a.job.0).collect();
    assert_eq!(order, vec![3, 1, 2, 1, 2], "priority, then fair share, then age");
}

#[test]
fn tasks_go_only_to_workers_with_the_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Cluster::new(POLICY);
    c.register(worker("other", &["grep"]), 0);
    c.register(worker("w", &["wc"]), 0);
    c.add_job(job(1, "wc", 1, 0, &dir.path().join("a")), 0);
    assert!(poll_one(&mut c, "other", 1).is_none());
    assert!(poll_one(&mut c, "w", 1).is_some());
}

#[test]
fn a_late_success_from_a_worker_presumed_lost_is_discarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Cluster::new(POLICY);
    c.register(worker("a", &["wc"]), 0);
    c.add_job(job(1, "wc", 1, 0, &dir.path().join("out")), 0);
    let first = poll_one(&mut c, "a", 0).expect("m0 on a");
    c.tick(5_000); // a is silent past the timeout: lost
    assert!(!c.workers().find(|w| w.row.id == "a").expect("a").alive);
    c.register(worker("b", &["wc"]), 5_000);
    let second = poll_one(&mut c, "b", 5_000).expect("m0 again on b");
    assert_eq!((second.attempt.task, second.attempt.attempt), (first.attempt.task, 2));
    let (committed, _) =
        c.report("a", JobId(1), first.attempt, succeeded(index("/a/map.out")), vec![], 5_100).expect("report");
    assert!(!committed, "the lost worker's late success must not commit");
    let (committed, _) =
        c.report("b", JobId(1), second.attempt, succeeded(index("/b/map.out")), vec![], 5_200).expect("report");
    assert!(committed);
    let reduce = poll_one(&mut c, "b", 5_300).expect("the reduce");
    assert_eq!(reduce.inputs.len(), 1);
    assert_eq!(reduce.inputs[0].1.path, "/b/map.out", "reduces read the committed attempt's output");
}

#[test]
fn a_lost_worker_s_map_outputs_are_made_again_while_reduces_need_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, m0, m1) = two_maps_on_a_and_b(dir.path());
    c.report("a", JobId(1), m0.attempt, succeeded(index("/a/map.out")), vec![], 10).expect("report");
    c.report("b", JobId(1), m1.attempt, succeeded(index("/b/map.out")), vec![], 10).expect("report");
    assert_eq!(c.job(JobId(1)).map(Job::stage), Some("reduce"));
    // b keeps heartbeating; a goes silent.
    c.heartbeat("b", &[], 900);
    c.tick(1_500);
    assert_eq!(c.job(JobId(1)).map(Job::stage), Some("map"), "m0's output was on a");
    let again = poll_one(&mut c, "b", 1_600).expect("m0 again");
    assert_eq!((again.attempt.task, again.attempt.attempt), (m0.attempt.task, 2));
    c.report("b", JobId(1), again.attempt, succeeded(index("/b/m0.out")), vec![], 1_700).expect("report");
    let reduce = poll_one(&mut c, "b", 1_800).expect("the reduce");
    let (committed, _) = c.report("b", JobId(1), reduce.attempt, succeeded(None), vec![], 1_900).expect("report");
    assert!(committed);
    assert_eq!(c.job(JobId(1)).map(Job::stage), Some("commit"), "the job ends when its commit does");
    assert!(!dir.path().join("out/_SUCCESS").exists(), "no storage work under the decision");
    run_storage_work(&mut c, 2_000);
    assert_eq!(c.job(JobId(1)).map(|j| j.phase), Some(JobPhase::Succeeded));
    assert!(dir.path().join("out/_SUCCESS").exists());
}

#[test]
fn a_hung_attempt_is_failed_and_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Cluster::new(Policy { task_timeout_ms: 500, ..POLICY });
    c.register(worker("a", &["wc"]), 0);
    c.add_job(job(1, "wc", 1, 0, &dir.path().join("out")), 0);
    let m0 = poll_one(&mut c, "a", 0).expect("m0");
    c.heartbeat("a", &[(JobId(1), m0.attempt, 0.1, 5)], 300);
    c.tick(600);
    assert!(c.job(JobId(1)).is_some_and(|j| j.running.contains_key(&m0.attempt)), "progress at 300 ms keeps it alive");
    c.heartbeat("a", &[(JobId(1), m0.attempt, 0.1, 5)], 700);
    c.tick(900);
    let cancels = c.heartbeat("a", &[], 950).0.cancel;
    assert_eq!(cancels, vec![(JobId(1), m0.attempt)]);
    assert_eq!(c.job(JobId(1)).map(|j| j.counters().engine.failed_attempts), Some(1));
    assert_eq!(poll_one(&mut c, "a", 1_000).map(|a| a.attempt.attempt), Some(2));
}

fn failed(message: &str) -> Outcome {
    Outcome::Failed(Failure { message: message.into(), retryable: true })
}

fn counted(input_records: u64) -> Outcome {
    let mut counters = Counters::default();
    counters.engine.input_records = input_records;
    Outcome::Succeeded { counters, map_output: index("/x/map.out"), output_digest: None }
}

#[test]
fn a_failed_task_is_retried_on_another_worker_when_there_is_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Cluster::new(POLICY);
    c.register(worker("sick", &["wc"]), 0);
    c.add_job(job(1, "wc", 2, 0, &dir.path().join("out")), 0);
    let m0 = poll_one(&mut c, "sick", 0).expect("m0");
    c.report("sick", JobId(1), m0.attempt, failed("disk full"), vec![], 10).expect("report");
    // Alone, the sick worker gets the retry: a job never stalls.
    let again = poll_one(&mut c, "sick", 20).expect("m0 again, nobody else can");
    assert_eq!(again.attempt.task, m0.attempt.task);
    c.report("sick", JobId(1), again.attempt, failed("disk full"), vec![], 30).expect("report");
    // With a healthy worker about, the sick one gets other tasks only.
    c.register(worker("ok", &["wc"]), 40);
    let next = poll_one(&mut c, "sick", 50).expect("another task");
    assert_ne!(next.attempt.task, m0.attempt.task, "m0 failed on sick: its retry waits for ok");
    let retry = poll_one(&mut c, "ok", 60).expect("m0 on ok");
    assert_eq!((retry.attempt.task, retry.attempt.attempt), (m0.attempt.task, 3));
}

#[test]
fn a_worker_failing_several_tasks_is_excluded_from_the_job_then_from_the_cluster_until_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Policy { blacklist_task_failures: 2, blacklist_jobs: 2, blacklist_expiry_ms: 10_000, ..POLICY };
    let mut c = Cluster::new(policy);
    c.register(worker("sick", &["wc"]), 0);
    c.register(worker("ok", &["wc"]), 0);
    for id in [1, 2] {
        c.add_job(job(id, "wc", 4, 0, &dir.path().join(format!("out{id}"))), 0);
    }
    let beat = |c: &mut Cluster, now| {
        c.heartbeat("sick", &[], now);
        c.heartbeat("ok", &[], now);
    };
    // Job 1 hands sick two tasks; both fail: job 1 stops using it.
    for now in [100, 200] {
        let a = poll_one(&mut c, "sick", now).expect("a task");
        assert_eq!(a.job, JobId(1));
        c.report("sick", JobId(1), a.attempt, failed("disk full"), vec![], now + 1).expect("report");
    }
    assert_eq!(c.excluding_jobs("sick", 300), vec![JobId(1)]);
    let a = poll_one(&mut c, "sick", 300).expect("job 2 still uses sick");
    assert_eq!(a.job, JobId(2), "job 1 excludes sick");
    c.report("sick", JobId(2), a.attempt, failed("disk full"), vec![], 301).expect("report");
    let b = poll_one(&mut c, "sick", 400).expect("a task of job 2");
    c.report("sick", JobId(2), b.attempt, failed("disk full"), vec![], 401).expect("report");
    // Excluded by two jobs: excluded from the cluster, jobs to come too.
    c.add_job(job(3, "wc", 1, 9, &dir.path().join("out3")), 500);
    assert!(c.workers().find(|w| w.row.id == "sick").is_some_and(|w| w.blacklisted(500)));
    assert!(poll_one(&mut c, "sick", 500).is_none(), "no job uses a blacklisted worker while ok can run it");
    assert!(poll_one(&mut c, "ok", 500).is_some_and(|a| a.job == JobId(3)));
    // Once the failures expire, it gets work again.
    beat(&mut c, 10_300);
    assert!(c.workers().find(|w| w.row.id == "sick").is_some_and(|w| !w.blacklisted(10_600)));
    assert!(poll_one(&mut c, "sick", 10_600).is_some(), "the blacklist expires");
    // The failures were counted as failed attempts of their jobs.
    assert_eq!(c.job(JobId(1)).map(|j| j.counters().engine.failed_attempts), Some(2));
}

#[test]
fn counters_count_each_task_s_committed_attempt_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, m0, m1) = two_maps_on_a_and_b(dir.path());
    c.report("a", JobId(1), m0.attempt, counted(10), vec![], 10).expect("report");
    c.report("b", JobId(1), m1.attempt, counted(20), vec![], 10).expect("report");
    let records = |c: &Cluster| c.job(JobId(1)).map(|j| j.counters().engine.input_records);
    assert_eq!(records(&c), Some(30));
    // a is lost with m0's output: m0 runs again and counts once.
    c.heartbeat("b", &[], 900);
    c.tick(1_500);
    assert_eq!(records(&c), Some(20), "a lost map output no longer counts");
    let again = poll_one(&mut c, "b", 1_600).expect("m0 again");
    c.report("b", JobId(1), again.attempt, counted(10), vec![], 1_700).expect("report");
    assert_eq!(records(&c), Some(30), "re-run work is counted once");
}

#[test]
fn restore_refuses_a_committed_task_without_its_output_or_counters_instead_of_guessing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let new = job(1, "wc", 1, 0, &dir.path().join("out"));
    let row = StoredJob {
        id: JobId(1),
        app: "wc".into(),
        spec_json: serde_json::to_string(&new.spec).expect("spec"),
        plan_json: serde_json::to_string(&new.plan).expect("plan"),
        priority: 0,
        state: JobPhase::Running,
        error: String::new(),
        counters: Counters::default(),
        submitted_at_ms: 0,
        started_at_ms: 0,
        finished_at_ms: 0,
        owner: String::new(),
    };
    let loc = MapOutputLoc {
        worker_id: "a".into(),
        shuffle_address: "http://a:1".into(),
        path: "/a/map.out".into(),
        segments: vec![Segment { offset: 0, len: 0, records: 0, raw_len: 0 }],
    };
    let task = |map_output: Option<MapOutputLoc>, counters: Option<Counters>| StoredTask {
        task: TaskId { kind: TaskKind::Map, index: 0 },
        record: TaskRecord { started: 1, failures: 0, committed: Some(1), failed: false },
        map_output,
        counters,
    };
    let saved =
        |job: StoredJob, tasks| SavedState { jobs: vec![SavedJob { job, tasks, running: vec![] }], workers: vec![] };
    let restore = |t: StoredTask| Cluster::restore(POLICY, saved(row.clone(), vec![t]), 0).map(|_| ());
    assert!(restore(task(Some(loc.clone()), Some(Counters::default()))).is_ok());
    for (bad, field) in
        [(task(None, Some(Counters::default())), "map_output_json"), (task(Some(loc), None), "counters_json")]
    {
        let err = restore(bad).expect_err("a committed task without its state is an error");
        assert!(err.to_string().contains(&format!("job 1 task m-00000 field {field}: missing")), "{err}");
    }
    let mut corrupt = row.clone();
    corrupt.plan_json = "{".into();
    let err = Cluster::restore(POLICY, saved(corrupt, vec![]), 0).expect_err("a plan that does not parse");
    assert!(err.to_string().contains("job 1 field plan_json"), "{err}");
}

#[test]
fn an_ended_job_s_intermediate_data_goes_after_the_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Policy { retention_ms: 1_000, ..POLICY };
    let mut c = Cluster::new(policy);
    c.register(worker("a", &["wc"]), 0);
    let mut new = job(1, "wc", 1, 0, &dir.path().join("out"));
    new.plan.outputs[0].reducers = 0;
    new.plan.partitions = 0;
    c.add_job(new, 0);
    let m0 = poll_one(&mut c, "a", 0).expect("m0");
    c.report("a", JobId(1), m0.attempt, succeeded(None), vec![], 100).expect("report");
    run_storage_work(&mut c, 100);
    assert_eq!(c.job(JobId(1)).map(|j| j.phase), Some(JobPhase::Succeeded));
    c.tick(600);
    assert!(c.heartbeat("a", &[], 600).0.forget_jobs.is_empty(), "kept during the retention");
    assert_eq!(
        c.ended_jobs(&[JobId(1), JobId(7)], 600),
        vec![JobId(7)],
        "a returning worker keeps it too; unknown jobs go"
    );
    c.tick(1_100);
    assert_eq!(c.heartbeat("a", &[], 1_100).0.forget_jobs, vec![JobId(1)]);
    c.tick(1_200);
    assert!(c.heartbeat("a", &[], 1_200).0.forget_jobs.is_empty(), "said once");
    assert_eq!(c.ended_jobs(&[JobId(1)], 1_200), vec![JobId(1)]);
}

#[test]
fn a_map_that_reports_success_without_its_output_index_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, m0, _m1) = two_maps_on_a_and_b(dir.path());
    let (committed, _) = c.report("a", JobId(1), m0.attempt, succeeded(None), vec![], 10).expect("report");
    assert!(!committed, "the reduces would have skipped its records");
    let job = c.job(JobId(1)).expect("job");
    assert_eq!(job.sched.as_ref().and_then(|s| s.record(m0.attempt.task)).map(|r| r.failures), Some(1));
    let again = poll_one(&mut c, "b", 20).expect("the map runs again");
    assert_eq!(again.attempt.task, m0.attempt.task);
}

#[test]
fn a_failed_task_commit_fails_the_job_and_a_committing_job_cannot_be_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let mut c = Cluster::new(POLICY);
    c.register(worker("a", &["wc"]), 0);
    let mut new = job(1, "wc", 2, 0, &out);
    new.plan.outputs[0].reducers = 0;
    new.plan.partitions = 0;
    c.add_job(new, 0);
    let m0 = poll_one(&mut c, "a", 0).expect("m0");
    let m1 = poll_one(&mut c, "a", 0).expect("m1");
    // m0's file is written, and its task commit will find a file where the
    // committed files' directory should be.
    let (writer, end) =
        OutputCommitter::open(&out).create_file(m0.attempt, "part-m-00000").expect("create").into_parts();
    drop(writer);
    end.finish().expect("finish");
    std::fs::remove_dir(out.join("_temporary/committed")).expect("rmdir");
    std::fs::write(out.join("_temporary/committed"), b"in the way").expect("write");
    let (committed, _) = c.report("a", JobId(1), m0.attempt, succeeded(None), vec![], 10).expect("report");
    assert!(committed, "the decision is taken before the files move");
    let effects = run_storage_work(&mut c, 20);
    let ended = c.job(JobId(1)).expect("job");
    assert_eq!(ended.phase, JobPhase::Failed);
    assert!(ended.error.contains("committing"), "{}", ended.error);
    assert!(effects.iter().any(|e| matches!(e, Effect::Job(u) if u.state == JobPhase::Failed)));
    assert!(
        effects.iter().any(|e| matches!(e, Effect::AttemptEnded { attempt, outcome: AttemptEnd::Cancelled, .. }
            if *attempt == m1.attempt)),
        "m1 is cancelled"
    );
    run_storage_work(&mut c, 30);
    assert!(!out.exists(), "the failed job's output is removed");

    // A job whose every task committed is committing: a kill comes too late.
    let out2 = dir.path().join("out2");
    let mut new = job(2, "wc", 1, 0, &out2);
    new.plan.outputs[0].reducers = 0;
    new.plan.partitions = 0;
    c.add_job(new, 100);
    let m = poll_one(&mut c, "a", 100).expect("m");
    c.report("a", JobId(2), m.attempt, succeeded(None), vec![], 110).expect("report");
    assert!(!c.kill(JobId(2), 120).expect("kill").0, "too late to kill");
    run_storage_work(&mut c, 130);
    assert_eq!(c.job(JobId(2)).map(|j| j.phase), Some(JobPhase::Succeeded));
    assert!(out2.join("_SUCCESS").exists());
}

#[test]
fn shuffled_map_outputs_outlive_their_worker_and_go_after_the_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shuffle = dir.path().join("shuffle/job-1");
    std::fs::create_dir_all(&shuffle).expect("mkdir");
    std::fs::write(shuffle.join("m-00000-a1.run"), b"run").expect("write");
    let policy = Policy { retention_ms: 1_000, ..POLICY };
    let mut c = Cluster::new(policy);
    c.register(worker("a", &["wc"]), 0);
    c.register(worker("b", &["wc"]), 0);
    let mut new = job(1, "wc", 2, 0, &dir.path().join("out"));
    let url = format!("file://{}", shuffle.display());
    new.plan.shuffle = Some(url.clone());
    c.add_job(new, 0);
    let m0 = poll_one(&mut c, "a", 0).expect("m0");
    let m1 = poll_one(&mut c, "b", 0).expect("m1");
    let index = |m: u32| index(&format!("{url}/m-{m:05}-a1.run"));
    c.report("a", JobId(1), m0.attempt, succeeded(index(0)), vec![], 10).expect("report");
    c.report("b", JobId(1), m1.attempt, succeeded(index(1)), vec![], 10).expect("report");
    // a goes silent: its map's output is in storage, not on a.
    c.heartbeat("b", &[], 900);
    c.tick(1_500);
    assert_eq!(c.job(JobId(1)).map(Job::stage), Some("reduce"), "no map runs again");
    let reduce = poll_one(&mut c, "b", 1_600).expect("the reduce");
    assert!(reduce.inputs.iter().any(|(m, loc, _)| *m == 0 && loc.path.starts_with("file://")));
    c.report("b", JobId(1), reduce.attempt, succeeded(None), vec![], 1_700).expect("report");
    run_storage_work(&mut c, 1_700);
    assert_eq!(c.job(JobId(1)).map(|j| j.phase), Some(JobPhase::Succeeded));
    assert!(c.take_storage_work().is_empty());
    assert!(shuffle.exists(), "kept during the retention");
    c.tick(2_800);
    let work = c.take_storage_work();
    assert_eq!(work, vec![StorageWork::DeleteShuffle { job: JobId(1), location: url }]);
    run_in_order(&Storage::default(), work);
    assert!(!shuffle.exists(), "deleted after the retention");
    assert!(dir.path().join("shuffle").exists(), "only the job's own prefix");
}

#[test]
fn a_drained_worker_finishes_its_attempt_and_gets_no_new_one_until_enabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, m0, _m1) = two_maps_on_a_and_b(dir.path());
    c.add_job(job(2, "wc", 2, 0, &dir.path().join("second")), 0);
    let effects = c.drain("a").expect("drain");
    assert!(
        matches!(&effects[..], [Effect::Worker(row)] if row.admin == WorkerAdmin::Draining),
        "the drain is stored: {effects:?}"
    );
    assert!(poll_one(&mut c, "a", 1).is_none(), "a draining worker gets nothing new");
    let (committed, _) = c.report("a", JobId(1), m0.attempt, succeeded(index("/a/m0")), vec![], 2).expect("report");
    assert!(committed, "the attempt it ran when drained still commits");
    // A restart of its process does not undo the drain.
    c.register(worker("a", &["wc"]), 3);
    assert!(poll_one(&mut c, "a", 4).is_none(), "still draining after registering again");
    assert!(poll_one(&mut c, "b", 4).is_some(), "the other worker gets the work");
    c.enable("a").expect("enable");
    assert!(poll_one(&mut c, "a", 5).is_some(), "an enabled worker gets work again");
    assert!(matches!(c.drain("nobody"), Err(Error::NoSuchWorker(_))));
}

#[test]
fn a_deregistered_worker_loses_its_attempts_and_may_not_register_until_enabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, m0, _m1) = two_maps_on_a_and_b(dir.path());
    let effects = c.deregister("a", 10).expect("deregister");
    let lost = effects.iter().any(|e| {
        matches!(e, Effect::AttemptEnded { attempt, outcome: AttemptEnd::Lost, error, .. }
            if *attempt == m0.attempt && error.contains("deregistered by an admin"))
    });
    assert!(lost, "its attempt is lost, saying why: {effects:?}");
    let again = poll_one(&mut c, "b", 11).expect("m0 runs again elsewhere");
    assert_eq!((again.attempt.task, again.attempt.attempt), (m0.attempt.task, 2));
    let err = c.check_registration("a").expect_err("refused");
    assert!(err.to_string().contains("deregistered by an admin"), "{err}");
    let (answer, _) = c.heartbeat("a", &[], 12);
    assert!(answer.reregister, "its next heartbeat sends it to registration, which refuses it");
    c.enable("a").expect("enable");
    c.check_registration("a").expect("enabled: it may register");
    c.register(worker("a", &["wc"]), 13);
    c.add_job(job(2, "wc", 1, 0, &dir.path().join("second")), 13);
    assert!(poll_one(&mut c, "a", 14).is_some());
}
