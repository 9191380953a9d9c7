//! The platform calls of the walk, each behind one safe function: opening a directory relative
//! to its parent's descriptor without following links, `lstat` and `readlink` relative to a
//! directory descriptor, and reading a directory's names.
//!
//! On Linux names are read with `getdents64` straight into a buffer we own (the descriptor
//! stays ours for the `fstatat` calls that follow); elsewhere, and as the reference the Linux
//! reader is tested against, with `fdopendir`/`readdir` on a duplicate descriptor.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn dirfd(dir: Option<BorrowedFd<'_>>) -> RawFd {
    dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd())
}

/// Opens the directory `name` relative to `dir` (or the working directory) for reading. Without
/// `follow`, a symlink in the last component is refused (Linux says `ENOTDIR`, some systems
/// `ELOOP`); a non-directory fails with `ENOTDIR`. The access time is left alone where the OS
/// allows.
pub(crate) fn open_dir_at(
    dir: Option<BorrowedFd<'_>>,
    name: &CStr,
    follow: bool,
) -> io::Result<OwnedFd> {
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // O_NOATIME needs ownership (or CAP_FOWNER): fall back when refused.
        match openat(dirfd(dir), name, flags | libc::O_NOATIME) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            other => return other,
        }
    }
    openat(dirfd(dir), name, flags)
}

fn openat(dirfd: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is NUL-terminated and outlives the call; `dirfd` is AT_FDCWD or a
        // descriptor borrowed for the duration of the call. No pointer is retained.
        let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags) };
        if fd >= 0 {
            // SAFETY: a non-negative return is a fresh descriptor nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `fstatat(dir, name)`; without `follow`, a symlink is described itself (`lstat`).
pub(crate) fn stat_at(
    dir: Option<BorrowedFd<'_>>,
    name: &CStr,
    follow: bool,
) -> io::Result<libc::stat> {
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated, `st` is valid for writes of one `stat`, `dir` is
    // AT_FDCWD or borrowed for the call. On success the kernel has filled `st`.
    let r = unsafe { libc::fstatat(dirfd(dir), name.as_ptr(), st.as_mut_ptr(), flags) };
    if r == 0 {
        // SAFETY: fstatat returned 0, so `st` is initialised.
        Ok(unsafe { st.assume_init() })
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `fstat` of an open descriptor.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of one `stat`; `fd` is open for the call.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) };
    if r == 0 {
        // SAFETY: fstat returned 0, so `st` is initialised.
        Ok(unsafe { st.assume_init() })
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The target of the symlink `name` relative to `dir`; `size_hint` is its `st_size`.
pub(crate) fn read_link_at(
    dir: Option<BorrowedFd<'_>>,
    name: &CStr,
    size_hint: usize,
) -> io::Result<Vec<u8>> {
    // One byte more than expected, so that a target that grew is noticed and read again.
    let mut cap = size_hint.clamp(63, 1 << 20) + 1;
    loop {
        let mut buf = Vec::<u8>::with_capacity(cap);
        // SAFETY: `buf` has room for `cap` bytes and readlinkat writes at most `cap`; `name` is
        // NUL-terminated; `dir` is AT_FDCWD or borrowed for the call.
        let n =
            unsafe { libc::readlinkat(dirfd(dir), name.as_ptr(), buf.as_mut_ptr().cast(), cap) };
        let Ok(n) = usize::try_from(n) else {
            return Err(io::Error::last_os_error());
        };
        if n < cap {
            // SAFETY: readlinkat initialised the first `n` bytes, and `n < cap`.
            unsafe { buf.set_len(n) };
            return Ok(buf);
        }
        if cap >= 1 << 24 {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        cap *= 4;
    }
}

/// Calls `each` with every name in the directory (including `.` and `..`), each with its
/// terminating NUL. `buf` is scratch space reused between calls.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn read_dir_names(
    dir: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    mut each: impl FnMut(&[u8]),
) -> io::Result<()> {
    // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    const NAME_AT: usize = 19;
    buf.resize(64 * 1024, 0);
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes and the kernel writes at most
        // that many; `dir` is open for the call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        let Ok(n) = usize::try_from(n) else {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        };
        if n == 0 {
            return Ok(());
        }
        let data = buf.get(..n).unwrap_or_default();
        let mut off = 0;
        while off < data.len() {
            let rec = data.get(off..).unwrap_or_default();
            let reclen = match rec.get(16..18) {
                Some(b) => usize::from(u16::from_ne_bytes([b[0], b[1]])),
                None => 0,
            };
            let Some(name) = rec.get(NAME_AT..reclen) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed directory record",
                ));
            };
            let Some(nul) = name.iter().position(|&c| c == 0) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "directory record name without terminator",
                ));
            };
            each(&name[..=nul]);
            off += reclen;
        }
    }
}

/// Calls `each` with every name in the directory (including `.` and `..`), each with its
/// terminating NUL, through `fdopendir`/`readdir` on a duplicate of `dir`.
#[cfg(any(test, not(any(target_os = "linux", target_os = "android"))))]
pub(crate) fn read_dir_names_portable(
    dir: BorrowedFd<'_>,
    _buf: &mut Vec<u8>,
    mut each: impl FnMut(&[u8]),
) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    let dup = dir.try_clone_to_owned()?.into_raw_fd();
    // SAFETY: `dup` is a descriptor we own; on success fdopendir takes it over (closedir
    // closes it), on failure we close it ourselves.
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `dup` is still ours to close.
        drop(unsafe { OwnedFd::from_raw_fd(dup) });
        return Err(err);
    }
    // The duplicate shares the file offset with `dir`: start from the beginning.
    // SAFETY: `stream` is a valid, open directory stream.
    unsafe { libc::rewinddir(stream) };
    let result = loop {
        set_errno(0);
        // SAFETY: `stream` is a valid, open directory stream.
        let ent = unsafe { libc::readdir(stream) };
        if ent.is_null() {
            let err = io::Error::last_os_error();
            break match err.raw_os_error() {
                Some(0) | None => Ok(()),
                Some(_) => Err(err),
            };
        }
        // SAFETY: a non-null `readdir` result points at a valid entry whose `d_name` is
        // NUL-terminated; we copy out of it before the next call on the stream.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        each(name.to_bytes_with_nul());
    };
    // SAFETY: `stream` is valid and not used after this call.
    unsafe { libc::closedir(stream) };
    result
}

#[cfg(any(test, not(any(target_os = "linux", target_os = "android"))))]
fn set_errno(value: i32) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: __errno_location returns this thread's errno slot, valid for writes.
    unsafe {
        *libc::__errno_location() = value
    };
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    // SAFETY: __error returns this thread's errno slot, valid for writes.
    unsafe {
        *libc::__error() = value
    };
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) use read_dir_names_portable as read_dir_names;

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStrExt;

    fn c(p: &std::path::Path) -> CString {
        CString::new(p.as_os_str().as_bytes()).unwrap()
    }

    #[test]
    fn getdents_matches_readdir() {
        let dir = tempfile::tempdir().unwrap();
        // Enough long names (about 180 KB of records) to need several getdents calls.
        for i in 0..800 {
            std::fs::write(dir.path().join(format!("{i:0>200}")), b"").unwrap();
        }
        std::fs::write(
            dir.path().join(std::ffi::OsStr::from_bytes(b"\xff\x01")),
            b"",
        )
        .unwrap();
        let fd = open_dir_at(None, &c(dir.path()), false).unwrap();
        let mut buf = Vec::new();
        let mut fast = Vec::new();
        read_dir_names(fd.as_fd(), &mut buf, |n| fast.push(n.to_vec())).unwrap();
        let fd2 = open_dir_at(None, &c(dir.path()), false).unwrap();
        let mut slow = Vec::new();
        read_dir_names_portable(fd2.as_fd(), &mut buf, |n| slow.push(n.to_vec())).unwrap();
        fast.sort();
        slow.sort();
        assert_eq!(fast.len(), 803);
        assert_eq!(fast, slow);
        assert!(fast.contains(&b".\0".to_vec()));
        assert!(fast.contains(&b"\xff\x01\0".to_vec()));
    }

    #[test]
    fn open_refuses_symlinks_and_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("d", dir.path().join("l")).unwrap();
        let root = open_dir_at(None, &c(dir.path()), false).unwrap();
        let at = |n: &str, follow| {
            open_dir_at(Some(root.as_fd()), &CString::new(n).unwrap(), follow)
                .map(drop)
                .map_err(|e| e.raw_os_error())
        };
        assert_eq!(at("d", false), Ok(()));
        let refused = at("l", false);
        assert!(
            refused == Err(Some(libc::ENOTDIR)) || refused == Err(Some(libc::ELOOP)),
            "{refused:?}"
        );
        assert_eq!(at("l", true), Ok(()));
        assert_eq!(at("f", false), Err(Some(libc::ENOTDIR)));
        assert_eq!(at("nope", false), Err(Some(libc::ENOENT)));
    }

    #[test]
    fn stat_and_readlink_relative() {
        let dir = tempfile::tempdir().unwrap();
        let long = "t/".repeat(150);
        std::os::unix::fs::symlink(&long, dir.path().join("l")).unwrap();
        let root = open_dir_at(None, &c(dir.path()), false).unwrap();
        let name = CString::new("l").unwrap();
        let st = stat_at(Some(root.as_fd()), &name, false).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
        // A too-small hint still reads the whole target.
        let t = read_link_at(Some(root.as_fd()), &name, 1).unwrap();
        assert_eq!(t, long.as_bytes());
        assert_eq!(
            stat_at(Some(root.as_fd()), &name, true)
                .map_err(|e| e.raw_os_error())
                .err(),
            Some(Some(libc::ENOENT))
        );
        let st = fstat(root.as_fd()).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFDIR);
    }
}
