//! Property test: the engine's output equals the naive reference's for
//! random inputs, random reducer counts, tiny split sizes and tiny sort
//! buffers (many spills, many merge passes), with and without a combiner,
//! with one output and with two, partitioned by hash and in total order
//! (where the part files concatenated must already be the reference's
//! output, in order). And `sort`, in total order, writes exactly the input's
//! lines, sorted.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use quern::{JobSpec, Partitioner, RunOptions};
use quern_testkit::{Tokens, reference};

fn file_strategy() -> impl Strategy<Value = Vec<u8>> {
    let token = proptest::string::string_regex("[a-d]{1,3}").expect("regex");
    let line = proptest::collection::vec(token, 0..7).prop_map(|t| t.join(" "));
    (proptest::collection::vec(line, 0..120), any::<bool>(), any::<bool>()).prop_map(|(lines, crlf, final_nl)| {
        let sep = if crlf { "\r\n" } else { "\n" };
        let mut text = lines.join(sep);
        if final_nl && !text.is_empty() {
            text.push_str(sep);
        }
        text.into_bytes()
    })
}

/// Every record of the output directory for one output: each part file
/// sorted by key; by hash, each key in its FNV partition, and the records
/// returned in key order; in total order, the part files concatenated in
/// order sorted, and the records returned as they are.
fn read_output(dir: &Path, reducers: u32, partitioner: Partitioner) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut all = Vec::new();
    let mut prev: Option<Vec<u8>> = None;
    for r in 0..reducers {
        let data = fs::read(dir.join(format!("part-r-{r:05}"))).expect("part file");
        if partitioner == Partitioner::Hash {
            prev = None;
        }
        for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line.iter().position(|&b| b == b'\t').expect("key<TAB>value");
            let (k, v) = (line[..tab].to_vec(), line[tab + 1..].to_vec());
            if partitioner == Partitioner::Hash {
                assert_eq!(quern::partition(&k, reducers), r, "key in the wrong partition");
            }
            assert!(
                prev.as_ref().is_none_or(|p| p < &k),
                "part file not sorted (in total order: not after the previous part), or a key reduced twice"
            );
            prev = Some(k.clone());
            all.push((k, v));
        }
    }
    if partitioner == Partitioner::Hash {
        all.sort();
    }
    all
}

/// Lines for `sort`: few distinct ones (duplicates), with TABs, carriage
/// returns and empty lines, separated by `\n` or `\r\n`, with or without a
/// final line break.
fn sort_file_strategy() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        proptest::string::string_regex("[ab]{0,2}").expect("regex"),
        proptest::string::string_regex("[a-c\t\r]{0,6}").expect("regex"),
    ];
    (proptest::collection::vec(line, 0..150), any::<bool>(), any::<bool>()).prop_map(|(lines, crlf, final_nl)| {
        let sep = if crlf { "\r\n" } else { "\n" };
        let mut text = lines.join(sep);
        if final_nl && !text.is_empty() {
            text.push_str(sep);
        }
        text.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn engine_equals_reference(
        files in proptest::collection::vec(file_strategy(), 1..4),
        reducers in 1u32..5,
        second_reducers in 1u32..4,
        split_size in 16u64..2048,
        sort_buffer in 1024u64..4096,
        merge_factor in 2usize..5,
        combine in any::<bool>(),
        two_outputs in any::<bool>(),
        aggregate in any::<bool>(),
        total_order in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut named = Vec::new();
        for (i, data) in files.iter().enumerate() {
            let path = dir.path().join(format!("in-{i}.txt"));
            fs::write(&path, data).expect("write input");
            named.push((path.display().to_string(), data.clone()));
        }
        let app = Tokens { combine, two_outputs, aggregate };
        let out = dir.path().join("out");
        let mut spec = JobSpec::new("tokens", named.iter().map(|(n, _)| n.clone()).collect(), out.display().to_string());
        spec.reducers = Some(reducers);
        if two_outputs {
            spec.output_reducers.insert("by_length".into(), second_reducers);
        }
        spec.split_size = split_size;
        spec.sort_buffer = sort_buffer;
        let partitioner = if total_order { Partitioner::TotalOrder } else { Partitioner::Hash };
        spec.partitioner = Some(partitioner);
        let opts = RunOptions { parallelism: 2, merge_factor, work_dir: Some(dir.path().join("work")), ..RunOptions::default() };
        let report = quern::run_job(&spec, Arc::new(app), &opts).expect("job succeeds");

        let expected = reference::run(&app, &named);
        let outputs: Vec<(std::path::PathBuf, u32)> = if two_outputs {
            vec![(out.join("counts"), reducers), (out.join("by_length"), second_reducers)]
        } else {
            vec![(out.clone(), reducers)]
        };
        for ((path, r), expected) in outputs.iter().zip(&expected) {
            prop_assert_eq!(&read_output(path, *r, partitioner), expected);
        }
        prop_assert!(out.join("_SUCCESS").exists());
        let c = report.counters.engine;
        let input_len: u64 = files.iter().map(|f| f.len() as u64).sum();
        prop_assert_eq!(c.input_bytes, input_len);
        if !combine {
            prop_assert_eq!(c.reduce_input_records, c.map_output_records);
        }
        prop_assert_eq!(c.output_records as usize, expected.iter().map(Vec::len).sum::<usize>());
        prop_assert_eq!(c.failed_attempts, 0);
    }

    #[test]
    fn sort_in_total_order_writes_the_input_lines_sorted(
        files in proptest::collection::vec(sort_file_strategy(), 1..4),
        reducers in 1u32..6,
        split_size in 16u64..512,
        sort_buffer in 1024u64..4096,
        merge_factor in 2usize..5,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut inputs = Vec::new();
        let mut lines: Vec<&[u8]> = Vec::new();
        for (i, data) in files.iter().enumerate() {
            let path = dir.path().join(format!("in-{i}.txt"));
            fs::write(&path, data).expect("write input");
            inputs.push(path.display().to_string());
            // A line is everything up to its `\n`, a `\r` included.
            lines.extend(data.split_inclusive(|&b| b == b'\n').map(|l| l.strip_suffix(b"\n").unwrap_or(l)));
        }
        lines.sort();
        let expected: Vec<u8> = lines.iter().flat_map(|l| l.iter().chain(b"\n")).copied().collect();

        let out = dir.path().join("out");
        let mut spec = JobSpec::new("sort", inputs, out.display().to_string());
        spec.reducers = Some(reducers);
        spec.split_size = split_size;
        spec.sort_buffer = sort_buffer;
        let opts = RunOptions { parallelism: 2, merge_factor, work_dir: Some(dir.path().join("work")), ..RunOptions::default() };
        quern::run_job(&spec, Arc::new(quern::Sort), &opts).expect("job succeeds");
        let mut got = Vec::new();
        for r in 0..reducers {
            got.extend(fs::read(out.join(format!("part-r-{r:05}"))).expect("part file"));
        }
        prop_assert!(got == expected, "part files concatenated: {:?}\nexpected: {:?}", String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected));
    }
}
