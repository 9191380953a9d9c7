//! The walk: a streaming, depth-first listing of a tree in [`cmp_paths`] order (children sorted
//! by name bytes), read ahead in parallel, in bounded memory.
//!
//! # How it works
//! The work is cut into jobs: *list* a directory (open it relative to its parent's descriptor
//! with `O_NOFOLLOW | O_DIRECTORY`, read all its names, sort them) and *stat* a batch of a
//! listed directory's names (`fstatat(.., AT_SYMLINK_NOFOLLOW)` relative to the directory's
//! descriptor, `readlinkat` for symlinks). A stat batch that finds subdirectories queues their
//! list jobs. Nothing is ever resolved by a path from the root, so a directory swapped for a
//! symlink mid-walk cannot lead us out of the tree: opening it fails with `ELOOP`.
//!
//! Every job is keyed by the first path its output covers, and the queue hands out the
//! smallest key first. Since the consumer needs results in exactly that order, the queue's
//! head is always the job the consumer needs next (or one after it), so worker threads read
//! ahead where it pays off and the consumer, when it would otherwise wait for a job still
//! queued, runs it itself. With no worker threads the same code walks serially.
//!
//! # Memory
//! Workers stop taking jobs when the look-ahead budget is spent: stat'ed entries not yet
//! handed out (at most `lookahead` entries), and directories listed ahead of the consumer (at
//! most `lookahead / 64`, clamped to `4..=128`, which also bounds open descriptors, and at
//! most `4 × lookahead` names). A directory's names must all be read and sorted before its
//! first child can be emitted, so one huge directory costs its names (about 8 bytes plus the
//! name each) while it is walked; its entries are still produced in bounded batches, in
//! parallel. Open descriptors: the directories read ahead plus, for each directory on the
//! current path, one while some of its subdirectories remain unopened.
//!
//! Uses only `scan::entry`, `scan::error` and `scan::sys`.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{self, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::entry::{cmp_paths, join_path, Entry};
use super::error::{ScanError, ScanErrorKind, ScanOp};
use super::sys;

/// Decides whether the walk enters a directory: called with the directory's relative path and
/// `true` (the flag is there so a filter's matcher fits as is; the walk only asks about
/// directories). A refused directory is still yielded as an entry; its contents are not read.
/// Called from the walk's worker threads.
pub type DescendFilter = Arc<dyn Fn(&[u8], bool) -> bool + Send + Sync>;

const DEFAULT_LOOKAHEAD: usize = 16 * 1024;
const DEFAULT_STAT_BATCH: usize = 256;
const MAX_DEFAULT_THREADS: usize = 8;

/// Configures a [`Walk`].
///
/// ```no_run
/// use delta_core::scan::WalkBuilder;
/// for item in WalkBuilder::new("/srv/mail").one_file_system(true).build() {
///     match item {
///         Ok(entry) => { let _ = (entry.path(), entry.size(), entry.mtime()); }
///         Err(err) => { let _ = err.to_string(); } // reported; the walk goes on
///     }
/// }
/// ```
#[derive(Clone)]
pub struct WalkBuilder {
    root: PathBuf,
    follow_root_symlink: bool,
    one_file_system: bool,
    threads: Option<usize>,
    lookahead: usize,
    stat_batch: usize,
    descend: Option<DescendFilter>,
}

impl WalkBuilder {
    /// A walk of the tree at `root`.
    pub fn new(root: impl AsRef<Path>) -> Self {
        Self {
            root: root.as_ref().to_path_buf(),
            follow_root_symlink: false,
            one_file_system: false,
            threads: None,
            lookahead: DEFAULT_LOOKAHEAD,
            stat_batch: DEFAULT_STAT_BATCH,
            descend: None,
        }
    }

    /// If the root itself is a symlink, walk what it points to (default: yield the symlink
    /// alone). Symlinks inside the tree are never followed.
    pub fn follow_root_symlink(mut self, yes: bool) -> Self {
        self.follow_root_symlink = yes;
        self
    }

    /// Do not enter directories on another filesystem than the root (mount points are still
    /// yielded, like `rsync -x`).
    pub fn one_file_system(mut self, yes: bool) -> Self {
        self.one_file_system = yes;
        self
    }

    /// Worker threads reading ahead (default: the available parallelism, at most 8). With 0
    /// the walk runs entirely in the thread that iterates it.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Look-ahead budget in entries (default 16384, at least 1); see the module docs.
    pub fn lookahead(mut self, entries: usize) -> Self {
        self.lookahead = entries.max(1);
        self
    }

    /// Names stat'ed per job (default 256, at least 1): the grain of parallelism inside one
    /// directory.
    pub fn stat_batch(mut self, names: usize) -> Self {
        self.stat_batch = names.max(1);
        self
    }

    /// Which directories to enter; `None` (the default) enters all.
    pub fn descend_filter(mut self, filter: Option<DescendFilter>) -> Self {
        self.descend = filter;
        self
    }

    /// The walk. Nothing is read until the first item is asked for; a missing root is the
    /// first (and only) item, an error.
    pub fn build(&self) -> Walk {
        Walk {
            builder: self.clone(),
            phase: Phase::Start,
        }
    }

    fn thread_count(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_DEFAULT_THREADS)
        })
    }
}

impl fmt::Debug for WalkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalkBuilder")
            .field("root", &self.root)
            .field("follow_root_symlink", &self.follow_root_symlink)
            .field("one_file_system", &self.one_file_system)
            .field("threads", &self.threads)
            .field("lookahead", &self.lookahead)
            .field("stat_batch", &self.stat_batch)
            .field("descend", &self.descend.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

/// A walk in progress: an iterator of entries in [`cmp_paths`] order, the root (empty path)
/// first. Per-entry failures are items; the walk continues after them. Dropping it stops the
/// worker threads after their current job.
pub struct Walk {
    builder: WalkBuilder,
    phase: Phase,
}

enum Phase {
    Start,
    Running(Running),
    Done,
}

impl fmt::Debug for Walk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match &self.phase {
            Phase::Start => "not started",
            Phase::Running(_) => "running",
            Phase::Done => "done",
        };
        f.debug_struct("Walk")
            .field("root", &self.builder.root)
            .field("phase", &phase)
            .finish()
    }
}

impl Iterator for Walk {
    type Item = Result<Entry, ScanError>;

    fn next(&mut self) -> Option<Self::Item> {
        let run = match &mut self.phase {
            Phase::Start => return Some(self.start()),
            Phase::Done => return None,
            Phase::Running(run) => run,
        };
        let item = run.next_item();
        if item.is_none() {
            self.phase = Phase::Done;
        }
        item
    }
}

impl Walk {
    /// Examines the root; if it is a directory, starts the workers on it.
    fn start(&mut self) -> Result<Entry, ScanError> {
        self.phase = Phase::Done;
        let b = &self.builder;
        let root_error = |err: &io::Error| {
            let kind = match err.raw_os_error() {
                Some(libc::ENOENT) => ScanErrorKind::RootNotFound {
                    root: b.root.clone(),
                },
                errno => ScanErrorKind::Root {
                    root: b.root.clone(),
                    errno: errno.unwrap_or(libc::EIO),
                },
            };
            ScanError::new(&b""[..], kind)
        };
        let Ok(croot) = CString::new(b.root.as_os_str().as_bytes()) else {
            return Err(root_error(&io::Error::from_raw_os_error(libc::EINVAL)));
        };
        let fd = match sys::open_dir_at(None, &croot, b.follow_root_symlink) {
            Ok(fd) => fd,
            // A file, or a symlink we must not follow: the tree is that one entry.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
                let (st, target) =
                    stat_root(&croot, b.follow_root_symlink).map_err(|e| root_error(&e))?;
                return entry_from_stat(Box::default(), &st, target);
            }
            Err(e) => return Err(root_error(&e)),
        };
        let st = sys::fstat(fd.as_fd()).map_err(|e| root_error(&e))?;
        let entry = entry_from_stat(Box::default(), &st, None)?;
        let cfg = Config {
            one_file_system: b.one_file_system,
            root_dev: entry.dev(),
            descend: b.descend.clone(),
            stat_batch: b.stat_batch,
            max_entries: b.lookahead,
            max_dirs: (b.lookahead / 64).clamp(4, 128),
            max_names: b.lookahead.saturating_mul(4),
        };
        let shared = Arc::new(Shared {
            cfg,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            next_dir: AtomicU64::new(1),
        });
        shared.lock().push(vec![Job {
            key: Box::default(),
            seq: 0,
            slot: Slot::listing(0),
            work: Work::List(Open::Ready(fd)),
        }]);
        let mut workers = 0;
        for _ in 0..b.thread_count() {
            let s = Arc::clone(&shared);
            // A worker that cannot be spawned is simply missing: the consumer runs the jobs.
            if std::thread::Builder::new()
                .name("delta-scan".into())
                .spawn(move || worker(&s))
                .is_ok()
            {
                workers += 1;
            }
        }
        self.phase = Phase::Running(Running {
            shared,
            workers,
            stack: Vec::new(),
            enter: Some(0),
            buf: Vec::new(),
        });
        Ok(entry)
    }

    /// Highest look-ahead seen so far: (stat'ed entries held, directories listed ahead).
    #[cfg(test)]
    fn peaks(&self) -> (usize, usize) {
        match &self.phase {
            Phase::Running(run) => {
                let st = run.shared.lock();
                (st.peak_entries, st.peak_dirs)
            }
            _ => (0, 0),
        }
    }
}

/// A root that is not a directory we walk: its `stat` and, for a symlink, its target.
fn stat_root(root: &CStr, follow: bool) -> io::Result<(libc::stat, Option<Box<[u8]>>)> {
    let st = sys::stat_at(None, root, follow)?;
    let target = if is_symlink(&st) {
        Some(sys::read_link_at(None, root, link_size(&st))?.into_boxed_slice())
    } else {
        None
    };
    Ok((st, target))
}

fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

fn link_size(st: &libc::stat) -> usize {
    usize::try_from(st.st_size).unwrap_or(0)
}

fn entry_from_stat(
    path: Box<[u8]>,
    st: &libc::stat,
    target: Option<Box<[u8]>>,
) -> Result<Entry, ScanError> {
    Entry::from_stat(path, st, target).map_err(|path| {
        #[allow(clippy::unnecessary_cast)]
        let mode = st.st_mode as u32;
        ScanError::new(path, ScanErrorKind::UnsupportedType { mode })
    })
}

/// What every job needs to know; fixed once the root is open.
struct Config {
    one_file_system: bool,
    root_dev: u64,
    descend: Option<DescendFilter>,
    stat_batch: usize,
    max_entries: usize,
    max_dirs: usize,
    max_names: usize,
}

impl Config {
    fn should_descend(&self, entry: &Entry) -> bool {
        if self.one_file_system && entry.dev() != self.root_dev {
            return false;
        }
        match &self.descend {
            Some(filter) => filter(entry.path(), true),
            None => true,
        }
    }
}

struct Shared {
    cfg: Config,
    state: Mutex<State>,
    /// Workers wait here for jobs (or budget).
    work: Condvar,
    /// The consumer waits here for results.
    done: Condvar,
    next_dir: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Which result a job produces: a directory's listing, or one stat batch of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Slot {
    dir: u64,
    part: u32,
}

impl Slot {
    const LISTING: u32 = u32::MAX;

    fn listing(dir: u64) -> Self {
        Self {
            dir,
            part: Self::LISTING,
        }
    }
}

struct Job {
    /// The first path the job's output covers: the queue hands out the smallest first.
    key: Box<[u8]>,
    seq: u64,
    slot: Slot,
    work: Work,
}

impl Ord for Job {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: reverse, so the smallest key comes first.
        cmp_paths(&other.key, &self.key).then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Job {}

enum Work {
    List(Open),
    Stat {
        listing: Arc<Listing>,
        range: Range<usize>,
    },
}

enum Open {
    /// The root, already open.
    Ready(OwnedFd),
    /// A subdirectory, opened relative to its parent.
    At {
        parent: Arc<OwnedFd>,
        name: Box<CStr>,
    },
}

/// A directory's sorted names and its descriptor, shared by its stat jobs.
struct Listing {
    fd: Arc<OwnedFd>,
    path: Box<[u8]>,
    /// Names, each with its NUL.
    names: Vec<u8>,
    /// (start, length without NUL) of each name in `names`, sorted by name.
    order: Vec<(u32, u32)>,
}

impl Listing {
    fn name_with_nul(&self, i: usize) -> &[u8] {
        let (start, len) = self.order[i];
        let start = start as usize;
        &self.names[start..start + len as usize + 1]
    }
}

/// One stat batch's output; `descend` lists (index in `items`, directory id) of the
/// subdirectories whose listing follows them.
struct Chunk {
    items: Vec<Result<Entry, ScanError>>,
    descend: Vec<(u32, u64)>,
}

enum Done {
    /// Number of stat batches (or why the directory could not be read), and names held.
    Listing(Result<u32, ScanError>, usize),
    Chunk(Chunk),
}

#[derive(Default)]
struct State {
    queue: BinaryHeap<Job>,
    listings: HashMap<u64, (Result<u32, ScanError>, usize)>,
    chunks: HashMap<Slot, Chunk>,
    next_seq: u64,
    /// Stat'ed entries running or waiting for the consumer.
    entries_ahead: usize,
    /// Directories being listed or listed, not yet entered by the consumer.
    dirs_ahead: usize,
    /// Names in those listings.
    names_ahead: usize,
    shutdown: bool,
    worker_panicked: bool,
    peak_entries: usize,
    peak_dirs: usize,
}

impl State {
    fn push(&mut self, jobs: Vec<Job>) {
        for mut job in jobs {
            job.seq = self.next_seq;
            self.next_seq += 1;
            self.queue.push(job);
        }
    }

    /// The head of the queue, if the budget allows a worker to take it.
    fn pop_for_worker(&mut self, cfg: &Config) -> Option<Job> {
        let allowed = match &self.queue.peek()?.work {
            Work::List(_) => self.dirs_ahead < cfg.max_dirs && self.names_ahead < cfg.max_names,
            Work::Stat { range, .. } => {
                self.entries_ahead == 0 || self.entries_ahead + range.len() <= cfg.max_entries
            }
        };
        if !allowed {
            return None;
        }
        let job = self.queue.pop()?;
        self.account_start(&job);
        Some(job)
    }

    fn account_start(&mut self, job: &Job) {
        match &job.work {
            Work::List(_) => {
                self.dirs_ahead += 1;
                self.peak_dirs = self.peak_dirs.max(self.dirs_ahead);
            }
            Work::Stat { range, .. } => {
                self.entries_ahead += range.len();
                self.peak_entries = self.peak_entries.max(self.entries_ahead);
            }
        }
    }

    fn finish(&mut self, slot: Slot, done: Done, jobs: Vec<Job>, shared: &Shared) {
        match done {
            Done::Listing(result, names) => {
                self.names_ahead += names;
                self.listings.insert(slot.dir, (result, names));
            }
            Done::Chunk(chunk) => {
                self.chunks.insert(slot, chunk);
            }
        }
        if !jobs.is_empty() {
            self.push(jobs);
            shared.work.notify_all();
        }
        shared.done.notify_one();
    }
}

/// Tells the consumer if a worker dies in a panic (a panicking descend filter), so it does not
/// wait forever for that worker's result.
struct PanicFlag<'a>(&'a Shared);

impl Drop for PanicFlag<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().worker_panicked = true;
            self.0.done.notify_all();
        }
    }
}

fn worker(shared: &Shared) {
    let _flag = PanicFlag(shared);
    let mut buf = Vec::new();
    let mut st = shared.lock();
    loop {
        if st.shutdown {
            return;
        }
        match st.pop_for_worker(&shared.cfg) {
            Some(job) => {
                drop(st);
                let (slot, done, jobs) = run(shared, job, &mut buf);
                st = shared.lock();
                st.finish(slot, done, jobs, shared);
            }
            None => st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner()),
        }
    }
}

fn run(shared: &Shared, job: Job, buf: &mut Vec<u8>) -> (Slot, Done, Vec<Job>) {
    let (done, jobs) = match job.work {
        Work::List(open) => list_dir(shared, job.slot.dir, job.key, open, buf),
        Work::Stat { listing, range } => stat_batch(shared, &listing, range),
    };
    (job.slot, done, jobs)
}

/// Opens and reads one directory; queues its stat batches.
fn list_dir(
    shared: &Shared,
    dir: u64,
    path: Box<[u8]>,
    open: Open,
    buf: &mut Vec<u8>,
) -> (Done, Vec<Job>) {
    let fail = |err: ScanError| (Done::Listing(Err(err), 0), Vec::new());
    let fd = match open {
        Open::Ready(fd) => fd,
        Open::At { parent, name } => match sys::open_dir_at(Some(parent.as_fd()), &name, false) {
            Ok(fd) => fd,
            Err(e) => {
                let mut err = ScanError::from_io(path, ScanOp::OpenDir, &e);
                // Linux refuses a symlink under O_NOFOLLOW | O_DIRECTORY with ENOTDIR: say
                // which of the two happened.
                if err.kind == ScanErrorKind::NotADirectory
                    && sys::stat_at(Some(parent.as_fd()), &name, false)
                        .is_ok_and(|st| is_symlink(&st))
                {
                    err.kind = ScanErrorKind::BecameSymlink;
                }
                return fail(err);
            }
        },
    };
    let mut names = Vec::new();
    let mut order = Vec::new();
    let mut too_large = false;
    let read = sys::read_dir_names(fd.as_fd(), buf, |name| {
        if name == b".\0" || name == b"..\0" || too_large {
            return;
        }
        match (
            u32::try_from(names.len()),
            u32::try_from(names.len() + name.len()),
        ) {
            (Ok(start), Ok(_)) => {
                names.extend_from_slice(name);
                // `name` ends in its NUL and is at most a few hundred bytes.
                order.push((start, (name.len() - 1) as u32));
            }
            _ => too_large = true,
        }
    });
    if let Err(e) = read {
        return fail(ScanError::from_io(path, ScanOp::ReadDir, &e));
    }
    if too_large {
        return fail(ScanError::new(path, ScanErrorKind::DirectoryTooLarge));
    }
    sort_names(&names, &mut order);
    let count = order.len();
    let listing = Arc::new(Listing {
        fd: Arc::new(fd),
        path,
        names,
        order,
    });
    let batch = shared.cfg.stat_batch;
    let jobs: Vec<Job> = (0..count.div_ceil(batch))
        .map(|k| {
            let range = k * batch..((k + 1) * batch).min(count);
            let first = listing.name_with_nul(range.start);
            Job {
                key: join_path(&listing.path, &first[..first.len() - 1]),
                seq: 0,
                // At most 2^31 names fit in 4 GiB with their NULs.
                slot: Slot {
                    dir,
                    part: k as u32,
                },
                work: Work::Stat {
                    listing: Arc::clone(&listing),
                    range,
                },
            }
        })
        .collect();
    (Done::Listing(Ok(jobs.len() as u32), count), jobs)
}

/// Sorts `(start, len)` name references by name bytes. Each is sorted with its first eight
/// bytes inline, so most comparisons never touch the (large, randomly ordered) arena: in a
/// directory of half a million names, that halves the sort.
fn sort_names(names: &[u8], order: &mut Vec<(u32, u32)>) {
    let name = |(start, len): (u32, u32)| &names[start as usize..start as usize + len as usize];
    let mut keyed: Vec<(u64, (u32, u32))> = order
        .iter()
        .map(|&r| {
            let mut prefix = [0u8; 8];
            let n = name(r);
            let k = n.len().min(8);
            prefix[..k].copy_from_slice(&n[..k]);
            // Names contain no NUL, so zero padding sorts a shorter name first, as it should.
            (u64::from_be_bytes(prefix), r)
        })
        .collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| name(a.1).cmp(name(b.1))));
    order.clear();
    order.extend(keyed.into_iter().map(|(_, r)| r));
}

/// Stats a batch of a listed directory's names; queues the listing of each subdirectory to
/// enter.
fn stat_batch(shared: &Shared, listing: &Listing, range: Range<usize>) -> (Done, Vec<Job>) {
    let mut items = Vec::with_capacity(range.len());
    let mut descend = Vec::new();
    let mut jobs = Vec::new();
    for (pos, i) in range.enumerate() {
        let raw = listing.name_with_nul(i);
        let path = join_path(&listing.path, &raw[..raw.len() - 1]);
        let Ok(name) = CStr::from_bytes_with_nul(raw) else {
            let kind = ScanErrorKind::Io {
                op: ScanOp::Stat,
                errno: libc::EINVAL,
            };
            items.push(Err(ScanError::new(path, kind)));
            continue;
        };
        let item = stat_entry(listing.fd.as_fd(), name, path);
        if let Ok(entry) = &item {
            if entry.is_dir() && shared.cfg.should_descend(entry) {
                let id = shared.next_dir.fetch_add(1, atomic::Ordering::Relaxed);
                descend.push((pos as u32, id));
                jobs.push(Job {
                    key: entry.path().into(),
                    seq: 0,
                    slot: Slot::listing(id),
                    work: Work::List(Open::At {
                        parent: Arc::clone(&listing.fd),
                        name: name.into(),
                    }),
                });
            }
        }
        items.push(item);
    }
    (Done::Chunk(Chunk { items, descend }), jobs)
}

fn stat_entry(dir: BorrowedFd<'_>, name: &CStr, path: Box<[u8]>) -> Result<Entry, ScanError> {
    let st = match sys::stat_at(Some(dir), name, false) {
        Ok(st) => st,
        Err(e) => return Err(ScanError::from_io(path, ScanOp::Stat, &e)),
    };
    let target = if is_symlink(&st) {
        match sys::read_link_at(Some(dir), name, link_size(&st)) {
            Ok(t) => Some(t.into_boxed_slice()),
            Err(e) => return Err(ScanError::from_io(path, ScanOp::ReadLink, &e)),
        }
    } else {
        None
    };
    entry_from_stat(path, &st, target)
}

/// The consumer's side: the directories being emitted, innermost last.
struct Running {
    shared: Arc<Shared>,
    workers: usize,
    stack: Vec<Frame>,
    /// A directory just yielded whose listing comes next.
    enter: Option<u64>,
    buf: Vec<u8>,
}

struct Frame {
    dir: u64,
    chunks: u32,
    next_chunk: u32,
    items: std::vec::IntoIter<Result<Entry, ScanError>>,
    pos: u32,
    descend: Vec<(u32, u64)>,
    next_descend: usize,
}

impl Running {
    fn next_item(&mut self) -> Option<Result<Entry, ScanError>> {
        if let Some(dir) = self.enter.take() {
            match self.take_listing(dir) {
                Ok(0) => {}
                Ok(chunks) => self.stack.push(Frame {
                    dir,
                    chunks,
                    next_chunk: 0,
                    items: Vec::new().into_iter(),
                    pos: 0,
                    descend: Vec::new(),
                    next_descend: 0,
                }),
                Err(e) => return Some(Err(e)),
            }
        }
        loop {
            let frame = self.stack.last_mut()?;
            if let Some(item) = frame.items.next() {
                if let Some(&(pos, id)) = frame.descend.get(frame.next_descend) {
                    if pos == frame.pos {
                        self.enter = Some(id);
                        frame.next_descend += 1;
                    }
                }
                frame.pos += 1;
                return Some(item);
            }
            if frame.next_chunk < frame.chunks {
                let slot = Slot {
                    dir: frame.dir,
                    part: frame.next_chunk,
                };
                frame.next_chunk += 1;
                let chunk = self.take_chunk(slot);
                let frame = self.stack.last_mut()?;
                frame.items = chunk.items.into_iter();
                frame.pos = 0;
                frame.descend = chunk.descend;
                frame.next_descend = 0;
                continue;
            }
            self.stack.pop();
        }
    }

    fn take_listing(&mut self, dir: u64) -> Result<u32, ScanError> {
        self.wait_for(Slot::listing(dir), |st| {
            let (result, names) = st.listings.remove(&dir)?;
            st.dirs_ahead -= 1;
            st.names_ahead -= names;
            Some(result)
        })
    }

    fn take_chunk(&mut self, slot: Slot) -> Chunk {
        self.wait_for(slot, |st| {
            let chunk = st.chunks.remove(&slot)?;
            st.entries_ahead -= chunk.items.len();
            Some(chunk)
        })
    }

    /// Waits for the result of `slot`, running its job here if it is still queued.
    fn wait_for<T>(&mut self, slot: Slot, mut take: impl FnMut(&mut State) -> Option<T>) -> T {
        let shared = &*self.shared;
        let mut st = shared.lock();
        loop {
            if let Some(value) = take(&mut st) {
                drop(st);
                // Budget was freed: a worker may take the next job.
                shared.work.notify_all();
                return value;
            }
            if st.worker_panicked {
                drop(st);
                panic!("a scan worker thread panicked");
            }
            // The queue's head is the job we need, if it is still queued (see module docs);
            // without workers, whatever is queued is ours to run.
            let ours = st
                .queue
                .peek()
                .is_some_and(|job| job.slot == slot || self.workers == 0);
            let job = if ours { st.queue.pop() } else { None };
            match job {
                Some(job) => {
                    st.account_start(&job);
                    drop(st);
                    let (slot, done, jobs) = run(shared, job, &mut self.buf);
                    st = shared.lock();
                    st.finish(slot, done, jobs, shared);
                }
                None => st = shared.done.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::EntryKind;
    use proptest::prelude::*;
    use std::ffi::OsStr;
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, SystemTime};

    /// Every way of running the walk; all must give the same output.
    fn modes(root: &Path) -> Vec<WalkBuilder> {
        vec![
            WalkBuilder::new(root).threads(0),
            WalkBuilder::new(root).threads(0).stat_batch(1),
            WalkBuilder::new(root).threads(3),
            WalkBuilder::new(root).threads(2).lookahead(3).stat_batch(2),
            WalkBuilder::new(root).threads(1).lookahead(1).stat_batch(1),
        ]
    }

    fn p(s: &[u8]) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(s))
    }

    /// (path, kind) of entries, and (path, error kind) of failures, in walk order.
    type Outcome = Result<(Vec<u8>, EntryKind), (Vec<u8>, ScanErrorKind)>;

    fn outcomes(walk: Walk) -> Vec<Outcome> {
        walk.map(|item| match item {
            Ok(e) => Ok((e.path().to_vec(), e.kind())),
            Err(e) => Err((e.path.to_vec(), e.kind)),
        })
        .collect()
    }

    fn ok_paths(walk: Walk) -> Vec<Vec<u8>> {
        walk.map(|item| item.unwrap().path().to_vec()).collect()
    }

    #[test]
    fn order_on_tricky_tree() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in [&b"a"[..], b"a/b", b"a b", b"\xff", b"x"] {
            fs::create_dir(r.join(p(d))).unwrap();
        }
        for f in [
            &b"a.txt"[..],
            b"a-b",
            b"B",
            b"\xc3\xa9",
            b"a/b/c",
            b"a/b.c",
            b"a b/z",
            b"\xff/\x80",
            b"ab",
        ] {
            fs::write(r.join(p(f)), b"").unwrap();
        }
        let want: Vec<&[u8]> = vec![
            b"",
            b"B",
            b"a",
            b"a/b",
            b"a/b/c",
            b"a/b.c",
            b"a b",
            b"a b/z",
            b"a-b",
            b"a.txt",
            b"ab",
            b"x",
            b"\xc3\xa9",
            b"\xff",
            b"\xff/\x80",
        ];
        for b in modes(r) {
            let got = ok_paths(b.build());
            assert_eq!(got, want, "{b:?}");
            assert!(got.windows(2).all(|w| cmp_paths(&w[0], &w[1]).is_lt()));
        }
    }

    #[test]
    fn kinds_and_metadata() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::write(r.join("file"), b"hello").unwrap();
        fs::create_dir(r.join("dir")).unwrap();
        symlink("nowhere", r.join("dangling")).unwrap();
        symlink(outside.path(), r.join("out")).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(r.join("fifo"))
            .status()
            .unwrap();
        assert!(status.success());
        let _sock = std::os::unix::net::UnixListener::bind(r.join("sock")).unwrap();
        fs::hard_link(r.join("file"), r.join("link")).unwrap();
        fs::set_permissions(r.join("file"), fs::Permissions::from_mode(0o4751)).unwrap();
        fs::set_permissions(r.join("dir"), fs::Permissions::from_mode(0o1777)).unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789);
        fs::File::options()
            .write(true)
            .open(r.join("file"))
            .unwrap()
            .set_modified(when)
            .unwrap();

        for b in modes(r) {
            let entries: Vec<Entry> = b.build().map(Result::unwrap).collect();
            let names: Vec<&[u8]> = entries.iter().map(Entry::path).collect();
            assert_eq!(
                names,
                vec![
                    &b""[..],
                    b"dangling",
                    b"dir",
                    b"fifo",
                    b"file",
                    b"link",
                    b"out",
                    b"sock"
                ],
                "symlinks must not be followed: {b:?}"
            );
            let get = |n: &[u8]| entries.iter().find(|e| e.path() == n).unwrap();
            let root = get(b"");
            assert_eq!(root.kind(), EntryKind::Dir);
            assert_eq!(root.ino(), fs::metadata(r).unwrap().ino());
            assert_eq!(get(b"dir").kind(), EntryKind::Dir);
            assert_eq!(get(b"dir").mode(), 0o1777);
            assert_eq!(get(b"fifo").kind(), EntryKind::Fifo);
            assert_eq!(get(b"sock").kind(), EntryKind::Socket);
            let dangling = get(b"dangling");
            assert_eq!(dangling.kind(), EntryKind::Symlink);
            assert_eq!(dangling.symlink_target(), Some(&b"nowhere"[..]));
            assert_eq!(dangling.size(), 7);
            let out = get(b"out");
            assert_eq!(out.kind(), EntryKind::Symlink);
            assert_eq!(
                out.symlink_target(),
                Some(outside.path().as_os_str().as_bytes())
            );
            let file = get(b"file");
            let meta = fs::symlink_metadata(r.join("file")).unwrap();
            assert_eq!(file.kind(), EntryKind::File);
            assert_eq!(file.size(), 5);
            assert_eq!(file.mode(), 0o4751);
            assert_eq!((file.uid(), file.gid()), (meta.uid(), meta.gid()));
            assert_eq!(
                file.mtime(),
                crate::scan::Timestamp {
                    sec: 1_600_000_000,
                    nsec: 123_456_789
                }
            );
            let link = get(b"link");
            assert_eq!((link.dev(), link.ino()), (file.dev(), file.ino()));
            assert_eq!((link.nlink(), file.nlink()), (2, 2));
            assert_eq!(link.name(), b"link");
        }
    }

    #[test]
    fn device_root_and_root_symlinks() {
        let null: Vec<Entry> = WalkBuilder::new("/dev/null")
            .build()
            .map(Result::unwrap)
            .collect();
        assert_eq!(null.len(), 1);
        assert_eq!(null[0].kind(), EntryKind::CharDevice);
        assert_eq!(null[0].rdev(), fs::metadata("/dev/null").unwrap().rdev());
        assert_eq!(null[0].path(), b"");

        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        fs::write(dir.path().join("real/f"), b"x").unwrap();
        symlink("real", dir.path().join("link")).unwrap();
        let link = dir.path().join("link");
        let alone = outcomes(WalkBuilder::new(&link).build());
        assert_eq!(alone, vec![Ok((Vec::new(), EntryKind::Symlink))]);
        let followed = outcomes(WalkBuilder::new(&link).follow_root_symlink(true).build());
        assert_eq!(
            followed,
            vec![
                Ok((Vec::new(), EntryKind::Dir)),
                Ok((b"f".to_vec(), EntryKind::File))
            ]
        );
        let file = outcomes(WalkBuilder::new(dir.path().join("real/f")).build());
        assert_eq!(file, vec![Ok((Vec::new(), EntryKind::File))]);
    }

    #[test]
    fn missing_root_is_one_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let items: Vec<_> = WalkBuilder::new(&missing).build().collect();
        assert_eq!(items.len(), 1);
        let err = items[0].as_ref().unwrap_err();
        assert_eq!(
            err.kind,
            ScanErrorKind::RootNotFound {
                root: missing.clone()
            }
        );
        assert_eq!(
            err.to_string(),
            format!("scan root {} does not exist", missing.display())
        );
        let file = dir.path().join("f");
        fs::write(&file, b"").unwrap();
        let under_file: Vec<_> = WalkBuilder::new(file.join("x")).build().collect();
        assert!(matches!(
            &under_file[..],
            [Err(ScanError {
                kind: ScanErrorKind::Root {
                    errno: libc::ENOTDIR,
                    ..
                },
                ..
            })]
        ));
    }

    /// Serial walk, small batches: we know exactly what has been read when, so we can change
    /// the tree between listing and stat, and between stat and opening.
    #[test]
    fn changes_during_the_walk_are_reported_and_skipped() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir(r.join("big")).unwrap();
        for i in 0..10 {
            fs::write(r.join(format!("big/f{i}")), b"").unwrap();
            let d = r.join(format!("d{i}"));
            fs::create_dir(&d).unwrap();
            fs::write(d.join("x"), b"").unwrap();
        }
        let mut walk = WalkBuilder::new(r).threads(0).stat_batch(4).build();
        let mut seen: Vec<Outcome> = Vec::new();
        for item in walk.by_ref() {
            let path = item.unwrap().path().to_vec();
            let stop = path == b"big/f0";
            seen.push(Ok((path, EntryKind::File)));
            if stop {
                break;
            }
        }
        // Root batches: [big d0 d1 d2] stat'ed, [d3..d6] [d7 d8 d9] not yet; big's batches:
        // [f0..f3] stat'ed, [f4..f7] [f8 f9] not yet.
        fs::remove_file(r.join("big/f5")).unwrap();
        fs::remove_dir_all(r.join("d0")).unwrap();
        fs::write(r.join("d0"), b"now a file").unwrap();
        fs::remove_dir_all(r.join("d1")).unwrap();
        fs::remove_dir_all(r.join("d2")).unwrap();
        symlink(outside.path(), r.join("d2")).unwrap();
        fs::remove_dir_all(r.join("d3")).unwrap();
        let rest = outcomes(walk);
        let ok = |s: &str, k| Ok((s.as_bytes().to_vec(), k));
        let err = |s: &str, k| Err((s.as_bytes().to_vec(), k));
        use EntryKind::{Dir, File};
        let mut want = vec![
            ok("big/f1", File),
            ok("big/f2", File),
            ok("big/f3", File),
            ok("big/f4", File),
            err("big/f5", ScanErrorKind::Vanished),
            ok("big/f6", File),
            ok("big/f7", File),
            ok("big/f8", File),
            ok("big/f9", File),
            ok("d0", Dir),
            err("d0", ScanErrorKind::NotADirectory),
            ok("d1", Dir),
            err("d1", ScanErrorKind::Vanished),
            ok("d2", Dir),
            err("d2", ScanErrorKind::BecameSymlink),
            err("d3", ScanErrorKind::Vanished),
        ];
        for i in 4..10 {
            want.push(ok(&format!("d{i}"), Dir));
            want.push(ok(&format!("d{i}/x"), File));
        }
        assert_eq!(rest, want);
        assert_eq!(seen.len(), 3);
    }

    /// With workers reading ahead we cannot know what was read before the change, but the
    /// walk must finish, report only vanished entries, and list untouched parts in full.
    #[test]
    fn deletions_under_parallel_lookahead() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for i in 0..40 {
            for j in 0..5 {
                let d = r.join(format!("d{i:02}/s{j}"));
                fs::create_dir_all(&d).unwrap();
                fs::write(d.join("f"), b"").unwrap();
            }
        }
        let mut walk = WalkBuilder::new(r)
            .threads(2)
            .lookahead(8)
            .stat_batch(2)
            .build();
        let first: Vec<_> = walk.by_ref().take(3).collect();
        assert!(first.iter().all(Result::is_ok));
        for i in (10..40).step_by(3) {
            fs::remove_dir_all(r.join(format!("d{i:02}"))).unwrap();
        }
        let rest = outcomes(walk);
        for item in &rest {
            if let Err((path, kind)) = item {
                assert_eq!(kind, &ScanErrorKind::Vanished, "{}", path.escape_ascii());
            }
        }
        let ok: Vec<Vec<u8>> = rest
            .into_iter()
            .filter_map(Result::ok)
            .map(|o| o.0)
            .collect();
        for i in (0..40).filter(|i| *i < 10 || (i - 10) % 3 != 0) {
            for j in 0..5 {
                let f = format!("d{i:02}/s{j}/f").into_bytes();
                if i > 0 {
                    assert!(ok.contains(&f), "{}", f.escape_ascii());
                }
            }
        }
        assert!(ok.windows(2).all(|w| cmp_paths(&w[0], &w[1]).is_lt()));
    }

    #[test]
    fn descend_filter_prunes_directories() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in ["keep/deep", "skip/inner", "keep/no"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in ["keep/deep/f", "skip/inner/f", "skip/f", "keep/no/f", "top"] {
            fs::write(r.join(f), b"").unwrap();
        }
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&calls);
        let filter: DescendFilter = Arc::new(move |path: &[u8], is_dir: bool| {
            seen.lock().unwrap().push((path.to_vec(), is_dir));
            path != b"skip" && path != b"keep/no"
        });
        for b in modes(r) {
            calls.lock().unwrap().clear();
            let got = ok_paths(b.descend_filter(Some(Arc::clone(&filter))).build());
            let want: Vec<&[u8]> = vec![
                b"",
                b"keep",
                b"keep/deep",
                b"keep/deep/f",
                b"keep/no",
                b"skip",
                b"top",
            ];
            assert_eq!(got, want);
            let mut asked = calls.lock().unwrap().clone();
            asked.sort();
            let want_asked: Vec<(Vec<u8>, bool)> = ["keep", "keep/deep", "keep/no", "skip"]
                .iter()
                .map(|s| (s.as_bytes().to_vec(), true))
                .collect();
            assert_eq!(asked, want_asked);
        }
    }

    /// As root, `chmod 000` does not deny reading (CAP_DAC_READ_SEARCH), so the directory's
    /// contents may appear; either way the walk must go on to the next sibling. Failures to
    /// open a directory are exercised deterministically by the swap and vanish test above.
    #[test]
    fn unreadable_directory_does_not_stop_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir(r.join("locked")).unwrap();
        fs::write(r.join("locked/f"), b"").unwrap();
        fs::create_dir(r.join("later")).unwrap();
        fs::write(r.join("later/f"), b"").unwrap();
        fs::set_permissions(r.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
        let got = outcomes(WalkBuilder::new(r).threads(2).build());
        fs::set_permissions(r.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
        use EntryKind::{Dir, File};
        let ok = |s: &str, k| Ok((s.as_bytes().to_vec(), k));
        let denied = vec![
            ok("", Dir),
            ok("later", Dir),
            ok("later/f", File),
            ok("locked", Dir),
            Err((
                b"locked".to_vec(),
                ScanErrorKind::Io {
                    op: ScanOp::OpenDir,
                    errno: libc::EACCES,
                },
            )),
        ];
        let bypassed = vec![
            ok("", Dir),
            ok("later", Dir),
            ok("later/f", File),
            ok("locked", Dir),
            ok("locked/f", File),
        ];
        assert!(got == denied || got == bypassed, "{got:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn one_file_system_stops_at_mount_points() {
        let only_proc: DescendFilter = Arc::new(|path: &[u8], _| path == b"proc");
        let walk = |one_fs| {
            WalkBuilder::new("/")
                .one_file_system(one_fs)
                .descend_filter(Some(Arc::clone(&only_proc)))
                .build()
                .filter_map(Result::ok)
                .map(|e| e.path().to_vec())
                .collect::<Vec<_>>()
        };
        let contained = walk(true);
        assert!(contained.contains(&b"proc".to_vec()));
        assert!(!contained.iter().any(|p| p.starts_with(b"proc/")));
        let crossing = walk(false);
        assert!(crossing.iter().any(|p| p == b"proc/self"));
    }

    #[test]
    fn lookahead_stays_within_budget() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for i in 0..100 {
            let d = r.join(format!("d{i:03}"));
            fs::create_dir(&d).unwrap();
            for j in 0..20 {
                fs::write(d.join(format!("f{j:02}")), b"").unwrap();
            }
        }
        let mut walk = WalkBuilder::new(r)
            .threads(2)
            .lookahead(64)
            .stat_batch(8)
            .build();
        assert!(walk.by_ref().take(3).all(|i| i.is_ok()));
        // Let the workers run as far ahead as they may.
        std::thread::sleep(Duration::from_millis(200));
        let (entries, dirs) = walk.peaks();
        // Workers stop at the budget; the consumer may add one batch of its own.
        assert!(entries <= 64 + 8, "{entries}");
        assert!(entries >= 16, "workers did not read ahead: {entries}");
        assert!(dirs <= 4 + 1, "{dirs}");
        assert_eq!(walk.count(), 100 * 21 + 1 - 3);
    }

    #[test]
    fn dropping_a_walk_midway_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..50 {
            fs::create_dir_all(dir.path().join(format!("d{i}/e"))).unwrap();
        }
        let started = AtomicUsize::new(0);
        for _ in 0..20 {
            let mut walk = WalkBuilder::new(dir.path()).threads(2).lookahead(4).build();
            started.fetch_add(walk.by_ref().take(5).count(), atomic::Ordering::Relaxed);
            drop(walk);
        }
        assert_eq!(started.load(atomic::Ordering::Relaxed), 100);
    }

    #[test]
    fn walks_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<WalkBuilder>();
        send::<Walk>();
        send::<Entry>();
        send_sync::<ScanError>();
    }

    #[test]
    fn large_directory_in_parallel_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut want = vec![Vec::new()];
        for i in 0..1000u32 {
            let name = format!("{:x}", i.wrapping_mul(2_654_435_761));
            fs::write(dir.path().join(&name), b"").unwrap();
            want.push(name.into_bytes());
        }
        want.sort();
        let got = ok_paths(
            WalkBuilder::new(dir.path())
                .threads(2)
                .stat_batch(16)
                .build(),
        );
        assert_eq!(got, want);
    }

    #[derive(Debug, Clone, Copy)]
    enum Node {
        File(u8),
        Dir,
        Link,
    }

    fn name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"a".to_vec()),
            Just(b"b".to_vec()),
            Just(b"a.b".to_vec()),
            Just(b"a-b".to_vec()),
            Just(b"a b".to_vec()),
            Just(b"B".to_vec()),
            Just(b"\xff".to_vec()),
            Just("é".as_bytes().to_vec()),
        ]
    }

    fn tree() -> impl Strategy<Value = Vec<(Vec<Vec<u8>>, Node)>> {
        let node = prop_oneof![
            (0u8..4).prop_map(Node::File),
            Just(Node::Dir),
            Just(Node::Link)
        ];
        proptest::collection::vec((proptest::collection::vec(name(), 1..5), node), 0..40)
    }

    /// The simplest possible walk: recursive `read_dir`, sorted afterwards.
    fn reference(root: &Path) -> Vec<(Vec<u8>, EntryKind, u64)> {
        fn visit(dir: &Path, rel: &[u8], out: &mut Vec<(Vec<u8>, EntryKind, u64)>) {
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let meta = fs::symlink_metadata(e.path()).unwrap();
                let path = join_path(rel, e.file_name().as_bytes()).into_vec();
                let kind = EntryKind::from_mode(meta.mode()).unwrap();
                out.push((path.clone(), kind, meta.size()));
                if kind == EntryKind::Dir {
                    visit(&e.path(), &path, out);
                }
            }
        }
        let mut out = vec![(
            Vec::new(),
            EntryKind::Dir,
            fs::metadata(root).unwrap().size(),
        )];
        visit(root, b"", &mut out);
        out.sort_by(|a, b| cmp_paths(&a.0, &b.0));
        out
    }

    proptest! {
        #[test]
        fn name_sort_matches_plain_sort(
            list in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0xffu8)], 1..12),
                0..100,
            )
        ) {
            let mut names = Vec::new();
            let mut order = Vec::new();
            for n in &list {
                order.push((names.len() as u32, n.len() as u32));
                names.extend_from_slice(n);
                names.push(0);
            }
            sort_names(&names, &mut order);
            let got: Vec<&[u8]> = order
                .iter()
                .map(|&(s, l)| &names[s as usize..(s + l) as usize])
                .collect();
            let mut want: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
            want.sort();
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn walk_equals_sorted_reference(spec in tree()) {
            let dir = tempfile::tempdir().unwrap();
            let r = dir.path();
            for (comps, node) in &spec {
                let mut path = r.to_path_buf();
                let mut ok = true;
                for c in &comps[..comps.len() - 1] {
                    path.push(OsStr::from_bytes(c));
                    if fs::create_dir(&path).is_err() && !path.is_dir() {
                        ok = false;
                        break;
                    }
                }
                path.push(OsStr::from_bytes(&comps[comps.len() - 1]));
                if !ok || fs::symlink_metadata(&path).is_ok() {
                    continue;
                }
                match node {
                    Node::File(n) => fs::write(&path, vec![b'x'; usize::from(*n)]).unwrap(),
                    Node::Dir => fs::create_dir(&path).unwrap(),
                    Node::Link => symlink("..", &path).unwrap(),
                }
            }
            let want = reference(r);
            for b in modes(r) {
                let got: Vec<(Vec<u8>, EntryKind, u64)> = b
                    .build()
                    .map(|e| {
                        let e = e.unwrap();
                        (e.path().to_vec(), e.kind(), e.size())
                    })
                    .collect();
                prop_assert_eq!(&got, &want, "{:?}", b);
            }
        }
    }
}
