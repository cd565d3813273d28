//! quern's web side: the REST API (the coordinator's application layer,
//! [`quern_coordinator::CoordinatorHandle`], as JSON over HTTP under
//! `/api/v1`, described by an OpenAPI 3 document served at
//! `/api/v1/openapi.json`), and the dashboard at `/` that uses it.
//!
//! # Overview
//! - [`router`]: the axum [`Router`] of every endpoint, over a
//!   [`CoordinatorHandle`] and the [`Access`] rules; `quern coordinator
//!   --http ADDR` serves it beside gRPC, and tests call it without a socket.
//! - [`dto`]: the API's own JSON types (never the coordinator's), each
//!   described for the OpenAPI document ([`openapi`]).
//! - [`FileArea`]: where uploads (`POST /api/v1/uploads`) and relatively
//!   named outputs go, in the coordinator's storage; a succeeded job's
//!   output files are listed and streamed from wherever they are.
//! - The dashboard: static files built into the binary (`assets/`), served
//!   with a strict Content-Security-Policy; live pages follow
//!   `GET /api/v1/events`.
//! - [`ApiError`]: every error is `{"error":{"code","message"}}` with a
//!   stable code; malformed JSON is 400, a value out of range or an unknown
//!   field 422 naming it, a refused job 409, never a 500 for the caller's
//!   mistake.
//!
//! # Invariants
//! - Handlers only convert and call the handle: every decision is the
//!   coordinator's, so gRPC and REST cannot disagree.
//! - Every endpoint but `GET /api/v1/health`, `POST /api/v1/auth/login`
//!   and the OpenAPI document needs `Authorization: Bearer <token>`: a
//!   user's signed token ([`Access`]; a user sees and kills only their own
//!   jobs, another's is 404) or the cluster token (an admin). Who may do
//!   what is `quern_coordinator::access`'s to say, for gRPC and REST alike.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use quern_coordinator::CoordinatorHandle;

mod auth;
mod dashboard;
pub mod dto;
mod error;
mod events;
mod files;
mod jobs;
mod login;
pub mod openapi;
mod system;
mod users;
mod workers;

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use files::FileArea;
pub use quern_coordinator::access::{Access, Caller};

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) handle: CoordinatorHandle,
    pub(crate) access: Arc<Access>,
    pub(crate) files: std::sync::Arc<FileArea>,
}

/// The caller of a request with a token the API accepts (others are
/// refused with 401), and when its token expires (none: the cluster token).
pub(crate) struct Authorized(pub(crate) Caller, pub(crate) Option<u64>);

impl axum::extract::FromRequestParts<ApiState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &ApiState,
    ) -> Result<Authorized, ApiError> {
        auth::caller(&state.access, &state.handle, &parts.headers)
            .await
            .map(|(caller, expires)| Authorized(caller, expires))
    }
}

/// Every endpoint of the API, over `handle`, for callers `access` lets in,
/// with uploads and relatively named outputs in `files`.
pub fn router(handle: CoordinatorHandle, access: Arc<Access>, files: FileArea) -> Router {
    let api = Router::new()
        .route("/health", get(system::health))
        .route("/auth/login", post(login::login))
        .route("/auth/validate", get(login::validate))
        .route("/version", get(system::version))
        .route("/openapi.json", get(openapi::document))
        .route("/apps", get(system::apps))
        .route("/jobs", get(jobs::list).post(jobs::submit))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/kill", post(jobs::kill))
        .route("/jobs/{id}/tasks", get(jobs::tasks))
        .route("/jobs/{id}/counters", get(jobs::counters))
        .route("/jobs/{id}/events", get(jobs::events))
        .route("/jobs/{id}/tasks/{task}/log", get(jobs::log))
        .route("/jobs/{id}/output", get(files::list_output))
        .route("/jobs/{id}/output/{*name}", get(files::download))
        // The upload handler counts bytes against its own limit (413).
        .route("/uploads", post(files::upload).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/code", post(files::put_code).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/workers", get(workers::list))
        .route("/workers/{id}/drain", post(workers::drain))
        .route("/workers/{id}/enable", post(workers::enable))
        .route("/workers/{id}/deregister", post(workers::deregister))
        .route("/users", get(users::list).post(users::add))
        .route("/users/{name}", axum::routing::delete(users::remove))
        .route("/users/{name}/password", post(users::password))
        .route("/events", get(events::stream))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(ApiState { handle, access, files: Arc::new(files) });
    Router::new().route("/", get(dashboard::index)).route("/assets/{*path}", get(dashboard::asset)).nest("/api/v1", api)
}

/// Serves `router` on `listener` until `shutdown` resolves (then finishes
/// the requests under way; event streams end).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Event streams and small JSON answers: without TCP_NODELAY a short
    // write can wait for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("setting TCP_NODELAY on a connection: {e}");
        }
    });
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
