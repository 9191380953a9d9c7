//! The messages of protocol version 1 and their payloads: a hand-written codec in which every
//! count and length is checked against its limit, and against the bytes present, before
//! anything is allocated. The layouts are tabled in the [module docs](super).

use super::error::{quote, ProtocolError};
use super::listing::{check_path, decode_entries, encode_entries};
use super::wire::{put_bytes, put_varint, unzigzag, utf8, zigzag, Reader};
use super::{
    CAPABILITIES, MAGIC, MAX_CHUNK, MAX_EVENT, MAX_FILTER_ARGS, MAX_FILTER_ARG_LEN, MAX_HELLO,
    MAX_OPTIONS, MAX_OPTION_LEN, MAX_PATH, MAX_REPORT, MAX_REQUESTS, MAX_TEXT,
    MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use crate::filter::Dialect;
use crate::scan::{Entry, Timestamp};
use crate::sync::Mode;

/// The entries of a listing on the wire are plain [`Entry`] values: the decoder checks every
/// field and builds them with [`Entry::from_parts`], so no second representation is kept.
pub type WireEntry = Entry;

/// The type byte of each message; the numbers are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum MessageType {
    /// [`Message::Hello`].
    Hello = 0x01,
    /// [`Message::Job`].
    Job = 0x02,
    /// [`Message::Entries`].
    Entries = 0x10,
    /// [`Message::ListEnd`].
    ListEnd = 0x11,
    /// [`Message::ListCredit`].
    ListCredit = 0x13,
    /// [`Message::ScanProblem`].
    ScanProblem = 0x12,
    /// [`Message::Request`].
    Request = 0x20,
    /// [`Message::Requests`].
    Requests = 0x27,
    /// [`Message::SigChunk`].
    SigChunk = 0x21,
    /// [`Message::SigEnd`].
    SigEnd = 0x22,
    /// [`Message::DataChunk`].
    DataChunk = 0x23,
    /// [`Message::DataEnd`].
    DataEnd = 0x24,
    /// [`Message::Digest`].
    Digest = 0x25,
    /// [`Message::DigestReply`].
    DigestReply = 0x26,
    /// [`Message::Event`].
    Event = 0x30,
    /// [`Message::Report`].
    Report = 0x31,
    /// [`Message::Keepalive`].
    Keepalive = 0x3d,
    /// [`Message::Error`].
    Error = 0x3e,
    /// [`Message::Done`].
    Done = 0x3f,
}

impl MessageType {
    /// Every type, in number order.
    pub const ALL: [Self; 19] = [
        Self::Hello,
        Self::Job,
        Self::Entries,
        Self::ListEnd,
        Self::ScanProblem,
        Self::ListCredit,
        Self::Request,
        Self::SigChunk,
        Self::SigEnd,
        Self::DataChunk,
        Self::DataEnd,
        Self::Digest,
        Self::DigestReply,
        Self::Requests,
        Self::Event,
        Self::Report,
        Self::Keepalive,
        Self::Error,
        Self::Done,
    ];

    /// The type with this number, if version 1 has one.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as u8 == v)
    }

    /// Its number on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Its name in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::Job => "job",
            Self::Entries => "entries",
            Self::ListEnd => "list end",
            Self::ListCredit => "list credit",
            Self::ScanProblem => "scan problem",
            Self::Request => "request",
            Self::Requests => "requests",
            Self::SigChunk => "signature chunk",
            Self::SigEnd => "signature end",
            Self::DataChunk => "data chunk",
            Self::DataEnd => "data end",
            Self::Digest => "digest",
            Self::DigestReply => "digest reply",
            Self::Event => "event",
            Self::Report => "report",
            Self::Keepalive => "keepalive",
            Self::Error => "error",
            Self::Done => "done",
        }
    }
}

/// The first message of each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The newest version the sender speaks.
    pub version: u16,
    /// The oldest version the sender speaks.
    pub min_version: u16,
    /// Capability bits ([`CAP_ZSTD`](super::CAP_ZSTD), …).
    pub capabilities: u64,
}

impl Hello {
    /// This build's Hello.
    pub fn ours() -> Self {
        Self {
            version: PROTOCOL_VERSION,
            min_version: MIN_PROTOCOL_VERSION,
            capabilities: CAPABILITIES,
        }
    }
}

/// Which side of the transfer a process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Holds the source tree: lists it and sends deltas and data.
    Sender,
    /// Holds the destination tree: sends signatures and writes.
    Receiver,
}

/// What the client asks the far side to do; sent once, after the Hellos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The per-session seed of the strong block hashes.
    pub seed: u64,
    /// The role the process receiving this job plays.
    pub role: Role,
    /// Copy, sync or check.
    pub mode: Mode,
    /// Plan only; change nothing.
    pub dry_run: bool,
    /// Job options as key/value pairs (at most [`MAX_OPTIONS`], each side at most
    /// [`MAX_OPTION_LEN`] bytes); their meaning belongs to the session.
    pub options: Vec<(String, String)>,
    /// The spelling of `filter_args`.
    pub filter_dialect: Dialect,
    /// The filter arguments, as given (at most [`MAX_FILTER_ARGS`] of at most
    /// [`MAX_FILTER_ARG_LEN`] bytes).
    pub filter_args: Vec<Vec<u8>>,
    /// The tree's path on the far side, as the user wrote it (at most [`MAX_PATH`] bytes, no
    /// NUL; may be absolute, or empty for the login directory).
    pub root: Vec<u8>,
}

/// An entry the sender's walk could not list, or that vanished meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanProblem {
    /// Relative path ([`check_path`](super::check_path)).
    pub path: Vec<u8>,
    /// It vanished during the scan (a warning, not an error).
    pub vanished: bool,
    /// What went wrong (at most [`MAX_TEXT`] bytes).
    pub message: String,
}

/// The receiver asks for one file. With `signature`, `SigChunk`s and a `SigEnd` with the same
/// id follow, carrying the signature of its old file; without, the sender sends it whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the receiver; names the transfer in every later message about it.
    pub id: u32,
    /// Relative path ([`check_path`](super::check_path)).
    pub path: Vec<u8>,
    /// The size the receiver expects, for buffer sizing only (never trusted).
    pub size_hint: u64,
    /// A signature follows.
    pub signature: bool,
}

/// How a file transfer ended on the sending side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataStatus {
    /// All data sent; what the reconstructed file must be.
    Ok {
        /// Whole-file hash the receiver checks.
        file_hash: [u8; 16],
        /// Its size.
        size: u64,
        /// Its modification time, as read.
        mtime: Timestamp,
    },
    /// The source changed while it was read (retries exhausted).
    Changed(String),
    /// The source vanished.
    Vanished,
    /// Reading failed.
    Failed(String),
}

/// The answer to a `Digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestStatus {
    /// The whole-file hash.
    Ok([u8; 16]),
    /// The file vanished.
    Vanished,
    /// Reading failed.
    Failed(String),
}

/// One message of protocol version 1.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// First message of each side.
    Hello(Hello),
    /// The job, from the client.
    Job(Job),
    /// A batch of the listing, in [`cmp_paths`](crate::scan::cmp_paths) order.
    Entries(Vec<WireEntry>),
    /// The listing is complete.
    ListEnd,
    /// The receiver has taken this many more entries off its listing buffer: the sender may
    /// send that many more (flow control, when both announced
    /// [`CAP_LIST_CREDIT`](super::CAP_LIST_CREDIT)).
    ListCredit(u32),
    /// An entry that could not be listed.
    ScanProblem(ScanProblem),
    /// A file asked for.
    Request(Request),
    /// Whole files asked for together (at most [`MAX_REQUESTS`] with `signature` false; only
    /// when both announced [`CAP_REQUESTS`](super::CAP_REQUESTS)): one frame, compressed as
    /// one, where the paths share their directories.
    Requests(Vec<Request>),
    /// Part of the signature for request `id` (at most [`MAX_CHUNK`] bytes).
    SigChunk {
        /// The request.
        id: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The signature for request `id` is complete.
    SigEnd {
        /// The request.
        id: u32,
    },
    /// Part of the answer to request `id`: delta bytes if a signature came, else the file
    /// (at most [`MAX_CHUNK`] bytes).
    DataChunk {
        /// The request.
        id: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The answer to request `id` is complete.
    DataEnd {
        /// The request.
        id: u32,
        /// How it ended.
        status: DataStatus,
    },
    /// Asks for the whole-file hash of a file (`--checksum`).
    Digest {
        /// Chosen by the asker.
        id: u32,
        /// Relative path.
        path: Vec<u8>,
    },
    /// The answer to `Digest` `id`.
    DigestReply {
        /// The digest request.
        id: u32,
        /// The hash or what prevented it.
        status: DigestStatus,
    },
    /// A serialized event (at most [`MAX_EVENT`] bytes), opaque here.
    Event(Vec<u8>),
    /// A serialized report (at most [`MAX_REPORT`] bytes), opaque here.
    Report(Vec<u8>),
    /// Nothing: sent by a side that has been quiet for a while, so that the peer's idle timeout
    /// measures a stalled connection, not a busy side (only when both announced
    /// [`CAP_KEEPALIVE`](super::CAP_KEEPALIVE)).
    Keepalive,
    /// A fatal error; the sender stops after it (at most [`MAX_TEXT`] bytes).
    Error(String),
    /// The sender has nothing more to say.
    Done,
}

fn mode_to_wire(mode: Mode) -> u8 {
    match mode {
        Mode::Copy => 0,
        Mode::Sync => 1,
        Mode::Check => 2,
    }
}

fn dialect_to_wire(d: Dialect) -> u8 {
    match d {
        Dialect::Rclone => 0,
        Dialect::Rsync => 1,
        Dialect::Robocopy => 2,
    }
}

/// Appends a string cut to at most `limit` bytes (at a character boundary): free text we
/// send must never make the peer refuse the whole message.
fn put_text(out: &mut Vec<u8>, s: &str, limit: usize, prefixed: bool) {
    let mut end = s.len().min(limit);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if prefixed {
        put_bytes(out, &s.as_bytes()[..end]);
    } else {
        out.extend_from_slice(&s.as_bytes()[..end]);
    }
}

impl Message {
    /// Its type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Hello(_) => MessageType::Hello,
            Self::Job(_) => MessageType::Job,
            Self::Entries(_) => MessageType::Entries,
            Self::ListEnd => MessageType::ListEnd,
            Self::ListCredit(_) => MessageType::ListCredit,
            Self::ScanProblem(_) => MessageType::ScanProblem,
            Self::Request(_) => MessageType::Request,
            Self::Requests(_) => MessageType::Requests,
            Self::SigChunk { .. } => MessageType::SigChunk,
            Self::SigEnd { .. } => MessageType::SigEnd,
            Self::DataChunk { .. } => MessageType::DataChunk,
            Self::DataEnd { .. } => MessageType::DataEnd,
            Self::Digest { .. } => MessageType::Digest,
            Self::DigestReply { .. } => MessageType::DigestReply,
            Self::Event(_) => MessageType::Event,
            Self::Report(_) => MessageType::Report,
            Self::Keepalive => MessageType::Keepalive,
            Self::Error(_) => MessageType::Error,
            Self::Done => MessageType::Done,
        }
    }

    /// Appends the payload (without the frame header). Free text is cut to its limit; other
    /// limits are the caller's to respect (use [`EntryBatcher`](super::EntryBatcher) for
    /// listings and chunks of at most [`MAX_CHUNK`]), and [`FrameEncoder`](super::FrameEncoder)
    /// refuses a payload that does not fit a frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello(h) => {
                out.extend_from_slice(&MAGIC);
                out.extend_from_slice(&h.version.to_be_bytes());
                out.extend_from_slice(&h.min_version.to_be_bytes());
                out.extend_from_slice(&h.capabilities.to_be_bytes());
            }
            Self::Job(j) => {
                out.extend_from_slice(&j.seed.to_be_bytes());
                out.push(match j.role {
                    Role::Sender => 0,
                    Role::Receiver => 1,
                });
                out.push(mode_to_wire(j.mode));
                out.push(u8::from(j.dry_run));
                out.push(dialect_to_wire(j.filter_dialect));
                put_bytes(out, &j.root);
                put_varint(out, j.options.len() as u64);
                for (k, v) in &j.options {
                    put_bytes(out, k.as_bytes());
                    put_bytes(out, v.as_bytes());
                }
                put_varint(out, j.filter_args.len() as u64);
                for a in &j.filter_args {
                    put_bytes(out, a);
                }
            }
            Self::Entries(entries) => encode_entries(entries, out),
            Self::ListEnd | Self::Done | Self::Keepalive => {}
            Self::ScanProblem(p) => {
                put_bytes(out, &p.path);
                out.push(u8::from(p.vanished));
                put_text(out, &p.message, MAX_TEXT, true);
            }
            Self::Request(r) => encode_request(r, out),
            Self::Requests(rs) => {
                put_varint(out, rs.len() as u64);
                for r in rs {
                    encode_request(r, out);
                }
            }
            Self::SigChunk { id, bytes } | Self::DataChunk { id, bytes } => {
                put_varint(out, u64::from(*id));
                out.extend_from_slice(bytes);
            }
            Self::SigEnd { id } => put_varint(out, u64::from(*id)),
            Self::ListCredit(n) => put_varint(out, u64::from(*n)),
            Self::DataEnd { id, status } => {
                put_varint(out, u64::from(*id));
                match status {
                    DataStatus::Ok {
                        file_hash,
                        size,
                        mtime,
                    } => {
                        out.push(0);
                        out.extend_from_slice(file_hash);
                        put_varint(out, *size);
                        put_varint(out, zigzag(mtime.sec));
                        put_varint(out, u64::from(mtime.nsec));
                    }
                    DataStatus::Changed(why) => {
                        out.push(1);
                        put_text(out, why, MAX_TEXT, true);
                    }
                    DataStatus::Vanished => out.push(2),
                    DataStatus::Failed(why) => {
                        out.push(3);
                        put_text(out, why, MAX_TEXT, true);
                    }
                }
            }
            Self::Digest { id, path } => {
                put_varint(out, u64::from(*id));
                put_bytes(out, path);
            }
            Self::DigestReply { id, status } => {
                put_varint(out, u64::from(*id));
                match status {
                    DigestStatus::Ok(hash) => {
                        out.push(0);
                        out.extend_from_slice(hash);
                    }
                    DigestStatus::Vanished => out.push(1),
                    DigestStatus::Failed(why) => {
                        out.push(2);
                        put_text(out, why, MAX_TEXT, true);
                    }
                }
            }
            Self::Event(b) | Self::Report(b) => out.extend_from_slice(b),
            Self::Error(s) => put_text(out, s, MAX_TEXT, false),
        }
    }

    /// Decodes one payload (already decompressed) of type `msg_type`, checking every limit
    /// and every path. Trailing bytes are refused, except after a Hello's 16 (room for later
    /// versions, up to [`MAX_HELLO`]).
    ///
    /// # Security
    ///
    /// Allocates at most what the payload holds, except an `Entries` batch whose shared path
    /// prefixes decode to at most [`MAX_BATCH_NAME_BYTES`](super::MAX_BATCH_NAME_BYTES) of
    /// names plus 88 bytes per entry.
    pub fn decode(msg_type: u8, payload: &[u8]) -> Result<Message, ProtocolError> {
        let ty =
            MessageType::from_u8(msg_type).ok_or(ProtocolError::UnknownMessage { msg_type })?;
        let mut r = Reader::new(ty.name(), payload);
        let msg = match ty {
            MessageType::Hello => {
                if payload.len() > MAX_HELLO {
                    return Err(ProtocolError::TooLong {
                        field: "hello",
                        len: payload.len() as u64,
                        limit: MAX_HELLO as u64,
                    });
                }
                let magic: [u8; 4] = r.array("magic")?;
                if magic != MAGIC {
                    return Err(ProtocolError::BadMagic { got: quote(&magic) });
                }
                let version = r.u16_be("version")?;
                let min_version = r.u16_be("min version")?;
                let capabilities = r.u64_be("capabilities")?;
                if min_version > version {
                    return Err(ProtocolError::BadHello {
                        version,
                        min_version,
                    });
                }
                // Later versions may append fields.
                r.rest(MAX_HELLO, "hello")?;
                Self::Hello(Hello {
                    version,
                    min_version,
                    capabilities,
                })
            }
            MessageType::Job => decode_job(&mut r)?,
            MessageType::Entries => Self::Entries(decode_entries(&mut r)?),
            MessageType::ListEnd => Self::ListEnd,
            MessageType::Done => Self::Done,
            MessageType::Keepalive => Self::Keepalive,
            MessageType::ScanProblem => {
                let path = path(&mut r, "scan problem path")?;
                let vanished = r.bool("vanished")?;
                let message = r.string(MAX_TEXT, "scan problem message")?;
                Self::ScanProblem(ScanProblem {
                    path,
                    vanished,
                    message,
                })
            }
            MessageType::Request => Self::Request(decode_request(&mut r)?),
            MessageType::Requests => {
                // id, path length, size, flag: four bytes at least each.
                let n = r.count(MAX_REQUESTS, 4, "request count")?;
                let mut rs = Vec::with_capacity(n);
                for _ in 0..n {
                    let q = decode_request(&mut r)?;
                    if q.signature {
                        // A batch is whole files only: a signature follows one request.
                        return Err(ProtocolError::BadValue {
                            field: "batched request's signature flag",
                            value: 1,
                        });
                    }
                    rs.push(q);
                }
                Self::Requests(rs)
            }
            MessageType::SigChunk => Self::SigChunk {
                id: r.u32("id")?,
                bytes: r.rest(MAX_CHUNK, "signature chunk")?.to_vec(),
            },
            MessageType::DataChunk => Self::DataChunk {
                id: r.u32("id")?,
                bytes: r.rest(MAX_CHUNK, "data chunk")?.to_vec(),
            },
            MessageType::SigEnd => Self::SigEnd { id: r.u32("id")? },
            MessageType::ListCredit => Self::ListCredit(r.u32("credit")?),
            MessageType::DataEnd => {
                let id = r.u32("id")?;
                let status = match r.u8("status")? {
                    0 => {
                        let file_hash = r.array("file hash")?;
                        let size = r.varint("size")?;
                        let sec = unzigzag(r.varint("mtime seconds")?);
                        let nsec = r.u32("mtime nanoseconds")?;
                        if nsec >= 1_000_000_000 {
                            return Err(ProtocolError::BadValue {
                                field: "mtime nanoseconds",
                                value: u64::from(nsec),
                            });
                        }
                        DataStatus::Ok {
                            file_hash,
                            size,
                            mtime: Timestamp { sec, nsec },
                        }
                    }
                    1 => DataStatus::Changed(r.string(MAX_TEXT, "reason")?),
                    2 => DataStatus::Vanished,
                    3 => DataStatus::Failed(r.string(MAX_TEXT, "reason")?),
                    v => {
                        return Err(ProtocolError::BadValue {
                            field: "data end status",
                            value: u64::from(v),
                        })
                    }
                };
                Self::DataEnd { id, status }
            }
            MessageType::Digest => Self::Digest {
                id: r.u32("id")?,
                path: path(&mut r, "digest path")?,
            },
            MessageType::DigestReply => {
                let id = r.u32("id")?;
                let status = match r.u8("status")? {
                    0 => DigestStatus::Ok(r.array("hash")?),
                    1 => DigestStatus::Vanished,
                    2 => DigestStatus::Failed(r.string(MAX_TEXT, "reason")?),
                    v => {
                        return Err(ProtocolError::BadValue {
                            field: "digest status",
                            value: u64::from(v),
                        })
                    }
                };
                Self::DigestReply { id, status }
            }
            MessageType::Event => Self::Event(r.rest(MAX_EVENT, "event")?.to_vec()),
            MessageType::Report => Self::Report(r.rest(MAX_REPORT, "report")?.to_vec()),
            MessageType::Error => Self::Error(utf8(r.rest(MAX_TEXT, "error")?, "error")?),
        };
        r.finish()?;
        Ok(msg)
    }
}

impl Message {
    /// Like [`decode`](Self::decode), but takes the payload by value so that chunks, events
    /// and reports keep its buffer instead of copying up to a MiB.
    pub fn decode_owned(msg_type: u8, mut payload: Vec<u8>) -> Result<Message, ProtocolError> {
        let ty = MessageType::from_u8(msg_type);
        let (limit, field) = match ty {
            Some(MessageType::SigChunk) => (MAX_CHUNK, "signature chunk"),
            Some(MessageType::DataChunk) => (MAX_CHUNK, "data chunk"),
            Some(MessageType::Event) => (MAX_EVENT, "event"),
            Some(MessageType::Report) => (MAX_REPORT, "report"),
            _ => return Self::decode(msg_type, &payload),
        };
        let is_chunk = matches!(ty, Some(MessageType::SigChunk | MessageType::DataChunk));
        let (id, at) = if is_chunk {
            let mut r = Reader::new(field, &payload);
            let id = r.u32("id")?;
            (id, payload.len() - r.remaining())
        } else {
            (0, 0)
        };
        let len = payload.len() - at;
        if len > limit {
            return Err(ProtocolError::TooLong {
                field,
                len: len as u64,
                limit: limit as u64,
            });
        }
        payload.drain(..at);
        Ok(match ty {
            Some(MessageType::SigChunk) => Self::SigChunk { id, bytes: payload },
            Some(MessageType::DataChunk) => Self::DataChunk { id, bytes: payload },
            Some(MessageType::Event) => Self::Event(payload),
            _ => Self::Report(payload),
        })
    }
}

/// A relative path, checked.
fn encode_request(r: &Request, out: &mut Vec<u8>) {
    put_varint(out, u64::from(r.id));
    put_bytes(out, &r.path);
    put_varint(out, r.size_hint);
    out.push(u8::from(r.signature));
}

fn decode_request(r: &mut Reader<'_>) -> Result<Request, ProtocolError> {
    Ok(Request {
        id: r.u32("id")?,
        path: path(r, "request path")?,
        size_hint: r.varint("size hint")?,
        signature: r.bool("signature flag")?,
    })
}

fn path(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u8>, ProtocolError> {
    let p = r.bytes(MAX_PATH, field)?;
    check_path(field, p)?;
    Ok(p.to_vec())
}

fn decode_job(r: &mut Reader<'_>) -> Result<Message, ProtocolError> {
    let seed = r.u64_be("seed")?;
    let role = match r.u8("role")? {
        0 => Role::Sender,
        1 => Role::Receiver,
        v => {
            return Err(ProtocolError::BadValue {
                field: "role",
                value: u64::from(v),
            })
        }
    };
    let mode = match r.u8("mode")? {
        0 => Mode::Copy,
        1 => Mode::Sync,
        2 => Mode::Check,
        v => {
            return Err(ProtocolError::BadValue {
                field: "mode",
                value: u64::from(v),
            })
        }
    };
    let dry_run = r.bool("dry run")?;
    let filter_dialect = match r.u8("filter dialect")? {
        0 => Dialect::Rclone,
        1 => Dialect::Rsync,
        2 => Dialect::Robocopy,
        v => {
            return Err(ProtocolError::BadValue {
                field: "filter dialect",
                value: u64::from(v),
            })
        }
    };
    let root = r.bytes(MAX_PATH, "root")?;
    if root.contains(&0) {
        return Err(ProtocolError::BadPath {
            field: "root",
            path: quote(root),
            problem: super::PathProblem::Nul,
        });
    }
    let root = root.to_vec();
    // Each pair takes at least its two length bytes.
    let n = r.count(MAX_OPTIONS, 2, "options")?;
    let mut options = Vec::with_capacity(n);
    for _ in 0..n {
        let k = r.string(MAX_OPTION_LEN, "option key")?;
        let v = r.string(MAX_OPTION_LEN, "option value")?;
        options.push((k, v));
    }
    let n = r.count(MAX_FILTER_ARGS, 1, "filter args")?;
    let mut filter_args = Vec::with_capacity(n);
    for _ in 0..n {
        filter_args.push(r.bytes(MAX_FILTER_ARG_LEN, "filter arg")?.to_vec());
    }
    Ok(Message::Job(Job {
        seed,
        role,
        mode,
        dry_run,
        options,
        filter_dialect,
        filter_args,
        root,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::listing::tests::entry;
    use super::super::{MAX_BATCH_ENTRIES, MAX_PAYLOAD};
    use super::*;
    use crate::scan::EntryKind;
    use proptest::prelude::*;

    fn round_trip(m: &Message) {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert!(out.len() <= MAX_PAYLOAD);
        let back = Message::decode(m.message_type().as_u8(), &out)
            .unwrap_or_else(|e| panic!("{m:?}: {e}"));
        assert_eq!(&back, m);
        assert_eq!(
            Message::decode_owned(m.message_type().as_u8(), out.clone()).as_ref(),
            Ok(m)
        );
        // Every proper prefix is refused (no message is a prefix of another of its type),
        // except where the last field runs to the end.
        let open_ended = matches!(
            m,
            Message::SigChunk { .. }
                | Message::DataChunk { .. }
                | Message::Event(_)
                | Message::Report(_)
                | Message::Error(_)
        );
        // (Only for small payloads: each check decodes the whole prefix.)
        if !open_ended && out.len() <= 4096 {
            for n in 0..out.len() {
                assert!(
                    Message::decode(m.message_type().as_u8(), &out[..n]).is_err(),
                    "{m:?} cut at {n}"
                );
            }
        }
        if !matches!(m, Message::Hello(_)) && !open_ended {
            out.push(0);
            assert!(matches!(
                Message::decode(m.message_type().as_u8(), &out),
                Err(ProtocolError::TrailingBytes { extra: 1, .. })
            ));
        }
    }

    /// One of each message, with awkward values.
    pub(crate) fn samples() -> Vec<Message> {
        vec![
            Message::Hello(Hello::ours()),
            Message::Hello(Hello {
                version: u16::MAX,
                min_version: 0,
                capabilities: u64::MAX,
            }),
            Message::Job(Job {
                seed: 0x0123_4567_89ab_cdef,
                role: Role::Receiver,
                mode: Mode::Sync,
                dry_run: true,
                options: vec![
                    ("delete".into(), "after".into()),
                    ("".into(), "ü".repeat(100)),
                ],
                filter_dialect: Dialect::Rsync,
                filter_args: vec![b"--exclude".to_vec(), b"*.tmp\xff".to_vec(), Vec::new()],
                root: b"/srv/mail/".to_vec(),
            }),
            Message::Job(Job {
                seed: 0,
                role: Role::Sender,
                mode: Mode::Check,
                dry_run: false,
                options: Vec::new(),
                filter_dialect: Dialect::Robocopy,
                filter_args: Vec::new(),
                root: Vec::new(),
            }),
            Message::Entries(Vec::new()),
            Message::Entries(vec![
                entry(b"", EntryKind::Dir),
                entry(b"a", EntryKind::Symlink),
                entry(b"a\xffb", EntryKind::File),
            ]),
            Message::ListEnd,
            Message::ScanProblem(ScanProblem {
                path: b"dir/gone".to_vec(),
                vanished: true,
                message: "vanished during the scan".into(),
            }),
            Message::ListCredit(4096),
            Message::Request(Request {
                id: u32::MAX,
                path: b"cur/1700000000.M1P2.host:2,S".to_vec(),
                size_hint: u64::MAX,
                signature: true,
            }),
            Message::Request(Request {
                id: 0,
                path: Vec::new(),
                size_hint: 0,
                signature: false,
            }),
            Message::SigChunk {
                id: 7,
                bytes: vec![0xab; 1000],
            },
            Message::SigChunk {
                id: 7,
                bytes: Vec::new(),
            },
            Message::SigEnd { id: 7 },
            Message::DataChunk {
                id: 8,
                bytes: vec![1; MAX_CHUNK],
            },
            Message::DataEnd {
                id: 8,
                status: DataStatus::Ok {
                    file_hash: [9; 16],
                    size: 1 << 40,
                    mtime: Timestamp {
                        sec: i64::MIN,
                        nsec: 999_999_999,
                    },
                },
            },
            Message::DataEnd {
                id: 8,
                status: DataStatus::Changed("size changed from 10 to 12".into()),
            },
            Message::DataEnd {
                id: 8,
                status: DataStatus::Vanished,
            },
            Message::DataEnd {
                id: 8,
                status: DataStatus::Failed("permission denied".into()),
            },
            Message::Digest {
                id: 3,
                path: b"a/b".to_vec(),
            },
            Message::DigestReply {
                id: 3,
                status: DigestStatus::Ok([0xee; 16]),
            },
            Message::DigestReply {
                id: 3,
                status: DigestStatus::Vanished,
            },
            Message::DigestReply {
                id: 3,
                status: DigestStatus::Failed("i/o error".into()),
            },
            Message::Requests(vec![
                Request {
                    id: 1,
                    path: b"u1/Maildir/cur/1.msg".to_vec(),
                    size_hint: 4096,
                    signature: false,
                },
                Request {
                    id: 2,
                    path: b"u1/Maildir/cur/2.msg".to_vec(),
                    size_hint: 0,
                    signature: false,
                },
            ]),
            Message::Requests(Vec::new()),
            Message::Event(b"{\"kind\":\"copied\"}".to_vec()),
            Message::Report(vec![0; MAX_REPORT]),
            Message::Keepalive,
            Message::Error("no space left on device".into()),
            Message::Done,
        ]
    }

    #[test]
    fn every_message_round_trips() {
        let samples = samples();
        let mut seen: Vec<MessageType> = samples.iter().map(Message::message_type).collect();
        seen.dedup();
        assert_eq!(seen, MessageType::ALL, "a sample of every type, in order");
        for m in &samples {
            round_trip(m);
        }
    }

    #[test]
    fn type_numbers_are_stable() {
        let numbers: Vec<u8> = MessageType::ALL.iter().map(|t| t.as_u8()).collect();
        assert_eq!(
            numbers,
            [
                0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
                0x30, 0x31, 0x3d, 0x3e, 0x3f
            ]
        );
        for v in 0..=255u8 {
            match MessageType::from_u8(v) {
                Some(t) => assert_eq!(t.as_u8(), v),
                None => assert_eq!(
                    Message::decode(v, &[]),
                    Err(ProtocolError::UnknownMessage { msg_type: v })
                ),
            }
        }
        assert_eq!(
            Message::decode(0, &[]).unwrap_err().to_string(),
            "unknown message type 0x00"
        );
    }

    #[test]
    fn hello_layout_is_frozen() {
        let mut out = Vec::new();
        Message::Hello(Hello {
            version: 2,
            min_version: 1,
            capabilities: 5,
        })
        .encode(&mut out);
        assert_eq!(out, b"DSYN\x00\x02\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05");
        // A later version's longer Hello still reads.
        out.extend([0xaa; 40]);
        assert!(matches!(
            Message::decode(0x01, &out),
            Ok(Message::Hello(Hello { version: 2, .. }))
        ));
        out.extend([0; MAX_HELLO]);
        assert!(matches!(
            Message::decode(0x01, &out),
            Err(ProtocolError::TooLong { field: "hello", .. })
        ));
        let err = Message::decode(
            0x01,
            b"RSYN\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hello has the magic \"RSYN\" instead of \"DSYN\""
        );
        let err = Message::decode(
            0x01,
            b"DSYN\x00\x01\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00",
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProtocolError::BadHello {
                version: 1,
                min_version: 2
            }
        );
    }

    #[test]
    fn batched_requests_are_checked_like_single_ones() {
        let one = |path: &[u8], signature: bool| {
            let mut p = Vec::new();
            put_varint(&mut p, 9);
            put_bytes(&mut p, path);
            put_varint(&mut p, 100);
            p.push(u8::from(signature));
            p
        };
        let batch = |items: &[Vec<u8>]| {
            let mut p = Vec::new();
            put_varint(&mut p, items.len() as u64);
            for i in items {
                p.extend_from_slice(i);
            }
            p
        };
        let ok = batch(&[one(b"a/b", false), one(b"c", false)]);
        assert!(matches!(
            Message::decode(0x27, &ok),
            Ok(Message::Requests(v)) if v.len() == 2 && v[1].path == b"c"
        ));
        // One bad path spoils the batch.
        let bad = batch(&[one(b"a/b", false), one(b"../etc/passwd", false)]);
        assert!(matches!(
            Message::decode(0x27, &bad),
            Err(ProtocolError::BadPath {
                field: "request path",
                ..
            })
        ));
        // A signature follows a single request only.
        let sig = batch(&[one(b"a", true)]);
        assert!(matches!(
            Message::decode(0x27, &sig),
            Err(ProtocolError::BadValue { .. })
        ));
        // A count beyond the limit, or beyond what the payload can hold, allocates nothing.
        let mut huge = Vec::new();
        put_varint(&mut huge, MAX_REQUESTS as u64 + 1);
        assert!(matches!(
            Message::decode(0x27, &huge),
            Err(ProtocolError::TooMany { .. })
        ));
        let mut short = Vec::new();
        put_varint(&mut short, 1000);
        short.extend(one(b"a", false));
        assert!(Message::decode(0x27, &short).is_err());
    }

    #[test]
    fn hostile_paths_in_requests_are_refused() {
        for (ty, field) in [
            (0x20, "request path"),
            (0x25, "digest path"),
            (0x12, "scan problem path"),
        ] {
            for bad in [
                &b"../etc/passwd"[..],
                b"/etc/passwd",
                b"a/./b",
                b"a//b",
                b"a/",
                b"a\0",
            ] {
                let mut p = Vec::new();
                if ty != 0x12 {
                    put_varint(&mut p, 1);
                }
                put_bytes(&mut p, bad);
                p.extend([0, 0, 0]);
                match Message::decode(ty, &p) {
                    Err(ProtocolError::BadPath { field: f, .. }) => assert_eq!(f, field),
                    other => panic!("{}: {other:?}", quote(bad)),
                }
            }
        }
        let mut p = vec![1];
        put_varint(&mut p, 5000);
        p.extend(vec![b'a'; 5000]);
        assert_eq!(
            Message::decode(0x20, &p),
            Err(ProtocolError::TooLong {
                field: "request path",
                len: 5000,
                limit: 4096
            })
        );
    }

    #[test]
    fn limits_are_enforced() {
        let mut p = vec![1];
        p.extend(vec![0; MAX_CHUNK + 1]);
        assert!(matches!(
            Message::decode(0x23, &p),
            Err(ProtocolError::TooLong {
                field: "data chunk",
                ..
            })
        ));
        assert!(matches!(
            Message::decode(0x21, &p),
            Err(ProtocolError::TooLong {
                field: "signature chunk",
                ..
            })
        ));
        assert!(matches!(
            Message::decode(0x30, &vec![0; MAX_EVENT + 1]),
            Err(ProtocolError::TooLong { field: "event", .. })
        ));
        assert!(matches!(
            Message::decode(0x3e, &vec![b'x'; MAX_TEXT + 1]),
            Err(ProtocolError::TooLong { field: "error", .. })
        ));
        assert_eq!(
            Message::decode(0x3e, b"\xff"),
            Err(ProtocolError::NotUtf8 { field: "error" })
        );
        // Ids are u32.
        let mut p = Vec::new();
        put_varint(&mut p, 1 << 32);
        assert!(matches!(
            Message::decode(0x22, &p),
            Err(ProtocolError::BadValue { field: "id", .. })
        ));
        // Statuses and enums.
        assert_eq!(
            Message::decode(0x24, &[1, 4]),
            Err(ProtocolError::BadValue {
                field: "data end status",
                value: 4
            })
        );
        assert_eq!(
            Message::decode(0x26, &[1, 3]),
            Err(ProtocolError::BadValue {
                field: "digest status",
                value: 3
            })
        );
        let mut p = vec![1];
        p.push(0);
        p.extend([9; 16]);
        p.extend([0, 0]);
        put_varint(&mut p, 1_000_000_000);
        assert_eq!(
            Message::decode(0x24, &p),
            Err(ProtocolError::BadValue {
                field: "mtime nanoseconds",
                value: 1_000_000_000
            })
        );
    }

    fn job_prefix() -> Vec<u8> {
        let mut p = vec![0; 8];
        p.extend([0, 0, 0, 0]); // role, mode, dry run, dialect
        put_bytes(&mut p, b"/srv");
        p
    }

    #[test]
    fn hostile_jobs_are_refused() {
        for (i, field) in [
            (8, "role"),
            (9, "mode"),
            (10, "dry run"),
            (11, "filter dialect"),
        ] {
            let mut p = job_prefix();
            p[i] = 3;
            p.extend([0, 0]);
            assert_eq!(
                Message::decode(0x02, &p),
                Err(ProtocolError::BadValue { field, value: 3 })
            );
        }
        // Huge counts in a tiny payload.
        let mut p = job_prefix();
        put_varint(&mut p, 257);
        assert!(matches!(
            Message::decode(0x02, &p),
            Err(ProtocolError::TooMany {
                field: "options",
                count: 257,
                ..
            })
        ));
        let mut p = job_prefix();
        put_varint(&mut p, 200);
        assert!(matches!(
            Message::decode(0x02, &p),
            Err(ProtocolError::ShortMessage {
                field: "options",
                ..
            })
        ));
        let mut p = job_prefix();
        p.push(0);
        put_varint(&mut p, u64::MAX);
        assert!(matches!(
            Message::decode(0x02, &p),
            Err(ProtocolError::TooMany {
                field: "filter args",
                ..
            })
        ));
        let mut p = job_prefix();
        p.push(0);
        put_varint(&mut p, 10_000);
        p.extend([0; 100]);
        assert!(matches!(
            Message::decode(0x02, &p),
            Err(ProtocolError::ShortMessage {
                field: "filter args",
                ..
            })
        ));
        let mut p = job_prefix();
        p.push(1);
        put_varint(&mut p, 4097);
        assert!(matches!(
            Message::decode(0x02, &p),
            Err(ProtocolError::TooLong {
                field: "option key",
                len: 4097,
                ..
            })
        ));
        let mut p = job_prefix();
        p.extend([1, 1, b'k', 1, 0xff]);
        assert_eq!(
            Message::decode(0x02, &p),
            Err(ProtocolError::NotUtf8 {
                field: "option value"
            })
        );
        let mut p = vec![0; 12];
        put_bytes(&mut p, b"/a\0b");
        p.extend([0, 0]);
        assert!(matches!(
            Message::decode(0x02, &p),
            Err(ProtocolError::BadPath { field: "root", .. })
        ));
    }

    #[test]
    fn outgoing_text_is_cut_to_fit() {
        let long = "é".repeat(3000); // 6000 bytes
        for m in [
            Message::Error(long.clone()),
            Message::ScanProblem(ScanProblem {
                path: b"x".to_vec(),
                vanished: false,
                message: long.clone(),
            }),
            Message::DataEnd {
                id: 1,
                status: DataStatus::Failed(long.clone()),
            },
        ] {
            let mut out = Vec::new();
            m.encode(&mut out);
            let text = match Message::decode(m.message_type().as_u8(), &out).unwrap() {
                Message::Error(s) => s,
                Message::ScanProblem(p) => p.message,
                Message::DataEnd {
                    status: DataStatus::Failed(s),
                    ..
                } => s,
                other => panic!("{other:?}"),
            };
            assert_eq!(text, "é".repeat(MAX_TEXT / 2));
        }
    }

    #[test]
    fn a_full_batch_fits_a_frame() {
        // 4096 entries with long distinct names: the batcher would cut it, but even the
        // encoder's worst case for short names stays under the payload limit.
        let list: Vec<Entry> = (0..MAX_BATCH_ENTRIES)
            .map(|i| {
                Entry::from_parts(crate::scan::EntryParts {
                    path: format!("{i:08}").into_bytes().into(),
                    kind: Some(EntryKind::File),
                    size: u64::MAX,
                    mtime: Timestamp {
                        sec: i64::MIN,
                        nsec: 999_999_999,
                    },
                    mode: 0o7777,
                    uid: u32::MAX - i as u32,
                    gid: u32::MAX - i as u32,
                    dev: u64::MAX - i as u64,
                    ino: u64::MAX,
                    nlink: u64::MAX,
                    ..Default::default()
                })
            })
            .collect();
        let m = Message::Entries(list);
        round_trip(&m);
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let bytes = |n| proptest::collection::vec(any::<u8>(), 0..n);
        let path = proptest::collection::vec(proptest::collection::vec(b'a'..=b'z', 1..5), 0..4)
            .prop_map(|c| c.join(&b'/'));
        prop_oneof![
            (any::<u16>(), any::<u16>(), any::<u64>()).prop_map(|(a, b, c)| Message::Hello(
                Hello {
                    version: a.max(b),
                    min_version: a.min(b),
                    capabilities: c
                }
            )),
            (
                any::<u64>(),
                any::<bool>(),
                proptest::collection::vec((".{0,8}", ".{0,8}"), 0..4),
                proptest::collection::vec(bytes(10), 0..4),
                bytes(30)
            )
                .prop_map(|(seed, dry_run, options, filter_args, root)| Message::Job(
                    Job {
                        seed,
                        role: if dry_run {
                            Role::Sender
                        } else {
                            Role::Receiver
                        },
                        mode: [Mode::Copy, Mode::Sync, Mode::Check][(seed % 3) as usize],
                        dry_run,
                        options,
                        filter_dialect: [Dialect::Rclone, Dialect::Rsync, Dialect::Robocopy]
                            [(seed % 5 % 3) as usize],
                        filter_args,
                        root: root.into_iter().filter(|&b| b != 0).collect(),
                    }
                )),
            (any::<u32>(), path.clone(), any::<u64>(), any::<bool>()).prop_map(
                |(id, path, size_hint, signature)| Message::Request(Request {
                    id,
                    path,
                    size_hint,
                    signature
                })
            ),
            proptest::collection::vec((any::<u32>(), path.clone(), any::<u64>()), 0..20).prop_map(
                |v| Message::Requests(
                    v.into_iter()
                        .map(|(id, path, size_hint)| Request {
                            id,
                            path,
                            size_hint,
                            signature: false
                        })
                        .collect()
                )
            ),
            (any::<u32>(), bytes(3000)).prop_map(|(id, bytes)| Message::SigChunk { id, bytes }),
            (any::<u32>(), bytes(3000)).prop_map(|(id, bytes)| Message::DataChunk { id, bytes }),
            (
                any::<u32>(),
                any::<[u8; 16]>(),
                any::<u64>(),
                any::<i64>(),
                0u32..1_000_000_000
            )
                .prop_map(|(id, file_hash, size, sec, nsec)| {
                    Message::DataEnd {
                        id,
                        status: DataStatus::Ok {
                            file_hash,
                            size,
                            mtime: Timestamp { sec, nsec },
                        },
                    }
                }),
            (any::<u32>(), path.clone(), ".{0,40}").prop_map(|(id, path, message)| {
                Message::ScanProblem(ScanProblem {
                    path,
                    vanished: id % 2 == 0,
                    message,
                })
            }),
            (any::<u32>(), path).prop_map(|(id, path)| Message::Digest { id, path }),
            bytes(3000).prop_map(Message::Event),
            bytes(3000).prop_map(Message::Report),
            ".{0,100}".prop_map(Message::Error),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_messages_round_trip(m in arb_message()) {
            round_trip(&m);
        }

        #[test]
        fn arbitrary_payloads_never_panic(ty in prop_oneof![Just(0x02u8), Just(0x10), Just(0x12), Just(0x20), Just(0x24), Just(0x26), any::<u8>()],
                                          payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let by_ref = Message::decode(ty, &payload);
            prop_assert_eq!(&Message::decode_owned(ty, payload.clone()), &by_ref);
            if let Ok(m) = by_ref {
                let mut out = Vec::new();
                m.encode(&mut out);
                prop_assert_eq!(Message::decode(ty, &out)?, m);
            }
        }
    }
}
