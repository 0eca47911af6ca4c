//! What is compared: ways of getting a controller's cache ready after a
//! restart, all against the same cluster.

use std::fmt;

/// One way of getting a cache ready, as measured by one child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Contender {
    /// kube-persist resuming from its store with a valid resourceVersion,
    /// after `changed_pct` percent of the objects were written while it was
    /// down.
    Resume {
        /// Percentage of objects written while the process was down.
        changed_pct: u32,
    },
    /// kube-persist after its stored resourceVersion was compacted away: the
    /// watch gets 410 Gone and the informer relists, diffing against the
    /// store.
    RelistAfterGone {
        /// Percentage of objects written while the process was down.
        changed_pct: u32,
    },
    /// A full relist into a fresh kube-persist store (a first start).
    Fresh,
    /// kube-runtime's `reflector` from scratch: what a kube-rs controller does
    /// today on every restart. The baseline every ratio is computed against.
    Reflector,
    /// client-go's `SharedIndexInformer` from scratch (tests/apiserver's
    /// `clientgo-informer`): what a Go controller does on every restart.
    ClientGo {
        /// Whether it speaks protobuf (client-go's default for built-in
        /// types) rather than JSON (what kube-rs speaks).
        protobuf: bool,
    },
}

impl Contender {
    /// The baseline the ratios of a run are computed against.
    pub const BASELINE: Contender = Contender::Reflector;

    /// Whether this contender keeps a kube-persist store (and so has a size
    /// on disk to report).
    pub fn has_store(self) -> bool {
        !matches!(self, Contender::Reflector | Contender::ClientGo { .. })
    }

    /// Which body of this binary's `bench child` runs this contender;
    /// `None` for client-go, which is another program.
    pub fn child_kind(self) -> Option<super::ChildKind> {
        match self {
            Contender::Reflector => Some(super::ChildKind::Reflector),
            Contender::ClientGo { .. } => None,
            _ => Some(super::ChildKind::Persist),
        }
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contender::Resume { changed_pct } => write!(f, "persist resume {changed_pct}%"),
            Contender::RelistAfterGone { changed_pct } => {
                write!(f, "persist 410 relist {changed_pct}%")
            }
            Contender::Fresh => f.write_str("persist fresh"),
            Contender::Reflector => f.write_str("kube-runtime reflector"),
            Contender::ClientGo { protobuf: false } => f.write_str("client-go informer JSON"),
            Contender::ClientGo { protobuf: true } => f.write_str("client-go informer protobuf"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_reflector_runs_without_a_store() {
        assert!(!Contender::Reflector.has_store());
        assert!(!Contender::ClientGo { protobuf: false }.has_store());
        assert_eq!(Contender::ClientGo { protobuf: true }.child_kind(), None);
        assert!(Contender::Fresh.has_store());
        assert!(Contender::Resume { changed_pct: 1 }.has_store());
        assert!(Contender::RelistAfterGone { changed_pct: 1 }.has_store());
    }

    #[test]
    fn labels_name_the_fraction_changed() {
        assert_eq!(
            Contender::Resume { changed_pct: 10 }.to_string(),
            "persist resume 10%"
        );
        assert_eq!(
            Contender::RelistAfterGone { changed_pct: 1 }.to_string(),
            "persist 410 relist 1%"
        );
        assert_eq!(
            Contender::ClientGo { protobuf: false }.to_string(),
            "client-go informer JSON"
        );
    }

    #[test]
    fn serializes_with_a_kind_tag() {
        let v = serde_json::to_value(Contender::Resume { changed_pct: 1 }).unwrap();
        assert_eq!(v, serde_json::json!({"kind": "resume", "changed_pct": 1}));
        let v = serde_json::to_value(Contender::Reflector).unwrap();
        assert_eq!(v, serde_json::json!({"kind": "reflector"}));
        let v = serde_json::to_value(Contender::ClientGo { protobuf: false }).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "client-go", "protobuf": false})
        );
    }
}
