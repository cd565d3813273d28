//! [`ApiError`]: every error answer is JSON with a stable `code` and a
//! `message` (`{"error":{"code":"not_found","message":"no job 7"}}`), and a
//! status that says whose fault it is; a coordinator error maps to one here.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`not_found`, `bad_request`, …).
    pub code: &'static str,
    /// What went wrong, for people: it names the field, job or value.
    pub message: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: `bad_request`, `unprocessable`, `unauthorized`,
    /// `forbidden`, `not_found`, `refused`, `conflict`, `too_large`,
    /// `too_many_requests`, `unsupported_media_type`, `unavailable`,
    /// `internal`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code: "bad_request", message: message.into() }
    }

    /// 422: well-formed, but a value is out of range or unknown.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: "unprocessable", message: message.into() }
    }

    /// 401: no usable token.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::UNAUTHORIZED, code: "unauthorized", message: message.into() }
    }

    /// 403: the caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::FORBIDDEN, code: "forbidden", message: message.into() }
    }

    /// 429: too many tries.
    pub fn too_many(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::TOO_MANY_REQUESTS, code: "too_many_requests", message: message.into() }
    }

    /// 413: the request body is over the limit.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, code: "too_large", message: message.into() }
    }

    /// 409: the request conflicts with the state of what it names.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::CONFLICT, code: "conflict", message: message.into() }
    }

    /// 500: the server failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", message: message.into() }
    }

    /// 404: no such thing (or not the caller's to see).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        (self.status, Json(body)).into_response()
    }
}

impl From<quern_coordinator::Error> for ApiError {
    fn from(e: quern_coordinator::Error) -> ApiError {
        use quern_coordinator::Error as E;
        let message = e.to_string();
        match e {
            E::BadRequest(_) => ApiError::unprocessable(message),
            // A spec that cannot run: an unknown app, an existing output, a
            // missing input, a plan beyond the bounds.
            E::Refused(_) => ApiError { status: StatusCode::CONFLICT, code: "refused", message },
            E::NoSuchJob(_) | E::NoSuchWorker(_) => ApiError::not_found(message),
            E::Unavailable(_) => ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", message },
            _ => {
                tracing::error!("the API failed a request: {message}");
                ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", message }
            }
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> ApiError {
        use axum::extract::rejection::JsonRejection as R;
        match r {
            // Well-formed JSON of the wrong shape: serde names the field.
            R::JsonDataError(e) => ApiError::unprocessable(e.body_text()),
            R::MissingJsonContentType(e) => ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                message: e.body_text(),
            },
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}

impl From<axum::extract::multipart::MultipartRejection> for ApiError {
    fn from(r: axum::extract::multipart::MultipartRejection) -> ApiError {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: format!("{}: send multipart/form-data", r.body_text()),
        }
    }
}

impl From<quern_storage::StorageError> for ApiError {
    fn from(e: quern_storage::StorageError) -> ApiError {
        let message = e.to_string();
        if e.is_refusal() {
            return ApiError::unprocessable(message);
        }
        tracing::error!("storage failed a request: {message}");
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", message }
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}
