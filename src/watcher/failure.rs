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

/// Where a failure came from, as far as the client can tell. [`Failure`]
/// decides what the watcher does next; this is what a caller that gives up
/// names as the cause (see [`FailureHook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No usable answer: the connection could not be made or broke
    /// (refused, DNS, TLS, reset, a stream cut short).
    Connection,
    /// Something answered, but not as a Kubernetes API server does: HTML or
    /// other undecodable bodies, an HTTP error without a Status, a list
    /// without a resourceVersion.
    NotApi,
    /// The API server answered with an error Status (5xx, 403, 410...) or
    /// with an answer that does not fit the ones before it.
    Api,
    /// What the consumer holds could not be read (see [`super::Held`]).
    Held,
}

/// The reason kube-client gives the Status it makes up for an HTTP error
/// whose body is not a Status (`handle_api_errors`): a proxy's or a web
/// server's page, not the API server's word.
const MADE_UP_STATUS_REASON: &str = "Failed to parse error data";

impl Cause {
    /// The cause of a kube client error.
    pub fn of(err: &kube::Error) -> Cause {
        match err {
            kube::Error::Api(status) if status.reason == MADE_UP_STATUS_REASON => Cause::NotApi,
            kube::Error::Api(_) => Cause::Api,
            kube::Error::SerdeError(_)
            | kube::Error::FromUtf8(_)
            | kube::Error::LinesCodecMaxLineLengthExceeded => Cause::NotApi,
            // A watch stream's line that is not UTF-8.
            kube::Error::ReadEvents(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                Cause::NotApi
            }
            _ => Cause::Connection,
        }
    }
}

/// An error and its sources on one line (`a: b: c`), for what is logged and
/// reported: kube's connection errors say only `client error (Connect)`,
/// their sources say what happened (`Connection refused`). A source whose
/// text the line holds already (kube's errors often print their source
/// themselves) is left out.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = self.0.to_string();
        let mut source = self.0.source();
        while let Some(err) = source {
            let text = err.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = err.source();
        }
        f.write_str(&line)
    }
}

/// Told of every failure the watcher backs off from: its [`Cause`] and what
/// went wrong, as logged. Runs on the watcher's task, so it must be quick.
pub type FailureHook = std::sync::Arc<dyn Fn(Cause, &str) + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::StatusDetails;

    #[test]
    fn a_chain_names_every_source_once() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = kube::Error::ReadEvents(refused);
        assert_eq!(
            Chain(&err).to_string(),
            "Error reading events stream: connection refused"
        );
        let api = kube::Error::Api(status(503, "ServiceUnavailable").boxed());
        assert_eq!(Chain(&api).to_string(), api.to_string());
    }

    #[test]
    fn causes_tell_no_answer_from_a_foreign_answer_from_an_api_error() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            Cause::of(&kube::Error::ReadEvents(refused)),
            Cause::Connection
        );
        let html = serde_json::from_str::<u8>("<html>").unwrap_err();
        assert_eq!(Cause::of(&kube::Error::SerdeError(html)), Cause::NotApi);
        let binary = std::io::Error::from(std::io::ErrorKind::InvalidData);
        assert_eq!(Cause::of(&kube::Error::ReadEvents(binary)), Cause::NotApi);
        let page = Status::failure("<html>404</html>", MADE_UP_STATUS_REASON).with_code(404);
        assert_eq!(Cause::of(&kube::Error::Api(page.boxed())), Cause::NotApi);
        let api = status(503, "ServiceUnavailable");
        assert_eq!(Cause::of(&kube::Error::Api(api.boxed())), Cause::Api);
    }

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
