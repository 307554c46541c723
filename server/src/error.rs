//! The one error type of the REST API.
//!
//! Every failure a handler can meet maps to an [`ApiError`], which renders
//! as a status code and `{"error": "<code>", "message": "<text>"}`. Internal
//! failures are logged with their cause and answered with a generic 500 body,
//! so nothing about the database leaks to clients.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use app::protocol::{ErrorBody, Task};

/// Everything the REST API answers with other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body was not acceptable JSON (syntax, types, missing fields).
    #[error("{0}")]
    BadJson(String),
    /// The body was JSON but not of the expected shape (wrong types, missing
    /// or unknown fields).
    #[error("{0}")]
    BadBody(String),
    /// The body was well-formed but a field's value is not allowed.
    #[error("{0}")]
    Validation(String),
    /// A path segment was not acceptable (e.g. a non-numeric id).
    #[error("{0}")]
    BadPath(String),
    #[error("no task with id {0}")]
    TaskNotFound(i64),
    #[error("no board with id {0}")]
    BoardNotFound(i64),
    #[error("{0} is not a member of this board")]
    MemberNotFound(String),
    #[error("no label with id {0} on this board")]
    LabelNotFound(i64),
    /// A board already has a label of that name.
    #[error("this board already has a label named “{0}”")]
    LabelExists(String),
    /// A bound on how many of something an account or board may have.
    #[error("{0}")]
    LimitReached(String),
    #[error("this endpoint only accepts WebSocket upgrade requests (version 13)")]
    UpgradeRequired,
    #[error("WebSocket connections from this origin are not allowed")]
    OriginNotAllowed,
    #[error("no route for this path")]
    RouteNotFound,
    /// The path exists, the method does not (the `Allow` header lists
    /// the ones that do).
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    /// No token, or one that is invalid, expired, or of a deleted account.
    #[error("{0}")]
    Unauthorized(String),
    /// `POST /token` with a wrong username or password (which one is not
    /// said).
    #[error("incorrect username or password")]
    InvalidCredentials,
    /// Too many failed logins; retry after the duration.
    #[error("too many failed login attempts; try again in {} s", .0.as_secs().max(1))]
    TooManyAttempts(std::time::Duration),
    #[error("that username is taken")]
    UsernameTaken,
    /// Too many accounts registered from one address; retry after.
    #[error("too many accounts registered from this address; try again in {} s", .0.as_secs().max(1))]
    TooManyRegistrations(std::time::Duration),
    /// Too many WebSocket handshakes from one address; retry after it.
    #[error("too many WebSocket handshakes from your address: try again in {} ms", .0.as_millis().max(1))]
    TooManyHandshakes(std::time::Duration),
    /// The publisher is over its publishing rate; retry after the duration.
    #[error("publishing too fast: try again in {} ms", .0.as_millis().max(1))]
    PublishingTooFast(std::time::Duration),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("the request body must be a form (Content-Type: application/x-www-form-urlencoded)")]
    UnsupportedForm,
    /// `If-Match` named another version; carries the current task.
    #[error("the task has changed since version {expected}")]
    VersionMismatch { expected: i64, current: Box<Task> },
    #[error("the If-Match header is not a task version")]
    BadPrecondition,
    #[error("the request body is larger than the server accepts")]
    PayloadTooLarge,
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// A dependency (the broker) is down; the request may succeed later.
    #[error("{0}")]
    Unavailable(String),
    /// The request (its body included) took longer than the server allows.
    #[error("the request took longer than {} s; the connection is closed", .0.as_secs())]
    RequestTimeout(std::time::Duration),
    /// A failure that is ours, not the client's. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The stable machine-readable code in the body's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadJson(_) => "invalid_json",
            ApiError::BadBody(_) => "invalid_body",
            ApiError::Validation(_) => "validation_failed",
            ApiError::BadPath(_) => "invalid_path",
            ApiError::TaskNotFound(_) => "task_not_found",
            ApiError::BoardNotFound(_) => "board_not_found",
            ApiError::MemberNotFound(_) => "member_not_found",
            ApiError::LabelNotFound(_) => "label_not_found",
            ApiError::LabelExists(_) => "label_exists",
            ApiError::LimitReached(_) => "limit_reached",
            ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::TooManyAttempts(_) | ApiError::TooManyRegistrations(_) => "too_many_attempts",
            ApiError::PublishingTooFast(_) | ApiError::TooManyHandshakes(_) => "rate_limited",
            ApiError::UsernameTaken => "username_taken",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::UnsupportedForm => "unsupported_media_type",
            ApiError::UpgradeRequired => "upgrade_required",
            ApiError::OriginNotAllowed => "origin_not_allowed",
            ApiError::VersionMismatch { .. } => "version_mismatch",
            ApiError::BadPrecondition => "invalid_precondition",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadJson(_) | ApiError::BadPath(_) | ApiError::BadPrecondition => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Validation(_) | ApiError::BadBody(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TaskNotFound(_)
            | ApiError::BoardNotFound(_)
            | ApiError::MemberNotFound(_)
            | ApiError::LabelNotFound(_)
            | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::LimitReached(_) | ApiError::LabelExists(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ApiError::OriginNotAllowed | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAttempts(_)
            | ApiError::TooManyRegistrations(_)
            | ApiError::PublishingTooFast(_)
            | ApiError::TooManyHandshakes(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UsernameTaken => StatusCode::CONFLICT,
            ApiError::UnsupportedForm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

/// Body of a 412: the usual error fields plus the task as it is now, so the
/// client can show the newer version without another request.
#[derive(serde::Serialize)]
struct ConflictBody<'a> {
    error: &'static str,
    message: String,
    current: &'a Task,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, "request failed");
        }
        match &self {
            ApiError::VersionMismatch { current, .. } => {
                let body = ConflictBody {
                    error: self.code(),
                    message: self.to_string(),
                    current,
                };
                let etag = crate::rest::etag(current.version);
                (status, [(axum::http::header::ETAG, etag)], axum::Json(body)).into_response()
            }
            ApiError::Unauthorized(_) | ApiError::InvalidCredentials => {
                let body = ErrorBody {
                    error: self.code().into(),
                    message: self.to_string(),
                };
                let challenge = [(axum::http::header::WWW_AUTHENTICATE, "Bearer")];
                (status, challenge, axum::Json(body)).into_response()
            }
            ApiError::TooManyAttempts(wait)
            | ApiError::TooManyRegistrations(wait)
            | ApiError::PublishingTooFast(wait)
            | ApiError::TooManyHandshakes(wait) => {
                let body = ErrorBody {
                    error: self.code().into(),
                    message: self.to_string(),
                };
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let retry = [(axum::http::header::RETRY_AFTER, secs.max(1).to_string())];
                (status, retry, axum::Json(body)).into_response()
            }
            ApiError::RequestTimeout(_) => {
                let body = ErrorBody {
                    error: self.code().into(),
                    message: self.to_string(),
                };
                // The body may be half read: the connection cannot be reused.
                let close = [(axum::http::header::CONNECTION, "close")];
                (status, close, axum::Json(body)).into_response()
            }
            ApiError::UpgradeRequired => {
                let body = ErrorBody {
                    error: self.code().into(),
                    message: self.to_string(),
                };
                let upgrade = [(axum::http::header::UPGRADE, "websocket")];
                (status, upgrade, axum::Json(body)).into_response()
            }
            _ => {
                let body = ErrorBody {
                    error: self.code().into(),
                    message: self.to_string(),
                };
                (status, axum::Json(body)).into_response()
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            JsonRejection::JsonDataError(e) => ApiError::BadBody(e.body_text()),
            other => ApiError::BadJson(other.body_text()),
        }
    }
}

/// `axum::Json`, but its rejection is an [`ApiError`], so a bad body gets our
/// JSON error shape instead of axum's plain text.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(rejection.into()),
        }
    }
}

/// `axum::extract::Path` with an [`ApiError`] rejection.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rejection) => Err(ApiError::BadPath(path_message(&rejection))),
        }
    }
}

fn path_message(rejection: &PathRejection) -> String {
    rejection.body_text()
}

/// The broker failing is the client's cue to retry, never a 500.
impl From<crate::broker::BrokerError> for ApiError {
    fn from(e: crate::broker::BrokerError) -> Self {
        tracing::warn!(error = %e, "broker call failed");
        match e {
            crate::broker::BrokerError::TooManyTopics(_) => ApiError::Unavailable(e.to_string()),
            crate::broker::BrokerError::Unavailable(_) => {
                ApiError::Unavailable("the broker is unavailable; retry".into())
            }
        }
    }
}
