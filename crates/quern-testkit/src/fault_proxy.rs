//! An HTTP proxy that makes an S3 endpoint flaky, for tests: it stands in
//! front of a real server (an [`S3Server`](crate::s3_server::S3Server)) on
//! 127.0.0.1 and, for a share of the requests, answers `503 SlowDown` or
//! `500 InternalError` itself (the server never sees them), forwards the
//! request and then drops the connection without answering (the server
//! *did* act: a lost answer), or forwards it and cuts the answer's body in
//! the middle.
//!
//! Which request gets which fault is decided by a seeded hash of the
//! request's number (the 1st, 2nd, … request the proxy accepted), so a
//! seed gives the same sequence of faults; which request of a job comes
//! n-th depends on its threads' timing. The listener is bound on port 0 and
//! its address read from it. Every request is forwarded unchanged (the
//! `Host` header too, so SigV4 signatures still verify), over a fresh
//! connection to the server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

// A concrete error type: a boxed `dyn Error` trips a higher-ranked lifetime
// check in a spawned hyper connection.
type Error = std::io::Error;
type Body = BoxBody<Bytes, Error>;

/// Shares of requests that get each fault (each in `0.0..=1.0`; together
/// at most 1), and answers to lose on purpose.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Answered `503 SlowDown` without forwarding (throttling).
    pub slow_down: f64,
    /// Answered `500 InternalError` without forwarding.
    pub internal_error: f64,
    /// Forwarded, then the connection is closed without an answer.
    pub lost_answer: f64,
    /// Forwarded, then the answer's headers and half its body are sent and
    /// the connection is closed (an answer without a body: as a lost one).
    pub cut_body: f64,
    /// The seed of the choice.
    pub seed: u64,
    /// Requests whose answer is lost whatever the draw.
    pub lose: LoseAnswers,
}

/// Requests whose answers are lost (forwarded, then the connection closed),
/// by their number among the requests of their kind (0: the first).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoseAnswers {
    /// Conditional `PUT`s (with `If-None-Match`).
    pub conditional_puts: &'static [u64],
    /// Multipart upload completions (`POST …?uploadId=…`).
    pub completions: &'static [u64],
}

/// How many requests the proxy saw and faulted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests accepted.
    pub requests: u64,
    /// Answered 503.
    pub slow_down: u64,
    /// Answered 500.
    pub internal_error: u64,
    /// Forwarded, answer dropped.
    pub lost_answer: u64,
    /// Forwarded, answer's body cut.
    pub cut_body: u64,
}

impl FaultCounts {
    /// Every fault injected.
    pub fn faults(&self) -> u64 {
        self.slow_down + self.internal_error + self.lost_answer + self.cut_body
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    conditional_puts: AtomicU64,
    completions: AtomicU64,
    slow_down: AtomicU64,
    internal_error: AtomicU64,
    lost_answer: AtomicU64,
    cut_body: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Forward,
    SlowDown,
    InternalError,
    LostAnswer,
    CutBody,
}

impl Faults {
    /// The fate of request number `n` (splitmix64 of the seed and `n`).
    fn fate(&self, n: u64) -> Fate {
        let mut z = self.seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let r = (z >> 11) as f64 / (1u64 << 53) as f64;
        let mut edge = self.slow_down;
        if r < edge {
            return Fate::SlowDown;
        }
        edge += self.internal_error;
        if r < edge {
            return Fate::InternalError;
        }
        edge += self.lost_answer;
        if r < edge {
            return Fate::LostAnswer;
        }
        edge += self.cut_body;
        if r < edge {
            return Fate::CutBody;
        }
        Fate::Forward
    }
}

/// A running proxy; stopped when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`host:port`, or an
    /// `http://host:port` endpoint) with `faults`. Panics (failing the test)
    /// if it cannot listen.
    pub fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream}: {e}"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fault proxy");
        let addr = listener.local_addr().expect("the fault proxy's address");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shared = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("the fault proxy's runtime");
                runtime.block_on(serve(listener, upstream, faults, shared, stopped));
            })
            .expect("starting the fault proxy");
        FaultProxy { addr, counters, stop: Some(stop), thread: Some(thread) }
    }

    /// The proxy's endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it did so far.
    pub fn counts(&self) -> FaultCounts {
        let c = &self.counters;
        FaultCounts {
            requests: c.requests.load(Ordering::Relaxed),
            slow_down: c.slow_down.load(Ordering::Relaxed),
            internal_error: c.internal_error.load(Ordering::Relaxed),
            lost_answer: c.lost_answer.load(Ordering::Relaxed),
            cut_body: c.cut_body.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    faults: Faults,
    counters: Arc<Counters>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => panic!("the fault proxy's listener: {e}"),
    };
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let counters = Arc::clone(&counters);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let counters = Arc::clone(&counters);
                async move {
                    let n = counters.requests.fetch_add(1, Ordering::Relaxed);
                    let mut fate = faults.fate(n);
                    let method = request.method().clone();
                    if method == hyper::Method::PUT && request.headers().contains_key("if-none-match") {
                        let k = counters.conditional_puts.fetch_add(1, Ordering::Relaxed);
                        if faults.lose.conditional_puts.contains(&k) {
                            fate = Fate::LostAnswer;
                        }
                    }
                    if method == hyper::Method::POST && request.uri().query().is_some_and(|q| q.contains("uploadId=")) {
                        let k = counters.completions.fetch_add(1, Ordering::Relaxed);
                        if faults.lose.completions.contains(&k) {
                            fate = Fate::LostAnswer;
                        }
                    }
                    handle(request, upstream, fate, counters).await
                }
            });
            // A connection ends with an error when a fault closed it.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn s3_error(status: StatusCode, code: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message><RequestId>fault</RequestId></Error>"
    );
    let mut response = Response::new(Full::new(Bytes::from(xml)).map_err(|never: Infallible| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/xml"));
    response
}

async fn handle(
    request: Request<Incoming>,
    upstream: SocketAddr,
    fate: Fate,
    counters: Arc<Counters>,
) -> Result<Response<Body>, Error> {
    match fate {
        Fate::SlowDown | Fate::InternalError => {
            // Read the request as a server would before answering.
            let _ = request.into_body().collect().await;
            return Ok(if fate == Fate::SlowDown {
                counters.slow_down.fetch_add(1, Ordering::Relaxed);
                s3_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown")
            } else {
                counters.internal_error.fetch_add(1, Ordering::Relaxed);
                s3_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            });
        }
        Fate::Forward | Fate::LostAnswer | Fate::CutBody => {}
    }
    let connection = tokio::net::TcpStream::connect(upstream).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(connection)).await.map_err(Error::other)?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(Error::other)?;
    match fate {
        Fate::LostAnswer => {
            // The server acted; its answer never arrives.
            let _ = response.into_body().collect().await;
            counters.lost_answer.fetch_add(1, Ordering::Relaxed);
            Err(Error::other("answer dropped by the test proxy"))
        }
        Fate::CutBody => {
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(Error::other)?.to_bytes();
            if body.is_empty() {
                counters.lost_answer.fetch_add(1, Ordering::Relaxed);
                return Err(Error::other("answer dropped by the test proxy"));
            }
            counters.cut_body.fetch_add(1, Ordering::Relaxed);
            let half = body.slice(..body.len() / 2);
            let frames: Vec<Result<Frame<Bytes>, Error>> =
                vec![Ok(Frame::data(half)), Err(Error::other("body cut by the test proxy"))];
            let stream = futures_util::stream::iter(frames);
            Ok(Response::from_parts(parts, BodyExt::boxed(StreamBody::new(stream))))
        }
        _ => Ok(response.map(|body| body.map_err(Error::other).boxed())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults_in_about_the_shares_asked_for() {
        let faults = Faults {
            slow_down: 0.1,
            internal_error: 0.05,
            lost_answer: 0.05,
            cut_body: 0.05,
            seed: 7,
            ..Faults::default()
        };
        let fates: Vec<Fate> = (0..10_000).map(|n| faults.fate(n)).collect();
        assert_eq!(fates, (0..10_000).map(|n| faults.fate(n)).collect::<Vec<_>>());
        let share = |fate| fates.iter().filter(|f| **f == fate).count() as f64 / 10_000.0;
        assert!((share(Fate::SlowDown) - 0.1).abs() < 0.02);
        assert!((share(Fate::CutBody) - 0.05).abs() < 0.015);
        assert!((share(Fate::Forward) - 0.75).abs() < 0.03);
        let other = Faults { seed: 8, ..faults };
        assert_ne!(fates, (0..10_000).map(|n| other.fate(n)).collect::<Vec<_>>());
    }
}
