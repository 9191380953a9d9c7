//! Confined tree operations: every file-system call the tree sync makes on a source or
//! destination tree goes through a [`Tree`], which resolves relative paths strictly beneath its
//! root and never follows a symlink inside it, so a link planted or swapped in anywhere in the
//! tree cannot redirect a read, a write or a deletion outside.
//!
//! Paths are relative, `/`-separated bytes without a leading slash; `b""` is the root. Empty,
//! `.` and `..` components, NUL bytes and absolute paths are refused with
//! [`io::ErrorKind::InvalidInput`] carrying a [`TreeError`]. Only the root itself may be reached
//! through a symlink (as with rsync, `dest -> /big/disk/dest` works).
//!
//! Resolution uses `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`
//! (Linux 5.6+): one system call, with the kernel enforcing the confinement. Where it is
//! missing or filtered (old kernels, seccomp profiles), paths are walked one component at a
//! time with `openat(O_NOFOLLOW | O_DIRECTORY)`. Each operation then acts on the last name
//! relative to its parent's descriptor with the no-follow variant of its call, and new entries
//! replace old ones by rename from a temporary name, so a reader sees the old entry or the
//! new one.
//!
//! The directories new entries go into are kept open for reuse (a few, most recently used;
//! see `DirCache`): a Maildir's thousands of messages per folder then cost one resolution
//! of the folder instead of one each. A kept directory is still the directory that was
//! resolved beneath the root; removing a directory through the tree forgets them all.
//!
//! New file content is written to an unnamed file (`O_TMPFILE`) where the file system and the
//! process allow it, linked as its target on commit (or, when the name is taken, linked under
//! a temporary name and renamed over it); elsewhere to a named temporary. Temporaries are named
//! like [`crate::replace`]'s (`.<name>.dstmp.<8 hex>`), so [`crate::replace::is_temp_name`]
//! recognises strays. Metadata is applied through [`crate::exec::meta`].

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::exec::meta::{self, Meta, MetaOptions};
use crate::scan::EntryKind;

/// Why a path or an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The path starts with `/`.
    #[error("path {0:?} is absolute")]
    Absolute(String),
    /// The path has an empty component (`a//b`, `a/`).
    #[error("path {0:?} has an empty component")]
    EmptyComponent(String),
    /// The path has a `.` or `..` component.
    #[error("path {0:?} has a `.` or `..` component")]
    DotComponent(String),
    /// The path or link target contains a NUL byte.
    #[error("{0:?} contains a nul byte")]
    Nul(String),
    /// The operation needs a name and was given the root.
    #[error("the tree root cannot be {0}")]
    Root(&'static str),
    /// A node of a kind `mknod` does not make.
    #[error("mode {0:#o} is not a fifo, socket or device")]
    NodeKind(u32),
    /// A file to be opened is not a regular file (it changed kind, or the plan was wrong).
    #[error("not a regular file")]
    NotRegularFile,
}

fn invalid(e: TreeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Checks that `rel` is a relative path beneath the root (`b""` is the root itself).
fn check_rel(rel: &[u8]) -> io::Result<()> {
    if rel.is_empty() {
        return Ok(());
    }
    if rel[0] == b'/' {
        return Err(invalid(TreeError::Absolute(lossy(rel))));
    }
    if rel.contains(&0) {
        return Err(invalid(TreeError::Nul(lossy(rel))));
    }
    for comp in rel.split(|&c| c == b'/') {
        match comp {
            b"" => return Err(invalid(TreeError::EmptyComponent(lossy(rel)))),
            b"." | b".." => return Err(invalid(TreeError::DotComponent(lossy(rel)))),
            _ => {}
        }
    }
    Ok(())
}

/// Splits a checked, non-root path into its parent directory and last name.
fn split<'a>(rel: &'a [u8], op: &'static str) -> io::Result<(&'a [u8], CString)> {
    check_rel(rel)?;
    if rel.is_empty() {
        return Err(invalid(TreeError::Root(op)));
    }
    let (parent, name) = match rel.iter().rposition(|&c| c == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&b""[..], rel),
    };
    Ok((parent, cstring(name)?))
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| invalid(TreeError::Nul(lossy(b))))
}

pub(crate) use crate::replace::temp_name;

/// How paths are resolved beneath the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolve {
    /// One `openat2` call; the kernel refuses symlinks and escapes.
    Openat2,
    /// `openat(O_NOFOLLOW)` one component at a time.
    Walk,
}

/// A parent directory: the root (borrowed), one opened for the operation, or one kept in
/// the tree's [`DirCache`].
enum Dir<'a> {
    Root(BorrowedFd<'a>),
    Owned(OwnedFd),
    Kept(Arc<OwnedFd>),
}

impl Dir<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Dir::Root(fd) => *fd,
            Dir::Owned(fd) => fd.as_fd(),
            Dir::Kept(fd) => fd.as_fd(),
        }
    }
}

/// Directories most recently resolved as parents, by relative path: the newest first, at
/// most [`DirCache::CAPACITY`].
#[derive(Debug, Default)]
struct DirCache {
    dirs: Mutex<KeptDirs>,
}

/// Relative paths and their directories, the most recently used first.
type KeptDirs = Vec<(Box<[u8]>, Arc<OwnedFd>)>;

impl DirCache {
    /// Enough for the folders a pass's transfers work in at once.
    const CAPACITY: usize = 16;

    fn lock(&self) -> std::sync::MutexGuard<'_, KeptDirs> {
        self.dirs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, rel_dir: &[u8]) -> Option<Arc<OwnedFd>> {
        let mut dirs = self.lock();
        let i = dirs.iter().position(|(p, _)| **p == *rel_dir)?;
        let fd = dirs[i].1.clone();
        if i > 0 {
            let hit = dirs.remove(i);
            dirs.insert(0, hit);
        }
        Some(fd)
    }

    fn put(&self, rel_dir: &[u8], fd: Arc<OwnedFd>) {
        let mut dirs = self.lock();
        if dirs.iter().any(|(p, _)| **p == *rel_dir) {
            return;
        }
        dirs.truncate(Self::CAPACITY - 1);
        dirs.insert(0, (rel_dir.into(), fd));
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

/// A directory tree whose entries are reached only beneath its root, never through a symlink.
#[derive(Debug)]
pub struct Tree {
    /// `O_PATH` descriptor of the root directory.
    root: Arc<OwnedFd>,
    root_path: PathBuf,
    resolve: Resolve,
    /// Parent directories kept open for the next entry in them.
    dirs: DirCache,
    /// New files may be unnamed until committed (see [`Tree::new_file_beside`]).
    unnamed: bool,
}

impl Tree {
    /// Opens an existing directory as a tree. A symlink naming the root itself is followed.
    pub fn open(root: &Path) -> io::Result<Tree> {
        let c = CString::new(root.as_os_str().as_bytes())
            .map_err(|_| invalid(TreeError::Nul(root.display().to_string())))?;
        let fd = sys::openat(
            None,
            &c,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )?;
        // Probe once per tree: kernels before 5.6 say ENOSYS, some seccomp filters EPERM.
        let resolve = match sys::openat2(
            fd.as_fd(),
            c".",
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        ) {
            Ok(_) => Resolve::Openat2,
            Err(_) => Resolve::Walk,
        };
        Ok(Tree {
            root: Arc::new(fd),
            root_path: root.to_path_buf(),
            resolve,
            dirs: DirCache::default(),
            unnamed: true,
        })
    }

    /// This tree's new files are always named temporaries (tests of that path, as on file
    /// systems without unnamed files).
    #[cfg(test)]
    pub(crate) fn named_temporaries_only(mut self) -> Self {
        self.unnamed = false;
        self
    }

    /// Creates the root directory and its missing parents, then opens it.
    pub fn create(root: &Path) -> io::Result<Tree> {
        std::fs::create_dir_all(root)?;
        Tree::open(root)
    }

    /// The path the tree was opened with.
    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// Opens the directory `rel_dir` for reading (listing it, or as the base of `*at` calls).
    pub fn open_dir(&self, rel_dir: &[u8]) -> io::Result<OwnedFd> {
        check_rel(rel_dir)?;
        self.open_dir_with(rel_dir, libc::O_RDONLY)
    }

    /// Opens the regular file `rel` for reading, without updating its access time where we
    /// may. A FIFO or device swapped in is refused without blocking or side effects on reads.
    pub fn open_read(&self, rel: &[u8]) -> io::Result<File> {
        check_rel(rel)?;
        if rel.is_empty() {
            return Err(invalid(TreeError::Root("opened as a file")));
        }
        // O_NOATIME needs ownership (or CAP_FOWNER): fall back when refused.
        let base = libc::O_RDONLY | libc::O_NONBLOCK;
        let (fd, kept) = match self.open_beneath(rel, base | libc::O_NOATIME, 0) {
            Ok(fd) => (fd, libc::O_NOATIME),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                (self.open_beneath(rel, base, 0)?, 0)
            }
            Err(e) => return Err(e),
        };
        regular(fd, kept)
    }

    /// Opens the existing regular file `rel` for reading and writing in place.
    pub fn open_write_inplace(&self, rel: &[u8]) -> io::Result<File> {
        check_rel(rel)?;
        if rel.is_empty() {
            return Err(invalid(TreeError::Root("opened as a file")));
        }
        let fd = self.open_beneath(rel, libc::O_RDWR | libc::O_NONBLOCK, 0)?;
        regular(fd, 0)
    }

    /// Creates a new temporary file (mode 0600) in `rel`'s directory, to become `rel` on
    /// [`TreeTemp::commit`].
    pub fn temp_beside(&self, rel: &[u8]) -> io::Result<TreeTemp> {
        self.new_file_beside(rel, 0o600)
    }

    /// Creates the file that becomes `rel` on [`TreeTemp::commit`], for content whose
    /// permission bits will be `mode`. Where the file system and the process allow it, the
    /// file is unnamed until the commit links it (`O_TMPFILE`): nobody can open it by name,
    /// so it is created with `mode & 0o777` (under the umask) rather than 0600, saving a
    /// `chmod`; a new `rel` then costs one directory change instead of a create and a
    /// rename, and a killed process leaves nothing behind. Elsewhere it is a named
    /// temporary, mode 0600, as [`Self::temp_beside`].
    pub fn new_file_beside(&self, rel: &[u8], mode: u32) -> io::Result<TreeTemp> {
        let (parent, name) = split(rel, "replaced by a file")?;
        let dir = match self.parent(parent)? {
            Dir::Root(_) => self.root.clone(),
            Dir::Owned(fd) => Arc::new(fd),
            Dir::Kept(fd) => fd,
        };
        let unnamed = if self.unnamed {
            unnamed_file(dir.as_fd(), mode & 0o777)?
        } else {
            None
        };
        if let Some(file) = unnamed {
            return Ok(TreeTemp {
                dir,
                temp: CString::default(),
                target: name,
                file,
                unnamed: true,
            });
        }
        for _ in 0..16 {
            let temp = cstring(&temp_name(name.to_bytes()))?;
            match sys::openat(
                Some(dir.as_fd()),
                &temp,
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600,
            ) {
                Ok(fd) => {
                    return Ok(TreeTemp {
                        dir,
                        temp,
                        target: name,
                        file: File::from(fd),
                        unnamed: false,
                    })
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(no_free_temp())
    }

    /// Creates the directory `rel` (permission bits subject to the umask); an existing
    /// directory is fine, any other existing entry (a symlink too) is an error.
    pub fn mkdir(&self, rel: &[u8], mode: u32) -> io::Result<()> {
        let (parent, name) = split(rel, "created")?;
        let dir = self.parent(parent)?;
        match sys::mkdirat(dir.fd(), &name, mode) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                match sys::fstatat_nofollow(dir.fd(), &name) {
                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok(()),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Makes `rel` a symlink to `target`, atomically replacing an existing non-directory.
    pub fn symlink(&self, rel: &[u8], target: &[u8]) -> io::Result<()> {
        let (parent, name) = split(rel, "replaced by a symlink")?;
        let target = cstring(target)?;
        let dir = self.parent(parent)?;
        let dir = dir.fd();
        replace_with(dir, &name, false, |n| sys::symlinkat(&target, dir, n))
    }

    /// Makes `rel` another name of the entry `existing` (a symlink there is linked itself,
    /// not followed), atomically replacing an existing non-directory at `rel`.
    pub fn hard_link(&self, existing: &[u8], rel: &[u8]) -> io::Result<()> {
        let (from_parent, from_name) = split(existing, "hard-linked")?;
        let (parent, name) = split(rel, "replaced by a hard link")?;
        let from = self.parent(from_parent)?;
        let dir = self.parent(parent)?;
        let dir = dir.fd();
        // Renaming a name over another name of the same inode does nothing and leaves the
        // temporary: `replace_with` removes it then.
        replace_with(dir, &name, true, |n| {
            sys::linkat(from.fd(), &from_name, dir, n)
        })
    }

    /// Makes `rel` a FIFO, socket or device node (`mode` carries the file type bits),
    /// atomically replacing an existing non-directory.
    pub fn mknod(&self, rel: &[u8], mode: u32, rdev: u64) -> io::Result<()> {
        let (parent, name) = split(rel, "replaced by a node")?;
        match mode & libc::S_IFMT {
            libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK => {}
            _ => return Err(invalid(TreeError::NodeKind(mode))),
        }
        let dir = self.parent(parent)?;
        let dir = dir.fd();
        replace_with(dir, &name, false, |n| sys::mknodat(dir, n, mode, rdev))
    }

    /// Removes the non-directory `rel`; a symlink is removed, not followed.
    pub fn remove_file(&self, rel: &[u8]) -> io::Result<()> {
        let (parent, name) = split(rel, "removed")?;
        sys::unlinkat(self.parent(parent)?.fd(), &name, 0)
    }

    /// Removes the empty directory `rel`.
    pub fn remove_dir(&self, rel: &[u8]) -> io::Result<()> {
        let (parent, name) = split(rel, "removed")?;
        let dir = self.parent(parent)?;
        self.dirs.clear();
        sys::unlinkat(dir.fd(), &name, libc::AT_REMOVEDIR)
    }

    /// Removes `rel` and, for a directory, everything beneath it, through directory
    /// descriptors and never following a symlink. Entries vanishing meanwhile are fine; `rel`
    /// itself missing is `NotFound`.
    ///
    /// One descriptor is held per directory level being emptied.
    pub fn remove_all(&self, rel: &[u8]) -> io::Result<()> {
        let (parent, name) = split(rel, "removed")?;
        let dir = self.parent(parent)?;
        self.dirs.clear();
        remove_tree_at(dir.fd(), &name)
    }

    /// The `lstat` of `rel`: a symlink is described itself.
    pub fn lstat(&self, rel: &[u8]) -> io::Result<libc::stat> {
        check_rel(rel)?;
        if rel.is_empty() {
            return sys::fstat(self.root.as_fd());
        }
        let (parent, name) = split(rel, "examined")?;
        sys::fstatat_nofollow(self.parent(parent)?.fd(), &name)
    }

    /// Applies `meta` to `rel` (see [`crate::exec::meta`]): a directory through its own
    /// descriptor, anything else by name beside its parent, never following a symlink.
    pub fn apply_meta(&self, rel: &[u8], meta: &Meta, opts: &MetaOptions) -> io::Result<()> {
        check_rel(rel)?;
        if rel.is_empty() {
            let fd = self.open_dir_with(b"", libc::O_RDONLY)?;
            return meta::apply_fd(fd.as_fd(), meta, opts);
        }
        let (parent, name) = split(rel, "changed")?;
        let dir = self.parent(parent)?;
        if meta.kind == EntryKind::Dir {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            match sys::openat(Some(dir.fd()), &name, flags, 0) {
                Ok(fd) => return meta::apply_fd(fd.as_fd(), meta, opts),
                // Our own unreadable directory: set it by name instead.
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
                Err(e) => return Err(e),
            }
        }
        meta::apply_at(dir.fd(), &name, meta, opts)
    }

    /// The directory `rel_dir` (checked) opened with `flags` (plus `O_DIRECTORY`).
    fn open_dir_with(&self, rel_dir: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
        if rel_dir.is_empty() {
            // A fresh open description, so a listing has its own offset.
            return sys::openat(
                Some(self.root.as_fd()),
                c".",
                flags | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
            );
        }
        self.open_beneath(rel_dir, flags | libc::O_DIRECTORY, 0)
    }

    /// The parent directory `rel_dir` (checked) of an operation.
    fn parent(&self, rel_dir: &[u8]) -> io::Result<Dir<'_>> {
        if rel_dir.is_empty() {
            return Ok(Dir::Root(self.root.as_fd()));
        }
        if let Some(fd) = self.dirs.get(rel_dir) {
            return Ok(Dir::Kept(fd));
        }
        let fd = Arc::new(self.open_beneath(rel_dir, libc::O_PATH | libc::O_DIRECTORY, 0)?);
        self.dirs.put(rel_dir, fd.clone());
        Ok(Dir::Kept(fd))
    }

    /// Opens the checked, non-empty `rel` beneath the root; no component may be a symlink.
    fn open_beneath(&self, rel: &[u8], flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        match self.resolve {
            Resolve::Openat2 => sys::openat2(self.root.as_fd(), &cstring(rel)?, flags, mode),
            Resolve::Walk => {
                let (parent, name) = split(rel, "opened")?;
                let mut dir = Dir::Root(self.root.as_fd());
                if !parent.is_empty() {
                    for comp in parent.split(|&c| c == b'/') {
                        let fd = sys::openat(
                            Some(dir.fd()),
                            &cstring(comp)?,
                            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                            0,
                        )?;
                        dir = Dir::Owned(fd);
                    }
                }
                sys::openat(Some(dir.fd()), &name, flags, mode)
            }
        }
    }
}

/// Checks that `fd` is a regular file and clears `O_NONBLOCK` (keeping `keep`, e.g.
/// `O_NOATIME`).
fn regular(fd: OwnedFd, keep: libc::c_int) -> io::Result<File> {
    let st = sys::fstat(fd.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::other(TreeError::NotRegularFile));
    }
    sys::set_status_flags(fd.as_fd(), keep)?;
    Ok(File::from(fd))
}

/// How this process links an unnamed file (`O_TMPFILE`) into a directory, found out once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LinkWay {
    /// `linkat(fd, "", …, AT_EMPTY_PATH)` (needs `CAP_DAC_READ_SEARCH` on older kernels).
    EmptyPath,
    /// `linkat(AT_FDCWD, "/proc/self/fd/N", …, AT_SYMLINK_FOLLOW)` (needs `/proc`).
    Proc,
    /// Neither: named temporaries only.
    None,
}

/// 0 unknown, else `LinkWay as u8 + 1`.
static LINK_WAY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// An unnamed regular file in `dir` with permission bits `mode` (under the umask), or `None`
/// where unnamed files cannot be made there or linked by this process.
fn unnamed_file(dir: BorrowedFd<'_>, mode: u32) -> io::Result<Option<File>> {
    use std::sync::atomic::Ordering;
    let way = match LINK_WAY.load(Ordering::Relaxed) {
        0 => None,
        w if w == LinkWay::None as u8 + 1 => return Ok(None),
        w if w == LinkWay::Proc as u8 + 1 => Some(LinkWay::Proc),
        _ => Some(LinkWay::EmptyPath),
    };
    let flags = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;
    let file = match sys::openat(Some(dir), c".", flags, mode) {
        Ok(fd) => File::from(fd),
        // The file system makes no unnamed files (EOPNOTSUPP; EISDIR or EINVAL where the
        // kernel or file system predates them): a named temporary instead.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    if way.is_some() {
        return Ok(Some(file));
    }
    // The first unnamed file of this process: find how it can be linked, with a temporary
    // name that is removed again. A file linked once and unlinked cannot be linked again,
    // so the probe is not the file returned.
    let mut found = LinkWay::None;
    for candidate in [LinkWay::EmptyPath, LinkWay::Proc] {
        let probe = cstring(&temp_name(b"probe"))?;
        if link_unnamed(candidate, file.as_fd(), dir, &probe).is_ok() {
            let _ = sys::unlinkat(dir, &probe, 0);
            found = candidate;
            break;
        }
    }
    LINK_WAY.store(found as u8 + 1, Ordering::Relaxed);
    drop(file);
    unnamed_file(dir, mode)
}

/// Links the unnamed file `fd` as `name` in `dir`; fails with `EEXIST` if the name is taken.
fn link_unnamed(
    way: LinkWay,
    fd: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    name: &CStr,
) -> io::Result<()> {
    match way {
        LinkWay::EmptyPath => sys::linkat_empty_path(fd, dir, name),
        LinkWay::Proc => {
            use std::os::fd::AsRawFd;
            let path = cstring(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
            sys::linkat_follow(&path, dir, name)
        }
        LinkWay::None => Err(io::Error::from(io::ErrorKind::Unsupported)),
    }
}

fn no_free_temp() -> io::Error {
    io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name")
}

/// Creates an entry at `name` with `create`; if the name is taken, creates it at a temporary
/// name and renames it over (which fails for a directory there, leaving it alone). With
/// `may_alias`, the temporary is removed after the rename in case both were the same inode.
fn replace_with(
    dir: BorrowedFd<'_>,
    name: &CStr,
    may_alias: bool,
    create: impl Fn(&CStr) -> io::Result<()>,
) -> io::Result<()> {
    match create(name) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        other => return other,
    }
    let mut made = None;
    for _ in 0..16 {
        let temp = cstring(&temp_name(name.to_bytes()))?;
        match create(&temp) {
            Ok(()) => {
                made = Some(temp);
                break;
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    let temp = made.ok_or_else(no_free_temp)?;
    if let Err(e) = sys::renameat(dir, &temp, name) {
        let _ = sys::unlinkat(dir, &temp, 0);
        return Err(e);
    }
    if may_alias {
        let _ = sys::unlinkat(dir, &temp, 0);
    }
    Ok(())
}

/// One directory being emptied by [`remove_tree_at`].
struct Level {
    fd: OwnedFd,
    name: CString,
    subdirs: Vec<CString>,
}

/// Removes `name` in `parent`, recursively for a directory, depth first with an explicit
/// stack (no recursion depth limit but the descriptor limit).
fn remove_tree_at(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    match sys::unlinkat(parent, name, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {}
        other => return other,
    }
    let mut buf = Vec::new();
    let fd = open_subdir(parent, name)?;
    let subdirs = clear_dir(fd.as_fd(), &mut buf)?;
    let mut stack = vec![Level {
        fd,
        name: name.to_owned(),
        subdirs,
    }];
    loop {
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        if let Some(sub) = top.subdirs.pop() {
            match open_subdir(top.fd.as_fd(), &sub) {
                Ok(fd) => {
                    let subdirs = clear_dir(fd.as_fd(), &mut buf)?;
                    stack.push(Level {
                        fd,
                        name: sub,
                        subdirs,
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                // Replaced by a non-directory (or a symlink) meanwhile: remove that.
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    gone_is_fine(sys::unlinkat(top.fd.as_fd(), &sub, 0))?;
                }
                Err(e) => return Err(e),
            }
        } else if let Some(done) = stack.pop() {
            let dir = stack.last().map_or(parent, |l| l.fd.as_fd());
            let removed = sys::unlinkat(dir, &done.name, libc::AT_REMOVEDIR);
            if stack.is_empty() {
                return removed;
            }
            gone_is_fine(removed)?;
        }
    }
}

fn open_subdir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    sys::openat(Some(dir), name, flags, 0)
}

/// Unlinks every non-directory in `dir` and returns the names of its subdirectories.
fn clear_dir(dir: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<Vec<CString>> {
    let mut subdirs = Vec::new();
    sys::read_dir_names(dir, buf, |name| {
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            return Ok(());
        }
        match sys::unlinkat(dir, name, 0) {
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                subdirs.push(name.to_owned());
                Ok(())
            }
            other => gone_is_fine(other),
        }
    })?;
    Ok(subdirs)
}

fn gone_is_fine(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// A temporary file beside its target in a [`Tree`]; it replaces the target on
/// [`commit`](Self::commit) and is removed if dropped uncommitted.
#[derive(Debug)]
pub struct TreeTemp {
    /// The directory holding both names: the rename happens there even if the directory was
    /// moved or a symlink swapped into its path meanwhile.
    dir: Arc<OwnedFd>,
    /// The temporary's name; empty once committed, and for an unnamed file.
    temp: CString,
    target: CString,
    file: File,
    /// An `O_TMPFILE` file, linked on commit.
    unnamed: bool,
}

impl TreeTemp {
    /// The open temporary (apply metadata to it before committing).
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Whether this is an unnamed file (created with its final permission bits).
    pub fn is_unnamed(&self) -> bool {
        self.unnamed
    }

    /// Puts the file in place as the target, replacing what is there atomically (an existing
    /// directory there is an error): an unnamed file is linked as the target, or, when the
    /// name is taken, linked under a temporary name and renamed over it; a named temporary
    /// is renamed. Durability is the caller's: `sync_all` the file first if needed.
    pub fn commit(mut self) -> io::Result<()> {
        if self.unnamed {
            let way = match LINK_WAY.load(std::sync::atomic::Ordering::Relaxed) {
                w if w == LinkWay::Proc as u8 + 1 => LinkWay::Proc,
                _ => LinkWay::EmptyPath,
            };
            let (fd, dir) = (self.file.as_fd(), self.dir.as_fd());
            match link_unnamed(way, fd, dir, &self.target) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                other => return other,
            }
            let mut linked = None;
            for _ in 0..16 {
                let temp = cstring(&temp_name(self.target.to_bytes()))?;
                match link_unnamed(way, fd, dir, &temp) {
                    Ok(()) => {
                        linked = Some(temp);
                        break;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                    Err(e) => return Err(e),
                }
            }
            self.temp = linked.ok_or_else(no_free_temp)?;
        }
        sys::renameat(self.dir.as_fd(), &self.temp, &self.target)?;
        self.temp = CString::default();
        Ok(())
    }
}

impl Drop for TreeTemp {
    fn drop(&mut self) {
        if !self.temp.is_empty() {
            let _ = sys::unlinkat(self.dir.as_fd(), &self.temp, 0);
        }
    }
}

/// The platform calls, each behind one safe function.
mod sys {
    use std::ffi::CStr;
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

    fn check(r: libc::c_int) -> io::Result<()> {
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Takes ownership of a descriptor returned by a system call.
    fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
        match RawFd::try_from(fd) {
            // SAFETY: a non-negative return of an open call is a fresh descriptor nothing
            // else owns.
            Ok(fd) if fd >= 0 => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// `openat(dir or the working directory, name, flags, mode)`, retried on `EINTR`.
    pub(super) fn openat(
        dir: Option<BorrowedFd<'_>>,
        name: &CStr,
        flags: libc::c_int,
        mode: u32,
    ) -> io::Result<OwnedFd> {
        let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
        loop {
            // SAFETY: `name` is NUL-terminated and outlives the call; `dirfd` is AT_FDCWD or
            // borrowed for the call. No pointer is retained.
            let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags, mode as libc::c_uint) };
            match owned(fd.into()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// `struct open_how` of `<linux/openat2.h>` (libc's is `non_exhaustive`).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }

    /// `openat2(dir, path, flags, mode)` with every component resolved beneath `dir`, no
    /// symlinks and no magic links; retried on `EINTR` and (a few times) on `EAGAIN`, which
    /// the kernel returns when a concurrent rename might have let a lookup escape.
    pub(super) fn openat2(
        dir: BorrowedFd<'_>,
        path: &CStr,
        flags: libc::c_int,
        mode: u32,
    ) -> io::Result<OwnedFd> {
        let how = OpenHow {
            flags: u64::from(flags as u32),
            mode: if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
                u64::from(mode)
            } else {
                0
            },
            resolve: libc::RESOLVE_BENEATH
                | libc::RESOLVE_NO_SYMLINKS
                | libc::RESOLVE_NO_MAGICLINKS,
        };
        let mut again = 0;
        loop {
            // SAFETY: `path` is NUL-terminated and `how` is a valid `open_how` of the size
            // passed; both outlive the call. `dir` is open for the call.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    dir.as_raw_fd(),
                    path.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            };
            match owned(fd) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && again < 8 => again += 1,
                other => return other,
            }
        }
    }

    pub(super) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is open for the call.
        check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
    }

    pub(super) fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        // SAFETY: both strings are NUL-terminated and outlive the call; `dir` is open.
        check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })
    }

    /// `linkat` without `AT_SYMLINK_FOLLOW`: a symlink is linked itself.
    pub(super) fn linkat(
        from_dir: BorrowedFd<'_>,
        from: &CStr,
        dir: BorrowedFd<'_>,
        name: &CStr,
    ) -> io::Result<()> {
        // SAFETY: both names are NUL-terminated and outlive the call; both descriptors are
        // open for the call.
        check(unsafe {
            libc::linkat(
                from_dir.as_raw_fd(),
                from.as_ptr(),
                dir.as_raw_fd(),
                name.as_ptr(),
                0,
            )
        })
    }

    /// `linkat(fd, "", dir, name, AT_EMPTY_PATH)`: links the open (unnamed) file `fd`.
    pub(super) fn linkat_empty_path(
        fd: BorrowedFd<'_>,
        dir: BorrowedFd<'_>,
        name: &CStr,
    ) -> io::Result<()> {
        // SAFETY: both names are NUL-terminated and outlive the call; both descriptors are
        // open for the call.
        check(unsafe {
            libc::linkat(
                fd.as_raw_fd(),
                c"".as_ptr(),
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        })
    }

    /// `linkat(AT_FDCWD, path, dir, name, AT_SYMLINK_FOLLOW)` (`path` a `/proc/self/fd`
    /// link).
    pub(super) fn linkat_follow(path: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        // SAFETY: both names are NUL-terminated and outlive the call; `dir` is open.
        check(unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                path.as_ptr(),
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        })
    }

    pub(super) fn mknodat(
        dir: BorrowedFd<'_>,
        name: &CStr,
        mode: u32,
        rdev: u64,
    ) -> io::Result<()> {
        // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is open for the call.
        check(unsafe {
            libc::mknodat(
                dir.as_raw_fd(),
                name.as_ptr(),
                mode as libc::mode_t,
                rdev as libc::dev_t,
            )
        })
    }

    pub(super) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is open for the call.
        check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })
    }

    /// Renames `from` to `to`, both in `dir`.
    pub(super) fn renameat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
        // SAFETY: both names are NUL-terminated and outlive the call; `dir` is open.
        check(unsafe {
            libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr())
        })
    }

    pub(super) fn fstatat_nofollow(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `name` is NUL-terminated, `st` is valid for writes of one `stat`, `dir` is
        // open for the call.
        let r = unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                name.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        check(r)?;
        // SAFETY: fstatat returned 0, so `st` is initialised.
        Ok(unsafe { st.assume_init() })
    }

    pub(super) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `st` is valid for writes of one `stat`; `fd` is open for the call.
        check(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
        // SAFETY: fstat returned 0, so `st` is initialised.
        Ok(unsafe { st.assume_init() })
    }

    /// Sets the file status flags (`O_NONBLOCK`, `O_NOATIME`, ...) to exactly `flags`.
    pub(super) fn set_status_flags(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: F_SETFL takes an integer argument; `fd` is open for the call.
        let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) };
        check(r.min(0))
    }

    /// Calls `each` with every name in `dir` (including `.` and `..`), one `getdents64`
    /// buffer at a time; `each` may change the directory. `buf` is scratch space.
    pub(super) fn read_dir_names(
        dir: BorrowedFd<'_>,
        buf: &mut Vec<u8>,
        mut each: impl FnMut(&CStr) -> io::Result<()>,
    ) -> io::Result<()> {
        // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
        const NAME_AT: usize = 19;
        buf.resize(64 * 1024, 0);
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes and the kernel writes at
            // most that many; `dir` is open for the call.
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
            let mut rest = buf.get(..n).unwrap_or_default();
            while !rest.is_empty() {
                let reclen = match rest.get(16..18) {
                    Some(b) => usize::from(u16::from_ne_bytes([b[0], b[1]])),
                    None => 0,
                };
                let name = rest
                    .get(NAME_AT..reclen)
                    .and_then(|r| CStr::from_bytes_until_nul(r).ok())
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "malformed directory record")
                    })?;
                each(name)?;
                rest = rest.get(reclen..).unwrap_or_default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replace::is_temp_name;
    use crate::scan::Timestamp;
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    /// The tree opened normally (openat2 here) and with the component walk forced.
    fn both(root: &Path) -> [Tree; 2] {
        let fast = Tree::open(root).unwrap();
        assert_eq!(fast.resolve, Resolve::Openat2, "kernel without openat2?");
        let mut walk = Tree::open(root).unwrap();
        walk.resolve = Resolve::Walk;
        [fast, walk]
    }

    fn errno(r: io::Result<impl Sized>) -> Option<i32> {
        r.err().and_then(|e| e.raw_os_error())
    }

    fn kind_of(p: &Path) -> std::fs::FileType {
        std::fs::symlink_metadata(p).unwrap().file_type()
    }

    #[test]
    fn rejects_paths_outside_the_grammar() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x"), b"x").unwrap();
        let t = Tree::open(dir.path()).unwrap();
        let bad: [&[u8]; 9] = [
            b"../x", b"/etc", b"a/../b", b"a//b", b"a\0b", b"./a", b"a/", b"a/.", b"..",
        ];
        for rel in bad {
            let results = [
                t.open_dir(rel).map(drop),
                t.open_read(rel).map(drop),
                t.open_write_inplace(rel).map(drop),
                t.temp_beside(rel).map(drop),
                t.mkdir(rel, 0o755),
                t.symlink(rel, b"t"),
                t.hard_link(b"a/x", rel),
                t.hard_link(rel, b"h"),
                t.mknod(rel, libc::S_IFIFO | 0o600, 0),
                t.remove_file(rel),
                t.remove_dir(rel),
                t.remove_all(rel),
                t.lstat(rel).map(drop),
            ];
            for (i, r) in results.into_iter().enumerate() {
                let e = r.expect_err("refused");
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{rel:?} op {i}: {e}");
                assert!(
                    e.get_ref()
                        .and_then(|e| e.downcast_ref::<TreeError>())
                        .is_some(),
                    "{rel:?} op {i}: typed"
                );
            }
        }
        // Nothing was created or removed.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(std::fs::read(dir.path().join("a/x")).unwrap(), b"x");
        // The root has no name to act on.
        assert!(matches!(
            t.remove_all(b"")
                .unwrap_err()
                .get_ref()
                .and_then(|e| e.downcast_ref()),
            Some(TreeError::Root(_))
        ));
        assert!(t.symlink(b"l", b"a\0b").is_err());
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            TreeError::EmptyComponent("a//b".into()).to_string(),
            "path \"a//b\" has an empty component"
        );
        assert_eq!(
            TreeError::Absolute("/etc".into()).to_string(),
            "path \"/etc\" is absolute"
        );
        assert_eq!(
            TreeError::DotComponent("a/../b".into()).to_string(),
            "path \"a/../b\" has a `.` or `..` component"
        );
        assert_eq!(
            TreeError::Nul("a\0b".into()).to_string(),
            "\"a\\0b\" contains a nul byte"
        );
        assert_eq!(
            TreeError::Root("removed").to_string(),
            "the tree root cannot be removed"
        );
        assert_eq!(
            TreeError::NodeKind(0o100644).to_string(),
            "mode 0o100644 is not a fifo, socket or device"
        );
        assert_eq!(TreeError::NotRegularFile.to_string(), "not a regular file");
    }

    #[test]
    fn open_and_create_roots() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("x/y/z");
        let t = Tree::create(&deep).unwrap();
        assert_eq!(t.root_path(), deep);
        assert!(deep.is_dir());
        // A symlink at the root itself is followed.
        std::os::unix::fs::symlink(&deep, dir.path().join("r")).unwrap();
        let t = Tree::open(&dir.path().join("r")).unwrap();
        t.mkdir(b"d", 0o755).unwrap();
        assert!(deep.join("d").is_dir());
        // Not a directory, or missing.
        std::fs::write(dir.path().join("f"), b"").unwrap();
        assert_eq!(
            errno(Tree::open(&dir.path().join("f"))),
            Some(libc::ENOTDIR)
        );
        assert_eq!(
            errno(Tree::open(&dir.path().join("nope"))),
            Some(libc::ENOENT)
        );
    }

    /// The names in `dir`, sorted.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn unnamed_new_files_appear_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let umask = crate::exec::meta::umask();
        for t in both(dir.path()) {
            t.mkdir(b"d", 0o755).unwrap();
            let d = dir.path().join("d");
            // A new file: nothing in the directory until the commit links it, with the
            // permission bits asked for (under the umask).
            let mut tmp = t.new_file_beside(b"d/new", 0o4755).unwrap();
            assert!(tmp.is_unnamed(), "tmpfs and ext4 make unnamed files");
            tmp.file().write_all(b"fresh").unwrap();
            assert!(names_in(&d).is_empty());
            tmp.commit().unwrap();
            assert_eq!(names_in(&d), ["new"]);
            assert_eq!(std::fs::read(d.join("new")).unwrap(), b"fresh");
            let mode = std::fs::metadata(d.join("new")).unwrap().mode() & 0o7777;
            assert_eq!(
                mode,
                0o755 & !umask,
                "special bits are never set at creation"
            );

            // Replacing an existing file: atomic, no temporary left over.
            let mut tmp = t.new_file_beside(b"d/new", 0o600).unwrap();
            tmp.file().write_all(b"second").unwrap();
            assert_eq!(std::fs::read(d.join("new")).unwrap(), b"fresh");
            tmp.commit().unwrap();
            assert_eq!(names_in(&d), ["new"]);
            assert_eq!(std::fs::read(d.join("new")).unwrap(), b"second");

            // Dropped uncommitted: nothing appears, the old file stays.
            let mut tmp = t.new_file_beside(b"d/new", 0o600).unwrap();
            tmp.file().write_all(b"junk").unwrap();
            drop(tmp);
            assert_eq!(names_in(&d), ["new"]);
            assert_eq!(std::fs::read(d.join("new")).unwrap(), b"second");

            // A directory at the name is not replaced, and no temporary is left.
            t.mkdir(b"d/sub", 0o755).unwrap();
            let mut tmp = t.new_file_beside(b"d/sub", 0o600).unwrap();
            tmp.file().write_all(b"x").unwrap();
            assert!(tmp.commit().is_err());
            assert_eq!(names_in(&d), ["new", "sub"]);
            assert!(d.join("sub").is_dir());

            // A symlink at the name is replaced by the file, not followed.
            std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
            let mut tmp = t.new_file_beside(b"d/link", 0o600).unwrap();
            tmp.file().write_all(b"mine").unwrap();
            tmp.commit().unwrap();
            assert!(!std::fs::symlink_metadata(d.join("link"))
                .unwrap()
                .file_type()
                .is_symlink());
            assert_eq!(std::fs::read(d.join("link")).unwrap(), b"mine");
            t.remove_all(b"d").unwrap();
        }
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for t in both(dir.path()).map(Tree::named_temporaries_only) {
            t.mkdir(b"a", 0o755).unwrap();
            t.mkdir(b"a", 0o755).unwrap(); // existing directory: fine
            t.mkdir(b"a/b", 0o700).unwrap();
            let mut tmp = t.temp_beside(b"a/b/f").unwrap();
            tmp.file().write_all(b"hello").unwrap();
            let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names.len(), 1);
            assert!(is_temp_name(names[0].as_bytes()), "{names:?}");
            assert_eq!(
                std::fs::metadata(dir.path().join("a/b").join(&names[0]))
                    .unwrap()
                    .mode()
                    & 0o777,
                0o600
            );
            tmp.commit().unwrap();
            let mut s = String::new();
            t.open_read(b"a/b/f")
                .unwrap()
                .read_to_string(&mut s)
                .unwrap();
            assert_eq!(s, "hello");

            let mut f = t.open_write_inplace(b"a/b/f").unwrap();
            f.seek(io::SeekFrom::Start(1)).unwrap();
            f.write_all(b"ELL").unwrap();
            assert_eq!(std::fs::read(dir.path().join("a/b/f")).unwrap(), b"hELLo");

            // Dropping an uncommitted temporary removes it and keeps the target.
            let mut tmp = t.temp_beside(b"a/b/f").unwrap();
            tmp.file().write_all(b"junk").unwrap();
            drop(tmp);
            assert_eq!(
                std::fs::read_dir(dir.path().join("a/b")).unwrap().count(),
                1
            );
            assert_eq!(std::fs::read(dir.path().join("a/b/f")).unwrap(), b"hELLo");

            // A temporary at the root level, replacing an existing file.
            std::fs::write(dir.path().join("top"), b"old").unwrap();
            let mut tmp = t.temp_beside(b"top").unwrap();
            tmp.file().write_all(b"new").unwrap();
            tmp.commit().unwrap();
            assert_eq!(std::fs::read(dir.path().join("top")).unwrap(), b"new");

            let st = t.lstat(b"a/b/f").unwrap();
            assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFREG);
            assert_eq!(st.st_size, 5);
            assert_eq!(t.lstat(b"").unwrap().st_mode & libc::S_IFMT, libc::S_IFDIR);
            let d = t.open_dir(b"a/b").unwrap();
            assert_eq!(
                sys::fstat(d.as_fd()).unwrap().st_mode & libc::S_IFMT,
                libc::S_IFDIR
            );
            let mut n = 0;
            sys::read_dir_names(d.as_fd(), &mut Vec::new(), |_| {
                n += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(n, 3, ". .. f");
            assert!(t.open_dir(b"").is_ok());

            // mkdir over a file fails; remove_file refuses directories, remove_dir non-empty.
            assert_eq!(errno(t.mkdir(b"a/b/f", 0o755)), Some(libc::EEXIST));
            assert_eq!(errno(t.remove_file(b"a/b")), Some(libc::EISDIR));
            assert_eq!(errno(t.remove_dir(b"a/b")), Some(libc::ENOTEMPTY));
            t.remove_file(b"a/b/f").unwrap();
            t.remove_dir(b"a/b").unwrap();
            assert_eq!(errno(t.lstat(b"a/b")), Some(libc::ENOENT));
            t.remove_all(b"a").unwrap();
            t.remove_file(b"top").unwrap();
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn open_refuses_non_regular_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tree::open(dir.path()).unwrap();
        t.mknod(b"p", libc::S_IFIFO | 0o644, 0).unwrap();
        t.mkdir(b"d", 0o755).unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        t.symlink(b"l", b"f").unwrap();
        for rel in [&b"p"[..], b"d"] {
            let e = t.open_read(rel).unwrap_err();
            assert!(
                e.get_ref().and_then(|e| e.downcast_ref::<TreeError>())
                    == Some(&TreeError::NotRegularFile)
                    || e.raw_os_error() == Some(libc::EISDIR),
                "{e}"
            );
        }
        assert!(t.open_write_inplace(b"d").is_err());
        assert!(t.open_write_inplace(b"p").is_err());
        assert_eq!(errno(t.open_read(b"l")), Some(libc::ELOOP));
        assert_eq!(errno(t.open_write_inplace(b"l")), Some(libc::ELOOP));
        assert!(t.open_read(b"").is_err());
        assert!(t.temp_beside(b"").is_err());
    }

    #[test]
    fn symlinks_nodes_and_hard_links_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        for t in both(dir.path()) {
            let p = |s: &str| dir.path().join(s);
            std::fs::write(p("f"), b"data").unwrap();
            t.symlink(b"l", b"f").unwrap();
            assert_eq!(std::fs::read_link(p("l")).unwrap(), Path::new("f"));
            // Over an existing file and over an existing symlink.
            std::fs::write(p("g"), b"g").unwrap();
            t.symlink(b"g", b"some/where").unwrap();
            assert_eq!(std::fs::read_link(p("g")).unwrap(), Path::new("some/where"));
            t.symlink(b"g", b"\xffelse").unwrap();
            assert_eq!(
                std::fs::read_link(p("g")).unwrap().as_os_str().as_bytes(),
                b"\xffelse"
            );
            // Never over a directory.
            std::fs::create_dir(p("d")).unwrap();
            assert_eq!(errno(t.symlink(b"d", b"x")), Some(libc::EISDIR));
            assert!(p("d").is_dir());

            // Hard links: the same inode, over an existing file, twice (same inode already).
            t.hard_link(b"f", b"h").unwrap();
            let ino = std::fs::metadata(p("f")).unwrap().ino();
            assert_eq!(std::fs::metadata(p("h")).unwrap().ino(), ino);
            std::fs::write(p("h2"), b"other").unwrap();
            t.hard_link(b"f", b"h2").unwrap();
            t.hard_link(b"f", b"h2").unwrap();
            assert_eq!(std::fs::metadata(p("h2")).unwrap().ino(), ino);
            assert_eq!(std::fs::metadata(p("f")).unwrap().nlink(), 3);
            // A symlink is linked itself.
            t.hard_link(b"l", b"hl").unwrap();
            assert!(kind_of(&p("hl")).is_symlink());
            assert_eq!(
                std::fs::symlink_metadata(p("hl")).unwrap().ino(),
                std::fs::symlink_metadata(p("l")).unwrap().ino()
            );

            // Nodes: a FIFO, then replaced by another FIFO; refused kinds.
            t.mknod(b"p", libc::S_IFIFO | 0o600, 0).unwrap();
            assert!(kind_of(&p("p")).is_fifo());
            t.mknod(b"f2", libc::S_IFIFO | 0o600, 0).unwrap();
            t.mknod(b"f2", libc::S_IFIFO | 0o640, 0).unwrap();
            assert!(kind_of(&p("f2")).is_fifo());
            let chr = libc::makedev(1, 3);
            t.mknod(b"g", libc::S_IFCHR | 0o600, chr).unwrap();
            assert!(kind_of(&p("g")).is_char_device());
            assert_eq!(std::fs::symlink_metadata(p("g")).unwrap().rdev(), chr);
            assert!(t.mknod(b"q", libc::S_IFREG | 0o600, 0).is_err());
            assert!(t.mknod(b"q", libc::S_IFDIR | 0o600, 0).is_err());

            // No temporaries left behind.
            for e in std::fs::read_dir(dir.path()).unwrap() {
                assert!(!is_temp_name(e.unwrap().file_name().as_bytes()));
            }
            t.remove_all(b"d").unwrap();
            for name in ["f", "l", "g", "h", "h2", "hl", "p", "f2"] {
                t.remove_all(name.as_bytes()).unwrap();
            }
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn symlink_replacement_is_never_absent() {
        // A reader polling the name must always find either the file or the link.
        let dir = tempfile::tempdir().unwrap();
        let t = Tree::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        let path = dir.path().join("x");
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut missing = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if std::fs::symlink_metadata(&path).is_err() {
                        missing += 1;
                    }
                }
                missing
            });
            for i in 0..300 {
                if i % 2 == 0 {
                    t.symlink(b"x", format!("t{i}").as_bytes()).unwrap();
                } else {
                    t.mknod(b"x", libc::S_IFIFO | 0o600, 0).unwrap();
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(reader.join().unwrap(), 0);
        });
    }

    #[test]
    fn a_kept_directory_is_forgotten_once_removed_through_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        for (i, t) in both(dir.path()).iter().enumerate() {
            let d = format!("d{i}");
            let rel = |n: &str| format!("{d}/{n}").into_bytes();
            t.mkdir(d.as_bytes(), 0o755).unwrap();
            let mut f = t.new_file_beside(&rel("a"), 0o644).unwrap();
            f.file().write_all(b"a").unwrap();
            f.commit().unwrap();
            assert_eq!(t.dirs.lock().len(), 1, "the parent is kept");
            // Kept: the next file in it resolves nothing.
            let mut f = t.new_file_beside(&rel("b"), 0o644).unwrap();
            f.file().write_all(b"b").unwrap();
            f.commit().unwrap();
            assert_eq!(std::fs::read(dir.path().join(&d).join("b")).unwrap(), b"b");

            // Replaced through the tree by a symlink out of it: not written through.
            t.remove_all(d.as_bytes()).unwrap();
            assert!(t.dirs.lock().is_empty());
            t.symlink(d.as_bytes(), outside.path().as_os_str().as_bytes())
                .unwrap();
            assert!(t.new_file_beside(&rel("c"), 0o644).is_err());
            assert!(t.lstat(&rel("c")).is_err());

            // Removed while empty and made again: the new directory is the one written in.
            t.mkdir(b"e", 0o755).unwrap();
            t.lstat(b"e/x").unwrap_err();
            t.remove_dir(b"e").unwrap();
            t.mkdir(b"e", 0o755).unwrap();
            let mut f = t.new_file_beside(b"e/x", 0o644).unwrap();
            f.file().write_all(b"x").unwrap();
            f.commit().unwrap();
            assert_eq!(std::fs::read(dir.path().join("e/x")).unwrap(), b"x");
            t.remove_all(b"e").unwrap();
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn remove_all_is_recursive_and_does_not_follow() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"k").unwrap();
        for t in both(dir.path()) {
            let p = |s: &str| dir.path().join(s);
            for d in ["r", "r/a", "r/a/b", "r/a/b/c", "r/e"] {
                std::fs::create_dir(p(d)).unwrap();
            }
            for i in 0..50 {
                std::fs::write(p(&format!("r/a/b/f{i}")), b"x").unwrap();
            }
            std::fs::write(p("r/a/b/c/deep"), b"x").unwrap();
            std::os::unix::fs::symlink(outside.path(), p("r/a/out")).unwrap();
            std::os::unix::fs::symlink(outside.path().join("keep"), p("r/e/k")).unwrap();
            t.mknod(b"r/a/p", libc::S_IFIFO | 0o600, 0).unwrap();
            // A read-only file goes too (unlink needs only the directory writable).
            std::fs::set_permissions(p("r/a/b/f0"), PermissionsExt::from_mode(0o400)).unwrap();
            t.remove_all(b"r").unwrap();
            assert!(!p("r").exists());
            assert_eq!(std::fs::read(outside.path().join("keep")).unwrap(), b"k");
            assert_eq!(errno(t.remove_all(b"r")), Some(libc::ENOENT));
        }
    }

    #[test]
    fn symlinks_inside_cannot_lead_outside() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let out = outside.path();
        std::fs::write(out.join("x"), b"secret").unwrap();
        std::fs::set_permissions(out.join("x"), PermissionsExt::from_mode(0o600)).unwrap();
        let listing = || {
            let mut v: Vec<_> = std::fs::read_dir(out)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let md = e.metadata().unwrap();
                    (
                        e.file_name(),
                        md.mode(),
                        md.mtime(),
                        md.mtime_nsec(),
                        md.len(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let before = listing();
        let trees = both(dir.path());
        for t in &trees {
            let p = |s: &str| dir.path().join(s);
            std::os::unix::fs::symlink(out, p("evil")).unwrap();
            std::os::unix::fs::symlink(out.join("x"), p("evilfile")).unwrap();
            std::fs::create_dir(p("d")).unwrap();
            std::os::unix::fs::symlink("../evil", p("d/up")).unwrap();

            // Through a symlinked directory: everything fails.
            for rel in [&b"evil/x"[..], b"d/up/x"] {
                assert!(t.open_read(rel).is_err());
                assert!(t.open_write_inplace(rel).is_err());
                assert!(t.temp_beside(rel).is_err());
                assert!(t.lstat(rel).is_err());
                assert!(t.remove_file(rel).is_err());
                assert!(t.remove_all(rel).is_err());
                assert!(t.symlink(rel, b"t").is_err());
                assert!(t.mknod(rel, libc::S_IFIFO | 0o600, 0).is_err());
                assert!(t.hard_link(rel, b"h").is_err());
                assert!(t.hard_link(b"d", rel).is_err());
                let m = Meta {
                    mode: 0o777,
                    uid: 0,
                    gid: 0,
                    mtime: Timestamp { sec: 1, nsec: 0 },
                    kind: EntryKind::File,
                };
                let all = MetaOptions {
                    perms: true,
                    times: true,
                    owner: true,
                    group: true,
                };
                assert!(t.apply_meta(rel, &m, &all).is_err());
                let m = Meta {
                    kind: EntryKind::Dir,
                    ..m
                };
                assert!(t.apply_meta(rel, &m, &all).is_err());
            }
            assert!(t.mkdir(b"evil/y", 0o755).is_err());
            assert!(t.open_dir(b"evil").is_err());
            assert!(t.open_dir(b"d/up").is_err());
            assert!(t.remove_dir(b"evil").is_err());
            assert!(!p("h").exists());

            // At the last component: acts on the link itself, or refuses.
            assert_eq!(errno(t.open_read(b"evilfile")), Some(libc::ELOOP));
            assert!(kind_of(&p("evilfile")).is_symlink());
            assert_eq!(errno(t.mkdir(b"evil", 0o755)), Some(libc::EEXIST));
            let st = t.lstat(b"evil").unwrap();
            assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
            let m = Meta {
                mode: 0o777,
                uid: 0,
                gid: 0,
                mtime: Timestamp { sec: 2, nsec: 3 },
                kind: EntryKind::Dir,
            };
            let perms = MetaOptions {
                perms: true,
                ..Default::default()
            };
            assert!(t.apply_meta(b"evil", &m, &perms).is_err());
            let m = Meta {
                kind: EntryKind::File,
                ..m
            };
            assert!(t.apply_meta(b"evilfile", &m, &perms).is_err());
            // Times on the link itself are fine and touch only the link.
            let times = MetaOptions {
                times: true,
                ..Default::default()
            };
            t.apply_meta(
                b"evilfile",
                &Meta {
                    kind: EntryKind::Symlink,
                    ..m
                },
                &times,
            )
            .unwrap();
            assert_eq!(
                std::fs::symlink_metadata(p("evilfile"))
                    .unwrap()
                    .mtime_nsec(),
                3
            );
            // A hard link of the link is a link.
            t.hard_link(b"evilfile", b"h").unwrap();
            assert!(kind_of(&p("h")).is_symlink());
            t.remove_file(b"h").unwrap();
            // A temporary beside the link, committed, replaces the link, not the target.
            let mut tmp = t.temp_beside(b"evilfile").unwrap();
            tmp.file().write_all(b"mine").unwrap();
            tmp.commit().unwrap();
            assert_eq!(std::fs::read(p("evilfile")).unwrap(), b"mine");
            t.remove_file(b"evilfile").unwrap();
            // Removing the links removes only them.
            t.remove_all(b"evil").unwrap();
            t.remove_all(b"d").unwrap();
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            assert_eq!(listing(), before);
        }
        assert_eq!(std::fs::read(out.join("x")).unwrap(), b"secret");
    }

    #[test]
    fn apply_meta_exact_on_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tree::open(dir.path()).unwrap();
        let p = |s: &str| dir.path().join(s);
        t.mkdir(b"d", 0o755).unwrap();
        std::fs::write(p("d/f"), b"x").unwrap();
        t.symlink(b"d/l", b"f").unwrap();
        t.mknod(b"d/p", libc::S_IFIFO | 0o600, 0).unwrap();
        let root = running_as_root();
        let opts = MetaOptions {
            perms: true,
            times: true,
            owner: root,
            group: root,
        };
        let (uid, gid) = if root {
            (12345, 23456)
        } else {
            let md = std::fs::metadata(dir.path()).unwrap();
            (md.uid(), md.gid())
        };
        let cases: [(&str, EntryKind, u32, i64, u32); 5] = [
            ("d/f", EntryKind::File, 0o4711, 1_600_000_000, 123_456_789),
            ("d/l", EntryKind::Symlink, 0o777, 1_600_000_001, 987_654_321),
            ("d/p", EntryKind::Fifo, 0o640, -3, 1),
            ("d", EntryKind::Dir, 0o2750, 1_700_000_000, 5),
            ("", EntryKind::Dir, 0o1777, 1_500_000_000, 999_999_999),
        ];
        for (rel, kind, mode, sec, nsec) in cases {
            let m = Meta {
                mode,
                uid,
                gid,
                mtime: Timestamp { sec, nsec },
                kind,
            };
            t.apply_meta(rel.as_bytes(), &m, &opts).unwrap();
        }
        for (rel, kind, mode, sec, nsec) in cases {
            let md = std::fs::symlink_metadata(p(rel)).unwrap();
            assert_eq!(
                (md.mtime(), md.mtime_nsec()),
                (sec, i64::from(nsec)),
                "{rel}"
            );
            if kind != EntryKind::Symlink {
                assert_eq!(md.mode() & 0o7777, mode, "{rel}");
            }
            assert_eq!((md.uid(), md.gid()), (uid, gid), "{rel}");
            let st = t.lstat(rel.as_bytes()).unwrap();
            assert_eq!((st.st_mtime, st.st_mtime_nsec), (sec, i64::from(nsec)));
        }
        // The file's metadata set on a temporary before commit survives the rename.
        let mut tmp = t.temp_beside(b"d/f").unwrap();
        let m = Meta {
            mode: 0o6755,
            uid,
            gid,
            mtime: Timestamp { sec: 42, nsec: 42 },
            kind: EntryKind::File,
        };
        meta::apply_fd(tmp.file().as_fd(), &m, &opts).unwrap();
        tmp.commit().unwrap();
        let md = std::fs::symlink_metadata(p("d/f")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o6755);
        assert_eq!((md.mtime(), md.mtime_nsec()), (42, 42));
        assert_eq!((md.uid(), md.gid()), (uid, gid));
    }

    fn running_as_root() -> bool {
        // A directory we just created belongs to our effective user.
        let dir = tempfile::tempdir().unwrap();
        std::fs::metadata(dir.path()).unwrap().uid() == 0
    }

    #[test]
    fn temp_names_follow_the_replace_scheme() {
        let n = temp_name(b"mail.eml");
        assert!(n.starts_with(b".mail.eml.dstmp."));
        assert!(is_temp_name(&n));
        let long = vec![b'a'; 255];
        let n = temp_name(&long);
        assert!(n.len() <= 255, "{}", n.len());
        assert!(is_temp_name(&n));
        assert_ne!(temp_name(b"x"), temp_name(b"x"));
    }
}
