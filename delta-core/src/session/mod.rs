//! Sessions between two deltasync processes over any [`Duplex`]: the handshake, the framed
//! connection, and the two roles.
//!
//! The pass always runs where the destination is (the *receiver*), as rsync's generator and
//! receiver do; the other side is the *sender*, which lists its tree and answers requests.
//! - [`sender::serve_tree`]: the sender's side: a listing thread streams the tree while a
//!   pool of workers answers requests (a delta against the signature the receiver sent, or
//!   the whole file), each checked for changes while read.
//! - [`RemoteSource`]: the receiver's view of a far sender, a
//!   [`crate::sync::source::Source`]: many transfers in flight at once, each identified by its
//!   request id, their replies routed by one reader thread. Small new files are requested
//!   as soon as the pass queues them ([`crate::sync::source::Source::prepare`]), so their
//!   data is on its way before a worker takes them: no round trip per file. Signatures of
//!   large old files, and on the sender their deltas, are computed one at a time, largest
//!   first (`gate`), so the pass's longest chain starts first.
//! - [`serve`]: the entry point of `deltasync server`, the process started on the far side.
//!
//! Compression (zstd, [`SessionOptions::compress`]): listings, requests and events always;
//! file data and signatures only while the output is backed up (more than 512 KiB waiting to
//! be written): then the link is the limit and compression makes it carry more, while on a
//! link that keeps up (loopback, a fast LAN, a busy CPU) it would only slow the pass. The
//! rule regulates itself, like zstd's own `--adapt`. [`SessionOptions::compress_always`]
//! compresses all data, as rsync's `-z` does.
//!
//! Deadlock freedom: each side reads its input on a dedicated thread that never waits on its
//! own writer; writers take a lock per whole frame. Memory is bounded by the per-request
//! channels and the frame limit.

mod conn;
pub mod events;
mod gate;
pub mod options;
mod remote;
pub mod sender;

use std::io;

pub use conn::{connect, Conn, Input};
pub use remote::RemoteSource;

use crate::protocol::{Message, ProtocolError, Role};
use crate::transport::Duplex;

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// Reading or writing the connection failed.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// This side could not do the job, and told the peer so.
    #[error("{0}")]
    Failed(String),
    /// The peer reported a fatal error.
    #[error("far side: {0}")]
    Peer(String),
    /// The connection ended before the session did.
    #[error("the connection closed unexpectedly ({0})")]
    Closed(&'static str),
    /// The peer sent a message that makes no sense here.
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
    /// Something this version does not do.
    #[error("{0}")]
    Unsupported(String),
}

/// Serves one session on the far side: answers the Hello, reads the job, and plays the role
/// it names. Returns when the peer says it is done.
pub fn serve(duplex: Duplex) -> Result<(), SessionError> {
    let (conn, mut input, job) = conn::accept(duplex)?;
    match job.role {
        Role::Sender => sender::serve_tree(&conn, &mut input, &job),
        Role::Receiver => receive(conn, input, &job),
    }
}

/// The far side of a push: run the pass here, into the job's root, from the client's tree;
/// events and the report go back to the client.
fn receive(
    conn: std::sync::Arc<Conn>,
    input: conn::Input,
    job: &crate::protocol::Job,
) -> Result<(), SessionError> {
    use std::os::unix::ffi::OsStrExt;
    use std::sync::Arc;

    let fail = |msg: String| {
        let _ = conn.send(&Message::Error(msg.clone()));
        SessionError::Failed(msg)
    };
    let mut opts = crate::sync::SyncOptions::new(job.mode);
    opts.dry_run = job.dry_run;
    options::decode(&job.options, &mut opts).map_err(|e| fail(e.to_string()))?;
    let filter = options::FilterSpec {
        dialect: job.filter_dialect,
        pairs: options::pairs(&job.filter_args),
    }
    .build()
    .map_err(|e| fail(format!("filter: {e}")))?;
    let root = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&job.root));
    let source = RemoteSource::over(conn.clone(), input, job.seed, "the client".into());
    let events = conn.clone();
    let level = Events::of_job(job);
    // Progress goes back summed, at most ten times a second, for the client's progress bar.
    let long_ago = std::time::Instant::now()
        .checked_sub(std::time::Duration::from_secs(1))
        .unwrap_or_else(std::time::Instant::now);
    let progress = std::sync::Mutex::new((0u64, long_ago));
    let sync = crate::sync::SyncBuilder::new(job.mode, "", &root)
        .options(opts)
        .filter(filter)
        .callback(Arc::new(move |e: &crate::exec::Event<'_>| {
            if !level.wants(e) {
                return;
            }
            let record = match e {
                crate::exec::Event::Progress { bytes } => {
                    let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
                    p.0 += bytes;
                    if p.1.elapsed() < std::time::Duration::from_millis(100) {
                        return;
                    }
                    let sum = std::mem::take(&mut p.0);
                    p.1 = std::time::Instant::now();
                    Some(events::EventRecord::Progress(sum))
                }
                e => events::EventRecord::of(e),
            };
            if let Some(r) = record {
                let _ = events.send(&Message::Event(r.to_bytes()));
            }
        }))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let result = match sync.run_from(&source) {
        Ok(report) => conn.send(&Message::Report(
            serde_json::to_vec(&report).unwrap_or_default(),
        )),
        Err(e) => Err(fail(format!("{}: {e}", root.display()))),
    };
    drop(source);
    result
}
#[cfg(test)]
mod tests;

/// Which of the far side's events a push sends back to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Events {
    /// Problems and notices only (the report comes anyway).
    Problems,
    /// And every change (for `-v`, `-i`, JSON).
    Changes,
    /// And unchanged entries, transfer starts and progress (for `-vv` and progress bars).
    All,
}

impl Events {
    fn as_str(self) -> &'static str {
        match self {
            Self::Problems => "problems",
            Self::Changes => "changes",
            Self::All => "all",
        }
    }

    /// The level a job asks for (absent or unknown: all).
    fn of_job(job: &crate::protocol::Job) -> Self {
        match job
            .options
            .iter()
            .find(|(k, _)| k == "events")
            .map(|(_, v)| v.as_str())
        {
            Some("problems") => Self::Problems,
            Some("changes") => Self::Changes,
            _ => Self::All,
        }
    }

    /// Whether an event of this kind is sent at this level.
    fn wants(self, e: &crate::exec::Event<'_>) -> bool {
        use crate::exec::Event;
        match e {
            Event::Problem { .. } | Event::Notice(_) => true,
            Event::Changed(_) => self >= Self::Changes,
            _ => self >= Self::All,
        }
    }
}

/// How a session runs, apart from the pass it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// zstd level (1..=19; negative levels down to -7 are faster) for listings and file
    /// data; `None`: uncompressed.
    pub compress: Option<i32>,
    /// Compress file data always (rsync's `-z`), not only while the link is backed up (the
    /// default; see the module doc).
    pub compress_always: bool,
    /// Give up when the far side has sent nothing, not even a keepalive, for this long
    /// (rsync's and rclone's `--timeout`); `None`: wait for ever.
    pub timeout: Option<std::time::Duration>,
    /// What a push's far side reports as it goes (every event by default; a client that
    /// shows less asks for less, and the wire carries less).
    pub events: Events,
}

impl Default for SessionOptions {
    /// zstd level 3, no timeout.
    fn default() -> Self {
        Self {
            compress: Some(3),
            compress_always: false,
            timeout: None,
            events: Events::All,
        }
    }
}

/// The job a client asks the far side to do.
fn job(
    role: Role,
    seed: u64,
    opts: &crate::sync::SyncOptions,
    filter: &options::FilterSpec,
    session: &SessionOptions,
    root: &[u8],
) -> crate::protocol::Job {
    let mut options = options::encode(opts);
    options.push((
        "compress-level".into(),
        session.compress.map_or("off".into(), |l| l.to_string()),
    ));
    if session.compress_always {
        options.push(("compress-data".into(), "always".into()));
    }
    if let Some(t) = session.timeout {
        options.push(("timeout-ms".into(), t.as_millis().max(1).to_string()));
    }
    if role == Role::Receiver {
        options.push(("events".into(), session.events.as_str().into()));
    }
    crate::protocol::Job {
        seed,
        role,
        mode: opts.mode,
        dry_run: opts.dry_run,
        options,
        filter_dialect: filter.dialect,
        filter_args: options::flatten(&filter.pairs),
        root: root.to_vec(),
    }
}

/// Pushes the local tree at `src` to a far receiver reached over `duplex`: the far side runs
/// the pass described by `opts` and `filter` into `dst_root`, while this side serves the tree
/// (pruned by the same filter). The far side's events reach `callback`; its report is
/// returned, with the bytes this side counted on the connection. `session` sets compression
/// and the idle timeout.
pub fn push(
    duplex: Duplex,
    src: &std::path::Path,
    dst_root: &[u8],
    opts: &crate::sync::SyncOptions,
    filter: &options::FilterSpec,
    session: &SessionOptions,
    callback: &(dyn Fn(&crate::exec::Event<'_>) + Sync),
) -> Result<crate::exec::Report, SessionError> {
    let walk = filter
        .build()
        .map(|f| sender::WalkOptions::of(opts, &f))
        .map_err(|e| SessionError::Unsupported(format!("filter: {e}")))?;
    let job = job(
        Role::Receiver,
        crate::signature::random_seed(),
        opts,
        filter,
        session,
        dst_root,
    );
    let (duplex, wire) = duplex.counted();
    let (conn, mut input) = connect(duplex, &job)?;
    let report = std::sync::Mutex::new(None);
    let sink = |m: Message| match m {
        Message::Event(b) => {
            if let Ok(r) = events::EventRecord::from_bytes(&b) {
                r.emit(callback);
            }
        }
        Message::Report(b) => {
            *report.lock().unwrap_or_else(|e| e.into_inner()) = serde_json::from_slice(&b).ok()
        }
        _ => {}
    };
    let served = sender::serve_tree_at(&conn, &mut input, src, job.seed, &walk, &sink);
    drop((conn, input));
    served?;
    let mut report: crate::exec::Report = report
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .ok_or(SessionError::Closed(
            "the receiver ended the session without a report",
        ))?;
    // The far receiver counted its side; this side's count is the one that matters here.
    (report.stats.wire_sent, report.stats.wire_received) = (wire.sent(), wire.received());
    Ok(report)
}
