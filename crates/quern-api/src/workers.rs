//! The cluster's workers.

use axum::Json;
use axum::extract::State;

use crate::dto::Worker;
use crate::{ApiError, ApiState, Authorized};

/// Every worker ever registered, alive or lost.
#[utoipa::path(get, path = "/api/v1/workers", tag = "workers", security(("bearer" = [])),
    responses((status = 200, body = [Worker]), (status = 401, body = crate::ErrorBody)))]
pub(crate) async fn list(_: Authorized, State(s): State<ApiState>) -> Result<Json<Vec<Worker>>, ApiError> {
    Ok(Json(s.handle.workers().await?.into_iter().map(Into::into).collect()))
}
