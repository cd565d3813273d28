//! `sort`: every input line, sorted by bytes; the identity job.

use quern_core::{App, AppError, MapContext, Record};

/// Emits each line as a key with an empty value; the default (identity)
/// reduce writes each occurrence back, so duplicates are kept.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sort;

impl App for Sort {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        ctx.emit(record.data, b"");
        Ok(())
    }
}
