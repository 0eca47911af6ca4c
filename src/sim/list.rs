//! LIST: choosing the snapshot a request is served from, pagination with
//! opaque continue tokens, and the List document.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::filter::Filter;
use super::object::Stored;
use super::params::{ListParams, RvMatch, RvParam};
use super::representation::{Representation, META_API_VERSION};
use super::resources::{ResourceId, RESOURCES};
use super::state::{PageQuery, State};
use super::status::ApiError;
use super::table::{self, TableMeta};
use super::Shared;

/// How long a request for a version the server has not reached yet waits
/// before giving up, as the real server's watch cache does.
pub(crate) const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// What a continue token carries, in the real server's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Token {
    /// Format marker.
    v: String,
    /// Snapshot version; 0 asks for the latest state (the inconsistent
    /// token an Expired answer offers).
    rv: u64,
    /// Continue after this key.
    start: String,
}

const TOKEN_VERSION: &str = "meta.k8s.io/v1";

fn encode_token(rv: u64, start: &str) -> String {
    let t = Token {
        v: TOKEN_VERSION.into(),
        rv,
        start: start.into(),
    };
    let json = serde_json::to_vec(&t).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE.encode(json)
}

fn decode_token(token: &str) -> Result<Token, ApiError> {
    let invalid = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| invalid())?;
    let t: Token = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    if t.v != TOKEN_VERSION {
        return Err(invalid());
    }
    Ok(t)
}

/// Waits until the server has reached `rv`; a version it never reaches in
/// time is the real server's 504 "Too large resource version".
pub(crate) async fn wait_for_rv(shared: &Shared, rv: u64) -> Result<(), ApiError> {
    let mut rx = shared.notify.subscribe();
    let reached = tokio::time::timeout(FRESHNESS_WAIT, rx.wait_for(|cur| *cur >= rv)).await;
    match reached {
        Ok(Ok(_)) => Ok(()),
        _ => {
            let current = shared.read().rv();
            let mut err = ApiError::new(
                504,
                "Timeout",
                format!("Too large resource version: {rv}, current: {current}"),
            );
            err.details = Some(serde_json::json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1,
            }));
            Err(err)
        }
    }
}

/// Where a list request starts.
struct Start {
    /// Snapshot version; `None` is the current state.
    at: Option<u64>,
    /// Continue after this key.
    after: Option<String>,
    /// Whether `limit` applies (a `resourceVersion=0` list is served whole,
    /// as from the real server's watch cache).
    paginate: bool,
}

async fn start_of(shared: &Shared, p: &ListParams) -> Result<Start, ApiError> {
    if let Some(token) = &p.continue_token {
        if let RvParam::At(_) = p.rv {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let t = decode_token(token)?;
        return Ok(Start {
            at: (t.rv != 0).then_some(t.rv),
            after: Some(t.start),
            paginate: true,
        });
    }
    match (p.rv, p.rv_match) {
        (RvParam::Unset, _) => Ok(Start {
            at: None,
            after: None,
            paginate: true,
        }),
        (RvParam::Any, _) => Ok(Start {
            at: None,
            after: None,
            paginate: false,
        }),
        (RvParam::At(n), m) => {
            // With a limit and no match, the legacy rule serves exactly n.
            let exact = m == Some(RvMatch::Exact) || (m.is_none() && p.limit.is_some());
            wait_for_rv(shared, n).await?;
            Ok(Start {
                at: exact.then_some(n),
                after: None,
                paginate: true,
            })
        }
    }
}

/// Serves one LIST request: the List document's bytes.
pub(crate) async fn list(
    shared: &Shared,
    r: ResourceId,
    filter: &Filter,
    p: &ListParams,
    to: Representation,
) -> Result<Vec<u8>, ApiError> {
    let start = start_of(shared, p).await?;
    if p.continue_token.is_none() && p.rv == RvParam::Unset {
        // A consistent read: the cacher asks etcd for progress and waits
        // until it has seen the current version (ConsistentListFromCache).
        shared.update(|st| st.notify_progress(r));
    }
    let limit = if start.paginate {
        Some(
            p.limit
                .unwrap_or(usize::MAX)
                .min(shared.config.page_size_max),
        )
    } else {
        None
    };
    let (at, page) = {
        let st = shared.read();
        let at = start.at.unwrap_or_else(|| st.rv());
        let page = page_at(&st, r, at, start.after.as_deref(), limit, filter, p)?;
        (at, page)
    };
    let res = &RESOURCES[r];
    let mut meta = serde_json::json!({"resourceVersion": at.to_string()});
    if let Some(after) = &page.next_after {
        meta["continue"] = encode_token(at, after).into();
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = n.into();
    }
    Ok(match to {
        Representation::Full => list_document(
            &format!("{}List", res.kind),
            &res.api_version(),
            &meta,
            &page.items,
            |item, out| out.extend_from_slice(&item.body),
        ),
        Representation::PartialObjectMetadata | Representation::PartialObjectMetadataList => {
            list_document(
                "PartialObjectMetadataList",
                META_API_VERSION,
                &meta,
                &page.items,
                |item, out| item.write_partial(out),
            )
        }
        Representation::Table(request) => {
            let objects: Vec<serde_json::Value> = page.items.iter().map(|i| i.full(res)).collect();
            let meta = TableMeta {
                resource_version: at.to_string(),
                continue_token: meta["continue"].as_str().map(str::to_string),
                remaining_item_count: page.remaining,
            };
            let now = shared.clock.wall_now();
            table::table(res, &objects, &meta, &request, true, now)
                .to_string()
                .into_bytes()
        }
    })
}

fn page_at(
    st: &State,
    r: ResourceId,
    at: u64,
    after: Option<&str>,
    limit: Option<usize>,
    filter: &Filter,
    p: &ListParams,
) -> Result<super::state::Page, ApiError> {
    let q = PageQuery {
        resource: r,
        at,
        after,
        limit,
        filter,
    };
    st.page(&q).map_err(|mut e| {
        if e.code == 410 && p.continue_token.is_some() {
            // The real server's wording, and a token that continues from
            // the latest state for clients that accept mixed snapshots.
            e.message = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into();
            e.continue_token = Some(encode_token(0, after.unwrap_or("")));
        }
        e
    })
}

/// Assembles a List from stored bytes without re-serializing them; `item`
/// writes one item.
fn list_document(
    kind: &str,
    api_version: &str,
    meta: &serde_json::Value,
    items: &[Arc<Stored>],
    item: impl Fn(&Stored, &mut Vec<u8>),
) -> Vec<u8> {
    let size: usize = items.iter().map(|i| i.body.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"apiVersion\":\"");
    out.extend_from_slice(api_version.as_bytes());
    out.extend_from_slice(b"\",\"metadata\":");
    out.extend_from_slice(meta.to_string().as_bytes());
    out.extend_from_slice(b",\"items\":[");
    for (i, stored) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(stored, &mut out);
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = encode_token(42, "ns/a");
        assert_eq!(
            decode_token(&t).unwrap(),
            Token {
                v: TOKEN_VERSION.into(),
                rv: 42,
                start: "ns/a".into()
            }
        );
        for bad in [
            "",
            "!!!",
            "bm90IGpzb24=",
            &base64::engine::general_purpose::URL_SAFE.encode(br#"{"v":"x","rv":1,"start":""}"#),
        ] {
            assert_eq!(decode_token(bad).unwrap_err().code, 400, "{bad}");
        }
    }

    #[test]
    fn empty_list_has_items_array() {
        let doc = list_document(
            "PodList",
            "v1",
            &serde_json::json!({"resourceVersion": "3"}),
            &[],
            |item, out| out.extend_from_slice(&item.body),
        );
        let v: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(v["items"], serde_json::json!([]));
        assert_eq!(v["kind"], "PodList");
    }
}
