//! Injected faults waiting for the requests they will hit.
//!
//! Status faults answer the next resource requests (list, watch, get and
//! writes; discovery and `/sim/` are never hit, so a test can always reach
//! the control endpoints). Stream faults shape the next watch stream.

use std::collections::VecDeque;
use std::time::Duration;

use super::status::ApiError;
use super::Fault;

/// How the next watch stream misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFault {
    /// Cut the connection after this many lines.
    CutAfter(usize),
    /// Cut the connection in the middle of the first line.
    CutMidLine,
    /// Send nothing for this long, then carry on.
    Stall(Duration),
    /// Send a line that is not JSON first.
    MalformedLine,
    /// Send an event of an unknown type first.
    UnknownEventType,
}

/// Faults not yet served.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    statuses: VecDeque<(u16, usize, Option<u64>)>,
    streams: VecDeque<StreamFault>,
}

impl Faults {
    /// Queues a fault. A forced compaction is not queued: the caller runs
    /// it at once.
    pub fn push(&mut self, fault: Fault) {
        match fault {
            Fault::Status {
                code,
                count,
                retry_after,
            } => {
                if count > 0 {
                    self.statuses.push_back((code, count, retry_after));
                }
            }
            Fault::CutAfter(n) => self.streams.push_back(StreamFault::CutAfter(n)),
            Fault::CutMidLine => self.streams.push_back(StreamFault::CutMidLine),
            Fault::Stall(d) => self.streams.push_back(StreamFault::Stall(d)),
            Fault::MalformedLine => self.streams.push_back(StreamFault::MalformedLine),
            Fault::UnknownEventType => self.streams.push_back(StreamFault::UnknownEventType),
            Fault::Compact => {}
        }
    }

    /// The status the next resource request gets instead of its answer.
    pub fn take_status(&mut self) -> Option<ApiError> {
        let (code, left, retry_after) = self.statuses.front_mut()?;
        let code = *code;
        let retry_after = *retry_after;
        *left -= 1;
        if *left == 0 {
            self.statuses.pop_front();
        }
        let (reason, message) = match code {
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            500 => (
                "InternalError",
                "an error on the server (injected fault) has prevented the request from succeeding",
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request (injected fault)",
            ),
            401 => ("Unauthorized", "Unauthorized"),
            403 => ("Forbidden", "forbidden (injected fault)"),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted (injected fault)",
            ),
            _ => ("InternalError", "injected fault"),
        };
        let mut err = ApiError::new(code, reason, message);
        // A throttled client is always told when to come back.
        err.retry_after = retry_after.or((code == 429).then_some(1));
        if let Some(secs) = err.retry_after {
            err.details = Some(serde_json::json!({"retryAfterSeconds": secs}));
        }
        Some(err)
    }

    /// The fault the next watch stream gets.
    pub fn take_stream(&mut self) -> Option<StreamFault> {
        self.streams.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_faults_count_down_in_order() {
        let mut f = Faults::default();
        f.push(Fault::Status {
            code: 429,
            count: 2,
            retry_after: Some(3),
        });
        f.push(Fault::Status {
            code: 500,
            count: 1,
            retry_after: None,
        });
        let a = f.take_status().unwrap();
        assert_eq!(
            (a.code, a.reason, a.retry_after),
            (429, "TooManyRequests", Some(3))
        );
        assert_eq!(f.take_status().unwrap().code, 429);
        let c = f.take_status().unwrap();
        assert_eq!((c.code, c.retry_after), (500, None));
        assert!(f.take_status().is_none());
        assert!(f.take_stream().is_none());
    }

    #[test]
    fn stream_faults_are_served_once_each() {
        let mut f = Faults::default();
        f.push(Fault::CutAfter(2));
        f.push(Fault::MalformedLine);
        f.push(Fault::Status {
            code: 429,
            count: 0,
            retry_after: None,
        });
        assert_eq!(f.take_stream(), Some(StreamFault::CutAfter(2)));
        assert_eq!(f.take_stream(), Some(StreamFault::MalformedLine));
        assert_eq!(f.take_stream(), None);
        assert!(f.take_status().is_none(), "a zero-count fault is no fault");
    }
}
