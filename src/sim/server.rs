//! The HTTP front: axum routes for discovery, the resource paths of
//! LISTWATCH.md, and the `/sim/` control endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use serde_json::Value;
use tokio::sync::mpsc;

use super::filter::Filter;
use super::managed_fields::FieldManager;
use super::object::Stored;
use super::params::ListParams;
use super::representation::{negotiate, Representation};
use super::resources::{self, ResourceDef, ResourceId, RESOURCES};
use super::state::prepare_replace;
use super::status::ApiError;
use super::table;
use super::{list, openapi, protobuf, watch, Counters, Fault, Shared};

/// Largest request body accepted, as the real server's 3 MiB limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

type Shr = AxState<Arc<Shared>>;

/// Serves until the simulator shuts down.
pub(crate) async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    let stop = shared.shutdown.clone();
    let app = Router::new()
        .route("/version", get(version))
        .route("/api", get(core_versions))
        .route("/api/v1", get(core_resources))
        .route("/apis", get(groups))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/{*gv}", get(openapi_gv))
        .route("/sim/stats", get(stats))
        .route("/sim/faults", post(faults))
        .route("/sim/compact", post(compact))
        .route("/sim/clock", get(clock).post(advance_clock))
        .fallback(resource)
        .with_state(shared);
    let served = axum::serve(without_nagle(listener), app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "simulator server stopped");
    }
}

/// `listener` with TCP_NODELAY set on every connection it accepts, as Go's
/// net/http (and so kube-apiserver) sets it. Without it, a watch event whose
/// last segment Nagle's algorithm holds back waits for the client's delayed
/// ACK: 40 ms on Linux, every few hundred events.
fn without_nagle(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    })
}

fn json_response(shared: &Shared, code: StatusCode, body: Vec<u8>) -> Response {
    Counters::add(&shared.counters.bytes_sent, body.len() as u64);
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn value_response(shared: &Shared, code: StatusCode, v: &Value) -> Response {
    json_response(shared, code, v.to_string().into_bytes())
}

fn error_response(shared: &Shared, err: &ApiError) -> Response {
    let code = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = value_response(shared, code, &err.to_status());
    if let Some(secs) = err.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

async fn version(AxState(s): Shr) -> Response {
    value_response(&s, StatusCode::OK, &resources::version())
}

async fn core_versions(AxState(s): Shr) -> Response {
    value_response(&s, StatusCode::OK, &resources::core_versions())
}

async fn core_resources(AxState(s): Shr) -> Response {
    match resources::resource_list("", "v1") {
        Some(v) => value_response(&s, StatusCode::OK, &v),
        None => error_response(&s, &not_found_path()),
    }
}

async fn groups(AxState(s): Shr) -> Response {
    value_response(&s, StatusCode::OK, &resources::group_list())
}

async fn group_resources(AxState(s): Shr, Path((g, v)): Path<(String, String)>) -> Response {
    match resources::resource_list(&g, &v) {
        Some(doc) => value_response(&s, StatusCode::OK, &doc),
        None => error_response(&s, &not_found_path()),
    }
}

async fn openapi_index(AxState(s): Shr) -> Response {
    value_response(&s, StatusCode::OK, &openapi::index())
}

async fn openapi_gv(AxState(s): Shr, Path(gv): Path<String>) -> Response {
    match openapi::group_version(&gv) {
        Some(doc) => value_response(&s, StatusCode::OK, &doc),
        None => error_response(&s, &not_found_path()),
    }
}

async fn stats(AxState(s): Shr) -> Response {
    let v = serde_json::to_value(s.stats()).unwrap_or(Value::Null);
    value_response(&s, StatusCode::OK, &v)
}

async fn faults(AxState(s): Shr, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(f) => {
            s.inject(f.clone());
            value_response(&s, StatusCode::OK, &serde_json::json!({"injected": f}))
        }
        Err(e) => error_response(&s, &ApiError::bad_request(format!("invalid fault: {e}"))),
    }
}

async fn compact(AxState(s): Shr, Query(q): Query<HashMap<String, String>>) -> Response {
    let target = match q.get("resourceVersion").or_else(|| q.get("rv")) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error_response(
                    &s,
                    &ApiError::bad_request(format!("invalid resourceVersion {v:?}")),
                )
            }
        },
    };
    let compacted = s.write(|st| {
        let rv = st.rv();
        st.compact_to(target.unwrap_or(rv));
        st.compacted()
    });
    value_response(
        &s,
        StatusCode::OK,
        &serde_json::json!({"compactedRV": compacted}),
    )
}

async fn clock(AxState(s): Shr) -> Response {
    let v = serde_json::json!({"clockSecs": s.clock.now().as_secs_f64(), "resourceVersion": s.read().rv().to_string()});
    value_response(&s, StatusCode::OK, &v)
}

/// `POST /sim/clock?advance=SECONDS[&writesPerSecond=R]`: moves the clock
/// forward, with R pod writes a second generated for the skipped time.
async fn advance_clock(AxState(s): Shr, Query(q): Query<HashMap<String, String>>) -> Response {
    let number = |name: &str, required: bool| -> Result<f64, ApiError> {
        match q.get(name) {
            None if !required => Ok(0.0),
            None => Err(ApiError::bad_request(format!("{name} is required"))),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid {name} {v:?}: must be a non-negative number"
                    ))
                }),
        }
    };
    let parsed = number("advance", true).and_then(|secs| {
        let rate = number("writesPerSecond", false)?;
        Duration::try_from_secs_f64(secs)
            .map(|d| (d, rate))
            .map_err(|_| ApiError::bad_request(format!("advance {secs} is out of range")))
    });
    let (by, rate) = match parsed {
        Ok(p) => p,
        Err(e) => return error_response(&s, &e),
    };
    let shared = s.clone();
    let writes =
        match tokio::task::spawn_blocking(move || super::load::advance(&shared, by, rate)).await {
            Ok(n) => n,
            Err(e) => {
                return error_response(
                    &s,
                    &ApiError::new(
                        500,
                        "InternalError",
                        format!("advancing the clock failed: {e}"),
                    ),
                )
            }
        };
    let v = serde_json::json!({
        "clockSecs": s.clock.now().as_secs_f64(),
        "writes": writes,
        "resourceVersion": s.read().rv().to_string(),
    });
    value_response(&s, StatusCode::OK, &v)
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// A resource path, split into what it names.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    r: ResourceId,
    namespace: Option<String>,
    name: Option<String>,
}

/// `/api/v1/...` or `/apis/{g}/{v}/...` into resource, namespace and name.
fn route(path: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found_path()),
    };
    let find = |plural: &str| resources::find(group, version, plural).ok_or_else(not_found_path);
    let target = |r: ResourceId, namespace: Option<&str>, name: Option<&str>| {
        let res = &RESOURCES[r];
        if namespace.is_some() && !res.namespaced {
            return Err(not_found_path());
        }
        if namespace.is_none() && name.is_some() && res.namespaced {
            return Err(not_found_path());
        }
        Ok(Target {
            r,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
        })
    };
    match rest {
        ["namespaces", ns, plural] => target(find(plural)?, Some(ns), None),
        ["namespaces", ns, plural, name] => target(find(plural)?, Some(ns), Some(name)),
        [plural] => target(find(plural)?, None, None),
        [plural, name] => target(find(plural)?, None, Some(name)),
        _ => Err(not_found_path()),
    }
}

/// Every resource request: faults first, then the verb.
async fn resource(AxState(s): Shr, req: Request) -> Response {
    let target = match route(req.uri().path()) {
        Ok(t) => t,
        Err(e) => return error_response(&s, &e),
    };
    let query: HashMap<String, String> = match Query::try_from_uri(req.uri()) {
        Ok(Query(q)) => q,
        Err(e) => return error_response(&s, &ApiError::bad_request(format!("bad query: {e}"))),
    };
    let is_watch = query.get("watch").is_some_and(|w| {
        !matches!(
            w.as_str(),
            "" | "0" | "false" | "False" | "FALSE" | "f" | "F"
        )
    });
    let c = &s.counters;
    match (req.method(), &target.name) {
        (&Method::GET, None) if is_watch => Counters::add(&c.watch_requests, 1),
        (&Method::GET, None) => Counters::add(&c.list_requests, 1),
        (&Method::GET, Some(_)) => Counters::add(&c.get_requests, 1),
        _ => Counters::add(&c.write_requests, 1),
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let include_object = query.get("includeObject").map(String::as_str);
    let representation = match negotiate(accept, s.config.metadata, include_object) {
        Ok(r) => r,
        Err(e) => return error_response(&s, &e),
    };
    let injected = s.faults().take_status();
    if let Some(err) = injected {
        Counters::add(&c.faults_served, 1);
        tracing::debug!(code = err.code, "serving an injected fault");
        return error_response(&s, &err);
    }
    let to = representation;
    let is_write = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    let who = if is_write {
        let agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match FieldManager::of_request(query.get("fieldManager").map(String::as_str), agent) {
            Ok(w) => w,
            Err(e) => return error_response(&s, &e),
        }
    } else {
        FieldManager::new("")
    };
    let result = match (req.method().clone(), target.name.clone()) {
        (Method::GET, None) => collection_get(&s, &target, &query, to).await,
        (Method::GET, Some(name)) => object_get(&s, &target, &name, to),
        (Method::POST, None) => match body_json(req, &RESOURCES[target.r]).await {
            Ok(v) => create(&s, &target, &who, v, to),
            Err(e) => Err(e),
        },
        (Method::PUT, Some(name)) => match body_json(req, &RESOURCES[target.r]).await {
            Ok(v) => replace(&s, &target, &name, &who, v, to),
            Err(e) => Err(e),
        },
        (Method::PATCH, Some(name)) => patch(&s, &target, &name, &who, req, to).await,
        (Method::DELETE, Some(name)) => delete(&s, &target, &name, to),
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    };
    match result {
        Ok(resp) => resp,
        Err(e) => error_response(&s, &e),
    }
}

async fn collection_get(
    s: &Arc<Shared>,
    t: &Target,
    query: &HashMap<String, String>,
    to: Representation,
) -> Result<Response, ApiError> {
    let p = ListParams::parse(query)?;
    let res = &RESOURCES[t.r];
    let filter = Filter::parse(
        res,
        t.namespace.clone(),
        p.label_selector.as_deref(),
        p.field_selector.as_deref(),
    )?;
    if p.watch {
        let plan = watch::plan(s, t.r, filter, &p, to.for_watch()).await?;
        let (tx, rx) = mpsc::channel::<watch::Chunk>(16);
        tokio::spawn(watch::run(s.clone(), plan, tx));
        let mut resp = Response::new(Body::from_stream(watch::WatchBody::new(rx)));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(resp);
    }
    let to = to.for_list(&format!("{}List", res.kind))?;
    let doc = list::list(s, t.r, &filter, &p, to).await?;
    Ok(json_response(s, StatusCode::OK, doc))
}

fn object_get(
    s: &Shared,
    t: &Target,
    name: &str,
    to: Representation,
) -> Result<Response, ApiError> {
    let res = &RESOURCES[t.r];
    let obj = s
        .read()
        .get(t.r, &res.key(t.namespace.as_deref(), name))
        .ok_or_else(|| ApiError::not_found(res.plural, name))?;
    stored_response(s, StatusCode::OK, t.r, &obj, to)
}

/// One object in the representation asked for. A write is done by then: as
/// on a real server, a representation that cannot be given fails only the
/// response.
fn stored_response(
    s: &Shared,
    code: StatusCode,
    r: ResourceId,
    obj: &Stored,
    to: Representation,
) -> Result<Response, ApiError> {
    let res = &RESOURCES[r];
    let to = to.for_object(res.kind)?;
    let mut out = Vec::with_capacity(obj.body.len() + 64);
    match to {
        Representation::Table(request) => {
            let now = s.clock.wall_now();
            table::write_object(res, &obj.full(res), &request, true, now, &mut out);
        }
        to => obj.write_as(res, to, &mut out),
    }
    Ok(json_response(s, code, out))
}

/// Media types a create or update body of a built-in type may have: JSON,
/// and protobuf (turned into the same JSON by [`protobuf`]); no YAML. An
/// absent Content-Type means JSON, as kube-apiserver's
/// `NegotiateInputSerializer` takes its first type.
const BODY_TYPES: &[&str] = &["application/json", protobuf::MEDIA_TYPE];

/// The media types of a custom resource's bodies: JSON only, as for a CRD
/// (which has no protobuf messages).
const CUSTOM_BODY_TYPES: &[&str] = &["application/json"];

/// Reads a create or update body as JSON, enforcing the media type (415),
/// the size limit (413) and syntax (400).
async fn body_json(req: Request, res: &'static ResourceDef) -> Result<Value, ApiError> {
    let ct = content_type(req.headers());
    let accepted = if protobuf::accepts(res) {
        BODY_TYPES
    } else {
        CUSTOM_BODY_TYPES
    };
    if !ct.is_empty() && !accepted.contains(&ct.as_str()) {
        return Err(ApiError::unsupported_media_type(accepted));
    }
    let bytes = body_bytes(req).await?;
    if ct == protobuf::MEDIA_TYPE {
        // The first protobuf body compiles the descriptors (about 0.2 s of
        // CPU): off the async workers, which serve every watch meanwhile.
        return tokio::task::spawn_blocking(move || protobuf::to_json(res, &bytes))
            .await
            .map_err(|e| ApiError::new(500, "InternalError", format!("protobuf decoder: {e}")))?
            .map_err(ApiError::from);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
    })
}

async fn body_bytes(req: Request) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())
}

fn create(
    s: &Shared,
    t: &Target,
    who: &FieldManager,
    v: Value,
    to: Representation,
) -> Result<Response, ApiError> {
    if RESOURCES[t.r].namespaced && t.namespace.is_none() {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ));
    }
    let ev = s.write_as(who, |st| st.create_now(t.r, t.namespace.as_deref(), v))?;
    stored_response(s, StatusCode::CREATED, t.r, &ev.object, to)
}

fn replace(
    s: &Shared,
    t: &Target,
    name: &str,
    who: &FieldManager,
    v: Value,
    to: Representation,
) -> Result<Response, ApiError> {
    let res = &RESOURCES[t.r];
    let key = res.key(t.namespace.as_deref(), name);
    let stored = s.write_as(who, |st| {
        st.replace(t.r, t.namespace.as_deref(), name, v)
            .map(|ev| ev.map(|e| e.object.clone()).or_else(|| st.get(t.r, &key)))
    })?;
    let stored = stored.ok_or_else(|| ApiError::not_found(res.plural, name))?;
    stored_response(s, StatusCode::OK, t.r, &stored, to)
}

/// Applies `apply` to the current object and replaces it with the result
/// (one write, or none if nothing changed). The JSON work runs outside the
/// lock against a snapshot of the object; the commit retries if another
/// write got there first, as a real server's update loop does.
pub(crate) fn patch_in(
    shared: &Shared,
    r: ResourceId,
    namespace: Option<&str>,
    name: &str,
    who: &FieldManager,
    apply: impl Fn(&mut Value) -> Result<(), ApiError>,
) -> Result<Arc<Stored>, ApiError> {
    let res = &RESOURCES[r];
    let key = res.key(namespace, name);
    loop {
        let current = shared
            .read()
            .get(r, &key)
            .ok_or_else(|| ApiError::not_found(res.plural, name))?;
        let old = current.item();
        let mut v = old.clone();
        apply(&mut v)?;
        let ns = current.namespace.clone();
        let time = shared.clock.timestamp();
        let Some(prepared) =
            prepare_replace(r, ns.as_deref(), name, v, &current, &old, Some(who), &time)?
        else {
            return Ok(current);
        };
        let committed = shared.write(|st| {
            let still = st
                .get(r, &key)
                .is_some_and(|now| Arc::ptr_eq(&now, &current));
            still.then(|| {
                st.commit_replace(r, prepared, current.clone())
                    .object
                    .clone()
            })
        });
        if let Some(stored) = committed {
            return Ok(stored);
        }
    }
}

/// Patch types served (kube-apiserver's list, less server-side apply).
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

async fn patch(
    s: &Shared,
    t: &Target,
    name: &str,
    who: &FieldManager,
    req: Request,
    to: Representation,
) -> Result<Response, ApiError> {
    let content_type = content_type(req.headers());
    let res = &RESOURCES[t.r];
    // A custom resource has no patch strategies: strategic merge is 415,
    // with the types it does take (as kube-apiserver answers for CRDs).
    let accepted = if res.is_custom() {
        &PATCH_TYPES[..2]
    } else {
        PATCH_TYPES
    };
    enum Kind {
        Merge,
        Strategic,
        Json,
    }
    let kind = match (content_type.as_str(), res.is_custom()) {
        ("application/merge-patch+json", _) => Kind::Merge,
        ("application/json-patch+json", _) => Kind::Json,
        ("application/strategic-merge-patch+json", false) => Kind::Strategic,
        _ => return Err(ApiError::unsupported_media_type(accepted)),
    };
    let bytes = body_bytes(req).await?;
    let patch: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
    })?;
    let stored = match kind {
        Kind::Merge => patch_in(s, t.r, t.namespace.as_deref(), name, who, |v| {
            json_patch::merge(v, &patch);
            Ok(())
        })?,
        Kind::Strategic => {
            let schema = super::schema::Schema::of(res);
            patch_in(s, t.r, t.namespace.as_deref(), name, who, |v| {
                super::strategic::apply(v, &patch, &schema)
            })?
        }
        Kind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            patch_in(s, t.r, t.namespace.as_deref(), name, who, |v| {
                json_patch::patch(v, &ops).map_err(|e| {
                    ApiError::invalid(format!("the JSON patch could not be applied: {e}"))
                })
            })?
        }
    };
    stored_response(s, StatusCode::OK, t.r, &stored, to)
}

fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn delete(s: &Shared, t: &Target, name: &str, to: Representation) -> Result<Response, ApiError> {
    let ev = s.write(|st| st.delete(t.r, t.namespace.as_deref(), name))?;
    stored_response(s, StatusCode::OK, t.r, &ev.object, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_do_not_wait_on_nagle() {
        use axum::serve::Listener;
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut listener = without_nagle(tcp);
        let client = tokio::net::TcpStream::connect(addr);
        let ((accepted, _), client) = tokio::join!(listener.accept(), client);
        client.unwrap();
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY is not set");
    }

    #[test]
    fn routes_resource_paths() {
        let pods = resources::by_plural("pods").unwrap();
        let nodes = resources::by_plural("nodes").unwrap();
        let ns = resources::by_plural("namespaces").unwrap();
        let widgets = resources::by_plural("widgets").unwrap();
        let t = |r, ns: Option<&str>, name: Option<&str>| Target {
            r,
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
        };
        assert_eq!(route("/api/v1/pods").unwrap(), t(pods, None, None));
        assert_eq!(
            route("/api/v1/namespaces/a/pods").unwrap(),
            t(pods, Some("a"), None)
        );
        assert_eq!(
            route("/api/v1/namespaces/a/pods/p").unwrap(),
            t(pods, Some("a"), Some("p"))
        );
        assert_eq!(
            route("/api/v1/nodes/n1").unwrap(),
            t(nodes, None, Some("n1"))
        );
        assert_eq!(
            route("/api/v1/namespaces/a").unwrap(),
            t(ns, None, Some("a"))
        );
        assert_eq!(
            route(&format!(
                "/apis/{}/v1/namespaces/x/widgets",
                resources::CUSTOM_GROUP
            ))
            .unwrap(),
            t(widgets, Some("x"), None)
        );
        for bad in [
            "/api/v1/pods/p",
            "/api/v1/namespaces/a/nodes",
            "/api/v1/bogus",
            "/api/v2/pods",
            "/apis/other/v1/widgets",
            "/api/v1/namespaces/a/pods/p/status",
            "/nope",
        ] {
            assert_eq!(route(bad).unwrap_err().code, 404, "{bad}");
        }
    }
}
