//! Errors as kubectl prints them: one line on stderr.

use rk_api::{ApiError, Reason};

/// A failure of one rkctl operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// An error the server (or the connection to it) reported.
    Api(ApiError),
    /// A local error: bad arguments, unreadable files, unknown kinds.
    Local(String),
    /// Already reported on stderr; only the exit status is left to set.
    Reported,
    /// `exec` ran a command that exited with this non-zero code; rkctl
    /// exits with it too, as kubectl does.
    Exit(i32),
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    pub fn local(msg: impl Into<String>) -> Self {
        CliError::Local(msg.into())
    }

    /// The single line printed for this error, without the newline. `None`
    /// for an error that was already reported.
    pub fn line(&self) -> Option<String> {
        match self {
            CliError::Api(e) => Some(api_error_line(e)),
            CliError::Local(m) => Some(local_line(m)),
            CliError::Reported | CliError::Exit(_) => None,
        }
    }

    /// Whether this is the server saying the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CliError::Api(e) if e.reason == Reason::NotFound)
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        CliError::Api(e)
    }
}

/// `error: MESSAGE` on one line (messages that already carry the prefix keep
/// it once).
pub fn local_line(msg: &str) -> String {
    let msg = one_line(msg);
    if msg.starts_with("error: ") {
        msg
    } else {
        format!("error: {msg}")
    }
}

/// kubectl's rendering of a server error: `Error from server (Reason):
/// message`; connection failures print their message as is.
pub fn api_error_line(e: &ApiError) -> String {
    let msg = one_line(&e.message);
    if msg.starts_with("Unable to connect") {
        msg
    } else if e.reason == Reason::ServiceUnavailable && msg.contains("transport error") {
        format!("Unable to connect to the server: {msg}")
    } else {
        format!("Error from server ({}): {msg}", e.reason.as_str())
    }
}

/// Collapses a multi-line message onto one line.
pub fn one_line(msg: &str) -> String {
    let trimmed = msg.trim();
    if !trimmed.contains('\n') {
        return trimmed.to_string();
    }
    trimmed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let e = CliError::Api(ApiError::new(Reason::NotFound, "pods \"x\" not found"));
        assert_eq!(
            e.line().as_deref(),
            Some("Error from server (NotFound): pods \"x\" not found")
        );
        let e = CliError::Api(ApiError::new(Reason::Gone, "too old resource version"));
        assert_eq!(
            e.line().as_deref(),
            Some("Error from server (Expired): too old resource version")
        );
        let e = CliError::Api(ApiError::new(
            Reason::ServiceUnavailable,
            "Unable to connect to the server https://a:1: transport error",
        ));
        assert_eq!(
            e.line().as_deref(),
            Some("Unable to connect to the server https://a:1: transport error")
        );
        assert_eq!(CliError::local("boom").line().as_deref(), Some("error: boom"));
        assert_eq!(
            CliError::local("error: boom\nmore").line().as_deref(),
            Some("error: boom; more")
        );
        assert_eq!(CliError::Reported.line(), None);
    }
}
