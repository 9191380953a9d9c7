//! The merge-join of two sorted listings.

use std::cmp::Ordering;
use std::iter::Peekable;

use crate::scan::{cmp_paths, Entry};

/// One path as seen in the source, the destination, or both.
#[derive(Debug)]
pub enum Pair {
    /// Only in the source.
    Src(Entry),
    /// Only in the destination.
    Dst(Entry),
    /// In both.
    Both(Entry, Entry),
}

impl Pair {
    /// The relative path.
    pub fn path(&self) -> &[u8] {
        match self {
            Pair::Src(e) | Pair::Dst(e) | Pair::Both(e, _) => e.path(),
        }
    }
}

/// Merges two iterators of entries sorted by [`cmp_paths`] into pairs, in the same order.
/// Errors from either side are passed through as they come.
pub fn merge<E, S, D>(src: S, dst: D) -> Merge<S, D>
where
    S: Iterator<Item = Result<Entry, E>>,
    D: Iterator<Item = Result<Entry, E>>,
{
    Merge {
        src: src.peekable(),
        dst: dst.peekable(),
    }
}

/// Iterator returned by [`merge`].
pub struct Merge<S: Iterator, D: Iterator> {
    src: Peekable<S>,
    dst: Peekable<D>,
}

/// Which side an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source listing.
    Src,
    /// The destination listing.
    Dst,
}

impl<S: Iterator, D: Iterator> std::fmt::Debug for Merge<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merge").finish_non_exhaustive()
    }
}

impl<E, S, D> Iterator for Merge<S, D>
where
    S: Iterator<Item = Result<Entry, E>>,
    D: Iterator<Item = Result<Entry, E>>,
{
    type Item = Result<Pair, (Side, E)>;

    fn next(&mut self) -> Option<Self::Item> {
        // Errors first, so they are reported near where they happened.
        if matches!(self.src.peek(), Some(Err(_))) {
            return self
                .src
                .next()
                .map(|r| r.map(Pair::Src).map_err(|e| (Side::Src, e)));
        }
        if matches!(self.dst.peek(), Some(Err(_))) {
            return self
                .dst
                .next()
                .map(|r| r.map(Pair::Dst).map_err(|e| (Side::Dst, e)));
        }
        let order = match (self.src.peek(), self.dst.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(Ok(s)), Some(Ok(d))) => cmp_paths(s.path(), d.path()),
            _ => unreachable!("errors handled above"),
        };
        let src = matches!(order, Ordering::Less | Ordering::Equal).then(|| self.src.next());
        let dst = matches!(order, Ordering::Greater | Ordering::Equal).then(|| self.dst.next());
        Some(Ok(match (src, dst) {
            (Some(Some(Ok(s))), None) => Pair::Src(s),
            (None, Some(Some(Ok(d)))) => Pair::Dst(d),
            (Some(Some(Ok(s))), Some(Some(Ok(d)))) => Pair::Both(s, d),
            _ => unreachable!("peeked entries"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{EntryKind, EntryParts};
    use proptest::prelude::*;

    pub(crate) fn entry(path: &str) -> Entry {
        Entry::from_parts(EntryParts {
            path: path.as_bytes().into(),
            kind: Some(EntryKind::File),
            ..Default::default()
        })
    }

    proptest! {
        #[test]
        fn merge_is_a_sorted_union(a in proptest::collection::btree_set("[ab/.]{1,4}", 0..20), b in proptest::collection::btree_set("[ab/.]{1,4}", 0..20)) {
            let sort = |s: &std::collections::BTreeSet<String>| {
                let mut v: Vec<_> = s.iter().filter(|p| !p.starts_with('/') && !p.ends_with('/') && !p.contains("//")).cloned().collect();
                v.sort_by(|x, y| cmp_paths(x.as_bytes(), y.as_bytes()));
                v
            };
            let (sa, sb) = (sort(&a), sort(&b));
            let out: Vec<_> = merge(sa.iter().map(|p| Ok::<_, ()>(entry(p))), sb.iter().map(|p| Ok(entry(p)))).map(|r| r.unwrap()).collect();
            let mut union: Vec<_> = sa.iter().chain(&sb).cloned().collect();
            union.sort_by(|x, y| cmp_paths(x.as_bytes(), y.as_bytes()));
            union.dedup();
            prop_assert_eq!(out.iter().map(|p| String::from_utf8(p.path().to_vec()).unwrap()).collect::<Vec<_>>(), union);
            for p in &out {
                let path = String::from_utf8(p.path().to_vec()).unwrap();
                let (ins, ind) = (sa.contains(&path), sb.contains(&path));
                prop_assert!(matches!((p, ins, ind), (Pair::Src(_), true, false) | (Pair::Dst(_), false, true) | (Pair::Both(..), true, true)));
            }
        }
    }
}
