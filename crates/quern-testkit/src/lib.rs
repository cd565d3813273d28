//! Test support for quern.
//!
//! # Overview
//! - [`reference`]: a naive, obviously-correct in-memory MapReduce that the
//!   engine's output is checked against.
//! - [`Tokens`]: a small app with an optional combiner and an optional second
//!   output, to exercise the engine's data path from property tests.
//! - [`Flaky`], [`Poison`], [`Slow`]: apps that fail, panic or dawdle on
//!   purpose, for retry, skip and cancellation tests.
//! - [`registry`]: the built-in apps plus the test apps, as the
//!   `quern-testkit` binary offers them.

pub mod reference;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use quern::{
    App, AppError, AppRegistry, CombineOutput, Combiner, MapContext, OutputDecl, ParamSpec, Record, ReduceContext,
    SpecError, Values,
};

/// Splits lines on spaces. Output 0 counts tokens (summing combiner when
/// `combine`); output 1, when `two_outputs`, maps each token's length to the
/// sorted, comma-joined tokens of that length.
#[derive(Debug, Clone, Copy)]
pub struct Tokens {
    /// Whether the app has a combiner.
    pub combine: bool,
    /// Whether the app declares a second, named output.
    pub two_outputs: bool,
}

impl App for Tokens {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        for token in record.data.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            ctx.emit_to(0, token, b"1");
            if self.two_outputs {
                ctx.emit_to(1, token.len().to_string().as_bytes(), token);
            }
        }
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        if ctx.output() == 0 {
            let n = values.sum_decimal()?;
            ctx.emit(key, n.to_string().as_bytes());
        } else {
            let mut all = Vec::new();
            while let Some(v) = values.next() {
                all.push(v.to_vec());
            }
            all.sort();
            ctx.emit(key, &all.join(&b","[..]));
        }
        Ok(())
    }

    fn combiner(&self) -> Option<&dyn Combiner> {
        if self.combine { Some(self) } else { None }
    }

    fn outputs(&self) -> Vec<OutputDecl> {
        if self.two_outputs {
            vec![OutputDecl::named("counts"), OutputDecl::named("by_length")]
        } else {
            vec![OutputDecl::default_output()]
        }
    }
}

impl Combiner for Tokens {
    fn combine(
        &self,
        output: usize,
        _: &[u8],
        values: &mut Values<'_>,
        out: &mut CombineOutput<'_>,
    ) -> Result<(), AppError> {
        if output == 0 {
            out.emit(values.sum_decimal()?.to_string().as_bytes());
        } else {
            while let Some(v) = values.next() {
                out.emit(v);
            }
        }
        Ok(())
    }
}

/// Word count whose first `failures` map calls on a file's first record
/// panic: each panic fails one attempt, so a job succeeds only by retrying.
#[derive(Debug)]
pub struct Flaky {
    failures: u32,
    seen: AtomicU32,
}

impl App for Flaky {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        if record.offset == 0 && self.seen.fetch_add(1, Ordering::SeqCst) < self.failures {
            panic!("flaky failure on purpose");
        }
        quern::WordCount.map(record, ctx)
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        quern::WordCount.reduce(key, values, ctx)
    }
}

/// Word count that panics on any line containing `POISON`.
#[derive(Debug, Default)]
pub struct Poison;

impl App for Poison {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        // Emit first, then panic: a skipped record must leave nothing behind.
        quern::WordCount.map(record, ctx)?;
        if record.data.windows(6).any(|w| w == b"POISON") {
            panic!("poisoned record");
        }
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        quern::WordCount.reduce(key, values, ctx)
    }
}

/// Identity map that sleeps `ms` milliseconds per record.
#[derive(Debug)]
pub struct Slow {
    delay: Duration,
}

impl App for Slow {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        std::thread::sleep(self.delay);
        ctx.emit(record.data, b"");
        Ok(())
    }
}

fn number(params: &quern::Params, name: &str) -> Result<u64, SpecError> {
    params
        .require(name)?
        .parse()
        .map_err(|_| SpecError::BadParam { param: name.into(), message: "must be a whole number".into() })
}

/// The built-in apps plus the test apps.
pub fn registry() -> AppRegistry {
    let mut r = quern::builtin_registry();
    r.register("tokens", "test: token counts (space-separated)", vec![], |_| {
        Ok(Arc::new(Tokens { combine: true, two_outputs: false }))
    });
    r.register("tokens-two-outputs", "test: token counts to counts/, tokens by length to by_length/", vec![], |_| {
        Ok(Arc::new(Tokens { combine: true, two_outputs: true }))
    });
    r.register(
        "flaky",
        "test: wordcount whose first map calls panic",
        vec![ParamSpec::required("failures", "how many attempts fail")],
        |p| Ok(Arc::new(Flaky { failures: number(p, "failures")? as u32, seen: AtomicU32::new(0) })),
    );
    r.register("poison", "test: wordcount that panics on lines containing POISON", vec![], |_| Ok(Arc::new(Poison)));
    r.register(
        "slow",
        "test: identity that sleeps per record",
        vec![ParamSpec::required("ms", "milliseconds per record")],
        |p| Ok(Arc::new(Slow { delay: Duration::from_millis(number(p, "ms")?) })),
    );
    r
}
