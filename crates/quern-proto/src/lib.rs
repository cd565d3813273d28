//! quern's gRPC protocol: the generated messages, clients and servers of
//! `proto/quern.proto`, and the cluster-token check both services use.
//!
//! # Invariants
//! - Prost types stay at the edges: the coordinator and worker convert to
//!   `quern-core` types right after receiving and right before sending.
//! - Every RPC carries `authorization: Bearer <token>`; [`TokenCheck`]
//!   refuses any other.

#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
mod generated {
    tonic::include_proto!("quern.v1");
}

pub use generated::*;

use tonic::{Request, Status, metadata::MetadataValue};

/// A server interceptor that refuses calls without the cluster token.
#[derive(Clone)]
pub struct TokenCheck {
    expected: String,
}

impl TokenCheck {
    /// Accepts calls that carry `token`.
    pub fn new(token: &str) -> Self {
        TokenCheck { expected: format!("Bearer {token}") }
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match request.metadata().get("authorization").map(|v| v.as_bytes()) {
            Some(v) if v == self.expected.as_bytes() => Ok(request),
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
    /// Attaches `token`; fails if it is not valid in an HTTP header.
    pub fn new(token: &str) -> Result<Self, Status> {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("the cluster token must be printable ASCII"))?;
        Ok(TokenAttach { value })
    }
}

impl tonic::service::Interceptor for TokenAttach {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.value.clone());
        Ok(request)
    }
}
