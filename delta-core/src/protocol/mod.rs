//! The wire format between two deltasync processes, as a sans-I/O codec: frames
//! ([`FrameDecoder`], [`FrameEncoder`]), the messages they carry ([`Message`]), version
//! negotiation ([`negotiate`]) and the checks every received listing goes through
//! ([`check_path`], [`check_order`], [`ListChecker`]). Nothing here reads or writes a socket,
//! spawns a process or keeps session state: callers push the bytes they read and write the
//! bytes they are given. Depends on [`crate::scan`] (entries and their order), and on the job
//! enums of [`crate::sync`] and [`crate::filter`].
//!
//! # Frames
//!
//! ```text
//! +----------------+---------+---------+------------------------------+
//! | length: u32 BE | type u8 | flags u8| payload (length - 2 bytes)   |
//! +----------------+---------+---------+------------------------------+
//! ```
//!
//! `length` counts the bytes after itself (type, flags and payload), so it is at least 2 and
//! at most [`MAX_FRAME`] (1 MiB + 64 = 1 048 640). The decoder checks it as soon as the four
//! bytes arrive, before it buffers any of the payload, and never allocates from it.
//!
//! Flags: bit 0 ([`FLAG_ZSTD`]) says the payload is one zstd frame. Its decompressed size must
//! not exceed [`MAX_PAYLOAD`] either: decompression writes into a buffer of at most that size
//! (the size the zstd header declares is only a hint, capped by the limit) and fails beyond
//! it; trailing bytes or a second zstd frame are refused. The other flag bits are reserved and
//! must be zero. Senders compress only when the peer announced [`CAP_ZSTD`], never the
//! [`Hello`], and keep the compressed form only when it is smaller; which frames they try is
//! theirs to choose (deltasync's sessions compress file data only while their output is backed
//! up, see [`crate::session`]). Each frame is compressed on
//! its own (no shared window), so every frame decodes independently of the others.
//!
//! # Encodings inside payloads
//!
//! * `varint`: unsigned LEB128, at most 10 bytes, minimal (no trailing `0x80 0x00`); counts,
//!   lengths, sizes, ids, inode numbers. Where a field is narrower (`u32`), larger values are
//!   refused.
//! * `zigzag`: a signed value as a varint (`0 → 0, -1 → 1, 1 → 2, …`); the seconds of mtimes.
//! * `bytes`: `varint length` + the bytes; the length is checked against the field's limit and
//!   the bytes remaining before anything is read or allocated. `string`: `bytes` that must be
//!   UTF-8.
//! * `rest`: the bytes up to the end of the payload, without a length.
//! * `bool`: one byte, 0 or 1. Fixed-width integers are big-endian.
//! * Every count is checked against its limit and against the bytes left (each element takes
//!   at least one byte) before a vector is allocated. A payload must be consumed exactly:
//!   trailing bytes are an error (except in [`Hello`], see versioning).
//!
//! # Messages (version 1)
//!
//! | type | message | payload |
//! |---|---|---|
//! | `0x01` | [`Hello`] | `magic "DSYN"`, `version u16`, `min_version u16`, `capabilities u64` (16 bytes) |
//! | `0x02` | [`Job`] | `seed u64`, `role u8`, `mode u8`, `dry_run bool`, `filter_dialect u8`, `root bytes`, `options: varint n, n × (key string, value string)`, `filter_args: varint n, n × bytes` |
//! | `0x10` | `Entries` | `varint n`, `n ×` entry (below) |
//! | `0x11` | `ListEnd` | empty |
//! | `0x12` | [`ScanProblem`] | `path bytes`, `vanished bool`, `message string` |
//! | `0x13` | `ListCredit` | `n varint` (u32): the receiver consumed `n` more entries (only after both announced [`CAP_LIST_CREDIT`]) |
//! | `0x20` | [`Request`] | `id varint`, `path bytes`, `size_hint varint`, `signature bool` |
//! | `0x21` | `SigChunk` | `id varint`, `rest` (≤ [`MAX_CHUNK`]) |
//! | `0x22` | `SigEnd` | `id varint` |
//! | `0x23` | `DataChunk` | `id varint`, `rest` (≤ [`MAX_CHUNK`]) |
//! | `0x24` | `DataEnd` | `id varint`, `status u8`: 0 ok: `file_hash [16]`, `size varint`, `mtime_sec zigzag`, `mtime_nsec varint`; 1 changed: `string`; 2 vanished; 3 failed: `string` |
//! | `0x25` | `Digest` | `id varint`, `path bytes` |
//! | `0x26` | `DigestReply` | `id varint`, `status u8`: 0 ok: `hash [16]`; 1 vanished; 2 failed: `string` |
//! | `0x27` | `Requests` | `varint n` (≤ [`MAX_REQUESTS`]), `n ×` (`id varint`, `path bytes`, `size_hint varint`, `signature bool`, always 0): whole files asked for at once, only after both announced [`CAP_REQUESTS`] |
//! | `0x30` | `Event` | `rest` (≤ [`MAX_EVENT`]), opaque to this module |
//! | `0x31` | `Report` | `rest` (≤ [`MAX_REPORT`]), opaque to this module |
//! | `0x3d` | `Keepalive` | empty; sent only after both announced [`CAP_KEEPALIVE`], ignored by the reader |
//! | `0x3e` | `Error` | `rest`, UTF-8 (≤ [`MAX_TEXT`]); fatal, the sender closes after it |
//! | `0x3f` | `Done` | empty |
//!
//! Type `0x00` and every number not listed are refused as [`ProtocolError::UnknownMessage`].
//! Enumerations: role 0 sender, 1 receiver (the role the process that receives the job plays);
//! mode 0 copy, 1 sync, 2 check; filter dialect 0 rclone, 1 rsync, 2 robocopy.
//!
//! A signature of the receiver's old file travels as `Request { signature: true }`, then
//! `SigChunk`s with that id, then `SigEnd`; the sender answers with `DataChunk`s (native delta
//! bytes when a signature came, the whole file otherwise) and a `DataEnd`. So no frame exceeds
//! the limit whatever the file size; the whole signature of one file is capped at
//! [`MAX_SIGNATURE`] by whoever reassembles it. `Digest`/`DigestReply` serve `--checksum`.
//!
//! ## Entries
//!
//! A batch holds at most [`MAX_BATCH_ENTRIES`] entries whose paths and link targets total at
//! most [`MAX_BATCH_NAME_BYTES`]; [`EntryBatcher`] cuts batches that respect both and the
//! frame limit. One entry:
//!
//! ```text
//! flags u8      bits 0-2 kind (0 file, 1 dir, 2 symlink, 3 block device, 4 char device,
//!               5 fifo, 6 socket); bit 3 same mode, bit 4 same uid, bit 5 same gid,
//!               bit 6 same dev as the previous entry of the batch; bit 7 reserved (0)
//! shared varint  bytes of the previous entry's path that this path starts with
//! suffix bytes   the rest of the path (shared + suffix ≤ MAX_PATH)
//! size varint    size in bytes, or the device number (rdev) for devices
//! mtime_sec zigzag, mtime_nsec varint (< 1e9)
//! mode varint    permission bits ≤ 0o7777           (absent if "same mode")
//! uid varint, gid varint (u32), dev varint           (each absent if "same")
//! ino varint, nlink varint (u32)
//! target bytes   symlinks only, ≤ MAX_TARGET bytes, no NUL
//! ```
//!
//! A decoded path must be a clean relative path ([`check_path`]): not absolute, no trailing
//! `/`, no empty, `.` or `..` component, no NUL, at most [`MAX_PATH`] bytes with components of
//! at most [`MAX_NAME`]; the empty path is the root. Paths in a batch are strictly increasing
//! in [`cmp_paths`](crate::scan::cmp_paths) order; across batches, [`ListChecker`] also checks
//! that each entry sits in a directory listed before it, starting from the root.
//!
//! # Versioning
//!
//! Both sides send a [`Hello`] as their first frame, without waiting for the other's, and
//! speak `min(our version, their version)` if that is at least both minimum versions, else
//! stop with [`ProtocolError::Version`] ([`negotiate`]). Capabilities are a bit set; the
//! session uses the intersection of both. The Hello layout is frozen for all versions: later
//! versions may append fields (a decoder ignores up to [`MAX_HELLO`] bytes in all), so an old
//! peer can always read a new one's Hello and explain the mismatch. Within a version, message
//! numbers and layouts never change; a later version may add message types, flag bits and
//! capabilities, used only once negotiated. A [`FrameDecoder::expecting_hello`] reports a first
//! frame that is not a Hello as [`ProtocolError::NotAPeer`] with a preview of what came
//! instead, which is what a login script printing to stdout looks like.
//!
//! # Security
//!
//! Every length and count from the peer is checked against a limit and against the bytes
//! actually present before anything is allocated; nothing trusts a declared size. Worst cases
//! per frame: [`MAX_FRAME`] of buffered wire bytes, [`MAX_PAYLOAD`] of decompressed payload,
//! and for an `Entries` batch 4096 entries of 88 bytes plus [`MAX_BATCH_NAME_BYTES`] of names.
//! [`FrameDecoder`] holds at most one partial frame beyond what the caller pushes between two
//! drains. Errors are final: a decoder that failed stays failed.

mod error;
mod frame;
mod listing;
mod message;
mod wire;

pub use error::{PathProblem, ProtocolError};
pub use frame::{encode_frame, Frame, FrameDecoder, FrameEncoder};
pub use listing::{check_entry, check_order, check_path, EntryBatcher, ListChecker};
pub use message::{
    DataStatus, DigestStatus, Hello, Job, Message, MessageType, Request, Role, ScanProblem,
    WireEntry,
};

/// The four bytes that open every [`Hello`].
pub const MAGIC: [u8; 4] = *b"DSYN";
/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// The oldest protocol version this build speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// Capability: frames may be zstd-compressed ([`FLAG_ZSTD`]).
pub const CAP_ZSTD: u64 = 1 << 0;
/// Capability: the side sends [`Message::Keepalive`] when it has been quiet, so the peer may
/// time out an idle connection.
pub const CAP_KEEPALIVE: u64 = 1 << 1;
/// Capability: the receiver grants listing credit ([`Message::ListCredit`]); the sender
/// keeps at most [`LIST_CREDIT`] entries beyond the granted ones in flight.
pub const CAP_LIST_CREDIT: u64 = 1 << 2;
/// Capability: the side understands [`Message::Requests`], whole-file requests batched in one
/// frame (so their paths compress together).
pub const CAP_REQUESTS: u64 = 1 << 3;
/// Most requests in one [`Message::Requests`].
pub const MAX_REQUESTS: usize = 1024;
/// Listing entries a sender may send before any [`Message::ListCredit`].
pub const LIST_CREDIT: u32 = 16384;
/// The capabilities this build announces.
pub const CAPABILITIES: u64 = CAP_ZSTD | CAP_KEEPALIVE | CAP_LIST_CREDIT | CAP_REQUESTS;

/// Largest value of a frame's length field: type, flags and payload (1 MiB + 64).
pub const MAX_FRAME: usize = (1 << 20) + 64;
/// Largest payload, on the wire and after decompression.
pub const MAX_PAYLOAD: usize = MAX_FRAME - 2;
/// Bytes before the payload: length (4), type (1), flags (1).
pub const FRAME_HEADER_LEN: usize = 6;
/// Frame flag: the payload is one zstd frame.
pub const FLAG_ZSTD: u8 = 1 << 0;
/// Largest [`Hello`] payload a decoder accepts (16 bytes in version 1; room to grow).
pub const MAX_HELLO: usize = 256;

/// Longest path, in bytes.
pub const MAX_PATH: usize = 4096;
/// Longest path component, in bytes.
pub const MAX_NAME: usize = 255;
/// Longest symlink target, in bytes.
pub const MAX_TARGET: usize = 4096;
/// Most entries in one `Entries` batch.
pub const MAX_BATCH_ENTRIES: usize = 4096;
/// Most path and link-target bytes in one `Entries` batch (shared path prefixes make the
/// decoded names larger than the payload, so they get their own cap).
pub const MAX_BATCH_NAME_BYTES: usize = 4 << 20;
/// Most key/value options in a [`Job`].
pub const MAX_OPTIONS: usize = 256;
/// Longest option key or value, in bytes.
pub const MAX_OPTION_LEN: usize = 4096;
/// Most filter arguments in a [`Job`].
pub const MAX_FILTER_ARGS: usize = 10_000;
/// Longest filter argument, in bytes.
pub const MAX_FILTER_ARG_LEN: usize = 4096;
/// Longest free text (problem and error messages, failure reasons), in bytes.
pub const MAX_TEXT: usize = 4096;
/// Most bytes in one `SigChunk` or `DataChunk`.
pub const MAX_CHUNK: usize = 1 << 20;
/// Most bytes of one file's signature, over all its chunks (enforced by the reassembler).
pub const MAX_SIGNATURE: u64 = 64 << 20;
/// Largest `Event`.
pub const MAX_EVENT: usize = 64 << 10;
/// Largest `Report`.
pub const MAX_REPORT: usize = 1 << 20;

/// What both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol version both speak.
    pub version: u16,
    /// Capabilities both announced.
    pub capabilities: u64,
}

/// Agrees on a version from both Hellos: the lower of the two newest versions, if both sides
/// still speak it; the capabilities both announced.
pub fn negotiate(ours: &Hello, theirs: &Hello) -> Result<Negotiated, ProtocolError> {
    for h in [ours, theirs] {
        if h.min_version > h.version {
            return Err(ProtocolError::BadHello {
                version: h.version,
                min_version: h.min_version,
            });
        }
    }
    let version = ours.version.min(theirs.version);
    if version < ours.min_version || version < theirs.min_version {
        return Err(ProtocolError::Version {
            ours: ours.version,
            our_min: ours.min_version,
            theirs: theirs.version,
            their_min: theirs.min_version,
        });
    }
    Ok(Negotiated {
        version,
        capabilities: ours.capabilities & theirs.capabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(min_version: u16, version: u16, capabilities: u64) -> Hello {
        Hello {
            version,
            min_version,
            capabilities,
        }
    }

    #[test]
    fn negotiation_takes_the_highest_common_version() {
        let n = negotiate(&hello(1, 3, 0b111), &hello(2, 5, 0b101)).unwrap();
        assert_eq!(
            n,
            Negotiated {
                version: 3,
                capabilities: 0b101
            }
        );
        let n = negotiate(&hello(1, 1, CAPABILITIES), &Hello::ours()).unwrap();
        assert_eq!(n.version, PROTOCOL_VERSION);
        assert_eq!(n.capabilities, CAPABILITIES);
    }

    #[test]
    fn negotiation_fails_without_a_common_version() {
        let err = negotiate(&hello(1, 2, 0), &hello(3, 4, 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no common protocol version: we speak 1 to 2, the peer 3 to 4"
        );
        assert!(negotiate(&hello(3, 4, 0), &hello(1, 2, 0)).is_err());
        let err = negotiate(&hello(1, 1, 0), &hello(2, 1, 0)).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::BadHello {
                version: 1,
                min_version: 2
            }
        );
    }
}
