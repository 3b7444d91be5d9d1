//! The error type a probe's `check` returns when it cannot go on.

use crate::Status;
use std::fmt;

/// An error that ends the run, as `unknown` with its message unless the
/// error itself decides a status.
///
/// Any `std::error::Error` converts into it with `?`; build one from text
/// with [`Error::msg`] or the [`bail!`](crate::bail) macro. A failed `sql`
/// statement converts too, and when the failure is about the connection it
/// decides the status: a target that is unreachable or does not answer in
/// time makes the run `critical`, one that refuses the session makes it
/// `warning` (alive but unhealthy); see [`Error::status`].
pub struct Error {
    message: String,
    status: Option<Status>,
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            status: None,
        }
    }

    /// An error that ends the run with a report of this status and its
    /// message, rather than as `unknown`.
    pub fn with_status(status: Status, message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            status: Some(status),
        }
    }

    /// The status this error decides, if any (`None`: the run is `unknown`).
    pub fn status(&self) -> Option<Status> {
        self.status
    }

    /// The same error with `context: ` put in front of its message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error {
            message: format!("{context}: {}", self.message),
            status: self.status,
        }
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        Error::msg(error.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}
