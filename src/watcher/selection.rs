//! The collection's selectors, matched against an object fetched by name: a
//! GET ignores selectors, so an object that left the selection after the
//! metadata list must be recognised here rather than stored.

use kube::core::{Selector, SelectorExt};
use serde_json::Value;

use crate::selector::{field_value, labels_of, parse_label_selector_as_server, FieldSelector};

/// The label and field selectors of a watch.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    labels: Option<Selector>,
    fields: Option<FieldSelector>,
}

impl Selection {
    /// Parses the selectors as the server does; a malformed one is an error
    /// `Config::validate` reports before any watcher exists.
    pub fn new(
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Selection, crate::selector::Error> {
        Ok(Selection {
            labels: labels.map(parse_label_selector_as_server).transpose()?,
            fields: fields.map(FieldSelector::parse).transpose()?,
        })
    }

    /// Whether `obj` is in the selection.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels_ok = self
            .labels
            .as_ref()
            .is_none_or(|s| s.matches(&labels_of(obj)));
        labels_ok
            && self
                .fields
                .as_ref()
                .is_none_or(|f| f.matches(|path| field_value(obj, path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_fields_both_select() {
        let s = Selection::new(Some("app=a,tier!=db"), Some("spec.nodeName=n1")).unwrap();
        let pod = |app: &str, node: &str| json!({"metadata": {"name": "p", "labels": {"app": app}}, "spec": {"nodeName": node}});
        assert!(s.matches(&pod("a", "n1")));
        assert!(!s.matches(&pod("b", "n1")));
        assert!(!s.matches(&pod("a", "n2")));
        assert!(Selection::default().matches(&json!({})));
        assert!(Selection::new(Some("a in (b"), None).is_err());
    }
}
