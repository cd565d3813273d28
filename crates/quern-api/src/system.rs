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
    let alive = workers
        .iter()
        .filter(|w| matches!(w.health, WorkerHealth::Alive | WorkerHealth::Blacklisted | WorkerHealth::Draining))
        .count();
    Ok(Json(Health { status: "ok".into(), workers: alive }))
}

/// quern's version and the API's.
#[utoipa::path(get, path = "/api/v1/version", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = Version), (status = 401, body = crate::ErrorBody)))]
pub(crate) async fn version(_: Authorized) -> Json<Version> {
    Json(Version { version: env!("CARGO_PKG_VERSION").into(), api: "v1".into() })
}

/// The apps the cluster's alive workers offer, with their parameters (as
/// the newest worker that offers each describes it).
#[utoipa::path(get, path = "/api/v1/apps", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = [App]), (status = 401, body = crate::ErrorBody)))]
pub(crate) async fn apps(_: Authorized, State(s): State<ApiState>) -> Result<Json<Vec<App>>, ApiError> {
    let mut workers = s.handle.workers().await?;
    workers.retain(|w| matches!(w.health, WorkerHealth::Alive | WorkerHealth::Blacklisted | WorkerHealth::Draining));
    workers.sort_by_key(|w| w.row.registered_at_ms);
    let mut apps: BTreeMap<String, (quern_core::AppInfo, usize)> = BTreeMap::new();
    for w in workers {
        for app in w.row.apps {
            let entry = apps.entry(app.name.clone()).or_insert_with(|| (app.clone(), 0));
            entry.0 = app;
            entry.1 += 1;
        }
    }
    Ok(Json(apps.into_values().map(|(info, workers)| App::new(info, workers)).collect()))
}
