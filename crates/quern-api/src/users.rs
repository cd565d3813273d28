//! Users, managed by admins over HTTP as `quern user` does on the
//! coordinator's host; a user may change their own password.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use quern_coordinator::access::{check_password, check_user_name, hash_password};
use quern_coordinator::state::Role;
use quern_coordinator::store::StoredUser;

use crate::dto::{NewPassword, NewUser, User};
use crate::{ApiError, ApiState, Authorized, Caller};

fn admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin() { Ok(()) } else { Err(ApiError::forbidden("only an admin manages users")) }
}

async fn hashed(password: String) -> Result<String, ApiError> {
    check_password(&password).map_err(|e| ApiError::unprocessable(format!("password: {e}")))?;
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::internal(format!("hashing the password: {e}")))?
        .map_err(|e| ApiError::internal(format!("hashing the password: {e}")))
}

/// Every user (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [User]), (status = 401, body = crate::ErrorBody),
        (status = 403, body = crate::ErrorBody)))]
pub(crate) async fn list(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
) -> Result<Json<Vec<User>>, ApiError> {
    admin(&caller)?;
    Ok(Json(s.handle.users().await?.into_iter().map(User::from).collect()))
}

/// Adds a user (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser, security(("bearer" = [])),
    responses((status = 201, body = User), (status = 400, body = crate::ErrorBody),
        (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
        (status = 409, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody)))]
pub(crate) async fn add(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    admin(&caller)?;
    let Json(new) = body?;
    check_user_name(&new.name).map_err(|e| ApiError::unprocessable(format!("name: {e}")))?;
    if s.handle.user(&new.name).await?.is_some() {
        return Err(ApiError::conflict(format!("user {} exists", new.name)));
    }
    let password_hash = hashed(new.password).await?;
    let created_at_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let user = StoredUser { name: new.name, role: new.role.into(), password_hash, created_at_ms };
    s.handle.put_user(&user).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Removes a user (admins); their tokens stop working at once. The last
/// admin stays.
#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users",
    params(("name" = String, Path, description = "The user's name")), security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 401, body = crate::ErrorBody),
        (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
        (status = 409, body = crate::ErrorBody)))]
pub(crate) async fn remove(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    let Path(name) = path?;
    let users = s.handle.users().await?;
    let Some(user) = users.iter().find(|u| u.name == name) else {
        return Err(ApiError::not_found(format!("no user {name}")));
    };
    if user.role == Role::Admin && users.iter().filter(|u| u.role == Role::Admin).count() == 1 {
        return Err(ApiError::conflict(format!("{name} is the last admin: add another admin first")));
    }
    if !s.handle.remove_user(&name).await? {
        return Err(ApiError::not_found(format!("no user {name}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Changes a user's password: admins for anyone, users for themselves.
#[utoipa::path(post, path = "/api/v1/users/{name}/password", tag = "users", request_body = NewPassword,
    params(("name" = String, Path, description = "The user's name")), security(("bearer" = [])),
    responses((status = 204, description = "Changed"), (status = 400, body = crate::ErrorBody),
        (status = 401, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
        (status = 422, body = crate::ErrorBody)))]
pub(crate) async fn password(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<NewPassword>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(name) = path?;
    // Another user's name is as unknown to a user as a missing one.
    let user = match s.handle.user(&name).await? {
        Some(user) if caller.is_admin() || caller.name() == name => user,
        _ => return Err(ApiError::not_found(format!("no user {name}"))),
    };
    let Json(new) = body?;
    let password_hash = hashed(new.password).await?;
    s.handle.put_user(&StoredUser { password_hash, ..user }).await?;
    Ok(StatusCode::NO_CONTENT)
}
