//! Two directory questions of a pass: which planned directories are still waiting for
//! content (robocopy `/s`, [`super::SyncOptions::empty_dirs`] off), and whether the
//! destination is the root of a file system (a rail against `D:\ MailArchive` typos).
//!
//! A directory waiting for content is created only when a non-directory is about to be
//! placed in it or below it; one that the walk leaves without that is never created. The walk
//! is depth first in [`crate::scan::cmp_paths`] order, so the waiting directories always form
//! one chain from the outermost down, and a stack holds them.

use std::path::Path;

use crate::plan::ChangeFlags;
use crate::scan::Entry;

/// Planned directories not created yet, outermost first.
#[derive(Default)]
pub(super) struct PendingDirs {
    stack: Vec<(Entry, ChangeFlags)>,
}

impl PendingDirs {
    /// Forgets the waiting directories that do not contain `path`: the walk has left them,
    /// and they stay uncreated.
    pub(super) fn leave(&mut self, path: &[u8]) {
        while let Some((top, _)) = self.stack.last() {
            if contains(top.path(), path) {
                break;
            }
            self.stack.pop();
        }
    }

    /// A directory to create once something is put in it.
    pub(super) fn push(&mut self, dir: Entry, flags: ChangeFlags) {
        self.stack.push((dir, flags));
    }

    /// Every waiting directory, outermost first, leaving none.
    pub(super) fn take(&mut self) -> Vec<(Entry, ChangeFlags)> {
        std::mem::take(&mut self.stack)
    }
}

/// Whether `path` lies strictly below the directory `dir` (relative paths; `""` is the root).
pub(super) fn contains(dir: &[u8], path: &[u8]) -> bool {
    if dir.is_empty() {
        return !path.is_empty();
    }
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

/// Whether `path` is the root of a file system: `/`, or a mount point (its parent is on
/// another device). Unknown (unreadable) counts as not a root.
pub(super) fn is_fs_root(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(here), Ok(up)) = (std::fs::metadata(path), std::fs::metadata(path.join(".."))) else {
        return false;
    };
    here.dev() != up.dev() || here.ino() == up.ino()
}

/// The refusal for deletions in a file system's root, naming a few of them.
pub(super) fn fs_root_refusal<'a>(
    n: usize,
    root: &Path,
    paths: impl Iterator<Item = &'a [u8]>,
) -> String {
    let sample: Vec<String> = paths
        .take(3)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    format!(
        "refusing to delete {n} entries (e.g. {}) in {}, the root of a file system: a mistyped destination such as `D:\\ MailArchive` names one; check the destination, or pass --force-delete",
        sample.join(", "),
        root.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{EntryKind, EntryParts};

    fn dir(path: &str) -> Entry {
        Entry::from_parts(EntryParts {
            path: path.as_bytes().into(),
            kind: Some(EntryKind::Dir),
            ..Default::default()
        })
    }

    fn paths(p: &mut PendingDirs) -> Vec<String> {
        p.take()
            .iter()
            .map(|(e, _)| String::from_utf8_lossy(e.path()).into_owned())
            .collect()
    }

    #[test]
    fn containment_is_by_component() {
        assert!(contains(b"a", b"a/b"));
        assert!(contains(b"", b"a"));
        assert!(!contains(b"", b""));
        assert!(!contains(b"a", b"a"));
        assert!(!contains(b"a", b"ab/c"));
        assert!(!contains(b"a/b", b"a"));
    }

    #[test]
    fn the_walk_leaves_empty_directories_behind() {
        let mut p = PendingDirs::default();
        // a/ (empty) then b/ c/ d.txt: only b and b/c are still waiting for d.txt.
        p.push(dir("a"), ChangeFlags::default());
        p.leave(b"b");
        p.push(dir("b"), ChangeFlags::default());
        p.leave(b"b/c");
        p.push(dir("b/c"), ChangeFlags::default());
        p.leave(b"b/c/d.txt");
        assert_eq!(paths(&mut p), ["b", "b/c"]);
        assert!(p.take().is_empty(), "taking empties the stack");
        // A sibling subtree pops the waiting ones it is not under.
        p.push(dir("x"), ChangeFlags::default());
        p.push(dir("x/y"), ChangeFlags::default());
        p.leave(b"x/z");
        assert_eq!(paths(&mut p), ["x"]);
    }

    /// A pass with `empty_dirs` off creates only the directories something is put in.
    #[test]
    fn lazy_directories_in_a_pass() {
        use crate::exec::Event;
        use crate::filter::RobocopyFilterBuilder;
        use crate::sync::{Mode, SyncBuilder};
        use std::sync::{Arc, Mutex};

        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        for d in ["empty", "deep/er/est", "skipped", "linked/sub", "kept/x"] {
            std::fs::create_dir_all(src.join(d)).unwrap();
        }
        std::fs::write(src.join("deep/er/est/f.txt"), b"f").unwrap();
        std::fs::write(src.join("skipped/db.fdb"), b"db").unwrap();
        std::fs::write(src.join("top.txt"), b"t").unwrap();
        std::fs::hard_link(src.join("top.txt"), src.join("linked/sub/again.txt")).unwrap();
        let filter = RobocopyFilterBuilder::new()
            .exclude_file("*.fdb")
            .build()
            .unwrap();
        let listing = |root: &Path| {
            let mut out = Vec::new();
            let mut stack = vec![root.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    if p.is_dir() {
                        stack.push(p);
                        out.push(rel + "/");
                    } else {
                        out.push(rel);
                    }
                }
            }
            out.sort();
            out
        };
        let run = |dst: &Path, empty_dirs: bool, dry_run: bool| {
            let made = Arc::new(Mutex::new(Vec::new()));
            let m = made.clone();
            let report = SyncBuilder::new(Mode::Copy, &src, dst)
                .filter(filter.clone())
                .callback(Arc::new(move |e: &Event<'_>| {
                    if let Event::Changed(c) = e {
                        if c.action == crate::plan::Action::Mkdir {
                            let p = String::from_utf8_lossy(c.path).into_owned();
                            m.lock().unwrap().push(p);
                        }
                    }
                }))
                .configure(|o| {
                    o.empty_dirs = empty_dirs;
                    o.dry_run = dry_run;
                })
                .build()
                .unwrap()
                .run()
                .unwrap();
            let mut made = made.lock().unwrap().clone();
            made.sort();
            (report, made)
        };
        let lazy = t.path().join("lazy");
        let (report, made) = run(&lazy, false, true);
        assert_eq!(
            made,
            ["", "deep", "deep/er", "deep/er/est", "linked", "linked/sub"]
        );
        assert_eq!(report.stats.dirs_created, 6);
        assert!(!lazy.exists(), "a dry run creates nothing");
        let (_, made_for_real) = run(&lazy, false, false);
        assert_eq!(
            made_for_real, made,
            "the dry run reports what the pass does"
        );
        assert_eq!(
            listing(&lazy),
            [
                "deep/",
                "deep/er/",
                "deep/er/est/",
                "deep/er/est/f.txt",
                "linked/",
                "linked/sub/",
                "linked/sub/again.txt",
                "top.txt"
            ]
        );
        let eager = t.path().join("eager");
        run(&eager, true, false);
        let all = listing(&eager);
        for d in ["empty/", "skipped/", "kept/", "kept/x/"] {
            assert!(all.contains(&d.to_owned()), "{d} missing from {all:?}");
        }
    }

    #[test]
    fn roots_of_file_systems() {
        assert!(is_fs_root(Path::new("/")));
        let t = tempfile::tempdir().unwrap();
        let sub = t.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(!is_fs_root(&sub));
        assert!(!is_fs_root(&t.path().join("missing")));
    }

    #[test]
    fn refusal_names_what_and_how() {
        let m = fs_root_refusal(
            5,
            Path::new("/mnt/d"),
            [&b"a"[..], b"b", b"c", b"d"].into_iter(),
        );
        assert_eq!(
            m,
            "refusing to delete 5 entries (e.g. a, b, c) in /mnt/d, the root of a file system: a mistyped destination such as `D:\\ MailArchive` names one; check the destination, or pass --force-delete"
        );
    }
}
