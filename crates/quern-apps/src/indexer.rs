//! `indexer`: word → the sorted, comma-joined, unique base names of the files
//! that contain it. The combiner merges name sets early, so a word repeated
//! in one file costs one value, not one per occurrence.

use std::collections::BTreeSet;
use std::path::Path;

use quern_core::{App, AppError, CombineOutput, Combiner, MapContext, Record, ReduceContext, Values};

use quern_words::for_each_word;

/// Builds an inverted index of words to file names. (A file name containing
/// a comma would be split when name sets are merged.)
#[derive(Debug, Default, Clone, Copy)]
pub struct Indexer;

fn union(values: &mut Values<'_>) -> Vec<u8> {
    let mut names: BTreeSet<Vec<u8>> = BTreeSet::new();
    while let Some(v) = values.next() {
        for name in v.split(|&b| b == b',') {
            if !names.contains(name) {
                names.insert(name.to_vec());
            }
        }
    }
    let names: Vec<Vec<u8>> = names.into_iter().collect();
    names.join(&b","[..])
}

impl App for Indexer {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        let path = Path::new(record.source);
        let name = path.file_name().map_or_else(|| record.source.into(), |n| n.to_string_lossy());
        for_each_word(record.data, |w| ctx.emit(w.as_bytes(), name.as_bytes()));
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        ctx.emit(key, &union(values));
        Ok(())
    }

    fn combiner(&self) -> Option<&dyn Combiner> {
        Some(self)
    }
}

impl Combiner for Indexer {
    fn combine(
        &self,
        _: usize,
        _: &[u8],
        values: &mut Values<'_>,
        out: &mut CombineOutput<'_>,
    ) -> Result<(), AppError> {
        out.emit(&union(values));
        Ok(())
    }
}
