//! What a pass reports while it runs and when it ends: events for progress and per-entry
//! output, counters, and the outcome that decides the exit code. Nothing here prints: the
//! caller renders events (bars, `-v` lines, itemized lines, JSON).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plan::{Action, ChangeFlags};
use crate::scan::EntryKind;

/// One thing that happened (or, in a dry run, would happen) to one path.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// Relative path.
    pub path: &'a [u8],
    /// Kind of the entry (of the destination's, for deletions).
    pub kind: EntryKind,
    /// What was done.
    pub action: Action,
    /// What differed.
    pub flags: ChangeFlags,
    /// Size of the file.
    pub size: u64,
    /// Bytes sent as literal data (the whole file for a whole copy).
    pub literal: u64,
    /// Bytes reused from the old destination file.
    pub matched: u64,
    /// For symlinks, the target; for hard links, the path linked to.
    pub target: Option<&'a [u8]>,
}

/// Why one entry failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Problem {
    /// Reading, writing or setting metadata failed.
    Failed,
    /// The source file disappeared during the pass.
    Vanished,
    /// The source file kept changing while it was read, through every retry.
    Changing,
    /// A deletion was not done (rails, `--max-delete`, earlier errors).
    DeleteSkipped,
    /// The destination holds another kind of entry where the source has a directory or a file,
    /// and this mode does not replace it (robocopy's "mismatch").
    Mismatch,
}

/// Events delivered to the progress callback, from any worker thread.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// An entry was changed, or would be in a dry run.
    Changed(Change<'a>),
    /// An unchanged entry (for very verbose output).
    Unchanged(&'a [u8]),
    /// A transfer of `size` bytes started.
    TransferStarted {
        /// Relative path.
        path: &'a [u8],
        /// Size of the source file.
        size: u64,
    },
    /// More bytes of the current transfers were processed.
    Progress {
        /// Bytes since the last event.
        bytes: u64,
    },
    /// Something went wrong with one path; the pass goes on.
    Problem {
        /// Relative path (empty for the whole pass).
        path: &'a [u8],
        /// Category.
        problem: Problem,
        /// One-line explanation.
        message: &'a str,
    },
    /// A note about the pass (a rail that stopped deletions, stray temporaries removed …).
    Notice(&'a str),
}

/// The progress callback type.
pub type Callback = dyn Fn(&Event<'_>) + Send + Sync;

/// Counters of a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Source entries considered (after filtering).
    pub source_entries: u64,
    /// Destination entries listed.
    pub dest_entries: u64,
    /// Files created.
    pub files_created: u64,
    /// Files updated.
    pub files_updated: u64,
    /// Files whose metadata alone was fixed.
    pub meta_updated: u64,
    /// Directories created.
    pub dirs_created: u64,
    /// Symlinks, hard links and specials created.
    pub links_created: u64,
    /// Entries deleted.
    pub deleted: u64,
    /// Total size of the files transferred.
    pub transferred_size: u64,
    /// Bytes sent as literal data.
    pub literal_bytes: u64,
    /// Bytes reused from old destination files.
    pub matched_bytes: u64,
    /// Total size of all selected source files.
    pub total_size: u64,
    /// Entries that failed.
    pub errors: u64,
    /// Source files that vanished.
    pub vanished: u64,
    /// Deletions that were due but not done.
    pub deletes_skipped: u64,
    /// Entries left alone because the destination has another kind of entry there.
    pub mismatched: u64,
    /// `check`: entries missing from the destination.
    pub missing: u64,
    /// `check`: destination entries absent from the source.
    pub extra: u64,
    /// `check`: entries that differ.
    pub differ: u64,
    /// Wall-clock time.
    #[serde(serialize_with = "secs", deserialize_with = "from_secs")]
    pub elapsed: Duration,
    /// With a far side: bytes this side sent it (the session's frames, compressed, as they
    /// entered ssh's pipe or the kept server's socket); 0 for a local pass. Filled in by
    /// the pass from its far source ([`crate::sync::source::Source::wire`]) and by
    /// [`crate::session::push`].
    #[serde(default)]
    pub wire_sent: u64,
    /// With a far side: bytes received from it.
    #[serde(default)]
    pub wire_received: u64,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn from_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(d)?;
    Ok(Duration::try_from_secs_f64(secs).unwrap_or_default())
}

impl Stats {
    /// Total file size divided by bytes that had to move (rsync's "speedup").
    pub fn speedup(&self) -> f64 {
        self.total_size as f64 / (self.literal_bytes.max(1)) as f64
    }
}

/// How a pass ended, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Everything done.
    Success,
    /// Some entries failed (exit 23).
    Partial,
    /// Some source files vanished, nothing else failed (exit 24).
    Vanished,
    /// Deletions were stopped by `--max-delete` or a safety rail (exit 25).
    DeletionsStopped,
    /// `check` found differences (exit 1).
    Differences,
}

impl Outcome {
    /// rsync's exit code for the outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Partial => 23,
            Outcome::Vanished => 24,
            Outcome::DeletionsStopped => 25,
            Outcome::Differences => 1,
        }
    }
}

/// The result of a pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// Counters.
    pub stats: Stats,
    /// Whether nothing was changed on purpose.
    pub dry_run: bool,
    /// The first problems (up to 1000), as `path: message`.
    pub problems: Vec<String>,
    /// Why deletions were stopped, if they were.
    pub deletions_stopped: Option<String>,
}

/// Thread-safe accumulation of a pass's counters and problems.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) created: AtomicU64,
    pub(crate) updated: AtomicU64,
    pub(crate) meta: AtomicU64,
    pub(crate) dirs: AtomicU64,
    pub(crate) links: AtomicU64,
    pub(crate) deleted: AtomicU64,
    pub(crate) transferred: AtomicU64,
    pub(crate) literal: AtomicU64,
    pub(crate) matched: AtomicU64,
    pub(crate) total: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) vanished: AtomicU64,
    pub(crate) deletes_skipped: AtomicU64,
    pub(crate) mismatched: AtomicU64,
    pub(crate) missing: AtomicU64,
    pub(crate) extra: AtomicU64,
    pub(crate) differ: AtomicU64,
    pub(crate) problems: Mutex<Vec<String>>,
}

impl fmt::Debug for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tally")
            .field("errors", &self.errors.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl Tally {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub(crate) fn problem(&self, path: &[u8], problem: Problem, message: &str) {
        match problem {
            Problem::Vanished => Self::add(&self.vanished, 1),
            Problem::DeleteSkipped => Self::add(&self.deletes_skipped, 1),
            Problem::Failed | Problem::Changing => Self::add(&self.errors, 1),
            Problem::Mismatch => Self::add(&self.mismatched, 1),
        }
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < 1000 {
            p.push(format!("{}: {message}", String::from_utf8_lossy(path)));
        }
    }

    pub(crate) fn stats(&self, source_entries: u64, dest_entries: u64, elapsed: Duration) -> Stats {
        let l = |c: &AtomicU64| c.load(Relaxed);
        Stats {
            source_entries,
            dest_entries,
            files_created: l(&self.created),
            files_updated: l(&self.updated),
            meta_updated: l(&self.meta),
            dirs_created: l(&self.dirs),
            links_created: l(&self.links),
            deleted: l(&self.deleted),
            transferred_size: l(&self.transferred),
            literal_bytes: l(&self.literal),
            matched_bytes: l(&self.matched),
            total_size: l(&self.total),
            errors: l(&self.errors),
            vanished: l(&self.vanished),
            deletes_skipped: l(&self.deletes_skipped),
            mismatched: l(&self.mismatched),
            missing: l(&self.missing),
            extra: l(&self.extra),
            differ: l(&self.differ),
            elapsed,
            wire_sent: 0,
            wire_received: 0,
        }
    }
}
