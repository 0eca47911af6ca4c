//! Kubernetes `Status` failures: the error type every request handler
//! returns, rendered as the JSON Status a real API server sends.

use serde_json::{json, Value};

/// A request that failed, as the API server reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Expired`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details`, when the server gives them.
    pub details: Option<Value>,
    /// `metadata.continue` of an Expired list (an inconsistent token).
    pub continue_token: Option<String>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A failure with no details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            continue_token: None,
            retry_after: None,
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 422 Invalid, for request options that fail validation.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "Invalid", message)
    }

    /// 404 NotFound for one object.
    pub fn not_found(plural: &str, name: &str) -> ApiError {
        ApiError {
            details: Some(json!({"name": name, "kind": plural})),
            ..ApiError::new(404, "NotFound", format!("{plural} \"{name}\" not found"))
        }
    }

    /// 409 AlreadyExists.
    pub fn already_exists(plural: &str, name: &str) -> ApiError {
        ApiError {
            details: Some(json!({"name": name, "kind": plural})),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!("{plural} \"{name}\" already exists"),
            )
        }
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(plural: &str, name: &str) -> ApiError {
        ApiError {
            details: Some(json!({"name": name, "kind": plural})),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
            )
        }
    }

    /// 415 for a body the server cannot decode, with the Status of
    /// k8s.io/apiserver/pkg/endpoints/handlers/negotiation/errors.go
    /// (`errUnsupportedMediaType`). client-go answers it by retrying in
    /// JSON when it had sent protobuf.
    pub fn unsupported_media_type(accepted: &[&str]) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 410 for a resourceVersion older than the compacted one.
    pub fn too_old(rv: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {rv} ({oldest})"),
        )
    }

    /// The Status object.
    pub fn to_status(&self) -> Value {
        let mut metadata = json!({});
        if let Some(c) = &self.continue_token {
            metadata["continue"] = json!(c);
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": metadata,
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_has_the_real_shape() {
        let s = ApiError::not_found("pods", "x").to_status();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "pods \"x\" not found");
        assert_eq!(s["details"]["name"], "x");
        let mut e = ApiError::too_old(5, 120);
        e.continue_token = Some("tok".into());
        let s = e.to_status();
        assert_eq!(s["message"], "too old resource version: 5 (120)");
        assert_eq!(s["metadata"]["continue"], "tok");
    }
}
