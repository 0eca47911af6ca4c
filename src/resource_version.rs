//! Ordering of resourceVersions, by the rule Kubernetes made official in 1.35
//! (KEP-5504, `k8s.io/apimachinery/pkg/util/resourceversion`).
//!
//! A resourceVersion is formally opaque, but kube-apiserver's are etcd
//! revisions, and KEP-5504 lets clients compare two of one resource: both
//! must be decimal digits with no leading zero; the longer string is the
//! greater, and strings of equal length compare byte by byte. That is
//! integer order without a width limit, so no value can overflow.
//!
//! Servers that do not follow the rule (some aggregated API servers) may
//! hand out anything; for those only equality means something, and
//! [`compare`] says so by returning `None`.

use std::cmp::Ordering;

/// Whether `rv` is of the form KEP-5504 orders: decimal digits, no leading
/// zero (so neither `""` nor `"0"`).
pub fn is_well_formed(rv: &str) -> bool {
    let bytes = rv.as_bytes();
    !bytes.is_empty() && bytes[0] != b'0' && bytes.iter().all(u8::is_ascii_digit)
}

/// Orders two resourceVersions of one resource, or `None` when either is
/// not well formed (then only `a == b` may be relied on).
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    if !is_well_formed(a) || !is_well_formed(b) {
        return None;
    }
    Some(a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

/// Whether `candidate` is known to be strictly older than `current`. Not
/// comparable means not known: the caller treats the two as unordered.
pub fn is_older(candidate: &str, current: &str) -> bool {
    compare(candidate, current) == Some(Ordering::Less)
}

/// Whether `rv` is at least `target` by the ordering, i.e. a state at `rv`
/// covers everything up to `target`. Unordered values cover only an equal
/// one.
pub fn covers(rv: &str, target: &str) -> bool {
    match compare(rv, target) {
        Some(order) => order != Ordering::Less,
        None => rv == target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_is_digits_without_a_leading_zero() {
        for rv in ["1", "9", "10", "123456789012345678901234567890"] {
            assert!(is_well_formed(rv), "{rv}");
        }
        for rv in ["", "0", "01", "-1", "+1", "1a", " 1", "1 ", "１"] {
            assert!(!is_well_formed(rv), "{rv:?}");
        }
    }

    #[test]
    fn longer_is_greater_and_equal_lengths_compare_as_strings() {
        assert_eq!(compare("9", "10"), Some(Ordering::Less));
        assert_eq!(compare("100", "99"), Some(Ordering::Greater));
        assert_eq!(compare("123", "124"), Some(Ordering::Less));
        assert_eq!(compare("124", "124"), Some(Ordering::Equal));
        // Beyond u64: still ordered, never overflowing.
        assert_eq!(
            compare("18446744073709551616", "18446744073709551615"),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn agrees_with_integer_order_wherever_both_are_integers() {
        let values = [
            1u64,
            2,
            9,
            10,
            11,
            99,
            100,
            101,
            999,
            1000,
            123_456,
            u64::MAX,
        ];
        for a in values {
            for b in values {
                assert_eq!(
                    compare(&a.to_string(), &b.to_string()),
                    Some(a.cmp(&b)),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn values_outside_the_rule_are_unordered_but_equal_to_themselves() {
        assert_eq!(compare("abc", "abd"), None);
        assert_eq!(compare("010", "9"), None);
        assert_eq!(compare("5", ""), None);
        assert!(!is_older("abc", "abd"));
        assert!(covers("abc", "abc"));
        assert!(!covers("abd", "abc"));
    }

    #[test]
    fn covers_and_is_older_follow_the_order() {
        assert!(covers("10", "9"));
        assert!(covers("10", "10"));
        assert!(!covers("9", "10"));
        assert!(is_older("9", "10"));
        assert!(!is_older("10", "10"));
        assert!(!is_older("11", "10"));
    }
}
