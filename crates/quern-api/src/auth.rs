//! The coordinator's [`Access`] rules at the HTTP door: the caller of a
//! request from its `Authorization` header, and each refusal as an
//! [`ApiError`].

use axum::http::HeaderMap;
use quern_coordinator::CoordinatorHandle;
use quern_coordinator::access::{Access, AuthError, Caller};

use crate::ApiError;

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let message = e.to_string();
        match e {
            AuthError::Missing
            | AuthError::Malformed
            | AuthError::Expired
            | AuthError::Invalid
            | AuthError::Removed(_)
            | AuthError::Revoked(_)
            | AuthError::WrongPassword => ApiError::unauthorized(message),
            AuthError::LockedOut { .. } => ApiError::too_many(message),
            AuthError::Forbidden(_) => ApiError::forbidden(message),
            AuthError::Internal(_) => ApiError::internal(message),
            AuthError::State(e) => e.into(),
        }
    }
}

/// Who presents these headers (and when their token expires), as the
/// store has them now.
pub(crate) async fn caller(
    access: &Access,
    handle: &CoordinatorHandle,
    headers: &HeaderMap,
) -> Result<(Caller, Option<u64>), ApiError> {
    let authorization = headers.get(axum::http::header::AUTHORIZATION).map(|v| v.as_bytes());
    Ok(access.authorize(handle, authorization).await?)
}
