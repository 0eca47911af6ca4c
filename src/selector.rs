//! TODO: label and field selectors (Kubernetes syntax).
