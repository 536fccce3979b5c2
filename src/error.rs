//! The one error type of the application and its mapping to GraphQL `extensions.code`.
//!
//! Internal errors are logged with their cause chain and returned with a generic
//! message: no SQL, table names or stack traces reach a client.

use async_graphql::ErrorExtensions;

/// Deliberately not `Display`: async-graphql converts any `Display` type into an error
/// without `extensions.code`, and every error of ours must carry its code. The
/// conversion below is the only way an `AppError` reaches a client.
#[derive(Debug)]
pub enum AppError {
    Unauthenticated(String),
    Forbidden(String),
    NotFound(String),
    BadUserInput(String),
    Timeout,
    RateLimited(String),
    Unavailable(String),
    Internal(anyhow::Error),
}

impl AppError {
    /// The `extensions.code` clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::BadUserInput(_) => "BAD_USER_INPUT",
            AppError::Timeout => "TIMEOUT",
            AppError::RateLimited(_) => "RATE_LIMITED",
            AppError::Unavailable(_) => "UNAVAILABLE",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    /// Whether the connection's socket died under the statement (PostgreSQL restarted
    /// or the backend was terminated): the connection must not be used again.
    pub fn is_connection_lost(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error as E};
        match self {
            AppError::Unavailable(_) => true,
            AppError::Internal(cause) => cause.chain().any(|c| {
                matches!(c.downcast_ref::<E>(), Some(E::DatabaseError(kind, info))
                    if matches!(kind, DatabaseErrorKind::ClosedConnection)
                        || connection_lost(info.message()))
            }),
            _ => false,
        }
    }

    pub fn bad_input(msg: impl Into<String>) -> AppError {
        AppError::BadUserInput(msg.into())
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> AppError {
        AppError::Internal(err.into())
    }

    /// The message a client may see.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal error".to_string()
            }
            AppError::Timeout => "the request took too long and was cancelled".to_string(),
            AppError::Unauthenticated(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::BadUserInput(m)
            | AppError::RateLimited(m)
            | AppError::Unavailable(m) => m.clone(),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::Error as E;
        match &err {
            E::NotFound => AppError::NotFound("not found".into()),
            E::DatabaseError(_, info) if info.message().contains("statement timeout") => {
                AppError::Timeout
            }
            E::DatabaseError(diesel::result::DatabaseErrorKind::ClosedConnection, _) => {
                AppError::Unavailable("the database is unavailable".into())
            }
            E::DatabaseError(_, info) if connection_lost(info.message()) => {
                tracing::warn!(error = %info.message(), "database connection lost");
                AppError::Unavailable("the database is unavailable".into())
            }
            _ => AppError::Internal(err.into()),
        }
    }
}

/// libpq's and the server's words for a connection that is gone.
fn connection_lost(message: &str) -> bool {
    [
        "server closed the connection",
        "no connection to the server",
        "terminating connection",
        "connection to server",
        "could not receive data from server",
        "could not send data to server",
        "SSL SYSCALL error",
        "the database system is shutting down",
        "the database system is starting up",
    ]
    .iter()
    .any(|m| message.contains(m))
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        tracing::warn!(error = %err, "database pool checkout failed");
        AppError::Unavailable("the database is unavailable, try again shortly".into())
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let code = err.code();
        async_graphql::Error::new(err.public_message()).extend_with(|_, e| e.set("code", code))
    }
}

/// Result alias for resolvers and the data layer.
pub type AppResult<T> = Result<T, AppError>;
