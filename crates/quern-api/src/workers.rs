//! The cluster's workers, and what an admin decides about them.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};

use crate::dto::Worker;
use crate::{ApiError, ApiState, Authorized};

/// Every worker ever registered, alive or lost.
#[utoipa::path(get, path = "/api/v1/workers", tag = "workers", security(("bearer" = [])),
    responses((status = 200, body = [Worker]), (status = 401, body = crate::ErrorBody)))]
pub(crate) async fn list(_: Authorized, State(s): State<ApiState>) -> Result<Json<Vec<Worker>>, ApiError> {
    Ok(Json(s.handle.workers().await?.into_iter().map(Into::into).collect()))
}

/// The worker named in the path, for an admin.
fn admin_target(caller: &Authorized, path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    if !caller.0.is_admin() {
        return Err(ApiError::forbidden("only an admin manages workers"));
    }
    Ok(path?.0)
}

/// Drains a worker (admins): it finishes the attempts it runs and gets no
/// new ones.
#[utoipa::path(post, path = "/api/v1/workers/{id}/drain", tag = "workers",
    params(("id" = String, Path, description = "The worker's id")), security(("bearer" = [])),
    responses((status = 200, body = Worker), (status = 401, body = crate::ErrorBody),
        (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
        (status = 409, body = crate::ErrorBody)))]
pub(crate) async fn drain(
    caller: Authorized,
    State(s): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Worker>, ApiError> {
    let id = admin_target(&caller, path)?;
    Ok(Json(s.handle.drain_worker(&id).await?.into()))
}

/// Enables a drained or deregistered worker again, and lifts its blacklist
/// (admins). A deregistered worker gets work once its process registers
/// again.
#[utoipa::path(post, path = "/api/v1/workers/{id}/enable", tag = "workers",
    params(("id" = String, Path, description = "The worker's id")), security(("bearer" = [])),
    responses((status = 200, body = Worker), (status = 401, body = crate::ErrorBody),
        (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn enable(
    caller: Authorized,
    State(s): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Worker>, ApiError> {
    let id = admin_target(&caller, path)?;
    Ok(Json(s.handle.enable_worker(&id).await?.into()))
}

/// Removes a worker from the cluster now (admins): its attempts run again
/// elsewhere, its process is refused at its next contact and exits, and
/// it may not register again until enabled.
#[utoipa::path(post, path = "/api/v1/workers/{id}/deregister", tag = "workers",
    params(("id" = String, Path, description = "The worker's id")), security(("bearer" = [])),
    responses((status = 200, body = Worker), (status = 401, body = crate::ErrorBody),
        (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn deregister(
    caller: Authorized,
    State(s): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Worker>, ApiError> {
    let id = admin_target(&caller, path)?;
    Ok(Json(s.handle.deregister_worker(&id).await?.into()))
}
