//! `sort`: every input line, sorted by bytes; the identity job, in total
//! order.

use std::sync::Arc;

use quern_core::{App, AppError, AppPartitioner, InputFormat, MapContext, Partitioner, Record, TextLines};

/// Emits each line as a key with an empty value; the default (identity)
/// reduce writes each occurrence back, so duplicates are kept, and
/// [`quern_core::TextOutput`] writes a key with an empty value as the key
/// alone: each output line is an input line, byte for byte (a `\r` before
/// the `\n` included).
///
/// It prefers total order ([`Partitioner::TotalOrder`]): `part-r-00000`,
/// `part-r-00001`, … concatenated in order are the input's lines sorted, as
/// `LC_ALL=C sort` sorts them. A job may still ask for hash partitioning.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sort;

impl App for Sort {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        ctx.emit(record.data, b"");
        Ok(())
    }

    fn partitioner(&self) -> AppPartitioner {
        AppPartitioner::Preferred(Partitioner::TotalOrder)
    }

    fn input_format(&self) -> Arc<dyn InputFormat> {
        Arc::new(TextLines::keeping_cr())
    }
}
