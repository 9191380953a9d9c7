//! Frames: cutting a byte stream into `length | type | flags | payload` records
//! ([`FrameDecoder`]) and writing them ([`FrameEncoder`], [`encode_frame`]), with optional zstd
//! compression of each payload on its own. Knows nothing of what payloads mean, except that a
//! session's first frame must be a Hello.

use zstd::zstd_safe::{self, CCtx, DCtx};

use super::error::{quote, ProtocolError};
use super::message::{Message, MessageType};
use super::{FLAG_ZSTD, FRAME_HEADER_LEN, MAX_FRAME, MAX_HELLO, MAX_PAYLOAD};

/// Payloads shorter than this are sent as they are: zstd's frame overhead would eat the gain.
const MIN_COMPRESS: usize = 64;
/// Data frames at least this large feed the incompressible-data backoff.
const BACKOFF_MIN: usize = 16 << 10;
/// Large data frames sent uncompressed after one that did not shrink by 3 %.
const BACKOFF_FRAMES: u32 = 8;
/// Data frames at least four times this large are first tried on a sample of this size
/// from their middle: if the sample does not shrink by 3 %, the frame goes as it is (and
/// starts a backoff) for a thirtieth of the cost of compressing it whole.
const SAMPLE: usize = 32 << 10;

/// Length field of the smallest and the largest Hello frame.
const HELLO_FRAME_LEN: std::ops::RangeInclusive<usize> = (2 + 16)..=(2 + MAX_HELLO);

/// Bytes of a non-Hello opening shown in [`ProtocolError::NotAPeer`].
const PREVIEW_LEN: usize = 64;

/// One frame, payload decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message type byte (not checked here: [`Message::decode`] does).
    pub msg_type: u8,
    /// The payload came compressed.
    pub compressed: bool,
    /// Bytes the frame took on the wire, header included.
    pub wire_len: usize,
    /// The payload, decompressed.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Decodes the payload as a message.
    pub fn message(&self) -> Result<Message, ProtocolError> {
        Message::decode(self.msg_type, &self.payload)
    }

    /// Decodes the payload as a message, handing its buffer on to chunks (no copy).
    pub fn into_message(self) -> Result<Message, ProtocolError> {
        Message::decode_owned(self.msg_type, self.payload)
    }
}

/// A complete frame's header, and where its body lies in the decoder's buffer.
struct Head {
    msg_type: u8,
    compressed: bool,
    wire_len: usize,
    body: std::ops::Range<usize>,
}

/// Cuts a byte stream into frames: [`push`](Self::push) what was read, then call
/// [`next`](Self::next) until it returns `Ok(None)`; at end of stream, [`finish`](Self::finish)
/// says whether the peer stopped in the middle of a frame.
///
/// # Security
///
/// A frame's length is checked against [`MAX_FRAME`] as soon as its four bytes arrive, before
/// any of its payload is buffered, and no buffer is ever sized from it. Memory is what the
/// caller pushed since it last drained the decoder, plus at most one partial frame, plus one
/// payload of at most [`MAX_PAYLOAD`] (decompressed into a buffer of at most that size; the
/// size a zstd header declares is only a hint below the limit). After an error the decoder
/// drops its buffer, ignores further input and returns the same error again.
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Where the first unread frame starts in `buf`.
    start: usize,
    expect_hello: bool,
    frames: u64,
    failed: Option<ProtocolError>,
    dctx: Option<DCtx<'static>>,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("buffered", &self.buffered())
            .field("expect_hello", &self.expect_hello)
            .field("frames", &self.frames)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder of frames of any type.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            expect_hello: false,
            frames: 0,
            failed: None,
            dctx: None,
        }
    }

    /// A decoder for a session: the first frame must be an uncompressed Hello, and anything
    /// else (a login banner, another program) fails with [`ProtocolError::NotAPeer`] as soon
    /// as its first bytes show it; an empty stream fails [`finish`](Self::finish) with
    /// [`ProtocolError::ClosedBeforeHello`].
    pub fn expecting_hello() -> Self {
        Self {
            expect_hello: true,
            ..Self::new()
        }
    }

    /// Adds bytes read from the peer. Never fails: a problem found here (an oversized length,
    /// a first frame that is no Hello) is returned by the next [`next`](Self::next).
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.failed.is_some() || bytes.is_empty() {
            return;
        }
        self.compact();
        let pending = self.buf.len() - self.start;
        if pending < FRAME_HEADER_LEN {
            // Complete the header of the frame in progress and check it before taking any of
            // its payload.
            let n = (FRAME_HEADER_LEN - pending).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if let Err(e) = self.check_header(&self.buf[self.start..], bytes) {
                self.fail(e);
                return;
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    #[allow(clippy::should_implement_trait)] // fallible, and `None` means "not yet", not "done"
    pub fn next(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let Some(head) = self.next_head()? else {
            return Ok(None);
        };
        let body = &self.buf[head.body.clone()];
        let payload = if head.compressed {
            match decompress(&mut self.dctx, body) {
                Ok(p) => p,
                Err(e) => return Err(self.fail(e)),
            }
        } else {
            body.to_vec()
        };
        self.take(&head);
        Ok(Some(Frame {
            msg_type: head.msg_type,
            compressed: head.compressed,
            wire_len: head.wire_len,
            payload,
        }))
    }

    /// The header of the next complete frame, and where its body lies in `buf`; the frame is
    /// still unread (see [`Self::take`]).
    fn next_head(&mut self) -> Result<Option<Head>, ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let pending = &self.buf[self.start..];
        if let Err(e) = self.check_header(pending, &[]) {
            return Err(self.fail(e));
        }
        if pending.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]) as usize;
        let wire_len = 4 + len;
        if pending.len() < wire_len {
            return Ok(None);
        }
        Ok(Some(Head {
            msg_type: pending[4],
            compressed: pending[5] & FLAG_ZSTD != 0,
            wire_len,
            body: self.start + FRAME_HEADER_LEN..self.start + wire_len,
        }))
    }

    /// Marks the frame `head` read.
    fn take(&mut self, head: &Head) {
        self.start += head.wire_len;
        self.frames += 1;
    }

    /// Whether a whole frame is buffered (or the decoder failed): [`Self::next`] would return
    /// without more input.
    pub fn has_frame(&self) -> bool {
        let pending = &self.buf[self.start..];
        if self.failed.is_some() {
            return true;
        }
        if pending.len() < FRAME_HEADER_LEN {
            return false;
        }
        let len = u32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]) as usize;
        pending.len() >= 4 + len
    }

    /// The next complete frame decoded as a message. An uncompressed frame is decoded where
    /// it lies, so a data chunk's bytes are copied once, into the message.
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        let Some(head) = self.next_head()? else {
            return Ok(None);
        };
        let decoded = if head.compressed {
            match decompress(&mut self.dctx, &self.buf[head.body.clone()]) {
                Ok(p) => Message::decode_owned(head.msg_type, p),
                Err(e) => Err(e),
            }
        } else {
            Message::decode(head.msg_type, &self.buf[head.body.clone()])
        };
        self.take(&head);
        match decoded {
            Ok(m) => Ok(Some(m)),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// At end of stream: an error if a partial frame is left (or the decoder failed, or a
    /// session's peer closed before its Hello). Complete frames not yet taken are fine.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut rest = &self.buf[self.start..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(ProtocolError::Truncated {
                    have: rest.len(),
                    need: FRAME_HEADER_LEN,
                });
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let need = (4 + len).max(FRAME_HEADER_LEN);
            if rest.len() < need {
                return Err(ProtocolError::Truncated {
                    have: rest.len(),
                    need,
                });
            }
            rest = &rest[need..];
        }
        if self.expect_hello && self.frames == 0 && self.buffered() == 0 {
            return Err(ProtocolError::ClosedBeforeHello);
        }
        Ok(())
    }

    /// Bytes received and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Frames returned so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The error the decoder stopped on, if any.
    pub fn error(&self) -> Option<&ProtocolError> {
        self.failed.as_ref()
    }

    fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.start = 0;
        e
    }

    /// Drops consumed bytes once they are at least half of the buffer, so each byte moves at
    /// most about once.
    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Checks as much of a frame header as `head` holds; `more` are bytes after it (for the
    /// preview of what a non-peer sent).
    fn check_header(&self, head: &[u8], more: &[u8]) -> Result<(), ProtocolError> {
        let first = self.expect_hello && self.frames == 0;
        let not_a_peer = || {
            let mut preview: Vec<u8> = head.iter().take(PREVIEW_LEN).copied().collect();
            preview.extend(more.iter().take(PREVIEW_LEN - preview.len()));
            ProtocolError::NotAPeer {
                preview: quote(&preview),
            }
        };
        if let [a, b, c, d, ..] = *head {
            let len = u32::from_be_bytes([a, b, c, d]);
            if first && !HELLO_FRAME_LEN.contains(&(len as usize)) {
                return Err(not_a_peer());
            }
            if len as usize > MAX_FRAME {
                return Err(ProtocolError::FrameTooLarge {
                    len: u64::from(len),
                    limit: MAX_FRAME,
                });
            }
            if len < 2 {
                return Err(ProtocolError::FrameTooShort { len });
            }
        }
        if let Some(&msg_type) = head.get(4) {
            if first && msg_type != MessageType::Hello.as_u8() {
                return Err(not_a_peer());
            }
            if let Some(&flags) = head.get(5) {
                if first && flags != 0 {
                    return Err(not_a_peer());
                }
                if flags & !FLAG_ZSTD != 0 {
                    return Err(ProtocolError::UnknownFlags { msg_type, flags });
                }
            }
        }
        Ok(())
    }
}

/// Decompresses one zstd frame into at most [`MAX_PAYLOAD`] bytes.
fn decompress(dctx: &mut Option<DCtx<'static>>, data: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let bad = |reason: String| ProtocolError::BadCompression { reason };
    match zstd_safe::find_frame_compressed_size(data) {
        Ok(n) if n == data.len() => {}
        Ok(n) => {
            return Err(bad(format!(
                "{} bytes follow the zstd frame",
                data.len() - n
            )))
        }
        Err(code) => return Err(bad(zstd_safe::get_error_name(code).to_lowercase())),
    }
    // The declared size only sizes the buffer, never beyond the limit; zstd itself refuses
    // content that does not match it.
    let capacity = match zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) if n > MAX_PAYLOAD as u64 => {
            return Err(ProtocolError::DecompressedTooLarge { limit: MAX_PAYLOAD })
        }
        Ok(Some(n)) => n as usize,
        _ => MAX_PAYLOAD,
    };
    let d = match dctx {
        Some(d) => d,
        None => dctx
            .insert(DCtx::try_create().ok_or_else(|| bad("cannot create a zstd context".into()))?),
    };
    let mut out = Vec::with_capacity(capacity);
    match d.decompress(&mut out, data) {
        Ok(_) => Ok(out),
        Err(code) => {
            let name = zstd_safe::get_error_name(code);
            if capacity == MAX_PAYLOAD && name == "Destination buffer is too small" {
                Err(ProtocolError::DecompressedTooLarge { limit: MAX_PAYLOAD })
            } else {
                Err(bad(name.to_lowercase()))
            }
        }
    }
}

/// Writes frames, compressing payloads with zstd when asked and when it makes them smaller.
/// Keeps its compression context and scratch buffer between frames.
pub struct FrameEncoder {
    level: Option<i32>,
    cctx: Option<CCtx<'static>>,
    scratch: Vec<u8>,
    /// Large data frames still to send as they are, after one that zstd could not shrink
    /// (already compressed archives, media): trying costs CPU and saves nothing.
    skip_data: u32,
}

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncoder")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl FrameEncoder {
    /// An encoder; `compress` is a zstd level (`Some(3)` is zstd's default, negative levels are
    /// faster), `None` sends every payload as it is. Compress only if the peer announced
    /// [`CAP_ZSTD`](super::CAP_ZSTD).
    pub fn new(compress: Option<i32>) -> Self {
        Self {
            level: compress,
            cctx: None,
            scratch: Vec::new(),
            skip_data: 0,
        }
    }

    /// The compression level in use.
    pub fn level(&self) -> Option<i32> {
        self.level
    }

    /// Changes the compression level (after the Hellos, say).
    pub fn set_level(&mut self, compress: Option<i32>) {
        self.level = compress;
    }

    /// Appends `msg` as one frame to `out`. Fails (leaving `out` as it was) only if the
    /// payload does not fit a frame.
    pub fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        msg.encode(out);
        self.seal(start, msg.message_type().as_u8(), out)
    }

    /// Whether a data chunk of `len` bytes would go uncompressed because this encoder is
    /// backing off data zstd could not shrink; a caller that then sends it raw without the
    /// encoder calls [`Self::skip_data_frame`].
    pub fn skips_data(&self, len: usize) -> bool {
        len >= BACKOFF_MIN && self.skip_data > 0
    }

    /// Counts one data chunk sent raw during a back-off (see [`Self::skips_data`]).
    pub fn skip_data_frame(&mut self) {
        self.skip_data = self.skip_data.saturating_sub(1);
    }

    /// Appends the frame of a [`super::Message::DataChunk`] of `bytes` to `out`, as
    /// [`Self::encode`] would, without the message owning a copy of them.
    pub fn encode_data_chunk(
        &mut self,
        id: u32,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        super::wire::put_varint(out, u64::from(id));
        out.extend_from_slice(bytes);
        self.seal(start, MessageType::DataChunk.as_u8(), out)
    }

    /// Appends a frame of type `msg_type` carrying `payload` (already encoded) to `out`.
    pub fn encode_payload(
        &mut self,
        msg_type: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(too_large(payload.len()));
        }
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        out.extend_from_slice(payload);
        self.seal(start, msg_type, out)
    }

    /// Compresses the payload at `out[start + 6..]` if that helps, then writes the header.
    fn seal(&mut self, start: usize, msg_type: u8, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let body = start + FRAME_HEADER_LEN;
        let len = out.len() - body;
        if len > MAX_PAYLOAD {
            out.truncate(start);
            return Err(too_large(len));
        }
        let mut flags = 0;
        let large_data = msg_type == MessageType::DataChunk.as_u8() && len >= BACKOFF_MIN;
        let skip = large_data && self.skip_data > 0;
        if skip {
            self.skip_data -= 1;
        }
        if let Some(level) = self.level.filter(|_| !skip) {
            if len >= MIN_COMPRESS && msg_type != MessageType::Hello.as_u8() {
                let sample_fails = large_data && len >= 4 * SAMPLE && {
                    let mid = body + len / 2 - SAMPLE / 2;
                    let sample = out[mid..mid + SAMPLE].to_vec();
                    self.compress(level, &sample)
                        .is_none_or(|n| n > SAMPLE / 100 * 97)
                };
                let packed = if sample_fails {
                    None
                } else {
                    self.compress(level, &out[body..])
                };
                if large_data && packed.is_none_or(|n| n > len / 100 * 97) {
                    self.skip_data = BACKOFF_FRAMES;
                }
                if let Some(n) = packed {
                    out.truncate(body);
                    out.extend_from_slice(&self.scratch[..n]);
                    flags |= FLAG_ZSTD;
                }
            }
        }
        let frame_len = (out.len() - body + 2) as u32;
        out[start..start + 4].copy_from_slice(&frame_len.to_be_bytes());
        out[start + 4] = msg_type;
        out[start + 5] = flags;
        Ok(())
    }

    /// Compresses into the scratch buffer; `Some(size)` only if smaller than the input. A
    /// failure of zstd only means this payload goes uncompressed.
    fn compress(&mut self, level: i32, payload: &[u8]) -> Option<usize> {
        if self.cctx.is_none() {
            self.cctx = CCtx::try_create();
        }
        let cctx = self.cctx.as_mut()?;
        // Room for one byte less than the input: zstd stops early when it cannot do better.
        let room = payload.len() - 1;
        if self.scratch.len() < room {
            self.scratch.resize(room, 0);
        }
        cctx.compress(&mut self.scratch[..room], payload, level)
            .ok()
    }
}

fn too_large(payload: usize) -> ProtocolError {
    ProtocolError::FrameTooLarge {
        len: payload as u64 + 2,
        limit: MAX_FRAME,
    }
}

/// One frame of type `msg_type` carrying `payload`, compressed at level `compress` when that
/// makes it smaller. For a stream of frames, keep a [`FrameEncoder`] (it reuses its context).
pub fn encode_frame(
    msg_type: u8,
    payload: &[u8],
    compress: Option<i32>,
) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    FrameEncoder::new(compress).encode_payload(msg_type, payload, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::message::tests::samples;
    use super::super::Hello;
    use super::*;
    use proptest::prelude::*;
    use std::io::Read as _;

    fn frame(msg_type: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
        v.extend([msg_type, flags]);
        v.extend_from_slice(payload);
        v
    }

    fn drain(d: &mut FrameDecoder) -> Result<Vec<Frame>, ProtocolError> {
        let mut v = Vec::new();
        while let Some(f) = d.next()? {
            v.push(f);
        }
        Ok(v)
    }

    fn stream(level: Option<i32>) -> (Vec<u8>, Vec<Message>) {
        let msgs = samples();
        let mut enc = FrameEncoder::new(level);
        let mut out = Vec::new();
        for m in &msgs {
            enc.encode(m, &mut out).unwrap();
        }
        (out, msgs)
    }

    #[test]
    fn every_message_survives_the_stream_with_and_without_compression() {
        let (plain, msgs) = stream(None);
        let (packed, _) = stream(Some(3));
        assert!(
            packed.len() < plain.len() / 2,
            "{} vs {}",
            packed.len(),
            plain.len()
        );
        for bytes in [plain, packed] {
            let mut d = FrameDecoder::expecting_hello();
            d.push(&bytes);
            let frames = drain(&mut d).unwrap();
            let got: Vec<Message> = frames.iter().map(|f| f.message().unwrap()).collect();
            assert_eq!(got, msgs);
            assert_eq!(
                frames.iter().map(|f| f.wire_len).sum::<usize>(),
                bytes.len()
            );
            assert_eq!(d.frames(), msgs.len() as u64);
            d.finish().unwrap();
        }
    }

    #[test]
    fn has_frame_says_whether_next_can_answer_without_more_input() {
        let (bytes, msgs) = stream(Some(3));
        let mut d = FrameDecoder::expecting_hello();
        assert!(!d.has_frame());
        let mut got = 0;
        // Byte by byte: `has_frame` turns true exactly when a frame is complete.
        for b in &bytes {
            d.push(std::slice::from_ref(b));
            while d.has_frame() {
                assert!(d.next().unwrap().is_some());
                got += 1;
            }
            assert!(d.next().unwrap().is_none());
        }
        assert_eq!(got, msgs.len());
        // A failed decoder answers at once, with its error.
        let mut d = FrameDecoder::new();
        d.push(&[0xff; 16]);
        assert!(d.has_frame());
        assert!(d.next().is_err());
    }

    /// `n` bytes zstd cannot shrink (xorshift from `seed`).
    fn noise(mut x: u64, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_data_backs_off_then_retries() {
        let mut enc = FrameEncoder::new(Some(3));
        let noise = noise(0x2545_f491_4f6c_dd1d, 32 << 10);
        let text = b"Received: from mx by mail; subject: report\r\n".repeat(800);
        let flag = |enc: &mut FrameEncoder, p: &[u8]| {
            let mut out = Vec::new();
            enc.encode_payload(0x23, p, &mut out).unwrap();
            out[5]
        };
        assert_eq!(flag(&mut enc, &text), FLAG_ZSTD);
        assert_eq!(flag(&mut enc, &noise), 0);
        // After a large frame that did not shrink, the next few go as they are...
        for _ in 0..BACKOFF_FRAMES {
            assert_eq!(flag(&mut enc, &text), 0);
        }
        // ...small frames and other messages are still compressed...
        let mut out = Vec::new();
        enc.encode_payload(0x31, &text, &mut out).unwrap();
        assert_eq!(out[5], FLAG_ZSTD);
        // ...then compression is tried again.
        assert_eq!(flag(&mut enc, &text), FLAG_ZSTD);
    }

    #[test]
    fn large_frames_are_judged_by_a_sample_first() {
        let flag = |enc: &mut FrameEncoder, p: &[u8]| {
            let mut out = Vec::new();
            enc.encode_payload(0x23, p, &mut out).unwrap();
            let mut d = FrameDecoder::new();
            d.push(&out);
            assert_eq!(
                d.next_message().unwrap(),
                Some(Message::DataChunk {
                    id: 0,
                    bytes: p[1..].to_vec()
                })
            );
            out[5]
        };
        let text = b"Received: from mx by mail; subject: report\r\n".repeat(6000);
        let mut enc = FrameEncoder::new(Some(3));
        // Text around a noisy middle: the sample says no, the frame goes as it is.
        let mut mixed = vec![0u8];
        mixed.extend_from_slice(&text[..100_000]);
        mixed.extend(noise(0x1234_5678_9abc_def1, 4 * SAMPLE));
        mixed.extend_from_slice(&text[..100_000]);
        assert_eq!(flag(&mut enc, &mixed), 0);
        // Text throughout: compressed (after the backoff the sample started).
        let mut plain = vec![0u8];
        plain.extend_from_slice(&text);
        for _ in 0..BACKOFF_FRAMES {
            assert_eq!(flag(&mut enc, &plain), 0);
        }
        assert_eq!(flag(&mut enc, &plain), FLAG_ZSTD);
    }

    #[test]
    fn compression_is_used_only_when_it_helps() {
        let mut enc = FrameEncoder::new(Some(1));
        let mut out = Vec::new();
        // Incompressible: sent as is.
        let noise = noise(0x9e37_79b9_7f4a_7c15, 10_000);
        enc.encode_payload(0x23, &noise, &mut out).unwrap();
        assert_eq!(out[5], 0);
        assert_eq!(out.len(), 6 + noise.len());
        // Tiny: sent as is.
        out.clear();
        enc.encode_payload(0x23, &[0; 20], &mut out).unwrap();
        assert_eq!((out[5], out.len()), (0, 26));
        // Hello: never, even when long.
        out.clear();
        enc.encode_payload(0x01, &[0; 200], &mut out).unwrap();
        assert_eq!(out[5], 0);
        // Repetitive: compressed, and decoded back.
        out.clear();
        enc.encode_payload(0x23, &[7; 100_000], &mut out).unwrap();
        assert_eq!(out[5], FLAG_ZSTD);
        assert!(out.len() < 200);
        let mut d = FrameDecoder::new();
        d.push(&out);
        let f = d.next().unwrap().unwrap();
        assert!(f.compressed);
        assert_eq!(f.payload, vec![7; 100_000]);
        // The free function agrees.
        assert_eq!(encode_frame(0x23, &[7; 100_000], Some(1)).unwrap(), out);
        assert_eq!(
            encode_frame(0x23, b"abc", None).unwrap(),
            frame(0x23, 0, b"abc")
        );
    }

    #[test]
    fn frames_split_at_every_byte_boundary() {
        for level in [None, Some(3)] {
            let (bytes, msgs) = stream(level);
            // Skip the two big samples' bytes for speed: cut points are what matter.
            let mut boundaries = vec![0];
            let small: Vec<u8> = {
                let mut d = FrameDecoder::new();
                d.push(&bytes);
                let frames = drain(&mut d).unwrap();
                let mut out = Vec::new();
                let mut enc = FrameEncoder::new(level);
                for f in frames.iter().filter(|f| f.payload.len() < 10_000) {
                    enc.encode(&f.message().unwrap(), &mut out).unwrap();
                    boundaries.push(out.len());
                }
                out
            };
            let want: Vec<Message> = msgs
                .into_iter()
                .filter(|m| {
                    let mut p = Vec::new();
                    m.encode(&mut p);
                    p.len() < 10_000
                })
                .collect();
            for cut in 0..=small.len() {
                let mut d = FrameDecoder::expecting_hello();
                d.push(&small[..cut]);
                let mut got = drain(&mut d).unwrap();
                let mid_frame = !boundaries.contains(&cut);
                assert_eq!(d.finish().is_err(), cut == 0 || mid_frame, "cut at {cut}");
                d.push(&small[cut..]);
                got.extend(drain(&mut d).unwrap());
                d.finish().unwrap();
                let got: Vec<Message> = got.iter().map(|f| f.message().unwrap()).collect();
                assert_eq!(got, want, "cut at {cut}");
            }
            // One byte at a time.
            let mut d = FrameDecoder::expecting_hello();
            let mut got = Vec::new();
            for b in &bytes {
                d.push(std::slice::from_ref(b));
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
            }
            d.finish().unwrap();
            assert_eq!(got.len(), samples().len());
        }
    }

    #[test]
    fn oversized_lengths_are_refused_before_buffering() {
        for len in [0xFFFF_FFFFu32, 0x8000_0000, 5_000_000, MAX_FRAME as u32 + 1] {
            let mut d = FrameDecoder::new();
            d.push(&len.to_be_bytes());
            assert_eq!(d.buffered(), 0, "dropped as soon as the length is known");
            d.push(&[0; 100_000]);
            assert_eq!(d.buffered(), 0, "and nothing after it is kept");
            let err = d.next().unwrap_err();
            assert_eq!(
                err,
                ProtocolError::FrameTooLarge {
                    len: u64::from(len),
                    limit: MAX_FRAME
                }
            );
            assert_eq!(d.next().unwrap_err(), err, "errors are final");
            assert_eq!(d.finish().unwrap_err(), err);
        }
        assert_eq!(
            ProtocolError::FrameTooLarge {
                len: 5_000_000,
                limit: MAX_FRAME
            }
            .to_string(),
            "frame of 5000000 bytes exceeds the limit of 1048640"
        );
        // The largest frame passes.
        let mut d = FrameDecoder::new();
        d.push(&frame(0x23, 0, &vec![0; MAX_PAYLOAD]));
        assert_eq!(d.next().unwrap().unwrap().payload.len(), MAX_PAYLOAD);
        // A length found later in the buffer is caught by `next`.
        let mut d = FrameDecoder::new();
        let mut bytes = frame(0x11, 0, &[]);
        bytes.extend(u32::MAX.to_be_bytes());
        d.push(&bytes);
        assert!(d.next().unwrap().is_some());
        assert!(matches!(d.next(), Err(ProtocolError::FrameTooLarge { .. })));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for len in [0u32, 1] {
            let mut d = FrameDecoder::new();
            d.push(&len.to_be_bytes());
            assert_eq!(d.next(), Err(ProtocolError::FrameTooShort { len }));
        }
        let mut d = FrameDecoder::new();
        d.push(&frame(0x11, 0x02, &[]));
        assert_eq!(
            d.next().unwrap_err().to_string(),
            "frame of type 0x11 has unknown flags 0x02"
        );
        // An unknown type is the message decoder's to refuse.
        let mut d = FrameDecoder::new();
        d.push(&frame(0x77, 0, &[]));
        let f = d.next().unwrap().unwrap();
        assert_eq!(
            f.message(),
            Err(ProtocolError::UnknownMessage { msg_type: 0x77 })
        );
        let mut d = FrameDecoder::new();
        d.push(&frame(0x77, 0, &[]));
        assert!(d.next_message().is_err());
        assert!(d.next().is_err(), "a bad message also ends the stream");
    }

    #[test]
    fn a_peer_that_stops_mid_frame_is_reported() {
        let full = frame(0x23, 0, &[1; 294]);
        let mut d = FrameDecoder::new();
        d.push(&full[..12]);
        assert_eq!(d.next(), Ok(None));
        let err = d.finish().unwrap_err();
        assert_eq!(
            err.to_string(),
            "peer closed the connection in the middle of a frame (12 of 300 bytes)"
        );
        let mut d = FrameDecoder::new();
        d.push(&full[..3]);
        assert_eq!(
            d.finish(),
            Err(ProtocolError::Truncated { have: 3, need: 6 })
        );
        let mut d = FrameDecoder::new();
        d.finish().unwrap();
        d.push(&full);
        d.finish().unwrap();
        // A session's peer that says nothing at all.
        assert_eq!(
            FrameDecoder::expecting_hello().finish(),
            Err(ProtocolError::ClosedBeforeHello)
        );
    }

    #[test]
    fn a_session_starts_with_a_hello() {
        let mut hello = Vec::new();
        FrameEncoder::new(Some(3))
            .encode(&Message::Hello(Hello::ours()), &mut hello)
            .unwrap();
        assert_eq!(hello.len(), 6 + 16);
        let mut d = FrameDecoder::expecting_hello();
        d.push(&hello);
        d.push(&frame(0x3f, 0, &[]));
        assert_eq!(
            d.next_message().unwrap(),
            Some(Message::Hello(Hello::ours()))
        );
        assert_eq!(d.next_message().unwrap(), Some(Message::Done));

        let mut d = FrameDecoder::expecting_hello();
        let banner = b"Welcome to Ubuntu 24.04 LTS\n\n * Documentation:  https://help.ubuntu.com\n";
        d.push(banner);
        let err = d.next().unwrap_err();
        assert_eq!(
            err,
            ProtocolError::NotAPeer {
                preview: quote(&banner[..PREVIEW_LEN])
            }
        );
        assert!(err.to_string().starts_with(
            "peer did not start with a deltasync hello but with \"Welcome to Ubuntu 24.04 LTS\\n\\n"
        ));
        // Plausible length, wrong type; right type, compressed; a Done first.
        for bytes in [
            frame(0x3f, 0, &[0; 16]),
            frame(0x01, 1, &[0; 16]),
            frame(0x3f, 0, &[]),
        ] {
            let mut d = FrameDecoder::expecting_hello();
            d.push(&bytes);
            assert!(
                matches!(d.next(), Err(ProtocolError::NotAPeer { .. })),
                "{bytes:?}"
            );
        }
        // A frame decoder without the expectation takes them.
        let mut d = FrameDecoder::new();
        d.push(&frame(0x3f, 0, &[]));
        assert!(d.next().unwrap().is_some());
    }

    #[test]
    fn corrupt_and_oversized_compressed_payloads_are_refused() {
        let good = zstd::bulk::compress(&[5; 1000], 3).unwrap();
        let follow = format!("compressed frame is corrupt: {} bytes follow", good.len());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not zstd".to_vec(), "compressed frame is corrupt"),
            (
                good[..good.len() - 1].to_vec(),
                "compressed frame is corrupt",
            ),
            ([good.clone(), good.clone()].concat(), &follow),
            (
                [good.clone(), vec![0]].concat(),
                "compressed frame is corrupt: 1 bytes follow",
            ),
            (Vec::new(), "compressed frame is corrupt"),
        ];
        for (payload, want) in cases {
            let mut d = FrameDecoder::new();
            d.push(&frame(0x23, FLAG_ZSTD, &payload));
            let err = d.next().unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}");
        }
        // A bomb: 64 MiB of zeros in about 2 KiB, with and without the size in its header.
        let bomb = zstd::bulk::compress(&vec![0; 64 << 20], 1).unwrap();
        assert!(bomb.len() < 8 << 10);
        let mut streamed = Vec::new();
        {
            let mut e = zstd::stream::Encoder::new(&mut streamed, 1).unwrap();
            e.include_contentsize(false).unwrap();
            std::io::copy(&mut std::io::repeat(0).take(64 << 20), &mut e).unwrap();
            e.finish().unwrap();
        }
        assert!(matches!(
            zstd_safe::get_frame_content_size(&streamed),
            Ok(None)
        ));
        for b in [bomb, streamed] {
            let mut d = FrameDecoder::new();
            d.push(&frame(0x23, FLAG_ZSTD, &b));
            assert_eq!(
                d.next(),
                Err(ProtocolError::DecompressedTooLarge { limit: MAX_PAYLOAD })
            );
        }
        // Just over the limit, size not declared.
        let mut over = Vec::new();
        {
            let mut e = zstd::stream::Encoder::new(&mut over, 1).unwrap();
            e.include_contentsize(false).unwrap();
            std::io::Write::write_all(&mut e, &vec![1; MAX_PAYLOAD + 1]).unwrap();
            e.finish().unwrap();
        }
        let mut d = FrameDecoder::new();
        d.push(&frame(0x23, FLAG_ZSTD, &over));
        assert_eq!(
            d.next(),
            Err(ProtocolError::DecompressedTooLarge { limit: MAX_PAYLOAD })
        );
    }

    #[test]
    fn messages_too_big_for_a_frame_are_refused_on_the_way_out() {
        let mut enc = FrameEncoder::new(Some(3));
        let mut out = vec![1, 2, 3];
        let big = Message::DataChunk {
            id: 1,
            bytes: vec![0; MAX_PAYLOAD],
        };
        let err = enc.encode(&big, &mut out).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::FrameTooLarge {
                len: MAX_PAYLOAD as u64 + 3,
                limit: MAX_FRAME
            }
        );
        assert_eq!(out, [1, 2, 3], "nothing half-written");
        assert!(enc
            .encode_payload(0x23, &vec![0; MAX_PAYLOAD + 1], &mut out)
            .is_err());
        assert!(encode_frame(0x23, &vec![0; MAX_PAYLOAD + 1], None).is_err());
    }

    #[test]
    fn messages_decoded_in_place_equal_messages_decoded_from_owned_frames() {
        for level in [None, Some(3)] {
            let mut enc = FrameEncoder::new(level);
            let mut bytes = Vec::new();
            let msgs: Vec<_> = samples()
                .into_iter()
                .filter(|m| !matches!(m, super::super::Message::Hello(_)))
                .collect();
            for m in &msgs {
                enc.encode(m, &mut bytes).unwrap();
            }
            let (mut a, mut b) = (FrameDecoder::new(), FrameDecoder::new());
            a.expect_hello = false;
            b.expect_hello = false;
            a.push(&bytes);
            b.push(&bytes);
            for m in &msgs {
                let in_place = a.next_message().unwrap().unwrap();
                let owned = b.next().unwrap().unwrap().into_message().unwrap();
                assert_eq!(&in_place, m);
                assert_eq!(owned, in_place);
            }
            assert!(a.next_message().unwrap().is_none());
        }
    }

    proptest! {
        #[test]
        fn a_borrowed_data_chunk_encodes_as_the_message_does(
            id in any::<u32>(),
            bytes in proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..70_000),
            level in prop_oneof![Just(None), (-3i32..6).prop_map(Some)],
        ) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            FrameEncoder::new(level).encode_data_chunk(id, &bytes, &mut a).unwrap();
            FrameEncoder::new(level)
                .encode(&super::super::Message::DataChunk { id, bytes }, &mut b)
                .unwrap();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn arbitrary_payloads_round_trip_through_frames(
            payloads in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..3000), 1..6),
            level in prop_oneof![Just(None), (-3i32..6).prop_map(Some)],
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
        ) {
            let mut enc = FrameEncoder::new(level);
            let mut bytes = Vec::new();
            for (i, p) in payloads.iter().enumerate() {
                enc.encode_payload(i as u8, p, &mut bytes).unwrap();
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts {
                d.push(&bytes[at..c]);
                at = c;
                got.extend(drain(&mut d).unwrap());
            }
            d.finish().unwrap();
            prop_assert_eq!(got.len(), payloads.len());
            for (i, (f, p)) in got.iter().zip(&payloads).enumerate() {
                prop_assert_eq!(f.msg_type, i as u8);
                prop_assert_eq!(&f.payload, p);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), hello: bool) {
            let mut d = if hello { FrameDecoder::expecting_hello() } else { FrameDecoder::new() };
            d.push(&bytes);
            while let Ok(Some(f)) = d.next() {
                prop_assert!(f.payload.len() <= MAX_PAYLOAD);
                let _ = f.message();
            }
            let _ = d.finish();
        }
    }
}
