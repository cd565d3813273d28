//! quern's gRPC protocol: the generated messages, clients and servers of
//! `proto/quern.proto`, and the cluster-token check both services use.
//!
//! # Invariants
//! - Prost types stay at the edges: the coordinator and worker convert to
//!   `quern-core` types right after receiving and right before sending.
//! - Every RPC carries `authorization: Bearer <token>`; [`TokenCheck`]
//!   refuses any other, comparing in constant time.
//! - The token is never empty: neither side can be built with one, so an
//!   empty token can never let a caller in.

#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
mod generated {
    tonic::include_proto!("quern.v1");
}

pub use generated::*;

mod convert;

pub use convert::{DecodeError, attempt_from_wire, task_kind_from_wire};

/// The largest message either side sends or accepts: 256 MiB. A plan of
/// 100,000 splits (the bound on a job's tasks) is tens of megabytes of
/// JSON, past tonic's default of 4 MiB for what a side accepts; every
/// server and client of the `Coordinator` service is built with this.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

use subtle::ConstantTimeEq;
use tonic::{Request, Status, metadata::MetadataValue};

/// Why a cluster token cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is empty (or only white space): it would protect nothing.
    #[error("the cluster token must not be empty (set --token or QUERN_TOKEN to a shared secret)")]
    Empty,
    /// The token cannot travel in an HTTP header.
    #[error("the cluster token must be printable ASCII")]
    NotPrintable,
}

/// Refuses a token that is empty or only white space, or has a byte that
/// is not printable ASCII (an HTTP header would take some of those, but both
/// sides must agree on the same bytes, and a stray newline or accent in a
/// secret is a mistake worth naming).
fn usable(token: &str) -> Result<&str, TokenError> {
    if token.trim().is_empty() {
        return Err(TokenError::Empty);
    }
    if !token.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(TokenError::NotPrintable);
    }
    Ok(token)
}

/// A server interceptor that refuses calls without the cluster token.
#[derive(Clone)]
pub struct TokenCheck {
    expected: Vec<u8>,
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck { .. }")
    }
}

impl TokenCheck {
    /// Accepts calls that carry `token`; refuses to be built with an empty
    /// one, or one with a byte that is not printable ASCII.
    pub fn new(token: &str) -> Result<Self, TokenError> {
        Ok(TokenCheck { expected: format!("Bearer {}", usable(token)?).into_bytes() })
    }

    /// Whether an `authorization` header's value is `Bearer <the token>`,
    /// compared in constant time (for another front end, like the REST API).
    pub fn accepts(&self, authorization: &[u8]) -> bool {
        bool::from(authorization.ct_eq(&self.expected))
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match request.metadata().get("authorization").map(|v| v.as_bytes()) {
            // Constant time in the token's bytes: how long a wrong guess takes
            // says nothing about how much of it was right.
            Some(v) if self.accepts(v) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong cluster token")),
            None => Err(Status::unauthenticated("missing cluster token (set --token or QUERN_TOKEN)")),
        }
    }
}

/// A client interceptor that adds the cluster token to every call.
#[derive(Clone)]
pub struct TokenAttach {
    value: MetadataValue<tonic::metadata::Ascii>,
}

impl TokenAttach {
    /// Attaches `token`; fails if it is empty or not valid in an HTTP header
    /// (the status's message is a [`TokenError`]'s).
    pub fn new(token: &str) -> Result<Self, Status> {
        let token = usable(token).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument(TokenError::NotPrintable.to_string()))?;
        Ok(TokenAttach { value })
    }
}

impl tonic::service::Interceptor for TokenAttach {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.value.clone());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn call(check: &mut TokenCheck, header: Option<&str>) -> Result<(), tonic::Code> {
        let mut request = Request::new(());
        if let Some(h) = header {
            request.metadata_mut().insert("authorization", h.parse().expect("header"));
        }
        check.call(request).map(|_| ()).map_err(|s| s.code())
    }

    #[test]
    fn a_token_that_is_not_printable_ascii_is_refused_on_both_sides() {
        for token in ["caf\u{e9}", "line\nbreak", "tab\there"] {
            assert_eq!(TokenCheck::new(token).err(), Some(TokenError::NotPrintable), "{token:?}");
            let status = TokenAttach::new(token).err().expect("refused");
            assert!(status.message().contains("printable ASCII"), "{}", status.message());
        }
        assert!(TokenCheck::new("change me-1.2_x~").is_ok());
    }

    #[test]
    fn an_empty_token_is_refused_on_both_sides() {
        for token in ["", " ", "\t"] {
            assert_eq!(TokenCheck::new(token).err(), Some(TokenError::Empty), "{token:?}");
            let status = TokenAttach::new(token).err().expect("refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().contains("must not be empty"), "{}", status.message());
        }
        assert!(TokenAttach::new("a\nb").is_err(), "not valid in a header");
    }

    #[test]
    fn only_the_exact_token_is_let_in() {
        let mut check = TokenCheck::new("s3cret").expect("token");
        assert_eq!(call(&mut check, Some("Bearer s3cret")), Ok(()));
        for wrong in ["Bearer ", "Bearer", "Bearer s3cre", "Bearer s3cret ", "Bearer s3creT", "bearer s3cret", ""] {
            assert_eq!(call(&mut check, Some(wrong)), Err(tonic::Code::Unauthenticated), "{wrong:?}");
        }
        assert_eq!(call(&mut check, None), Err(tonic::Code::Unauthenticated));
    }
}
