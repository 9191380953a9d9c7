//! Listings on the wire: the encoding of one [`Entry`] inside an `Entries` batch, the checks a
//! received path and a received listing must pass ([`check_path`], [`check_order`],
//! [`ListChecker`]), and the batching of entries to send ([`EntryBatcher`]).
//!
//! Why the parent check: the receiving side must never be led to create `a/x` where `a` is a
//! symlink or a file the peer listed, nor to accept an entry it cannot place. In
//! [`cmp_paths`] order a directory's contents follow it directly, so the directories that can
//! still receive children are always the chain from the root to the last directory listed:
//! the checker keeps that one path, not a set.

use std::cmp::Ordering;

use super::error::{quote, PathProblem, ProtocolError};
use super::wire::{put_bytes, put_varint, unzigzag, varint_len, zigzag, Reader};
use super::{MAX_BATCH_ENTRIES, MAX_BATCH_NAME_BYTES, MAX_NAME, MAX_PATH, MAX_PAYLOAD, MAX_TARGET};
use crate::scan::{cmp_paths, Entry, EntryKind, EntryParts, Timestamp};

const KIND_MASK: u8 = 0b0000_0111;
const SAME_MODE: u8 = 1 << 3;
const SAME_UID: u8 = 1 << 4;
const SAME_GID: u8 = 1 << 5;
const SAME_DEV: u8 = 1 << 6;
const RESERVED: u8 = 1 << 7;

/// Fewest bytes one entry takes: flags, shared, suffix length, size, seconds, nanoseconds,
/// inode and link count of one byte each (mode, uid, gid and dev may be "same").
pub(crate) const MIN_ENTRY_LEN: usize = 8;

/// Most bytes one entry can take beyond its path and target: flags 1, shared and suffix
/// lengths 2 + 2, size 10, seconds 10, nanoseconds 5, mode 3, uid 5, gid 5, dev 10, inode 10,
/// link count 5, target length 2.
const MAX_ENTRY_OVERHEAD: usize = 70;

/// Bytes of the largest entry count.
const COUNT_LEN: usize = varint_len(MAX_BATCH_ENTRIES as u64);

fn kind_to_wire(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
        EntryKind::BlockDevice => 3,
        EntryKind::CharDevice => 4,
        EntryKind::Fifo => 5,
        EntryKind::Socket => 6,
    }
}

fn kind_from_wire(v: u8) -> Option<EntryKind> {
    Some(match v {
        0 => EntryKind::File,
        1 => EntryKind::Dir,
        2 => EntryKind::Symlink,
        3 => EntryKind::BlockDevice,
        4 => EntryKind::CharDevice,
        5 => EntryKind::Fifo,
        6 => EntryKind::Socket,
        _ => return None,
    })
}

/// Checks that `path` is a clean path relative to a tree root: not absolute, no trailing `/`,
/// no empty, `.` or `..` component, no NUL byte, at most [`MAX_PATH`] bytes and components of
/// at most [`MAX_NAME`]. The empty path (the root itself) passes. `field` names the path in
/// the error (`"entry path"`, `"request path"`, …).
pub fn check_path(field: &'static str, path: &[u8]) -> Result<(), ProtocolError> {
    path_problem(path).map_or(Ok(()), |problem| {
        Err(ProtocolError::BadPath {
            field,
            path: quote(path),
            problem,
        })
    })
}

fn path_problem(path: &[u8]) -> Option<PathProblem> {
    if path.len() > MAX_PATH {
        return Some(PathProblem::TooLong {
            len: path.len(),
            limit: MAX_PATH,
        });
    }
    if path.is_empty() {
        return None;
    }
    if path.contains(&0) {
        return Some(PathProblem::Nul);
    }
    if path[0] == b'/' {
        return Some(PathProblem::Absolute);
    }
    if path.ends_with(b"/") {
        return Some(PathProblem::TrailingSlash);
    }
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" => return Some(PathProblem::EmptyComponent),
            b"." => return Some(PathProblem::Dot),
            b".." => return Some(PathProblem::DotDot),
            _ if c.len() > MAX_NAME => {
                return Some(PathProblem::LongComponent {
                    len: c.len(),
                    limit: MAX_NAME,
                })
            }
            _ => {}
        }
    }
    None
}

/// Checks that `next` comes strictly after `prev` in [`cmp_paths`] order: a listing with a
/// path out of order or twice is refused.
pub fn check_order(prev: Option<&[u8]>, next: &[u8]) -> Result<(), ProtocolError> {
    let Some(prev) = prev else {
        return Ok(());
    };
    match cmp_paths(prev, next) {
        Ordering::Less => Ok(()),
        Ordering::Equal => Err(ProtocolError::Duplicate { path: quote(next) }),
        Ordering::Greater => Err(ProtocolError::Order {
            prev: quote(prev),
            next: quote(next),
        }),
    }
}

/// Checks that an entry can travel: what the receiver would check of it (its path, and the
/// length and bytes of a symlink target). A sender calls it before batching, to report an
/// entry that cannot be sent (a path over [`MAX_PATH`], say) instead of failing the session.
pub fn check_entry(entry: &Entry) -> Result<(), ProtocolError> {
    check_path("entry path", entry.path())?;
    if let Some(t) = entry.symlink_target() {
        check_target(t)?;
    }
    Ok(())
}

fn check_target(t: &[u8]) -> Result<(), ProtocolError> {
    if t.len() > MAX_TARGET {
        return Err(ProtocolError::TooLong {
            field: "symlink target",
            len: t.len() as u64,
            limit: MAX_TARGET as u64,
        });
    }
    // A target may be absolute or climb with `..`: it is only ever stored, never followed.
    if t.contains(&0) {
        return Err(ProtocolError::BadPath {
            field: "symlink target",
            path: quote(t),
            problem: PathProblem::Nul,
        });
    }
    Ok(())
}

/// Appends an `Entries` payload: the count, then each entry relative to the one before.
pub(crate) fn encode_entries(entries: &[Entry], out: &mut Vec<u8>) {
    put_varint(out, entries.len() as u64);
    let mut prev: Option<&Entry> = None;
    for e in entries {
        encode_entry(prev, e, out);
        prev = Some(e);
    }
}

fn encode_entry(prev: Option<&Entry>, e: &Entry, out: &mut Vec<u8>) {
    let mut flags = kind_to_wire(e.kind());
    if let Some(p) = prev {
        for (same, bit) in [
            (p.mode() == e.mode(), SAME_MODE),
            (p.uid() == e.uid(), SAME_UID),
            (p.gid() == e.gid(), SAME_GID),
            (p.dev() == e.dev(), SAME_DEV),
        ] {
            if same {
                flags |= bit;
            }
        }
    }
    out.push(flags);
    let path = e.path();
    let shared = prev.map_or(0, |p| {
        p.path()
            .iter()
            .zip(path)
            .take_while(|(a, b)| a == b)
            .count()
    });
    put_varint(out, shared as u64);
    put_bytes(out, &path[shared..]);
    let kind = e.kind();
    put_varint(out, if kind.is_device() { e.rdev() } else { e.size() });
    let mtime = e.mtime();
    put_varint(out, zigzag(mtime.sec));
    put_varint(out, u64::from(mtime.nsec));
    if flags & SAME_MODE == 0 {
        put_varint(out, u64::from(e.mode()));
    }
    if flags & SAME_UID == 0 {
        put_varint(out, u64::from(e.uid()));
    }
    if flags & SAME_GID == 0 {
        put_varint(out, u64::from(e.gid()));
    }
    if flags & SAME_DEV == 0 {
        put_varint(out, e.dev());
    }
    put_varint(out, e.ino());
    put_varint(out, u64::from(e.nlink()));
    if kind == EntryKind::Symlink {
        put_bytes(out, e.symlink_target().unwrap_or_default());
    }
}

/// Reads an `Entries` payload: every count and length is checked before it is used, every
/// path is checked, and the batch must be in strictly increasing order.
pub(crate) fn decode_entries(r: &mut Reader<'_>) -> Result<Vec<Entry>, ProtocolError> {
    let n = r.count(MAX_BATCH_ENTRIES, MIN_ENTRY_LEN, "entries")?;
    let mut entries: Vec<Entry> = Vec::with_capacity(n);
    let mut names = 0usize;
    for _ in 0..n {
        let e = decode_entry(r, entries.last(), &mut names)?;
        entries.push(e);
    }
    Ok(entries)
}

fn decode_entry(
    r: &mut Reader<'_>,
    prev: Option<&Entry>,
    names: &mut usize,
) -> Result<Entry, ProtocolError> {
    let flags = r.u8("entry flags")?;
    let bad_flags = ProtocolError::BadValue {
        field: "entry flags",
        value: u64::from(flags),
    };
    if flags & RESERVED != 0
        || (prev.is_none() && flags & (SAME_MODE | SAME_UID | SAME_GID | SAME_DEV) != 0)
    {
        return Err(bad_flags);
    }
    let kind = kind_from_wire(flags & KIND_MASK).ok_or(ProtocolError::BadValue {
        field: "entry kind",
        value: u64::from(flags & KIND_MASK),
    })?;
    let prev_path = prev.map_or(&[][..], Entry::path);
    let shared = r.varint("shared path prefix")?;
    if shared > prev_path.len() as u64 {
        return Err(ProtocolError::BadValue {
            field: "shared path prefix",
            value: shared,
        });
    }
    let shared = shared as usize;
    let suffix = r.bytes(MAX_PATH, "entry path")?;
    let len = shared + suffix.len();
    if len > MAX_PATH {
        return Err(ProtocolError::TooLong {
            field: "entry path",
            len: len as u64,
            limit: MAX_PATH as u64,
        });
    }
    *names += len;
    if *names > MAX_BATCH_NAME_BYTES {
        return Err(ProtocolError::TooLong {
            field: "entries batch names",
            len: *names as u64,
            limit: MAX_BATCH_NAME_BYTES as u64,
        });
    }
    let mut path = Vec::with_capacity(len);
    path.extend_from_slice(&prev_path[..shared]);
    path.extend_from_slice(suffix);
    check_path("entry path", &path)?;
    check_order(prev.map(Entry::path), &path)?;

    let size = r.varint("size")?;
    let sec = unzigzag(r.varint("mtime seconds")?);
    let nsec = r.u32("mtime nanoseconds")?;
    if nsec >= 1_000_000_000 {
        return Err(ProtocolError::BadValue {
            field: "mtime nanoseconds",
            value: u64::from(nsec),
        });
    }
    let same = |bit: u8| prev.filter(|_| flags & bit != 0);
    let mode = match same(SAME_MODE) {
        Some(p) => p.mode(),
        None => {
            let m = r.u32("mode")?;
            if m > 0o7777 {
                return Err(ProtocolError::BadValue {
                    field: "mode",
                    value: u64::from(m),
                });
            }
            m
        }
    };
    let uid = match same(SAME_UID) {
        Some(p) => p.uid(),
        None => r.u32("uid")?,
    };
    let gid = match same(SAME_GID) {
        Some(p) => p.gid(),
        None => r.u32("gid")?,
    };
    let dev = match same(SAME_DEV) {
        Some(p) => p.dev(),
        None => r.varint("dev")?,
    };
    let ino = r.varint("inode")?;
    let nlink = r.u32("link count")?;
    let target = if kind == EntryKind::Symlink {
        let t = r.bytes(MAX_TARGET, "symlink target")?;
        check_target(t)?;
        *names += t.len();
        if *names > MAX_BATCH_NAME_BYTES {
            return Err(ProtocolError::TooLong {
                field: "entries batch names",
                len: *names as u64,
                limit: MAX_BATCH_NAME_BYTES as u64,
            });
        }
        Some(t.into())
    } else {
        None
    };
    Ok(Entry::from_parts(EntryParts {
        path: path.into_boxed_slice(),
        kind: Some(kind),
        size: if kind.is_device() { 0 } else { size },
        mtime: Timestamp { sec, nsec },
        mode,
        uid,
        gid,
        dev,
        ino,
        nlink: u64::from(nlink),
        rdev: if kind.is_device() { size } else { 0 },
        target,
    }))
}

/// Checks a received listing as it streams in, batch after batch: strictly increasing
/// [`cmp_paths`] order (no duplicates), the root (the empty path) first, and every other entry
/// inside a directory listed before it. Memory: two paths.
#[derive(Debug, Default, Clone)]
pub struct ListChecker {
    last: Option<Vec<u8>>,
    /// The innermost directory that may still receive entries; its ancestors all may.
    /// `None`: nothing may (no root yet, or a root that is not a directory).
    open: Option<Vec<u8>>,
    count: u64,
}

impl ListChecker {
    /// A checker for a new listing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next entry of the listing.
    pub fn check(&mut self, entry: &Entry) -> Result<(), ProtocolError> {
        let path = entry.path();
        check_order(self.last.as_deref(), path)?;
        if path.is_empty() {
            // Order puts the root first; it is a directory or the whole tree.
            self.open = entry.is_dir().then(Vec::new);
        } else {
            let parent = path
                .iter()
                .rposition(|&b| b == b'/')
                .map_or(&path[..0], |i| &path[..i]);
            let open = match &mut self.open {
                Some(d) if is_within(parent, d) => d,
                _ => return Err(ProtocolError::Orphan { path: quote(path) }),
            };
            open.truncate(parent.len());
            if entry.is_dir() {
                open.clear();
                open.extend_from_slice(path);
            }
        }
        let last = self.last.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(path);
        self.count += 1;
        Ok(())
    }

    /// Checks a batch, in order.
    pub fn check_batch(&mut self, entries: &[Entry]) -> Result<(), ProtocolError> {
        entries.iter().try_for_each(|e| self.check(e))
    }

    /// Entries checked so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Whether `dir` is `ancestor` or lies below it.
fn is_within(ancestor: &[u8], dir: &[u8]) -> bool {
    ancestor.is_empty()
        || dir == ancestor
        || (dir.starts_with(ancestor) && dir.get(ancestor.len()) == Some(&b'/'))
}

/// Groups entries to send into batches that a receiver accepts: at most
/// [`MAX_BATCH_ENTRIES`] entries, [`MAX_BATCH_NAME_BYTES`] of names, and a payload that fits
/// a frame (counted with the worst case of every field).
#[derive(Debug, Default)]
pub struct EntryBatcher {
    entries: Vec<Entry>,
    bytes: usize,
    names: usize,
}

impl EntryBatcher {
    /// An empty batcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry; returns the previous batch when this one no longer fit in it. An entry
    /// that cannot travel ([`check_entry`]) is refused with the error (and dropped).
    pub fn push(&mut self, entry: Entry) -> Result<Option<Vec<Entry>>, ProtocolError> {
        check_entry(&entry)?;
        let names = entry.path().len() + entry.symlink_target().map_or(0, <[u8]>::len);
        let bytes = MAX_ENTRY_OVERHEAD + names;
        let full = self.entries.len() >= MAX_BATCH_ENTRIES
            || COUNT_LEN + self.bytes + bytes > MAX_PAYLOAD
            || self.names + names > MAX_BATCH_NAME_BYTES;
        let done = if full { self.take() } else { None };
        self.bytes += bytes;
        self.names += names;
        self.entries.push(entry);
        Ok(done)
    }

    /// The batch gathered so far, if any (at the end of the listing, or to flush early).
    pub fn take(&mut self) -> Option<Vec<Entry>> {
        if self.entries.is_empty() {
            return None;
        }
        self.bytes = 0;
        self.names = 0;
        Some(std::mem::take(&mut self.entries))
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn entry(path: &[u8], kind: EntryKind) -> Entry {
        Entry::from_parts(EntryParts {
            path: path.into(),
            kind: Some(kind),
            size: 10,
            mode: 0o644,
            nlink: 1,
            target: (kind == EntryKind::Symlink).then(|| b"../t".to_vec().into_boxed_slice()),
            ..EntryParts::default()
        })
    }

    fn decode(payload: &[u8]) -> Result<Vec<Entry>, ProtocolError> {
        let mut r = Reader::new("entries", payload);
        let v = decode_entries(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    fn encode(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_entries(entries, &mut out);
        out
    }

    #[test]
    fn clean_paths_pass_and_hostile_ones_fail() {
        for ok in [
            &b""[..],
            b"a",
            b"a/b",
            b"a.b/..c/...",
            b"\xff\xfe/x",
            &[b'n'; 255],
        ] {
            check_path("entry path", ok).unwrap();
        }
        let long_name = [b'n'; 256];
        let long_path: Vec<u8> = std::iter::repeat_n(&b"abcdefg/"[..], 512)
            .flatten()
            .copied()
            .chain(*b"x")
            .collect();
        let cases: &[(&[u8], PathProblem)] = &[
            (b"/etc/passwd", PathProblem::Absolute),
            (b"/", PathProblem::Absolute),
            (b"a/", PathProblem::TrailingSlash),
            (b"a//b", PathProblem::EmptyComponent),
            (b".", PathProblem::Dot),
            (b"a/./b", PathProblem::Dot),
            (b"..", PathProblem::DotDot),
            (b"a/../b", PathProblem::DotDot),
            (b"a/..", PathProblem::DotDot),
            (b"../../etc", PathProblem::DotDot),
            (b"a\0b", PathProblem::Nul),
            (
                &long_name,
                PathProblem::LongComponent {
                    len: 256,
                    limit: MAX_NAME,
                },
            ),
            (
                &long_path,
                PathProblem::TooLong {
                    len: 4097,
                    limit: MAX_PATH,
                },
            ),
        ];
        for (path, problem) in cases {
            match check_path("entry path", path) {
                Err(ProtocolError::BadPath { problem: p, .. }) => {
                    assert_eq!(p, *problem, "{}", quote(path))
                }
                other => panic!("{}: {other:?}", quote(path)),
            }
        }
    }

    #[test]
    fn order_and_duplicates() {
        check_order(None, b"z").unwrap();
        check_order(Some(b""), b"a").unwrap();
        check_order(Some(b"a"), b"a/b").unwrap();
        check_order(Some(b"a/b"), b"a-b").unwrap();
        assert_eq!(
            check_order(Some(b"c"), b"b").unwrap_err().to_string(),
            "file list out of order: \"b\" after \"c\""
        );
        assert_eq!(
            check_order(Some(b"a"), b"a").unwrap_err().to_string(),
            "duplicate entry \"a\""
        );
        // `/` sorts first: a directory's contents come before its siblings.
        assert!(check_order(Some(b"a-b"), b"a/c").is_err());
    }

    #[test]
    fn a_listing_must_be_a_tree_read_in_order() {
        use EntryKind::*;
        let ok = [
            entry(b"", Dir),
            entry(b"a", Dir),
            entry(b"a/b", Dir),
            entry(b"a/b/c", File),
            entry(b"a/d", Symlink),
            entry(b"a-b", File),
            entry(b"b", Dir),
            entry(b"b/x", Fifo),
        ];
        let mut c = ListChecker::new();
        c.check_batch(&ok[..3]).unwrap();
        c.check_batch(&ok[3..]).unwrap();
        assert_eq!(c.count(), 8);

        // A lone file as the whole tree.
        ListChecker::new().check(&entry(b"", File)).unwrap();

        let bad: &[(&[Entry], &str)] = &[
            (
                &[entry(b"a", File)],
                "entry \"a\" is not inside a directory listed before it",
            ),
            (
                &[entry(b"", File), entry(b"a", File)],
                "entry \"a\" is not inside a directory listed before it",
            ),
            (
                &[
                    entry(b"", Dir),
                    entry(b"a", Symlink),
                    entry(b"a/passwd", File),
                ],
                "entry \"a/passwd\" is not inside a directory listed before it",
            ),
            (
                &[entry(b"", Dir), entry(b"a", File), entry(b"a/x", File)],
                "entry \"a/x\" is not inside a directory listed before it",
            ),
            (
                &[entry(b"", Dir), entry(b"a/b", File)],
                "entry \"a/b\" is not inside a directory listed before it",
            ),
            (
                &[
                    entry(b"", Dir),
                    entry(b"a", Dir),
                    entry(b"b", File),
                    entry(b"b/c", File),
                ],
                "entry \"b/c\" is not inside a directory listed before it",
            ),
            (&[entry(b"", Dir), entry(b"", Dir)], "duplicate entry \"\""),
            (
                &[entry(b"", Dir), entry(b"b", File), entry(b"a", File)],
                "file list out of order: \"a\" after \"b\"",
            ),
            (
                &[entry(b"", Dir), entry(b"a", Dir), entry(b"a", File)],
                "duplicate entry \"a\"",
            ),
        ];
        for (list, want) in bad {
            let err = ListChecker::new().check_batch(list).unwrap_err();
            assert_eq!(err.to_string(), *want);
        }
        // Leaving a directory closes it for good.
        let mut c = ListChecker::new();
        c.check_batch(&[
            entry(b"", Dir),
            entry(b"a", Dir),
            entry(b"a/x", File),
            entry(b"b", File),
        ])
        .unwrap();
        assert!(c.check(&entry(b"b/y", File)).is_err());
    }

    #[test]
    fn entries_round_trip_with_shared_prefixes_and_same_fields() {
        use EntryKind::*;
        let list = vec![
            entry(b"", Dir),
            entry(b"dir", Dir),
            entry(b"dir/file", File),
            entry(b"dir/link", Symlink),
            Entry::from_parts(EntryParts {
                path: (*b"dir/sda").into(),
                kind: Some(BlockDevice),
                rdev: 0x0801,
                mtime: Timestamp {
                    sec: -5,
                    nsec: 999_999_999,
                },
                mode: 0o7777,
                uid: u32::MAX,
                gid: 7,
                dev: u64::MAX,
                ino: u64::MAX,
                nlink: u64::MAX,
                ..EntryParts::default()
            }),
        ];
        let bytes = encode(&list);
        assert_eq!(decode(&bytes).unwrap(), list);
        // "dir/file" after "dir" shares "dir" and mode, owner, group and device: it costs its
        // suffix and 8 one-byte fields (its count of 1 byte stays).
        let one = encode(&list[..2]).len();
        assert_eq!(encode(&list[..3]).len() - one, b"/file".len() + 8);
    }

    /// Builds an entries payload by hand: (flags, shared, suffix, then the rest as varints).
    fn raw_entry(out: &mut Vec<u8>, flags: u8, shared: u64, suffix: &[u8], tail: &[u64]) {
        out.push(flags);
        put_varint(out, shared);
        put_bytes(out, suffix);
        for &v in tail {
            put_varint(out, v);
        }
    }

    // size, sec, nsec, mode, uid, gid, dev, ino, nlink
    const FIELDS: [u64; 9] = [1, 0, 0, 0o644, 0, 0, 0, 1, 1];

    #[test]
    fn hostile_entries_are_refused() {
        let one = |flags: u8, suffix: &[u8], tail: &[u64]| {
            let mut p = vec![1];
            raw_entry(&mut p, flags, 0, suffix, tail);
            decode(&p)
        };
        one(0, b"a", &FIELDS).unwrap();
        let err = one(0, b"a/../../etc/passwd", &FIELDS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry path \"a/../../etc/passwd\" has a \"..\" component"
        );
        assert!(matches!(
            one(0, b"/etc", &FIELDS),
            Err(ProtocolError::BadPath {
                problem: PathProblem::Absolute,
                ..
            })
        ));
        assert_eq!(
            one(7, b"a", &FIELDS),
            Err(ProtocolError::BadValue {
                field: "entry kind",
                value: 7
            })
        );
        assert!(matches!(
            one(0x80, b"a", &FIELDS),
            Err(ProtocolError::BadValue {
                field: "entry flags",
                ..
            })
        ));
        // "Same as the previous" in the first entry.
        assert!(matches!(
            one(SAME_UID, b"a", &FIELDS),
            Err(ProtocolError::BadValue {
                field: "entry flags",
                ..
            })
        ));
        let mut f = FIELDS;
        f[2] = 1_000_000_000;
        assert_eq!(
            one(0, b"a", &f),
            Err(ProtocolError::BadValue {
                field: "mtime nanoseconds",
                value: 1_000_000_000
            })
        );
        let mut f = FIELDS;
        f[3] = 0o10_000;
        assert!(matches!(
            one(0, b"a", &f),
            Err(ProtocolError::BadValue { field: "mode", .. })
        ));
        let mut f = FIELDS;
        f[4] = 1 << 32;
        assert!(matches!(
            one(0, b"a", &f),
            Err(ProtocolError::BadValue { field: "uid", .. })
        ));
        // A symlink target with NUL, and one too long.
        let mut t = FIELDS.to_vec();
        t.extend([3, u64::from(b'a'), 0, u64::from(b'b')]);
        assert!(matches!(
            one(2, b"l", &t),
            Err(ProtocolError::BadPath {
                field: "symlink target",
                ..
            })
        ));
        let mut p = vec![1];
        raw_entry(&mut p, 2, 0, b"l", &FIELDS);
        put_varint(&mut p, 5000);
        p.extend(vec![b'x'; 5000]);
        assert!(matches!(
            decode(&p),
            Err(ProtocolError::TooLong {
                field: "symlink target",
                len: 5000,
                ..
            })
        ));

        // A shared prefix longer than the previous path.
        let mut p = vec![2];
        raw_entry(&mut p, 0, 0, b"a", &FIELDS);
        raw_entry(&mut p, 0, 2, b"b", &FIELDS);
        assert_eq!(
            decode(&p),
            Err(ProtocolError::BadValue {
                field: "shared path prefix",
                value: 2
            })
        );
        // Prefix + suffix over the path limit.
        let mut p = vec![2];
        raw_entry(&mut p, 0, 0, &[b'a'; 200], &FIELDS);
        raw_entry(&mut p, 0, 200, &[b'b'; 4000], &FIELDS);
        assert!(matches!(
            decode(&p),
            Err(ProtocolError::TooLong {
                field: "entry path",
                len: 4200,
                ..
            })
        ));
        // Out of order and duplicate inside a batch.
        let mut p = vec![2];
        raw_entry(&mut p, 0, 0, b"c", &FIELDS);
        raw_entry(&mut p, 0, 0, b"b", &FIELDS);
        assert_eq!(
            decode(&p).unwrap_err().to_string(),
            "file list out of order: \"b\" after \"c\""
        );
        let mut p = vec![2];
        raw_entry(&mut p, 0, 0, b"a", &FIELDS);
        raw_entry(&mut p, 0, 1, b"", &FIELDS);
        assert_eq!(decode(&p).unwrap_err().to_string(), "duplicate entry \"a\"");
    }

    #[test]
    fn huge_counts_in_tiny_payloads_are_refused() {
        let mut p = Vec::new();
        put_varint(&mut p, u64::MAX);
        assert!(matches!(
            decode(&p),
            Err(ProtocolError::TooMany {
                count: u64::MAX,
                ..
            })
        ));
        let mut p = Vec::new();
        put_varint(&mut p, 4097);
        assert!(matches!(
            decode(&p),
            Err(ProtocolError::TooMany {
                count: 4097,
                limit: 4096,
                ..
            })
        ));
        // 4096 is allowed, but not in 20 bytes.
        let mut p = Vec::new();
        put_varint(&mut p, 4096);
        p.extend([0; 20]);
        assert!(matches!(
            decode(&p),
            Err(ProtocolError::ShortMessage {
                field: "entries",
                ..
            })
        ));
    }

    #[test]
    fn shared_prefixes_cannot_blow_up_memory() {
        // 4096 entries each repeating a 4000-byte prefix would decode to 16 MiB of names from
        // a payload of about 50 KiB: the batch is cut off at its name budget.
        let base: Vec<u8> = [b"d/".repeat(1900), b"x".repeat(200)].concat();
        let mut p = Vec::new();
        put_varint(&mut p, 4096);
        raw_entry(&mut p, 0, 0, &base, &FIELDS);
        for i in 1..4096u32 {
            raw_entry(
                &mut p,
                0,
                base.len() as u64,
                format!("{i:05}").as_bytes(),
                &FIELDS,
            );
        }
        assert!(p.len() < MAX_PAYLOAD);
        match decode(&p) {
            Err(ProtocolError::TooLong {
                field: "entries batch names",
                limit,
                ..
            }) => {
                assert_eq!(limit, MAX_BATCH_NAME_BYTES as u64)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_entries_fail_cleanly_at_every_length() {
        use EntryKind::*;
        let list = [entry(b"", Dir), entry(b"a", Symlink), entry(b"b", File)];
        let bytes = encode(&list);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "{n}");
        }
        assert!(matches!(
            decode(&[bytes.as_slice(), &[0]].concat()),
            Err(ProtocolError::TrailingBytes { extra: 1, .. })
        ));
    }

    #[test]
    fn the_batcher_respects_every_limit() {
        let mut b = EntryBatcher::new();
        let mut batches = Vec::new();
        for i in 0..10_000u32 {
            if let Some(batch) = b
                .push(entry(format!("f{i:06}").as_bytes(), EntryKind::File))
                .unwrap()
            {
                batches.push(batch);
            }
        }
        batches.extend(b.take());
        assert!(b.take().is_none() && b.is_empty());
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [4096, 4096, 1808]
        );

        // Long paths: cut by the frame size, and every batch decodes.
        let long = |i: u32| {
            let mut p = format!("{i:06}/").into_bytes();
            p.extend(std::iter::repeat_n(&b"abcdefghi/"[..], 400).flatten());
            p.extend(b"end");
            entry(&p, EntryKind::Symlink)
        };
        let mut batches = Vec::new();
        for i in 0..600 {
            batches.extend(b.push(long(i)).unwrap());
        }
        batches.extend(b.take());
        assert!(batches.len() > 2);
        for batch in &batches {
            let bytes = encode(batch);
            assert!(bytes.len() <= MAX_PAYLOAD);
            assert_eq!(&decode(&bytes).unwrap(), batch);
        }
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 600);

        // An entry that cannot travel is refused, and the batch goes on.
        let err = b.push(entry(b"a/../b", EntryKind::File)).unwrap_err();
        assert!(matches!(err, ProtocolError::BadPath { .. }));
        assert!(b.is_empty());
    }

    fn arb_name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(b'a'..=b'e', 1..4),
            proptest::collection::vec(
                any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
                1..12
            )
            .prop_filter("not . or ..", |n| n != b"." && n != b".."),
        ]
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            proptest::collection::vec(arb_name(), 0..4),
            0u8..7,
            any::<u64>(),
            any::<i64>(),
            0u32..1_000_000_000,
            0u32..0o10000,
            (
                prop_oneof![Just(0u32), any::<u32>()],
                prop_oneof![Just(0u32), any::<u32>()],
            ),
            (
                prop_oneof![Just(0u64), any::<u64>()],
                any::<u64>(),
                any::<u32>(),
            ),
            proptest::collection::vec(any::<u8>().prop_filter("no NUL", |b| *b != 0), 0..20),
        )
            .prop_map(
                |(names, kind, size, sec, nsec, mode, (uid, gid), (dev, ino, nlink), target)| {
                    let kind = kind_from_wire(kind).unwrap();
                    Entry::from_parts(EntryParts {
                        path: names.join(&b'/').into_boxed_slice(),
                        kind: Some(kind),
                        size,
                        mtime: Timestamp { sec, nsec },
                        mode,
                        uid,
                        gid,
                        dev,
                        ino,
                        nlink: u64::from(nlink),
                        rdev: size.rotate_left(7),
                        target: Some(target.into_boxed_slice()),
                    })
                },
            )
    }

    proptest! {
        #[test]
        fn any_sorted_batch_round_trips(mut list in proptest::collection::vec(arb_entry(), 0..40)) {
            list.sort_by(|a, b| cmp_paths(a.path(), b.path()));
            list.dedup_by(|a, b| a.path() == b.path());
            let bytes = encode(&list);
            prop_assert_eq!(decode(&bytes)?, list);
        }

        #[test]
        fn any_bytes_decode_to_valid_entries_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(list) = decode(&bytes) {
                for (i, e) in list.iter().enumerate() {
                    check_entry(e)?;
                    if i > 0 {
                        check_order(Some(list[i - 1].path()), e.path())?;
                    }
                }
                prop_assert_eq!(decode(&encode(&list))?, list);
            }
        }
    }
}
