//! The sending side of a session: streams the listing of its tree and answers requests for
//! files (a delta against the receiver's signature, or the whole file) and digests.
//!
//! # Security
//! Every path comes from the peer and is opened through [`Tree`], beneath the root and
//! without following links; signatures are capped at [`MAX_SIGNATURE`] bytes and parsed with
//! the signature limits; a request id in flight twice, a chunk for an unknown id or an
//! unexpected message ends the session with an error.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;

use crate::checksum::FileHasher;
use crate::delta::{delta_file_streamed, BlockIndex, DeltaOptions};
use crate::input::{Access, InputFile};
use crate::protocol::{
    DataStatus, DigestStatus, EntryBatcher, Job, Message, ScanProblem, CAP_LIST_CREDIT,
    LIST_CREDIT, MAX_CHUNK, MAX_SIGNATURE,
};
use crate::scan::{DescendFilter, Timestamp, WalkBuilder};
use crate::signature::{Signature, SignatureLimits};
use crate::tree::Tree;

use super::conn::{Conn, Input};
use super::gate::Gate;
use super::SessionError;

/// Workers answering requests at once.
const WORKERS: usize = 4;

enum Work {
    File {
        id: u32,
        path: Vec<u8>,
        /// The size the receiver expects (from the listing); a file grown past it is
        /// reported as changed, since the receiver accepts no more.
        size: u64,
        sig: Option<Signature>,
    },
    Digest {
        id: u32,
        path: Vec<u8>,
    },
}

/// How the sender walks its tree: the same pruning the receiver's pass would apply to a local
/// source, so directories the filter excludes are never read (the receiver still filters
/// every listed entry).
#[derive(Clone, Default)]
pub struct WalkOptions {
    /// Directories not to enter.
    pub descend: Option<DescendFilter>,
    /// Stay on the root's file system.
    pub one_file_system: bool,
}

impl std::fmt::Debug for WalkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalkOptions")
            .field("descend", &self.descend.is_some())
            .field("one_file_system", &self.one_file_system)
            .finish()
    }
}

impl WalkOptions {
    /// The walk a pass with these options and this filter asks for.
    pub fn of(opts: &crate::sync::SyncOptions, filter: &crate::filter::Filter) -> Self {
        let filter = filter.clone();
        Self {
            descend: Some(std::sync::Arc::new(move |p: &[u8], _| filter.descend(p))),
            one_file_system: opts.one_file_system,
        }
    }
}

/// Serves the tree named by the job until the receiver is done (the far side of a pull). The
/// job's filter and options prune the walk.
pub fn serve_tree(conn: &Conn, input: &mut Input, job: &Job) -> Result<(), SessionError> {
    let fail = |msg: String| {
        let _ = conn.send(&Message::Error(msg.clone()));
        SessionError::Failed(msg)
    };
    let mut opts = crate::sync::SyncOptions::new(job.mode);
    super::options::decode(&job.options, &mut opts).map_err(|e| fail(e.to_string()))?;
    let spec = super::options::FilterSpec {
        dialect: job.filter_dialect,
        pairs: super::options::pairs(&job.filter_args),
    };
    let filter = spec.build().map_err(|e| fail(format!("filter: {e}")))?;
    let root = PathBuf::from(std::ffi::OsStr::from_bytes(&job.root));
    let walk = WalkOptions::of(&opts, &filter);
    serve_tree_at(conn, input, &root, job.seed, &walk, &|_| {})
}

/// Serves the tree at `root` until the receiver is done, walked as `walk` says; `Event` and
/// `Report` messages from a receiver running the pass (a push) go to `sink`.
pub fn serve_tree_at(
    conn: &Conn,
    input: &mut Input,
    root: &Path,
    seed: u64,
    walk: &WalkOptions,
    sink: &(dyn Fn(Message) + Sync),
) -> Result<(), SessionError> {
    let tree = match Tree::open(root) {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("cannot open source {}: {e}", root.display());
            let _ = conn.send(&Message::Error(msg.clone()));
            return Err(SessionError::Failed(msg));
        }
    };
    let (tx, rx) = sync_channel::<Work>(WORKERS * 4);
    let rx = Mutex::new(rx);
    let buffers = Buffers::default();
    let deltas = Gate::new(GATED_DELTA);
    let credit = Credit::new(conn.capabilities() & CAP_LIST_CREDIT != 0);
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("ds-lister".into())
            .spawn_scoped(s, || send_listing(conn, root, walk, &credit))
            .expect("cannot start the listing thread");
        for _ in 0..WORKERS {
            std::thread::Builder::new()
                .name("ds-sender".into())
                .spawn_scoped(s, || work(conn, &tree, seed, &rx, (&buffers, &deltas)))
                .expect("cannot start a sending thread");
        }
        let answer = Answer {
            conn,
            tree: &tree,
            seed,
            tx,
        };
        let r = read_requests(input, &answer, sink, &credit);
        credit.close();
        drop(answer);
        r
    })
}

/// Listing flow control: entries the receiver still has room for. The listing thread waits
/// for credit; the request reader grants it as `ListCredit` messages arrive.
struct Credit {
    state: Mutex<(u64, bool)>,
    granted: std::sync::Condvar,
    enabled: bool,
}

impl Credit {
    fn new(enabled: bool) -> Self {
        Self {
            state: Mutex::new((u64::from(LIST_CREDIT), false)),
            granted: std::sync::Condvar::new(),
            enabled,
        }
    }

    fn grant(&self, n: u32) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = g.0.saturating_add(u64::from(n));
        self.granted.notify_all();
    }

    /// Waits until `n` entries may be sent and takes them; `false` once the session is over.
    fn take(&self, n: usize) -> bool {
        if !self.enabled {
            return true;
        }
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if g.1 {
                return false;
            }
            // A batch larger than the whole window still goes once the window is full.
            if g.0 >= n as u64 || g.0 >= u64::from(LIST_CREDIT) {
                g.0 = g.0.saturating_sub(n as u64);
                return true;
            }
            g = self.granted.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.granted.notify_all();
    }
}

/// Whole files up to this size are sent by the request reader itself: a hand-off to a worker
/// costs more than reading them.
const INLINE_MAX: u64 = 64 << 10;

/// Where requests are answered: small whole files right here, the rest by the workers.
struct Answer<'a> {
    conn: &'a Conn,
    tree: &'a Tree,
    seed: u64,
    tx: std::sync::mpsc::SyncSender<Work>,
}

/// Replies to a batch of requests answered here leave in one write once this many bytes of
/// them are ready (and at the end of the batch): one wake-up of the writer, and of the
/// receiver's reader, per batch instead of per file.
const REPLY_BATCH: usize = 256 << 10;

impl Answer<'_> {
    /// Answers a request for a whole file: small ones here (their replies appended to
    /// `replies`, sent by [`Self::flush`]), the rest by a worker. `false` when the workers
    /// are gone.
    fn whole(
        &self,
        r: crate::protocol::Request,
        replies: &mut Replies,
    ) -> Result<bool, SessionError> {
        let work = Work::File {
            id: r.id,
            path: r.path,
            size: r.size_hint,
            sig: None,
        };
        if r.size_hint <= INLINE_MAX {
            serve_into(self.conn, self.tree, self.seed, work, replies, None)?;
            if replies.bytes >= REPLY_BATCH {
                self.flush(replies)?;
            }
            Ok(true)
        } else {
            Ok(self.tx.send(work).is_ok())
        }
    }

    /// Sends the replies gathered so far, in one write.
    fn flush(&self, replies: &mut Replies) -> Result<(), SessionError> {
        replies.bytes = 0;
        if replies.msgs.is_empty() {
            return Ok(());
        }
        let r = self.conn.send_all(&replies.msgs);
        replies.msgs.clear();
        r
    }
}

/// Replies waiting to be sent together (see [`REPLY_BATCH`]).
#[derive(Default)]
struct Replies {
    msgs: Vec<Message>,
    /// File data among `msgs`.
    bytes: usize,
}

fn read_requests(
    input: &mut Input,
    answer: &Answer<'_>,
    sink: &(dyn Fn(Message) + Sync),
    credit: &Credit,
) -> Result<(), SessionError> {
    let tx = &answer.tx;
    let mut sigs: HashMap<u32, (Vec<u8>, u64, Vec<u8>)> = HashMap::new();
    let mut replies = Replies::default();
    loop {
        match input.next_message()? {
            None => {
                return Err(SessionError::Closed(
                    "the receiver left without saying it was done",
                ))
            }
            Some(Message::Done) => return Ok(()),
            Some(Message::Error(e)) => return Err(SessionError::Peer(e)),
            Some(m @ (Message::Event(_) | Message::Report(_))) => sink(m),
            Some(Message::ListCredit(n)) => credit.grant(n),
            Some(Message::Request(r)) => {
                if r.signature {
                    if sigs
                        .insert(r.id, (r.path, r.size_hint, Vec::new()))
                        .is_some()
                    {
                        return Err(SessionError::Unexpected("duplicate request id"));
                    }
                } else {
                    let more = answer.whole(r, &mut replies)?;
                    answer.flush(&mut replies)?;
                    if !more {
                        return Ok(());
                    }
                }
            }
            Some(Message::Requests(rs)) => {
                for r in rs {
                    if !answer.whole(r, &mut replies)? {
                        return answer.flush(&mut replies);
                    }
                }
                answer.flush(&mut replies)?;
            }
            Some(Message::SigChunk { id, bytes }) => {
                let (_, _, buf) = sigs
                    .get_mut(&id)
                    .ok_or(SessionError::Unexpected("signature chunk for no request"))?;
                if (buf.len() + bytes.len()) as u64 > MAX_SIGNATURE {
                    return Err(SessionError::Unsupported(format!(
                        "signature for request {id} exceeds {MAX_SIGNATURE} bytes"
                    )));
                }
                buf.extend_from_slice(&bytes);
            }
            Some(Message::SigEnd { id }) => {
                let (path, size, bytes) = sigs
                    .remove(&id)
                    .ok_or(SessionError::Unexpected("signature end for no request"))?;
                let sig =
                    Signature::from_bytes(&bytes, &SignatureLimits::default()).map_err(|e| {
                        SessionError::Unsupported(format!("bad signature for request {id}: {e}"))
                    })?;
                if tx
                    .send(Work::File {
                        id,
                        path,
                        size,
                        sig: Some(sig),
                    })
                    .is_err()
                {
                    return Ok(());
                }
            }
            Some(Message::Digest { id, path }) => {
                if tx.send(Work::Digest { id, path }).is_err() {
                    return Ok(());
                }
            }
            Some(other) => return Err(SessionError::Unexpected(other.message_type().name())),
        }
    }
}

fn send_listing(conn: &Conn, root: &std::path::Path, walk: &WalkOptions, credit: &Credit) {
    let mut batcher = EntryBatcher::new();
    let send = |batch: Vec<crate::protocol::WireEntry>| {
        if credit.take(batch.len()) {
            conn.send(&Message::Entries(batch))
        } else {
            Err(SessionError::Closed("the receiver ended the session"))
        }
    };
    let flush = |b: &mut EntryBatcher| b.take().map_or(Ok(()), send);
    let entries = WalkBuilder::new(root)
        .follow_root_symlink(true)
        .one_file_system(walk.one_file_system)
        .descend_filter(walk.descend.clone())
        .build();
    for item in entries {
        let r = match item {
            Ok(e) => match batcher.push(e) {
                Ok(Some(batch)) => send(batch),
                Ok(None) => Ok(()),
                // An entry the protocol cannot carry (an over-long path) is reported instead.
                Err(e) => flush(&mut batcher).and_then(|_| {
                    conn.send(&Message::ScanProblem(ScanProblem {
                        path: Vec::new(),
                        vanished: false,
                        message: e.to_string(),
                    }))
                }),
            },
            Err(e) => flush(&mut batcher).and_then(|_| {
                conn.send(&Message::ScanProblem(ScanProblem {
                    path: e.path.to_vec(),
                    vanished: e.is_vanished(),
                    message: e.to_string(),
                }))
            }),
        };
        if r.is_err() {
            return;
        }
    }
    let _ = flush(&mut batcher).and_then(|_| conn.send(&Message::ListEnd));
}

/// What the workers share: kept read buffers, and the gate their deltas go through.
type Shared<'a> = (&'a Buffers, &'a Gate);

/// Deltas of files from this size on are computed one at a time, largest first (see
/// [`super::gate`]): each runs on all cores already, and the pass's longest chain then gets
/// its delta first, as its signature came first. One at a time, they also reuse the kept
/// read buffers instead of each faulting in fresh ones.
const GATED_DELTA: u64 = 1 << 20;

fn work(conn: &Conn, tree: &Tree, seed: u64, rx: &Mutex<Receiver<Work>>, shared: Shared<'_>) {
    loop {
        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else { return };
        if serve(conn, tree, seed, job, shared).is_err() {
            return;
        }
    }
}

/// Answers one request; `Err` only when the connection failed.
fn serve(
    conn: &Conn,
    tree: &Tree,
    seed: u64,
    job: Work,
    shared: Shared<'_>,
) -> Result<(), SessionError> {
    let mut replies = Replies::default();
    serve_into(conn, tree, seed, job, &mut replies, Some(shared))?;
    conn.send_all(&replies.msgs)
}

/// Read buffers (a delta's batches, see [`crate::delta::delta_file_reusing`]; a large file's
/// chunks), kept between the workers' requests: a fresh one per file costs page faults and
/// zeroing. At most [`KEEP_BUFFERS`] are kept, so an idle session holds at most that many.
#[derive(Default)]
struct Buffers(Mutex<Vec<Vec<u8>>>);

/// Buffers kept: one per core the delta search runs on is enough for them all to be busy.
const KEEP_BUFFERS: usize = 2;

impl Buffers {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, buf: Vec<u8>) {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEEP_BUFFERS {
            kept.push(buf);
        }
    }
}

/// Answers one request: whatever does not fit in one chunk is sent as it is read, and the
/// reply's tail (its last chunk and its end) is appended to `replies` for the caller to send.
/// `Err` only when the connection failed.
fn serve_into(
    conn: &Conn,
    tree: &Tree,
    seed: u64,
    job: Work,
    replies: &mut Replies,
    shared: Option<Shared<'_>>,
) -> Result<(), SessionError> {
    match job {
        Work::File {
            id,
            path,
            size,
            sig,
        } => {
            let mut out = ChunkWriter {
                conn,
                id,
                buf: Vec::new(),
                failed: None,
            };
            let turn = match (shared, &sig) {
                (Some((_, gate)), Some(_)) => Some(gate.enter(size)),
                _ => None,
            };
            let mut buf = shared.map(|(b, _)| b.take()).unwrap_or_default();
            let status = send_file(tree, seed, &path, size, sig.as_ref(), &mut out, &mut buf);
            if let Some((b, _)) = shared {
                b.give(buf);
            }
            drop(turn);
            let status = status?;
            out.finish_into(status, replies);
            Ok(())
        }
        Work::Digest { id, path } => {
            let status = match crate::exec::transfer::file_digest(tree, &path) {
                Ok(h) => DigestStatus::Ok(h),
                Err(e) if e.kind() == io::ErrorKind::NotFound => DigestStatus::Vanished,
                Err(e) => DigestStatus::Failed(e.to_string()),
            };
            replies.msgs.push(Message::DigestReply { id, status });
            Ok(())
        }
    }
}

fn snapshot(f: &std::fs::File) -> io::Result<(u64, Timestamp)> {
    let m = f.metadata()?;
    Ok((
        m.size(),
        Timestamp {
            sec: m.mtime(),
            nsec: m.mtime_nsec() as u32,
        },
    ))
}

/// Sends one file's data; the returned status ends it. Connection failures are `Err`.
fn send_file(
    tree: &Tree,
    seed: u64,
    path: &[u8],
    listed: u64,
    sig: Option<&Signature>,
    out: &mut ChunkWriter<'_>,
    buf: &mut Vec<u8>,
) -> Result<DataStatus, SessionError> {
    let file = match tree.open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DataStatus::Vanished),
        Err(e) => return Ok(DataStatus::Failed(format!("open: {e}"))),
    };
    let before = match snapshot(&file) {
        Ok(s) => s,
        Err(e) => return Ok(DataStatus::Failed(format!("stat: {e}"))),
    };
    if before.0 > listed {
        return Ok(DataStatus::Changed(format!(
            "grew from {listed} to {} bytes since it was listed",
            before.0
        )));
    }
    let hash = match sig {
        Some(sig) => {
            let input = match file
                .try_clone()
                .and_then(|f| InputFile::from_file(f, Access::Live))
            {
                Ok(i) => i,
                Err(e) => return Ok(DataStatus::Failed(format!("open: {e}"))),
            };
            match delta_file_streamed(
                sig,
                &BlockIndex::new(sig),
                &input,
                &mut *out,
                &DeltaOptions::default(),
                buf,
            ) {
                Ok(st) => st.file_hash,
                Err(crate::DeltaError::SourceTruncated { expected, got }) => {
                    return out.done().map(|_| {
                        DataStatus::Changed(format!(
                            "shrank from {expected} to {got} bytes while read"
                        ))
                    })
                }
                Err(e) => return out.done().map(|_| DataStatus::Failed(e.to_string())),
            }
        }
        None => {
            let mut h = FileHasher::new(seed);
            // A chunk per frame, read into the worker's kept buffer (or, for a small file
            // answered inline, one sized to it: a fresh zeroed 1 MiB costs more than its data).
            let size = MAX_CHUNK.min(before.0 as usize).max(1);
            if buf.len() < size {
                buf.resize(size, 0);
            }
            let chunk = &mut buf[..size];
            let mut pos = 0u64;
            while pos < before.0 {
                let want = ((before.0 - pos) as usize).min(chunk.len());
                let n = match crate::input::read_full_at(&file, &mut chunk[..want], pos) {
                    Ok(n) => n,
                    Err(e) => return out.done().map(|_| DataStatus::Failed(format!("read: {e}"))),
                };
                if n < want {
                    return out.done().map(|_| {
                        DataStatus::Changed(format!(
                            "shrank to {} bytes while read",
                            pos + n as u64
                        ))
                    });
                }
                h.update(&chunk[..n]);
                out.write_all(&chunk[..n])
                    .map_err(|e| out.failed.take().unwrap_or_else(|| e.into()))?;
                pos += n as u64;
            }
            Some(h.finish())
        }
    };
    out.done()?;
    match snapshot(&file) {
        Ok(after) if after == before => {}
        Ok(after) => {
            return Ok(DataStatus::Changed(format!(
                "size {} → {}, mtime moved: {}",
                before.0,
                after.0,
                before.1 != after.1
            )))
        }
        Err(e) => return Ok(DataStatus::Failed(format!("stat: {e}"))),
    }
    let Some(file_hash) = hash else {
        return Ok(DataStatus::Failed(
            "a delta against a non-native signature carries no file hash".into(),
        ));
    };
    Ok(DataStatus::Ok {
        file_hash,
        size: before.0,
        mtime: before.1,
    })
}

/// Turns written bytes into `DataChunk` frames.
struct ChunkWriter<'a> {
    conn: &'a Conn,
    id: u32,
    buf: Vec<u8>,
    failed: Option<SessionError>,
}

impl ChunkWriter<'_> {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.buf);
        self.conn
            .send(&Message::DataChunk { id: self.id, bytes })
            .map_err(|e| {
                let err = io::Error::new(io::ErrorKind::BrokenPipe, e.to_string());
                self.failed = Some(e);
                err
            })
    }

    /// Data written so far is complete; the tail stays buffered for [`Self::finish`].
    fn done(&mut self) -> Result<(), SessionError> {
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Appends the buffered tail and the end of this transfer to `replies`, to be sent in one
    /// write (a small file is then part of one write and one wake-up at the other end).
    fn finish_into(mut self, status: DataStatus, replies: &mut Replies) {
        if !self.buf.is_empty() {
            let bytes = std::mem::take(&mut self.buf);
            replies.bytes += bytes.len();
            replies.msgs.push(Message::DataChunk { id: self.id, bytes });
        }
        replies.msgs.push(Message::DataEnd {
            id: self.id,
            status,
        });
    }
}

/// Writes at least this large, with nothing buffered, leave as their own frames, copied once
/// (see [`Conn::send_data`]) rather than gathered into a chunk first. Above
/// [`INLINE_MAX`]: small files answered inline stay in their batch of replies.
const DIRECT_MIN: usize = 128 << 10;

impl Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.is_empty() && data.len() >= DIRECT_MIN {
            let n = data.len().min(MAX_CHUNK);
            self.conn.send_data(self.id, &data[..n]).map_err(|e| {
                let err = io::Error::new(io::ErrorKind::BrokenPipe, e.to_string());
                self.failed = Some(e);
                err
            })?;
            return Ok(n);
        }
        let room = MAX_CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == MAX_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    /// Sends what is buffered: the delta's writer flushes at each checkpoint, so the receiver
    /// can rebuild the part covered so far while the rest is searched.
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
