//! What can be wrong with the bytes a peer sent, or with a message we were about to send.
//! Every variant names the field and carries the numbers; paths are quoted lossily (invalid
//! UTF-8 as U+FFFD, control bytes escaped) and cut at 256 bytes.

use std::fmt;

/// A protocol violation: the session that meets one is over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame's length field is above [`MAX_FRAME`](super::MAX_FRAME) (or a message to send
    /// would not fit in a frame).
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The length field (type, flags and payload).
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// A frame's length field is below 2: no room for its type and flags.
    #[error("frame of {len} bytes is shorter than its 2-byte header")]
    FrameTooShort {
        /// The length field.
        len: u32,
    },
    /// Reserved flag bits are set.
    #[error("frame of type {msg_type:#04x} has unknown flags {flags:#04x}")]
    UnknownFlags {
        /// The frame's message type.
        msg_type: u8,
        /// All its flags.
        flags: u8,
    },
    /// A compressed payload does not decompress.
    #[error("compressed frame is corrupt: {reason}")]
    BadCompression {
        /// What zstd said, or what was wrong around it.
        reason: String,
    },
    /// A compressed payload decompresses to more than the limit.
    #[error("compressed frame expands beyond the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The stream ended inside a frame.
    #[error("peer closed the connection in the middle of a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        have: usize,
        /// Bytes the frame needs (at least the header when its length was not yet known).
        need: usize,
    },
    /// The stream ended before the peer's first frame.
    #[error("peer closed the connection before sending its hello")]
    ClosedBeforeHello,
    /// The first bytes are not a Hello frame.
    #[error(
        "peer did not start with a deltasync hello but with {preview} (does a login script \
         print to stdout, or is the far side something else than deltasync?)"
    )]
    NotAPeer {
        /// The first bytes received, quoted.
        preview: String,
    },
    /// A message type this version does not know.
    #[error("unknown message type {msg_type:#04x}")]
    UnknownMessage {
        /// The type byte.
        msg_type: u8,
    },
    /// A payload ended before a field.
    #[error("{message} message is truncated (reading its {field})")]
    ShortMessage {
        /// Message name.
        message: &'static str,
        /// Field being read.
        field: &'static str,
    },
    /// A payload goes on after its last field.
    #[error("{message} message has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// Message name.
        message: &'static str,
        /// How many.
        extra: usize,
    },
    /// A varint is longer than 10 bytes, overflows 64 bits or is not minimal.
    #[error("{message} message has a malformed varint in its {field}")]
    BadVarint {
        /// Message name.
        message: &'static str,
        /// Field being read.
        field: &'static str,
    },
    /// A count is above its limit.
    #[error("{message} message declares {count} {field}, over the limit of {limit}")]
    TooMany {
        /// Message name.
        message: &'static str,
        /// What is counted.
        field: &'static str,
        /// The declared count.
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// A length is above its limit.
    #[error("{field} of {len} bytes exceeds the limit of {limit}")]
    TooLong {
        /// What is measured.
        field: &'static str,
        /// The declared or actual length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A text field is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    NotUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A field holds a value outside its range (an unknown enum number, a bool other than 0
    /// or 1, nanoseconds of a second or more, a u32 field above `u32::MAX`).
    #[error("invalid {field} {value}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A path the peer sent is not a clean relative path.
    #[error("{field} {path} {problem}")]
    BadPath {
        /// Which path (`entry path`, `request path`, …).
        field: &'static str,
        /// The path, quoted.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A Hello without the magic bytes.
    #[error("hello has the magic {got} instead of \"DSYN\"")]
    BadMagic {
        /// The four bytes, quoted.
        got: String,
    },
    /// A Hello whose minimum version is above its version.
    #[error("hello has a min version of {min_version}, above its version {version}")]
    BadHello {
        /// Its version.
        version: u16,
        /// Its minimum version.
        min_version: u16,
    },
    /// No protocol version both sides speak.
    #[error("no common protocol version: we speak {our_min} to {ours}, the peer {their_min} to {theirs}")]
    Version {
        /// Our newest version.
        ours: u16,
        /// Our oldest version.
        our_min: u16,
        /// The peer's newest version.
        theirs: u16,
        /// The peer's oldest version.
        their_min: u16,
    },
    /// A listing is not in strictly increasing order.
    #[error("file list out of order: {next} after {prev}")]
    Order {
        /// The earlier path, quoted.
        prev: String,
        /// The path that should have come before it, quoted.
        next: String,
    },
    /// A listing holds a path twice.
    #[error("duplicate entry {path}")]
    Duplicate {
        /// The path, quoted.
        path: String,
    },
    /// A listed entry whose parent was not listed before it as a directory (or a listing
    /// that does not start with the root).
    #[error("entry {path} is not inside a directory listed before it")]
    Orphan {
        /// The path, quoted.
        path: String,
    },
}

/// What is wrong with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathProblem {
    /// Starts with `/`.
    Absolute,
    /// Ends with `/`.
    TrailingSlash,
    /// Has `//`.
    EmptyComponent,
    /// Has a `.` component.
    Dot,
    /// Has a `..` component.
    DotDot,
    /// Has a NUL byte.
    Nul,
    /// A component is longer than [`MAX_NAME`](super::MAX_NAME).
    LongComponent {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The path is longer than [`MAX_PATH`](super::MAX_PATH).
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absolute => f.write_str("is absolute"),
            Self::TrailingSlash => f.write_str("ends with \"/\""),
            Self::EmptyComponent => f.write_str("has an empty component"),
            Self::Dot => f.write_str("has a \".\" component"),
            Self::DotDot => f.write_str("has a \"..\" component"),
            Self::Nul => f.write_str("contains a NUL byte"),
            Self::LongComponent { len, limit } => {
                write!(
                    f,
                    "has a component of {len} bytes, over the limit of {limit}"
                )
            }
            Self::TooLong { len, limit } => {
                write!(f, "is {len} bytes long, over the limit of {limit}")
            }
        }
    }
}

/// Bytes quoted for a message: lossy UTF-8, escaped, at most 256 bytes of input.
pub(crate) fn quote(bytes: &[u8]) -> String {
    const CUT: usize = 256;
    if bytes.len() > CUT {
        format!("{:?}…", String::from_utf8_lossy(&bytes[..CUT]))
    } else {
        format!("{:?}", String::from_utf8_lossy(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages are part of the user interface: pin them.
    #[test]
    fn messages() {
        let cases: Vec<(ProtocolError, &str)> = vec![
            (
                ProtocolError::FrameTooLarge {
                    len: 5_000_000,
                    limit: 1_048_640,
                },
                "frame of 5000000 bytes exceeds the limit of 1048640",
            ),
            (
                ProtocolError::FrameTooShort { len: 1 },
                "frame of 1 bytes is shorter than its 2-byte header",
            ),
            (
                ProtocolError::UnknownFlags {
                    msg_type: 0x10,
                    flags: 0x81,
                },
                "frame of type 0x10 has unknown flags 0x81",
            ),
            (
                ProtocolError::DecompressedTooLarge { limit: 1_048_638 },
                "compressed frame expands beyond the limit of 1048638 bytes",
            ),
            (
                ProtocolError::Truncated {
                    have: 12,
                    need: 300,
                },
                "peer closed the connection in the middle of a frame (12 of 300 bytes)",
            ),
            (
                ProtocolError::ClosedBeforeHello,
                "peer closed the connection before sending its hello",
            ),
            (
                ProtocolError::NotAPeer {
                    preview: quote(b"Welcome\n"),
                },
                "peer did not start with a deltasync hello but with \"Welcome\\n\" (does a login \
                 script print to stdout, or is the far side something else than deltasync?)",
            ),
            (
                ProtocolError::UnknownMessage { msg_type: 0x7a },
                "unknown message type 0x7a",
            ),
            (
                ProtocolError::ShortMessage {
                    message: "request",
                    field: "path",
                },
                "request message is truncated (reading its path)",
            ),
            (
                ProtocolError::TrailingBytes {
                    message: "done",
                    extra: 3,
                },
                "done message has 3 unexpected trailing bytes",
            ),
            (
                ProtocolError::BadVarint {
                    message: "entries",
                    field: "size",
                },
                "entries message has a malformed varint in its size",
            ),
            (
                ProtocolError::TooMany {
                    message: "entries",
                    field: "entries",
                    count: 5000,
                    limit: 4096,
                },
                "entries message declares 5000 entries, over the limit of 4096",
            ),
            (
                ProtocolError::TooLong {
                    field: "entry path",
                    len: 5000,
                    limit: 4096,
                },
                "entry path of 5000 bytes exceeds the limit of 4096",
            ),
            (
                ProtocolError::NotUtf8 { field: "error" },
                "error is not valid UTF-8",
            ),
            (
                ProtocolError::BadValue {
                    field: "entry kind",
                    value: 7,
                },
                "invalid entry kind 7",
            ),
            (
                ProtocolError::BadPath {
                    field: "entry path",
                    path: quote(b"a/../b"),
                    problem: PathProblem::DotDot,
                },
                "entry path \"a/../b\" has a \"..\" component",
            ),
            (
                ProtocolError::BadPath {
                    field: "request path",
                    path: quote(b"/etc/passwd"),
                    problem: PathProblem::Absolute,
                },
                "request path \"/etc/passwd\" is absolute",
            ),
            (
                ProtocolError::BadPath {
                    field: "entry path",
                    path: quote(b"a\0b"),
                    problem: PathProblem::Nul,
                },
                "entry path \"a\\0b\" contains a NUL byte",
            ),
            (
                ProtocolError::BadPath {
                    field: "entry path",
                    path: quote(b"x"),
                    problem: PathProblem::LongComponent {
                        len: 300,
                        limit: 255,
                    },
                },
                "entry path \"x\" has a component of 300 bytes, over the limit of 255",
            ),
            (
                ProtocolError::BadMagic {
                    got: quote(b"RSYN"),
                },
                "hello has the magic \"RSYN\" instead of \"DSYN\"",
            ),
            (
                ProtocolError::BadHello {
                    version: 1,
                    min_version: 2,
                },
                "hello has a min version of 2, above its version 1",
            ),
            (
                ProtocolError::Order {
                    prev: quote(b"c"),
                    next: quote(b"b"),
                },
                "file list out of order: \"b\" after \"c\"",
            ),
            (
                ProtocolError::Duplicate { path: quote(b"a") },
                "duplicate entry \"a\"",
            ),
            (
                ProtocolError::Orphan {
                    path: quote(b"a/b"),
                },
                "entry \"a/b\" is not inside a directory listed before it",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn quoting_escapes_and_cuts() {
        assert_eq!(quote(b"a\xffb\n"), "\"a\u{fffd}b\\n\"");
        let long = quote(&[b'x'; 1000]);
        assert_eq!(long.len(), 256 + 2 + '…'.len_utf8());
        assert!(long.ends_with("\"…"));
    }
}
