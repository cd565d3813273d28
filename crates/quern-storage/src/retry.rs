//! Retries around object-store calls that `object_store`'s own
//! [`RetryConfig`](object_store::RetryConfig) does not cover.
//!
//! `object_store` retries each HTTP request (5xx, 429, connection errors,
//! dropped connections before an answer, streamed GET bodies resumed from
//! where they broke) with backoff and jitter, a bounded number of times
//! ([`crate::S3_RETRY`]). What it gives up on, or does not retry by design
//! (a conditional `PUT` whose connection broke after it was sent: the server
//! may or may not have applied it), comes back as an error; the commit
//! protocol's steps are idempotent or check what is there, so they can be
//! tried again here, a few times, with full jitter.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// More tries after the first, for a step of the commit protocol.
pub(crate) const TRIES: u32 = 3;
/// The first pause; doubled after each try, each pause drawn uniformly
/// below it (full jitter).
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// Whether another try of the same call might succeed: not for answers
/// that say what is (missing, exists, denied, unsupported, bad input).
pub(crate) fn transient(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::NotFound { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::NotImplemented { .. }
        | E::NotSupported { .. }
        | E::InvalidPath { .. }
        | E::UnknownConfigurationKey { .. } => false,
        e => !e.to_string().contains("<Code>NoSuchBucket</Code>"),
    }
}

/// A random duration in `0..=max` (full jitter); not for cryptography.
pub(crate) fn jitter(max: Duration) -> Duration {
    let random = RandomState::new().hash_one(std::time::Instant::now());
    let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
    max.mul_f64(fraction)
}

/// Runs `call` until it succeeds, fails for good, or [`TRIES`] more tries
/// failed transiently; pauses with jittered exponential backoff between.
pub(crate) async fn retrying<T, F, Fut>(what: &str, mut call: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let mut pause = FIRST_PAUSE;
    let mut tries = 0;
    loop {
        match call().await {
            Err(e) if tries < TRIES && transient(&e) => {
                tries += 1;
                tracing::debug!("{what}: {e}; trying again ({tries} of {TRIES})");
                tokio::time::sleep(jitter(pause)).await;
                pause *= 2;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn generic(message: &str) -> object_store::Error {
        object_store::Error::Generic { store: "test", source: message.to_owned().into() }
    }

    #[test]
    fn transient_errors_are_tried_again_a_bounded_number_of_times_and_answers_are_not() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let calls = AtomicU32::new(0);
        let flaky = rt.block_on(retrying("flaky", || async {
            if calls.fetch_add(1, Ordering::Relaxed) < 2 { Err(generic("503 SlowDown")) } else { Ok(7) }
        }));
        assert_eq!(flaky.expect("succeeds on the third try"), 7);

        calls.store(0, Ordering::Relaxed);
        let down = rt.block_on(retrying("down", || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(generic("connection reset"))
        }));
        assert!(down.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), TRIES + 1, "bounded");

        calls.store(0, Ordering::Relaxed);
        let missing = rt.block_on(retrying("missing", || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(object_store::Error::NotFound { path: "k".into(), source: "404".into() })
        }));
        assert!(matches!(missing, Err(object_store::Error::NotFound { .. })));
        assert_eq!(calls.load(Ordering::Relaxed), 1, "an answer is not a fault");
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(50)) <= Duration::from_millis(50));
        }
    }
}
