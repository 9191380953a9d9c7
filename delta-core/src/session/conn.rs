//! The framed connection: a writer shared by every thread (one whole frame per lock), an
//! input reader that yields messages, and the handshake.

use std::io::{Read, Write};
use std::sync::Mutex;

use crate::protocol::{negotiate, FrameDecoder, FrameEncoder, Hello, Job, Message, ProtocolError};
use crate::transport::Duplex;

use super::SessionError;

/// zstd level for literal data and listings.
const LEVEL: i32 = 3;

/// The sending half of a session, shared by every thread.
pub struct Conn {
    out: Mutex<(FrameEncoder, Box<dyn Write + Send>, Vec<u8>)>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl Conn {
    fn new(out: Box<dyn Write + Send>, compress: bool) -> Self {
        Self {
            out: Mutex::new((
                FrameEncoder::new(compress.then_some(LEVEL)),
                out,
                Vec::new(),
            )),
        }
    }

    /// Changes the zstd level of later frames (`None`: uncompressed).
    pub fn set_level(&self, level: Option<i32>) {
        self.out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .set_level(level);
    }

    /// Sends one message as one frame.
    pub fn send(&self, msg: &Message) -> Result<(), SessionError> {
        let mut g = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let (enc, out, buf) = &mut *g;
        buf.clear();
        enc.encode(msg, buf)?;
        out.write_all(buf)?;
        out.flush()?;
        Ok(())
    }
}

/// The receiving half: frames in, messages out.
pub struct Input {
    reader: Box<dyn Read + Send>,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").finish_non_exhaustive()
    }
}

impl Input {
    fn new(reader: Box<dyn Read + Send>) -> Self {
        Self {
            reader,
            decoder: FrameDecoder::expecting_hello(),
            buf: vec![0; 256 << 10],
        }
    }

    /// The next message, or `None` at a clean end of input (between frames).
    pub fn next_message(&mut self) -> Result<Option<Message>, SessionError> {
        loop {
            if let Some(frame) = self.decoder.next()? {
                return Ok(Some(frame.into_message()?));
            }
            let n = loop {
                match self.reader.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            };
            if n == 0 {
                self.decoder.finish()?;
                return Ok(None);
            }
            self.decoder.push(&self.buf[..n]);
        }
    }

    /// The next message; the end of input is an error here.
    pub fn expect(&mut self, what: &'static str) -> Result<Message, SessionError> {
        match self.next_message()? {
            Some(Message::Error(e)) => Err(SessionError::Peer(e)),
            Some(m) => Ok(m),
            None => Err(SessionError::Closed(what)),
        }
    }
}

fn hello(input: &mut Input) -> Result<Hello, SessionError> {
    match input.expect("waiting for the peer's hello")? {
        Message::Hello(h) => Ok(h),
        other => Err(SessionError::Unexpected(other.message_type().name())),
    }
}

/// The client's side of the handshake: Hellos both ways, then the job.
pub fn connect(duplex: Duplex, job: &Job) -> Result<(Conn, Input), SessionError> {
    let level = compression(job);
    let mut ours = Hello::ours();
    if level.is_none() {
        ours.capabilities &= !crate::protocol::CAP_ZSTD;
    }
    let conn = Conn::new(duplex.writer, false);
    let mut input = Input::new(duplex.reader);
    conn.send(&Message::Hello(ours))?;
    let theirs = hello(&mut input).map_err(|e| match e {
        SessionError::Closed(_) | SessionError::Protocol(ProtocolError::ClosedBeforeHello) => SessionError::Unsupported(
            "the far side closed the connection before answering: is deltasync installed there? Install it, or give its path with --remote-bin".into(),
        ),
        SessionError::Protocol(ProtocolError::NotAPeer { .. }) => SessionError::Unsupported(format!(
            "the far side did not answer as deltasync ({e}); check --remote-bin, and that the login prints nothing"
        )),
        e => e,
    })?;
    let n = negotiate(&ours, &theirs)?;
    let conn = Conn::new(conn.into_writer(), false);
    conn.set_level(level.filter(|_| n.capabilities & crate::protocol::CAP_ZSTD != 0));
    conn.send(&Message::Job(job.clone()))?;
    Ok((conn, input))
}

/// The zstd level a job asks for: its `compress-level` option (`off`, or 1..=19), 3 if absent.
pub fn compression(job: &Job) -> Option<i32> {
    match job
        .options
        .iter()
        .find(|(k, _)| k == "compress-level")
        .map(|(_, v)| v.as_str())
    {
        None => Some(3),
        Some("off") => None,
        Some(v) => Some(v.parse::<i32>().unwrap_or(3).clamp(1, 19)),
    }
}

/// The server's side: answer the Hello, read the job.
pub(super) fn accept(duplex: Duplex) -> Result<(Conn, Input, Job), SessionError> {
    let conn = Conn::new(duplex.writer, false);
    let mut input = Input::new(duplex.reader);
    let theirs = hello(&mut input)?;
    conn.send(&Message::Hello(Hello::ours()))?;
    let n = negotiate(&Hello::ours(), &theirs)?;
    let conn = Conn::new(conn.into_writer(), false);
    match input.expect("waiting for the job")? {
        Message::Job(job) => {
            conn.set_level(
                compression(&job).filter(|_| n.capabilities & crate::protocol::CAP_ZSTD != 0),
            );
            Ok((conn, input, job))
        }
        other => Err(SessionError::Unexpected(other.message_type().name())),
    }
}

impl Conn {
    fn into_writer(self) -> Box<dyn Write + Send> {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner()).1
    }
}
