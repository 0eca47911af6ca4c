//! Where lists and watches come from: a small trait over the calls the state
//! machine makes, implemented for a kube [`Client`] on one resource (and by
//! scripted fakes in the unit tests).
//!
//! Objects travel as `serde_json::Value`, not as typed structs, so the store
//! keeps the server's JSON exactly, unknown fields included.

use std::future::Future;

use futures::stream::BoxStream;
use futures::StreamExt;
use kube::api::{GetParams, ListParams, WatchParams};
use kube::core::{ApiResource, DynamicObject, ObjectList, Resource, WatchEvent};
use kube::Client;
use serde::Deserialize;
use serde_json::Value;

use super::object::ObjectRef;

/// A stream of watch events as decoded by kube.
pub type EventStream = BoxStream<'static, Result<WatchEvent<Value>, kube::Error>>;

/// The kind of a metadata list, when the server honoured the request.
pub const METADATA_LIST_KIND: &str = "PartialObjectMetadataList";

/// One page of a metadata-only LIST: what `kube::Api::list_metadata` asks
/// for (`Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`),
/// read down to what a relist compares.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MetadataList {
    /// `PartialObjectMetadataList` when the server honoured the request; a
    /// server that ignores the `as=` parameter answers with the resource's
    /// own list kind (and full objects).
    #[serde(default)]
    pub kind: String,
    /// The list's metadata.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The items.
    #[serde(default)]
    pub items: Vec<ListedMeta>,
}

/// A list's metadata: snapshot version and continue token.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ListMeta {
    /// The snapshot's resourceVersion.
    #[serde(rename = "resourceVersion", default)]
    pub resource_version: Option<String>,
    /// Continue token while more pages remain.
    #[serde(rename = "continue", default)]
    pub continue_: Option<String>,
}

/// What a relist compares of one listed object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ListedMeta {
    /// The object's metadata (the fields read; the rest is skipped).
    #[serde(default)]
    pub metadata: ItemMeta,
}

/// The fields of an object's metadata a relist reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ItemMeta {
    /// `metadata.name`.
    #[serde(default)]
    pub name: String,
    /// `metadata.namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `metadata.uid`.
    #[serde(default)]
    pub uid: Option<String>,
    /// `metadata.resourceVersion`.
    #[serde(rename = "resourceVersion", default)]
    pub resource_version: Option<String>,
}

/// The list, watch and get calls of one collection.
pub trait ListWatch: Send + Sync + 'static {
    /// One LIST request (one page).
    fn list(
        &self,
        params: &ListParams,
    ) -> impl Future<Output = Result<ObjectList<Value>, kube::Error>> + Send;
    /// One metadata-only LIST request (one page).
    fn list_metadata(
        &self,
        params: &ListParams,
    ) -> impl Future<Output = Result<MetadataList, kube::Error>> + Send;
    /// One object, at its latest version; `None` when it does not exist.
    fn get(
        &self,
        key: &ObjectRef,
    ) -> impl Future<Output = Result<Option<Value>, kube::Error>> + Send;
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
    resource: ApiResource,
    request: kube::core::Request,
}

impl ApiSource {
    /// The collection of `resource`, limited to `namespace` when given.
    pub fn new(client: Client, resource: &ApiResource, namespace: Option<&str>) -> Self {
        let url = DynamicObject::url_path(resource, namespace);
        ApiSource {
            client,
            resource: resource.clone(),
            request: kube::core::Request::new(url),
        }
    }

    /// The collection's URL path, for logs.
    pub fn url_path(&self) -> &str {
        &self.request.url_path
    }
}

/// Whether a client error is the server's 404.
fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

impl ListWatch for ApiSource {
    async fn list(&self, params: &ListParams) -> Result<ObjectList<Value>, kube::Error> {
        let req = self
            .request
            .list(params)
            .map_err(kube::Error::BuildRequest)?;
        self.client.request::<ObjectList<Value>>(req).await
    }

    async fn list_metadata(&self, params: &ListParams) -> Result<MetadataList, kube::Error> {
        let req = self
            .request
            .list_metadata(params)
            .map_err(kube::Error::BuildRequest)?;
        self.client.request::<MetadataList>(req).await
    }

    async fn get(&self, key: &ObjectRef) -> Result<Option<Value>, kube::Error> {
        // The collection may span namespaces; an object lives in its own.
        let url = DynamicObject::url_path(&self.resource, key.namespace.as_deref());
        let req = kube::core::Request::new(url)
            .get(&key.name, &GetParams::default())
            .map_err(kube::Error::BuildRequest)?;
        match self.client.request::<Value>(req).await {
            Ok(obj) => Ok(Some(obj)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(err),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_list_reads_only_what_a_relist_compares() {
        let page: MetadataList = serde_json::from_value(serde_json::json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "12", "continue": "t"},
            "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                    "labels": {"x": "y"}, "managedFields": [{}]}}],
        }))
        .unwrap();
        assert_eq!(page.kind, METADATA_LIST_KIND);
        assert_eq!(page.metadata.resource_version.as_deref(), Some("12"));
        assert_eq!(page.metadata.continue_.as_deref(), Some("t"));
        assert_eq!(
            page.items[0].metadata,
            ItemMeta {
                name: "a".into(),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                resource_version: Some("7".into()),
            }
        );
        // A server that ignored `as=`: full objects, its own list kind.
        let full: MetadataList = serde_json::from_value(serde_json::json!({
            "kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "3"},
            "items": [{"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "2"}, "spec": {"containers": []}}],
        }))
        .unwrap();
        assert_ne!(full.kind, METADATA_LIST_KIND);
        assert_eq!(full.items.len(), 1);
    }
}
