//! What a list or watch request selects: a namespace, a label selector and a
//! field selector, parsed and checked against the resource once per request.

use kube::core::{Selector, SelectorExt};

use super::object::Stored;
use super::resources::ResourceDef;
use super::status::ApiError;
use crate::selector::{parse_label_selector_as_server, FieldSelector};

/// The selection of one list or watch request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Namespace from the path (or a `metadata.namespace=` field term).
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: Selector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Filter {
    /// Parses the selectors of a request; bad syntax or a field the resource
    /// does not support is a 400, as on a real server.
    pub fn parse(
        res: &ResourceDef,
        namespace: Option<String>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Filter, ApiError> {
        let labels = parse_label_selector_as_server(label_selector.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(field_selector.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        for term in &fields.terms {
            if !res.selectable(&term.field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    term.field
                )));
            }
        }
        Ok(Filter {
            namespace,
            labels,
            fields,
        })
    }

    /// Whether anything beyond the namespace restricts the selection (a real
    /// server gives no `remainingItemCount` then).
    pub fn has_selectors(&self) -> bool {
        !self.labels.selects_all() || !self.fields.is_empty()
    }

    /// Whether an object is selected.
    pub fn matches(&self, obj: &Stored) -> bool {
        if let Some(ns) = &self.namespace {
            if obj.namespace.as_deref() != Some(ns.as_str()) {
                return false;
            }
        }
        self.labels.matches(&obj.labels) && self.fields.matches(|f| obj.field(f))
    }
}
