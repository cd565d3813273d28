//! The environment a streaming process gets: what Hadoop streaming sets
//! for its scripts, under both its current and its old (`mapred`) names.

use quern_core::{AttemptInfo, TaskKind};

/// The variables for `attempt`, then `cmdenv` (`--cmdenv NAME=VALUE`),
/// which may override them.
///
/// - `mapreduce_task_id` / `mapred_tip_id`: the task (`m-00003`);
/// - `mapreduce_task_attempt_id` / `mapred_task_id`: the attempt
///   (`m-00003#2`);
/// - `mapreduce_task_partition` / `mapred_task_partition`: the task's index
///   (a map's split, a reduce's partition);
/// - `mapreduce_task_ismap` / `mapred_task_is_map`: `true` or `false`;
/// - for a map, `mapreduce_map_input_file` / `map_input_file`,
///   `mapreduce_map_input_start` / `map_input_start` and
///   `mapreduce_map_input_length` / `map_input_length`: the split's file as
///   the job named it, and its byte range.
pub(crate) fn streaming_env(attempt: &AttemptInfo<'_>, cmdenv: &[(String, String)]) -> Vec<(String, String)> {
    let task = attempt.attempt.task;
    let is_map = task.kind == TaskKind::Map;
    let mut env = Vec::new();
    let mut set = |names: &[&str], value: String| {
        for name in names {
            env.push(((*name).to_owned(), value.clone()));
        }
    };
    set(&["mapreduce_task_id", "mapred_tip_id"], task.to_string());
    set(&["mapreduce_task_attempt_id", "mapred_task_id"], attempt.attempt.to_string());
    set(&["mapreduce_task_partition", "mapred_task_partition"], attempt.partition.unwrap_or(task.index).to_string());
    set(&["mapreduce_task_ismap", "mapred_task_is_map"], is_map.to_string());
    if let Some(split) = attempt.split {
        set(&["mapreduce_map_input_file", "map_input_file"], split.file.name.clone());
        set(&["mapreduce_map_input_start", "map_input_start"], split.start.to_string());
        set(&["mapreduce_map_input_length", "map_input_length"], split.len().to_string());
    }
    env.extend(cmdenv.iter().cloned());
    env
}
