//! The error type of the crate.
//!
//! Decisions themselves rarely fail: objects reaching a controller have been
//! validated by the API server. Errors are reserved for inputs that cannot be
//! interpreted at all (a malformed quantity, percentage, cron schedule or an
//! unsupported time zone), so a controller can report them on the object
//! instead of guessing.

use rk_api::quantity::QuantityError;

/// Why an input could not be interpreted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A resource quantity in a pod or node does not parse.
    #[error("invalid quantity {value:?} for resource {resource}: {source}")]
    InvalidQuantity {
        /// The resource name, e.g. `cpu`.
        resource: String,
        /// The offending quantity string.
        value: String,
        /// What was wrong with it.
        #[source]
        source: QuantityError,
    },
    /// An int-or-string field that is neither an integer nor `N%`.
    #[error("invalid value {0:?}: must be an integer or a percentage such as \"25%\"")]
    InvalidIntOrPercent(String),
    /// A cron schedule that does not parse.
    #[error("unparseable schedule {schedule:?}: {detail}")]
    InvalidSchedule {
        /// The schedule as written.
        schedule: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A time zone that is neither in the IANA time zone database nor a
    /// fixed offset. The API server refuses these in `spec.timeZone`, so a
    /// controller meets one only in an object stored before that check.
    #[error("invalid spec.timeZone {zone:?}: {detail}")]
    UnsupportedTimeZone {
        /// The zone as written.
        zone: String,
        /// What is wrong with it.
        detail: String,
    },
}
