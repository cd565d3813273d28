//! S3 through the `object_store` crate: configuration, a client per bucket,
//! listing, and reading an object as a [`Read`] in bounded ranged GETs.
//!
//! Requests are retried with exponential backoff for transient faults
//! (connection errors, timeouts, 5xx) a bounded number of times
//! ([`RETRY`]); what is left is reported: missing objects as missing,
//! refused credentials as a configuration error, the rest as the store
//! being unavailable.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::error::StorageError;
use crate::retry::retrying;
use crate::runtime::block_on;

/// How S3 is reached: credentials, region and endpoint.
///
/// The CLI fills it from the standard AWS environment variables
/// ([`S3Options::from_env_vars`]); `Debug` does not show the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
    /// `AWS_REGION` (else `AWS_DEFAULT_REGION`); `us-east-1` when unset.
    pub region: Option<String>,
    /// `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`): an S3-compatible
    /// server such as SeaweedFS or MinIO. Plain `http://` is allowed;
    /// buckets are then addressed path-style (`ENDPOINT/bucket/key`).
    pub endpoint: Option<String>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "<hidden>");
        f.debug_struct("S3Options")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// The region used when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The retries of every S3 request: up to 5 more tries, 100 ms doubling to
/// at most 5 s between them, none started after 60 s.
pub const RETRY: RetryConfig = RetryConfig {
    backoff: BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5), base: 2.0 },
    max_retries: 5,
    retry_timeout: Duration::from_secs(60),
};

/// Bytes fetched per ranged GET: at most 8 MiB while inside a split, 64 KiB
/// past its end (finishing its last line, which is usually short).
pub(crate) const CHUNKS: Chunks = Chunks { inside: 8 << 20, tail: 64 << 10 };

/// The sizes of an [`ObjectReader`]'s ranged GETs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunks {
    /// Before the split's end.
    pub inside: u64,
    /// After it.
    pub tail: u64,
}

impl S3Options {
    /// The environment variables [`S3Options::from_env_vars`] reads.
    pub const ENV_VARS: [&'static str; 7] = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL",
    ];

    /// Options from the standard AWS variables, looked up with `var` (the
    /// caller reads the environment; an empty value counts as unset).
    pub fn from_env_vars(var: impl Fn(&str) -> Option<String>) -> S3Options {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        S3Options {
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
        }
    }

    fn build(&self, bucket: &str, url: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
        let config = |message: String| StorageError::S3Config { url: url.to_owned(), message };
        let (key, secret) = match (&self.access_key_id, &self.secret_access_key) {
            (Some(k), Some(s)) => (k, s),
            (None, None) => {
                return Err(config("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()));
            }
            (None, Some(_)) => return Err(config("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into())),
            (Some(_), None) => return Err(config("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into())),
        };
        let mut client =
            ClientOptions::new().with_connect_timeout(Duration::from_secs(5)).with_timeout(Duration::from_secs(60));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_access_key_id(key)
            .with_secret_access_key(secret)
            .with_region(self.region.as_deref().unwrap_or(DEFAULT_REGION))
            .with_retry(RETRY);
        if let Some(token) = &self.session_token {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = &self.endpoint {
            let scheme = endpoint.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            match scheme.as_deref() {
                Some("http") => client = client.with_allow_http(true),
                Some("https") => {}
                _ => return Err(config(format!("S3 endpoint {endpoint}: not an http:// or https:// URL"))),
            }
            builder = builder.with_endpoint(endpoint.trim_end_matches('/')).with_virtual_hosted_style_request(false);
        }
        let store = builder.with_client_options(client).build().map_err(|e| config(format!("S3 client: {e}")))?;
        Ok(Arc::new(store))
    }
}

/// S3 clients, one per bucket, built when first needed and shared.
#[derive(Debug, Default)]
pub(crate) struct S3Stores {
    options: S3Options,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

/// An object found by listing or `HEAD`.
pub(crate) struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

impl S3Stores {
    pub fn new(options: S3Options) -> S3Stores {
        S3Stores { options, stores: Mutex::default() }
    }

    pub fn options(&self) -> &S3Options {
        &self.options
    }

    /// The client of `bucket`; `url` is named by errors.
    pub fn store(&self, bucket: &str, url: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = stores.get(bucket) {
            return Ok(Arc::clone(store));
        }
        let store = self.options.build(bucket, url)?;
        stores.insert(bucket.to_owned(), Arc::clone(&store));
        Ok(store)
    }

    /// Uses `store` for `bucket` (tests: an in-memory store behind the
    /// same code).
    #[cfg(test)]
    pub fn insert(&self, bucket: &str, store: Arc<dyn ObjectStore>) {
        self.stores.lock().unwrap_or_else(|p| p.into_inner()).insert(bucket.to_owned(), store);
    }

    /// The object `key`, or `None` when there is none.
    pub fn head(&self, bucket: &str, key: &str, url: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let store = self.store(bucket, url)?;
        let path = object_path(key, url)?;
        let headed = block_on(async move { retrying("looking up an object", || store.head(&path)).await });
        match headed.map_err(|e| unavailable(url, e))? {
            Ok(meta) => Ok(Some(ObjectInfo { key: key.to_owned(), size: meta.size })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(url, e)),
        }
    }

    /// Every object under `prefix` (all of them for an empty prefix), in any
    /// order.
    pub fn list(&self, bucket: &str, prefix: &str, url: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        use futures_util::TryStreamExt;
        let store = self.store(bucket, url)?;
        let prefix = (!prefix.is_empty()).then(|| object_path(prefix, url)).transpose()?;
        // A listing's answer is read after object_store's retries: one cut
        // off in the middle is listed again.
        let listed = block_on(async move {
            retrying("listing", || async { store.list(prefix.as_ref()).try_collect::<Vec<_>>().await }).await
        })
        .map_err(|e| unavailable(url, e))?
        .map_err(|e| store_error(url, e))?;
        Ok(listed.into_iter().map(|m| ObjectInfo { key: m.location.to_string(), size: m.size }).collect())
    }
}

pub(crate) fn object_path(key: &str, url: &str) -> Result<ObjectPath, StorageError> {
    ObjectPath::parse(key)
        .map_err(|e| StorageError::BadLocation { location: url.to_owned(), message: format!("not a usable key: {e}") })
}

fn unavailable(url: &str, e: io::Error) -> StorageError {
    StorageError::Unavailable { url: url.to_owned(), message: e.to_string() }
}

/// An `object_store` error while planning, as a storage error naming `url`.
fn store_error(url: &str, e: object_store::Error) -> StorageError {
    let url = url.to_owned();
    match e {
        object_store::Error::NotFound { .. } => StorageError::Input { path: url, message: "no such object".into() },
        object_store::Error::PermissionDenied { source, .. } | object_store::Error::Unauthenticated { source, .. } => {
            StorageError::S3Config {
                url,
                message: format!(
                    "access denied: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the endpoint ({source})"
                ),
            }
        }
        // object_store has no variant for it; S3 names it in the answer.
        e if e.to_string().contains("<Code>NoSuchBucket</Code>") => {
            StorageError::Input { path: url, message: "no such bucket".into() }
        }
        e => StorageError::Unavailable { url, message: e.to_string() },
    }
}

/// An `object_store` error while reading, as an I/O error of the right kind
/// (so that [`quern_core::InputError`] can tell a retry from a lost cause).
fn read_error(e: object_store::Error) -> io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            io::ErrorKind::PermissionDenied
        }
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

/// The bytes of one object from an offset to its end, fetched in ranged
/// GETs of at most [`CHUNKS`] bytes: up to `soft_end` (a split's end) in
/// chunks that stop there, then in small ones, since past a split's end only
/// its last line is read. Never holds more than one chunk.
pub(crate) struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    pos: u64,
    len: u64,
    soft_end: u64,
    sizes: Chunks,
    chunk: Vec<u8>,
    used: usize,
}

impl ObjectReader {
    /// Reads `key` (of `len` bytes) from `start`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        key: &str,
        len: u64,
        start: u64,
        soft_end: Option<u64>,
        sizes: Chunks,
    ) -> io::Result<ObjectReader> {
        let path = ObjectPath::parse(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let soft_end = soft_end.unwrap_or(len);
        Ok(ObjectReader { store, path, pos: start, len, soft_end, sizes, chunk: Vec::new(), used: 0 })
    }

    fn fetch(&mut self) -> io::Result<()> {
        let size =
            if self.pos < self.soft_end { self.sizes.inside.min(self.soft_end - self.pos) } else { self.sizes.tail };
        let range = self.pos..self.len.min(self.pos + size);
        let (store, path) = (Arc::clone(&self.store), self.path.clone());
        let expected = range.end - range.start;
        // object_store retries each request; a GET it gave up on is tried
        // again a few times (a range read is idempotent).
        let bytes =
            block_on(async move { retrying("reading a range", || store.get_range(&path, range.clone())).await })?
                .map_err(read_error)?;
        if bytes.len() as u64 != expected {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the object changed while the job ran: got {} bytes at {}, expected {expected}",
                    bytes.len(),
                    self.pos
                ),
            ));
        }
        self.chunk = bytes.into();
        self.used = 0;
        Ok(())
    }
}

impl ObjectReader {
    /// Fetches the first chunk now (if there is anything to read), so that a
    /// missing object is found when the reader is made, not at its first
    /// read.
    pub fn start(&mut self) -> io::Result<()> {
        if self.used == self.chunk.len() && self.pos < self.len { self.fetch() } else { Ok(()) }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.used == self.chunk.len() {
            if self.pos >= self.len || buf.is_empty() {
                return Ok(0);
            }
            self.fetch()?;
        }
        let n = buf.len().min(self.chunk.len() - self.used);
        buf[..n].copy_from_slice(&self.chunk[self.used..self.used + n]);
        self.used += n;
        self.pos += n as u64;
        Ok(n)
    }
}
