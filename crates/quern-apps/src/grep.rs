//! `grep`: a map-only job that keeps every line matching a regex.

use std::sync::Arc;

use quern_core::{App, AppError, InputFormat, MapContext, OutputDecl, Record, SpecError, TextLines};
use regex::bytes::Regex;

/// Emits `FILE:LINE` → line for each matching line. Map-only by default (so
/// output is in input order, in `part-m-NNNNN`); with reducers, the identity
/// reduce sorts it.
#[derive(Debug, Clone)]
pub struct Grep {
    pattern: Regex,
}

impl Grep {
    /// A grep for `pattern` (Rust `regex` syntax, matched against raw bytes).
    pub fn new(pattern: &str) -> Result<Grep, SpecError> {
        let pattern =
            Regex::new(pattern).map_err(|e| SpecError::BadParam { param: "pattern".into(), message: e.to_string() })?;
        Ok(Grep { pattern })
    }
}

impl App for Grep {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        if self.pattern.is_match(record.data) {
            let line = record.line.map_or_else(|| format!("@{}", record.offset), |l| l.to_string());
            ctx.emit(format!("{}:{line}", record.source).as_bytes(), record.data);
            ctx.count("matched_lines", 1);
        }
        Ok(())
    }

    fn outputs(&self) -> Vec<OutputDecl> {
        vec![OutputDecl::default_output().with_default_reducers(0)]
    }

    fn input_format(&self) -> Arc<dyn InputFormat> {
        Arc::new(TextLines::with_line_numbers())
    }
}
