//! Typed errors of the engine: one enum per operation, each variant carrying the numbers
//! involved. Messages are lower-case without a trailing period; `tests::messages` pins them.

use std::io;

/// Why a signature could not be built, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The first four bytes are no signature magic we know.
    #[error("bad signature magic {found:#010x}")]
    BadMagic {
        /// The bytes found, big-endian.
        found: u32,
    },
    /// The input ended inside the header or a block entry.
    #[error("signature truncated in {context}")]
    Truncated {
        /// Which part was cut off.
        context: &'static str,
    },
    /// The block length is zero or above the limit.
    #[error("signature block length {len} outside 1..={max}")]
    BadBlockLen {
        /// Declared block length.
        len: u64,
        /// Largest accepted.
        max: u64,
    },
    /// The strong hash length is zero or longer than the hash.
    #[error("signature strong hash length {len} outside 1..={max}")]
    BadStrongLen {
        /// Declared length.
        len: u64,
        /// Largest accepted for this hash.
        max: u64,
    },
    /// More blocks than the limit allows.
    #[error("signature has more than {max} blocks")]
    TooManyBlocks {
        /// The limit.
        max: u64,
    },
    /// A native header field is inconsistent (version, hash kinds, block count).
    #[error("bad native signature header: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("signature i/o: {0}")]
    Io(#[from] io::Error),
}

/// Why a delta could not be computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// The new file became shorter while it was being read.
    #[error("source shrank while reading: expected {expected} bytes, got {got}")]
    SourceTruncated {
        /// Length when we started.
        expected: u64,
        /// Bytes actually readable.
        got: u64,
    },
    /// Options are inconsistent with the signature.
    #[error("bad delta options: {reason}")]
    BadOptions {
        /// What is wrong.
        reason: String,
    },
    /// Reading the new file or writing the delta failed.
    #[error("delta i/o: {0}")]
    Io(#[from] io::Error),
}

/// Why a delta could not be applied. Nothing past the last verified byte should be trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The first four bytes are no delta magic we know.
    #[error("bad delta magic {found:#010x}")]
    BadMagic {
        /// The bytes found, big-endian.
        found: u32,
    },
    /// The delta ended before its end command.
    #[error("delta truncated at byte {offset} in {context}")]
    Truncated {
        /// Bytes of delta consumed.
        offset: u64,
        /// Which part was cut off.
        context: &'static str,
    },
    /// A reserved or unknown command byte.
    #[error("unknown delta command {opcode:#04x} at byte {offset}")]
    UnknownCommand {
        /// The command byte.
        opcode: u8,
        /// Where in the delta.
        offset: u64,
    },
    /// A copy command reaches outside the basis.
    #[error("copy of {len} bytes at {start} is outside the basis of {basis_len} bytes")]
    CopyOutOfBounds {
        /// Basis offset.
        start: u64,
        /// Length.
        len: u64,
        /// Basis length.
        basis_len: u64,
    },
    /// The output would exceed the limit (or the length the header declared).
    #[error("delta output exceeds the limit of {limit} bytes")]
    OutputTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The native header declared a length the commands did not produce.
    #[error("delta produced {got} bytes, header declared {declared}")]
    LengthMismatch {
        /// Declared length.
        declared: u64,
        /// Produced length.
        got: u64,
    },
    /// The reconstructed file does not have the sender's whole-file hash.
    #[error("whole-file hash mismatch after patching")]
    HashMismatch,
    /// A native header field is unsupported.
    #[error("bad native delta header: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: String,
    },
    /// Bytes follow the end command.
    #[error("{extra} unexpected bytes after the end of the delta")]
    TrailingData {
        /// How many were seen (at least one).
        extra: u64,
    },
    /// Reading the basis or delta, or writing the output, failed.
    #[error("patch i/o: {0}")]
    Io(#[from] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            SignatureError::BadMagic { found: 0x1234 }.to_string(),
            "bad signature magic 0x00001234"
        );
        assert_eq!(
            SignatureError::Truncated { context: "header" }.to_string(),
            "signature truncated in header"
        );
        assert_eq!(
            SignatureError::BadBlockLen { len: 0, max: 10 }.to_string(),
            "signature block length 0 outside 1..=10"
        );
        assert_eq!(
            ApplyError::CopyOutOfBounds {
                start: 10,
                len: 5,
                basis_len: 12
            }
            .to_string(),
            "copy of 5 bytes at 10 is outside the basis of 12 bytes"
        );
        assert_eq!(
            ApplyError::UnknownCommand {
                opcode: 0x55,
                offset: 4
            }
            .to_string(),
            "unknown delta command 0x55 at byte 4"
        );
        assert_eq!(
            ApplyError::HashMismatch.to_string(),
            "whole-file hash mismatch after patching"
        );
        assert_eq!(
            DeltaError::SourceTruncated {
                expected: 10,
                got: 4
            }
            .to_string(),
            "source shrank while reading: expected 10 bytes, got 4"
        );
    }
}
