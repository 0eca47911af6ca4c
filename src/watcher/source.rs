//! Where lists and watches come from: a small trait over the two calls the
//! state machine makes, implemented for a kube [`Client`] on one resource
//! (and by scripted fakes in the unit tests).
//!
//! Objects travel as `serde_json::Value`, not as typed structs, so the store
//! keeps the server's JSON exactly, unknown fields included.

use std::future::Future;

use futures::stream::BoxStream;
use futures::StreamExt;
use kube::api::{ListParams, WatchParams};
use kube::core::{ApiResource, DynamicObject, ObjectList, Resource, WatchEvent};
use kube::Client;
use serde_json::Value;

/// A stream of watch events as decoded by kube.
pub type EventStream = BoxStream<'static, Result<WatchEvent<Value>, kube::Error>>;

/// The list and watch calls of one collection.
pub trait ListWatch: Send + Sync + 'static {
    /// One LIST request (one page).
    fn list(
        &self,
        params: &ListParams,
    ) -> impl Future<Output = Result<ObjectList<Value>, kube::Error>> + Send;
    /// One WATCH request from `rv` ("" for a streaming list from now).
    fn watch(
        &self,
        params: &WatchParams,
        rv: &str,
    ) -> impl Future<Output = Result<EventStream, kube::Error>> + Send;
}

/// A resource served by a Kubernetes API server (or the simulator).
#[derive(Clone)]
pub struct ApiSource {
    client: Client,
    request: kube::core::Request,
}

impl ApiSource {
    /// The collection of `resource`, limited to `namespace` when given.
    pub fn new(client: Client, resource: &ApiResource, namespace: Option<&str>) -> Self {
        let url = DynamicObject::url_path(resource, namespace);
        ApiSource {
            client,
            request: kube::core::Request::new(url),
        }
    }

    /// The collection's URL path, for logs.
    pub fn url_path(&self) -> &str {
        &self.request.url_path
    }
}

impl ListWatch for ApiSource {
    async fn list(&self, params: &ListParams) -> Result<ObjectList<Value>, kube::Error> {
        let req = self
            .request
            .list(params)
            .map_err(kube::Error::BuildRequest)?;
        self.client.request::<ObjectList<Value>>(req).await
    }

    async fn watch(&self, params: &WatchParams, rv: &str) -> Result<EventStream, kube::Error> {
        let req = self
            .request
            .watch(params, rv)
            .map_err(kube::Error::BuildRequest)?;
        let stream = self.client.request_events::<Value>(req).await?;
        Ok(stream.boxed())
    }
}
