//! Test support for quern.
//!
//! # Overview
//! - [`reference`](mod@reference): a naive, obviously-correct in-memory MapReduce that the
//!   engine's output is checked against.
//! - [`Tokens`]: a small app with an optional combiner and an optional second
//!   output, to exercise the engine's data path from property tests.
//! - [`Flaky`], [`Poison`], [`Slow`], [`Chaos`], [`Straggler`]: apps that
//!   fail, panic, dawdle, crash, hang or straggle on purpose, for retry, skip, cancellation and
//!   cluster fault tests.
//! - [`registry`]: the built-in apps plus the test apps, as the
//!   `quern-testkit` binary offers them.
//! - [`postgres::TestPostgres`]: a throwaway PostgreSQL server on 127.0.0.1
//!   for the tests of the PostgreSQL state store.
//! - [`s3_server`]: a real S3 server (SeaweedFS) for tests, with a fresh
//!   bucket per test and the environment that points quern at it.
//! - [`fault_proxy`]: an HTTP proxy in front of it that answers 503 and
//!   500, loses answers and cuts bodies for a seeded share of requests.
//! - [`fake_kube`]: a fake Kubernetes API server and a kubelet that runs
//!   its pods as local processes, for the coordinator's pod launcher.

pub mod fake_kube;
pub mod fault_proxy;
pub mod postgres;
pub mod reference;
pub mod s3_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use quern::{
    Aggregation, App, AppError, AppRegistry, CombineOutput, Combiner, MapContext, OutputDecl, ParamSpec, Record,
    ReduceContext, SpecError, Values,
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
    /// Whether the combiner declares its sum (output 0) a native
    /// aggregation.
    pub aggregate: bool,
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

    fn aggregation(&self, output: usize) -> Option<Aggregation> {
        (self.aggregate && output == 0).then_some(Aggregation::SumDecimal)
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

/// Identity map that sleeps `ms` milliseconds per record, and a reduce
/// that sleeps as long per key, so tasks overlap in time.
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

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        std::thread::sleep(self.delay);
        while let Some(v) = values.next() {
            ctx.emit(key, v);
        }
        Ok(())
    }
}

/// Word count whose attempt processes crash (exit) or hang at random: at
/// its first map or reduce call, a process exits with probability `crash`
/// and sleeps forever with probability `hang`. For cluster tests only (in
/// one process it would take the whole job down).
#[derive(Debug)]
pub struct Chaos {
    crash: f64,
    hang: f64,
}

static FATE_DECIDED: std::sync::Once = std::sync::Once::new();

impl Chaos {
    fn maybe_misbehave(&self) {
        FATE_DECIDED.call_once(|| {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let seed = u64::from(nanos) ^ (u64::from(std::process::id()) << 32);
            // One round of splitmix64: enough to spread pid and time.
            let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let roll = (z ^ (z >> 31)) as f64 / u64::MAX as f64;
            if roll < self.crash {
                eprintln!("chaos: crashing this attempt");
                std::process::exit(3);
            }
            if roll < self.crash + self.hang {
                eprintln!("chaos: hanging this attempt");
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
        });
    }
}

impl App for Chaos {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        self.maybe_misbehave();
        quern::WordCount.map(record, ctx)
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        self.maybe_misbehave();
        quern::WordCount.reduce(key, values, ctx)
    }
}

/// Word count whose first attempt process (the one that creates the marker
/// file) stalls for `ms` milliseconds on its first record: a straggler for
/// backup-attempt tests.
#[derive(Debug)]
pub struct Straggler {
    marker: std::path::PathBuf,
    delay: Duration,
}

impl App for Straggler {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        static CHECKED: std::sync::Once = std::sync::Once::new();
        CHECKED.call_once(|| {
            if std::fs::OpenOptions::new().write(true).create_new(true).open(&self.marker).is_ok() {
                eprintln!("straggler: stalling");
                std::thread::sleep(self.delay);
            }
        });
        quern::WordCount.map(record, ctx)
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        quern::WordCount.reduce(key, values, ctx)
    }
}

fn fraction(params: &quern::Params, name: &str) -> Result<f64, SpecError> {
    params
        .require(name)?
        .parse::<f64>()
        .ok()
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| SpecError::BadParam { param: name.into(), message: "must be a number from 0 to 1".into() })
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
        Ok(Arc::new(Tokens { combine: true, two_outputs: false, aggregate: true }))
    });
    r.register("tokens-two-outputs", "test: token counts to counts/, tokens by length to by_length/", vec![], |_| {
        Ok(Arc::new(Tokens { combine: true, two_outputs: true, aggregate: true }))
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
    r.register(
        "chaos",
        "test: wordcount whose attempt processes crash or hang at random (cluster only)",
        vec![
            ParamSpec::required("crash", "probability that an attempt exits"),
            ParamSpec::required("hang", "probability that an attempt hangs"),
        ],
        |p| Ok(Arc::new(Chaos { crash: fraction(p, "crash")?, hang: fraction(p, "hang")? })),
    );
    r.register(
        "straggler",
        "test: wordcount whose first attempt process stalls (cluster only)",
        vec![
            ParamSpec::required("marker", "a file the stalling attempt creates"),
            ParamSpec::required("ms", "how long it stalls"),
        ],
        |p| {
            Ok(Arc::new(Straggler {
                marker: p.require("marker")?.into(),
                delay: Duration::from_millis(number(p, "ms")?),
            }))
        },
    );
    r
}
