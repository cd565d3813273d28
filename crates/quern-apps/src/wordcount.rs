//! `wordcount`: word → occurrences, with a summing combiner.

use quern_core::{App, AppError, CombineOutput, Combiner, MapContext, Record, ReduceContext, Values};

use crate::words::for_each_word;

/// Counts words. Values are decimal counts, so the output reads
/// `word<TAB>count`.
#[derive(Debug, Default, Clone, Copy)]
pub struct WordCount;

impl App for WordCount {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        for_each_word(record.data, |w| ctx.emit(w.as_bytes(), b"1"));
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        let total = values.sum_decimal()?;
        ctx.emit(key, itoa::Buffer::new().format(total).as_bytes());
        Ok(())
    }

    fn combiner(&self) -> Option<&dyn Combiner> {
        Some(self)
    }
}

impl Combiner for WordCount {
    fn combine(
        &self,
        _: usize,
        _: &[u8],
        values: &mut Values<'_>,
        out: &mut CombineOutput<'_>,
    ) -> Result<(), AppError> {
        out.emit(itoa::Buffer::new().format(values.sum_decimal()?).as_bytes());
        Ok(())
    }
}
