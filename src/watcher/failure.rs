//! Classifying what went wrong on a list or watch, which decides the next
//! state: relist, re-watch at once, or back off.

use std::time::Duration;

use kube::core::Status;

/// What a failed request or a bad watch item means for the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 410: the resourceVersion (or continue token) is too old. Relist.
    /// Both an HTTP 410 and an ERROR event with code 410 end up here.
    Gone,
    /// 429: throttled; wait at least `retry_after` when the server says.
    Throttled {
        /// The server's Retry-After, from the Status details.
        retry_after: Option<Duration>,
    },
    /// A line of the watch stream could not be decoded (malformed JSON or
    /// an unknown event type). Nothing after the last good event was
    /// applied, so re-watching from the last good RV loses nothing.
    Malformed,
    /// The request was refused as invalid or as asking for a representation
    /// the server cannot give (400/406/422): for a streaming list or a
    /// metadata list, the server does not support it.
    Rejected,
    /// Anything else (5xx, 401/403, 404, connection errors): back off.
    Transient,
}

impl Failure {
    /// Classifies a kube client error.
    pub fn of(err: &kube::Error) -> Failure {
        match err {
            kube::Error::Api(status) => Failure::of_status(status),
            kube::Error::SerdeError(_)
            | kube::Error::FromUtf8(_)
            | kube::Error::LinesCodecMaxLineLengthExceeded => Failure::Malformed,
            _ => Failure::Transient,
        }
    }

    /// Classifies a Status, from an HTTP error or a watch ERROR event.
    pub fn of_status(status: &Status) -> Failure {
        match status.code {
            410 => Failure::Gone,
            // Some servers put the code only in the reason of an ERROR event.
            0 if status.reason == "Expired" || status.reason == "Gone" => Failure::Gone,
            429 => Failure::Throttled {
                retry_after: status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(u64::from(s))),
            },
            400 | 406 | 422 => Failure::Rejected,
            _ => Failure::Transient,
        }
    }

    /// The Retry-After the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::StatusDetails;

    fn status(code: u16, reason: &str) -> Status {
        Status::failure("x", reason).with_code(code)
    }

    #[test]
    fn http_410_and_error_event_410_are_both_gone() {
        assert_eq!(
            Failure::of(&kube::Error::Api(status(410, "Expired").boxed())),
            Failure::Gone
        );
        assert_eq!(Failure::of_status(&status(410, "Gone")), Failure::Gone);
        assert_eq!(Failure::of_status(&status(0, "Expired")), Failure::Gone);
    }

    #[test]
    fn throttling_carries_retry_after() {
        let mut s = status(429, "TooManyRequests");
        assert_eq!(
            Failure::of_status(&s),
            Failure::Throttled { retry_after: None }
        );
        s.details = Some(
            serde_json::from_value::<StatusDetails>(serde_json::json!({"retryAfterSeconds": 2}))
                .unwrap(),
        );
        assert_eq!(
            Failure::of_status(&s).retry_after(),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn server_trouble_connection_and_bad_lines() {
        assert_eq!(
            Failure::of_status(&status(500, "InternalError")),
            Failure::Transient
        );
        assert_eq!(
            Failure::of_status(&status(503, "ServiceUnavailable")),
            Failure::Transient
        );
        assert_eq!(
            Failure::of_status(&status(403, "Forbidden")),
            Failure::Transient
        );
        assert_eq!(
            Failure::of_status(&status(400, "BadRequest")),
            Failure::Rejected
        );
        assert_eq!(
            Failure::of_status(&status(406, "NotAcceptable")),
            Failure::Rejected
        );
        let io = kube::Error::ReadEvents(std::io::Error::other("reset"));
        assert_eq!(Failure::of(&io), Failure::Transient);
        let serde = serde_json::from_str::<u8>("nope").unwrap_err();
        assert_eq!(
            Failure::of(&kube::Error::SerdeError(serde)),
            Failure::Malformed
        );
    }
}
