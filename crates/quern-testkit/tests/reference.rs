//! Property test: the engine's output equals the naive reference's for
//! random inputs, random reducer counts, tiny split sizes and tiny sort
//! buffers (many spills, many merge passes), with and without a combiner,
//! with one output and with two.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use quern::{JobSpec, RunOptions};
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
/// sorted by key, each key in its FNV partition; returned in key order.
fn read_output(dir: &Path, reducers: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut all = Vec::new();
    for r in 0..reducers {
        let data = fs::read(dir.join(format!("part-r-{r:05}"))).expect("part file");
        let mut prev: Option<Vec<u8>> = None;
        for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line.iter().position(|&b| b == b'\t').expect("key<TAB>value");
            let (k, v) = (line[..tab].to_vec(), line[tab + 1..].to_vec());
            assert_eq!(quern::partition(&k, reducers), r, "key in the wrong partition");
            assert!(prev.as_ref().is_none_or(|p| p < &k), "part file not sorted, or a key reduced twice");
            prev = Some(k.clone());
            all.push((k, v));
        }
    }
    all.sort();
    all
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
        let opts = RunOptions { parallelism: 2, merge_factor, work_dir: Some(dir.path().join("work")), ..RunOptions::default() };
        let report = quern::run_job(&spec, Arc::new(app), &opts).expect("job succeeds");

        let expected = reference::run(&app, &named);
        let outputs: Vec<(std::path::PathBuf, u32)> = if two_outputs {
            vec![(out.join("counts"), reducers), (out.join("by_length"), second_reducers)]
        } else {
            vec![(out.clone(), reducers)]
        };
        for ((path, r), expected) in outputs.iter().zip(&expected) {
            prop_assert_eq!(&read_output(path, *r), expected);
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
}
