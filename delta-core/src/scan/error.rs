//! Errors of a walk: one per entry (or per directory) that could not be read, carrying the
//! relative path and what went wrong. They are yielded as items; the walk goes on.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// The operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScanOp {
    /// Opening a directory.
    OpenDir,
    /// Reading a directory's names.
    ReadDir,
    /// `lstat` of an entry.
    Stat,
    /// Reading a symlink's target.
    ReadLink,
}

impl fmt::Display for ScanOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OpenDir => "open directory",
            Self::ReadDir => "read directory",
            Self::Stat => "stat",
            Self::ReadLink => "read symlink",
        })
    }
}

/// What went wrong with one entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanErrorKind {
    /// The root given to the walk does not exist.
    #[error("scan root {} does not exist", .root.display())]
    RootNotFound {
        /// The root as given.
        root: PathBuf,
    },
    /// The root exists but cannot be opened or examined.
    #[error("cannot scan root {}: {}", .root.display(), os_message(.errno))]
    Root {
        /// The root as given.
        root: PathBuf,
        /// The OS error number.
        errno: i32,
    },
    /// The entry was listed but was gone when we looked at it (`ENOENT`): a live tree changed
    /// under us. Not fatal; the next pass sees the new state.
    #[error("vanished during the scan")]
    Vanished,
    /// The entry was a directory when examined and was something else when opened.
    #[error("no longer a directory")]
    NotADirectory,
    /// The directory was replaced by a symlink between examining and opening it; the link
    /// was not followed.
    #[error("replaced by a symlink during the scan, not followed")]
    BecameSymlink,
    /// A file type we do not know (the raw `st_mode`).
    #[error("unsupported file type (mode {mode:#o})")]
    UnsupportedType {
        /// The raw `st_mode`.
        mode: u32,
    },
    /// The directory's names alone exceed 4 GiB.
    #[error("directory too large: its names exceed 4 GiB")]
    DirectoryTooLarge,
    /// A far source could not list the entry; its message, as the far side gave it.
    #[error("{message}")]
    Remote {
        /// The far side's message.
        message: String,
    },
    /// Any other failure of an operation, with the OS error number.
    #[error("cannot {op}: {}", os_message(.errno))]
    Io {
        /// What failed.
        op: ScanOp,
        /// The OS error number (`EACCES`, `EIO`, ...).
        errno: i32,
    },
}

fn os_message(errno: &i32) -> io::Error {
    io::Error::from_raw_os_error(*errno)
}

/// An entry the walk could not read. `path` is relative to the root, as in
/// [`Entry::path`](super::Entry::path); it is empty for the root itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Relative path of the entry concerned.
    pub path: Box<[u8]>,
    /// What went wrong.
    pub kind: ScanErrorKind,
}

impl ScanError {
    pub(crate) fn new(path: impl Into<Box<[u8]>>, kind: ScanErrorKind) -> Self {
        Self {
            path: path.into(),
            kind,
        }
    }

    /// Maps an OS error of `op` on `path` to the typed kind: `ENOENT` is a vanished entry.
    pub(crate) fn from_io(path: impl Into<Box<[u8]>>, op: ScanOp, err: &io::Error) -> Self {
        let errno = err.raw_os_error().unwrap_or(libc::EIO);
        let kind = match (op, errno) {
            (_, libc::ENOENT) => ScanErrorKind::Vanished,
            (ScanOp::OpenDir, libc::ENOTDIR) => ScanErrorKind::NotADirectory,
            (ScanOp::OpenDir, libc::ELOOP) => ScanErrorKind::BecameSymlink,
            (ScanOp::ReadLink, libc::EINVAL) => ScanErrorKind::Vanished,
            _ => ScanErrorKind::Io { op, errno },
        };
        Self::new(path, kind)
    }

    /// Whether the entry simply went away while we walked (a live tree), as opposed to a
    /// failure to read something that is there.
    pub fn is_vanished(&self) -> bool {
        self.kind == ScanErrorKind::Vanished
    }

    /// The OS error number behind the failure, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self.kind {
            ScanErrorKind::Root { errno, .. } | ScanErrorKind::Io { errno, .. } => Some(errno),
            ScanErrorKind::Vanished | ScanErrorKind::RootNotFound { .. } => Some(libc::ENOENT),
            _ => None,
        }
    }
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            // The root's message names the root itself.
            ScanErrorKind::RootNotFound { .. } | ScanErrorKind::Root { .. } => {
                write!(f, "{}", self.kind)
            }
            kind if self.path.is_empty() => write!(f, ".: {kind}"),
            kind => write!(f, "{}: {kind}", String::from_utf8_lossy(&self.path)),
        }
    }
}

impl std::error::Error for ScanError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let e = |path: &[u8], kind| ScanError::new(path, kind).to_string();
        assert_eq!(
            e(
                b"",
                ScanErrorKind::RootNotFound {
                    root: "/no/such".into()
                }
            ),
            "scan root /no/such does not exist"
        );
        assert_eq!(
            e(
                b"",
                ScanErrorKind::Root {
                    root: "/r".into(),
                    errno: libc::EACCES
                }
            ),
            format!(
                "cannot scan root /r: {}",
                io::Error::from_raw_os_error(libc::EACCES)
            )
        );
        assert_eq!(
            e(b"a/b", ScanErrorKind::Vanished),
            "a/b: vanished during the scan"
        );
        assert_eq!(
            e(b"d", ScanErrorKind::NotADirectory),
            "d: no longer a directory"
        );
        assert_eq!(
            e(b"d", ScanErrorKind::BecameSymlink),
            "d: replaced by a symlink during the scan, not followed"
        );
        assert_eq!(
            e(b"x\xff", ScanErrorKind::UnsupportedType { mode: 0o170000 }),
            "x\u{fffd}: unsupported file type (mode 0o170000)"
        );
        assert_eq!(
            e(
                b"",
                ScanErrorKind::Io {
                    op: ScanOp::ReadDir,
                    errno: libc::EIO
                }
            ),
            format!(
                ".: cannot read directory: {}",
                io::Error::from_raw_os_error(libc::EIO)
            )
        );
        assert_eq!(
            e(b"big", ScanErrorKind::DirectoryTooLarge),
            "big: directory too large: its names exceed 4 GiB"
        );
    }

    #[test]
    fn errno_mapping() {
        let io = io::Error::from_raw_os_error;
        let k = |op, errno| ScanError::from_io(&b"p"[..], op, &io(errno)).kind;
        assert_eq!(k(ScanOp::Stat, libc::ENOENT), ScanErrorKind::Vanished);
        assert_eq!(
            k(ScanOp::OpenDir, libc::ENOTDIR),
            ScanErrorKind::NotADirectory
        );
        assert_eq!(
            k(ScanOp::OpenDir, libc::ELOOP),
            ScanErrorKind::BecameSymlink
        );
        assert_eq!(k(ScanOp::ReadLink, libc::EINVAL), ScanErrorKind::Vanished);
        assert_eq!(
            k(ScanOp::Stat, libc::EACCES),
            ScanErrorKind::Io {
                op: ScanOp::Stat,
                errno: libc::EACCES
            }
        );
        let err = ScanError::from_io(&b"p"[..], ScanOp::Stat, &io(libc::ENOENT));
        assert!(err.is_vanished());
        assert_eq!(err.errno(), Some(libc::ENOENT));
    }
}
