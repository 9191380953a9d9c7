//! Filters: which entries of a tree take part in a job. Owns the rule model
//! ([`rule`]), the glob translations (`glob`), the three spellings that build rules
//! ([`RcloneFilterBuilder`], [`RsyncFilterBuilder`], [`RobocopyFilterBuilder`]), and the age
//! and size predicates ([`age`], [`size`]). Pure logic: the only I/O is reading filter files
//! named by the caller, at build time. Depends on nothing else in the crate.
//!
//! # The contract
//!
//! A [`Filter`] is built once per job and is `Send + Sync`; every query is `&self`, does not
//! allocate for ordinary paths under 512 bytes, and costs one regex match per rule tried
//! (about 50–150 ns each). Paths are given **relative to the tree root**, as bytes,
//! `/`-separated, without a leading or trailing `/`, without `.` or `..` components; the empty
//! path is the root itself. Non-UTF-8 names are fine: rsync matches bytes; rclone and
//! robocopy read each invalid byte as one U+FFFD, as Go does, and rclone also sees control
//! characters as their U+2400 pictures, as its local backend presents them.
//!
//! Age cut-offs are fixed when the filter is built, from the [`TimeBase`] given to the builder
//! (default: now, with wall-clock dates read as UTC; the CLI should pass the local offset).
//!
//! The walker and planner use it like this:
//!
//! * [`Filter::descend`]`(dir)` before listing a directory: `false` means skip the whole
//!   subtree (on both sides). Only asked for directories whose parent was descended.
//! * [`Filter::dir_included`]`(dir)`: whether the directory itself is selected (created,
//!   given metadata). In all three dialects this equals `descend`; the two are kept apart so a
//!   dialect may later select a directory it does not enter or vice versa.
//! * [`Filter::file_verdict`]`(file, mtime, size)` for every non-directory of the source and
//!   of the destination (symlinks, devices and the like count as files):
//!   [`Verdict::Include`] → compare and transfer as usual; [`Verdict::Exclude`] → treat the
//!   entry as absent on that side; [`Verdict::Skip`] → the entry exists (its destination
//!   twin is not "extra") but is not transferred (rsync's `--min-size`/`--max-size`, which
//!   rsync calls transfer rules).
//! * Deletion: a destination entry with no source twin may be deleted only if
//!   [`Filter::file_protected`] / [`Filter::dir_protected`] say `false`. Excluded entries are
//!   protected unless delete-excluded was asked for. A protected directory's subtree is left
//!   alone entirely. The caller still owns every other deletion rule (errors, `--max-delete`).
//!
//! # How the dialects differ
//!
//! | | rclone | rsync | robocopy |
//! |---|---|---|---|
//! | list | file rules + derived directory rules, by flag type | one list, command-line order | include filespecs, `/XF`, `/XD` |
//! | first match | yes; unmatched ⇒ included | yes; unmatched ⇒ included | excluded if any `/XF` matches, else included if any include matches |
//! | applies to dirs | only trailing-`/` and `**` rules (and derived ones) | every rule without trailing `/` tests both; excluded dir not entered | `/XD` only |
//! | case | sensitive unless `--ignore-case` | sensitive | insensitive |
//! | age/size | hide the file on both sides (so they protect it) | size skips the transfer only | hide the file on both sides |
//! | protection | excluded ⇒ protected unless `--delete-excluded` | receiver-side rules (`P`/`R`, `-r`); `--delete-excluded` makes plain rules sender-only | not selected ⇒ protected |
//!
//! So `- index*` excludes the directory `index_dir` in rsync (and nothing inside it is ever
//! seen), but in rclone and robocopy (`/XF index*`) it only excludes files named `index*`.

pub mod age;
pub mod error;
mod glob;
pub mod rclone;
pub mod robocopy;
pub mod rsync;
pub mod rule;
pub mod size;
pub mod source;
#[cfg(test)]
pub(crate) mod testutil;

use std::fmt::Write as _;
use std::time::SystemTime;

pub use age::{CivilTime, RcloneAge, RobocopyAge, TimeBase, UnixTime};
pub use error::{FilterError, GlobProblem};
pub use rclone::RcloneFilterBuilder;
pub use robocopy::RobocopyFilterBuilder;
pub use rsync::RsyncFilterBuilder;
pub use rule::{Action, Applies, Rule, RuleFlags, RuleList};
pub use size::{parse_rclone_size, parse_rsync_size};

use age::TimeWindow;
use rule::{with_joined, Side};
use size::SizeWindow;

/// Which tool's semantics a [`Filter`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// rclone (also deltasync's native spelling).
    Rclone,
    /// rsync.
    Rsync,
    /// robocopy.
    Robocopy,
}

/// What to do with one non-directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Take part normally.
    Include,
    /// Hidden: treat as absent on this side.
    Exclude,
    /// Present but not transferred (rsync transfer rules); its twin is never "extra".
    Skip,
}

/// The path-rule part of a filter.
#[derive(Debug, Clone)]
pub(crate) enum Paths {
    /// rclone: file rules for files; directory rules for directories, matched as `dir/`.
    Split { files: RuleList, dirs: RuleList },
    /// rsync and robocopy: one list for both kinds; `prefix` (rsync's source without a
    /// trailing slash) is prepended as `prefix/` to every path.
    Single {
        rules: RuleList,
        prefix: Option<Vec<u8>>,
    },
}

/// A built filter. See the module docs for the contract.
#[derive(Debug, Clone)]
pub struct Filter {
    pub(crate) dialect: Dialect,
    pub(crate) paths: Paths,
    pub(crate) age: TimeWindow,
    pub(crate) size: SizeWindow,
    pub(crate) delete_excluded: bool,
}

impl Default for Filter {
    /// Selects everything (an rclone filter without rules).
    fn default() -> Filter {
        Filter {
            dialect: Dialect::Rclone,
            paths: Paths::Split {
                files: RuleList::default(),
                dirs: RuleList::default(),
            },
            age: TimeWindow::default(),
            size: SizeWindow::default(),
            delete_excluded: false,
        }
    }
}

impl Filter {
    /// A filter that selects everything.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// The dialect whose semantics this filter follows.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether the filter can leave anything out (if not, callers may skip the queries).
    pub fn is_active(&self) -> bool {
        let rules = match &self.paths {
            Paths::Split { files, dirs } => !files.is_empty() || !dirs.is_empty(),
            Paths::Single { rules, prefix } => !rules.is_empty() || prefix.is_some(),
        };
        rules || self.age.is_active() || self.size.is_active()
    }

    /// Whether the age predicate is in use (so mtimes matter to [`Filter::file_verdict`]).
    pub fn uses_mtime(&self) -> bool {
        self.age.is_active()
    }

    /// The verdict for a non-directory entry with this mtime and size.
    pub fn file_verdict(&self, rel: &[u8], mtime: UnixTime, size: u64) -> Verdict {
        match self.dialect {
            Dialect::Rsync => {
                if !self.path_included(rel) {
                    Verdict::Exclude
                } else if !self.size.contains(size) {
                    Verdict::Skip
                } else {
                    Verdict::Include
                }
            }
            Dialect::Rclone | Dialect::Robocopy => {
                if !self.age.contains(mtime)
                    || !self.size.contains(size)
                    || !self.path_included(rel)
                {
                    Verdict::Exclude
                } else {
                    Verdict::Include
                }
            }
        }
    }

    /// [`Filter::file_verdict`] with a [`SystemTime`] mtime.
    pub fn file_verdict_at(&self, rel: &[u8], mtime: SystemTime, size: u64) -> Verdict {
        self.file_verdict(rel, UnixTime::from_system(mtime), size)
    }

    /// Whether a non-directory entry is transferred: `file_verdict(..) == Include`.
    pub fn file_included(&self, rel: &[u8], mtime: UnixTime, size: u64) -> bool {
        self.file_verdict(rel, mtime, size) == Verdict::Include
    }

    /// Whether the path rules alone select a non-directory entry (ignoring age and size).
    pub fn path_included(&self, rel: &[u8]) -> bool {
        self.path_action(rel, false, Side::Sender) != Some(Action::Exclude)
    }

    /// Whether the directory itself is selected (created, given metadata). The root (`""`)
    /// is always selected, except by an rsync rule naming the source directory itself.
    pub fn dir_included(&self, rel: &[u8]) -> bool {
        self.path_action(rel, true, Side::Sender) != Some(Action::Exclude)
    }

    /// Whether to list the directory and walk below it.
    pub fn descend(&self, rel: &[u8]) -> bool {
        self.dir_included(rel)
    }

    /// Whether a destination non-directory without a source twin must be kept because the
    /// filter hides it.
    pub fn file_protected(&self, rel: &[u8], mtime: UnixTime, size: u64) -> bool {
        match self.dialect {
            // rsync's deletion view: receiver-side rules only; size limits never protect.
            Dialect::Rsync => self.path_action(rel, false, Side::Receiver) == Some(Action::Exclude),
            Dialect::Rclone | Dialect::Robocopy => {
                !self.delete_excluded && self.file_verdict(rel, mtime, size) == Verdict::Exclude
            }
        }
    }

    /// Whether a destination directory without a source twin must be kept (with its whole
    /// subtree) because the filter hides it.
    pub fn dir_protected(&self, rel: &[u8]) -> bool {
        match self.dialect {
            Dialect::Rsync => self.path_action(rel, true, Side::Receiver) == Some(Action::Exclude),
            Dialect::Rclone | Dialect::Robocopy => !self.delete_excluded && !self.dir_included(rel),
        }
    }

    /// The rule list used for files (`dirs == false`) or directories. For rsync and robocopy
    /// both are the same single list.
    pub fn rule_list(&self, dirs: bool) -> Option<&RuleList> {
        match &self.paths {
            Paths::Split { files, dirs: d } => Some(if dirs { d } else { files }),
            Paths::Single { rules, .. } => Some(rules),
        }
    }

    /// A textual dump of the rules. For rclone filters the rule part is exactly what
    /// `rclone --dump filters` prints between its markers (minus the age and size lines,
    /// which are given here as Unix times).
    pub fn dump(&self) -> String {
        let mut s = String::new();
        if let Some(from) = self.age.from {
            let _ = writeln!(
                s,
                "Last-modified date must be equal or greater than: {}.{:09}",
                from.secs, from.nanos
            );
        }
        if let Some(to) = self.age.to {
            let _ = writeln!(
                s,
                "Last-modified date must be equal or less than: {}.{:09}",
                to.secs, to.nanos
            );
        }
        if let Some(min) = self.size.min {
            let _ = writeln!(s, "Minimum size is: {min} B");
        }
        if let Some(max) = self.size.max {
            let _ = writeln!(s, "Maximum size is: {max} B");
        }
        let line = |s: &mut String, r: &Rule| {
            let sign = match r.action() {
                Action::Include => '+',
                Action::Exclude => '-',
            };
            let _ = writeln!(s, "{sign} {}", r.regex());
        };
        match &self.paths {
            Paths::Split { files, dirs } => {
                s.push_str("--- File filter rules ---\n");
                files.rules().iter().for_each(|r| line(&mut s, r));
                s.push_str("--- Directory filter rules ---\n");
                dirs.rules().iter().for_each(|r| line(&mut s, r));
            }
            Paths::Single { rules, prefix } => {
                if let Some(p) = prefix {
                    let _ = writeln!(
                        s,
                        "--- Transfer root prefix: {} ---",
                        String::from_utf8_lossy(p)
                    );
                }
                s.push_str("--- Filter rules ---\n");
                for r in rules.rules() {
                    line(&mut s, r);
                }
            }
        }
        s
    }

    /// The first matching rule's action for `rel`, or `None`.
    fn path_action(&self, rel: &[u8], is_dir: bool, side: Side) -> Option<Action> {
        match &self.paths {
            Paths::Split { files, dirs } => {
                if is_dir {
                    if rel.is_empty() {
                        return None;
                    }
                    with_joined(&[rel, b"/"], |s| dirs.first_match(s, true, side))
                } else {
                    files.first_match(rel, false, side)
                }
            }
            Paths::Single { rules, prefix } => match prefix {
                None => rules.first_match(rel, is_dir, side),
                Some(p) if rel.is_empty() => rules.first_match(p, is_dir, side),
                Some(p) => with_joined(&[p, b"/", rel], |s| rules.first_match(s, is_dir, side)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn filter_is_send_and_sync() {
        assert_send_sync::<Filter>();
    }

    #[test]
    fn default_selects_everything() {
        let f = Filter::all();
        assert!(!f.is_active());
        assert!(f.file_included(b"a/b", UnixTime::new(0, 0), 0));
        assert!(f.dir_included(b"a"));
        assert!(f.descend(b""));
        assert!(!f.file_protected(b"a", UnixTime::new(0, 0), 0));
        assert!(!f.dir_protected(b"a"));
    }

    /// The same tree through the three dialects: the reference's main cross-tool difference.
    #[test]
    fn dialects_disagree_on_index_dir() {
        let rclone = RcloneFilterBuilder::new()
            .filter("- index*")
            .build()
            .unwrap();
        let rsync = RsyncFilterBuilder::new()
            .filter("- index*")
            .build()
            .unwrap();
        let robocopy = RobocopyFilterBuilder::new()
            .exclude_file("index*")
            .build()
            .unwrap();
        assert!(rclone.descend(b"index_dir"));
        assert!(!rsync.descend(b"index_dir"));
        assert!(robocopy.descend(b"index_dir"));
        for f in [&rclone, &rsync, &robocopy] {
            assert!(!f.path_included(b"fg1/index.dat"), "{:?}", f.dialect());
        }
        assert!(rclone.path_included(b"Index1.dat"));
        assert!(rsync.path_included(b"Index1.dat"));
        assert!(
            !robocopy.path_included(b"Index1.dat"),
            "robocopy is case-insensitive"
        );
    }

    #[test]
    fn system_time_entry_point() {
        let f = RcloneFilterBuilder::new()
            .max_age("1h")
            .time_base(TimeBase::new(
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7200),
                0,
            ))
            .build()
            .unwrap();
        let t = |s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(f.file_verdict_at(b"x", t(3600), 0), Verdict::Include);
        assert_eq!(f.file_verdict_at(b"x", t(3599), 0), Verdict::Exclude);
        assert!(f.uses_mtime());
    }
}
