//! An example quern app, complete: JSON-lines access logs in, two reports
//! out, in one map pass.
//!
//! Each input line is an object like
//! `{"user": "ada", "country": "uk", "bytes": 512}`. The app writes
//! - `OUTPUT/bytes_by_user/`: user → total bytes (with a summing combiner);
//! - `OUTPUT/users_by_country/`: country → number of distinct users.
//!
//! It shows the three things an app may bring besides map and reduce: its own
//! input format ([`JsonLines`], which rejects a malformed line with the file
//! and line number), named outputs with their own reducers, and a combiner.
//! `src/main.rs` turns it into a binary with the whole quern CLI.

use std::sync::Arc;

use quern::{
    App, AppError, CombineOutput, Combiner, InputError, InputFormat, MapContext, OutputDecl, Record, RecordSink,
    ReduceContext, SplitInput, Values,
};
use serde::Deserialize;

/// Output 0: user → total bytes.
pub const BYTES_BY_USER: usize = 0;
/// Output 1: country → distinct users.
pub const USERS_BY_COUNTRY: usize = 1;

/// One log line.
#[derive(Debug, Deserialize)]
struct Access {
    user: String,
    country: String,
    bytes: u64,
}

/// JSON-lines input: one record per non-blank line, which must be a JSON
/// object; anything else fails the task with the file and line named.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl InputFormat for JsonLines {
    fn line_numbers(&self) -> bool {
        true
    }

    fn read(&self, input: &mut SplitInput<'_>, sink: &mut dyn RecordSink) -> Result<(), InputError> {
        let mut buf = Vec::new();
        while let Some((offset, line)) = input.next_line(&mut buf)? {
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Err(e) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&buf) {
                return Err(InputError::Malformed { line, offset, message: format!("not a JSON object: {e}") });
            }
            if sink.record(Record { source: input.path(), offset, line, data: &buf }).is_break() {
                break;
            }
        }
        Ok(())
    }
}

/// The app.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonlTotals;

impl App for JsonlTotals {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        let access: Access = serde_json::from_slice(record.data)
            .map_err(|e| AppError::permanent(format!("{}:{}: {e}", record.source, record.line.unwrap_or_default())))?;
        ctx.emit_to(BYTES_BY_USER, access.user.as_bytes(), access.bytes.to_string().as_bytes());
        ctx.emit_to(USERS_BY_COUNTRY, access.country.as_bytes(), access.user.as_bytes());
        ctx.count("accesses", 1);
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        match ctx.output() {
            BYTES_BY_USER => {
                let total = values.sum_decimal()?;
                ctx.emit(key, total.to_string().as_bytes());
            }
            _ => {
                let mut users = std::collections::BTreeSet::new();
                while let Some(u) = values.next() {
                    users.insert(u.to_vec());
                }
                ctx.emit(key, users.len().to_string().as_bytes());
            }
        }
        Ok(())
    }

    fn combiner(&self) -> Option<&dyn Combiner> {
        Some(self)
    }

    fn outputs(&self) -> Vec<OutputDecl> {
        vec![OutputDecl::named("bytes_by_user"), OutputDecl::named("users_by_country").with_default_reducers(1)]
    }

    fn input_format(&self) -> Arc<dyn InputFormat> {
        Arc::new(JsonLines)
    }
}

impl Combiner for JsonlTotals {
    fn combine(
        &self,
        output: usize,
        _: &[u8],
        values: &mut Values<'_>,
        out: &mut CombineOutput<'_>,
    ) -> Result<(), AppError> {
        if output == BYTES_BY_USER {
            out.emit(values.sum_decimal()?.to_string().as_bytes());
        } else {
            // Distinct users: duplicates can go early, the set stays exact.
            let mut users = std::collections::BTreeSet::new();
            while let Some(u) = values.next() {
                users.insert(u.to_vec());
            }
            for u in users {
                out.emit(&u);
            }
        }
        Ok(())
    }
}

/// The built-in apps plus this one, as the example's binary offers them.
pub fn registry() -> quern::AppRegistry {
    let mut apps = quern::builtin_registry();
    apps.register("jsonl-totals", "bytes per user and distinct users per country from JSON-lines logs", vec![], |_| {
        Ok(Arc::new(JsonlTotals))
    });
    apps
}
