//! Logging in, and asking who a token belongs to.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ApiError, ApiState, Authorized, Caller};

/// A login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The user's name.
    pub username: String,
    /// Their password.
    pub password: String,
}

/// A signed token and when it expires.
#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    /// Send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it expires (ms since the epoch).
    pub expires_at: u64,
}

/// Who a token belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Identity {
    /// The user's name ("" for the cluster token).
    pub username: String,
    /// `admin` or `user`.
    pub role: String,
    /// When the token expires (ms since the epoch; null for the cluster
    /// token).
    pub expires_at: Option<u64>,
}

/// Logs in: a token for the user, valid for the configured lifetime.
/// Five failed logins in a row for a name refuse it for a minute (429).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = Token), (status = 400, body = crate::ErrorBody),
        (status = 401, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
        (status = 429, body = crate::ErrorBody)))]
pub(crate) async fn login(
    State(s): State<ApiState>,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<Json<Token>, ApiError> {
    let Json(login) = body?;
    let signed = s.access.login(&s.handle, &login.username, &login.password).await?;
    Ok(Json(Token { token: signed.token, expires_at: signed.expires_at_ms }))
}

/// Who the presented token belongs to, and its role.
#[utoipa::path(get, path = "/api/v1/auth/validate", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Identity), (status = 401, body = crate::ErrorBody)))]
pub(crate) async fn validate(Authorized(caller, expires): Authorized) -> Json<Identity> {
    let role = if caller.is_admin() { "admin" } else { "user" };
    let username = match &caller {
        Caller::ClusterToken => String::new(),
        Caller::User { name, .. } => name.clone(),
    };
    Json(Identity { username, role: role.into(), expires_at: expires })
}
