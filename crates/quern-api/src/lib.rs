//! quern's REST API: the coordinator's application layer
//! ([`quern_coordinator::CoordinatorHandle`]) as JSON over HTTP under
//! `/api/v1`, described by an OpenAPI 3 document served at
//! `/api/v1/openapi.json`.
//!
//! # Overview
//! - [`router`]: the axum [`Router`] of every endpoint, over a
//!   [`CoordinatorHandle`] and an [`Access`] check; `quern coordinator
//!   --http ADDR` serves it beside gRPC, and tests call it without a socket.
//! - [`dto`]: the API's own JSON types (never the coordinator's), each
//!   described for the OpenAPI document ([`openapi`]).
//! - [`ApiError`]: every error is `{"error":{"code","message"}}` with a
//!   stable code; malformed JSON is 400, a value out of range or an unknown
//!   field 422 naming it, a refused job 409, never a 500 for the caller's
//!   mistake.
//!
//! # Invariants
//! - Handlers only convert and call the handle: every decision is the
//!   coordinator's, so gRPC and REST cannot disagree.
//! - Every endpoint but `GET /api/v1/health` (and the OpenAPI document)
//!   needs `Authorization: Bearer <token>`.

use axum::Router;
use axum::routing::{get, post};
use quern_coordinator::CoordinatorHandle;

pub mod dto;
mod error;
mod events;
mod jobs;
pub mod openapi;
mod system;
mod workers;

pub use error::{ApiError, ErrorBody, ErrorDetail};

/// Who may call the API: for now, whoever presents the cluster token (an
/// admin). Users with roles and signed tokens replace it.
#[derive(Clone, Debug)]
pub struct Access {
    token: quern_proto::TokenCheck,
}

impl Access {
    /// Callers that present `token` as `Authorization: Bearer <token>`.
    pub fn cluster_token(token: &str) -> Result<Access, quern_proto::TokenError> {
        Ok(Access { token: quern_proto::TokenCheck::new(token)? })
    }

    fn check(&self, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
        match headers.get(axum::http::header::AUTHORIZATION) {
            Some(v) if self.token.accepts(v.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::unauthorized("wrong token")),
            None => Err(ApiError::unauthorized("missing token: send Authorization: Bearer <token>")),
        }
    }
}

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) handle: CoordinatorHandle,
    pub(crate) access: Access,
}

/// Refuses a request without a token the API accepts.
pub(crate) struct Authorized;

impl axum::extract::FromRequestParts<ApiState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &ApiState,
    ) -> Result<Authorized, ApiError> {
        state.access.check(&parts.headers).map(|()| Authorized)
    }
}

/// Every endpoint of the API, over `handle`, for callers `access` lets in.
pub fn router(handle: CoordinatorHandle, access: Access) -> Router {
    let api = Router::new()
        .route("/health", get(system::health))
        .route("/version", get(system::version))
        .route("/openapi.json", get(openapi::document))
        .route("/apps", get(system::apps))
        .route("/jobs", get(jobs::list).post(jobs::submit))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/kill", post(jobs::kill))
        .route("/jobs/{id}/tasks", get(jobs::tasks))
        .route("/jobs/{id}/counters", get(jobs::counters))
        .route("/jobs/{id}/tasks/{task}/log", get(jobs::log))
        .route("/workers", get(workers::list))
        .route("/events", get(events::stream))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(ApiState { handle, access });
    Router::new().nest("/api/v1", api)
}

/// Serves `router` on `listener` until `shutdown` resolves (then finishes
/// the requests under way; event streams end).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
