//! The receiver's view of a far sender: a [`Source`] whose listing and file data arrive over a
//! session.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::checksum::FileHasher;
use crate::delta::{apply, ApplyOptions, Basis};
use crate::exec::meta::Meta;
use crate::exec::transfer::{Moved, TransferError, TransferOptions};
use crate::input::{Access, InputFile};
use crate::protocol::{
    DataStatus, DigestStatus, ListChecker, Message, Request, Role, CAP_LIST_CREDIT, CAP_REQUESTS,
    LIST_CREDIT, MAX_CHUNK,
};
use crate::scan::{DescendFilter, Entry, ScanError, ScanErrorKind};
use crate::signature::{Signature, SignatureFormat, SignatureOptions};
use crate::sync::source::{Listing, Ready, Source, Waker};
use crate::transport::{Duplex, WireCount};
use crate::tree::Tree;

use super::conn::{connect, Conn, Input};
use super::gate::Gate;
use super::SessionError;

/// A reply routed to the transfer that asked for it.
enum Reply {
    Chunk(Vec<u8>),
    End(DataStatus),
    Digest(DigestStatus),
    /// The session is over; the text says why.
    Lost(String),
}

/// Where an open request's replies go, and for one sent ahead, its completion flag.
type Route = (SyncSender<Reply>, Option<Ready>);

struct Shared {
    /// Open requests: where their replies go, and for one sent ahead the flag set when its
    /// reply is complete (its replies must fit the channel: nobody may be reading it yet).
    pending: Mutex<HashMap<u32, Route>>,
    /// The pass's signal that flags turned true (see [`Source::set_waker`]).
    waker: Mutex<Option<Waker>>,
    lost: Mutex<Option<String>>,
    /// Listing entries granted to the sender beyond the initial window.
    granted: std::sync::atomic::AtomicU64,
}

/// A far source tree reached through a session. Dropping it ends the session.
pub struct RemoteSource {
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    listing: Mutex<Option<Receiver<Result<Entry, ScanError>>>>,
    reader: Option<JoinHandle<()>>,
    next_id: AtomicU32,
    seed: u64,
    describe: String,
    /// Requests sent ahead by [`Source::prepare`], by path: their replies collect in the
    /// channel until the transfer takes them.
    prefetched: Mutex<HashMap<Box<[u8]>, Pending>>,
    /// Requests queued by [`Source::prepare`] and not sent yet, ids increasing: they leave
    /// as one [`Message::Requests`] when [`REQUEST_BATCH`] have gathered, or when a transfer
    /// needs one of them.
    unsent: Mutex<Vec<Request>>,
    /// The bytes that crossed the connection, when this side opened it ([`Self::connect`]).
    wire: Option<WireCount>,
    /// Signatures of large old files, one at a time, largest first (see [`super::gate`]).
    signatures: Gate,
}

/// Old files from this size on compute their signatures through [`RemoteSource::signatures`].
const GATED_SIGNATURE: u64 = 1 << 20;

/// Whole-file requests sent in one frame (when the far side takes batches).
const REQUEST_BATCH: usize = 64;

/// A request already sent, and where its replies arrive.
type Pending = (u32, Receiver<Reply>);

/// Files up to this size are requested as soon as the pass queues them (the sender answers
/// them from its request reader). With the pass's task queue this bounds the data waiting
/// here to about `8 × transfers` such files.
const PREFETCH_MAX: u64 = 64 << 10;

/// Whether a transfer onto `old` asks for a delta: over the network a delta pays whenever
/// there is an old file worth reading.
fn wants_basis(old: Option<&Entry>, opts: &TransferOptions) -> bool {
    old.is_some_and(|o| o.size() >= opts.delta_min_size.min(64 << 10))
}

impl std::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSource")
            .field("describe", &self.describe)
            .finish_non_exhaustive()
    }
}

impl RemoteSource {
    /// Starts a session over `duplex` asking the far side to send the tree at `root` for a
    /// pass with `opts` and `filter` (the far side prunes its walk with them; the pass filters
    /// every entry again). `describe` names it in messages (`host:path`); `session` sets
    /// compression and the idle timeout.
    pub fn connect(
        duplex: Duplex,
        root: &[u8],
        opts: &crate::sync::SyncOptions,
        filter: &super::options::FilterSpec,
        describe: String,
        session: &super::SessionOptions,
    ) -> Result<Self, SessionError> {
        let seed = crate::signature::random_seed();
        let job = super::job(Role::Sender, seed, opts, filter, session, root);
        let (duplex, wire) = duplex.counted();
        let (conn, input) = connect(duplex, &job)?;
        let mut source = Self::over(conn, input, seed, describe);
        source.wire = Some(wire);
        Ok(source)
    }

    /// The bytes that crossed the connection so far, each way (after compression, before
    /// ssh's encryption), for a source this side connected; the count goes on after a pass
    /// (its report holds what had crossed by the pass's end) up to the session's end, when
    /// the source is dropped.
    pub fn wire_count(&self) -> Option<WireCount> {
        self.wire.clone()
    }

    /// The far sender of a session already started (the far side of a push, where the client
    /// is the sender); `seed` is the session's.
    pub fn over(conn: Arc<Conn>, input: Input, seed: u64, describe: String) -> Self {
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            waker: Mutex::new(None),
            lost: Mutex::new(None),
            granted: Default::default(),
        });
        // Unbounded, so the one reader never waits on the listing while replies queue behind
        // it; the sender's listing credit bounds what can pile up here.
        let (ltx, lrx) = channel();
        let sh = shared.clone();
        let caps = conn.capabilities();
        let reader = std::thread::Builder::new()
            .name("ds-reader".into())
            .spawn(move || read_loop(input, caps, ltx, &sh))
            .expect("cannot start the session's reader thread");
        Self {
            conn,
            shared,
            listing: Mutex::new(Some(lrx)),
            reader: Some(reader),
            next_id: AtomicU32::new(1),
            seed,
            describe,
            prefetched: Mutex::new(HashMap::new()),
            unsent: Mutex::new(Vec::new()),
            wire: None,
            signatures: Gate::new(GATED_SIGNATURE),
        }
    }

    fn lost(&self) -> Option<String> {
        self.shared
            .lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Registers a request id and its reply channel.
    fn register(&self) -> Result<(u32, Receiver<Reply>), TransferError> {
        self.register_as(false).map(|(id, rx, _)| (id, rx))
    }

    /// Registers a request id and its reply channel; `ahead`: for a request sent before a
    /// transfer waits on it, whose replies (one chunk and the end, from an honest sender) must
    /// fit the channel: more ends the session rather than block the one reader.
    /// Returns, for a request sent ahead, the flag set once its reply is complete.
    fn register_as(
        &self,
        ahead: bool,
    ) -> Result<(u32, Receiver<Reply>, Option<Ready>), TransferError> {
        // Checked under the lock the reader drains with when the session ends (it sets `lost`
        // first): a request registered here is either refused or drained, never left behind.
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(why) = self.lost() {
            return Err(lost_err(&why));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = sync_channel(16);
        let ready = ahead.then(Ready::default);
        pending.insert(id, (tx, ready.clone()));
        Ok((id, rx, ready))
    }

    /// Sends the request for `rel` (whole, no signature) and returns where its replies arrive.
    fn request_whole(
        &self,
        rel: &[u8],
        size_hint: u64,
        ahead: bool,
    ) -> Result<(Pending, Option<Ready>), TransferError> {
        let (id, rx, ready) = self.register_as(ahead)?;
        self.send(&Message::Request(Request {
            id,
            path: rel.to_vec(),
            size_hint,
            signature: false,
        }))?;
        Ok(((id, rx), ready))
    }

    /// The request sent ahead for `rel`, if any; sends its batch now if it is still queued.
    fn take_prefetched(&self, rel: &[u8]) -> Option<Pending> {
        let p = self
            .prefetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(rel)?;
        let batch = {
            let mut u = self.unsent.lock().unwrap_or_else(|e| e.into_inner());
            match u.first() {
                Some(first) if first.id <= p.0 => std::mem::take(&mut *u),
                _ => Vec::new(),
            }
        };
        // A failed send is the session ending: the reply channel says so.
        let _ = self.send_batch(batch);
        Some(p)
    }

    fn send_batch(&self, batch: Vec<Request>) -> Result<(), TransferError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.send(&Message::Requests(batch))
    }

    fn send(&self, m: &Message) -> Result<(), TransferError> {
        self.conn.send(m).map_err(|e| lost_err(&e.to_string()))
    }

    /// One request and its reply: the new file into `out` (a delta applied against `basis`,
    /// or the raw data), checked against the sender's whole-file hash. `sent` is a whole-file
    /// request already on its way (see [`Source::prepare`]).
    fn fetch(
        &self,
        rel: &[u8],
        size_hint: u64,
        basis: Option<(&Signature, &InputFile)>,
        sent: Option<Pending>,
        out: &mut std::fs::File,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Fetched, TransferError> {
        let (id, rx) = match (sent, basis) {
            (Some(p), None) => p,
            (_, None) => self.request_whole(rel, size_hint, false)?.0,
            (_, Some(_)) => {
                let (id, rx) = self.register()?;
                self.send(&Message::Request(Request {
                    id,
                    path: rel.to_vec(),
                    size_hint,
                    signature: true,
                }))?;
                (id, rx)
            }
        };
        if let Some((sig, _)) = basis {
            for chunk in sig.to_bytes().chunks(MAX_CHUNK) {
                self.send(&Message::SigChunk {
                    id,
                    bytes: chunk.to_vec(),
                })?;
            }
            self.send(&Message::SigEnd { id })?;
        }
        match basis {
            None => {
                let mut hasher = FileHasher::new(self.seed);
                // Gathers small chunks into larger writes; chunks of at least its size (a large
                // file's) are written as they come, not copied through it.
                let mut w = io::BufWriter::with_capacity(WRITE_GATHER, &mut *out);
                let mut written = 0u64;
                let status = loop {
                    match rx.recv() {
                        Ok(Reply::Chunk(b)) => {
                            // Never more than the listing announced, whatever the peer sends.
                            written += b.len() as u64;
                            if written > size_hint {
                                return Err(TransferError::Changing {
                                    detail: format!(
                                        "the far side sent more than the {size_hint} bytes it listed"
                                    ),
                                    tries: 1,
                                });
                            }
                            hasher.update(&b);
                            w.write_all(&b).map_err(|e| TransferError::Io {
                                op: "write temporary",
                                source: e,
                            })?;
                            progress(b.len() as u64);
                        }
                        Ok(Reply::End(s)) => break s,
                        Ok(Reply::Lost(why)) => return Err(lost_err(&why)),
                        Ok(Reply::Digest(_)) | Err(_) => {
                            return Err(lost_err("reply stream broken"))
                        }
                    }
                };
                w.flush().map_err(|e| TransferError::Io {
                    op: "write temporary",
                    source: e,
                })?;
                drop(w);
                finish_status(status, Some(hasher.finish()), 0)
            }
            Some((_, old)) => {
                let basis = match old.as_slice() {
                    Some(s) => Basis::Slice(s),
                    None => Basis::File(old),
                };
                let mut reader = ReplyReader {
                    rx: &rx,
                    buf: Vec::new(),
                    pos: 0,
                    end: None,
                    progress,
                };
                let mut w = io::BufWriter::with_capacity(1 << 20, &mut *out);
                let limit = ApplyOptions {
                    max_output: size_hint,
                };
                let applied = apply(basis, &mut reader, &mut w, &limit);
                let flushed = w.flush();
                // Drain to the end of this transfer whatever happened, so the reply routing
                // stays in step.
                let status = reader.finish()?;
                match (applied, status) {
                    (_, DataStatus::Ok { .. }) if flushed.is_err() => Err(TransferError::Io {
                        op: "write temporary",
                        source: flushed.unwrap_err(),
                    }),
                    (Ok(st), status @ DataStatus::Ok { .. }) => {
                        finish_status(status, None, st.copied_bytes)
                    }
                    (Err(e), DataStatus::Ok { .. }) => Err(TransferError::Apply(e)),
                    (_, status) => finish_status(status, None, 0),
                }
            }
        }
    }
}

/// What a fetch established.
struct Fetched {
    size: u64,
    mtime: crate::scan::Timestamp,
    matched: u64,
}

fn lost_err(why: &str) -> TransferError {
    TransferError::Io {
        op: "session",
        source: io::Error::new(io::ErrorKind::ConnectionAborted, why.to_string()),
    }
}

/// Maps the sender's end status; `computed` is our hash of raw data, checked against its.
fn finish_status(
    status: DataStatus,
    computed: Option<[u8; 16]>,
    matched: u64,
) -> Result<Fetched, TransferError> {
    match status {
        DataStatus::Ok {
            file_hash,
            size,
            mtime,
        } => {
            if computed.is_some_and(|h| h != file_hash) {
                return Err(TransferError::Apply(crate::ApplyError::HashMismatch));
            }
            Ok(Fetched {
                size,
                mtime,
                matched,
            })
        }
        DataStatus::Changed(d) => Err(TransferError::Changing {
            detail: d,
            tries: 1,
        }),
        DataStatus::Vanished => Err(TransferError::Vanished),
        DataStatus::Failed(m) => Err(TransferError::Io {
            op: "far side",
            source: io::Error::other(m),
        }),
    }
}

/// Reads `Reply::Chunk`s of one transfer as a byte stream, remembering its end status.
struct ReplyReader<'a> {
    rx: &'a Receiver<Reply>,
    buf: Vec<u8>,
    pos: usize,
    end: Option<DataStatus>,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl ReplyReader<'_> {
    fn finish(&mut self) -> Result<DataStatus, TransferError> {
        loop {
            if let Some(s) = self.end.take() {
                return Ok(s);
            }
            match self.rx.recv() {
                Ok(Reply::Chunk(_)) => {}
                Ok(Reply::End(s)) => return Ok(s),
                Ok(Reply::Lost(why)) => return Err(lost_err(&why)),
                Ok(Reply::Digest(_)) | Err(_) => return Err(lost_err("reply stream broken")),
            }
        }
    }
}

impl Read for ReplyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.end.is_some() {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Reply::Chunk(b)) => {
                    (self.progress)(b.len() as u64);
                    self.buf = b;
                    self.pos = 0;
                }
                Ok(Reply::End(s)) => {
                    self.end = Some(s);
                    return Ok(0);
                }
                Ok(Reply::Lost(why)) => {
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, why))
                }
                Ok(Reply::Digest(_)) | Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "reply stream broken",
                    ))
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The listing as the pass takes it: every [`CREDIT_STEP`] entries taken, the sender is
/// granted as many more.
struct CreditedListing {
    rx: Receiver<Result<Entry, ScanError>>,
    conn: Option<Arc<Conn>>,
    shared: Arc<Shared>,
    taken: u32,
}

/// Entries taken between two grants.
const CREDIT_STEP: u32 = 4096;

impl Iterator for CreditedListing {
    type Item = Result<Entry, ScanError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.rx.recv().ok()?;
        if let (Ok(_), Some(conn)) = (&item, &self.conn) {
            self.taken += 1;
            if self.taken == CREDIT_STEP {
                self.taken = 0;
                self.shared
                    .granted
                    .fetch_add(u64::from(CREDIT_STEP), Ordering::Relaxed);
                // A broken connection shows up in the listing and the transfers anyway.
                let _ = conn.send(&Message::ListCredit(CREDIT_STEP));
            }
        }
        Some(item)
    }
}

/// The one reader: listing entries to the listing channel, replies to their transfers. It
/// never blocks on the listing (see [`CreditedListing`]).
fn read_loop(
    mut input: Input,
    input_caps: u64,
    listing: Sender<Result<Entry, ScanError>>,
    shared: &Shared,
) {
    let mut listing = Some(listing);
    let mut checker = ListChecker::new();
    // Entries received; a sender that negotiated flow control must stay within its credit.
    let mut received = 0u64;
    let window = (input_caps & CAP_LIST_CREDIT != 0).then_some(u64::from(LIST_CREDIT));
    // Replies to requests sent ahead completed since the pass was last woken.
    let mut completed = 0usize;
    let why = loop {
        // Wake the pass once per batch: when no further frame is buffered (the next read may
        // wait), or every WAKE_EVERY replies.
        if completed > 0 && (completed >= WAKE_EVERY || !input.has_buffered_message()) {
            completed = 0;
            shared.wake();
        }
        let msg = match input.next_message() {
            Ok(Some(m)) => m,
            Ok(None) => break "the far side closed the connection".to_string(),
            Err(e) => break e.to_string(),
        };
        let mut route = |id: u32, reply: Reply, last: bool| {
            let mut p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            let tx = if last {
                p.remove(&id)
            } else {
                p.get(&id).cloned()
            };
            drop(p);
            match tx {
                Some((tx, None)) => {
                    let _ = tx.send(reply);
                    Ok(())
                }
                Some((tx, Some(ready))) => match tx.try_send(reply) {
                    Err(std::sync::mpsc::TrySendError::Full(_)) => Err(format!(
                        "the far side sent more replies to request {id} than a small file takes"
                    )),
                    _ => {
                        if last {
                            ready.store(true, Ordering::Release);
                            completed += 1;
                        }
                        Ok(())
                    }
                },
                None => Err(format!("reply for unknown request {id}")),
            }
        };
        let r = match msg {
            Message::Entries(batch) => {
                let mut r = Ok(());
                received += batch.len() as u64;
                if let Some(w) = window {
                    let allowed = w + shared.granted.load(Ordering::Relaxed);
                    // One batch of slack: a grant may be in flight while a batch is sent.
                    if received > allowed + crate::protocol::MAX_BATCH_ENTRIES as u64 {
                        break format!(
                            "the far side sent {received} listing entries with credit for {allowed}"
                        );
                    }
                }
                for e in batch {
                    if let Err(err) = checker.check(&e) {
                        r = Err(format!("bad file list from the far side: {err}"));
                        break;
                    }
                    if let Some(l) = &listing {
                        let _ = l.send(Ok(e));
                    }
                }
                r
            }
            Message::ScanProblem(p) => {
                if let Some(l) = &listing {
                    let kind = if p.vanished {
                        ScanErrorKind::Vanished
                    } else {
                        ScanErrorKind::Remote { message: p.message }
                    };
                    let _ = l.send(Err(ScanError {
                        path: p.path.into(),
                        kind,
                    }));
                }
                Ok(())
            }
            Message::ListEnd => {
                listing = None;
                Ok(())
            }
            Message::DataChunk { id, bytes } => route(id, Reply::Chunk(bytes), false),
            Message::DataEnd { id, status } => route(id, Reply::End(status), true),
            Message::DigestReply { id, status } => route(id, Reply::Digest(status), true),
            Message::Error(e) => Err(format!("far side: {e}")),
            other => Err(format!(
                "unexpected {} message",
                other.message_type().name()
            )),
        };
        if let Err(why) = r {
            break why;
        }
    };
    if let Some(l) = listing.take() {
        let _ = l.send(Err(ScanError {
            path: Box::default(),
            kind: ScanErrorKind::Remote {
                message: format!("the listing was cut short: {why}"),
            },
        }));
    }
    *shared.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
    let ended: Vec<_> = shared
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    for (_, (tx, ready)) in ended {
        // Never wait here: a full channel's reader learns of the end when it is dropped.
        let _ = tx.try_send(Reply::Lost(why.clone()));
        // Its transfer may run now, and learn that the session is over.
        if let Some(r) = ready {
            r.store(true, Ordering::Release);
        }
    }
    shared.wake();
}

/// Buffer gathering a whole file's small chunks into writes (see [`RemoteSource::fetch`]).
const WRITE_GATHER: usize = 256 << 10;

/// Replies to requests sent ahead after which the reader wakes the pass even while more
/// frames are buffered.
const WAKE_EVERY: usize = 32;

impl Shared {
    /// Tells the pass that prepared data arrived.
    fn wake(&self) {
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(w) = waker {
            w();
        }
    }
}

impl Source for RemoteSource {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn lost(&self) -> Option<String> {
        RemoteSource::lost(self)
    }

    fn wire(&self) -> Option<(u64, u64)> {
        self.wire.as_ref().map(|w| (w.sent(), w.received()))
    }

    fn list(&self, _descend: DescendFilter, _one_file_system: bool) -> Listing {
        let rx = self
            .listing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match rx {
            Some(rx) => Box::new(CreditedListing {
                rx,
                conn: (self.conn.capabilities() & CAP_LIST_CREDIT != 0).then(|| self.conn.clone()),
                shared: self.shared.clone(),
                taken: 0,
            }),
            None => Box::new(std::iter::empty()),
        }
    }

    fn transfer(
        &self,
        dst: &Tree,
        rel: &[u8],
        entry: &Entry,
        old: Option<&Entry>,
        opts: &TransferOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Moved, TransferError> {
        let mut tries = 0;
        let mut whole = false;
        let mut sent = self.take_prefetched(rel);
        loop {
            tries += 1;
            let mut tmp =
                dst.new_file_beside(rel, entry.mode())
                    .map_err(|e| TransferError::Io {
                        op: "create temporary",
                        source: e,
                    })?;
            // Over the network a delta pays whenever there is an old file worth reading.
            let basis = match old {
                Some(o) if !whole && wants_basis(Some(o), opts) => {
                    let f = dst.open_read(rel).map_err(|e| TransferError::Io {
                        op: "open old file",
                        source: e,
                    })?;
                    let input =
                        InputFile::from_file(f, Access::Owned).map_err(|e| TransferError::Io {
                            op: "open old file",
                            source: e,
                        })?;
                    let sig_opts = SignatureOptions {
                        seed: Some(self.seed),
                        ..SignatureOptions::new(SignatureFormat::Native)
                    };
                    let turn = self.signatures.enter(input.len());
                    let sig = Signature::from_input(&input, &sig_opts).map_err(|e| {
                        TransferError::Io {
                            op: "signature of old file",
                            source: io::Error::other(e),
                        }
                    })?;
                    drop(turn);
                    Some((sig, input))
                }
                _ => None,
            };
            let fetched = self.fetch(
                rel,
                entry.size(),
                basis.as_ref().map(|(s, i)| (s, i)),
                sent.take(),
                tmp.file(),
                progress,
            );
            match fetched {
                Ok(f) => {
                    let meta = Meta {
                        mode: entry.mode(),
                        uid: entry.uid(),
                        gid: entry.gid(),
                        mtime: f.mtime,
                        kind: entry.kind(),
                    };
                    crate::exec::transfer::finish_temp(tmp, &meta, opts)?;
                    return Ok(Moved {
                        size: f.size,
                        literal: f.size - f.matched,
                        matched: f.matched,
                        mtime: f.mtime,
                    });
                }
                // A rebuilt file failing verification is fetched again whole, once.
                Err(TransferError::Apply(_)) if !whole && basis.is_some() => whole = true,
                Err(TransferError::Changing { detail, .. }) if tries <= opts.retries => {
                    let _ = detail;
                    std::thread::sleep(opts.retry_wait);
                }
                Err(TransferError::Changing { detail, .. }) => {
                    return Err(TransferError::Changing { detail, tries })
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn prepare(
        &self,
        rel: &[u8],
        entry: &Entry,
        old: Option<&Entry>,
        opts: &TransferOptions,
    ) -> Option<Ready> {
        if entry.size() > PREFETCH_MAX || wants_basis(old, opts) {
            return None;
        }
        if self.conn.capabilities() & CAP_REQUESTS == 0 {
            // A failed send is the session ending; the transfer reports it.
            let (p, ready) = self.request_whole(rel, entry.size(), true).ok()?;
            self.prefetched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(rel.into(), p);
            return ready;
        }
        let (id, rx, ready) = self.register_as(true).ok()?;
        self.prefetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rel.into(), (id, rx));
        let full = {
            let mut u = self.unsent.lock().unwrap_or_else(|e| e.into_inner());
            u.push(Request {
                id,
                path: rel.to_vec(),
                size_hint: entry.size(),
                signature: false,
            });
            if u.len() >= REQUEST_BATCH {
                std::mem::take(&mut *u)
            } else {
                Vec::new()
            }
        };
        let _ = self.send_batch(full);
        ready
    }

    fn flush_prepared(&self) {
        let batch = std::mem::take(&mut *self.unsent.lock().unwrap_or_else(|e| e.into_inner()));
        // A failed send is the session ending: the reader marks every request ready.
        let _ = self.send_batch(batch);
    }

    fn set_waker(&self, wake: Option<Waker>) {
        *self.shared.waker.lock().unwrap_or_else(|e| e.into_inner()) = wake;
    }

    fn digest(&self, rel: &[u8]) -> io::Result<[u8; 16]> {
        let (id, rx) = self
            .register()
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.send(&Message::Digest {
            id,
            path: rel.to_vec(),
        })
        .map_err(|e| io::Error::other(e.to_string()))?;
        match rx.recv() {
            Ok(Reply::Digest(DigestStatus::Ok(h))) => Ok(h),
            Ok(Reply::Digest(DigestStatus::Vanished)) => {
                Err(io::Error::new(io::ErrorKind::NotFound, "vanished"))
            }
            Ok(Reply::Digest(DigestStatus::Failed(m))) => Err(io::Error::other(m)),
            Ok(Reply::Lost(why)) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, why)),
            _ => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "reply stream broken",
            )),
        }
    }

    fn estimate(
        &self,
        _dst: &Tree,
        _rel: &[u8],
        _old: Option<&Entry>,
        size: u64,
        _opts: &TransferOptions,
    ) -> io::Result<u64> {
        // A dry run does not ask the far side for deltas: the whole size is the upper bound.
        Ok(size)
    }
}

impl Drop for RemoteSource {
    fn drop(&mut self) {
        let _ = self.conn.send(&Message::Done);
        if let Some(r) = self.reader.take() {
            // The far side closes after Done; the reader then ends.
            let _ = r.join();
        }
    }
}
