//! Test support shared by the spellings' tests: the reference's transcript tree (§2.2) and a
//! walk of it through a filter.

use super::Filter;

/// The tree of the reference's verified transcript (§2.2).
pub(crate) const TREE: &[&str] = &[
    "a.dat",
    "index1.dat",
    "Index1.dat",
    "fg1/x.dat",
    "fg1/index.dat",
    "fg1/db.fdb",
    "fg1/sub/y.DAT",
    "fg1/sub/indexes.txt",
    "index_dir/z.dat",
    "Index/w.dat",
];

/// The files of [`TREE`] a walk selects: every ancestor directory descended into, the file
/// itself included (as rclone's march and robocopy list them).
pub(crate) fn selected(f: &Filter) -> Vec<&'static str> {
    let mut out: Vec<&str> = TREE
        .iter()
        .copied()
        .filter(|p| {
            let b = p.as_bytes();
            let ancestors_ok = b
                .iter()
                .enumerate()
                .filter(|(_, &c)| c == b'/')
                .all(|(i, _)| f.descend(&b[..i]));
            ancestors_ok && f.path_included(b)
        })
        .collect();
    out.sort_unstable();
    out
}
