//! Which representation of a resource a request asks for with its Accept
//! header, negotiated as kube-apiserver does
//! (apiserver/pkg/endpoints/handlers/negotiation and handlers/response.go):
//! the clauses are tried by quality, the first one the server can serve
//! wins, and a header none of whose clauses can be served is a 406.
//!
//! A clause may ask for a conversion with `as=Kind;g=group;v=version`.
//! Served here: `PartialObjectMetadata` and `PartialObjectMetadataList` of
//! `meta.k8s.io/v1` (objects reduced to their `metadata`), unless the
//! simulator is configured not to ([`MetadataServing`]), and `Table` of
//! `meta.k8s.io/v1` or `v1beta1` (what kubectl get asks for; see table.rs).

use super::status::ApiError;
use super::table::{IncludeObject, TableRequest};

/// The group and version of the conversions served.
pub(crate) const META_API_VERSION: &str = "meta.k8s.io/v1";

/// What a response holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Representation {
    /// The resource's own JSON.
    Full,
    /// `as=PartialObjectMetadata`: one object's `metadata`, as kind
    /// `PartialObjectMetadata`.
    PartialObjectMetadata,
    /// `as=PartialObjectMetadataList`: a list whose items are
    /// `PartialObjectMetadata`.
    PartialObjectMetadataList,
    /// `as=Table`: rows of printed columns, for lists, objects and watch
    /// events alike.
    Table(TableRequest),
}

impl Representation {
    /// The representation of a list response, or the server's 406 when the
    /// request asked for a single object's (`handlers/response.go`:
    /// `asPartialObjectMetadata` refuses a list).
    pub fn for_list(self, list_kind: &str) -> Result<Representation, ApiError> {
        match self {
            Representation::PartialObjectMetadata => Err(not_acceptable(format!(
                "you requested PartialObjectMetadata, but the requested object is a list ({list_kind})"
            ))),
            other => Ok(other),
        }
    }

    /// The representation of a single-object response, or the server's 406
    /// when the request asked for a list's.
    pub fn for_object(self, kind: &str) -> Result<Representation, ApiError> {
        match self {
            Representation::PartialObjectMetadataList => Err(not_acceptable(format!(
                "you requested PartialObjectMetadataList, but the requested object is not a list ({kind})"
            ))),
            other => Ok(other),
        }
    }

    /// The representation of a watch's objects. A conversion that fails on
    /// an event's object is logged by the real server, which then sends the
    /// object as is (`watchEmbeddedEncoder.doEncode`).
    pub fn for_watch(self) -> Representation {
        match self {
            Representation::PartialObjectMetadataList => Representation::Full,
            other => other,
        }
    }
}

/// How the simulator answers a request for a metadata-only representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataServing {
    /// As kube-apiserver does: `PartialObjectMetadata(List)` on request.
    #[default]
    Served,
    /// As a server that cannot convert: such clauses are not acceptable, so
    /// a request listing no other is a 406.
    Refused,
    /// As a server that ignores the `as=` parameter: the full representation,
    /// whatever was asked.
    Ignored,
}

/// The real server's answer to an Accept header it cannot serve.
fn not_acceptable(message: String) -> ApiError {
    ApiError::new(406, "NotAcceptable", message)
}

/// One clause of an Accept header.
#[derive(Debug)]
struct Clause<'a> {
    media_type: String,
    params: Vec<(String, &'a str)>,
    quality: f32,
}

impl<'a> Clause<'a> {
    fn parse(text: &'a str) -> Option<Clause<'a>> {
        let mut parts = text.split(';');
        let media_type = parts.next()?.trim().to_ascii_lowercase();
        if media_type.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        let mut quality = 1.0;
        for part in parts {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "q" {
                quality = v.parse().unwrap_or(0.0);
            } else {
                params.push((k, v));
            }
        }
        Some(Clause {
            media_type,
            params,
            quality,
        })
    }

    fn param(&self, name: &str) -> Option<&'a str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// Whether the clause accepts JSON, the only encoding served.
    fn accepts_json(&self) -> bool {
        matches!(
            self.media_type.as_str(),
            "application/json" | "application/*" | "*/*" | "*"
        )
    }

    /// What this clause can be served as, if anything (a Table's
    /// `includeObject` is filled in by [`negotiate`]).
    fn representation(&self, metadata: MetadataServing) -> Option<Representation> {
        let Some(target) = self.param("as") else {
            // The simulator answers every plain clause in JSON, as it always
            // has: clients asking for YAML or protobuf also accept JSON.
            return Some(Representation::Full);
        };
        // Tables are served whatever `metadata` says: that setting models
        // servers that cannot convert to metadata, and every kube-apiserver
        // prints Tables.
        if target == "Table" && self.accepts_json() && self.param("g") == Some("meta.k8s.io") {
            let api_version = match self.param("v") {
                Some("v1") => "meta.k8s.io/v1",
                Some("v1beta1") => "meta.k8s.io/v1beta1",
                _ => return None,
            };
            return Some(Representation::Table(TableRequest {
                api_version,
                include: IncludeObject::default(),
            }));
        }
        if metadata == MetadataServing::Ignored {
            return Some(Representation::Full);
        }
        let meta_v1 = self.param("g") == Some("meta.k8s.io") && self.param("v") == Some("v1");
        if !self.accepts_json() || !meta_v1 || metadata == MetadataServing::Refused {
            return None;
        }
        match target {
            "PartialObjectMetadata" => Some(Representation::PartialObjectMetadata),
            "PartialObjectMetadataList" => Some(Representation::PartialObjectMetadataList),
            _ => None,
        }
    }
}

/// The representation an Accept header asks for: the first clause, by
/// quality, that can be served. No header, or an empty one, is the full
/// representation; a header none of whose clauses can be served is a 406.
/// A Table carries the request's `includeObject`, refused with a 400 when
/// unknown.
pub(crate) fn negotiate(
    accept: Option<&str>,
    metadata: MetadataServing,
    include_object: Option<&str>,
) -> Result<Representation, ApiError> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(Representation::Full);
    };
    let mut clauses: Vec<Clause<'_>> = accept.split(',').filter_map(Clause::parse).collect();
    // Stable: equal qualities keep the client's order.
    clauses.sort_by(|a, b| b.quality.total_cmp(&a.quality));
    let chosen = clauses
        .iter()
        .filter(|c| c.quality > 0.0)
        .find_map(|c| c.representation(metadata))
        .ok_or_else(|| {
            not_acceptable(
                "only the following media types are accepted: application/json".to_string(),
            )
        })?;
    Ok(match chosen {
        Representation::Table(table) => Representation::Table(TableRequest {
            include: IncludeObject::parse(include_object)?,
            ..table
        }),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetadataServing::*;
    use Representation::*;

    const LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    const ONE: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

    #[test]
    fn plain_and_absent_headers_get_the_full_representation() {
        for h in [None, Some(""), Some("application/json"), Some("*/*")] {
            assert_eq!(negotiate(h, Served, None).unwrap(), Full, "{h:?}");
        }
    }

    #[test]
    fn metadata_conversions_are_served_on_request() {
        assert_eq!(
            negotiate(Some(LIST), Served, None).unwrap(),
            PartialObjectMetadataList
        );
        assert_eq!(
            negotiate(Some(ONE), Served, None).unwrap(),
            PartialObjectMetadata
        );
        // client-go's metadata client: protobuf first, then JSON.
        let both = format!("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,{LIST}");
        assert_eq!(
            negotiate(Some(&both), Served, None).unwrap(),
            PartialObjectMetadataList
        );
    }

    #[test]
    fn unservable_clauses_fall_through_to_the_next_or_406() {
        // A Table of a version that does not exist, with a plain fallback.
        let table = "application/json;as=Table;v=v2;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(table), Served, None).unwrap(), Full);
        for h in [
            "application/json;as=Bogus;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v2",
            "application/json;as=PartialObjectMetadataList;g=apps;v=v1",
        ] {
            assert_eq!(
                negotiate(Some(h), Served, None).unwrap_err().code,
                406,
                "{h}"
            );
        }
        let err = negotiate(Some(LIST), Refused, None).unwrap_err();
        assert_eq!((err.code, err.reason), (406, "NotAcceptable"));
        assert_eq!(
            negotiate(Some(&format!("{LIST},application/json")), Refused, None).unwrap(),
            Full
        );
        assert_eq!(negotiate(Some(LIST), Ignored, None).unwrap(), Full);
    }

    #[test]
    fn tables_are_served_in_either_version_with_their_include_object() {
        // kubectl 1.20's header: Table v1, Table v1beta1, then plain JSON.
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        let Table(t) = negotiate(Some(kubectl), Served, None).unwrap() else {
            panic!("a Table");
        };
        assert_eq!(
            (t.api_version, t.include),
            ("meta.k8s.io/v1", IncludeObject::Metadata)
        );
        let beta = "application/json;as=Table;v=v1beta1;g=meta.k8s.io";
        let Table(t) = negotiate(Some(beta), Served, Some("Object")).unwrap() else {
            panic!("a Table");
        };
        assert_eq!(
            (t.api_version, t.include),
            ("meta.k8s.io/v1beta1", IncludeObject::Object)
        );
        assert_eq!(
            negotiate(Some(beta), Served, Some("All")).unwrap_err().code,
            400
        );
        // A metadata clause ahead of a Table one wins, and the reverse.
        assert_eq!(
            negotiate(Some(&format!("{LIST},{kubectl}")), Served, None).unwrap(),
            PartialObjectMetadataList
        );
        assert!(matches!(
            negotiate(Some(&format!("{kubectl},{LIST}")), Served, None).unwrap(),
            Table(_)
        ));
        // A metadata clause that cannot be served does not hide a Table
        // behind it; a server ignoring `as=` answers the first clause in
        // full.
        let v2 = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v2";
        let v2_then_table = format!("{v2},{kubectl}");
        for metadata in [Served, Refused] {
            assert!(
                matches!(
                    negotiate(Some(&v2_then_table), metadata, None).unwrap(),
                    Table(_)
                ),
                "{metadata:?}"
            );
        }
        assert_eq!(
            negotiate(Some(&v2_then_table), Ignored, None).unwrap(),
            Full
        );
        // includeObject is only read when a Table is served.
        assert_eq!(
            negotiate(Some("application/json"), Served, Some("All")).unwrap(),
            Full
        );
    }

    #[test]
    fn quality_orders_the_clauses() {
        let h = format!("application/json;q=0.5,{LIST};q=0.9");
        assert_eq!(
            negotiate(Some(&h), Served, None).unwrap(),
            PartialObjectMetadataList
        );
        let h = format!("{LIST};q=0");
        assert_eq!(negotiate(Some(&h), Served, None).unwrap_err().code, 406);
    }

    #[test]
    fn a_list_conversion_on_an_object_and_the_reverse_are_406() {
        assert_eq!(
            PartialObjectMetadata.for_list("PodList").unwrap_err().code,
            406
        );
        assert_eq!(
            PartialObjectMetadataList
                .for_object("Pod")
                .unwrap_err()
                .code,
            406
        );
        assert_eq!(
            PartialObjectMetadataList.for_list("PodList").unwrap(),
            PartialObjectMetadataList
        );
        assert_eq!(
            PartialObjectMetadata.for_object("Pod").unwrap(),
            PartialObjectMetadata
        );
        assert_eq!(PartialObjectMetadataList.for_watch(), Full);
        assert_eq!(PartialObjectMetadata.for_watch(), PartialObjectMetadata);
    }
}
