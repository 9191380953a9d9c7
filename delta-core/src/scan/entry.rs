//! What we know of one entry of a tree: its relative path, kind and the metadata a quick check,
//! hard-link detection and metadata replay need, and the one path order used everywhere.
//!
//! An [`Entry`] is kept small (88 bytes plus its path and link target on the heap) because the
//! tree sync holds some of them for a while (hard-link groups, directories awaiting their final
//! mtime): paths are `Box<[u8]>` without spare capacity, a device number shares the slot of the
//! size (devices have no size), the link count is saturated to `u32` (only "more than one"
//! matters) and the mode keeps the permission bits only (the kind says the rest).

use std::cmp::Ordering;
use std::fmt;

/// What an entry is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (never followed by the walk).
    Symlink,
    /// Block device.
    BlockDevice,
    /// Character device.
    CharDevice,
    /// Named pipe.
    Fifo,
    /// Unix domain socket.
    Socket,
}

impl EntryKind {
    /// The kind encoded in the file-type bits of a `st_mode`, if it is one we know.
    // `mode_t` is u32 on Linux but u16 elsewhere: the conversions are needed there.
    #[allow(clippy::useless_conversion)]
    pub fn from_mode(mode: u32) -> Option<Self> {
        Some(match mode & u32::from(libc::S_IFMT) {
            m if m == u32::from(libc::S_IFREG) => Self::File,
            m if m == u32::from(libc::S_IFDIR) => Self::Dir,
            m if m == u32::from(libc::S_IFLNK) => Self::Symlink,
            m if m == u32::from(libc::S_IFBLK) => Self::BlockDevice,
            m if m == u32::from(libc::S_IFCHR) => Self::CharDevice,
            m if m == u32::from(libc::S_IFIFO) => Self::Fifo,
            m if m == u32::from(libc::S_IFSOCK) => Self::Socket,
            _ => return None,
        })
    }

    /// Block or character device: the entry carries a device number instead of a size.
    pub fn is_device(self) -> bool {
        matches!(self, Self::BlockDevice | Self::CharDevice)
    }
}

/// A modification time: seconds since the epoch (negative before 1970) and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01 UTC.
    pub sec: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nsec: u32,
}

/// All fields of an entry, spelled out: what [`Entry::from_parts`] takes and
/// [`Entry::into_parts`] gives back (for endpoints that build entries from a wire listing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryParts {
    /// Relative path, `/`-separated, no leading slash; the root is empty.
    pub path: Box<[u8]>,
    /// What it is; `None` is taken as a regular file.
    pub kind: Option<EntryKind>,
    /// Size in bytes (ignored for devices).
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Permission bits including setuid, setgid and sticky (`0o7777`); other bits are dropped.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device of the filesystem holding the entry.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Hard-link count (saturated to `u32::MAX`).
    pub nlink: u64,
    /// Device number, for block and character devices only.
    pub rdev: u64,
    /// Link target, for symlinks only.
    pub target: Option<Box<[u8]>>,
}

/// One entry of a tree, as the walk saw it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    path: Box<[u8]>,
    target: Option<Box<[u8]>>,
    /// `st_size`, or `st_rdev` for devices.
    size_or_rdev: u64,
    mtime_sec: i64,
    dev: u64,
    ino: u64,
    mtime_nsec: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    kind: EntryKind,
}

impl Entry {
    /// Builds an entry from its fields; fields that do not apply to the kind (a target on a
    /// non-symlink, a device number on a non-device) are dropped, the mode is masked to
    /// `0o7777` and nanoseconds are clamped below one second.
    pub fn from_parts(parts: EntryParts) -> Self {
        let kind = parts.kind.unwrap_or(EntryKind::File);
        Self {
            path: parts.path,
            target: if kind == EntryKind::Symlink {
                Some(parts.target.unwrap_or_default())
            } else {
                None
            },
            size_or_rdev: if kind.is_device() {
                parts.rdev
            } else {
                parts.size
            },
            mtime_sec: parts.mtime.sec,
            dev: parts.dev,
            ino: parts.ino,
            mtime_nsec: parts.mtime.nsec.min(999_999_999),
            mode: parts.mode & 0o7777,
            uid: parts.uid,
            gid: parts.gid,
            nlink: u32::try_from(parts.nlink).unwrap_or(u32::MAX),
            kind,
        }
    }

    /// All fields spelled out.
    pub fn into_parts(self) -> EntryParts {
        EntryParts {
            size: self.size(),
            rdev: self.rdev(),
            mtime: self.mtime(),
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            dev: self.dev,
            ino: self.ino,
            nlink: u64::from(self.nlink),
            kind: Some(self.kind),
            path: self.path,
            target: self.target,
        }
    }

    /// Builds an entry from what `lstat` returned; for a file type we do not know, gives the
    /// path back.
    pub(crate) fn from_stat(
        path: Box<[u8]>,
        st: &libc::stat,
        target: Option<Box<[u8]>>,
    ) -> Result<Self, Box<[u8]>> {
        // The `as` casts widen platform-sized stat fields (their widths differ between
        // platforms); none of them narrows on the 64-bit targets we build for.
        #[allow(clippy::unnecessary_cast)]
        let mode = st.st_mode as u32;
        let Some(kind) = EntryKind::from_mode(mode) else {
            return Err(path);
        };
        #[allow(clippy::unnecessary_cast)]
        let parts = EntryParts {
            path,
            kind: Some(kind),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: Timestamp {
                sec: st.st_mtime as i64,
                nsec: u32::try_from(st.st_mtime_nsec).unwrap_or(0),
            },
            mode,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            rdev: st.st_rdev as u64,
            target,
        };
        Ok(Self::from_parts(parts))
    }

    /// Relative path, `/`-separated, no leading slash; empty for the root.
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The path, owned.
    pub fn into_path(self) -> Box<[u8]> {
        self.path
    }

    /// Last component of the path (empty for the root).
    pub fn name(&self) -> &[u8] {
        match self.path.iter().rposition(|&c| c == b'/') {
            Some(i) => &self.path[i + 1..],
            None => &self.path,
        }
    }

    /// Number of components: 0 for the root, 1 for its children.
    pub fn depth(&self) -> usize {
        if self.path.is_empty() {
            0
        } else {
            1 + self.path.iter().filter(|&&c| c == b'/').count()
        }
    }

    /// What it is.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }

    /// Size in bytes; 0 for devices.
    pub fn size(&self) -> u64 {
        if self.kind.is_device() {
            0
        } else {
            self.size_or_rdev
        }
    }

    /// Device number of a block or character device; 0 for other kinds.
    pub fn rdev(&self) -> u64 {
        if self.kind.is_device() {
            self.size_or_rdev
        } else {
            0
        }
    }

    /// Modification time.
    pub fn mtime(&self) -> Timestamp {
        Timestamp {
            sec: self.mtime_sec,
            nsec: self.mtime_nsec,
        }
    }

    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Owner.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Group.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Device of the filesystem holding the entry.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// Inode number; with [`dev`](Self::dev) it identifies hard links.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// Hard-link count, saturated to `u32::MAX`.
    pub fn nlink(&self) -> u32 {
        self.nlink
    }

    /// Link target, for symlinks.
    pub fn symlink_target(&self) -> Option<&[u8]> {
        self.target.as_deref()
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Entry");
        d.field("path", &String::from_utf8_lossy(&self.path))
            .field("kind", &self.kind)
            .field("size", &self.size())
            .field("mtime", &self.mtime())
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("dev", &self.dev)
            .field("ino", &self.ino)
            .field("nlink", &self.nlink);
        if self.kind.is_device() {
            d.field("rdev", &self.rdev());
        }
        if let Some(t) = &self.target {
            d.field("target", &String::from_utf8_lossy(t));
        }
        d.finish()
    }
}

/// Compares two relative paths component by component, names by their bytes.
///
/// A directory's contents come right after it and before its next sibling: `a`, `a/b`, `a-b`,
/// `a.txt`. This is the order of the walk and of every listing merge. It equals a byte-wise
/// comparison in which `/` sorts before every other byte (names contain neither `/` nor NUL).
pub fn cmp_paths(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    match a[..n].iter().zip(&b[..n]).position(|(x, y)| x != y) {
        Some(i) => sort_key(a[i]).cmp(&sort_key(b[i])),
        None => a.len().cmp(&b.len()),
    }
}

fn sort_key(c: u8) -> u16 {
    if c == b'/' {
        0
    } else {
        u16::from(c) + 1
    }
}

/// `parent/name`, or `name` when the parent is the root; allocated to its exact size.
pub(crate) fn join_path(parent: &[u8], name: &[u8]) -> Box<[u8]> {
    if parent.is_empty() {
        return name.into();
    }
    let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
    v.extend_from_slice(parent);
    v.push(b'/');
    v.extend_from_slice(name);
    v.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition: split into components and compare the component lists.
    fn cmp_reference(a: &[u8], b: &[u8]) -> Ordering {
        let split = |p: &[u8]| -> Vec<Vec<u8>> {
            if p.is_empty() {
                Vec::new()
            } else {
                p.split(|&c| c == b'/').map(<[u8]>::to_vec).collect()
            }
        };
        split(a).cmp(&split(b))
    }

    #[test]
    fn component_order() {
        let mut v: Vec<&[u8]> = vec![
            b"a.txt",
            b"B",
            b"a/b",
            b"",
            b"a-b",
            b"a",
            b"\xc3\xa9",
            b"a/b/c",
            b"ab",
            b"a/a",
        ];
        v.sort_by(|x, y| cmp_paths(x, y));
        let want: Vec<&[u8]> = vec![
            b"",
            b"B",
            b"a",
            b"a/a",
            b"a/b",
            b"a/b/c",
            b"a-b",
            b"a.txt",
            b"ab",
            b"\xc3\xa9",
        ];
        assert_eq!(v, want);
        assert_eq!(cmp_paths(b"a", b"a"), Ordering::Equal);
    }

    #[test]
    fn entry_is_compact() {
        assert!(
            std::mem::size_of::<Entry>() <= 88,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn parts_round_trip_and_normalise() {
        let dev = Entry::from_parts(EntryParts {
            path: b"d/null".to_vec().into(),
            kind: Some(EntryKind::CharDevice),
            size: 7,
            rdev: 0x103,
            mode: 0o20666,
            mtime: Timestamp {
                sec: -5,
                nsec: 2_000_000_000,
            },
            target: Some(b"x".to_vec().into()),
            nlink: u64::MAX,
            ..Default::default()
        });
        assert_eq!(dev.size(), 0);
        assert_eq!(dev.rdev(), 0x103);
        assert_eq!(dev.mode(), 0o666);
        assert_eq!(dev.mtime().nsec, 999_999_999);
        assert_eq!(dev.symlink_target(), None);
        assert_eq!(dev.nlink(), u32::MAX);
        assert_eq!(dev.name(), b"null");
        assert_eq!(dev.depth(), 2);
        let back = Entry::from_parts(dev.clone().into_parts());
        assert_eq!(back, dev);

        let link = Entry::from_parts(EntryParts {
            path: b"l".to_vec().into(),
            kind: Some(EntryKind::Symlink),
            size: 3,
            rdev: 9,
            target: Some(b"../x".to_vec().into()),
            ..Default::default()
        });
        assert_eq!(link.size(), 3);
        assert_eq!(link.rdev(), 0);
        assert_eq!(link.symlink_target(), Some(&b"../x"[..]));
        assert_eq!(link.depth(), 1);
    }

    #[test]
    fn kinds_from_mode() {
        assert_eq!(EntryKind::from_mode(0o100644), Some(EntryKind::File));
        assert_eq!(EntryKind::from_mode(0o040755), Some(EntryKind::Dir));
        assert_eq!(EntryKind::from_mode(0o120777), Some(EntryKind::Symlink));
        assert_eq!(EntryKind::from_mode(0o060600), Some(EntryKind::BlockDevice));
        assert_eq!(EntryKind::from_mode(0o020600), Some(EntryKind::CharDevice));
        assert_eq!(EntryKind::from_mode(0o010600), Some(EntryKind::Fifo));
        assert_eq!(EntryKind::from_mode(0o140600), Some(EntryKind::Socket));
        assert_eq!(EntryKind::from_mode(0o000644), None);
    }

    #[test]
    fn join() {
        assert_eq!(&*join_path(b"", b"x"), b"x");
        assert_eq!(&*join_path(b"a/b", b"x"), b"a/b/x");
    }

    fn path() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b'b'), Just(b'.'), Just(b'-'), Just(0xffu8)],
                1..4,
            ),
            0..4,
        )
        .prop_map(|comps| comps.join(&b'/'))
    }

    proptest! {
        #[test]
        fn cmp_matches_component_definition(a in path(), b in path()) {
            prop_assert_eq!(cmp_paths(&a, &b), cmp_reference(&a, &b));
        }
    }
}
