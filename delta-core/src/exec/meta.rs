//! Metadata replay: which of an entry's permission bits, owner, group and modification time to
//! carry over ([`MetaOptions`]), whether a destination entry already has them ([`differs`]), and
//! applying them to an open descriptor ([`apply_fd`]) or to a name beside a directory
//! descriptor ([`apply_at`]), never following a symlink.
//!
//! Order matters: the owner is set first, because `chown` clears setuid and setgid; the mode
//! next; the time last, so that nothing after it moves it. Access times are left alone
//! (`UTIME_OMIT`), as rsync does. Owner and group are only changed where the kernel would let
//! us: as root, or to our own user id and our own groups; other ids are silently kept, like
//! rsync without super-user rights. Ownership changes stay on the link itself for symlinks,
//! and a symlink's mode is never touched (Linux ignores it).
//!
//! This module uses only the scan entry model; the confined tree operations ([`crate::tree`])
//! call into it.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::OnceLock;

use crate::scan::{Entry, EntryKind, Timestamp};

/// Which metadata to replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaOptions {
    /// Permission bits, including setuid, setgid and sticky.
    pub perms: bool,
    /// Modification time, to the nanosecond.
    pub times: bool,
    /// Owner (effective as root, or when it is our own user id).
    pub owner: bool,
    /// Group (effective as root, or when it is one of our groups).
    pub group: bool,
}

/// The metadata of one entry that can be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// What the entry is (a symlink's mode is never applied).
    pub kind: EntryKind,
}

impl Meta {
    /// The replayable metadata of a scanned entry.
    pub fn of(entry: &Entry) -> Meta {
        Meta {
            mode: entry.mode() & 0o7777,
            uid: entry.uid(),
            gid: entry.gid(),
            mtime: entry.mtime(),
            kind: entry.kind(),
        }
    }
}

/// Applies `meta` to an open file or directory: owner and group, then mode, then time.
///
/// The descriptor must be opened for reading or writing (not `O_PATH`): `fchmod` and
/// `futimens` refuse path-only descriptors.
pub fn apply_fd(fd: BorrowedFd<'_>, meta: &Meta, opts: &MetaOptions) -> io::Result<()> {
    let creds = Creds::current();
    if let Some((uid, gid)) = owner_change(meta, opts, creds) {
        sys::fchown(fd, uid, gid)?;
    }
    if opts.perms && meta.kind != EntryKind::Symlink {
        sys::fchmod(fd, meta.mode & 0o7777)?;
    }
    if opts.times {
        sys::futimens(fd, meta.mtime)?;
    }
    Ok(())
}

/// As [`apply_fd`], for a regular file this process has just created: what the file already
/// has (its owner and group, its permission bits) is not set again. One `fstat` then stands
/// for a `chown` and a `chmod` per new file in the common case (a copy run by the files'
/// owner, or permission bits given at creation).
pub fn apply_new_fd(fd: BorrowedFd<'_>, meta: &Meta, opts: &MetaOptions) -> io::Result<()> {
    let (uid_now, gid_now, mode_now) = sys::fstat_ids(fd)?;
    let mut chowned = false;
    if let Some((uid, gid)) = owner_change(meta, opts, Creds::current()) {
        let uid = if uid == uid_now { u32::MAX } else { uid };
        let gid = if gid == gid_now { u32::MAX } else { gid };
        if uid != u32::MAX || gid != u32::MAX {
            sys::fchown(fd, uid, gid)?;
            chowned = true;
        }
    }
    if opts.perms && meta.kind != EntryKind::Symlink {
        let want = meta.mode & 0o7777;
        // A chown clears the set-id bits, so those are set again after one.
        if mode_now & 0o7777 != want || (chowned && want & 0o7000 != 0) {
            sys::fchmod(fd, want)?;
        }
    }
    if opts.times {
        sys::futimens(fd, meta.mtime)?;
    }
    Ok(())
}

/// Applies `meta` to `name` in the directory `dir` without following a symlink at `name`:
/// owner and group (of the link itself for a symlink), then mode (never for a symlink; if
/// `name` turns out to be a symlink anyway the change fails rather than follow it), then time.
pub fn apply_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    meta: &Meta,
    opts: &MetaOptions,
) -> io::Result<()> {
    let creds = Creds::current();
    if let Some((uid, gid)) = owner_change(meta, opts, creds) {
        sys::fchownat_nofollow(dir, name, uid, gid)?;
    }
    if opts.perms && meta.kind != EntryKind::Symlink {
        sys::fchmodat_nofollow(dir, name, meta.mode & 0o7777)?;
    }
    if opts.times {
        sys::utimensat_nofollow(dir, name, meta.mtime)?;
    }
    Ok(())
}

/// The process's file-creation mask, read once from `/proc/self/status` (reading it with
/// `umask(2)` would briefly change it under other threads); 0o022 if unknown.
pub fn umask() -> u32 {
    static MASK: OnceLock<u32> = OnceLock::new();
    *MASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:").map(|v| v.trim().to_string()))
            })
            .and_then(|v| u32::from_str_radix(&v, 8).ok())
            .unwrap_or(0o022)
    })
}

/// Which metadata applying `src`'s to `dst` under `opts` would change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaDiff {
    /// Permission bits (never for symlinks).
    pub perms: bool,
    /// Owner, where we may set it.
    pub owner: bool,
    /// Group, where we may set it.
    pub group: bool,
    /// Modification time, to the nanosecond.
    pub time: bool,
}

impl MetaDiff {
    /// Whether anything differs.
    pub fn any(self) -> bool {
        self.perms || self.owner || self.group || self.time
    }
}

/// What applying `src`'s metadata to `dst` under `opts` would change: permission bits (never
/// for symlinks), owner and group where we may set them, and the modification time to the
/// nanosecond. The kinds are not compared; a kind change is a replacement, not a metadata
/// update.
pub fn diff(src: &Entry, dst: &Entry, opts: &MetaOptions) -> MetaDiff {
    diff_as(src, dst, opts, Creds::current())
}

/// Whether [`diff`] finds anything.
pub fn differs(src: &Entry, dst: &Entry, opts: &MetaOptions) -> bool {
    diff(src, dst, opts).any()
}

fn diff_as(src: &Entry, dst: &Entry, opts: &MetaOptions, creds: &Creds) -> MetaDiff {
    let symlink = src.kind() == EntryKind::Symlink || dst.kind() == EntryKind::Symlink;
    MetaDiff {
        perms: opts.perms && !symlink && src.mode() & 0o7777 != dst.mode() & 0o7777,
        owner: opts.owner && creds.may_set_uid(src.uid()) && src.uid() != dst.uid(),
        group: opts.group && creds.may_set_gid(src.gid()) && src.gid() != dst.gid(),
        time: opts.times && src.mtime() != dst.mtime(),
    }
}

/// The `(uid, gid)` arguments of a `chown` (`u32::MAX` = keep), or `None` when neither is to
/// be set.
fn owner_change(meta: &Meta, opts: &MetaOptions, creds: &Creds) -> Option<(u32, u32)> {
    let uid = if opts.owner && creds.may_set_uid(meta.uid) {
        meta.uid
    } else {
        u32::MAX
    };
    let gid = if opts.group && creds.may_set_gid(meta.gid) {
        meta.gid
    } else {
        u32::MAX
    };
    (uid != u32::MAX || gid != u32::MAX).then_some((uid, gid))
}

/// Who we are, for deciding which owners and groups we may set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Creds {
    euid: u32,
    egid: u32,
    groups: Vec<u32>,
}

impl Creds {
    /// The process's credentials, read once (a file copier does not change them mid-run).
    fn current() -> &'static Creds {
        static CREDS: OnceLock<Creds> = OnceLock::new();
        CREDS.get_or_init(|| Creds {
            euid: sys::geteuid(),
            egid: sys::getegid(),
            groups: sys::getgroups(),
        })
    }

    fn may_set_uid(&self, uid: u32) -> bool {
        self.euid == 0 || uid == self.euid
    }

    fn may_set_gid(&self, gid: u32) -> bool {
        self.euid == 0 || gid == self.egid || self.groups.contains(&gid)
    }
}

/// The platform calls, each behind one safe function.
mod sys {
    use super::*;

    fn check(r: libc::c_int) -> io::Result<()> {
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `[atime, mtime]` for `futimens`/`utimensat`: the access time is left alone.
    fn times(mtime: Timestamp) -> [libc::timespec; 2] {
        [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            libc::timespec {
                tv_sec: mtime.sec as libc::time_t,
                // `Entry` keeps nanoseconds below one second, so this fits any `c_long`.
                tv_nsec: mtime.nsec.min(999_999_999) as libc::c_long,
            },
        ]
    }

    pub(super) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
        // SAFETY: plain integer arguments; `fd` is open for the call.
        check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })
    }

    /// The owner, group and mode of the open file `fd`.
    pub(super) fn fstat_ids(fd: BorrowedFd<'_>) -> io::Result<(u32, u32, u32)> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `st` is valid for writes of one `stat`; `fd` is open for the call.
        check(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
        // SAFETY: fstat succeeded, so it filled `st`.
        let st = unsafe { st.assume_init() };
        Ok((st.st_uid, st.st_gid, st.st_mode))
    }

    pub(super) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
        // SAFETY: plain integer arguments; `fd` is open for the call.
        check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })
    }

    pub(super) fn futimens(fd: BorrowedFd<'_>, mtime: Timestamp) -> io::Result<()> {
        let ts = times(mtime);
        // SAFETY: `ts` points at two valid timespecs that outlive the call; `fd` is open.
        check(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })
    }

    pub(super) fn fchownat_nofollow(
        dir: BorrowedFd<'_>,
        name: &CStr,
        uid: u32,
        gid: u32,
    ) -> io::Result<()> {
        // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is open for the call.
        check(unsafe {
            libc::fchownat(
                dir.as_raw_fd(),
                name.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    pub(super) fn utimensat_nofollow(
        dir: BorrowedFd<'_>,
        name: &CStr,
        mtime: Timestamp,
    ) -> io::Result<()> {
        let ts = times(mtime);
        // SAFETY: `name` is NUL-terminated, `ts` holds two valid timespecs, both outlive the
        // call; `dir` is open for the call.
        check(unsafe {
            libc::utimensat(
                dir.as_raw_fd(),
                name.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// `chmod` of `name` without following a symlink there (which fails with `EOPNOTSUPP`).
    ///
    /// Plain `fchmodat` has no working no-follow flag in the kernel before 6.6: `fchmodat2`
    /// does it in one call; where it is missing, the C library emulates the flag safely (an
    /// `O_PATH` descriptor pinned to the inode, refused if it is a symlink, then a chmod
    /// through `/proc/self/fd`).
    pub(super) fn fchmodat_nofollow(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
        #[cfg(all(
            target_os = "linux",
            any(
                target_arch = "x86_64",
                target_arch = "aarch64",
                target_arch = "riscv64"
            )
        ))]
        {
            use std::sync::atomic::{AtomicBool, Ordering};
            const SYS_FCHMODAT2: libc::c_long = 452;
            static MISSING: AtomicBool = AtomicBool::new(false);
            if !MISSING.load(Ordering::Relaxed) {
                // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is open for
                // the call; the other arguments are integers.
                let r = unsafe {
                    libc::syscall(
                        SYS_FCHMODAT2,
                        dir.as_raw_fd(),
                        name.as_ptr(),
                        mode as libc::mode_t,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                if r == 0 {
                    return Ok(());
                }
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ENOSYS) {
                    return Err(err);
                }
                MISSING.store(true, Ordering::Relaxed);
            }
        }
        // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is open for the call.
        check(unsafe {
            libc::fchmodat(
                dir.as_raw_fd(),
                name.as_ptr(),
                mode as libc::mode_t,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    pub(super) fn geteuid() -> u32 {
        // SAFETY: no arguments; always succeeds.
        unsafe { libc::geteuid() }
    }

    pub(super) fn getegid() -> u32 {
        // SAFETY: no arguments; always succeeds.
        unsafe { libc::getegid() }
    }

    /// The supplementary groups; empty if they cannot be read.
    pub(super) fn getgroups() -> Vec<u32> {
        for _ in 0..4 {
            // SAFETY: a zero count asks for the number of groups only; nothing is written.
            let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
            let Ok(len) = usize::try_from(n) else {
                return Vec::new();
            };
            let mut groups = vec![0 as libc::gid_t; len];
            // SAFETY: `groups` has room for `n` gids and getgroups writes at most `n`.
            let got = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
            // The list may have grown in between (EINVAL): ask again.
            if let Ok(got) = usize::try_from(got) {
                groups.truncate(got);
                return groups;
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::EntryParts;
    use std::ffi::CString;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn ts(sec: i64, nsec: u32) -> Timestamp {
        Timestamp { sec, nsec }
    }

    fn meta(kind: EntryKind, mode: u32, mtime: Timestamp) -> Meta {
        Meta {
            mode,
            uid: sys::geteuid(),
            gid: sys::getegid(),
            mtime,
            kind,
        }
    }

    const ALL: MetaOptions = MetaOptions {
        perms: true,
        times: true,
        owner: true,
        group: true,
    };

    fn mtime_of(p: &Path) -> Timestamp {
        let md = std::fs::symlink_metadata(p).unwrap();
        ts(md.mtime(), md.mtime_nsec() as u32)
    }

    fn dir_fd(p: &Path) -> std::fs::File {
        std::fs::File::open(p).unwrap()
    }

    fn cname(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn is_root() -> bool {
        sys::geteuid() == 0
    }

    #[test]
    fn file_mode_and_ns_time_via_fd() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let m = meta(EntryKind::File, 0o4751, ts(1_234_567_890, 123_456_789));
        apply_fd(f.as_fd(), &m, &ALL).unwrap();
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o4751);
        assert_eq!(mtime_of(&p), m.mtime);
        // Times before 1970 too.
        let m = meta(EntryKind::File, 0o640, ts(-86_400, 1));
        apply_fd(f.as_fd(), &m, &ALL).unwrap();
        assert_eq!(mtime_of(&p), m.mtime);
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
    }

    #[test]
    fn only_selected_fields_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let before = std::fs::metadata(&p).unwrap();
        let m = meta(EntryKind::File, 0o600, ts(5, 5));
        let times_only = MetaOptions {
            times: true,
            ..Default::default()
        };
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        apply_fd(f.as_fd(), &m, &times_only).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(mtime_of(&p), ts(5, 5));
        let perms_only = MetaOptions {
            perms: true,
            ..Default::default()
        };
        let m2 = meta(EntryKind::File, 0o600, ts(9, 9));
        apply_fd(f.as_fd(), &m2, &perms_only).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(mtime_of(&p), ts(5, 5));
        assert_eq!(std::fs::metadata(&p).unwrap().uid(), before.uid());
    }

    #[test]
    fn a_new_file_gets_what_it_lacks_and_keeps_its_set_id_bits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let me = std::fs::metadata(&p).unwrap();
        // Same owner, same bits: only the time changes.
        let m = Meta {
            mode: 0o644,
            uid: me.uid(),
            gid: me.gid(),
            mtime: ts(7, 7),
            kind: EntryKind::File,
        };
        apply_new_fd(f.as_fd(), &m, &ALL).unwrap();
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o7777),
            (me.uid(), me.gid(), 0o644)
        );
        assert_eq!(mtime_of(&p), ts(7, 7));
        // Other bits are set.
        apply_new_fd(f.as_fd(), &Meta { mode: 0o4750, ..m }, &ALL).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o4750);
        if is_root() {
            // Another owner: the chown clears the set-id bits, which are set again after it
            // even though the file had them before.
            let m = Meta {
                mode: 0o6750,
                uid: 12345,
                gid: 23456,
                ..m
            };
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o6750))
                .unwrap();
            apply_new_fd(f.as_fd(), &m, &ALL).unwrap();
            let md = std::fs::metadata(&p).unwrap();
            assert_eq!((md.uid(), md.gid()), (12345, 23456));
            assert_eq!(md.mode() & 0o7777, 0o6750);
        }
    }

    #[test]
    fn owner_then_mode_keeps_setuid() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let m = Meta {
            mode: 0o6755,
            uid: 12345,
            gid: 23456,
            mtime: ts(1_000_000_000, 999_999_999),
            kind: EntryKind::File,
        };
        apply_fd(f.as_fd(), &m, &ALL).unwrap();
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!((md.uid(), md.gid()), (12345, 23456));
        assert_eq!(md.mode() & 0o7777, 0o6755, "chown ran before chmod");
        assert_eq!(mtime_of(&p), m.mtime);
        // A second owner change without perms clears setuid (the kernel does): the reason for
        // the order above.
        let m2 = Meta { uid: 12346, ..m };
        let owner_only = MetaOptions {
            owner: true,
            ..Default::default()
        };
        apply_fd(f.as_fd(), &m2, &owner_only).unwrap();
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(md.uid(), 12346);
        assert_eq!(md.gid(), 23456, "group kept when not selected");
        assert_eq!(md.mode() & 0o4000, 0);
    }

    #[test]
    fn at_name_on_dirs_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir_fd(dir.path());
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("t");
        std::fs::write(&target, b"t").unwrap();
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let target_before = std::fs::metadata(&target).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("l")).unwrap();
        let m = meta(EntryKind::Dir, 0o1750, ts(1_500_000_000, 42));
        apply_at(root.as_fd(), &cname("d"), &m, &ALL).unwrap();
        let md = std::fs::symlink_metadata(dir.path().join("d")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o1750);
        assert_eq!(mtime_of(&dir.path().join("d")), m.mtime);

        // A symlink: its own time changes, the target is untouched.
        let m = meta(EntryKind::Symlink, 0o777, ts(123, 456_789));
        apply_at(root.as_fd(), &cname("l"), &m, &ALL).unwrap();
        assert_eq!(mtime_of(&dir.path().join("l")), m.mtime);
        // A symlink where a file was expected: the mode change is refused, not followed.
        let m = meta(EntryKind::File, 0o777, ts(1, 1));
        assert!(apply_at(root.as_fd(), &cname("l"), &m, &ALL).is_err());
        let after = std::fs::metadata(&target).unwrap();
        assert_eq!(after.mode(), target_before.mode());
        assert_eq!(after.mtime(), target_before.mtime());
        assert_eq!(after.mtime_nsec(), target_before.mtime_nsec());
        assert_eq!(std::fs::read(&target).unwrap(), b"t");
    }

    #[test]
    fn symlink_owner_changes_the_link_itself() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir_fd(dir.path());
        let target = dir.path().join("t");
        std::fs::write(&target, b"t").unwrap();
        std::os::unix::fs::symlink("t", dir.path().join("l")).unwrap();
        let m = Meta {
            mode: 0o777,
            uid: 12345,
            gid: 23456,
            mtime: ts(99, 1),
            kind: EntryKind::Symlink,
        };
        apply_at(root.as_fd(), &cname("l"), &m, &ALL).unwrap();
        let l = std::fs::symlink_metadata(dir.path().join("l")).unwrap();
        assert_eq!((l.uid(), l.gid()), (12345, 23456));
        let t = std::fs::metadata(&target).unwrap();
        assert_eq!((t.uid(), t.gid()), (0, 0));
    }

    fn entry(kind: EntryKind, mode: u32, uid: u32, gid: u32, mtime: Timestamp) -> Entry {
        Entry::from_parts(EntryParts {
            path: b"x".to_vec().into(),
            kind: Some(kind),
            mode,
            uid,
            gid,
            mtime,
            target: (kind == EntryKind::Symlink).then(|| b"t".to_vec().into()),
            ..Default::default()
        })
    }

    #[test]
    fn differs_truth_table() {
        let root = Creds {
            euid: 0,
            egid: 0,
            groups: vec![],
        };
        let user = Creds {
            euid: 1000,
            egid: 100,
            groups: vec![200],
        };
        let t = ts(10, 5);
        let base = entry(EntryKind::File, 0o644, 1000, 100, t);
        let none = MetaOptions::default();
        let perms = MetaOptions {
            perms: true,
            ..none
        };
        let times = MetaOptions {
            times: true,
            ..none
        };
        let owner = MetaOptions {
            owner: true,
            ..none
        };
        let group = MetaOptions {
            group: true,
            ..none
        };
        let f = |kind, mode, uid, gid, mtime| entry(kind, mode, uid, gid, mtime);
        // (src, dst, opts, as root, as user)
        let cases = [
            (base.clone(), base.clone(), ALL, false, false),
            (
                base.clone(),
                f(EntryKind::File, 0o4644, 1000, 100, t),
                none,
                false,
                false,
            ),
            (
                base.clone(),
                f(EntryKind::File, 0o4644, 1000, 100, t),
                perms,
                true,
                true,
            ),
            (
                base.clone(),
                f(EntryKind::File, 0o644, 1000, 100, ts(10, 6)),
                perms,
                false,
                false,
            ),
            (
                base.clone(),
                f(EntryKind::File, 0o644, 1000, 100, ts(10, 6)),
                times,
                true,
                true,
            ),
            // Source owned by us: the user may set it; owned by another: only root may.
            (
                base.clone(),
                f(EntryKind::File, 0o644, 7, 100, t),
                owner,
                true,
                true,
            ),
            (
                f(EntryKind::File, 0o644, 7, 100, t),
                base.clone(),
                owner,
                true,
                false,
            ),
            (
                base.clone(),
                f(EntryKind::File, 0o644, 7, 100, t),
                group,
                false,
                false,
            ),
            // Groups: our primary and supplementary groups are ours to set.
            (
                f(EntryKind::File, 0o644, 1000, 200, t),
                base.clone(),
                group,
                true,
                true,
            ),
            (
                f(EntryKind::File, 0o644, 1000, 300, t),
                base.clone(),
                group,
                true,
                false,
            ),
            (
                f(EntryKind::File, 0o644, 1000, 300, t),
                base.clone(),
                owner,
                false,
                false,
            ),
            // Symlink permissions are never compared; their times are.
            (
                f(EntryKind::Symlink, 0o777, 1000, 100, t),
                f(EntryKind::Symlink, 0o755, 1000, 100, t),
                ALL,
                false,
                false,
            ),
            (
                f(EntryKind::Symlink, 0o777, 1000, 100, t),
                f(EntryKind::Symlink, 0o777, 1000, 100, ts(11, 5)),
                times,
                true,
                true,
            ),
            (
                f(EntryKind::Dir, 0o755, 1000, 100, t),
                f(EntryKind::Dir, 0o1755, 1000, 100, t),
                perms,
                true,
                true,
            ),
        ];
        for (i, (src, dst, opts, as_root, as_user)) in cases.iter().enumerate() {
            assert_eq!(
                diff_as(src, dst, opts, &root).any(),
                *as_root,
                "case {i} as root"
            );
            assert_eq!(
                diff_as(src, dst, opts, &user).any(),
                *as_user,
                "case {i} as user"
            );
        }
        assert!(!differs(&base, &base, &ALL));
    }

    #[test]
    fn umask_is_read_without_changing_it() {
        // SAFETY: umask only swaps the process mask; the original is restored at once.
        let real = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        assert_eq!(umask(), real as u32);
    }

    #[test]
    fn meta_of_entry() {
        let e = entry(EntryKind::Dir, 0o2755, 3, 4, ts(-1, 2));
        assert_eq!(
            Meta::of(&e),
            Meta {
                mode: 0o2755,
                uid: 3,
                gid: 4,
                mtime: ts(-1, 2),
                kind: EntryKind::Dir
            }
        );
    }

    #[test]
    fn owner_change_skips_ids_we_cannot_set() {
        let user = Creds {
            euid: 1000,
            egid: 100,
            groups: vec![],
        };
        let m = Meta {
            mode: 0,
            uid: 5,
            gid: 100,
            mtime: ts(0, 0),
            kind: EntryKind::File,
        };
        assert_eq!(owner_change(&m, &ALL, &user), Some((u32::MAX, 100)));
        let m = Meta { gid: 6, ..m };
        assert_eq!(owner_change(&m, &ALL, &user), None);
        assert_eq!(owner_change(&m, &MetaOptions::default(), &user), None);
    }
}
