//! A naive in-memory MapReduce: map every record of every file, group all
//! pairs of each output in a `BTreeMap`, reduce each key. No splits, no
//! spills, no partitions: the answer the engine must reproduce.

use std::collections::BTreeMap;

use quern::{App, Counters, MapContext, MapSink, Record, ReduceContext, ReduceSink, SliceValues, Values};

struct Pairs(Vec<BTreeMap<Vec<u8>, Vec<Vec<u8>>>>);

impl MapSink for Pairs {
    fn emit(&mut self, output: usize, key: &[u8], value: &[u8]) {
        self.0[output].entry(key.to_vec()).or_default().push(value.to_vec());
    }
}

struct Collected(Vec<(Vec<u8>, Vec<u8>)>);

impl ReduceSink for Collected {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.0.push((key.to_vec(), value.to_vec()));
    }
}

/// Runs `app` over `files` (name, contents), reading lines like the text
/// input format. Returns, per output, every reduced pair in key order.
pub fn run(app: &dyn App, files: &[(String, Vec<u8>)]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    let outputs = app.outputs().len();
    let mut pairs = Pairs(vec![BTreeMap::new(); outputs]);
    let mut counters = Counters::default();
    for (name, data) in files {
        let mut offset = 0u64;
        for (i, raw) in data.split_inclusive(|&b| b == b'\n').enumerate() {
            let mut line = raw.strip_suffix(b"\n").unwrap_or(raw);
            if raw.ends_with(b"\n") {
                line = line.strip_suffix(b"\r").unwrap_or(line);
            }
            let record = Record { source: name, offset, line: Some(i as u64 + 1), data: line };
            app.map(&record, &mut MapContext::new(&mut pairs, &mut counters)).expect("reference map");
            offset += raw.len() as u64;
        }
    }
    pairs
        .0
        .into_iter()
        .enumerate()
        .map(|(output, groups)| {
            let mut out = Collected(Vec::new());
            for (key, values) in groups {
                let slices: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                let mut source = SliceValues::new(&slices);
                let mut ctx = ReduceContext::new(output, &mut out, &mut counters);
                app.reduce(&key, &mut Values::new(&mut source), &mut ctx).expect("reference reduce");
            }
            out.0
        })
        .collect()
}
