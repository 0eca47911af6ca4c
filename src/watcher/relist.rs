//! Relisting by difference: what the consumer already holds ([`Held`]), and
//! how a listing compares with it ([`Diff`]), so that a relist hands on only
//! real differences (I4) and never moves an object back to an older
//! resourceVersion (I13).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use super::object::ObjectRef;
use crate::resource_version;

/// An error of a [`Held`] implementation.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the watcher's consumer already holds. A relist reads it once when it
/// starts (and again whenever it starts over), so it can skip the objects
/// the consumer has at the listed version and name the ones it holds that
/// the server no longer has.
pub trait Held: Send + Sync + 'static {
    /// key → resourceVersion of every object held.
    fn versions(&self)
        -> impl Future<Output = Result<HashMap<ObjectRef, String>, BoxError>> + Send;
}

/// A consumer that holds nothing: every relist hands on every object.
impl Held for () {
    async fn versions(&self) -> Result<HashMap<ObjectRef, String>, BoxError> {
        Ok(HashMap::new())
    }
}

/// What a listed object is to the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// New, or at another resourceVersion than held: hand it on.
    Write {
        /// The resourceVersion held, if any.
        held: Option<String>,
    },
    /// Held at exactly this resourceVersion.
    Unchanged,
    /// Held at a newer resourceVersion than listed (read after the listed
    /// snapshot by an earlier relist that was cut short): keep the newer.
    HeldNewer,
}

/// A relist in progress, compared with what the consumer held when it began.
/// Holds one key and version per object held, never object bodies.
#[derive(Debug, Default)]
pub struct Diff {
    /// Held objects the listing has not shown yet.
    unseen: HashMap<ObjectRef, String>,
    /// Objects held when the relist began.
    held: usize,
    /// Listed objects so far.
    listed: usize,
    /// Listed objects held at the listed version.
    unchanged: usize,
}

impl Diff {
    /// A relist against `held` (key → resourceVersion).
    pub fn new(held: HashMap<ObjectRef, String>) -> Diff {
        Diff {
            held: held.len(),
            unseen: held,
            listed: 0,
            unchanged: 0,
        }
    }

    /// Objects held when the relist began.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Objects listed so far.
    pub fn listed(&self) -> usize {
        self.listed
    }

    /// Listed objects held at the listed version.
    pub fn unchanged(&self) -> usize {
        self.unchanged
    }

    /// Classifies a listed object (`rv` its resourceVersion) and marks it
    /// seen. Objects are compared by resourceVersion, not content: the
    /// server bumps it on every write.
    pub fn observe(&mut self, key: &ObjectRef, rv: Option<&str>) -> Verdict {
        self.listed += 1;
        let held = self.unseen.remove(key);
        match (held, rv) {
            (Some(h), Some(rv)) if h == rv => {
                self.unchanged += 1;
                Verdict::Unchanged
            }
            (Some(h), Some(rv)) if is_older(rv, &h) => Verdict::HeldNewer,
            (held, _) => Verdict::Write { held },
        }
    }

    /// Marks an object seen without classifying it: the listing saw it and
    /// the caller decided what to do (a streaming list's DELETED).
    pub fn forget(&mut self, key: &ObjectRef) -> Option<String> {
        self.unseen.remove(key)
    }

    /// The objects held that a complete listing at `snapshot_rv` did not
    /// show: deleted while the watch was away, each once, in key order. A
    /// held object newer than the snapshot is not among them: it was read
    /// after the snapshot, so its absence there says nothing.
    pub fn finish(self, snapshot_rv: &str) -> Vec<(ObjectRef, String)> {
        let mut gone: Vec<(ObjectRef, String)> = self
            .unseen
            .into_iter()
            .filter(|(_, held)| !is_older(snapshot_rv, held))
            .collect();
        gone.sort();
        gone
    }
}

/// Whether `candidate` is older than `current` by KEP-5504's order. Values
/// outside that order are compared for equality only, which is said once
/// per process: a server whose resourceVersions are not decimal etcd
/// revisions (some aggregated API servers) gets no protection against
/// going back to an older version, only convergence.
pub fn is_older(candidate: &str, current: &str) -> bool {
    static TOLD: AtomicBool = AtomicBool::new(false);
    if resource_version::compare(candidate, current).is_none()
        && candidate != current
        && !TOLD.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            candidate,
            current,
            "resourceVersions not of the KEP-5504 form (decimal, no leading zero): compared for equality only"
        );
    }
    resource_version::is_older(candidate, current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectRef {
        ObjectRef::new(Some("ns"), name).unwrap()
    }

    fn held(entries: &[(&str, &str)]) -> HashMap<ObjectRef, String> {
        entries
            .iter()
            .map(|(k, v)| (key(k), v.to_string()))
            .collect()
    }

    #[test]
    fn only_real_differences_are_written_and_the_unseen_are_gone() {
        let mut d = Diff::new(held(&[("same", "1"), ("changed", "2"), ("gone", "3")]));
        assert_eq!(d.observe(&key("same"), Some("1")), Verdict::Unchanged);
        assert_eq!(
            d.observe(&key("changed"), Some("9")),
            Verdict::Write {
                held: Some("2".into())
            }
        );
        assert_eq!(
            d.observe(&key("new"), Some("10")),
            Verdict::Write { held: None }
        );
        assert_eq!((d.held(), d.listed(), d.unchanged()), (3, 3, 1));
        assert_eq!(d.finish("11"), vec![(key("gone"), "3".to_string())]);
    }

    #[test]
    fn a_held_version_newer_than_the_listing_is_kept() {
        // Read by an earlier relist after this listing's snapshot: listed at
        // 5, held at 8. Listing it would move it back (I13).
        let mut d = Diff::new(held(&[("a", "8"), ("b", "12")]));
        assert_eq!(d.observe(&key("a"), Some("5")), Verdict::HeldNewer);
        // Created after the snapshot at 10: not in it, not deleted either.
        assert!(d.finish("10").is_empty());
    }

    #[test]
    fn versions_outside_the_order_compare_for_equality_only() {
        let mut d = Diff::new(held(&[("a", "abc"), ("b", "abc"), ("c", "x1")]));
        assert_eq!(d.observe(&key("a"), Some("abc")), Verdict::Unchanged);
        assert_eq!(
            d.observe(&key("b"), Some("abd")),
            Verdict::Write {
                held: Some("abc".into())
            }
        );
        assert_eq!(d.finish("zzz"), vec![(key("c"), "x1".to_string())]);
    }

    #[test]
    fn an_object_without_a_version_is_always_written() {
        let mut d = Diff::new(held(&[("a", "1")]));
        assert_eq!(
            d.observe(&key("a"), None),
            Verdict::Write {
                held: Some("1".into())
            }
        );
        assert_eq!(d.forget(&key("zz")), None);
    }

    proptest::proptest! {
        /// Applying what the diff writes and deletes to what was held yields
        /// exactly the listing, whenever nothing held is newer than it.
        #[test]
        fn diff_applied_to_held_equals_listing(
            stored in proptest::collection::hash_map(0u8..40, 1u8..5, 0..30),
            listed in proptest::collection::hash_map(0u8..40, 1u8..5, 0..30),
        ) {
            let name = |n: u8| format!("o{n}");
            let held_v: HashMap<_, _> = stored.iter().map(|(n, v)| (key(&name(*n)), v.to_string())).collect();
            let mut d = Diff::new(held_v.clone());
            let mut result = held_v.clone();
            for (n, v) in &listed {
                let k = key(&name(*n));
                let rv = v.to_string();
                match d.observe(&k, Some(&rv)) {
                    Verdict::Write { held } => {
                        proptest::prop_assert_ne!(held.as_deref(), Some(rv.as_str()));
                        result.insert(k, rv);
                    }
                    Verdict::Unchanged => proptest::prop_assert_eq!(held_v.get(&k), Some(&rv)),
                    Verdict::HeldNewer => proptest::prop_assert!(held_v[&k] > rv),
                }
            }
            for (k, _) in d.finish("9") {
                proptest::prop_assert!(result.remove(&k).is_some());
            }
            let expect: HashMap<_, _> = listed.iter().map(|(n, v)| (key(&name(*n)), v.to_string())).collect();
            // Where held was newer, the held version stays.
            let mut expect = expect;
            for (k, v) in &held_v {
                if let Some(l) = expect.get_mut(k) {
                    if is_older(l, v) { *l = v.clone(); }
                }
            }
            proptest::prop_assert_eq!(result, expect);
        }
    }
}
