//! API errors in Kubernetes' vocabulary.
//!
//! Every failure the API can report carries a [`Reason`] (which maps onto the
//! Kubernetes `Status.reason` string and an HTTP status code) and a
//! human-readable message whose wording follows the Kubernetes API server, so
//! that users of rk see the same messages `kubectl` would show them.

use serde_json::{json, Value};

/// Why a request failed; mirrors Kubernetes' `metav1.StatusReason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The request itself was malformed (bad JSON, unknown field, bad selector).
    BadRequest,
    /// The object failed validation.
    Invalid,
    /// The object does not exist.
    NotFound,
    /// An object with that name already exists.
    AlreadyExists,
    /// The write lost an optimistic-concurrency race (stale resourceVersion).
    Conflict,
    /// The requested resourceVersion is too old; the client must relist.
    Gone,
    /// The caller is not allowed to do this.
    Forbidden,
    /// The caller did not authenticate.
    Unauthorized,
    /// A bug or unexpected condition on the server side.
    InternalError,
    /// The server cannot serve the request right now (e.g. no leader).
    ServiceUnavailable,
    /// The request did not complete in time.
    Timeout,
}

impl Reason {
    /// The Kubernetes `Status.reason` string for this reason.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Invalid => "Invalid",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            // Kubernetes reports a too-old resourceVersion on watch/list as
            // "Expired" (HTTP 410); clients key their relist logic off it.
            Reason::Gone => "Expired",
            Reason::Forbidden => "Forbidden",
            Reason::Unauthorized => "Unauthorized",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Timeout => "Timeout",
        }
    }

    /// The HTTP status code Kubernetes uses for this reason.
    pub fn code(&self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Invalid => 422,
            Reason::NotFound => 404,
            Reason::AlreadyExists => 409,
            Reason::Conflict => 409,
            Reason::Gone => 410,
            Reason::Forbidden => 403,
            Reason::Unauthorized => 401,
            Reason::InternalError => 500,
            Reason::ServiceUnavailable => 503,
            Reason::Timeout => 504,
        }
    }

    /// Parse a `Status.reason` string back into a [`Reason`].
    ///
    /// Kubernetes has both "Expired" and "Gone" for HTTP 410, so both map to
    /// [`Reason::Gone`].
    pub fn parse(s: &str) -> Option<Reason> {
        Some(match s {
            "BadRequest" => Reason::BadRequest,
            "Invalid" => Reason::Invalid,
            "NotFound" => Reason::NotFound,
            "AlreadyExists" => Reason::AlreadyExists,
            "Conflict" => Reason::Conflict,
            "Expired" | "Gone" => Reason::Gone,
            "Forbidden" => Reason::Forbidden,
            "Unauthorized" => Reason::Unauthorized,
            "InternalError" => Reason::InternalError,
            "ServiceUnavailable" => Reason::ServiceUnavailable,
            "Timeout" => Reason::Timeout,
            _ => return None,
        })
    }

    /// The reason Kubernetes associates with an HTTP status code, if any.
    pub fn from_code(code: u16) -> Option<Reason> {
        Some(match code {
            400 => Reason::BadRequest,
            401 => Reason::Unauthorized,
            403 => Reason::Forbidden,
            404 => Reason::NotFound,
            409 => Reason::Conflict,
            410 => Reason::Gone,
            422 => Reason::Invalid,
            500 => Reason::InternalError,
            503 => Reason::ServiceUnavailable,
            504 => Reason::Timeout,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The detail Kubernetes gives when an update used a stale resourceVersion.
pub const CONFLICT_MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// An API error: a reason, a kubectl-style message and, for validation and
/// decoding errors, the offending field path.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct ApiError {
    /// The machine-readable category of the failure.
    pub reason: Reason,
    /// The human-readable message, worded like the Kubernetes API server's.
    pub message: String,
    /// The field the error is about, e.g. `spec.template.spec.containers[0].image`.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a reason and message but no field.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            field: None,
        }
    }

    /// Attach (or replace) the field path.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A `BadRequest` error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    /// An `InternalError`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::InternalError, message)
    }

    /// A validation error about one field.
    ///
    /// `kind` is the qualified kind as kubectl prints it (`Deployment.apps`,
    /// or `Pod` for the core group) and `detail` is the text after the field
    /// path, e.g. `Invalid value: -1: must be greater than or equal to 0`.
    pub fn invalid(kind: &str, name: &str, field: &str, detail: &str) -> Self {
        ApiError {
            reason: Reason::Invalid,
            message: format!("{kind} \"{name}\" is invalid: {field}: {detail}"),
            field: Some(field.to_string()),
        }
    }

    /// A validation error about several fields at once.
    ///
    /// Kubernetes lists all causes in brackets when there is more than one;
    /// with exactly one cause this is the same as [`ApiError::invalid`]. The
    /// `field` of the result is the first cause's field.
    pub fn invalid_many(kind: &str, name: &str, causes: &[(String, String)]) -> Self {
        match causes {
            [] => ApiError {
                reason: Reason::Invalid,
                message: format!("{kind} \"{name}\" is invalid"),
                field: None,
            },
            [(field, detail)] => Self::invalid(kind, name, field, detail),
            [(first, _), ..] => {
                let joined: Vec<String> = causes
                    .iter()
                    .map(|(field, detail)| format!("{field}: {detail}"))
                    .collect();
                ApiError {
                    reason: Reason::Invalid,
                    message: format!("{kind} \"{name}\" is invalid: [{}]", joined.join(", ")),
                    field: Some(first.clone()),
                }
            }
        }
    }

    /// `NotFound`: `deployments.apps "web" not found` (`pods "x" not found`
    /// for the core group).
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(Reason::NotFound, format!("{resource} \"{name}\" not found"))
    }

    /// `AlreadyExists`: `deployments.apps "web" already exists`.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self::new(
            Reason::AlreadyExists,
            format!("{resource} \"{name}\" already exists"),
        )
    }

    /// `Conflict`: `Operation cannot be fulfilled on deployments.apps "web": <detail>`.
    ///
    /// Use [`CONFLICT_MODIFIED`] as the detail for a stale resourceVersion.
    pub fn conflict(resource: &str, name: &str, detail: &str) -> Self {
        Self::new(
            Reason::Conflict,
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {detail}"),
        )
    }

    /// `Expired` (HTTP 410): the watch or list asked for history that has
    /// been compacted away.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(Reason::Gone, message)
    }

    /// The HTTP status code for this error.
    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    /// This error as a Kubernetes `Status` object, ready to be sent to clients.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.reason.code(),
        });
        if let Some(field) = &self.field {
            status["details"] = json!({ "causes": [{ "field": field, "message": self.message }] });
        }
        status
    }

    /// Rebuild an error from a Kubernetes `Status` object (e.g. one received
    /// by a client). Returns `None` if the value is not a failure `Status`.
    pub fn from_status(status: &Value) -> Option<ApiError> {
        if status.get("kind").and_then(Value::as_str) != Some("Status")
            || status.get("status").and_then(Value::as_str) == Some("Success")
        {
            return None;
        }
        let code = status
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok());
        let reason = status
            .get("reason")
            .and_then(Value::as_str)
            .and_then(Reason::parse)
            .or_else(|| code.and_then(Reason::from_code))
            .unwrap_or(Reason::InternalError);
        let message = status
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let field = status
            .pointer("/details/causes/0/field")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(ApiError {
            reason,
            message,
            field,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Reason; 11] = [
        Reason::BadRequest,
        Reason::Invalid,
        Reason::NotFound,
        Reason::AlreadyExists,
        Reason::Conflict,
        Reason::Gone,
        Reason::Forbidden,
        Reason::Unauthorized,
        Reason::InternalError,
        Reason::ServiceUnavailable,
        Reason::Timeout,
    ];

    #[test]
    fn reason_strings_and_codes() {
        let expected = [
            ("BadRequest", 400),
            ("Invalid", 422),
            ("NotFound", 404),
            ("AlreadyExists", 409),
            ("Conflict", 409),
            ("Expired", 410),
            ("Forbidden", 403),
            ("Unauthorized", 401),
            ("InternalError", 500),
            ("ServiceUnavailable", 503),
            ("Timeout", 504),
        ];
        for (reason, (s, code)) in ALL.iter().zip(expected) {
            assert_eq!(reason.as_str(), s);
            assert_eq!(reason.code(), code);
            assert_eq!(Reason::parse(s).as_ref(), Some(reason));
        }
        assert_eq!(Reason::parse("Gone"), Some(Reason::Gone));
        assert_eq!(Reason::parse("nope"), None);
        assert_eq!(Reason::from_code(422), Some(Reason::Invalid));
        assert_eq!(Reason::from_code(418), None);
    }

    #[test]
    fn messages_match_kubectl() {
        let e = ApiError::invalid(
            "Deployment.apps",
            "web",
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0",
        );
        assert_eq!(
            e.to_string(),
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(e.reason, Reason::Invalid);
        assert_eq!(e.field.as_deref(), Some("spec.replicas"));

        assert_eq!(
            ApiError::not_found("deployments.apps", "web").message,
            "deployments.apps \"web\" not found"
        );
        assert_eq!(ApiError::not_found("pods", "x").message, "pods \"x\" not found");
        assert_eq!(
            ApiError::already_exists("deployments.apps", "web").message,
            "deployments.apps \"web\" already exists"
        );
        let c = ApiError::conflict("deployments.apps", "web", CONFLICT_MODIFIED);
        assert_eq!(
            c.message,
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(c.code(), 409);
    }

    #[test]
    fn invalid_many_lists_causes() {
        let causes = vec![
            ("spec.a".to_string(), "Required value".to_string()),
            ("spec.b".to_string(), "Invalid value: 1: bad".to_string()),
        ];
        let e = ApiError::invalid_many("Pod", "p", &causes);
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: [spec.a: Required value, spec.b: Invalid value: 1: bad]"
        );
        assert_eq!(e.field.as_deref(), Some("spec.a"));
        let one = ApiError::invalid_many("Pod", "p", &causes[..1]);
        assert_eq!(one, ApiError::invalid("Pod", "p", "spec.a", "Required value"));
    }

    #[test]
    fn status_round_trip() {
        let e = ApiError::invalid("Pod", "p", "spec.containers", "Required value");
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(ApiError::from_status(&s), Some(e));

        let gone = ApiError::gone("too old resource version: 1 (5)");
        assert_eq!(ApiError::from_status(&gone.to_status()), Some(gone));

        // A status with only a code still maps to a reason.
        let s = json!({"kind": "Status", "status": "Failure", "code": 404, "message": "m"});
        let e = ApiError::from_status(&s);
        assert_eq!(e.map(|e| e.reason), Some(Reason::NotFound));
        assert_eq!(ApiError::from_status(&json!({"kind": "Pod"})), None);
    }
}
