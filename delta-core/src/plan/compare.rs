//! The decision for one path: rsync's quick check (size and mtime), the checksum question,
//! and which metadata differs.

use crate::exec::meta::MetaOptions;
use crate::scan::{Entry, EntryKind, Timestamp};

use super::action::{Action, ChangeFlags};

/// How entries are compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompareOptions {
    /// Compare contents by whole-file hash instead of size and mtime.
    pub checksum: bool,
    /// Compare sizes only.
    pub size_only: bool,
    /// Transfer every file, equal or not.
    pub ignore_times: bool,
    /// Which metadata is replayed, and so compared. Owner and group must already be off when
    /// they cannot take effect (not running as root).
    pub meta: MetaOptions,
    /// Never touch a file that exists at the destination (rsync `--ignore-existing`).
    pub ignore_existing: bool,
    /// Skip files whose destination is newer (rsync `--update`).
    pub skip_newer_dst: bool,
    /// robocopy `/xo`: skip files older than the destination's.
    pub skip_older: bool,
    /// robocopy `/xn`: skip files newer than the destination's.
    pub skip_newer: bool,
    /// robocopy `/xc`: skip changed files (same time, different size).
    pub skip_changed: bool,
    /// robocopy `/xl`: skip files absent from the destination.
    pub skip_new: bool,
}

/// What to do with one path and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The action.
    pub action: Action,
    /// What differs.
    pub flags: ChangeFlags,
    /// The destination holds another kind of entry that must go first.
    pub replace: bool,
}

impl Decision {
    fn new(action: Action, flags: ChangeFlags) -> Self {
        Self {
            action,
            flags,
            replace: false,
        }
    }
}

/// Equal modification times: to the nanosecond when both sides keep nanoseconds; to the second
/// when one side has none (a file system or a peer that keeps whole seconds only).
pub fn same_time(a: Timestamp, b: Timestamp) -> bool {
    a.sec == b.sec && (a.nsec == b.nsec || a.nsec == 0 || b.nsec == 0)
}

/// Decides what happens to a source entry given the destination entry at the same path (if
/// any). Source-only entries are created; this does not handle destination-only entries.
pub fn decide(src: &Entry, dst: Option<&Entry>, opts: &CompareOptions) -> Decision {
    let Some(dst) = dst else {
        let action = match src.kind() {
            EntryKind::Dir => Action::Mkdir,
            EntryKind::File if opts.skip_new => Action::Skip,
            EntryKind::File => Action::Create,
            EntryKind::Symlink => Action::Symlink,
            _ => Action::Special,
        };
        return Decision::new(
            action,
            ChangeFlags {
                new: true,
                ..ChangeFlags::default()
            },
        );
    };
    if src.kind() != dst.kind() {
        let mut d = decide(src, None, opts);
        d.replace = d.action != Action::Skip;
        return d;
    }
    let mut flags = meta_flags(src, dst, &opts.meta);
    match src.kind() {
        EntryKind::Dir => Decision::new(Action::Dir, flags),
        EntryKind::File => {
            flags.size = src.size() != dst.size();
            let time_differs = !same_time(src.mtime(), dst.mtime());
            flags.time = time_differs && opts.meta.times;
            let skip = opts.ignore_existing
                || (opts.skip_newer_dst && dst.mtime() > src.mtime())
                || (opts.skip_older && src.mtime() < dst.mtime() && time_differs)
                || (opts.skip_newer && src.mtime() > dst.mtime() && time_differs)
                || (opts.skip_changed && !time_differs && flags.size);
            let action = if skip {
                Action::Skip
            } else if opts.ignore_times || flags.size {
                Action::Update
            } else if opts.checksum {
                Action::Checksum
            } else if opts.size_only && time_differs && opts.meta.times {
                // rsync -a --size-only leaves the data alone but still fixes the time.
                Action::SetMeta
            } else if opts.size_only || !time_differs {
                if flags.perms || flags.owner || flags.group {
                    Action::SetMeta
                } else {
                    Action::Unchanged
                }
            } else {
                Action::Update
            };
            Decision::new(action, flags)
        }
        EntryKind::Symlink => {
            if src.symlink_target() != dst.symlink_target() {
                Decision::new(
                    Action::Symlink,
                    ChangeFlags {
                        checksum: true,
                        ..flags
                    },
                )
            } else {
                // Symlink permissions are meaningless on Linux.
                flags.perms = false;
                let any = flags.owner || flags.group || flags.time;
                Decision::new(
                    if any {
                        Action::SetMeta
                    } else {
                        Action::Unchanged
                    },
                    flags,
                )
            }
        }
        _ => {
            if src.kind().is_device() && src.rdev() != dst.rdev() {
                let mut d = decide(src, None, opts);
                d.replace = true;
                return d;
            }
            let any = flags.perms || flags.owner || flags.group || flags.time;
            Decision::new(
                if any {
                    Action::SetMeta
                } else {
                    Action::Unchanged
                },
                flags,
            )
        }
    }
}

/// Which replayed metadata differs; times by [`same_time`], the rest as the executor sees it.
fn meta_flags(src: &Entry, dst: &Entry, m: &MetaOptions) -> ChangeFlags {
    let d = crate::exec::meta::diff(src, dst, m);
    ChangeFlags {
        perms: d.perms,
        owner: d.owner,
        group: d.group,
        time: m.times && !same_time(src.mtime(), dst.mtime()),
        ..ChangeFlags::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::EntryParts;

    fn e(kind: EntryKind, size: u64, sec: i64, nsec: u32, mode: u32) -> Entry {
        Entry::from_parts(EntryParts {
            path: b"x".to_vec().into(),
            kind: Some(kind),
            size,
            mtime: Timestamp { sec, nsec },
            mode,
            target: (kind == EntryKind::Symlink).then(|| b"t".to_vec().into()),
            ..Default::default()
        })
    }

    fn all() -> CompareOptions {
        CompareOptions {
            meta: MetaOptions {
                perms: true,
                times: true,
                owner: true,
                group: true,
            },
            ..Default::default()
        }
    }

    #[test]
    fn quick_check() {
        let o = all();
        let f = |size, sec, nsec| e(EntryKind::File, size, sec, nsec, 0o644);
        assert_eq!(
            decide(&f(10, 5, 1), Some(&f(10, 5, 1)), &o).action,
            Action::Unchanged
        );
        assert_eq!(
            decide(&f(10, 5, 1), Some(&f(10, 5, 0)), &o).action,
            Action::Unchanged,
            "one side without ns"
        );
        assert_eq!(
            decide(&f(10, 5, 1), Some(&f(10, 5, 2)), &o).action,
            Action::Update,
            "ns differ"
        );
        assert_eq!(
            decide(&f(10, 5, 1), Some(&f(11, 5, 1)), &o).action,
            Action::Update
        );
        assert_eq!(decide(&f(10, 5, 1), None, &o).action, Action::Create);
        let c = CompareOptions {
            checksum: true,
            ..o
        };
        assert_eq!(
            decide(&f(10, 5, 1), Some(&f(10, 6, 1)), &c).action,
            Action::Checksum
        );
        assert_eq!(
            decide(&f(10, 5, 1), Some(&f(11, 5, 1)), &c).action,
            Action::Update,
            "size decides first"
        );
        let s = CompareOptions {
            size_only: true,
            ..o
        };
        assert_eq!(
            decide(&f(10, 5, 1), Some(&f(10, 9, 1)), &s).action,
            Action::SetMeta,
            "data kept, time fixed"
        );
        assert_eq!(
            decide(&f(10, 5, 1), Some(&f(10, 5, 1)), &s).action,
            Action::Unchanged
        );
        let i = CompareOptions {
            ignore_times: true,
            ..o
        };
        assert_eq!(
            decide(&f(10, 5, 1), Some(&f(10, 5, 1)), &i).action,
            Action::Update
        );
    }

    #[test]
    fn metadata_and_kinds() {
        let o = all();
        let d = decide(
            &e(EntryKind::File, 1, 1, 0, 0o600),
            Some(&e(EntryKind::File, 1, 1, 0, 0o644)),
            &o,
        );
        assert_eq!((d.action, d.flags.perms), (Action::SetMeta, true));
        let d = decide(
            &e(EntryKind::Dir, 0, 1, 0, 0o755),
            Some(&e(EntryKind::File, 1, 1, 0, 0o644)),
            &o,
        );
        assert_eq!((d.action, d.replace), (Action::Mkdir, true));
        let d = decide(
            &e(EntryKind::Symlink, 0, 1, 0, 0o777),
            Some(&e(EntryKind::Symlink, 0, 1, 0, 0o755)),
            &o,
        );
        assert_eq!(
            d.action,
            Action::Unchanged,
            "symlink modes are not compared"
        );
        let no_perms = CompareOptions {
            meta: MetaOptions {
                perms: false,
                ..o.meta
            },
            ..o
        };
        assert_eq!(
            decide(
                &e(EntryKind::File, 1, 1, 0, 0o600),
                Some(&e(EntryKind::File, 1, 1, 0, 0o644)),
                &no_perms
            )
            .action,
            Action::Unchanged
        );
    }

    #[test]
    fn robocopy_and_rsync_skips() {
        let old = e(EntryKind::File, 1, 100, 0, 0o644);
        let new = e(EntryKind::File, 2, 200, 0, 0o644);
        let xo = CompareOptions {
            skip_older: true,
            ..all()
        };
        assert_eq!(decide(&old, Some(&new), &xo).action, Action::Skip);
        assert_eq!(decide(&new, Some(&old), &xo).action, Action::Update);
        let xn = CompareOptions {
            skip_newer: true,
            ..all()
        };
        assert_eq!(decide(&new, Some(&old), &xn).action, Action::Skip);
        let xl = CompareOptions {
            skip_new: true,
            ..all()
        };
        assert_eq!(decide(&new, None, &xl).action, Action::Skip);
        let xc = CompareOptions {
            skip_changed: true,
            ..all()
        };
        assert_eq!(
            decide(
                &e(EntryKind::File, 1, 100, 0, 0o644),
                Some(&e(EntryKind::File, 2, 100, 0, 0o644)),
                &xc
            )
            .action,
            Action::Skip
        );
        let ie = CompareOptions {
            ignore_existing: true,
            ..all()
        };
        assert_eq!(decide(&new, Some(&old), &ie).action, Action::Skip);
        let u = CompareOptions {
            skip_newer_dst: true,
            ..all()
        };
        assert_eq!(decide(&old, Some(&new), &u).action, Action::Skip);
    }
}
