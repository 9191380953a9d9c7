//! The framed connection: a writer shared by every thread (one whole frame per lock), an
//! input reader that yields messages, the handshake, and the idle timeout.
//!
//! # Idle timeout
//! When the job sets `timeout-ms` and both sides announced
//! [`CAP_KEEPALIVE`](crate::protocol::CAP_KEEPALIVE), each side sends a
//! [`Message::Keepalive`] whenever it has sent nothing for a quarter of the timeout (a side busy
//! hashing a huge file is not a stalled one), and gives up when nothing at all has arrived for
//! the whole timeout: a watchdog thread calls the duplex's abort hook, which tears the
//! connection down, so the blocked read returns (and threads blocked writing to a peer that
//! stopped reading too), and the read reports [`std::io::ErrorKind::TimedOut`]. Without an
//! abort hook the timeout cannot interrupt a blocked read. The client's timeout starts before the handshake (a far side that
//! never answers); the server's once it has read the job, which carries the timeout.
//!
//! # Adaptive compression
//! Listings, requests and events are compressed whenever the session compresses. File data
//! and signatures ([`Message::DataChunk`], [`Message::SigChunk`]) are, by default, compressed
//! only while the output is backed up: while more than [`BACKLOG`] bytes wait to be written,
//! the link is the limit and compression makes it carry more; while the link keeps up
//! (loopback, a fast LAN, a busy CPU), compressing would only slow the pass down. The rule
//! regulates itself, like zstd's own `--adapt`: compressing drains the backlog, and raw frames
//! let it grow again, so a slow link sees almost everything compressed. The job option
//! `compress-data=always` compresses every frame (rsync's `-z`).
//!
//! # Copies
//! After the handshake frames are queued for one writer thread ([`GroupWriter`]). A frame
//! that goes uncompressed is encoded straight into that queue; a file's data chunk is encoded
//! from the sender's read buffer ([`Conn::send_data`]), so its bytes are copied once in user
//! space on the way out. On the way in, an uncompressed frame is decoded where it lies in the
//! decoder's buffer, into the message that owns its bytes.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::protocol::{
    negotiate, FrameDecoder, FrameEncoder, Hello, Job, Message, ProtocolError, CAP_KEEPALIVE,
};
use crate::transport::{Abort, Duplex};

use super::SessionError;

/// zstd level for literal data and listings.
const LEVEL: i32 = 3;

/// The sending half of a session, shared by every thread.
pub struct Conn {
    out: Mutex<Box<dyn Write + Send>>,
    /// Idle encoders (each with its zstd context and buffer): a sender takes one for the time
    /// it encodes, so compression runs in parallel and outside the write lock.
    encoders: Mutex<Vec<(FrameEncoder, Vec<u8>)>>,
    /// The zstd level for frames from now on.
    level: Mutex<Option<i32>>,
    /// When the last frame went out.
    last_send: Mutex<Instant>,
    /// The capabilities both sides announced.
    caps: std::sync::atomic::AtomicU64,
    /// Bytes queued and not yet written (after the handshake; see the module doc).
    backlog: Option<Arc<std::sync::atomic::AtomicUsize>>,
    /// Compress data frames even when the output keeps up.
    data_always: std::sync::atomic::AtomicBool,
    /// The queue of the [`GroupWriter`] behind `out` (after the handshake): uncompressed
    /// frames are encoded straight into it, not into a buffer first.
    group: Option<Arc<GroupShared>>,
}

/// Whether `msgs` carry file data or signatures (compressed only while the link is backed up).
fn carries_data(msgs: &[Message]) -> bool {
    msgs.iter()
        .any(|m| matches!(m, Message::DataChunk { .. } | Message::SigChunk { .. }))
}

/// Bytes waiting to be written above which data frames are compressed (adaptive mode).
pub(crate) const BACKLOG: usize = 512 << 10;

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl Conn {
    fn new(out: Box<dyn Write + Send>, compress: bool) -> Self {
        Self {
            out: Mutex::new(out),
            encoders: Mutex::new(Vec::new()),
            level: Mutex::new(compress.then_some(LEVEL)),
            last_send: Mutex::new(Instant::now()),
            caps: std::sync::atomic::AtomicU64::new(0),
            backlog: None,
            data_always: std::sync::atomic::AtomicBool::new(false),
            group: None,
        }
    }

    /// A connection writing through a [`GroupWriter`] (after the handshake).
    fn grouped(out: Box<dyn Write + Send>) -> Self {
        let (out, group) = GroupWriter::start(out);
        Self {
            backlog: Some(group.backlog.clone()),
            group: Some(group),
            ..Self::new(out, false)
        }
    }

    /// Compress data frames always (`true`), or only while the output is backed up.
    pub fn set_data_always(&self, always: bool) {
        self.data_always
            .store(always, std::sync::atomic::Ordering::Relaxed);
    }

    /// The level for a batch of frames (`data`: with file data or signatures): file data goes
    /// raw while the output keeps up.
    fn level_for(&self, level: Option<i32>, data: bool) -> Option<i32> {
        let level = level?;
        if !data || self.data_always.load(std::sync::atomic::Ordering::Relaxed) {
            return Some(level);
        }
        let waiting = self
            .backlog
            .as_ref()
            .map_or(usize::MAX, |b| b.load(std::sync::atomic::Ordering::Relaxed));
        (waiting > BACKLOG).then_some(level)
    }

    /// The capabilities both sides announced (after the handshake).
    pub fn capabilities(&self) -> u64 {
        self.caps.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_capabilities(&self, caps: u64) {
        self.caps.store(caps, std::sync::atomic::Ordering::Relaxed);
    }

    /// Changes the zstd level of later frames (`None`: uncompressed).
    pub fn set_level(&self, level: Option<i32>) {
        *self.level.lock().unwrap_or_else(|e| e.into_inner()) = level;
    }

    /// Sends one message as one frame.
    pub fn send(&self, msg: &Message) -> Result<(), SessionError> {
        self.send_all(std::slice::from_ref(msg))
    }

    /// Sends messages as consecutive frames, in one write.
    pub fn send_all(&self, msgs: &[Message]) -> Result<(), SessionError> {
        if msgs.is_empty() {
            return Ok(());
        }
        self.send_encoded(carries_data(msgs), None, |enc, out| {
            msgs.iter().try_for_each(|msg| enc.encode(msg, out))
        })
    }

    /// Sends one [`Message::DataChunk`] of `bytes` (at most [`crate::protocol::MAX_CHUNK`]),
    /// copied once, straight into the output queue when it goes uncompressed.
    pub fn send_data(&self, id: u32, bytes: &[u8]) -> Result<(), SessionError> {
        self.send_encoded(true, Some(bytes.len()), |enc, out| {
            enc.encode_data_chunk(id, bytes, out)
        })
    }

    /// Sends the frames `encode` appends, in one write; `data`: they carry file data or
    /// signatures (compressed only while the output is backed up); `chunk`: they are one
    /// data chunk of that many bytes (sent raw while an encoder backs off incompressible data).
    fn send_encoded(
        &self,
        data: bool,
        chunk: Option<usize>,
        encode: impl Fn(&mut FrameEncoder, &mut Vec<u8>) -> Result<(), ProtocolError>,
    ) -> Result<(), SessionError> {
        let level = self.level_for(*self.level.lock().unwrap_or_else(|e| e.into_inner()), data);
        let pooled = self
            .encoders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        // Uncompressed frames go straight into the output queue: no level, or a data chunk
        // while the encoder backs off data zstd could not shrink.
        let raw = level.is_none()
            || match (&pooled, chunk) {
                (Some((enc, _)), Some(len)) => enc.skips_data(len),
                _ => false,
            };
        if let (true, Some(group)) = (raw, &self.group) {
            if let Some((mut enc, buf)) = pooled {
                if level.is_some() {
                    enc.skip_data_frame();
                }
                self.encoders
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((enc, buf));
            }
            group.append(|queue| encode(&mut FrameEncoder::new(None), queue))??;
            *self.last_send.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            return Ok(());
        }
        let (mut enc, mut buf) = pooled.unwrap_or_else(|| (FrameEncoder::new(level), Vec::new()));
        if enc.level() != level {
            enc.set_level(level);
        }
        buf.clear();
        let encoded = encode(&mut enc, &mut buf);
        let written = encoded.map_err(SessionError::from).and_then(|()| {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            out.write_all(&buf)?;
            out.flush()?;
            Ok(())
        });
        // Large one-off buffers are not kept.
        if buf.capacity() > 4 << 20 {
            buf = Vec::new();
        }
        self.encoders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((enc, buf));
        written?;
        *self.last_send.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(())
    }

    /// Sends a keepalive whenever nothing went out for `every`, until the connection is
    /// dropped or broken.
    fn keep_alive(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("ds-keepalive".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                let Some(conn) = weak.upgrade() else { return };
                let idle = conn
                    .last_send
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .elapsed();
                if idle >= every && conn.send(&Message::Keepalive).is_err() {
                    return;
                }
            });
        spawned.expect("cannot start the keepalive thread");
    }
}

/// The receiving half: frames in, messages out.
pub struct Input {
    reader: Box<dyn Read + Send>,
    decoder: FrameDecoder,
    buf: Vec<u8>,
    /// Set when an idle timeout is armed.
    watch: Option<Arc<Watch>>,
}

/// What the idle watchdog and the reader share.
struct Watch {
    /// Milliseconds since `base` at the last byte received.
    last: std::sync::atomic::AtomicU64,
    base: Instant,
    timeout: Duration,
    /// The watchdog gave up (and tore the connection down).
    fired: std::sync::atomic::AtomicBool,
}

impl Watch {
    fn touch(&self) {
        let now = self.base.elapsed().as_millis() as u64;
        self.last.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    fn error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "nothing received from the far side for {} s (--timeout); gave up",
                self.timeout.as_secs_f64()
            ),
        )
    }
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
            watch: None,
        }
    }

    /// From now on, when no byte has arrived for `timeout`, a watchdog thread calls `abort`
    /// (which must make the blocked read return) and the read fails with a timeout error.
    /// Reads stay direct: no thread hand-off per read.
    fn set_idle_timeout(&mut self, timeout: Duration, abort: Option<Abort>) {
        let watch = Arc::new(Watch {
            last: Default::default(),
            base: Instant::now(),
            timeout,
            fired: Default::default(),
        });
        let weak = Arc::downgrade(&watch);
        let tick = (timeout / 4).max(Duration::from_millis(20));
        let spawned = std::thread::Builder::new()
            .name("ds-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                let Some(w) = weak.upgrade() else { return };
                let last = Duration::from_millis(w.last.load(std::sync::atomic::Ordering::Relaxed));
                if w.base.elapsed().saturating_sub(last) >= w.timeout {
                    w.fired.store(true, std::sync::atomic::Ordering::SeqCst);
                    if let Some(abort) = &abort {
                        abort();
                    }
                    return;
                }
            });
        spawned.expect("cannot start the idle watchdog");
        self.watch = Some(watch);
    }

    /// The timeout error, if the watchdog fired.
    fn timed_out(&self) -> Option<io::Error> {
        self.watch
            .as_ref()
            .filter(|w| w.fired.load(std::sync::atomic::Ordering::SeqCst))
            .map(|w| w.error())
    }

    /// The next message, or `None` at a clean end of input (between frames). Keepalives are
    /// consumed here.
    pub fn next_message(&mut self) -> Result<Option<Message>, SessionError> {
        loop {
            if let Some(m) = self.decoder.next_message()? {
                match m {
                    Message::Keepalive => continue,
                    m => return Ok(Some(m)),
                }
            }
            let n = loop {
                match self.reader.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.timed_out().unwrap_or(e).into()),
                }
            };
            if let Some(w) = &self.watch {
                if n == 0 || w.fired.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Some(e) = self.timed_out() {
                        return Err(e.into());
                    }
                }
                w.touch();
            }
            if n == 0 {
                self.decoder.finish()?;
                return Ok(None);
            }
            self.decoder.push(&self.buf[..n]);
        }
    }

    /// Whether the next message is already read (so [`Self::next_message`] will not wait for
    /// the peer; a keepalive counts).
    pub fn has_buffered_message(&self) -> bool {
        self.decoder.has_frame()
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
pub fn connect(duplex: Duplex, job: &Job) -> Result<(Arc<Conn>, Input), SessionError> {
    let level = compression(job);
    let abort = duplex.abort.clone();
    let mut ours = Hello::ours();
    if level.is_none() {
        ours.capabilities &= !crate::protocol::CAP_ZSTD;
    }
    let conn = Conn::new(duplex.writer, false);
    let mut input = Input::new(duplex.reader);
    // The client's timeout covers the handshake too: a far side that never answers.
    let timeout = idle_timeout(job);
    if let Some(t) = timeout {
        input.set_idle_timeout(t, abort.clone());
    }
    // A far side that is not there may close before our Hello is written: what it says (or
    // its end of stream) explains that better than the broken pipe.
    let sent = conn.send(&Message::Hello(ours));
    let theirs = hello(&mut input).map_err(|e| match e {
        SessionError::Closed(_) | SessionError::Protocol(ProtocolError::ClosedBeforeHello) => SessionError::Unsupported(
            "the far side closed the connection before answering: is deltasync installed there? Install it, or give its path with --remote-bin".into(),
        ),
        SessionError::Protocol(ProtocolError::NotAPeer { .. }) => SessionError::Unsupported(format!(
            "the far side did not answer as deltasync ({e}); check --remote-bin, and that the login prints nothing"
        )),
        e => e,
    })?;
    sent?;
    let n = negotiate(&ours, &theirs)?;
    let conn = Arc::new(Conn::grouped(conn.into_writer()));
    conn.set_capabilities(n.capabilities);
    conn.set_level(level.filter(|_| n.capabilities & crate::protocol::CAP_ZSTD != 0));
    conn.set_data_always(data_always(job));
    conn.send(&Message::Job(job.clone()))?;
    if let Some(t) = timeout.filter(|_| n.capabilities & CAP_KEEPALIVE != 0) {
        conn.keep_alive(keepalive_interval(t));
    }
    Ok((conn, input))
}

/// How often a quiet side sends a keepalive when the timeout is `t`.
fn keepalive_interval(t: Duration) -> Duration {
    (t / 4).max(Duration::from_millis(50))
}

/// The idle timeout a job asks for: its `timeout-ms` option (absent or 0: none).
pub fn idle_timeout(job: &Job) -> Option<Duration> {
    job.options
        .iter()
        .find(|(k, _)| k == "timeout-ms")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}

/// Whether a job asks for every data frame compressed (`compress-data=always`) rather than
/// only while the output is backed up (`auto`, the default).
pub fn data_always(job: &Job) -> bool {
    job.options
        .iter()
        .any(|(k, v)| k == "compress-data" && v == "always")
}

/// The zstd level a job asks for: its `compress-level` option (`off`, or -7..=19), 3 if
/// absent.
pub fn compression(job: &Job) -> Option<i32> {
    match job
        .options
        .iter()
        .find(|(k, _)| k == "compress-level")
        .map(|(_, v)| v.as_str())
    {
        None => Some(3),
        Some("off") => None,
        Some(v) => Some(v.parse::<i32>().unwrap_or(3).clamp(-7, 19)),
    }
}

/// The server's side: answer the Hello, read the job.
pub(super) fn accept(duplex: Duplex) -> Result<(Arc<Conn>, Input, Job), SessionError> {
    let abort = duplex.abort.clone();
    let conn = Conn::new(duplex.writer, false);
    let mut input = Input::new(duplex.reader);
    let theirs = hello(&mut input)?;
    conn.send(&Message::Hello(Hello::ours()))?;
    let n = negotiate(&Hello::ours(), &theirs)?;
    let conn = Arc::new(Conn::grouped(conn.into_writer()));
    conn.set_capabilities(n.capabilities);
    match input.expect("waiting for the job")? {
        Message::Job(job) => {
            conn.set_data_always(data_always(&job));
            conn.set_level(
                compression(&job).filter(|_| n.capabilities & crate::protocol::CAP_ZSTD != 0),
            );
            if let Some(t) = idle_timeout(&job).filter(|_| n.capabilities & CAP_KEEPALIVE != 0) {
                conn.keep_alive(keepalive_interval(t));
                input.set_idle_timeout(t, abort);
            }
            Ok((conn, input, job))
        }
        other => Err(SessionError::Unexpected(other.message_type().name())),
    }
}

impl Conn {
    fn into_writer(self) -> Box<dyn Write + Send> {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// The session's output after the handshake: frames are queued and one flusher thread writes
/// whatever has queued up since its last write in one go (group commit). Under load, many
/// small frames (requests, small files, their ends) leave in one write, and so in one ssh
/// packet, instead of one each; when idle, a frame leaves at once. A full queue blocks the
/// senders, as a full pipe did.
struct GroupWriter {
    shared: Arc<GroupShared>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

struct GroupShared {
    state: Mutex<GroupState>,
    /// Bytes queued or being written: the link's backlog.
    backlog: Arc<std::sync::atomic::AtomicUsize>,
    /// The flusher has something to write (or should stop).
    ready: std::sync::Condvar,
    /// The queue has room again (or the output failed).
    room: std::sync::Condvar,
}

#[derive(Default)]
struct GroupState {
    queue: Vec<u8>,
    closed: bool,
    failed: Option<(io::ErrorKind, String)>,
}

/// Bytes queued before senders wait.
const GROUP_QUEUE: usize = 4 << 20;

impl GroupWriter {
    /// The writer, and the count of bytes it holds that are not written yet.
    fn start(mut out: Box<dyn Write + Send>) -> (Box<dyn Write + Send>, Arc<GroupShared>) {
        let backlog = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let shared = Arc::new(GroupShared {
            state: Mutex::new(GroupState::default()),
            backlog: backlog.clone(),
            ready: std::sync::Condvar::new(),
            room: std::sync::Condvar::new(),
        });
        let sh = shared.clone();
        let flusher = std::thread::Builder::new()
            .name("ds-writer".into())
            .spawn(move || {
                let mut batch = Vec::new();
                loop {
                    {
                        let mut g = sh.state.lock().unwrap_or_else(|e| e.into_inner());
                        while g.queue.is_empty() && !g.closed {
                            g = sh.ready.wait(g).unwrap_or_else(|e| e.into_inner());
                        }
                        if g.queue.is_empty() {
                            return;
                        }
                        std::mem::swap(&mut g.queue, &mut batch);
                        sh.room.notify_all();
                    }
                    let r = out.write_all(&batch).and_then(|_| out.flush());
                    sh.backlog
                        .fetch_sub(batch.len(), std::sync::atomic::Ordering::Relaxed);
                    batch.clear();
                    if let Err(e) = r {
                        let mut g = sh.state.lock().unwrap_or_else(|e| e.into_inner());
                        g.failed = Some((e.kind(), e.to_string()));
                        g.queue.clear();
                        sh.room.notify_all();
                        return;
                    }
                }
            })
            .expect("cannot start the session's writer thread");
        let writer = Box::new(GroupWriter {
            shared: shared.clone(),
            flusher: Some(flusher),
        });
        (writer, shared)
    }
}

impl GroupShared {
    /// Runs `append` on the queue once it has room (or fails as the output did); whatever it
    /// appends is written in order, in one piece. If it fails, nothing it appended is kept.
    fn append<T, E>(
        &self,
        append: impl FnOnce(&mut Vec<u8>) -> Result<T, E>,
    ) -> io::Result<Result<T, E>> {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some((kind, msg)) = &g.failed {
                return Err(io::Error::new(*kind, msg.clone()));
            }
            if g.queue.len() < GROUP_QUEUE {
                break;
            }
            g = self.room.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        let start = g.queue.len();
        let r = append(&mut g.queue);
        if r.is_err() {
            g.queue.truncate(start);
        }
        let added = g.queue.len() - start;
        if added > 0 {
            self.backlog
                .fetch_add(added, std::sync::atomic::Ordering::Relaxed);
            self.ready.notify_one();
        }
        Ok(r)
    }
}

impl Write for GroupWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.shared
            .append(|queue| {
                queue.extend_from_slice(data);
                Ok::<(), std::convert::Infallible>(())
            })
            .map(|_| data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for GroupWriter {
    /// Writes what is queued, then closes the output (the peer sees the end of the stream).
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
        self.shared.ready.notify_all();
        if let Some(f) = self.flusher.take() {
            let _ = f.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn data_frames_are_compressed_only_while_the_output_is_backed_up() {
        let backlog = Arc::new(AtomicUsize::new(0));
        let conn = Conn {
            backlog: Some(backlog.clone()),
            ..Conn::new(Box::new(io::sink()), false)
        };
        let data = [Message::DataChunk {
            id: 1,
            bytes: vec![b'a'; 4096],
        }];
        let sig = [Message::SigChunk {
            id: 1,
            bytes: vec![1; 4096],
        }];
        let listing = [Message::ListEnd];
        // The link keeps up: data goes raw, everything else at the session's level.
        assert_eq!(conn.level_for(Some(3), carries_data(&data)), None);
        assert_eq!(conn.level_for(Some(3), carries_data(&sig)), None);
        assert_eq!(conn.level_for(Some(3), carries_data(&listing)), Some(3));
        // Backed up: data is compressed too.
        backlog.store(BACKLOG + 1, Ordering::Relaxed);
        assert_eq!(conn.level_for(Some(3), carries_data(&data)), Some(3));
        backlog.store(BACKLOG, Ordering::Relaxed);
        assert_eq!(conn.level_for(Some(-3), carries_data(&data)), None);
        // `compress-data=always`: data compressed whatever the backlog; off stays off.
        conn.set_data_always(true);
        assert_eq!(conn.level_for(Some(3), carries_data(&data)), Some(3));
        assert_eq!(conn.level_for(None, carries_data(&data)), None);
        // Before the handshake there is no backlog to read: compress as asked.
        let plain = Conn::new(Box::new(io::sink()), false);
        assert_eq!(plain.level_for(Some(3), carries_data(&data)), Some(3));
    }

    #[test]
    fn the_group_writer_counts_what_it_has_not_written_yet() {
        struct Gate(Arc<Mutex<()>>);
        impl Write for Gate {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let _held = self.0.lock().unwrap();
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new(Mutex::new(()));
        let closed = gate.lock().unwrap();
        let (mut w, shared) = GroupWriter::start(Box::new(Gate(gate.clone())));
        let backlog = shared.backlog.clone();
        w.write_all(&[0; 1000]).unwrap();
        w.write_all(&[0; 500]).unwrap();
        assert_eq!(backlog.load(Ordering::Relaxed), 1500);
        drop(closed);
        drop(w); // writes what is queued, then ends
        assert_eq!(backlog.load(Ordering::Relaxed), 0);
    }

    /// A writer that keeps what it is given.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);
    impl Write for Kept {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn frames_queued_directly_are_the_frames_an_encoder_writes() {
        let kept = Kept::default();
        let conn = Conn::grouped(Box::new(kept.clone()));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        conn.send_data(9, &data).unwrap();
        conn.send_all(&[Message::ListEnd, Message::SigEnd { id: 3 }])
            .unwrap();
        // Too large for a frame: an error, and nothing of it reaches the output.
        let huge = vec![0u8; crate::protocol::MAX_FRAME];
        assert!(conn.send_data(10, &huge).is_err());
        conn.send(&Message::Keepalive).unwrap();
        drop(conn); // flushes
        let mut want = Vec::new();
        let mut enc = FrameEncoder::new(None);
        for m in [
            Message::DataChunk { id: 9, bytes: data },
            Message::ListEnd,
            Message::SigEnd { id: 3 },
            Message::Keepalive,
        ] {
            enc.encode(&m, &mut want).unwrap();
        }
        assert!(*kept.0.lock().unwrap() == want);
    }

    #[test]
    fn a_job_asks_for_data_compression_always_or_by_backlog() {
        let mut job = Job {
            seed: 0,
            role: crate::protocol::Role::Sender,
            mode: crate::sync::Mode::Copy,
            dry_run: false,
            options: vec![("compress-level".into(), "-3".into())],
            filter_dialect: crate::filter::Dialect::Rclone,
            filter_args: vec![],
            root: b"/".to_vec(),
        };
        assert!(!data_always(&job));
        assert_eq!(compression(&job), Some(-3));
        job.options = vec![
            ("compress-level".into(), "-99".into()),
            ("compress-data".into(), "always".into()),
        ];
        assert!(data_always(&job));
        assert_eq!(
            compression(&job),
            Some(-7),
            "clamped to zstd's fast levels we allow"
        );
    }
}
