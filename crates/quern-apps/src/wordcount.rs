//! `wordcount`: word → occurrences, with a summing combiner.

use quern_core::{Aggregation, App, AppError, CombineOutput, Combiner, MapContext, Record, ReduceContext, Values};

use quern_words::for_each_word;

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

    fn aggregation(&self, _: usize) -> Option<Aggregation> {
        Some(Aggregation::SumDecimal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quern_core::SliceValues;

    proptest::proptest! {
        /// The engine runs the declared aggregation instead of `combine`:
        /// the two give the same value, and fail on the same values.
        #[test]
        fn the_native_aggregation_is_the_combiner(values in proptest::collection::vec("[0-9]{1,20}|x", 1..20)) {
            let bytes: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
            let mut combined = Vec::new();
            let by_combiner = WordCount
                .combine(0, b"k", &mut Values::new(&mut SliceValues::new(&bytes)), &mut CombineOutput::new(&mut |v| combined = v.to_vec()))
                .map(|()| combined);
            let aggregation = WordCount.aggregation(0).expect("wordcount declares one");
            let natively = aggregation.combine(&mut Values::new(&mut SliceValues::new(&bytes)));
            proptest::prop_assert_eq!(by_combiner.ok(), natively.ok());
        }
    }
}
