//! Mapping between the object API's errors and gRPC statuses. Both ends
//! use these two functions, so a reason survives the wire unchanged.

use rk_api::{ApiError, Reason};
use tonic::{Code, Status};

const REASON_KEY: &str = "rk-reason";
const FIELD_KEY: &str = "rk-field";

fn code_of(reason: &Reason) -> Code {
    match reason {
        Reason::BadRequest | Reason::Invalid => Code::InvalidArgument,
        Reason::NotFound => Code::NotFound,
        Reason::AlreadyExists => Code::AlreadyExists,
        Reason::Conflict => Code::Aborted,
        Reason::Gone => Code::OutOfRange,
        Reason::Forbidden => Code::PermissionDenied,
        Reason::Unauthorized => Code::Unauthenticated,
        Reason::InternalError => Code::Internal,
        Reason::ServiceUnavailable => Code::Unavailable,
        Reason::Timeout => Code::DeadlineExceeded,
    }
}

pub fn to_status(e: &ApiError) -> Status {
    let mut st = Status::new(code_of(&e.reason), e.message.clone());
    if let Ok(v) = e.reason.as_str().parse() {
        st.metadata_mut().insert(REASON_KEY, v);
    }
    if let Some(f) = &e.field {
        if let Ok(v) = f.parse() {
            st.metadata_mut().insert(FIELD_KEY, v);
        }
    }
    st
}

pub fn from_status(st: &Status) -> ApiError {
    let reason = st
        .metadata()
        .get(REASON_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(Reason::parse)
        .unwrap_or(match st.code() {
            Code::InvalidArgument => Reason::BadRequest,
            Code::NotFound => Reason::NotFound,
            Code::AlreadyExists => Reason::AlreadyExists,
            Code::Aborted => Reason::Conflict,
            Code::OutOfRange => Reason::Gone,
            Code::PermissionDenied => Reason::Forbidden,
            Code::Unauthenticated => Reason::Unauthorized,
            Code::Unavailable => Reason::ServiceUnavailable,
            Code::DeadlineExceeded => Reason::Timeout,
            _ => Reason::InternalError,
        });
    let field = st
        .metadata()
        .get(FIELD_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    ApiError {
        reason,
        message: st.message().to_string(),
        field,
    }
}

/// True when the request certainly did not take effect and another
/// replica may serve it: the server could not be reached, or it had no
/// leader to hand the request to.
pub fn is_retryable(st: &Status) -> bool {
    st.code() == Code::Unavailable
}

/// True when the connection failed under a request (reset, handshake
/// failure, stream cut): the request may or may not have been processed.
pub fn is_broken_connection(st: &Status) -> bool {
    if st.metadata().get(REASON_KEY).is_some() {
        return false;
    }
    st.code() == Code::Cancelled
        || matches!(st.code(), Code::Unknown | Code::Internal)
            && (st.message().contains("transport error")
                || st.message().contains("connection")
                || st.message().contains("h2 protocol error")
                || st.message().contains("stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_survive_the_round_trip() {
        for r in [
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
        ] {
            let e = ApiError {
                reason: r.clone(),
                message: "m".into(),
                field: Some("spec.replicas".into()),
            };
            let back = from_status(&to_status(&e));
            assert_eq!(back, e);
        }
    }
}
