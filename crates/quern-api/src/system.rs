//! Health, version and the apps the cluster offers.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use quern_coordinator::WorkerHealth;

use crate::dto::{App, Health, Version};
use crate::{ApiError, ApiState, Authorized};

/// The service answers, and how many workers are alive. No token needed
/// (for load balancers and probes).
#[utoipa::path(get, path = "/api/v1/health", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = crate::ErrorBody)))]
pub(crate) async fn health(State(s): State<ApiState>) -> Result<Json<Health>, ApiError> {
    let workers = s.handle.workers().await?;
    let alive = workers.iter().filter(|w| w.health != WorkerHealth::Lost).count();
    Ok(Json(Health { status: "ok".into(), workers: alive }))
}

/// quern's version and the API's.
#[utoipa::path(get, path = "/api/v1/version", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = Version), (status = 401, body = crate::ErrorBody)))]
pub(crate) async fn version(_: Authorized) -> Json<Version> {
    Json(Version { version: env!("CARGO_PKG_VERSION").into(), api: "v1".into() })
}

/// The apps the cluster's alive workers offer.
#[utoipa::path(get, path = "/api/v1/apps", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = [App]), (status = 401, body = crate::ErrorBody)))]
pub(crate) async fn apps(_: Authorized, State(s): State<ApiState>) -> Result<Json<Vec<App>>, ApiError> {
    let mut apps: BTreeMap<String, usize> = BTreeMap::new();
    for w in s.handle.workers().await?.into_iter().filter(|w| w.health != WorkerHealth::Lost) {
        for app in w.row.apps {
            *apps.entry(app).or_default() += 1;
        }
    }
    Ok(Json(apps.into_iter().map(|(name, workers)| App { name, workers }).collect()))
}
