//! The query parameters of list and watch requests, parsed and validated
//! the way apimachinery does (bad values are 400, contradictory options 422).

use std::collections::HashMap;

use super::status::ApiError;

/// `resourceVersionMatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RvMatch {
    /// At least as new as the given version.
    NotOlderThan,
    /// Exactly the given version.
    Exact,
}

/// A parsed `resourceVersion` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RvParam {
    /// Absent or empty: the most recent state.
    Unset,
    /// `"0"`: any state.
    Any,
    /// A specific version.
    At(u64),
}

/// Query parameters of a collection GET.
#[derive(Debug, Clone)]
pub(crate) struct ListParams {
    /// `watch`.
    pub watch: bool,
    /// `resourceVersion`.
    pub rv: RvParam,
    /// `resourceVersionMatch`.
    pub rv_match: Option<RvMatch>,
    /// `limit` (absent or non-positive: no limit).
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
}

/// Go's `strconv.ParseBool`, which the API server uses for query flags.
fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid value {v:?} for {name}: expected a boolean"
        ))),
    }
}

/// Parses a resourceVersion; anything but a non-negative integer is a 400.
pub(crate) fn parse_rv(v: &str) -> Result<RvParam, ApiError> {
    match v {
        "" => Ok(RvParam::Unset),
        "0" => Ok(RvParam::Any),
        _ => v.parse::<u64>().map(RvParam::At).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resource version {v:?}: must be a non-negative integer"
            ))
        }),
    }
}

impl ListParams {
    /// Parses and validates the query.
    pub fn parse(q: &HashMap<String, String>) -> Result<ListParams, ApiError> {
        let get = |k: &str| q.get(k).map(String::as_str);
        let watch = get("watch")
            .map(|v| parse_bool("watch", v))
            .transpose()?
            .unwrap_or(false);
        let rv = parse_rv(get("resourceVersion").unwrap_or(""))?;
        let rv_match = match get("resourceVersionMatch").unwrap_or("") {
            "" => None,
            "NotOlderThan" => Some(RvMatch::NotOlderThan),
            "Exact" => Some(RvMatch::Exact),
            other => {
                return Err(ApiError::invalid(format!(
                    "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                )))
            }
        };
        let limit = match get("limit") {
            None | Some("") => None,
            Some(v) => {
                let n: i64 = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid limit {v:?}: must be an integer"))
                })?;
                (n > 0).then_some(n as usize)
            }
        };
        let timeout_seconds = match get("timeoutSeconds") {
            None | Some("") => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid timeoutSeconds {v:?}: must be a non-negative integer"
                ))
            })?),
        };
        let bookmarks = get("allowWatchBookmarks")
            .map(|v| parse_bool("allowWatchBookmarks", v))
            .transpose()?
            .unwrap_or(false);
        let send_initial_events = get("sendInitialEvents")
            .map(|v| parse_bool("sendInitialEvents", v))
            .transpose()?;
        let p = ListParams {
            watch,
            rv,
            rv_match,
            limit,
            continue_token: get("continue")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            label_selector: get("labelSelector").map(str::to_string),
            field_selector: get("fieldSelector").map(str::to_string),
            timeout_seconds,
            bookmarks,
            send_initial_events,
        };
        p.validate()?;
        Ok(p)
    }

    /// The cross-field rules of apimachinery's `ValidateListOptions`.
    fn validate(&self) -> Result<(), ApiError> {
        if self.send_initial_events.is_some() {
            if !self.watch {
                return Err(ApiError::invalid(
                    "sendInitialEvents: Forbidden: sendInitialEvents is allowed for watch requests only",
                ));
            }
            if self.rv_match != Some(RvMatch::NotOlderThan) {
                return Err(ApiError::invalid(
                    "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !self.bookmarks && self.send_initial_events == Some(true) {
                return Err(ApiError::invalid(
                    "allowWatchBookmarks: Forbidden: sendInitialEvents requires allowWatchBookmarks=true",
                ));
            }
            return Ok(());
        }
        if let Some(m) = self.rv_match {
            if self.watch {
                return Err(ApiError::invalid(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if self.rv == RvParam::Unset {
                return Err(ApiError::invalid(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if self.continue_token.is_some() {
                return Err(ApiError::invalid(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if m == RvMatch::Exact && self.rv == RvParam::Any {
                return Err(ApiError::invalid(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_usual_watch() {
        let p = ListParams::parse(&q(&[
            ("watch", "1"),
            ("resourceVersion", "42"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", "290"),
        ]))
        .unwrap();
        assert!(p.watch && p.bookmarks);
        assert_eq!(p.rv, RvParam::At(42));
        assert_eq!(p.timeout_seconds, Some(290));
    }

    #[test]
    fn bad_values_are_400_and_contradictions_422() {
        for (pairs, code) in [
            (vec![("resourceVersion", "abc")], 400),
            (vec![("resourceVersion", "-1")], 400),
            (vec![("limit", "x")], 400),
            (vec![("watch", "maybe")], 400),
            (vec![("timeoutSeconds", "-3")], 400),
            (vec![("resourceVersionMatch", "Exact")], 422),
            (
                vec![
                    ("resourceVersionMatch", "Sometimes"),
                    ("resourceVersion", "1"),
                ],
                422,
            ),
            (
                vec![("resourceVersionMatch", "Exact"), ("resourceVersion", "0")],
                422,
            ),
            (vec![("sendInitialEvents", "true")], 422),
            (
                vec![
                    ("watch", "1"),
                    ("sendInitialEvents", "true"),
                    ("resourceVersionMatch", "NotOlderThan"),
                ],
                422,
            ),
            (
                vec![
                    ("watch", "1"),
                    ("resourceVersionMatch", "NotOlderThan"),
                    ("resourceVersion", "3"),
                ],
                422,
            ),
        ] {
            let err = ListParams::parse(&q(&pairs)).expect_err(&format!("{pairs:?}"));
            assert_eq!(err.code, code, "{pairs:?}: {err}");
        }
        assert_eq!(
            ListParams::parse(&q(&[("limit", "0")])).unwrap().limit,
            None
        );
    }
}
