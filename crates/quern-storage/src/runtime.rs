//! The sync bridge: quern's engine is threads, `object_store` is async.
//!
//! One multi-thread tokio runtime (two worker threads, named
//! `quern-storage-io`) is built the first time an object store is used and
//! lives for the rest of the process; every S3 request runs on it, so
//! connection pools are shared by all the tasks of a process. A caller hands
//! a future to [`block_on`], which spawns it there and waits on a plain
//! channel. That never calls tokio's `block_on`, so it works from any thread,
//! including one of another runtime (it blocks that thread while it waits:
//! async callers should use `spawn_blocking`). It refuses to wait on one of
//! the bridge's own threads, which could deadlock.

use std::future::Future;
use std::io;
use std::sync::OnceLock;

const THREAD_NAME: &str = "quern-storage-io";

fn runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let built = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    built.as_ref().map_err(|e| io::Error::other(format!("starting the storage runtime: {e}")))
}

/// Runs `future` on the storage runtime and waits for its output.
pub(crate) fn block_on<F>(future: F) -> io::Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if std::thread::current().name() == Some(THREAD_NAME) {
        return Err(io::Error::other("a storage call waited on the storage runtime's own thread (a bug in quern)"));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        // The receiver only goes away if the caller's thread did.
        let _ = tx.send(future.await);
    });
    // A future that panics drops `tx` without sending.
    rx.recv().map_err(|_| io::Error::other("a storage request panicked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futures_run_from_plain_threads_and_from_inside_another_runtime() {
        assert_eq!(block_on(async { 40 + 2 }).expect("plain thread"), 42);
        let other = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let inside = other.block_on(async { block_on(async { "inside" }) });
        assert_eq!(inside.expect("inside another runtime"), "inside");
        let panicked = block_on(async { panic!("boom") });
        assert!(panicked.is_err());
        let nested = block_on(async { block_on(async { 1 }).map_err(|e| e.to_string()) }).expect("outer");
        assert!(nested.expect_err("nested").contains("own thread"));
    }
}
