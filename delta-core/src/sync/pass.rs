//! One pass: walk, merge, decide, act, then links, deletions and directory metadata.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::exec::meta::{Meta, MetaOptions};
use crate::exec::report::{Change, Event, Outcome, Problem, Report, Tally};
use crate::exec::transfer::{self, TransferError};
use crate::filter::{UnixTime, Verdict};
use crate::plan::merge::Side;
use crate::plan::{decide, merge, Action, ChangeFlags, CompareOptions, Decision, Pair};
use crate::scan::{Entry, EntryKind, ScanError, ScanErrorKind, WalkBuilder};
use crate::tree::Tree;

use super::queue::{CloseOnDrop, WorkQueue};
use super::source::{Listing, LocalSource, Ready, Source};

use super::dirs::{contains, fs_root_refusal, is_fs_root, PendingDirs};
use super::{Mode, SyncError, SyncJob};

/// A file for the worker pool.
struct Task {
    src: Entry,
    dst: Option<Entry>,
    decision: Decision,
    /// Set when the data the source prepared for this transfer is here (`None`: nothing
    /// prepared, ready now).
    ready: Option<Ready>,
}

impl Task {
    fn is_ready(&self) -> bool {
        self.ready
            .as_ref()
            .is_none_or(|r| r.load(std::sync::atomic::Ordering::Acquire))
    }

    /// A transfer whose data was asked for ahead: once ready, only a small file to write.
    fn is_quick(&self) -> bool {
        self.ready.is_some()
    }
}

/// What every part of the pass shares.
struct Ctx<'a> {
    job: &'a SyncJob,
    src: &'a dyn Source,
    dst: Option<Tree>,
    compare: CompareOptions,
    meta: MetaOptions,
    tally: Tally,
    /// The source's connection was reported lost (once, not once per pending file).
    lost_reported: std::sync::atomic::AtomicBool,
}

impl Ctx<'_> {
    fn emit(&self, e: Event<'_>) {
        if let Some(cb) = &self.job.callback {
            cb(&e);
        }
    }

    /// Whether the source is gone for good (a far side whose session ended); reports it the
    /// first time. Files not transferred because of it are not reported one by one.
    fn source_lost(&self) -> bool {
        let Some(why) = self.src.lost() else {
            return false;
        };
        if !self
            .lost_reported
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.problem(
                b"",
                Problem::Failed,
                &format!("the session with {} ended: {why}", self.src.describe()),
            );
        }
        true
    }

    fn problem(&self, path: &[u8], problem: Problem, message: &str) {
        self.tally.problem(path, problem, message);
        self.emit(Event::Problem {
            path,
            problem,
            message,
        });
    }

    fn changed(
        &self,
        e: &Entry,
        action: Action,
        flags: ChangeFlags,
        literal: u64,
        matched: u64,
        target: Option<&[u8]>,
    ) {
        self.emit(Event::Changed(Change {
            path: e.path(),
            kind: e.kind(),
            action,
            flags,
            size: e.size(),
            literal,
            matched,
            target,
        }));
    }

    fn dry(&self) -> bool {
        self.job.opts.dry_run || self.job.opts.mode == Mode::Check
    }

    fn dst(&self) -> &Tree {
        self.dst
            .as_ref()
            .expect("the destination exists unless this is a dry run")
    }

    fn meta_of(&self, e: &Entry) -> Meta {
        Meta::of(e)
    }
}

/// A hard-linked source file seen first.
struct Leader {
    path: Box<[u8]>,
    /// The destination inode the leader ended up with, when known at planning time.
    dst_ino: Option<u64>,
    /// The inode of the leader's destination file as listed, whatever the pass does to it:
    /// what `check` compares followers with (the leader's own content is checked apart).
    listed_ino: Option<u64>,
}

/// A pass from the local source tree at the job's source path.
pub(super) fn run(job: &SyncJob) -> Result<Report, SyncError> {
    let src_path = job.src.as_path();
    match std::fs::metadata(src_path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(SyncError::SourceNotDir {
                path: src_path.into(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SyncError::SourceMissing {
                path: src_path.into(),
            })
        }
        Err(e) => {
            return Err(SyncError::Root {
                path: src_path.into(),
                source: e,
            })
        }
    }
    check_overlap(src_path, &job.dst)?;
    let src = LocalSource::open(src_path).map_err(|source| SyncError::Root {
        path: src_path.into(),
        source,
    })?;
    run_from(job, &src)
}

/// A pass from any source (a far one, through a session).
pub(super) fn run_from(job: &SyncJob, src: &dyn Source) -> Result<Report, SyncError> {
    let started = Instant::now();
    let opts = &job.opts;
    let dst_existed = match std::fs::metadata(&job.dst) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(SyncError::DestNotDir {
                path: job.dst.clone(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = job.dst.parent().filter(|p| !p.as_os_str().is_empty());
            if !opts.mkpath && !opts.dry_run && parent.is_some_and(|p| !p.is_dir()) {
                return Err(SyncError::Root {
                    path: job.dst.clone(),
                    source: io::Error::new(
                        io::ErrorKind::NotFound,
                        "its parent directory is missing (--mkpath creates it)",
                    ),
                });
            }
            false
        }
        Err(e) => {
            return Err(SyncError::Root {
                path: job.dst.clone(),
                source: e,
            })
        }
    };
    fn root_err(path: &Path) -> impl FnOnce(io::Error) -> SyncError + '_ {
        move |source| SyncError::Root {
            path: path.into(),
            source,
        }
    }
    let dst = if dst_existed {
        Some(Tree::open(&job.dst).map_err(root_err(&job.dst))?)
    } else if opts.dry_run || opts.mode == Mode::Check {
        None
    } else {
        Some(Tree::create(&job.dst).map_err(root_err(&job.dst))?)
    };

    // Owners and groups are set (and so compared) only where we may set them: as root, or
    // our own ids (exec::meta decides, per id).
    let meta = opts.transfer.meta;
    let compare = CompareOptions {
        meta,
        ..opts.compare
    };
    let ctx = Ctx {
        job,
        src,
        dst,
        compare,
        meta,
        tally: Tally::default(),
        lost_reported: Default::default(),
    };

    let filter = job.filter.clone();
    let descend: crate::scan::DescendFilter = Arc::new(move |p: &[u8], _| filter.descend(p));
    let src_walk = ctx.src.list(descend.clone(), opts.one_file_system);
    let dst_walk: Box<dyn Iterator<Item = Result<Entry, ScanError>> + Send> = if dst_existed {
        Box::new(
            WalkBuilder::new(&job.dst)
                .follow_root_symlink(true)
                .descend_filter(Some(descend))
                .build(),
        )
    } else {
        Box::new(std::iter::empty())
    };

    let queue = Arc::new(WorkQueue::<Task>::new(
        (opts.transfers * 8).max(PLANNED_AHEAD),
        Task::is_ready,
        Task::is_quick,
    ));
    let weak = Arc::downgrade(&queue);
    ctx.src.set_waker(Some(Arc::new(move || {
        if let Some(q) = weak.upgrade() {
            q.wake();
        }
    })));
    let mut st = State::default();
    std::thread::scope(|s| {
        for _ in 0..opts.transfers {
            std::thread::Builder::new()
                .name("ds-transfer".into())
                .spawn_scoped(s, || worker(&ctx, &queue))
                .expect("cannot start a transfer thread");
        }
        let _close = CloseOnDrop(&*queue);
        plan_and_dispatch(&ctx, src_walk, dst_walk, &queue, &mut st);
    });
    ctx.src.set_waker(None);
    finish(&ctx, st, started)
}

/// Transfers planned ahead of the workers, at least. A far source is asked for a small new
/// file's data when its transfer is planned ([`Source::prepare`]), so this is also how many
/// such files are in flight: enough that the workers never wait a round trip (a push of
/// 60,000 small files on 2 cores with 4 transfers: 128 in flight 1.83 s, 512 1.62 s), and
/// at most 32 MiB of data buffered (files up to 64 KiB are asked for ahead).
const PLANNED_AHEAD: usize = 512;

/// What the planning loop leaves for the end of the pass.
#[derive(Default)]
struct State {
    src_entries: u64,
    dst_entries: u64,
    src_unreadable: bool,
    deletions: Vec<(Box<[u8]>, EntryKind, bool)>,
    dir_fixups: Vec<(Box<[u8]>, Meta)>,
    leaders: HashMap<(u64, u64), Leader>,
    links: Vec<(Box<[u8]>, Entry)>,
    strays: Vec<Box<[u8]>>,
    /// New directories waiting for content (`empty_dirs` off).
    pending: PendingDirs,
    /// The last destination directory removed to make way for a non-directory: the
    /// destination walk, reading ahead, may still list what was in it, or fail to list it.
    replaced: Option<Box<[u8]>>,
    /// The last source directory the filters excluded: its contents are skipped.
    excluded_dir: Option<Box<[u8]>>,
}

impl State {
    /// Whether `path` is the replaced directory (whose listing may fail) or lies below it.
    fn below_replaced(&self, path: &[u8]) -> bool {
        self.replaced
            .as_deref()
            .is_some_and(|r| r == path || contains(r, path))
    }
}

fn is_temp(e: &Entry) -> bool {
    crate::replace::is_temp_name(e.name())
}

fn unix(e: &Entry) -> UnixTime {
    UnixTime::new(e.mtime().sec, e.mtime().nsec)
}

fn plan_and_dispatch(
    ctx: &Ctx<'_>,
    src_walk: Listing,
    dst_walk: Box<dyn Iterator<Item = Result<Entry, ScanError>> + Send>,
    tx: &WorkQueue<Task>,
    st: &mut State,
) {
    let opts = &ctx.job.opts;
    let filter = &ctx.job.filter;
    for item in merge(src_walk, dst_walk) {
        let pair = match item {
            Ok(p) => p,
            Err((Side::Dst, e)) if st.below_replaced(&e.path) => continue,
            Err((side, e)) => {
                let vanished = matches!(e.kind, ScanErrorKind::Vanished);
                if side == Side::Src && !vanished {
                    st.src_unreadable = true;
                }
                let problem = if vanished && side == Side::Src {
                    Problem::Vanished
                } else {
                    Problem::Failed
                };
                let msg = if side == Side::Src {
                    format!("source: {e}")
                } else {
                    format!("destination: {e}")
                };
                ctx.problem(&e.path, problem, &msg);
                continue;
            }
        };
        let (s, d) = match pair {
            Pair::Src(s) => (Some(s), None),
            // Already gone with the directory replaced above it.
            Pair::Dst(d) if st.below_replaced(d.path()) => continue,
            Pair::Dst(d) => (None, Some(d)),
            Pair::Both(s, d) => (Some(s), Some(d)),
        };
        let d = match d {
            Some(d) if is_temp(&d) => {
                st.strays.push(d.into_path());
                None
            }
            d => d,
        };
        if d.as_ref().is_some_and(|d| !d.path().is_empty()) {
            st.dst_entries += 1;
        }
        // Which side takes part: excluded source entries count as absent.
        let mut excluded_dir: Option<Box<[u8]>> = None;
        let mut skip_src = false;
        // Below a source directory the filters exclude nothing takes part, even if the
        // source listed it (a far sender may list everything).
        let s = s.filter(|s| {
            !st.excluded_dir
                .as_deref()
                .is_some_and(|x| contains(x, s.path()))
        });
        let s = s.filter(|s| !is_temp(s)).filter(|s| {
            if s.is_dir() {
                let keep = s.path().is_empty() || filter.dir_included(s.path());
                if !keep {
                    excluded_dir = Some(s.path().into());
                }
                return keep;
            }
            match filter.file_verdict(s.path(), unix(s), s.size()) {
                Verdict::Include => {}
                Verdict::Exclude => return false,
                Verdict::Skip => skip_src = true,
            }
            let wanted = match s.kind() {
                EntryKind::Symlink => opts.symlinks,
                EntryKind::File | EntryKind::Dir => true,
                _ => opts.specials,
            };
            skip_src |= !wanted;
            true
        });
        if let Some(x) = excluded_dir.take() {
            st.excluded_dir = Some(x);
        }
        match (s, d) {
            (None, None) => {}
            (None, Some(d)) => destination_only(ctx, st, d),
            (Some(s), d) => {
                if !s.path().is_empty() {
                    st.src_entries += 1;
                }
                if skip_src {
                    continue;
                }
                source_entry(ctx, st, tx, s, d);
            }
        }
    }
}

/// A destination entry without a (selected) source twin.
fn destination_only(ctx: &Ctx<'_>, st: &mut State, d: Entry) {
    let filter = &ctx.job.filter;
    let protected = if d.is_dir() {
        filter.dir_protected(d.path())
    } else {
        filter.file_protected(d.path(), unix(&d), d.size())
    };
    if protected || d.path().is_empty() {
        return;
    }
    match ctx.job.opts.mode {
        // Counted for robocopy's "extra files" exit bit; sync counts them as deletions.
        Mode::Copy => Tally::add(&ctx.tally.extra, 1),
        Mode::Check => {
            Tally::add(&ctx.tally.extra, 1);
            ctx.changed(&d, Action::Delete, ChangeFlags::default(), 0, 0, None);
        }
        Mode::Sync => {
            let walked = d.is_dir() && filter.descend(d.path());
            let kind = d.kind();
            st.deletions.push((d.into_path(), kind, walked));
        }
    }
}

/// A selected source entry, with the destination entry at the same path if any.
fn source_entry(ctx: &Ctx<'_>, st: &mut State, tx: &WorkQueue<Task>, s: Entry, d: Option<Entry>) {
    let opts = &ctx.job.opts;
    let lazy_dirs = !opts.empty_dirs && opts.mode != Mode::Check;
    if lazy_dirs {
        st.pending.leave(s.path());
    }
    if s.kind() == EntryKind::File {
        Tally::add(&ctx.tally.total, s.size());
        if opts.hard_links && s.nlink() > 1 {
            let key = (s.dev(), s.ino());
            if let Some(leader) = st.leaders.get(&key) {
                // `check` cannot wait for the leader's checksum (if asked for): it compares
                // with the leader's destination inode as listed.
                let ino = if opts.mode == Mode::Check {
                    leader.listed_ino
                } else {
                    leader.dst_ino
                };
                let linked = d
                    .as_ref()
                    .is_some_and(|d| ino == Some(d.ino()) && d.kind() == EntryKind::File);
                if linked {
                    ctx.emit(Event::Unchanged(s.path()));
                } else if opts.mode == Mode::Check && d.is_none() {
                    Tally::add(&ctx.tally.missing, 1);
                    ctx.changed(&s, Action::Create, ChangeFlags::default(), 0, 0, None);
                } else if opts.mode == Mode::Check {
                    Tally::add(&ctx.tally.differ, 1);
                    ctx.changed(
                        &s,
                        Action::HardLink,
                        ChangeFlags::default(),
                        0,
                        0,
                        Some(&leader.path),
                    );
                } else {
                    let leader = leader.path.clone();
                    if lazy_dirs {
                        make_pending_dirs(ctx, st);
                    }
                    st.links.push((leader, s));
                }
                return;
            }
            st.leaders.insert(
                key,
                Leader {
                    path: s.path().into(),
                    dst_ino: None,
                    listed_ino: d
                        .as_ref()
                        .filter(|d| d.kind() == EntryKind::File)
                        .map(|d| d.ino()),
                },
            );
        }
    }
    let decision = decide(&s, d.as_ref(), &ctx.compare);
    if matches!(decision.action, Action::Unchanged | Action::SetMeta) {
        remember_leader(st, &s, d.as_ref());
    }
    if opts.mode == Mode::Check {
        return check_entry(ctx, tx, s, d, decision);
    }
    if lazy_dirs {
        match decision.action {
            Action::Mkdir if !decision.replace && !s.path().is_empty() => {
                return st.pending.push(s, decision.flags);
            }
            Action::Mkdir | Action::Dir | Action::Unchanged | Action::Skip => {}
            _ => make_pending_dirs(ctx, st),
        }
    }
    if decision.replace && !ctx.dry() {
        let d = d.as_ref().expect("replace implies a destination entry");
        if d.is_dir() && opts.mode != Mode::Sync {
            ctx.problem(
                s.path(),
                Problem::Mismatch,
                "a directory is in the way; only sync replaces a directory",
            );
            return;
        }
        let r = if d.is_dir() {
            ctx.dst().remove_all(d.path())
        } else {
            ctx.dst().remove_file(d.path())
        };
        if let Err(e) = r {
            ctx.problem(
                s.path(),
                Problem::Failed,
                &format!("cannot remove the {:?} in the way: {e}", d.kind()),
            );
            return;
        }
        if d.is_dir() {
            st.replaced = Some(d.path().into());
        }
    }
    let flags = decision.flags;
    let dry = ctx.dry();
    let result: io::Result<()> = match decision.action {
        Action::Mkdir => make_dir(ctx, st, &s, flags),
        Action::Dir => {
            if flags.perms || flags.owner || flags.group {
                ctx.changed(&s, Action::SetMeta, flags, 0, 0, None);
            }
            st.dir_fixups.push((s.path().into(), ctx.meta_of(&s)));
            Ok(())
        }
        Action::Create | Action::Update | Action::Checksum => {
            let mut ready = None;
            if decision.action != Action::Checksum && !dry {
                let old = d
                    .as_ref()
                    .filter(|d| d.kind() == EntryKind::File && !decision.replace);
                let mut topts = ctx.job.opts.transfer;
                topts.meta = ctx.meta;
                ready = ctx.src.prepare(s.path(), &s, old, &topts);
            }
            tx.put(
                Task {
                    src: s,
                    dst: d,
                    decision,
                    ready,
                },
                || ctx.src.flush_prepared(),
            );
            return;
        }
        Action::SetMeta => {
            Tally::add(&ctx.tally.meta, 1);
            ctx.changed(&s, Action::SetMeta, flags, 0, 0, None);
            if dry {
                Ok(())
            } else {
                ctx.dst().apply_meta(s.path(), &ctx.meta_of(&s), &ctx.meta)
            }
        }
        Action::Symlink => {
            Tally::add(&ctx.tally.links, 1);
            let target = s.symlink_target().unwrap_or_default();
            ctx.changed(&s, Action::Symlink, flags, 0, 0, Some(target));
            if dry {
                Ok(())
            } else {
                ctx.dst()
                    .symlink(s.path(), target)
                    .and_then(|_| ctx.dst().apply_meta(s.path(), &ctx.meta_of(&s), &ctx.meta))
            }
        }
        Action::Special => {
            Tally::add(&ctx.tally.links, 1);
            ctx.changed(&s, Action::Special, flags, 0, 0, None);
            if dry {
                Ok(())
            } else {
                ctx.dst()
                    .mknod(s.path(), file_type_bits(s.kind()) | s.mode(), s.rdev())
                    .and_then(|_| ctx.dst().apply_meta(s.path(), &ctx.meta_of(&s), &ctx.meta))
            }
        }
        Action::Unchanged => {
            ctx.emit(Event::Unchanged(s.path()));
            Ok(())
        }
        Action::Skip => {
            ctx.emit(Event::Unchanged(s.path()));
            Ok(())
        }
        other => unreachable!("decide() does not plan {other:?} for a source entry"),
    };
    if let Err(e) = result {
        ctx.problem(s.path(), Problem::Failed, &e.to_string());
    }
}

/// Creates a directory (in a dry run, reports it) and queues its metadata for the end.
fn make_dir(ctx: &Ctx<'_>, st: &mut State, s: &Entry, flags: ChangeFlags) -> io::Result<()> {
    Tally::add(&ctx.tally.dirs, 1);
    ctx.changed(s, Action::Mkdir, flags, 0, 0, None);
    // The root was created when the destination tree was opened.
    let r = if ctx.dry() || s.path().is_empty() {
        Ok(())
    } else {
        ctx.dst().mkdir(s.path(), s.mode() | 0o700)
    };
    st.dir_fixups.push((s.path().into(), ctx.meta_of(s)));
    r
}

/// Creates the directories waiting for content, outermost first: something goes in them now.
fn make_pending_dirs(ctx: &Ctx<'_>, st: &mut State) {
    for (dir, flags) in st.pending.take() {
        if let Err(e) = make_dir(ctx, st, &dir, flags) {
            ctx.problem(dir.path(), Problem::Failed, &e.to_string());
        }
    }
}

/// A leader left as it is keeps its destination inode: followers already linked to it are fine.
fn remember_leader(st: &mut State, s: &Entry, d: Option<&Entry>) {
    if let (Some(l), Some(d)) = (st.leaders.get_mut(&(s.dev(), s.ino())), d) {
        if l.path.as_ref() == s.path() {
            l.dst_ino = Some(d.ino());
        }
    }
}

fn check_entry(
    ctx: &Ctx<'_>,
    tx: &WorkQueue<Task>,
    s: Entry,
    d: Option<Entry>,
    decision: Decision,
) {
    match decision.action {
        _ if d.is_none() => {
            Tally::add(&ctx.tally.missing, 1);
            ctx.changed(&s, Action::Create, decision.flags, 0, 0, None);
        }
        Action::Checksum => {
            tx.put(
                Task {
                    src: s,
                    dst: d,
                    decision,
                    ready: None,
                },
                || ctx.src.flush_prepared(),
            );
        }
        Action::Unchanged | Action::Dir | Action::Skip => ctx.emit(Event::Unchanged(s.path())),
        // Metadata-only differences don't make trees differ for `check`, as for rclone.
        Action::SetMeta if s.kind() == EntryKind::File || s.kind() == EntryKind::Dir => {
            ctx.emit(Event::Unchanged(s.path()))
        }
        action => {
            Tally::add(&ctx.tally.differ, 1);
            ctx.changed(&s, action, decision.flags, 0, 0, None);
        }
    }
}

fn file_type_bits(kind: EntryKind) -> u32 {
    match kind {
        EntryKind::BlockDevice => libc::S_IFBLK,
        EntryKind::CharDevice => libc::S_IFCHR,
        EntryKind::Fifo => libc::S_IFIFO,
        EntryKind::Socket => libc::S_IFSOCK,
        _ => 0,
    }
}

/// A transfer worker: takes files until the planner is done.
fn worker(ctx: &Ctx<'_>, queue: &WorkQueue<Task>) {
    let mut worker = queue.worker();
    while let Some(task) = worker.take(|| ctx.src.flush_prepared()) {
        if ctx.source_lost() {
            continue;
        }
        transfer_one(ctx, task);
    }
}

fn transfer_one(ctx: &Ctx<'_>, task: Task) {
    let Task {
        src: s,
        dst: d,
        mut decision,
        ..
    } = task;
    let path = s.path();
    if decision.action == Action::Checksum {
        let digests = ctx
            .src
            .digest(path)
            .and_then(|a| transfer::file_digest(ctx.dst(), path).map(|b| a == b));
        match digests {
            Ok(true) if ctx.job.opts.mode == Mode::Check => {
                return ctx.emit(Event::Unchanged(path))
            }
            Ok(true) => {
                let meta_differs = decision.flags.time
                    || decision.flags.perms
                    || decision.flags.owner
                    || decision.flags.group;
                if !meta_differs {
                    return ctx.emit(Event::Unchanged(path));
                }
                Tally::add(&ctx.tally.meta, 1);
                ctx.changed(&s, Action::SetMeta, decision.flags, 0, 0, None);
                if !ctx.dry() {
                    if let Err(e) = ctx.dst().apply_meta(path, &ctx.meta_of(&s), &ctx.meta) {
                        ctx.problem(path, Problem::Failed, &format!("set metadata: {e}"));
                    }
                }
                return;
            }
            Ok(false) => {
                decision.flags.checksum = true;
                decision.action = Action::Update;
                if ctx.job.opts.mode == Mode::Check {
                    Tally::add(&ctx.tally.differ, 1);
                    return ctx.changed(&s, Action::Update, decision.flags, 0, 0, None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return ctx.problem(path, Problem::Vanished, "vanished")
            }
            Err(e) => return ctx.problem(path, Problem::Failed, &format!("checksum: {e}")),
        }
    }
    let counter = if decision.action == Action::Create {
        &ctx.tally.created
    } else {
        &ctx.tally.updated
    };
    ctx.emit(Event::TransferStarted {
        path,
        size: s.size(),
    });
    if ctx.dry() {
        let old = d.as_ref().filter(|d| d.kind() == EntryKind::File);
        let estimate = match (old, ctx.dst.as_ref()) {
            (Some(_), Some(dst)) => ctx
                .src
                .estimate(dst, path, old, s.size(), &ctx.job.opts.transfer)
                .unwrap_or(s.size()),
            _ => s.size(),
        };
        Tally::add(counter, 1);
        Tally::add(&ctx.tally.transferred, s.size());
        Tally::add(&ctx.tally.literal, estimate);
        return ctx.changed(
            &s,
            decision.action,
            decision.flags,
            estimate,
            s.size().saturating_sub(estimate),
            None,
        );
    }
    let progress = |n: u64| ctx.emit(Event::Progress { bytes: n });
    let old = d
        .as_ref()
        .filter(|d| d.kind() == EntryKind::File && !decision.replace);
    let mut topts = ctx.job.opts.transfer;
    topts.meta = ctx.meta;
    match ctx
        .src
        .transfer(ctx.dst(), path, &s, old, &topts, &progress)
    {
        Ok(m) => {
            Tally::add(counter, 1);
            Tally::add(&ctx.tally.transferred, m.size);
            Tally::add(&ctx.tally.literal, m.literal);
            Tally::add(&ctx.tally.matched, m.matched);
            ctx.changed(
                &s,
                decision.action,
                decision.flags,
                m.literal,
                m.matched,
                None,
            );
        }
        Err(_) if ctx.source_lost() => {}
        Err(TransferError::Vanished) => ctx.problem(path, Problem::Vanished, "vanished"),
        Err(e @ TransferError::Changing { .. }) => {
            ctx.problem(path, Problem::Changing, &e.to_string())
        }
        Err(e) => ctx.problem(path, Problem::Failed, &e.to_string()),
    }
}

/// Hard links, deletions, strays, directory metadata; then the report.
fn finish(ctx: &Ctx<'_>, mut st: State, started: Instant) -> Result<Report, SyncError> {
    let opts = &ctx.job.opts;
    let dry = ctx.dry();
    for (leader, s) in std::mem::take(&mut st.links) {
        // A follower planned for linking before its leader's fate was known (a `--checksum`
        // comparison) may turn out to share the leader's inode already.
        if ctx
            .dst
            .as_ref()
            .is_some_and(|d| same_file(d, &leader, s.path()))
        {
            ctx.emit(Event::Unchanged(s.path()));
            continue;
        }
        Tally::add(&ctx.tally.links, 1);
        ctx.changed(
            &s,
            Action::HardLink,
            ChangeFlags {
                new: true,
                ..ChangeFlags::default()
            },
            0,
            0,
            Some(&leader),
        );
        if !dry {
            if let Err(e) = ctx.dst().hard_link(&leader, s.path()) {
                ctx.problem(
                    s.path(),
                    Problem::Failed,
                    &format!("hard link to {}: {e}", String::from_utf8_lossy(&leader)),
                );
            }
        }
    }
    let mut stopped = None;
    if opts.mode == Mode::Sync && !st.deletions.is_empty() {
        stopped = delete(ctx, &mut st);
    }
    if !dry {
        // Strays go before directory times are set: removing one moves its directory's mtime.
        let mut removed = 0;
        for stray in &st.strays {
            if ctx.dst().remove_file(stray).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            ctx.emit(Event::Notice(&format!(
                "removed {removed} temporary file(s) left by an interrupted pass"
            )));
        }
        for (path, meta) in st.dir_fixups.iter().rev() {
            if let Err(e) = ctx.dst().apply_meta(path, meta, &ctx.meta) {
                if e.kind() != io::ErrorKind::NotFound {
                    ctx.problem(
                        path,
                        Problem::Failed,
                        &format!("set directory metadata: {e}"),
                    );
                }
            }
        }
    }
    let mut stats = ctx
        .tally
        .stats(st.src_entries, st.dst_entries, started.elapsed());
    if let Some((sent, received)) = ctx.src.wire() {
        (stats.wire_sent, stats.wire_received) = (sent, received);
    }
    let outcome = if stats.errors + stats.mismatched > 0 {
        Outcome::Partial
    } else if opts.mode == Mode::Check && (stats.missing + stats.extra + stats.differ) > 0 {
        Outcome::Differences
    } else if stopped.is_some() {
        Outcome::DeletionsStopped
    } else if stats.vanished > 0 {
        Outcome::Vanished
    } else {
        Outcome::Success
    };
    let problems =
        std::mem::take(&mut *ctx.tally.problems.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Report {
        outcome,
        stats,
        dry_run: opts.dry_run,
        problems,
        deletions_stopped: stopped,
    })
}

/// Whether two paths of a tree are names of one regular file.
fn same_file(tree: &Tree, a: &[u8], b: &[u8]) -> bool {
    match (tree.lstat(a), tree.lstat(b)) {
        (Ok(x), Ok(y)) => {
            (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)
                && x.st_mode & libc::S_IFMT == libc::S_IFREG
        }
        _ => false,
    }
}

/// Deletes extraneous destination entries, children before parents, under the rails.
/// Returns why deletions stopped, if they did.
fn delete(ctx: &Ctx<'_>, st: &mut State) -> Option<String> {
    let opts = &ctx.job.opts;
    let n = st.deletions.len() as u64;
    let refuse = |why: String| {
        ctx.tally
            .deletes_skipped
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        ctx.emit(Event::Notice(&why));
        Some(why)
    };
    if st.src_unreadable {
        return refuse(format!(
            "not deleting {n} entries: part of the source could not be read"
        ));
    }
    let errors = ctx.tally.errors.load(std::sync::atomic::Ordering::Relaxed);
    if errors > 0 {
        return refuse(format!(
            "not deleting {n} entries: {errors} error(s) during the pass"
        ));
    }
    if !opts.force_delete && is_fs_root(&ctx.job.dst) {
        let paths = st.deletions.iter().map(|(p, _, _)| &p[..]);
        return refuse(fs_root_refusal(st.deletions.len(), &ctx.job.dst, paths));
    }
    if !opts.force_delete {
        if st.src_entries == 0 {
            return refuse(format!("refusing to delete {n} entries: the source is empty; check the source path, or pass --force-delete"));
        }
        if n * 2 > st.dst_entries {
            let sample: Vec<_> = st
                .deletions
                .iter()
                .take(3)
                .map(|(p, _, _)| String::from_utf8_lossy(p).into_owned())
                .collect();
            return refuse(format!(
                "refusing to delete {n} of the destination's {} entries (more than half), e.g. {}; check the paths, or pass --force-delete",
                st.dst_entries,
                sample.join(", ")
            ));
        }
    }
    let limit = opts.max_delete.unwrap_or(u64::MAX);
    let mut done = 0u64;
    let dry = ctx.dry();
    for (path, kind, walked) in st.deletions.iter().rev() {
        if done >= limit {
            let left = n - done;
            ctx.tally
                .deletes_skipped
                .fetch_add(left, std::sync::atomic::Ordering::Relaxed);
            let why = format!("--max-delete {limit} reached: {left} deletion(s) not done");
            ctx.emit(Event::Notice(&why));
            return Some(why);
        }
        let e = Entry::from_parts(crate::scan::EntryParts {
            path: path.clone(),
            kind: Some(*kind),
            ..Default::default()
        });
        let r = if dry {
            Ok(())
        } else if *kind == EntryKind::Dir {
            if *walked {
                ctx.dst().remove_dir(path)
            } else {
                ctx.dst().remove_all(path)
            }
        } else {
            ctx.dst().remove_file(path)
        };
        match r {
            Ok(()) => {
                done += 1;
                Tally::add(&ctx.tally.deleted, 1);
                ctx.changed(&e, Action::Delete, ChangeFlags::default(), 0, 0, None);
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => done += 1,
            // A directory still holding protected entries stays, as with rsync.
            Err(err) if err.raw_os_error() == Some(libc::ENOTEMPTY) => {
                ctx.emit(Event::Notice(&format!(
                    "kept non-empty directory {}",
                    String::from_utf8_lossy(path)
                )));
            }
            Err(err) => ctx.problem(path, Problem::Failed, &format!("delete: {err}")),
        }
    }
    None
}

/// Refuses trees inside one another: a pass would copy into its own source or delete it.
fn check_overlap(src: &Path, dst: &Path) -> Result<(), SyncError> {
    let canon = |p: &Path| -> Option<std::path::PathBuf> {
        // The destination may not exist yet: resolve its nearest existing ancestor.
        let mut base = p.to_path_buf();
        let mut rest = Vec::new();
        loop {
            if let Ok(c) = base.canonicalize() {
                return Some(
                    rest.iter()
                        .rev()
                        .fold(c, |acc: std::path::PathBuf, r| acc.join(r)),
                );
            }
            rest.push(base.file_name()?.to_owned());
            base = base.parent()?.to_path_buf();
            if base.as_os_str().is_empty() {
                base = ".".into();
            }
        }
    };
    if let (Some(s), Some(d)) = (canon(src), canon(dst)) {
        if s.starts_with(&d) || d.starts_with(&s) {
            return Err(SyncError::Overlap {
                src: src.into(),
                dst: dst.into(),
            });
        }
    }
    Ok(())
}
